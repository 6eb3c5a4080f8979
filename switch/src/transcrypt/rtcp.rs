//! The RTCP a transcrypt leg writes itself: a sender report for the stream it makes
//! (RFC 3550 §6.4.1) and a picture loss indication to a standard source it needs a
//! keyframe from (RFC 4585 §6.3.1).

/// RTCP SR packet type.
const SR: u8 = 200;
/// RTCP payload-specific feedback (RFC 4585 §6.1).
const PSFB: u8 = 206;

/// Writes a sender report without report blocks into `buf`; returns its length (28).
pub fn sender_report(
    buf: &mut [u8],
    ssrc: u32,
    ntp: u64,
    rtp_ts: u32,
    packets: u32,
    octets: u32,
) -> usize {
    buf[0] = 0x80;
    buf[1] = SR;
    buf[2..4].copy_from_slice(&6u16.to_be_bytes());
    buf[4..8].copy_from_slice(&ssrc.to_be_bytes());
    buf[8..16].copy_from_slice(&ntp.to_be_bytes());
    buf[16..20].copy_from_slice(&rtp_ts.to_be_bytes());
    buf[20..24].copy_from_slice(&packets.to_be_bytes());
    buf[24..28].copy_from_slice(&octets.to_be_bytes());
    28
}

/// Writes a PLI from `sender` about `media` into `buf`; returns its length (12).
pub fn picture_loss(buf: &mut [u8], sender: u32, media: u32) -> usize {
    buf[0] = 0x81; // FMT 1
    buf[1] = PSFB;
    buf[2..4].copy_from_slice(&2u16.to_be_bytes());
    buf[4..8].copy_from_slice(&sender.to_be_bytes());
    buf[8..12].copy_from_slice(&media.to_be_bytes());
    12
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_parse_back() {
        let mut b = [0u8; 28];
        assert_eq!(sender_report(&mut b, 9, 1 << 32, 160, 2, 320), 28);
        let packets: Vec<&[u8]> = crate::rtp::rtcp_packets(&b).collect();
        assert_eq!(packets.len(), 1);
        assert_eq!(crate::rtp::rtcp_ssrc(&b), Ok(9));
        let mut p = [0u8; 12];
        picture_loss(&mut p, 5, 77);
        assert_eq!(crate::rtp::rtcp_packets(&p).count(), 1);
        assert_eq!(u32::from_be_bytes([p[8], p[9], p[10], p[11]]), 77);
    }
}

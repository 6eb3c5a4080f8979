//! RTP and RTCP header views over borrowed bytes (RFC 3550 §5.1, §6.4; RFC 5761 §4).

use thiserror::Error;

/// Fixed RTP header length.
pub const RTP_FIXED_HEADER_LEN: usize = 12;
/// Fixed RTCP header length up to and including the sender SSRC.
pub const RTCP_HEADER_LEN: usize = 8;

/// Why bytes are not an RTP or RTCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum HeaderError {
    /// Shorter than the header it announces.
    #[error("packet too short: {have} bytes, header needs {need}")]
    TooShort {
        /// Bytes available.
        have: usize,
        /// Bytes the header needs.
        need: usize,
    },
    /// Version field is not 2.
    #[error("RTP version {0}, expected 2")]
    BadVersion(u8),
}

/// The parts of an RTP header the switch reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Header length: fixed part, CSRCs and the header extension.
    pub len: usize,
    /// CSRC count.
    pub csrc_count: u8,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub seq: u16,
    /// Synchronisation source.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Parses the header at the start of `packet` (RFC 3550 §5.1, §5.3.1).
    pub fn parse(packet: &[u8]) -> Result<Self, HeaderError> {
        let have = packet.len();
        if have < RTP_FIXED_HEADER_LEN {
            return Err(HeaderError::TooShort {
                have,
                need: RTP_FIXED_HEADER_LEN,
            });
        }
        let version = packet[0] >> 6;
        if version != 2 {
            return Err(HeaderError::BadVersion(version));
        }
        let csrc_count = packet[0] & 0x0f;
        let mut len = RTP_FIXED_HEADER_LEN + 4 * usize::from(csrc_count);
        if packet[0] & 0x10 != 0 {
            // Extension: 16-bit profile, 16-bit length in words, then the words.
            if have < len + 4 {
                return Err(HeaderError::TooShort {
                    have,
                    need: len + 4,
                });
            }
            len += 4 + 4 * usize::from(u16::from_be_bytes([packet[len + 2], packet[len + 3]]));
        }
        if have < len {
            return Err(HeaderError::TooShort { have, need: len });
        }
        Ok(Self {
            len,
            csrc_count,
            payload_type: packet[1] & 0x7f,
            seq: u16::from_be_bytes([packet[2], packet[3]]),
            ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
        })
    }

    /// Byte offset of CSRC `i`.
    pub fn csrc_offset(i: usize) -> usize {
        RTP_FIXED_HEADER_LEN + 4 * i
    }
}

/// True when the second byte is an RTCP packet type: 192-223 (RFC 5761 §4, the range that
/// RTP payload types 64-95 with the marker bit would occupy).
pub fn is_rtcp(packet: &[u8]) -> bool {
    packet.len() >= 2 && (192..=223).contains(&packet[1])
}

/// The sender SSRC of an RTCP packet (RFC 3550 §6.4).
pub fn rtcp_ssrc(packet: &[u8]) -> Result<u32, HeaderError> {
    if packet.len() < RTCP_HEADER_LEN {
        return Err(HeaderError::TooShort {
            have: packet.len(),
            need: RTCP_HEADER_LEN,
        });
    }
    let version = packet[0] >> 6;
    if version != 2 {
        return Err(HeaderError::BadVersion(version));
    }
    Ok(u32::from_be_bytes([
        packet[4], packet[5], packet[6], packet[7],
    ]))
}

/// The packets of an RTCP compound, by their length fields (RFC 3550 §6.1). Iteration
/// stops at the first packet whose length does not fit.
pub fn rtcp_packets(compound: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = compound;
    std::iter::from_fn(move || {
        if rest.len() < 4 || rest[0] >> 6 != 2 {
            return None;
        }
        let len = (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1) * 4;
        if len > rest.len() {
            return None;
        }
        let (packet, tail) = rest.split_at(len);
        rest = tail;
        Some(packet)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_csrc_and_extension() {
        let p = hex::decode("81701234decafbadcafebabe12345121ff").unwrap();
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(
            (h.len, h.csrc_count, h.payload_type, h.seq, h.ssrc),
            (16, 1, 112, 0x1234, 0xcafebabe)
        );
        // X bit with a one-word extension.
        let mut x = hex::decode("900f0001000000000000000abede000111223344").unwrap();
        assert_eq!(RtpHeader::parse(&x).unwrap().len, 20);
        x.truncate(19);
        assert_eq!(
            RtpHeader::parse(&x),
            Err(HeaderError::TooShort { have: 19, need: 20 })
        );
        assert_eq!(
            RtpHeader::parse(&[0x40; 12]),
            Err(HeaderError::BadVersion(1))
        );
        assert!(RtpHeader::parse(&[0x8f; 12]).is_err());
    }

    #[test]
    fn compound_iteration() {
        let c = hex::decode("80c9000100007777 81ca000300007777 0103616263000000".replace(' ', ""))
            .unwrap();
        let parts: Vec<_> = rtcp_packets(&c).map(<[u8]>::len).collect();
        assert_eq!(parts, vec![8, 16]);
        assert_eq!(rtcp_packets(&c[..20]).count(), 1);
        assert_eq!(rtcp_packets(&[0x40, 0, 0, 0]).count(), 0);
    }

    #[test]
    fn rtcp_range() {
        assert!(is_rtcp(&[0x81, 200]));
        assert!(is_rtcp(&[0x81, 204]));
        assert!(!is_rtcp(&[0x80, 0x70]));
        assert!(!is_rtcp(&[0x80, 224]));
        assert_eq!(
            rtcp_ssrc(&hex::decode("81c8000bcafebabe").unwrap()),
            Ok(0xcafebabe)
        );
    }
}

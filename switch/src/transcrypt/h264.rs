//! The refresh point of an H.264 stream (RFC 6184): the TIP refresh flag of a standard
//! endpoint's video (WIRE.md section 3: 1 on the first packet of an IDR) read from the NAL
//! unit types its RTP payloads carry.

/// NAL unit types (ITU-T H.264 table 7-1).
const IDR_SLICE: u8 = 5;
const SPS: u8 = 7;
/// RFC 6184 §5.4 aggregation and fragmentation types.
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

fn starts_idr(nal_type: u8) -> bool {
    nal_type == IDR_SLICE || nal_type == SPS
}

/// True when the RTP payload begins an IDR access unit: a single SPS or IDR slice NAL, an
/// aggregate (STAP-A) holding one, or the start fragment (FU-A, S bit) of an IDR slice.
pub fn begins_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1f {
        STAP_A => {
            let mut i = 1;
            while let Some(len) = payload.get(i..i + 2) {
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                match payload.get(i + 2) {
                    Some(h) if len > 0 && starts_idr(h & 0x1f) => return true,
                    Some(_) => i += 2 + len,
                    None => return false,
                }
            }
            false
        }
        FU_A => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && fu & 0x1f == IDR_SLICE),
        t => starts_idr(t),
    }
}

/// Marks the first packet of each IDR of one stream: one keyframe spans many packets of
/// one timestamp, only the first gets the flag.
#[derive(Debug, Default)]
pub struct RefreshMarker {
    last_keyframe_ts: Option<u32>,
}

impl RefreshMarker {
    /// The refresh flag for a packet with `timestamp` and `payload`.
    pub fn flag(&mut self, timestamp: u32, payload: &[u8]) -> u8 {
        if begins_keyframe(payload) && self.last_keyframe_ts != Some(timestamp) {
            self.last_keyframe_ts = Some(timestamp);
            1
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nal_types() {
        assert!(begins_keyframe(&[0x65, 0x88])); // IDR slice
        assert!(begins_keyframe(&[0x67, 0x42])); // SPS
        assert!(!begins_keyframe(&[0x41, 0x9a])); // non-IDR slice
        assert!(!begins_keyframe(&[0x68])); // PPS alone
        assert!(!begins_keyframe(&[]));
        // STAP-A with PPS then SPS.
        assert!(begins_keyframe(&[0x78, 0, 1, 0x68, 0, 2, 0x67, 0x42]));
        assert!(!begins_keyframe(&[0x78, 0, 1, 0x68, 0, 2, 0x41, 0x42]));
        // Truncated aggregates never panic.
        assert!(!begins_keyframe(&[0x78, 0, 9]));
        assert!(!begins_keyframe(&[0x78, 0]));
        // FU-A: start of an IDR slice, a middle fragment, a non-IDR start.
        assert!(begins_keyframe(&[0x7c, 0x85, 1]));
        assert!(!begins_keyframe(&[0x7c, 0x05, 1]));
        assert!(!begins_keyframe(&[0x7c, 0x81, 1]));
        assert!(!begins_keyframe(&[0x7c]));
    }

    #[test]
    fn only_the_first_packet_of_an_idr_is_flagged() {
        let mut m = RefreshMarker::default();
        assert_eq!(m.flag(100, &[0x67]), 1);
        assert_eq!(m.flag(100, &[0x65]), 0);
        assert_eq!(m.flag(100, &[0x7c, 0x85]), 0);
        assert_eq!(m.flag(200, &[0x41]), 0);
        assert_eq!(m.flag(300, &[0x7c, 0x85]), 1);
    }
}

//! MUXCTRL (subtype 1): multiplexer negotiation (WIRE.md section 5; ekt-spec.md §5.2).
//!
//! ```text
//! hdr | SSRC | "xcts" | ver(4) profile(4) | options(8) | numXmit(8) | numRcv(8) |
//! NTP(64) | confID(64) | xmitPositions(16) | rcvPositions(16) |
//! [v7+: numShared(8) | reserved(8) | sharedPositions(16) | TLVs]
//! ```
//! Unlike the other requests, the NTP timestamp follows the first body word.

use super::TipError;
use super::header::{APP_NAME, RTCP_APP_PT};

/// MUXCTRL subtype.
pub const SUBTYPE: u8 = 1;
/// Profile bit 0: secure (SAVP).
pub const PROFILE_SECURE: u8 = 0x1;
/// Profile bit 1: feedback (AVPF).
pub const PROFILE_FEEDBACK: u8 = 0x2;
/// Option 0x01: the sender is the focus (MCU / switch).
pub const OPTION_IS_FOCUS: u8 = 0x01;
/// Version mswitch sends (WIRE.md section 7: version 8 with the v7 fields zero).
pub const VERSION: u8 = 8;
const V6_LEN: usize = 36;
const V7_LEN: usize = 40;

/// A MUXCTRL request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuxCtrl {
    /// Sender's control SSRC.
    pub ssrc: u32,
    /// TIP version (6, 7 or 8).
    pub version: u8,
    /// Profile bits ([`PROFILE_SECURE`], [`PROFILE_FEEDBACK`]).
    pub profile: u8,
    /// Option bits ([`OPTION_IS_FOCUS`]).
    pub options: u8,
    /// Number of transmitted streams.
    pub num_xmit: u8,
    /// Number of received streams.
    pub num_rcv: u8,
    /// Transmit NTP timestamp: identifies the request and its ACK.
    pub ntp: u64,
    /// Conference ID.
    pub conf_id: u64,
    /// Transmit position bitmask (1 << position).
    pub xmit_positions: u16,
    /// Receive position bitmask.
    pub rcv_positions: u16,
    /// v7+: shared positions.
    pub shared_positions: u16,
}

impl MuxCtrl {
    /// True when the peer negotiates a secure (SAVP) session.
    pub fn is_secure(&self) -> bool {
        self.profile & PROFILE_SECURE != 0
    }

    /// True when the sender says it is a focus.
    pub fn is_focus(&self) -> bool {
        self.options & OPTION_IS_FOCUS != 0
    }

    /// Decodes a MUXCTRL (v6 or later; TLVs after the v7 fields are skipped).
    pub fn decode(buf: &[u8]) -> Result<Self, TipError> {
        if buf.len() < V6_LEN {
            return Err(TipError::TooShort {
                have: buf.len(),
                need: V6_LEN,
            });
        }
        if buf[0] >> 6 != 2 || buf[1] != RTCP_APP_PT || buf[8..12] != APP_NAME {
            return Err(TipError::NotTip);
        }
        if buf[0] & 0x1f != SUBTYPE {
            return Err(TipError::UnexpectedSubtype(buf[0] & 0x1f));
        }
        let words = u16::from_be_bytes([buf[2], buf[3]]);
        let len = (usize::from(words) + 1) * 4;
        if len < V6_LEN || len > buf.len() {
            return Err(TipError::BadLength(words));
        }
        let version = buf[12] >> 4;
        let shared_positions = if version >= 7 && len >= V7_LEN {
            u16::from_be_bytes([buf[38], buf[39]])
        } else {
            0
        };
        Ok(Self {
            ssrc: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            version,
            profile: buf[12] & 0x0f,
            options: buf[13],
            num_xmit: buf[14],
            num_rcv: buf[15],
            ntp: u64::from_be_bytes(buf[16..24].try_into().expect("8 bytes")),
            conf_id: u64::from_be_bytes(buf[24..32].try_into().expect("8 bytes")),
            xmit_positions: u16::from_be_bytes([buf[32], buf[33]]),
            rcv_positions: u16::from_be_bytes([buf[34], buf[35]]),
            shared_positions,
        })
    }

    /// Encoded length: 40 bytes for v7 and later, 36 for v6.
    pub fn encoded_len(&self) -> usize {
        if self.version >= 7 { V7_LEN } else { V6_LEN }
    }

    /// Encodes into `out`; returns the length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, TipError> {
        let len = self.encoded_len();
        let out = out.get_mut(..len).ok_or(TipError::BufferTooSmall)?;
        out[0] = 0x80 | SUBTYPE;
        out[1] = RTCP_APP_PT;
        out[2..4].copy_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
        out[4..8].copy_from_slice(&self.ssrc.to_be_bytes());
        out[8..12].copy_from_slice(&APP_NAME);
        out[12] = (self.version << 4) | (self.profile & 0x0f);
        out[13] = self.options;
        out[14] = self.num_xmit;
        out[15] = self.num_rcv;
        out[16..24].copy_from_slice(&self.ntp.to_be_bytes());
        out[24..32].copy_from_slice(&self.conf_id.to_be_bytes());
        out[32..34].copy_from_slice(&self.xmit_positions.to_be_bytes());
        out[34..36].copy_from_slice(&self.rcv_positions.to_be_bytes());
        if len == V7_LEN {
            out[36] = 0;
            out[37] = 0;
            out[38..40].copy_from_slice(&self.shared_positions.to_be_bytes());
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MuxCtrl {
        MuxCtrl {
            ssrc: 0x0102_0304,
            version: VERSION,
            profile: PROFILE_SECURE | PROFILE_FEEDBACK,
            options: OPTION_IS_FOCUS,
            num_xmit: 3,
            num_rcv: 3,
            ntp: 0x1122_3344_5566_7788,
            conf_id: 42,
            xmit_positions: 0b1110,
            rcv_positions: 0b1110,
            shared_positions: 0,
        }
    }

    #[test]
    fn layout_and_round_trip() {
        let m = sample();
        let mut out = [0u8; 64];
        assert_eq!(m.encode(&mut out), Ok(40));
        assert_eq!(
            hex::encode(&out[..40]),
            "81cc00090102030478637473830103031122334455667788000000000000002a000e000e00000000"
        );
        let back = MuxCtrl::decode(&out[..40]).unwrap();
        assert_eq!(back, m);
        assert!(back.is_secure() && back.is_focus());
    }

    #[test]
    fn version_6_and_malformed() {
        let m = MuxCtrl {
            version: 6,
            ..sample()
        };
        let mut out = [0u8; 64];
        assert_eq!(m.encode(&mut out), Ok(36));
        assert_eq!(MuxCtrl::decode(&out[..36]).unwrap(), m);
        assert!(matches!(
            MuxCtrl::decode(&out[..20]),
            Err(TipError::TooShort { .. })
        ));
        out[3] = 20;
        assert_eq!(MuxCtrl::decode(&out[..36]), Err(TipError::BadLength(20)));
        assert_eq!(
            sample().encode(&mut [0u8; 39]),
            Err(TipError::BufferTooSmall)
        );
    }
}

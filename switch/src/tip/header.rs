//! The common TIP header: V=2 | P | subtype(5) | PT 204 | length | SSRC | "xcts" | NTP(64).

use super::TipError;

/// RTCP APP packet type (RFC 3550 §6.7).
pub const RTCP_APP_PT: u8 = 204;
/// TIP's APP name.
pub const APP_NAME: [u8; 4] = *b"xcts";
/// Header bytes through the NTP timestamp.
pub const HEADER_LEN: usize = 20;

/// The common header of every TIP request and ACK except MUXCTRL (whose NTP timestamp
/// follows its first body word).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppHeader {
    /// TIP subtype (ACK = request subtype | 0x10).
    pub subtype: u8,
    /// Sender SSRC (the media line's control SSRC, WIRE.md section 7).
    pub ssrc: u32,
    /// Transmit NTP timestamp: identifies a request and its ACK.
    pub ntp: u64,
}

impl AppHeader {
    /// Decodes the header; returns it and the body (up to the RTCP length).
    pub fn decode(buf: &[u8]) -> Result<(Self, &[u8]), TipError> {
        if buf.len() < HEADER_LEN {
            return Err(TipError::TooShort {
                have: buf.len(),
                need: HEADER_LEN,
            });
        }
        if buf[0] >> 6 != 2 || buf[1] != RTCP_APP_PT || buf[8..12] != APP_NAME {
            return Err(TipError::NotTip);
        }
        let words = u16::from_be_bytes([buf[2], buf[3]]);
        let len = (usize::from(words) + 1) * 4;
        if len < HEADER_LEN || len > buf.len() {
            return Err(TipError::BadLength(words));
        }
        let header = Self {
            subtype: buf[0] & 0x1f,
            ssrc: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            ntp: u64::from_be_bytes(buf[12..20].try_into().expect("8 bytes")),
        };
        Ok((header, &buf[HEADER_LEN..len]))
    }

    /// Writes the header for a body of `body_len` bytes (a multiple of 4).
    pub fn encode(&self, body_len: usize, out: &mut [u8]) -> Result<usize, TipError> {
        let total = HEADER_LEN + body_len;
        if out.len() < total || !body_len.is_multiple_of(4) {
            return Err(TipError::BufferTooSmall);
        }
        out[0] = 0x80 | (self.subtype & 0x1f);
        out[1] = RTCP_APP_PT;
        out[2..4].copy_from_slice(&((total / 4 - 1) as u16).to_be_bytes());
        out[4..8].copy_from_slice(&self.ssrc.to_be_bytes());
        out[8..12].copy_from_slice(&APP_NAME);
        out[12..20].copy_from_slice(&self.ntp.to_be_bytes());
        Ok(HEADER_LEN)
    }
}

//! The small fixed-layout requests and the ACK (WIRE.md section 5):
//! REFRESH (8), NOTIFY (3), REQTOSEND (15), and ACK = subtype | 0x10 with no body.

use super::header::HEADER_LEN;
use super::{AppHeader, TipError};

/// REFRESH subtype.
pub const REFRESH: u8 = 8;
/// NOTIFY subtype.
pub const NOTIFY: u8 = 3;
/// REQTOSEND subtype.
pub const REQTOSEND: u8 = 15;
/// ACK flag: an ACK's subtype is the request's | 0x10.
pub const ACK_FLAG: u8 = 0x10;
/// NOTIFY TLV tag: the security icon.
const TLV_SECURITY_ICON: u8 = 3;

/// What a REFRESH asks for (WIRE.md section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshKind {
    /// 0: an IDR is required.
    RequireIdr,
    /// 1: a GDR is required.
    RequireGdr,
    /// 2: an IDR is preferred.
    PreferIdr,
    /// 3: a GDR is preferred.
    PreferGdr,
}

/// A REFRESH request: send a refresh point on `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refresh {
    /// Sender SSRC and NTP timestamp.
    pub header: AppHeader,
    /// The video SSRC of the source (WIRE.md section 7).
    pub target: u32,
    /// What kind of refresh point.
    pub kind: RefreshKind,
}

/// A NOTIFY carrying the security icon state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notify {
    /// Sender SSRC and NTP timestamp.
    pub header: AppHeader,
    /// The security icon: `Some(true)` secure, `Some(false)` not, `None` absent.
    pub security_icon: Option<bool>,
}

/// A REQTOSEND request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReqToSend {
    /// Sender SSRC and NTP timestamp.
    pub header: AppHeader,
    /// 0 stop, 1 start.
    pub flags: u32,
    /// Video positions bitmask.
    pub video_positions: u16,
    /// Audio positions bitmask.
    pub audio_positions: u16,
}

fn body_of(buf: &[u8], subtype: u8, min: usize) -> Result<(AppHeader, &[u8]), TipError> {
    let (header, body) = AppHeader::decode(buf)?;
    if header.subtype != subtype {
        return Err(TipError::UnexpectedSubtype(header.subtype));
    }
    if body.len() < min {
        return Err(TipError::TooShort {
            have: buf.len(),
            need: HEADER_LEN + min,
        });
    }
    Ok((header, body))
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Refresh {
    /// Decodes a REFRESH.
    pub fn decode(buf: &[u8]) -> Result<Self, TipError> {
        let (header, body) = body_of(buf, REFRESH, 8)?;
        let kind = match be32(&body[4..8]) {
            0 => RefreshKind::RequireIdr,
            1 => RefreshKind::RequireGdr,
            2 => RefreshKind::PreferIdr,
            _ => RefreshKind::PreferGdr,
        };
        Ok(Self {
            header,
            target: be32(&body[0..4]),
            kind,
        })
    }

    /// Encodes into `out`; returns the length (28).
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, TipError> {
        let h = AppHeader {
            subtype: REFRESH,
            ..self.header
        }
        .encode(8, out)?;
        out[h..h + 4].copy_from_slice(&self.target.to_be_bytes());
        out[h + 4..h + 8].copy_from_slice(&(self.kind as u32).to_be_bytes());
        Ok(h + 8)
    }
}

impl Notify {
    /// Decodes a NOTIFY; unknown TLVs are skipped.
    pub fn decode(buf: &[u8]) -> Result<Self, TipError> {
        let (header, body) = body_of(buf, NOTIFY, 0)?;
        let mut security_icon = None;
        let mut at = 0;
        while at + 2 <= body.len() {
            let (tag, len) = (body[at], usize::from(body[at + 1]));
            let value = body.get(at + 2..at + 2 + len).ok_or(TipError::TooShort {
                have: buf.len(),
                need: buf.len() + 1,
            })?;
            if tag == TLV_SECURITY_ICON && len == 1 {
                security_icon = Some(value[0] == 1);
            }
            if tag == 0 {
                break; // padding
            }
            at += 2 + len;
        }
        Ok(Self {
            header,
            security_icon,
        })
    }

    /// Encodes into `out`; returns the length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, TipError> {
        let body = if self.security_icon.is_some() { 4 } else { 0 };
        let h = AppHeader {
            subtype: NOTIFY,
            ..self.header
        }
        .encode(body, out)?;
        if let Some(secure) = self.security_icon {
            out[h..h + 4].copy_from_slice(&[TLV_SECURITY_ICON, 1, u8::from(secure), 0]);
        }
        Ok(h + body)
    }
}

impl ReqToSend {
    /// Decodes a REQTOSEND.
    pub fn decode(buf: &[u8]) -> Result<Self, TipError> {
        let (header, body) = body_of(buf, REQTOSEND, 8)?;
        Ok(Self {
            header,
            flags: be32(&body[0..4]),
            video_positions: u16::from_be_bytes([body[4], body[5]]),
            audio_positions: u16::from_be_bytes([body[6], body[7]]),
        })
    }

    /// Encodes into `out`; returns the length (28).
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, TipError> {
        let h = AppHeader {
            subtype: REQTOSEND,
            ..self.header
        }
        .encode(8, out)?;
        out[h..h + 4].copy_from_slice(&self.flags.to_be_bytes());
        out[h + 4..h + 6].copy_from_slice(&self.video_positions.to_be_bytes());
        out[h + 6..h + 8].copy_from_slice(&self.audio_positions.to_be_bytes());
        Ok(h + 8)
    }
}

/// Encodes the ACK of a request: subtype | 0x10, no body, the request's NTP timestamp.
pub fn encode_ack(
    request_subtype: u8,
    ssrc: u32,
    ntp: u64,
    out: &mut [u8],
) -> Result<usize, TipError> {
    AppHeader {
        subtype: request_subtype | ACK_FLAG,
        ssrc,
        ntp,
    }
    .encode(0, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr() -> AppHeader {
        AppHeader {
            subtype: 0,
            ssrc: 0xabcd,
            ntp: 77,
        }
    }

    #[test]
    fn refresh_notify_reqtosend_round_trip() {
        let mut out = [0u8; 64];
        let r = Refresh {
            header: AppHeader {
                subtype: REFRESH,
                ..hdr()
            },
            target: 0x55,
            kind: RefreshKind::RequireIdr,
        };
        let n = r.encode(&mut out).unwrap();
        assert_eq!(
            hex::encode(&out[..n]),
            "88cc00060000abcd78637473000000000000004d0000005500000000"
        );
        assert_eq!(Refresh::decode(&out[..n]).unwrap(), r);
        let s = Notify {
            header: AppHeader {
                subtype: NOTIFY,
                ..hdr()
            },
            security_icon: Some(true),
        };
        let n = s.encode(&mut out).unwrap();
        assert_eq!(&out[20..24], &[3, 1, 1, 0]);
        assert_eq!(Notify::decode(&out[..n]).unwrap(), s);
        let q = ReqToSend {
            header: AppHeader {
                subtype: REQTOSEND,
                ..hdr()
            },
            flags: 1,
            video_positions: 2,
            audio_positions: 2,
        };
        let n = q.encode(&mut out).unwrap();
        assert_eq!(ReqToSend::decode(&out[..n]).unwrap(), q);
    }

    #[test]
    fn ack_copies_the_ntp_and_has_no_body() {
        let mut out = [0u8; 32];
        let n = encode_ack(12, 0xabcd, 0x0102_0304_0506_0708, &mut out).unwrap();
        assert_eq!(
            hex::encode(&out[..n]),
            "9ccc00040000abcd786374730102030405060708"
        );
        let (h, body) = AppHeader::decode(&out[..n]).unwrap();
        assert_eq!(
            (h.subtype, h.ntp, body.len()),
            (28, 0x0102_0304_0506_0708, 0)
        );
    }

    #[test]
    fn truncated_bodies_are_errors() {
        let mut out = [0u8; 32];
        let n = encode_ack(REFRESH, 1, 2, &mut out).unwrap();
        out[0] = 0x80 | REFRESH;
        assert!(matches!(
            Refresh::decode(&out[..n]),
            Err(TipError::TooShort { .. })
        ));
        let mut bad = [0u8; 28];
        Notify {
            header: hdr(),
            security_icon: Some(false),
        }
        .encode(&mut bad)
        .unwrap();
        bad[21] = 9; // TLV longer than the packet
        assert!(Notify::decode(&bad[..24]).is_err());
    }
}

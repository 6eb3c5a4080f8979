//! MEDIAOPTS (subtype 7): per-stream media options (WIRE.md sections 5 and 7).
//!
//! Version 3, as libtip writes it: `version(16) reserved(16)`, then per media SSRC a block
//! `SSRC | xmit options | rcv options | option words (tag 8 | value 24)* | 0xFF000000`.
//! Version 2 (one block without SSRC and terminator) is accepted.

use super::header::HEADER_LEN;
use super::{AppHeader, TipError};

/// MEDIAOPTS subtype.
pub const SUBTYPE: u8 = 7;
/// Option bit: EKT (audio and video).
pub const EKT: u32 = 0x0200_0000;
/// Audio option bit: the activity-metric byte is appended.
pub const ACTIVITY_METRIC: u32 = 0x1;
/// Video option bit: the refresh-flag byte is appended.
pub const REFRESH_FLAG: u32 = 0x1;
/// Ends a version 3 block's option words.
const TERMINATOR: u32 = 0xFF00_0000;
/// Blocks kept per packet (one per media SSRC of the line: at most 3 positions + aux).
pub const MAX_BLOCKS: usize = 8;

/// One stream's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamOptions {
    /// The media SSRC (0 in version 2).
    pub ssrc: u32,
    /// Options the sender transmits with.
    pub xmit: u32,
    /// Options the sender can receive.
    pub rcv: u32,
}

/// A MEDIAOPTS request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaOpts {
    /// Sender SSRC and NTP timestamp.
    pub header: AppHeader,
    /// 2 or 3.
    pub version: u16,
    blocks: [StreamOptions; MAX_BLOCKS],
    count: usize,
}

impl MediaOpts {
    /// A version 3 MEDIAOPTS with `streams` (at most [`MAX_BLOCKS`]).
    pub fn new(header: AppHeader, streams: &[StreamOptions]) -> Result<Self, TipError> {
        if streams.len() > MAX_BLOCKS {
            return Err(TipError::BufferTooSmall);
        }
        let mut blocks = [StreamOptions::default(); MAX_BLOCKS];
        blocks[..streams.len()].copy_from_slice(streams);
        Ok(Self {
            header: AppHeader {
                subtype: SUBTYPE,
                ..header
            },
            version: 3,
            blocks,
            count: streams.len(),
        })
    }

    /// The per-stream blocks.
    pub fn streams(&self) -> &[StreamOptions] {
        &self.blocks[..self.count]
    }

    /// Union of the xmit options of every block.
    pub fn xmit_any(&self) -> u32 {
        self.streams().iter().fold(0, |a, s| a | s.xmit)
    }

    /// Union of the rcv options of every block.
    pub fn rcv_any(&self) -> u32 {
        self.streams().iter().fold(0, |a, s| a | s.rcv)
    }

    /// Decodes a MEDIAOPTS request.
    pub fn decode(buf: &[u8]) -> Result<Self, TipError> {
        let (header, body) = AppHeader::decode(buf)?;
        if header.subtype != SUBTYPE {
            return Err(TipError::UnexpectedSubtype(header.subtype));
        }
        let word = |i: usize| {
            body.get(i..i + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let too_short = TipError::TooShort {
            have: buf.len(),
            need: HEADER_LEN + body.len() + 4,
        };
        let first = word(0).ok_or(too_short)?;
        let version = (first >> 16) as u16;
        let mut blocks = [StreamOptions::default(); MAX_BLOCKS];
        let mut count = 0;
        let mut at = 4;
        if version < 3 {
            let (xmit, rcv) = (word(at).ok_or(too_short)?, word(at + 4).ok_or(too_short)?);
            blocks[0] = StreamOptions { ssrc: 0, xmit, rcv };
            count = 1;
        } else {
            while at < body.len() {
                if count == MAX_BLOCKS {
                    return Err(TipError::BufferTooSmall);
                }
                let ssrc = word(at).ok_or(too_short)?;
                let xmit = word(at + 4).ok_or(too_short)?;
                let rcv = word(at + 8).ok_or(too_short)?;
                at += 12;
                // Option words (profile, resolution, ...) up to the terminator: skipped.
                loop {
                    let w = word(at).ok_or(too_short)?;
                    at += 4;
                    if w == TERMINATOR {
                        break;
                    }
                }
                blocks[count] = StreamOptions { ssrc, xmit, rcv };
                count += 1;
            }
        }
        Ok(Self {
            header,
            version,
            blocks,
            count,
        })
    }

    /// Encoded length.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + 4 + self.count * 16
    }

    /// Encodes version 3 into `out`; returns the length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, TipError> {
        let len = self.encoded_len();
        if out.len() < len {
            return Err(TipError::BufferTooSmall);
        }
        let h = AppHeader {
            subtype: SUBTYPE,
            ..self.header
        }
        .encode(len - HEADER_LEN, out)?;
        out[h..h + 4].copy_from_slice(&(3u32 << 16).to_be_bytes());
        for (i, s) in self.streams().iter().enumerate() {
            let b = &mut out[h + 4 + i * 16..h + 4 + (i + 1) * 16];
            b[0..4].copy_from_slice(&s.ssrc.to_be_bytes());
            b[4..8].copy_from_slice(&s.xmit.to_be_bytes());
            b[8..12].copy_from_slice(&s.rcv.to_be_bytes());
            b[12..16].copy_from_slice(&TERMINATOR.to_be_bytes());
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_3_round_trip_and_option_words_skipped() {
        let header = AppHeader {
            subtype: SUBTYPE,
            ssrc: 5,
            ntp: 9,
        };
        let streams = [
            StreamOptions {
                ssrc: 0x10,
                xmit: EKT | ACTIVITY_METRIC,
                rcv: EKT | ACTIVITY_METRIC,
            },
            StreamOptions {
                ssrc: 0x11,
                xmit: ACTIVITY_METRIC,
                rcv: 0,
            },
        ];
        let m = MediaOpts::new(header, &streams).unwrap();
        let mut out = [0u8; 128];
        let n = m.encode(&mut out).unwrap();
        assert_eq!(n, 20 + 4 + 32);
        let back = MediaOpts::decode(&out[..n]).unwrap();
        assert_eq!((back.version, back.streams()), (3, &streams[..]));
        assert_eq!(
            (back.xmit_any(), back.rcv_any()),
            (EKT | ACTIVITY_METRIC, EKT | ACTIVITY_METRIC)
        );
        // A block with option words before its terminator (libtip writes profile words).
        let mut with_words = out[..20].to_vec();
        with_words.extend([
            0, 3, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 1, 0, 0, 0, 1, 0x01, 0, 0, 7, 0xff, 0, 0, 0,
        ]);
        let words = ((with_words.len() / 4) - 1) as u16;
        with_words[2..4].copy_from_slice(&words.to_be_bytes());
        let m = MediaOpts::decode(&with_words).unwrap();
        assert_eq!(
            m.streams(),
            &[StreamOptions {
                ssrc: 0x10,
                xmit: 1,
                rcv: 1
            }]
        );
    }

    #[test]
    fn version_2_and_truncated() {
        let mut p = vec![
            0x87, 204, 0, 7, 0, 0, 0, 5, b'x', b'c', b't', b's', 0, 0, 0, 0, 0, 0, 0, 1,
        ];
        p.extend([0, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
        let m = MediaOpts::decode(&p).unwrap();
        assert_eq!(
            (m.version, m.streams()),
            (
                2,
                &[StreamOptions {
                    ssrc: 0,
                    xmit: 1,
                    rcv: 0
                }][..]
            )
        );
        // Version 3 block without its terminator.
        let mut q = p.clone();
        q[21] = 3;
        assert!(matches!(
            MediaOpts::decode(&q),
            Err(TipError::TooShort { .. })
        ));
    }
}

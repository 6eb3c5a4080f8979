//! The TIP/CTMS EKT field: the SRTP/SRTCP authentication tag field subdivided
//! (draft-ietf-avt-srtp-ekt-02 §2.1; seed 002 l.1737-1756; WIRE.md section 2).
//!
//! ```text
//! full : BaseTag(n) | EMK(N) | ROC(4) | ISN(2) | SPI(2, bit 0 = 1)
//! short: BaseTag(n) | 0x00
//! ```
//! The field is parsed from the end of the packet: the last byte says which form it is.
//! The SPI is the 16-bit value signalled in SPIMAP, whose least significant bit is always 1
//! (ekt-spec.md §1.1), so the SPI's own low bit is the "final bit".

use crate::{DecodeError, EncodeError, Spi};

/// Bytes after the EMK in a full tag: ROC(4) + ISN(2) + SPI(2).
pub const FULL_TAG_TRAILER_LEN: usize = 8;
/// The short tag's one byte after the base tag.
pub const SHORT_TAG_TRAILER_LEN: usize = 1;

/// Which form the packet's EKT field has, read from its last byte alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagForm {
    /// Last byte bit 0 = 1.
    Full,
    /// Last byte 0x00.
    Short,
}

/// Reads the form of the EKT field that ends `packet`.
pub fn tag_form(packet: &[u8]) -> Result<TagForm, DecodeError> {
    match packet.last() {
        None => Err(DecodeError::TooShort { have: 0, need: 1 }),
        Some(b) if b & 1 == 1 => Ok(TagForm::Full),
        Some(0) => Ok(TagForm::Short),
        Some(&b) => Err(DecodeError::ReservedBitsSet(b)),
    }
}

/// The SPI in the last two bytes of a packet ending in a full tag.
pub fn peek_spi(packet: &[u8]) -> Result<Spi, DecodeError> {
    let n = packet.len();
    if n < 2 {
        return Err(DecodeError::TooShort { have: n, need: 2 });
    }
    Ok(Spi(u16::from_be_bytes([packet[n - 2], packet[n - 1]])))
}

/// A parsed TIP EKT field, borrowing from the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TipEkt<'a> {
    /// Full tag: carries the sender's encrypted master key.
    Full(FullTag<'a>),
    /// Short tag: the base tag only.
    Short {
        /// The base authentication tag.
        base_tag: &'a [u8],
    },
}

/// The fields of a full TIP EKT tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FullTag<'a> {
    /// The base authentication tag.
    pub base_tag: &'a [u8],
    /// The encrypted master key, E(KEK, MK).
    pub emk: &'a [u8],
    /// The sender's SRTP rollover counter.
    pub roc: u32,
    /// Initial sequence number: the first SEQ under this key, or 0 (ekt-spec.md §3.3).
    pub isn: u16,
    /// The security parameter index.
    pub spi: Spi,
}

/// A parsed field and where it starts: `packet[..start]` is the authenticated portion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// Offset of the first byte of the EKT field (the base tag).
    pub start: usize,
    /// The field.
    pub field: TipEkt<'a>,
}

impl<'a> TipEkt<'a> {
    /// Parses the EKT field ending `packet`. For a full tag `emk_len` is the EMK length of
    /// the SPI's cipher (the caller reads the SPI with [`peek_spi`] and looks up its
    /// parameter set first). `min_start` is the header length: the field may not reach into
    /// it.
    pub fn parse(
        packet: &'a [u8],
        min_start: usize,
        base_tag_len: usize,
        emk_len: usize,
    ) -> Result<Parsed<'a>, DecodeError> {
        let n = packet.len();
        match tag_form(packet)? {
            TagForm::Short => {
                let need = min_start + base_tag_len + SHORT_TAG_TRAILER_LEN;
                if n < need {
                    return Err(DecodeError::TooShort { have: n, need });
                }
                let start = n - base_tag_len - SHORT_TAG_TRAILER_LEN;
                Ok(Parsed {
                    start,
                    field: TipEkt::Short {
                        base_tag: &packet[start..n - 1],
                    },
                })
            }
            TagForm::Full => {
                let field_len = base_tag_len + emk_len + FULL_TAG_TRAILER_LEN;
                let need = min_start + field_len;
                if n < need {
                    return Err(DecodeError::TooShort { have: n, need });
                }
                let start = n - field_len;
                let emk_start = start + base_tag_len;
                let t = emk_start + emk_len;
                Ok(Parsed {
                    start,
                    field: TipEkt::Full(FullTag {
                        base_tag: &packet[start..emk_start],
                        emk: &packet[emk_start..t],
                        roc: u32::from_be_bytes([
                            packet[t],
                            packet[t + 1],
                            packet[t + 2],
                            packet[t + 3],
                        ]),
                        isn: u16::from_be_bytes([packet[t + 4], packet[t + 5]]),
                        spi: Spi(u16::from_be_bytes([packet[t + 6], packet[t + 7]])),
                    }),
                })
            }
        }
    }

    /// The length of the whole field.
    pub fn len(&self) -> usize {
        match self {
            TipEkt::Full(f) => f.base_tag.len() + f.emk.len() + FULL_TAG_TRAILER_LEN,
            TipEkt::Short { base_tag } => base_tag.len() + SHORT_TAG_TRAILER_LEN,
        }
    }

    /// Always false: a field has at least its trailer byte.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Writes the part of a full tag after the base tag: EMK | ROC | ISN | SPI. Returns the
/// bytes written. The SPI must be odd (its low bit is the full-tag flag).
pub fn write_full_trailer(
    out: &mut [u8],
    emk: &[u8],
    roc: u32,
    isn: u16,
    spi: Spi,
) -> Result<usize, EncodeError> {
    if spi.0 & 1 == 0 {
        return Err(EncodeError::InvalidValue("a TIP EKT SPI must be odd"));
    }
    let need = emk.len() + FULL_TAG_TRAILER_LEN;
    if out.len() < need {
        return Err(EncodeError::BufferTooSmall {
            have: out.len(),
            need,
        });
    }
    out[..emk.len()].copy_from_slice(emk);
    let t = &mut out[emk.len()..need];
    t[..4].copy_from_slice(&roc.to_be_bytes());
    t[4..6].copy_from_slice(&isn.to_be_bytes());
    t[6..8].copy_from_slice(&spi.0.to_be_bytes());
    Ok(need)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    // WIRE.md section 3, "full in".
    const FULL_IN: &str = "81701234decafbadcafebabe123451214e55dc4ce79978d88ca4d215949d2402016c2b86db4d3f17ba13ee53c128b0a3642573474b33a2d4b90b8e000000001234a5a5";
    const SHORT_IN: &str =
        "81701235decafbadcafebabe1234512111399ff951c3e036f8de27e9c27ee3e0004c84de539929e5a2728e00";

    #[test]
    fn parses_wire_full_tag() {
        let p = h(FULL_IN);
        assert_eq!(tag_form(&p), Ok(TagForm::Full));
        assert_eq!(peek_spi(&p), Ok(Spi(0xa5a5)));
        let parsed = TipEkt::parse(&p, 16, 10, 16).unwrap();
        assert_eq!(parsed.start, p.len() - 34);
        let TipEkt::Full(f) = parsed.field else {
            panic!("not full")
        };
        assert_eq!(f.base_tag, &h("6c2b86db4d3f17ba13ee")[..]);
        assert_eq!(f.emk, &h("53c128b0a3642573474b33a2d4b90b8e")[..]);
        assert_eq!((f.roc, f.isn, f.spi), (0, 0x1234, Spi(0xa5a5)));
        assert_eq!(parsed.field.len(), 34);
    }

    #[test]
    fn parses_wire_short_tag() {
        let p = h(SHORT_IN);
        let parsed = TipEkt::parse(&p, 16, 10, 16).unwrap();
        assert_eq!(parsed.start, p.len() - 11);
        assert_eq!(
            parsed.field,
            TipEkt::Short {
                base_tag: &h("4c84de539929e5a2728e")[..]
            }
        );
    }

    #[test]
    fn rejects_reserved_bits_and_short_input() {
        assert_eq!(tag_form(&[0x02]), Err(DecodeError::ReservedBitsSet(2)));
        assert_eq!(
            tag_form(&[]),
            Err(DecodeError::TooShort { have: 0, need: 1 })
        );
        assert!(matches!(
            TipEkt::parse(&[0u8; 20], 12, 10, 16),
            Err(DecodeError::TooShort { .. })
        ));
        assert!(matches!(
            TipEkt::parse(&[1u8; 40], 12, 10, 16),
            Err(DecodeError::TooShort { .. })
        ));
    }

    #[test]
    fn writes_full_trailer_and_refuses_even_spi() {
        let mut out = [0u8; 24];
        let emk = h("53c128b0a3642573474b33a2d4b90b8e");
        assert_eq!(
            write_full_trailer(&mut out, &emk, 0, 0x1234, Spi(0xa5a5)),
            Ok(24)
        );
        assert_eq!(&out[..], &h(FULL_IN)[h(FULL_IN).len() - 24..]);
        assert!(write_full_trailer(&mut out, &emk, 0, 0, Spi(0x1234)).is_err());
        assert!(write_full_trailer(&mut out[..10], &emk, 0, 0, Spi(1)).is_err());
    }
}

//! The RFC 8870 EKTField, appended after the SRTP authentication tag and not covered by it
//! (RFC 8870 §4.1; WIRE.md section 4).
//!
//! ```text
//! FullEKTField  = EKTCiphertext | SPI(2) | Epoch(2) | EKTMsgLength(2) | 0x02
//! ShortEKTField = 0x00
//! EKTPlaintext  = SRTPMasterKeyLength(1) | SRTPMasterKey | SSRC(4) | ROC(4)
//! EKTCiphertext = AES-KWP(EKTKey, EKTPlaintext)          (RFC 5649)
//! ```

use zeroize::Zeroize;

use crate::kek::Kek;
use crate::{DecodeError, EncodeError, KeyError, MAX_MASTER_KEY_LEN, Spi};

/// Message type of the ShortEKTField.
pub const SHORT_TYPE: u8 = 0x00;
/// Message type of the FullEKTField.
pub const FULL_TYPE: u8 = 0x02;
/// SPI(2) | Epoch(2) | EKTMsgLength(2) | type(1).
pub const FULL_TRAILER_LEN: usize = 7;
/// The shortest AES-KWP output (RFC 5649 §4.1: two 64-bit blocks).
const MIN_CIPHERTEXT_LEN: usize = 16;

/// A parsed EKTField, borrowing from the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EktField<'a> {
    /// ShortEKTField: no key.
    Short,
    /// FullEKTField.
    Full(FullField<'a>),
}

/// The fields of a FullEKTField.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FullField<'a> {
    /// The wrapped EKTPlaintext.
    pub ciphertext: &'a [u8],
    /// Selects the EKTKey, cipher and master salt.
    pub spi: Spi,
    /// Counts the keys this SSRC sent under the SPI.
    pub epoch: u16,
}

/// A parsed field and where it starts: `packet[..start]` is the SRTP packet proper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// Offset of the field's first byte.
    pub start: usize,
    /// The field.
    pub field: EktField<'a>,
}

/// Parses the EKTField that ends `packet` (RFC 8870 §4.1). Unknown message types are
/// refused, including 0x01, reserved for legacy implementations.
pub fn parse(packet: &[u8]) -> Result<Parsed<'_>, DecodeError> {
    let n = packet.len();
    match packet.last() {
        None => Err(DecodeError::TooShort { have: 0, need: 1 }),
        Some(&SHORT_TYPE) => Ok(Parsed {
            start: n - 1,
            field: EktField::Short,
        }),
        Some(&FULL_TYPE) => {
            if n < FULL_TRAILER_LEN {
                return Err(DecodeError::TooShort {
                    have: n,
                    need: FULL_TRAILER_LEN,
                });
            }
            let len = usize::from(u16::from_be_bytes([packet[n - 3], packet[n - 2]]));
            if len < FULL_TRAILER_LEN + MIN_CIPHERTEXT_LEN
                || !(len - FULL_TRAILER_LEN).is_multiple_of(8)
            {
                return Err(DecodeError::InvalidLength(len));
            }
            if len > n {
                return Err(DecodeError::TooShort { have: n, need: len });
            }
            let start = n - len;
            Ok(Parsed {
                start,
                field: EktField::Full(FullField {
                    ciphertext: &packet[start..n - FULL_TRAILER_LEN],
                    spi: Spi(u16::from_be_bytes([packet[n - 7], packet[n - 6]])),
                    epoch: u16::from_be_bytes([packet[n - 5], packet[n - 4]]),
                }),
            })
        }
        Some(&t) => Err(DecodeError::UnknownMessageType(t)),
    }
}

/// The EKTPlaintext: the sender's master key, SSRC and ROC. Zeroized on drop.
#[derive(Clone)]
pub struct EktPlaintext {
    key: [u8; MAX_MASTER_KEY_LEN],
    key_len: usize,
    /// The SSRC the key is for; must equal the packet's (RFC 8870 §4.3.2 step 5).
    pub ssrc: u32,
    /// The sender's rollover counter.
    pub roc: u32,
}

impl std::fmt::Debug for EktPlaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EktPlaintext")
            .field("ssrc", &self.ssrc)
            .field("roc", &self.roc)
            .finish_non_exhaustive()
    }
}

impl Drop for EktPlaintext {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl EktPlaintext {
    /// A plaintext for `master_key` (1..=32 bytes).
    pub fn new(master_key: &[u8], ssrc: u32, roc: u32) -> Result<Self, KeyError> {
        if master_key.is_empty() || master_key.len() > MAX_MASTER_KEY_LEN {
            return Err(KeyError::BadKeyLength(master_key.len()));
        }
        let mut key = [0u8; MAX_MASTER_KEY_LEN];
        key[..master_key.len()].copy_from_slice(master_key);
        Ok(Self {
            key,
            key_len: master_key.len(),
            ssrc,
            roc,
        })
    }

    /// The master key.
    pub fn master_key(&self) -> &[u8] {
        &self.key[..self.key_len]
    }

    fn encoded_len(&self) -> usize {
        1 + self.key_len + 8
    }

    fn encode(&self, out: &mut [u8; 1 + MAX_MASTER_KEY_LEN + 8]) -> usize {
        let n = self.key_len;
        out[0] = n as u8;
        out[1..1 + n].copy_from_slice(self.master_key());
        out[1 + n..5 + n].copy_from_slice(&self.ssrc.to_be_bytes());
        out[5 + n..9 + n].copy_from_slice(&self.roc.to_be_bytes());
        self.encoded_len()
    }

    fn decode(bytes: &[u8]) -> Result<Self, KeyError> {
        let (&len, rest) = bytes.split_first().ok_or(KeyError::MalformedPlaintext)?;
        let len = usize::from(len);
        if len == 0 || len > MAX_MASTER_KEY_LEN || rest.len() != len + 8 {
            return Err(KeyError::MalformedPlaintext);
        }
        let word = |i: usize| u32::from_be_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
        Self::new(&rest[..len], word(len), word(len + 4))
    }
}

/// Writes a FullEKTField for `plaintext` under `kek` (an AES-KWP key) into `out`.
pub fn write_full(
    kek: &Kek,
    plaintext: &EktPlaintext,
    spi: Spi,
    epoch: u16,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    let mut pt = [0u8; 1 + MAX_MASTER_KEY_LEN + 8];
    let pt_len = plaintext.encode(&mut pt);
    let ct_len = kek
        .cipher()
        .wrapped_len(pt_len)
        .ok_or(EncodeError::InvalidValue(
            "EKT cipher cannot wrap the plaintext",
        ))?;
    let total = ct_len + FULL_TRAILER_LEN;
    if out.len() < total {
        pt.zeroize();
        return Err(EncodeError::BufferTooSmall {
            have: out.len(),
            need: total,
        });
    }
    let wrapped = kek.wrap(&pt[..pt_len], &mut out[..ct_len]);
    pt.zeroize();
    wrapped.map_err(|_| EncodeError::InvalidValue("EKT cipher cannot wrap the plaintext"))?;
    let t = &mut out[ct_len..total];
    t[0..2].copy_from_slice(&spi.0.to_be_bytes());
    t[2..4].copy_from_slice(&epoch.to_be_bytes());
    t[4..6].copy_from_slice(&(total as u16).to_be_bytes());
    t[6] = FULL_TYPE;
    Ok(total)
}

/// Unwraps a FullEKTField's ciphertext (RFC 8870 §4.3.2 steps 3-4). The caller checks the
/// SSRC against the packet's and the epoch with [`crate::epoch::EpochTracker`].
pub fn unwrap(kek: &Kek, field: &FullField<'_>) -> Result<EktPlaintext, KeyError> {
    let mut pt = [0u8; 64];
    let out = pt
        .get_mut(..field.ciphertext.len().saturating_sub(8))
        .ok_or(KeyError::MalformedPlaintext)?;
    let n = kek.unwrap(field.ciphertext, out);
    let r = n.and_then(|n| EktPlaintext::decode(&pt[..n]));
    pt.zeroize();
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kek::EktCipher;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    // WIRE.md section 4.
    const FULL: &str = "72b23f54f600d0fd7b495d358beec11fb0ca0d7b32cfe2653d5343fa19189dfecc8e5c4b887f877d12340000002f02";

    fn kek() -> Kek {
        Kek::new(EktCipher::AesKwp, &h("000102030405060708090a0b0c0d0e0f")).unwrap()
    }

    #[test]
    fn writes_wire_vector() {
        let pt = EktPlaintext::new(&h("e1f97a0d3e018be0d64fa32c06de4139"), 0xcafebabe, 0).unwrap();
        let mut out = [0u8; 64];
        let n = write_full(&kek(), &pt, Spi(0x1234), 0, &mut out).unwrap();
        assert_eq!(n, 47);
        assert_eq!(hex::encode(&out[..n]), FULL);
    }

    #[test]
    fn parses_and_unwraps_wire_vector() {
        let mut packet = h("800f1234decafbadcafebabe");
        packet.extend(h(FULL));
        let p = parse(&packet).unwrap();
        assert_eq!(p.start, 12);
        let EktField::Full(f) = p.field else {
            panic!("not full")
        };
        assert_eq!((f.spi, f.epoch, f.ciphertext.len()), (Spi(0x1234), 0, 40));
        let pt = unwrap(&kek(), &f).unwrap();
        assert_eq!(pt.master_key(), &h("e1f97a0d3e018be0d64fa32c06de4139")[..]);
        assert_eq!((pt.ssrc, pt.roc), (0xcafebabe, 0));
        assert!(!format!("{pt:?}").contains("e1f9"));
    }

    #[test]
    fn short_and_unknown_types() {
        assert_eq!(
            parse(&[9, 9, 0]).unwrap(),
            Parsed {
                start: 2,
                field: EktField::Short
            }
        );
        assert_eq!(parse(&[9, 1]), Err(DecodeError::UnknownMessageType(1)));
        assert_eq!(
            parse(&[9, 0xff]),
            Err(DecodeError::UnknownMessageType(0xff))
        );
        assert_eq!(parse(&[]), Err(DecodeError::TooShort { have: 0, need: 1 }));
    }

    #[test]
    fn bad_lengths_are_refused() {
        let mut f = h(FULL);
        let n = f.len();
        f[n - 2] = 0x37; // 55 = 7 + 48, more than the 47 bytes available
        assert_eq!(parse(&f), Err(DecodeError::TooShort { have: 47, need: 55 }));
        f[n - 2] = 0x2e; // 46: ciphertext not a multiple of 8
        assert_eq!(parse(&f), Err(DecodeError::InvalidLength(46)));
        f[n - 2] = 0x08;
        assert_eq!(parse(&f), Err(DecodeError::InvalidLength(8)));
        assert!(matches!(parse(&[0, 2]), Err(DecodeError::TooShort { .. })));
    }

    #[test]
    fn tampered_ciphertext_fails_integrity() {
        let mut f = h(FULL);
        f[3] ^= 0x80;
        let EktField::Full(full) = parse(&f).unwrap().field else {
            panic!()
        };
        assert_eq!(
            unwrap(&kek(), &full).unwrap_err(),
            KeyError::IntegrityCheckFailed
        );
    }

    #[test]
    fn aes256_ektkey_round_trip() {
        let kek = Kek::new(EktCipher::AesKwp, &[3u8; 32]).unwrap();
        let pt = EktPlaintext::new(&[5u8; 32], 1, 2).unwrap();
        let mut out = [0u8; 64];
        let n = write_full(&kek, &pt, Spi(2), 9, &mut out).unwrap();
        // 1 + 32 + 8 = 41 plaintext bytes wrap to 48 + 8 = 56 (RFC 5649 §4.1).
        assert_eq!(n, 56 + 7);
        let EktField::Full(f) = parse(&out[..n]).unwrap().field else {
            panic!()
        };
        let back = unwrap(&kek, &f).unwrap();
        assert_eq!(
            (back.master_key(), back.ssrc, back.roc, f.epoch),
            (&[5u8; 32][..], 1, 2, 9)
        );
    }
}

//! Key-encrypting keys and the EMK ciphers.
//!
//! - TIP EKT profile 1: AES-128-ECB of a 16-byte master key (draft-ietf-avt-srtp-ekt-02 §2.4,
//!   the default cipher; the only one libtip's SPIMAP accepts).
//! - TIP EKT profile 2: AES Key Wrap, RFC 3394 (KEK of 128, 192 or 256 bits).
//! - RFC 8870 §4.3: AES Key Wrap with padding, RFC 5649 (KEK of 128 or 256 bits).

use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use aes::{Aes128, Block};
use aes_kw::{KwAes128, KwAes192, KwAes256, KwpAes128, KwpAes256};

use crate::KeyError;

/// The cipher that encrypts master keys under a KEK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EktCipher {
    /// AES-128 in ECB mode over exactly one 16-byte key (TIP EKT profile 1).
    AesEcb128,
    /// AES Key Wrap, RFC 3394 (TIP EKT profile 2).
    AesKw,
    /// AES Key Wrap with padding, RFC 5649 (RFC 8870).
    AesKwp,
}

impl EktCipher {
    /// The cipher for a TIP SPIMAP "EKT protection profile" (WIRE.md section 5).
    pub fn from_tip_profile(profile: u8) -> Option<Self> {
        match profile {
            1 => Some(Self::AesEcb128),
            2 => Some(Self::AesKw),
            _ => None,
        }
    }

    /// The TIP SPIMAP profile number, where one exists.
    pub fn tip_profile(self) -> Option<u8> {
        match self {
            Self::AesEcb128 => Some(1),
            Self::AesKw => Some(2),
            Self::AesKwp => None,
        }
    }

    /// The ciphertext length for a key of `key_len` bytes, or `None` if the cipher cannot
    /// wrap a key of that length.
    pub fn wrapped_len(self, key_len: usize) -> Option<usize> {
        match self {
            Self::AesEcb128 => (key_len == 16).then_some(16),
            // RFC 3394 §2: n >= 2 blocks of 64 bits.
            Self::AesKw => (key_len >= 16 && key_len.is_multiple_of(8)).then_some(key_len + 8),
            // RFC 5649 §4.1: 8 * ceil(m / 8) + 8, at least 16.
            Self::AesKwp => (key_len >= 1).then(|| key_len.div_ceil(8) * 8 + 8),
        }
    }

    /// The plaintext length of a wrapped key of `wrapped_len` bytes, where the cipher fixes
    /// it (ECB, KW). For KWP the length is inside the ciphertext.
    pub fn unwrapped_len(self, wrapped_len: usize) -> Option<usize> {
        match self {
            Self::AesEcb128 => (wrapped_len == 16).then_some(16),
            Self::AesKw => {
                (wrapped_len >= 24 && wrapped_len.is_multiple_of(8)).then(|| wrapped_len - 8)
            }
            Self::AesKwp => None,
        }
    }
}

enum Keyed {
    Ecb128(Aes128),
    Kw128(KwAes128),
    Kw192(KwAes192),
    Kw256(KwAes256),
    Kwp128(KwpAes128),
    Kwp256(KwpAes256),
}

/// A key-encrypting key with its key schedule. The schedule is zeroized on drop (the `aes`
/// and `aes-kw` types implement `ZeroizeOnDrop`). `Debug` shows the cipher only.
pub struct Kek {
    cipher: EktCipher,
    keyed: Keyed,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

impl Kek {
    /// Keys `cipher` with `key`.
    pub fn new(cipher: EktCipher, key: &[u8]) -> Result<Self, KeyError> {
        let bad = || KeyError::BadKekLength(key.len());
        let keyed = match (cipher, key.len()) {
            (EktCipher::AesEcb128, 16) => {
                Keyed::Ecb128(Aes128::new_from_slice(key).map_err(|_| bad())?)
            }
            (EktCipher::AesKw, 16) => {
                Keyed::Kw128(KwAes128::new_from_slice(key).map_err(|_| bad())?)
            }
            (EktCipher::AesKw, 24) => {
                Keyed::Kw192(KwAes192::new_from_slice(key).map_err(|_| bad())?)
            }
            (EktCipher::AesKw, 32) => {
                Keyed::Kw256(KwAes256::new_from_slice(key).map_err(|_| bad())?)
            }
            (EktCipher::AesKwp, 16) => {
                Keyed::Kwp128(KwpAes128::new_from_slice(key).map_err(|_| bad())?)
            }
            (EktCipher::AesKwp, 32) => {
                Keyed::Kwp256(KwpAes256::new_from_slice(key).map_err(|_| bad())?)
            }
            _ => return Err(bad()),
        };
        Ok(Self { cipher, keyed })
    }

    /// The cipher this key is for.
    pub fn cipher(&self) -> EktCipher {
        self.cipher
    }

    /// Encrypts `key` into `out`; returns the ciphertext length.
    pub fn wrap(&self, key: &[u8], out: &mut [u8]) -> Result<usize, KeyError> {
        let len = self
            .cipher
            .wrapped_len(key.len())
            .ok_or(KeyError::BadKeyLength(key.len()))?;
        let out = out.get_mut(..len).ok_or(KeyError::BufferTooSmall)?;
        let done = match &self.keyed {
            Keyed::Ecb128(aes) => {
                let mut block =
                    Block::try_from(key).map_err(|_| KeyError::BadKeyLength(key.len()))?;
                aes.encrypt_block(&mut block);
                out.copy_from_slice(&block);
                Ok(len)
            }
            Keyed::Kw128(k) => k.wrap_key(key, out).map(<[u8]>::len),
            Keyed::Kw192(k) => k.wrap_key(key, out).map(<[u8]>::len),
            Keyed::Kw256(k) => k.wrap_key(key, out).map(<[u8]>::len),
            Keyed::Kwp128(k) => k.wrap_key(key, out).map(<[u8]>::len),
            Keyed::Kwp256(k) => k.wrap_key(key, out).map(<[u8]>::len),
        };
        done.map_err(|_| KeyError::BadKeyLength(key.len()))
    }

    /// Decrypts `wrapped` into `out`; returns the key length. An integrity failure (KW, KWP)
    /// means a wrong KEK or a corrupted ciphertext. ECB has no integrity check: a wrong
    /// key is caught by the tag the recovered key must verify.
    pub fn unwrap(&self, wrapped: &[u8], out: &mut [u8]) -> Result<usize, KeyError> {
        let bad_len = KeyError::BadCiphertextLength(wrapped.len());
        match &self.keyed {
            Keyed::Ecb128(aes) => {
                let mut block = Block::try_from(wrapped).map_err(|_| bad_len)?;
                let out = out.get_mut(..16).ok_or(KeyError::BufferTooSmall)?;
                aes.decrypt_block(&mut block);
                out.copy_from_slice(&block);
                Ok(16)
            }
            keyed => {
                if wrapped.len() < 16 || !wrapped.len().is_multiple_of(8) {
                    return Err(bad_len);
                }
                let cap = wrapped.len() - 8;
                let out = out.get_mut(..cap).ok_or(KeyError::BufferTooSmall)?;
                let r = match keyed {
                    Keyed::Kw128(k) => k.unwrap_key(wrapped, out).map(<[u8]>::len),
                    Keyed::Kw192(k) => k.unwrap_key(wrapped, out).map(<[u8]>::len),
                    Keyed::Kw256(k) => k.unwrap_key(wrapped, out).map(<[u8]>::len),
                    Keyed::Kwp128(k) => k.unwrap_key(wrapped, out).map(<[u8]>::len),
                    Keyed::Kwp256(k) => k.unwrap_key(wrapped, out).map(<[u8]>::len),
                    Keyed::Ecb128(_) => unreachable!("handled above"),
                };
                r.map_err(|_| KeyError::IntegrityCheckFailed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn ecb_emk_matches_wire_vector() {
        // WIRE.md section 2: EMK = AES-128-ECB(KEK, MK).
        let kek = Kek::new(EktCipher::AesEcb128, &h("000102030405060708090a0b0c0d0e0f")).unwrap();
        let mk = h("e1f97a0d3e018be0d64fa32c06de4139");
        let mut emk = [0u8; 16];
        assert_eq!(kek.wrap(&mk, &mut emk), Ok(16));
        assert_eq!(emk.to_vec(), h("53c128b0a3642573474b33a2d4b90b8e"));
        let mut back = [0u8; 32];
        assert_eq!(kek.unwrap(&emk, &mut back), Ok(16));
        assert_eq!(&back[..16], &mk[..]);
    }

    #[test]
    fn rfc3394_section_4_1_vector() {
        // RFC 3394 §4.1: wrap 128 bits of key data with a 128-bit KEK.
        let kek = Kek::new(EktCipher::AesKw, &h("000102030405060708090A0B0C0D0E0F")).unwrap();
        let mut out = [0u8; 24];
        assert_eq!(
            kek.wrap(&h("00112233445566778899AABBCCDDEEFF"), &mut out),
            Ok(24)
        );
        assert_eq!(
            out.to_vec(),
            h("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5")
        );
        let mut back = [0u8; 16];
        assert_eq!(kek.unwrap(&out, &mut back), Ok(16));
        out[3] ^= 1;
        assert_eq!(
            kek.unwrap(&out, &mut back),
            Err(KeyError::IntegrityCheckFailed)
        );
    }

    #[test]
    fn rfc5649_section_6_vectors() {
        // RFC 5649 §6: 192-bit KEK is not an RFC 8870 size; the 20-byte and 7-byte
        // plaintexts are checked through a 256-bit round trip and the length rule instead.
        assert_eq!(EktCipher::AesKwp.wrapped_len(25), Some(40));
        assert_eq!(EktCipher::AesKwp.wrapped_len(7), Some(16));
        assert_eq!(EktCipher::AesKwp.wrapped_len(20), Some(32));
        let kek = Kek::new(EktCipher::AesKwp, &[7u8; 32]).unwrap();
        let mut out = [0u8; 40];
        assert_eq!(kek.wrap(&[1u8; 25], &mut out), Ok(40));
        let mut back = [0u8; 32];
        assert_eq!(kek.unwrap(&out, &mut back), Ok(25));
        assert_eq!(&back[..25], &[1u8; 25]);
    }

    #[test]
    fn refuses_bad_lengths() {
        assert_eq!(
            Kek::new(EktCipher::AesEcb128, &[0; 32]).unwrap_err(),
            KeyError::BadKekLength(32)
        );
        assert!(Kek::new(EktCipher::AesKwp, &[0; 24]).is_err());
        let kek = Kek::new(EktCipher::AesEcb128, &[0; 16]).unwrap();
        assert_eq!(
            kek.wrap(&[0; 32], &mut [0; 32]),
            Err(KeyError::BadKeyLength(32))
        );
        assert_eq!(
            kek.unwrap(&[0; 15], &mut [0; 32]),
            Err(KeyError::BadCiphertextLength(15))
        );
        let kw = Kek::new(EktCipher::AesKw, &[0; 16]).unwrap();
        assert_eq!(
            kw.unwrap(&[0; 17], &mut [0; 32]),
            Err(KeyError::BadCiphertextLength(17))
        );
        assert_eq!(
            kw.unwrap(&[0; 24], &mut [0; 4]),
            Err(KeyError::BufferTooSmall)
        );
        assert!(format!("{kw:?}").contains("AesKw"));
    }
}

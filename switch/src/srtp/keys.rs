//! Master keys and the per-direction session transforms derived from them.

use aes::Aes128;
use aes::cipher::KeyInit;
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use zeroize::Zeroize;

use super::auth::HmacSha1Key;
use super::kdf::{Label, derive};
use super::{SrtpError, Suite};

/// An SRTP master key and salt. Zeroized on drop; `Debug` prints no key material.
#[derive(Clone)]
pub struct MasterKey {
    key: [u8; 32],
    key_len: usize,
    salt: [u8; 14],
    salt_len: usize,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey")
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.key.zeroize();
        self.salt.zeroize();
    }
}

impl MasterKey {
    /// A master key for `suite`; lengths must be the suite's.
    pub fn new(suite: Suite, key: &[u8], salt: &[u8]) -> Result<Self, SrtpError> {
        if key.len() != suite.key_len() || salt.len() != suite.salt_len() {
            return Err(SrtpError::BadKeyLength);
        }
        let mut k = [0u8; 32];
        k[..key.len()].copy_from_slice(key);
        let mut s = [0u8; 14];
        s[..salt.len()].copy_from_slice(salt);
        Ok(Self {
            key: k,
            key_len: key.len(),
            salt: s,
            salt_len: salt.len(),
        })
    }

    /// The key bytes.
    pub fn key(&self) -> &[u8] {
        &self.key[..self.key_len]
    }

    /// The salt bytes.
    pub fn salt(&self) -> &[u8] {
        &self.salt[..self.salt_len]
    }
}

/// Session keys for one direction of one stream kind (SRTP or SRTCP).
// The AES-CM variant is the forwarding hot path's key: it stays inline on purpose (no
// allocation, no pointer chase); the rare GCM ciphers are boxed.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Transform {
    AesCm {
        aes: Aes128,
        salt: [u8; 14],
        auth: HmacSha1Key,
    },
    Gcm128 {
        aead: Box<Aes128Gcm>,
        /// The session key, kept for the forwarding path's GHASH key (H = E_K(0)).
        key: [u8; 16],
        salt: [u8; 12],
    },
    Gcm256 {
        aead: Box<Aes256Gcm>,
        key: [u8; 32],
        salt: [u8; 12],
    },
}

impl Drop for Transform {
    fn drop(&mut self) {
        match self {
            Self::AesCm { salt, .. } => salt.zeroize(),
            Self::Gcm128 { key, salt, .. } => {
                key.zeroize();
                salt.zeroize();
            }
            Self::Gcm256 { key, salt, .. } => {
                key.zeroize();
                salt.zeroize();
            }
        }
    }
}

impl Transform {
    /// Derives the SRTP (`rtcp = false`) or SRTCP session transform (RFC 3711 §4.3).
    pub(crate) fn derive(suite: Suite, master: &MasterKey, rtcp: bool) -> Self {
        let (l_enc, l_auth, l_salt) = if rtcp {
            (Label::RtcpEncryption, Label::RtcpAuth, Label::RtcpSalt)
        } else {
            (Label::RtpEncryption, Label::RtpAuth, Label::RtpSalt)
        };
        let (mk, ms) = (master.key(), master.salt());
        match suite {
            Suite::AesCm128HmacSha1_80 | Suite::AesCm128HmacSha1_32 => {
                let mut k_e = [0u8; 16];
                let mut k_a = [0u8; 20];
                let mut k_s = [0u8; 14];
                derive(mk, ms, l_enc, &mut k_e);
                derive(mk, ms, l_auth, &mut k_a);
                derive(mk, ms, l_salt, &mut k_s);
                let t = Self::AesCm {
                    aes: Aes128::new(&k_e.into()),
                    salt: k_s,
                    auth: HmacSha1Key::new(&k_a),
                };
                k_e.zeroize();
                k_a.zeroize();
                k_s.zeroize();
                t
            }
            Suite::AeadAes128Gcm => {
                let mut key = [0u8; 16];
                let mut salt = [0u8; 12];
                derive(mk, ms, l_enc, &mut key);
                derive(mk, ms, l_salt, &mut salt);
                Self::Gcm128 {
                    aead: Box::new(Aes128Gcm::new(&key.into())),
                    key,
                    salt,
                }
            }
            Suite::AeadAes256Gcm => {
                let mut key = [0u8; 32];
                let mut salt = [0u8; 12];
                derive(mk, ms, l_enc, &mut key);
                derive(mk, ms, l_salt, &mut salt);
                Self::Gcm256 {
                    aead: Box::new(Aes256Gcm::new(&key.into())),
                    key,
                    salt,
                }
            }
        }
    }

    /// A GCM transform from session keys (no KDF).
    #[cfg(test)]
    pub(crate) fn gcm_from_session(suite: Suite, key: &[u8], salt: &[u8; 12]) -> Self {
        match suite {
            Suite::AeadAes128Gcm => {
                let key: [u8; 16] = key.try_into().expect("16-byte key");
                Self::Gcm128 {
                    aead: Box::new(Aes128Gcm::new(&key.into())),
                    key,
                    salt: *salt,
                }
            }
            Suite::AeadAes256Gcm => {
                let key: [u8; 32] = key.try_into().expect("32-byte key");
                Self::Gcm256 {
                    aead: Box::new(Aes256Gcm::new(&key.into())),
                    key,
                    salt: *salt,
                }
            }
            _ => panic!("not a GCM suite"),
        }
    }

    /// The HMAC key of an AES-CM transform.
    pub(crate) fn auth(&self) -> Option<&HmacSha1Key> {
        match self {
            Self::AesCm { auth, .. } => Some(auth),
            _ => None,
        }
    }
}

//! EKT parameter sets by SPI (draft-ietf-avt-srtp-ekt-02 §2.1; RFC 8870 §4.2).
//!
//! A parameter set is {KEK, EKT cipher, SRTP profile, master salt}. Each distinct set has a
//! distinct SPI, and an SPI is never remapped to different parameters (ekt-spec.md §3.1):
//! a registry refuses it, even after the SPI was retired.

use std::fmt;

use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::Zeroize;

use crate::kek::{EktCipher, Kek};
use crate::{KeyError, MAX_MASTER_KEY_LEN, MAX_MASTER_SALT_LEN};

/// A security parameter index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Spi(pub u16);

/// The SRTP protection profile of a parameter set, by its DTLS-SRTP registry number
/// (RFC 5764 §4.1.2, RFC 7714 §14.2). TIP SPIMAP uses 1 for AES_CM_128_HMAC_SHA1_80, the
/// same number (WIRE.md section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpProfile {
    /// AES_CM_128_HMAC_SHA1_80 (0x0001).
    AesCm128HmacSha1_80,
    /// AES_CM_128_HMAC_SHA1_32 (0x0002).
    AesCm128HmacSha1_32,
    /// AEAD_AES_128_GCM (0x0007).
    AeadAes128Gcm,
    /// AEAD_AES_256_GCM (0x0008).
    AeadAes256Gcm,
}

impl SrtpProfile {
    /// The profile for a DTLS-SRTP / SPIMAP number.
    pub fn from_code(code: u16) -> Option<Self> {
        match code {
            1 => Some(Self::AesCm128HmacSha1_80),
            2 => Some(Self::AesCm128HmacSha1_32),
            7 => Some(Self::AeadAes128Gcm),
            8 => Some(Self::AeadAes256Gcm),
            _ => None,
        }
    }

    /// The DTLS-SRTP registry number.
    pub fn code(self) -> u16 {
        match self {
            Self::AesCm128HmacSha1_80 => 1,
            Self::AesCm128HmacSha1_32 => 2,
            Self::AeadAes128Gcm => 7,
            Self::AeadAes256Gcm => 8,
        }
    }

    /// Master key length in bytes.
    pub fn master_key_len(self) -> usize {
        match self {
            Self::AeadAes256Gcm => 32,
            _ => 16,
        }
    }

    /// Master salt length in bytes (RFC 3711 112 bits; RFC 7714 96 bits).
    pub fn master_salt_len(self) -> usize {
        match self {
            Self::AeadAes128Gcm | Self::AeadAes256Gcm => 12,
            _ => 14,
        }
    }
}

/// Why a parameter set was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RegistryError {
    /// The SPI is already bound to different parameters.
    #[error("SPI {0:#06x} is already bound to different parameters")]
    Remapped(u16),
    /// TIP EKT SPIs are odd: the low bit is the full-tag flag.
    #[error("SPI {0:#06x} is even; a TIP EKT SPI must be odd")]
    EvenSpi(u16),
    /// The master salt length does not fit the SRTP profile.
    #[error("master salt of {0} bytes does not fit the SRTP profile")]
    BadSaltLength(usize),
    /// The KEK does not fit the cipher.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// One EKT parameter set. Secrets are zeroized on drop and never printed.
pub struct ParameterSet {
    kek: Kek,
    kek_bytes: [u8; MAX_MASTER_KEY_LEN],
    kek_len: usize,
    profile: SrtpProfile,
    salt: [u8; MAX_MASTER_SALT_LEN],
}

impl fmt::Debug for ParameterSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParameterSet")
            .field("cipher", &self.kek.cipher())
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl Drop for ParameterSet {
    fn drop(&mut self) {
        self.kek_bytes.zeroize();
        self.salt.zeroize();
    }
}

impl ParameterSet {
    /// Builds a parameter set; the salt length must be the profile's.
    pub fn new(
        cipher: EktCipher,
        kek: &[u8],
        profile: SrtpProfile,
        salt: &[u8],
    ) -> Result<Self, RegistryError> {
        if salt.len() != profile.master_salt_len() {
            return Err(RegistryError::BadSaltLength(salt.len()));
        }
        let keyed = Kek::new(cipher, kek)?;
        let mut kek_bytes = [0u8; MAX_MASTER_KEY_LEN];
        kek_bytes[..kek.len()].copy_from_slice(kek);
        let mut s = [0u8; MAX_MASTER_SALT_LEN];
        s[..salt.len()].copy_from_slice(salt);
        Ok(Self {
            kek: keyed,
            kek_bytes,
            kek_len: kek.len(),
            profile,
            salt: s,
        })
    }

    /// The keyed KEK.
    pub fn kek(&self) -> &Kek {
        &self.kek
    }

    /// The EKT cipher.
    pub fn cipher(&self) -> EktCipher {
        self.kek.cipher()
    }

    /// The SRTP profile.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// The master salt shared by every sender under this SPI.
    pub fn master_salt(&self) -> &[u8] {
        &self.salt[..self.profile.master_salt_len()]
    }

    /// The EMK length this set's cipher produces for its profile's master key.
    pub fn emk_len(&self) -> usize {
        self.cipher()
            .wrapped_len(self.profile.master_key_len())
            .expect("every supported cipher wraps every supported master key length")
    }

    /// Same parameters, compared in constant time over the secrets.
    fn same_as(&self, other: &Self) -> bool {
        let same_kek: bool = (self.kek_len == other.kek_len)
            & bool::from(self.kek_bytes[..self.kek_len].ct_eq(&other.kek_bytes[..other.kek_len]));
        same_kek
            & (self.cipher() == other.cipher())
            & (self.profile == other.profile)
            & bool::from(self.salt.ct_eq(&other.salt))
    }
}

struct Entry {
    spi: Spi,
    params: ParameterSet,
    retired: bool,
}

/// The parameter sets known by SPI. Lookups are by linear scan: a meeting has a handful of
/// SPIs (one per media line), and a scan of a few entries beats hashing.
#[derive(Default)]
pub struct SpiRegistry {
    entries: Vec<Entry>,
}

impl fmt::Debug for SpiRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| (e.spi, e.retired)))
            .finish()
    }
}

impl SpiRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Binds `spi` to `params`. Binding the same parameters again is accepted (a
    /// retransmitted SPIMAP); different parameters for a known SPI are refused, even if the
    /// SPI was retired. TIP ciphers require an odd SPI.
    pub fn insert(&mut self, spi: Spi, params: ParameterSet) -> Result<(), RegistryError> {
        if params.cipher() != EktCipher::AesKwp && spi.0 & 1 == 0 {
            return Err(RegistryError::EvenSpi(spi.0));
        }
        if let Some(e) = self.entries.iter().find(|e| e.spi == spi) {
            return if !e.retired && e.params.same_as(&params) {
                Ok(())
            } else {
                Err(RegistryError::Remapped(spi.0))
            };
        }
        self.entries.push(Entry {
            spi,
            params,
            retired: false,
        });
        Ok(())
    }

    /// The live parameter set for `spi`.
    pub fn get(&self, spi: Spi) -> Option<&ParameterSet> {
        self.entries
            .iter()
            .find(|e| e.spi == spi && !e.retired)
            .map(|e| &e.params)
    }

    /// Stops accepting `spi`. The SPI stays reserved: it can never be bound again.
    pub fn retire(&mut self, spi: Spi) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.spi == spi) {
            e.retired = true;
        }
    }

    /// Number of live parameter sets.
    pub fn len(&self) -> usize {
        self.entries.iter().filter(|e| !e.retired).count()
    }

    /// True when no parameter set is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEK: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
    const SALT: [u8; 14] = [
        0x0e, 0xc6, 0x75, 0xad, 0x49, 0x8a, 0xfe, 0xeb, 0xb6, 0x96, 0x0b, 0x3a, 0xab, 0xe6,
    ];

    fn tip_set(kek: &[u8]) -> ParameterSet {
        ParameterSet::new(
            EktCipher::AesEcb128,
            kek,
            SrtpProfile::AesCm128HmacSha1_80,
            &SALT,
        )
        .unwrap()
    }

    #[test]
    fn spi_is_never_remapped() {
        let mut r = SpiRegistry::new();
        r.insert(Spi(0xa5a5), tip_set(&KEK)).unwrap();
        // The same parameters again (a SPIMAP retransmission) are fine.
        r.insert(Spi(0xa5a5), tip_set(&KEK)).unwrap();
        assert_eq!(
            r.insert(Spi(0xa5a5), tip_set(&[9; 16])),
            Err(RegistryError::Remapped(0xa5a5))
        );
        assert_eq!(r.get(Spi(0xa5a5)).unwrap().emk_len(), 16);
        r.retire(Spi(0xa5a5));
        assert!(r.get(Spi(0xa5a5)).is_none());
        assert!(r.is_empty());
        // A retired SPI stays reserved, even for its old parameters.
        assert_eq!(
            r.insert(Spi(0xa5a5), tip_set(&KEK)),
            Err(RegistryError::Remapped(0xa5a5))
        );
    }

    #[test]
    fn tip_spi_must_be_odd_and_salt_must_fit() {
        let mut r = SpiRegistry::new();
        assert_eq!(
            r.insert(Spi(0x1234), tip_set(&KEK)),
            Err(RegistryError::EvenSpi(0x1234))
        );
        let gcm = ParameterSet::new(
            EktCipher::AesKwp,
            &KEK,
            SrtpProfile::AeadAes128Gcm,
            &SALT[..12],
        )
        .unwrap();
        r.insert(Spi(0x1234), gcm).unwrap();
        assert_eq!(r.get(Spi(0x1234)).unwrap().master_salt().len(), 12);
        assert_eq!(r.get(Spi(0x1234)).unwrap().emk_len(), 24);
        assert_eq!(
            ParameterSet::new(EktCipher::AesKwp, &KEK, SrtpProfile::AeadAes128Gcm, &SALT)
                .unwrap_err(),
            RegistryError::BadSaltLength(14)
        );
        assert!(!format!("{r:?}").is_empty());
        assert!(!format!("{:?}", tip_set(&KEK)).contains("00010203"));
    }

    #[test]
    fn profile_codes_round_trip() {
        for code in [1, 2, 7, 8] {
            assert_eq!(SrtpProfile::from_code(code).unwrap().code(), code);
        }
        assert_eq!(SrtpProfile::from_code(3), None);
    }
}

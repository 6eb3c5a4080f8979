//! The SRTP protection profiles mswitch speaks (RFC 3711, RFC 5764 §4.1.2, RFC 7714 §14.2).

use ekt::SrtpProfile;

/// An SRTP protection profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    /// AES_CM_128_HMAC_SHA1_80: TIP's end-to-end suite.
    AesCm128HmacSha1_80,
    /// AES_CM_128_HMAC_SHA1_32: 32-bit SRTP tag; SRTCP keeps 80 bits (RFC 5764 §4.1.2).
    AesCm128HmacSha1_32,
    /// AEAD_AES_128_GCM (RFC 7714).
    AeadAes128Gcm,
    /// AEAD_AES_256_GCM (RFC 7714).
    AeadAes256Gcm,
}

impl Suite {
    /// All suites, strongest first (seeds-switch.md T3a).
    pub const ALL: [Self; 4] = [
        Self::AeadAes256Gcm,
        Self::AeadAes128Gcm,
        Self::AesCm128HmacSha1_80,
        Self::AesCm128HmacSha1_32,
    ];

    /// The SDES crypto-suite name (RFC 4568 §6.2, RFC 7714 §14.2).
    pub fn sdes_name(self) -> &'static str {
        match self {
            Self::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Self::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Self::AeadAes128Gcm => "AEAD_AES_128_GCM",
            Self::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// The suite an SDES crypto-suite name names (case-insensitive).
    pub fn from_sdes_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.sdes_name().eq_ignore_ascii_case(name))
    }

    /// Master (and session) encryption key length.
    pub fn key_len(self) -> usize {
        match self {
            Self::AeadAes256Gcm => 32,
            _ => 16,
        }
    }

    /// Master salt length: 112 bits for AES-CM, 96 bits for GCM (RFC 7714 §12).
    pub fn salt_len(self) -> usize {
        if self.is_aead() { 12 } else { 14 }
    }

    /// True for the AEAD (GCM) suites.
    pub fn is_aead(self) -> bool {
        matches!(self, Self::AeadAes128Gcm | Self::AeadAes256Gcm)
    }

    /// SRTP authentication tag length.
    pub fn srtp_tag_len(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 => 10,
            Self::AesCm128HmacSha1_32 => 4,
            Self::AeadAes128Gcm | Self::AeadAes256Gcm => 16,
        }
    }

    /// SRTCP authentication tag length (80 bits for both HMAC suites).
    pub fn srtcp_tag_len(self) -> usize {
        if self.is_aead() { 16 } else { 10 }
    }

    /// The matching EKT/SPIMAP profile.
    pub fn profile(self) -> SrtpProfile {
        match self {
            Self::AesCm128HmacSha1_80 => SrtpProfile::AesCm128HmacSha1_80,
            Self::AesCm128HmacSha1_32 => SrtpProfile::AesCm128HmacSha1_32,
            Self::AeadAes128Gcm => SrtpProfile::AeadAes128Gcm,
            Self::AeadAes256Gcm => SrtpProfile::AeadAes256Gcm,
        }
    }

    /// The suite of an EKT/SPIMAP profile.
    pub fn from_profile(p: SrtpProfile) -> Self {
        match p {
            SrtpProfile::AesCm128HmacSha1_80 => Self::AesCm128HmacSha1_80,
            SrtpProfile::AesCm128HmacSha1_32 => Self::AesCm128HmacSha1_32,
            SrtpProfile::AeadAes128Gcm => Self::AeadAes128Gcm,
            SrtpProfile::AeadAes256Gcm => Self::AeadAes256Gcm,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdes_names_round_trip() {
        for s in Suite::ALL {
            assert_eq!(Suite::from_sdes_name(s.sdes_name()), Some(s));
        }
        assert_eq!(
            Suite::from_sdes_name("aes_cm_128_hmac_sha1_80"),
            Some(Suite::AesCm128HmacSha1_80)
        );
        assert_eq!(Suite::from_sdes_name("AES_256_CM_HMAC_SHA1_80"), None);
    }
}

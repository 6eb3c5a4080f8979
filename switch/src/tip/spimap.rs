//! SPIMAP (subtype 12): the meeting's EKT group parameters {SPI, SRTP profile, EKT profile,
//! salt, KEK} (WIRE.md section 5; ekt-spec.md §5.4). It travels only inside per-hop
//! SRTCP, which is what protects the cleartext KEK (ekt-spec.md §5.7).

use zeroize::Zeroize;

use super::header::HEADER_LEN;
use super::{AppHeader, TipError};

/// SPIMAP subtype.
pub const SUBTYPE: u8 = 12;
/// SPI(2) SRTP profile(1) EKT profile(1) salt(14) KEK(16) pad(2).
const BODY_LEN: usize = 36;
/// Whole packet: RTCP length field 13.
pub const LEN: usize = HEADER_LEN + BODY_LEN;

/// A SPIMAP request. The KEK is zeroized on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Spimap {
    /// Sender SSRC and NTP timestamp.
    pub header: AppHeader,
    /// The SPI (mswitch always sends an odd one: its low bit is the EKT full-tag flag).
    pub spi: u16,
    /// SRTP protection profile (1 = AES_CM_128_HMAC_SHA1_80).
    pub srtp_profile: u8,
    /// EKT protection profile (1 = AES-128-ECB).
    pub ekt_profile: u8,
    /// SRTP master salt shared by every sender.
    pub salt: [u8; 14],
    /// The key-encrypting key.
    pub kek: [u8; 16],
}

impl std::fmt::Debug for Spimap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spimap")
            .field("header", &self.header)
            .field("spi", &self.spi)
            .field("srtp_profile", &self.srtp_profile)
            .field("ekt_profile", &self.ekt_profile)
            .finish_non_exhaustive()
    }
}

impl Drop for Spimap {
    fn drop(&mut self) {
        self.kek.zeroize();
        self.salt.zeroize();
    }
}

impl Spimap {
    /// Decodes a SPIMAP request.
    pub fn decode(buf: &[u8]) -> Result<Self, TipError> {
        let (header, body) = AppHeader::decode(buf)?;
        if header.subtype != SUBTYPE {
            return Err(TipError::UnexpectedSubtype(header.subtype));
        }
        if body.len() < BODY_LEN {
            return Err(TipError::TooShort {
                have: HEADER_LEN + body.len(),
                need: LEN,
            });
        }
        Ok(Self {
            header,
            spi: u16::from_be_bytes([body[0], body[1]]),
            srtp_profile: body[2],
            ekt_profile: body[3],
            salt: body[4..18].try_into().expect("14 bytes"),
            kek: body[18..34].try_into().expect("16 bytes"),
        })
    }

    /// Encodes into `out`; returns the length ([`LEN`]).
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, TipError> {
        let header = AppHeader {
            subtype: SUBTYPE,
            ..self.header
        };
        let h = header.encode(BODY_LEN, out)?;
        let body = &mut out[h..LEN];
        body[0..2].copy_from_slice(&self.spi.to_be_bytes());
        body[2] = self.srtp_profile;
        body[3] = self.ekt_profile;
        body[4..18].copy_from_slice(&self.salt);
        body[18..34].copy_from_slice(&self.kek);
        body[34..36].fill(0);
        Ok(LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // WIRE.md section 5: libtip's test vector (SSRC 0, NTP 0, SPI 0x1234).
    const VECTOR: &str = "8ccc000d0000000078637473000000000000000012340101\
                          1234567890abcdeffedcba0987651234567890abcdeffedcba09876543210000";

    #[test]
    fn libtip_spimap_vector() {
        let bytes = hex::decode(VECTOR).unwrap();
        let s = Spimap::decode(&bytes).unwrap();
        assert_eq!((s.header.subtype, s.header.ssrc, s.header.ntp), (12, 0, 0));
        assert_eq!((s.spi, s.srtp_profile, s.ekt_profile), (0x1234, 1, 1));
        assert_eq!(hex::encode(s.salt), "1234567890abcdeffedcba098765");
        assert_eq!(hex::encode(s.kek), "1234567890abcdeffedcba0987654321");
        let mut out = [0u8; 64];
        assert_eq!(s.encode(&mut out), Ok(LEN));
        assert_eq!(hex::encode(&out[..LEN]), VECTOR);
        assert!(!format!("{s:?}").contains("1234567890"));
    }

    #[test]
    fn malformed_spimaps_are_errors() {
        let bytes = hex::decode(VECTOR).unwrap();
        assert!(matches!(
            Spimap::decode(&bytes[..40]),
            Err(TipError::BadLength(13))
        ));
        let mut not_tip = bytes.clone();
        not_tip[8] = b'X';
        assert_eq!(Spimap::decode(&not_tip), Err(TipError::NotTip));
        let mut other = bytes.clone();
        other[0] = 0x81;
        assert_eq!(Spimap::decode(&other), Err(TipError::UnexpectedSubtype(1)));
        let mut short_len = bytes.clone();
        short_len[3] = 5;
        assert!(matches!(
            Spimap::decode(&short_len),
            Err(TipError::TooShort { .. })
        ));
        assert_eq!(
            Spimap::decode(&bytes).unwrap().encode(&mut [0u8; 40]),
            Err(TipError::BufferTooSmall)
        );
    }
}

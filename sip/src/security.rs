//! The switch's Device Security modes (seeds-switch.md R11, T6) and what each accepts.
//!
//! | mode | signalling | media keying |
//! |---|---|---|
//! | Encrypted with SDP keys | TLS | SDES `a=crypto` on RTP/SAVP(F) |
//! | Encrypted without SDP keys | TLS | DTLS-SRTP (`a=fingerprint`) |
//! | Non-Secure | any | none (RTP/AVP) |
//! | Non-Secure with media encryption | any | DTLS-SRTP only: keys never go in clear SDP (seed 004 l.137) |
//!
//! An offer the mode cannot accept gets 488 Not Acceptable Here (RFC 3264 §6, T6).

use crate::sdp::{CryptoLine, MediaOffer, Profile, Setup, answer_setup};

/// The Device Security setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSecurity {
    /// SIP over TLS, SRTP keyed by SDES (Unified CM 7.0 and later).
    EncryptedWithSdpKeys,
    /// SIP over TLS, SRTP keyed by DTLS-SRTP in the media path (Unified CM 6.1).
    EncryptedWithoutSdpKeys,
    /// Clear signalling, plain RTP.
    NonSecure,
    /// Clear signalling, SRTP keyed by DTLS-SRTP.
    NonSecureMediaEncryption,
}

/// How one accepted media line is keyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keying {
    /// SDES with the offered line chosen (our answer carries our own key with its tag).
    Sdes(CryptoLine),
    /// DTLS-SRTP: the peer's fingerprint to check, and our role.
    Dtls {
        /// `sha-256 AB:CD:...` from the offer.
        peer_fingerprint: String,
        /// Our a=setup.
        setup: Setup,
    },
    /// Plain RTP.
    Plain,
}

/// Why an offer or a request is refused with 488.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotAcceptable {
    /// The mode needs SIP over TLS.
    #[error("this device security mode requires SIP over TLS")]
    NeedsTls,
    /// SDES needs an RTP/SAVP(F) line with an a=crypto suite we support.
    #[error("no acceptable a=crypto on an RTP/SAVP line")]
    NoCrypto,
    /// DTLS-SRTP needs a secure profile and a=fingerprint.
    #[error("no a=fingerprint for DTLS-SRTP")]
    NoFingerprint,
    /// Non-secure media needs RTP/AVP.
    #[error("secure media offered to a non-secure switch")]
    SecureOffered,
    /// The profile is not one the switch knows.
    #[error("unsupported transport profile")]
    Profile,
}

impl DeviceSecurity {
    /// From the configuration value: `encrypted-with-sdp-keys`, `encrypted-without-sdp-keys`,
    /// `non-secure`, `non-secure-media-encryption`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "encrypted-with-sdp-keys" => Self::EncryptedWithSdpKeys,
            "encrypted-without-sdp-keys" => Self::EncryptedWithoutSdpKeys,
            "non-secure" => Self::NonSecure,
            "non-secure-media-encryption" => Self::NonSecureMediaEncryption,
            _ => return None,
        })
    }

    /// The configuration value (the inverse of [`DeviceSecurity::parse`]).
    pub fn name(self) -> &'static str {
        match self {
            Self::EncryptedWithSdpKeys => "encrypted-with-sdp-keys",
            Self::EncryptedWithoutSdpKeys => "encrypted-without-sdp-keys",
            Self::NonSecure => "non-secure",
            Self::NonSecureMediaEncryption => "non-secure-media-encryption",
        }
    }

    /// Whether SIP must come over TLS.
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            Self::EncryptedWithSdpKeys | Self::EncryptedWithoutSdpKeys
        )
    }

    /// Whether media is SRTP.
    pub fn secure_media(self) -> bool {
        self != Self::NonSecure
    }

    /// The profile our own offer uses (delayed offer).
    pub fn offer_profile(self) -> Profile {
        match self {
            Self::EncryptedWithSdpKeys => Profile::Savp,
            Self::EncryptedWithoutSdpKeys | Self::NonSecureMediaEncryption => Profile::UdpTlsSavp,
            Self::NonSecure => Profile::Avp,
        }
    }

    /// Whether a request that arrived over TLS (or not) may be served at all.
    pub fn check_transport(self, over_tls: bool) -> Result<(), NotAcceptable> {
        if self.requires_tls() && !over_tls {
            return Err(NotAcceptable::NeedsTls);
        }
        Ok(())
    }

    /// How an offered line is keyed under this mode. `sdes_suites` is our SDES suite
    /// preference (strongest first): the first of them the offer lists is chosen.
    pub fn keying(self, m: &MediaOffer, sdes_suites: &[&str]) -> Result<Keying, NotAcceptable> {
        let profile = m.profile.ok_or(NotAcceptable::Profile)?;
        match self {
            Self::EncryptedWithSdpKeys => {
                if !matches!(profile, Profile::Savp | Profile::Savpf) {
                    return Err(NotAcceptable::NoCrypto);
                }
                sdes_suites
                    .iter()
                    .find_map(|s| m.crypto.iter().find(|c| c.suite.eq_ignore_ascii_case(s)))
                    .map(|c| Keying::Sdes(c.clone()))
                    .ok_or(NotAcceptable::NoCrypto)
            }
            Self::EncryptedWithoutSdpKeys | Self::NonSecureMediaEncryption => {
                if !profile.is_secure() {
                    return Err(NotAcceptable::NoFingerprint);
                }
                let fp = m.fingerprint.clone().ok_or(NotAcceptable::NoFingerprint)?;
                Ok(Keying::Dtls {
                    peer_fingerprint: fp,
                    setup: answer_setup(m.setup),
                })
            }
            Self::NonSecure => {
                if profile.is_secure() {
                    return Err(NotAcceptable::SecureOffered);
                }
                Ok(Keying::Plain)
            }
        }
    }
}

/// Applies the mode to a whole offer (RFC 3264 §6): each audio or video line with a
/// non-zero port gets its keying; other lines are refused (`None`, port 0 in the answer).
/// The offer is not acceptable when the signalling transport does not fit the mode, or
/// when no line can be taken (then the call gets 488).
pub fn keying_for_offer(
    mode: DeviceSecurity,
    over_tls: bool,
    offer: &crate::sdp::Description,
    sdes_suites: &[&str],
) -> Result<Vec<Option<Keying>>, NotAcceptable> {
    mode.check_transport(over_tls)?;
    let mut first_refusal = None;
    let lines: Vec<Option<Keying>> = offer
        .media
        .iter()
        .map(|m| {
            if m.kind.is_none() || m.port == 0 {
                return None;
            }
            match mode.keying(m, sdes_suites) {
                Ok(k) => Some(k),
                Err(e) => {
                    first_refusal.get_or_insert(e);
                    None
                }
            }
        })
        .collect();
    if lines.iter().all(Option::is_none) {
        return Err(first_refusal.unwrap_or(NotAcceptable::Profile));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp;

    const SUITES: &[&str] = &[
        "AEAD_AES_256_GCM",
        "AEAD_AES_128_GCM",
        "AES_CM_128_HMAC_SHA1_80",
        "AES_CM_128_HMAC_SHA1_32",
    ];

    #[test]
    fn a_mode_is_named_as_configured() {
        for name in [
            "encrypted-with-sdp-keys",
            "encrypted-without-sdp-keys",
            "non-secure",
            "non-secure-media-encryption",
        ] {
            assert_eq!(
                DeviceSecurity::parse(name).map(DeviceSecurity::name),
                Some(name)
            );
        }
    }

    fn line(proto: &str, extra: &str) -> MediaOffer {
        let body = format!(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n\
             m=audio 20000 {proto} 0\r\n{extra}"
        );
        sdp::parse(body.as_bytes()).unwrap().media.remove(0)
    }

    const FP: &str = "a=fingerprint:sha-256 AB:CD\r\n";
    const CRYPTO: &str = "a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n\
                          a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";

    #[test]
    fn each_mode_accepts_what_t6_says_and_refuses_the_rest() {
        use DeviceSecurity::*;
        use NotAcceptable::*;
        let sdes = line("RTP/SAVP", CRYPTO);
        let dtls = line("UDP/TLS/RTP/SAVPF", &format!("{FP}a=setup:actpass\r\n"));
        let plain = line("RTP/AVP", "");
        let odd = line("RTP/XYZ", "");
        // With SDP keys: our strongest suite among those offered (tag 2, _80).
        match EncryptedWithSdpKeys.keying(&sdes, SUITES).unwrap() {
            Keying::Sdes(c) => {
                assert_eq!((c.tag, c.suite.as_str()), (2, "AES_CM_128_HMAC_SHA1_80"))
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(EncryptedWithSdpKeys.keying(&dtls, SUITES), Err(NoCrypto));
        assert_eq!(EncryptedWithSdpKeys.keying(&plain, SUITES), Err(NoCrypto));
        assert_eq!(
            EncryptedWithSdpKeys.keying(&sdes, &["AEAD_AES_256_GCM"]),
            Err(NoCrypto)
        );
        for mode in [EncryptedWithoutSdpKeys, NonSecureMediaEncryption] {
            assert_eq!(
                mode.keying(&dtls, SUITES),
                Ok(Keying::Dtls {
                    peer_fingerprint: "sha-256 AB:CD".into(),
                    setup: Setup::Passive
                })
            );
            // SDES keys are not taken, whatever the profile.
            assert_eq!(mode.keying(&sdes, SUITES), Err(NoFingerprint));
            assert_eq!(mode.keying(&plain, SUITES), Err(NoFingerprint));
        }
        assert_eq!(NonSecure.keying(&plain, SUITES), Ok(Keying::Plain));
        assert_eq!(NonSecure.keying(&sdes, SUITES), Err(SecureOffered));
        assert_eq!(NonSecure.keying(&dtls, SUITES), Err(SecureOffered));
        for mode in [
            EncryptedWithSdpKeys,
            EncryptedWithoutSdpKeys,
            NonSecure,
            NonSecureMediaEncryption,
        ] {
            assert_eq!(mode.keying(&odd, SUITES), Err(Profile));
        }
        // A passive offerer makes the switch active.
        let passive = line("UDP/TLS/RTP/SAVP", &format!("{FP}a=setup:passive\r\n"));
        assert!(matches!(
            EncryptedWithoutSdpKeys.keying(&passive, SUITES),
            Ok(Keying::Dtls {
                setup: Setup::Active,
                ..
            })
        ));
    }

    #[test]
    fn a_whole_offer_is_taken_line_by_line_or_refused() {
        use DeviceSecurity::*;
        let body = format!(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n\
             m=audio 20000 RTP/SAVP 0\r\n{CRYPTO}m=video 20002 RTP/AVP 96\r\n\
             m=application 20004 RTP/SAVP 100\r\nm=video 0 RTP/SAVP 96\r\n"
        );
        let offer = sdp::parse(body.as_bytes()).unwrap();
        let lines = keying_for_offer(EncryptedWithSdpKeys, true, &offer, SUITES).unwrap();
        assert!(matches!(lines[0], Some(Keying::Sdes(_))));
        assert_eq!(lines[1..], [None, None, None]);
        assert_eq!(
            keying_for_offer(EncryptedWithSdpKeys, false, &offer, SUITES),
            Err(NotAcceptable::NeedsTls)
        );
        assert_eq!(
            keying_for_offer(EncryptedWithoutSdpKeys, true, &offer, SUITES),
            Err(NotAcceptable::NoFingerprint)
        );
        let plain = keying_for_offer(NonSecure, false, &offer, SUITES).unwrap();
        assert_eq!(plain, vec![None, Some(Keying::Plain), None, None]);
    }

    #[test]
    fn encrypted_modes_need_tls_signalling() {
        use DeviceSecurity::*;
        assert_eq!(
            EncryptedWithSdpKeys.check_transport(false),
            Err(NotAcceptable::NeedsTls)
        );
        assert_eq!(
            EncryptedWithoutSdpKeys.check_transport(false),
            Err(NotAcceptable::NeedsTls)
        );
        assert_eq!(EncryptedWithSdpKeys.check_transport(true), Ok(()));
        assert_eq!(NonSecure.check_transport(false), Ok(()));
        assert_eq!(NonSecureMediaEncryption.check_transport(false), Ok(()));
        assert_eq!(DeviceSecurity::parse("non-secure"), Some(NonSecure));
        assert_eq!(DeviceSecurity::parse("secure"), None);
    }
}

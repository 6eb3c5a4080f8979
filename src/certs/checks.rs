//! The checks an uploaded certificate passes before it replaces anything (issue 18; seed
//! 004 R55-R60, seeds-switch.md L8): the key belongs to the certificate (else the seed's
//! `TLS error: Error loading Private key file` and the old identity stays), the chain
//! verifies, the EKU fits the use, it is within its validity, it names no wildcard, and its
//! key is RSA of 2048 bits or more, or ECDSA P-256/P-384. Pure: bytes and time in, a
//! verdict out.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::sign::CertifiedKey;

use super::inspect::{CertDetails, inspect};

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// The switch's identity on the SIP trunk: presented as server and as client, so
    /// serverAuth and clientAuth (seed 004).
    Trunk,
    /// The admin web listener's identity: serverAuth.
    AdminWeb,
    /// A trust anchor (a CA, or a peer's self-signed certificate).
    Trust,
}

/// Why an upload is refused: each names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Nothing that parses as a certificate.
    #[error("no certificate found (PEM or DER expected)")]
    NoCertificate,
    /// A certificate that does not parse.
    #[error("{0}")]
    NotACertificate(String),
    /// No private key, or one that does not parse (or a wrong passphrase).
    #[error("{prefix}: {0}", prefix = sip::tls::LOG_KEY_MISMATCH)]
    BadKey(String),
    /// The key is not the certificate's.
    #[error(
        "{}: the key does not belong to the certificate",
        sip::tls::LOG_KEY_MISMATCH
    )]
    KeyMismatch,
    /// The chain does not verify to a certificate given or trusted.
    #[error("the chain does not verify: {0}")]
    Chain(String),
    /// Expired, or not valid yet.
    #[error("not within its validity ({not_before} to {not_after})")]
    OutsideValidity {
        /// Start.
        not_before: String,
        /// End.
        not_after: String,
    },
    /// The EKU does not allow the use.
    #[error("extended key usage {has:?} lacks {needs} (needed for {used_for})")]
    Eku {
        /// What it has.
        has: Vec<String>,
        /// What is missing.
        needs: &'static str,
        /// The use.
        used_for: &'static str,
    },
    /// A wildcard name (seed 004: not for the trunk identity).
    #[error("wildcard name `{0}` (seed 004: name the node)")]
    Wildcard(String),
    /// A key too weak or of another kind.
    #[error("key {0}: RSA of 2048 bits or more, or ECDSA P-256/P-384, is required")]
    WeakKey(String),
    /// An identity upload that is a CA certificate.
    #[error("a CA certificate cannot be the switch's identity")]
    CaAsIdentity,
}

/// An identity that passed every check.
#[derive(Clone)]
pub struct CheckedIdentity {
    /// For rustls.
    pub certified: Arc<CertifiedKey>,
    /// The end entity's details.
    pub details: CertDetails,
}

impl std::fmt::Debug for CheckedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckedIdentity")
            .field("details", &self.details)
            .finish_non_exhaustive()
    }
}

/// The rules every certificate meets (validity, key, wildcard).
fn common(d: &CertDetails, now: UnixTime) -> Result<(), Refused> {
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if now < d.validity_unix.0 || now > d.validity_unix.1 {
        return Err(Refused::OutsideValidity {
            not_before: d.not_before.clone(),
            not_after: d.not_after.clone(),
        });
    }
    let strong = match d.key_type.as_str() {
        "RSA" => d.key_bits >= 2048,
        "ECDSA P-256" | "ECDSA P-384" => true,
        _ => false,
    };
    if !strong {
        return Err(Refused::WeakKey(format!("{} {}", d.key_type, d.key_bits)));
    }
    let names = d.common_name.iter().cloned().chain(
        d.sans
            .iter()
            .map(|s| s.split_once(':').map_or(s.clone(), |x| x.1.to_owned())),
    );
    for name in names {
        if name.contains('*') {
            return Err(Refused::Wildcard(name));
        }
    }
    Ok(())
}

/// Checks an identity upload: `chain` (end entity first), `key`, for `usage`, verified to
/// a self-signed certificate at the end of the chain or one of `anchors`.
pub fn check_identity(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    usage: Use,
    anchors: &[CertificateDer<'static>],
    now: UnixTime,
) -> Result<CheckedIdentity, Refused> {
    let end = chain.first().ok_or(Refused::NoCertificate)?;
    let details = inspect(end).map_err(|e| Refused::NotACertificate(e.to_string()))?;
    if details.is_ca {
        return Err(Refused::CaAsIdentity);
    }
    common(&details, now)?;
    let needs: &[(&str, &'static str)] = match usage {
        Use::Trunk => &[("serverAuth", "serverAuth"), ("clientAuth", "clientAuth")],
        Use::AdminWeb => &[("serverAuth", "serverAuth")],
        Use::Trust => &[],
    };
    let used_for = match usage {
        Use::Trunk => "the SIP trunk identity (server and client)",
        Use::AdminWeb => "the admin web identity",
        Use::Trust => "trust",
    };
    // An absent EKU extension allows every use (RFC 5280 §4.2.1.12).
    if !details.eku.is_empty() && !details.eku.iter().any(|e| e == "any") {
        for (eku, name) in needs {
            if !details.eku.iter().any(|e| e == eku) {
                return Err(Refused::Eku {
                    has: details.eku.clone(),
                    needs: name,
                    used_for,
                });
            }
        }
    }
    verify_chain(&chain, anchors, usage, now)?;
    let provider = sip::tls::provider();
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| Refused::BadKey(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|_| Refused::KeyMismatch)?;
    Ok(CheckedIdentity {
        certified: Arc::new(certified),
        details,
    })
}

/// Checks a trust anchor upload: each certificate parses, is within its validity, and has
/// a strong key (a wildcard in a CA's name is no concern).
pub fn check_trust(
    certs: &[CertificateDer<'static>],
    now: UnixTime,
) -> Result<Vec<CertDetails>, Refused> {
    if certs.is_empty() {
        return Err(Refused::NoCertificate);
    }
    certs
        .iter()
        .map(|c| {
            let d = inspect(c).map_err(|e| Refused::NotACertificate(e.to_string()))?;
            common(
                &CertDetails {
                    common_name: None,
                    sans: Vec::new(),
                    ..d.clone()
                },
                now,
            )?;
            Ok(d)
        })
        .collect()
}

/// The chain verifies (webpki, as a peer would) to its own last certificate when that is
/// self-signed, or to one of `anchors`.
fn verify_chain(
    chain: &[CertificateDer<'static>],
    anchors: &[CertificateDer<'static>],
    usage: Use,
    now: UnixTime,
) -> Result<(), Refused> {
    let mut candidates: Vec<&CertificateDer<'static>> = anchors.iter().collect();
    if chain.len() > 1
        && let Some(last) = chain.last()
        && inspect(last).is_ok_and(|d| d.self_issued)
    {
        candidates.push(last);
    }
    // A self-signed end entity stands for itself (a pinned peer certificate, issue 15).
    if chain.len() == 1 && inspect(&chain[0]).is_ok_and(|d| d.self_issued) {
        candidates.push(&chain[0]);
    }
    let trust: Vec<_> = candidates
        .iter()
        .filter_map(|c| webpki::anchor_from_trusted_cert(c).ok())
        .collect();
    if trust.is_empty() {
        return Err(Refused::Chain(
            "no CA: add the issuing CA to the chain or to a trust unit".into(),
        ));
    }
    let end =
        webpki::EndEntityCert::try_from(&chain[0]).map_err(|e| Refused::Chain(format!("{e:?}")))?;
    let intermediates = &chain[1..];
    let algorithms = sip::tls::provider().signature_verification_algorithms.all;
    let eku = match usage {
        Use::AdminWeb => webpki::KeyUsage::server_auth(),
        // The trunk identity is also a client: checked above for both; webpki checks one.
        Use::Trunk | Use::Trust => webpki::KeyUsage::server_auth(),
    };
    end.verify_for_usage(algorithms, &trust, intermediates, now, eku, None, None)
        .map(|_| ())
        .map_err(|e| Refused::Chain(format!("{e:?}")))
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;

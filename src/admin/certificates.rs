//! The certificate store through the API (issue 18): what an upload body says, turned
//! into a typed [`CertChange`] before it reaches call control, and what the API shows of
//! each unit.

use base64::Engine as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use crate::certs::checks::Refused;
use crate::certs::inspect::CertDetails;
use crate::certs::store::Unit;

/// `PUT /api/v1/certificates/{unit}`: PEM text, or base64 DER (the seeds upload `.der`
/// and `.pem` files).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadBody {
    /// PEM certificates: an identity's chain (end entity first) or trust anchors.
    #[serde(default)]
    pub certificate: Option<String>,
    /// One DER certificate, base64.
    #[serde(default)]
    pub certificate_der: Option<String>,
    /// An identity's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub key: Option<String>,
    /// The key as DER PKCS#8, base64.
    #[serde(default)]
    pub key_der: Option<String>,
    /// Certificate revocation lists for a trust unit, PEM (`X509 CRL`).
    #[serde(default)]
    pub crl: Option<String>,
    /// One CRL, base64 DER.
    #[serde(default)]
    pub crl_der: Option<String>,
    /// The passphrase of an encrypted PKCS#8 key (`ENCRYPTED PRIVATE KEY`); never logged
    /// or kept (the key is stored decrypted, mode 0600).
    #[serde(default)]
    pub passphrase: Option<String>,
}

/// The label of an encrypted PKCS#8 key in PEM (RFC 5958 §3, RFC 7468 §11).
const ENCRYPTED: &str = "ENCRYPTED PRIVATE KEY";

/// An encrypted PKCS#8 key (PEM or DER) decrypted with `passphrase`; `None` when `bytes`
/// is not an encrypted key.
fn decrypt_key(
    bytes: &[u8],
    passphrase: Option<&str>,
) -> Option<Result<PrivateKeyDer<'static>, CertChangeError>> {
    let der = match pkcs8::der::pem::decode_vec(bytes) {
        Ok((label, der)) if label == ENCRYPTED => der,
        Ok(_) => return None,
        Err(_) => bytes.to_vec(),
    };
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice()).ok()?;
    let Some(passphrase) = passphrase else {
        return Some(Err(CertChangeError::BadUpload(
            "the key is encrypted: give its `passphrase`".into(),
        )));
    };
    Some(
        info.decrypt(passphrase)
            .map(|doc| PrivateKeyDer::Pkcs8(doc.as_bytes().to_vec().into()))
            .map_err(|_| Refused::BadKey("the passphrase does not decrypt it".into()).into()),
    )
}

/// A change to the store.
pub enum CertChange {
    /// Replace an identity unit's certificate chain and key.
    Identity {
        /// `sip-identity` or `admin-identity`.
        unit: Unit,
        /// End entity first.
        chain: Vec<CertificateDer<'static>>,
        /// Its key.
        key: PrivateKeyDer<'static>,
    },
    /// Add trust anchors to a trust unit.
    Trust {
        /// `trunk-trust` or `other-trust`.
        unit: Unit,
        /// The anchors.
        certs: Vec<CertificateDer<'static>>,
    },
    /// Add certificate revocation lists to a trust unit.
    Crls {
        /// `trunk-trust` or `other-trust`.
        unit: Unit,
        /// The lists.
        crls: Vec<CertificateRevocationListDer<'static>>,
    },
    /// Remove the certificate (or CRL) of SHA-256 `sha256` from `unit`.
    Remove {
        /// The unit.
        unit: Unit,
        /// Lower-case hex SHA-256 of the DER.
        sha256: String,
    },
}

impl std::fmt::Debug for CertChange {
    // The key never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl std::fmt::Display for CertChange {
    /// The audit log's `action` field.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Identity { unit, chain, .. } => {
                write!(
                    f,
                    "install {} ({} certificate(s) and a key)",
                    unit.name(),
                    chain.len()
                )
            }
            Self::Trust { unit, certs } => {
                write!(f, "add {} certificate(s) to {}", certs.len(), unit.name())
            }
            Self::Crls { unit, crls } => {
                write!(
                    f,
                    "add {} revocation list(s) to {}",
                    crls.len(),
                    unit.name()
                )
            }
            Self::Remove { unit, sha256 } => write!(f, "remove {sha256} from {}", unit.name()),
        }
    }
}

/// Why a change was not made: the API's code and status with each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertChangeError {
    /// The body does not say what the unit needs.
    #[error("{0}")]
    BadUpload(String),
    /// A check refused it; nothing was replaced.
    #[error("refused: {0}")]
    Refused(#[from] Refused),
    /// No such certificate in the unit.
    #[error("{0} holds no certificate {1}")]
    NotFound(&'static str, String),
    /// The identity in use is replaced by an upload, never removed.
    #[error("{0} is in use: upload a replacement instead of removing it")]
    InUse(&'static str),
    /// Writing the store or applying it failed; the old material stays in use.
    #[error("{0}")]
    Failed(String),
}

impl CertChangeError {
    /// The API's stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadUpload(_) => "bad_upload",
            Self::Refused(_) => "certificate_refused",
            Self::NotFound(..) => "not_found",
            Self::InUse(_) => "in_use",
            Self::Failed(_) => "failed",
        }
    }

    /// Its HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadUpload(_) | Self::Refused(_) => 422,
            Self::NotFound(..) => 404,
            Self::InUse(_) => 409,
            Self::Failed(_) => 500,
        }
    }
}

fn base64_der(field: &str, s: &str) -> Result<Vec<u8>, CertChangeError> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| CertChangeError::BadUpload(format!("{field}: not base64: {e}")))
}

/// The change an upload to `unit` asks for; an identity upload without a key takes
/// `pending_key`, the key of the unit's certificate request (the CA's answer to it).
pub fn upload(
    unit: Unit,
    body: UploadBody,
    pending_key: Option<PrivateKeyDer<'static>>,
) -> Result<CertChange, CertChangeError> {
    if body.crl.is_some() || body.crl_der.is_some() {
        return crls_of(unit, &body);
    }
    let mut certs: Vec<CertificateDer<'static>> = Vec::new();
    if let Some(pem) = &body.certificate {
        certs.extend(CertificateDer::pem_slice_iter(pem.as_bytes()).filter_map(Result::ok));
        if certs.is_empty() {
            return Err(CertChangeError::BadUpload(
                "certificate: no PEM certificate in it".into(),
            ));
        }
    }
    if let Some(b64) = &body.certificate_der {
        certs.push(CertificateDer::from(base64_der("certificate_der", b64)?));
    }
    if certs.is_empty() {
        return Err(CertChangeError::BadUpload(
            "give `certificate` (PEM) or `certificate_der` (base64 DER)".into(),
        ));
    }
    let passphrase = body.passphrase.as_deref();
    let key = match (&body.key, &body.key_der) {
        (Some(pem), None) => Some(match decrypt_key(pem.as_bytes(), passphrase) {
            Some(key) => key?,
            None => PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| {
                CertChangeError::BadUpload(
                    "key: no PEM private key in it (PKCS#8, encrypted PKCS#8, PKCS#1 or SEC1)"
                        .into(),
                )
            })?,
        }),
        (None, Some(b64)) => {
            let der = base64_der("key_der", b64)?;
            Some(match decrypt_key(&der, passphrase) {
                Some(key) => key?,
                None => PrivateKeyDer::try_from(der)
                    .map_err(|e| CertChangeError::BadUpload(format!("key_der: {e}")))?,
            })
        }
        (None, None) if unit.is_identity() => pending_key,
        (None, None) => None,
        (Some(_), Some(_)) => {
            return Err(CertChangeError::BadUpload(
                "give `key` or `key_der`, not both".into(),
            ));
        }
    };
    match (unit.is_identity(), key) {
        (true, Some(key)) => Ok(CertChange::Identity {
            unit,
            chain: certs,
            key,
        }),
        (true, None) => Err(CertChangeError::BadUpload(format!(
            "{} needs its private key (`key` or `key_der`), or a certificate request made here first",
            unit.name()
        ))),
        (false, None) => Ok(CertChange::Trust { unit, certs }),
        (false, Some(_)) => Err(CertChangeError::BadUpload(format!(
            "{} holds trust anchors: no key",
            unit.name()
        ))),
    }
}

/// The CRLs of an upload (nothing else may come with them).
fn crls_of(unit: Unit, body: &UploadBody) -> Result<CertChange, CertChangeError> {
    if unit.is_identity() {
        return Err(CertChangeError::BadUpload(format!(
            "{}: revocation lists belong to a trust unit",
            unit.name()
        )));
    }
    if body.certificate.is_some()
        || body.certificate_der.is_some()
        || body.key.is_some()
        || body.key_der.is_some()
    {
        return Err(CertChangeError::BadUpload(
            "upload revocation lists on their own".into(),
        ));
    }
    let mut crls: Vec<CertificateRevocationListDer<'static>> = Vec::new();
    if let Some(pem) = &body.crl {
        crls.extend(
            CertificateRevocationListDer::pem_slice_iter(pem.as_bytes()).filter_map(Result::ok),
        );
        if crls.is_empty() {
            return Err(CertChangeError::BadUpload(
                "crl: no PEM X509 CRL in it".into(),
            ));
        }
    }
    if let Some(b64) = &body.crl_der {
        crls.push(CertificateRevocationListDer::from(base64_der(
            "crl_der", b64,
        )?));
    }
    Ok(CertChange::Crls { unit, crls })
}

/// A certificate as the API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct CertView {
    /// Everything read from it.
    #[serde(flatten)]
    pub details: CertDetails,
    /// Days until it expires (negative: expired).
    pub days_left: i64,
    /// Where it comes from: `uploaded` (the store), `configuration` or `generated`.
    pub source: &'static str,
}

/// A unit as the API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct UnitView {
    /// Its name.
    pub unit: Unit,
    /// Where it is used.
    pub used_for: &'static str,
    /// An identity's chain (end entity first), or the trust anchors.
    pub certificates: Vec<CertView>,
    /// A trust unit's revocation lists.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub crls: Vec<crate::certs::inspect::CrlDetails>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> UploadBody {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn uploads_say_what_the_unit_needs() {
        let ca = crate::certs::test_pki::Ca::new("Upload CA");
        let pem = crate::certs::store::certificates_pem(std::slice::from_ref(&ca.cert));
        let der = base64::engine::general_purpose::STANDARD.encode(&ca.cert);
        let as_json = |s: &str| serde_json::to_string(s).unwrap();
        let c = upload(
            Unit::TrunkTrust,
            body(&format!("{{\"certificate\":{}}}", as_json(&pem))),
            None,
        )
        .unwrap();
        assert!(matches!(c, CertChange::Trust { ref certs, .. } if certs[0] == ca.cert));
        let c = upload(
            Unit::OtherTrust,
            body(&format!("{{\"certificate_der\":\"{der}\"}}")),
            None,
        )
        .unwrap();
        assert!(matches!(c, CertChange::Trust { .. }));
        for (unit, json, why) in [
            (Unit::TrunkTrust, "{}".to_owned(), "give `certificate`"),
            (
                Unit::TrunkTrust,
                "{\"certificate\":\"junk\"}".into(),
                "no PEM certificate",
            ),
            (
                Unit::TrunkTrust,
                "{\"certificate_der\":\"@@\"}".into(),
                "not base64",
            ),
            (
                Unit::SipIdentity,
                format!("{{\"certificate\":{}}}", as_json(&pem)),
                "needs its private key",
            ),
            (
                Unit::SipIdentity,
                format!("{{\"certificate\":{},\"key\":\"junk\"}}", as_json(&pem)),
                "no PEM private key",
            ),
            (
                Unit::TrunkTrust,
                format!("{{\"certificate\":{},\"key_der\":\"AAAA\"}}", as_json(&pem)),
                "",
            ),
        ] {
            let e = upload(unit, body(&json), None).unwrap_err();
            assert_eq!(e.code(), "bad_upload");
            assert!(e.to_string().contains(why), "{e}");
        }
        assert!(serde_json::from_str::<UploadBody>("{\"cert\":\"x\"}").is_err());
    }

    #[test]
    fn an_encrypted_key_needs_its_passphrase() {
        use pkcs8::der::pem::LineEnding;
        let ca = crate::certs::test_pki::Ca::new("Encrypted CA");
        let (cert, key) = ca.trunk("sw1.example");
        let info = pkcs8::PrivateKeyInfo::try_from(key.secret_der()).unwrap();
        let encrypted = info
            .encrypt(rsa::rand_core::OsRng, "correct horse battery")
            .unwrap();
        let pem = encrypted.to_pem(ENCRYPTED, LineEnding::LF).unwrap();
        let chain = crate::certs::store::certificates_pem(std::slice::from_ref(&cert));
        let with = |passphrase: Option<&str>| {
            let mut v = serde_json::json!({ "certificate": chain, "key": pem.as_str() });
            if let Some(p) = passphrase {
                v["passphrase"] = p.into();
            }
            upload(Unit::SipIdentity, body(&v.to_string()), None)
        };
        match with(Some("correct horse battery")).unwrap() {
            CertChange::Identity { key: k, .. } => assert_eq!(k.secret_der(), key.secret_der()),
            other => panic!("{other}"),
        }
        let e = with(None).unwrap_err();
        assert!(e.to_string().contains("give its `passphrase`"), "{e}");
        let e = with(Some("wrong")).unwrap_err();
        assert_eq!(e.code(), "certificate_refused");
        assert!(
            e.to_string()
                .contains("TLS error: Error loading Private key file"),
            "{e}"
        );
        // As base64 DER too.
        let der = base64::engine::general_purpose::STANDARD.encode(encrypted.as_bytes());
        let v = serde_json::json!({ "certificate": chain, "key_der": der, "passphrase": "correct horse battery" });
        assert!(upload(Unit::SipIdentity, body(&v.to_string()), None).is_ok());
    }

    #[test]
    fn the_key_is_never_in_the_debug_text() {
        let ca = crate::certs::test_pki::Ca::new("Debug CA");
        let (cert, key) = ca.trunk("sw1.example");
        let secret = format!("{:?}", key.secret_der());
        let c = CertChange::Identity {
            unit: Unit::SipIdentity,
            chain: vec![cert],
            key,
        };
        let text = format!("{c:?}");
        assert_eq!(text, "install sip-identity (1 certificate(s) and a key)");
        assert!(!text.contains(&secret));
    }
}

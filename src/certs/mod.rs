//! The switch's TLS identity and trust store (ARCHITECTURE.md "Management"): the
//! configured files (PEM or DER), or, when none is configured, a local CA and a
//! certificate it signs, made once in the data directory (the log says so). Upload the CA
//! (`ca.pem`) to Unified CM as CallManager-trust; its trunk profile's X.509 Subject Name is
//! the certificate's subject (`tls.subject`, seed 002 l.1575).
//!
//! What is made (seeds-switch.md R55-R60, T3b; issue 15):
//! - keys are RSA 2048 with SHA-256 signatures by default (`tls.key_type = "ecdsa"`: P-256);
//! - the CA is valid five years at most (R60), the identity `tls.validity_days` (two years
//!   by default), both from an hour before their making (clock skew);
//! - the identity names `tls.subject` (CN and DNS SAN), every `tls.san` entry (an IP
//!   address or a DNS name), and 127.0.0.1 only when the SIP TLS listener is on loopback;
//!   EKU serverAuth and clientAuth;
//! - a certificate for the out-of-the-box loopback trunk peer (`mswitch-peer`: the demo and
//!   the tests call with it; it is accepted only from a trunk configured with that subject);
//! - **the CA's private key is dropped** once these are signed: it never reaches the disk,
//!   so the running switch cannot issue anything. To issue again, remove the data
//!   directory (a new CA is made, to be uploaded again). A `ca.key` left by an earlier
//!   version is deleted at start.

pub mod checks;
pub mod csr;
pub mod expiry;
pub mod fuzzing;
pub mod inspect;
pub mod store;
#[cfg(test)]
pub(crate) mod test_pki;

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use sip::tls::{self, TlsError, TlsPolicy};

use crate::config::TlsConfig;

/// Files of the generated identity, in the data directory.
const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
const CERT: &str = "mswitch.pem";
const KEY: &str = "mswitch.key";
const PEER_CERT: &str = "peer.pem";
const PEER_KEY: &str = "peer.key";

/// The subject of the out-of-the-box loopback trunk peer.
pub const LOOPBACK_PEER: &str = "mswitch-peer";

/// The longest a generated CA is valid (R60: at most five years).
pub const CA_VALIDITY_DAYS: u32 = 5 * 365;

/// Why the TLS material could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// Loading failed (the message of a key mismatch is the seed's line).
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The data directory could not be written.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// Where.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// rcgen failed.
    #[error("certificate generation: {0}")]
    Generate(String),
}

/// What the TLS set-up did, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The configured files.
    Configured,
    /// Made now in the data directory.
    Generated(PathBuf),
    /// Made earlier in the data directory.
    Reused(PathBuf),
}

/// The key of a generated certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// RSA 2048, SHA-256 signatures (the default, R55).
    Rsa2048,
    /// ECDSA P-256, SHA-256 signatures.
    EcdsaP256,
    /// RSA 4096, SHA-256 signatures (a CSR's key on request).
    Rsa4096,
    /// ECDSA P-384, SHA-384 signatures (a CSR's key on request).
    EcdsaP384,
}

impl KeyType {
    /// From the configuration value: `rsa` or `ecdsa`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "rsa" => Some(Self::Rsa2048),
            "ecdsa" => Some(Self::EcdsaP256),
            _ => None,
        }
    }

    fn generate(self) -> Result<KeyPair, CertError> {
        let gen_err = |e: &dyn std::fmt::Display| CertError::Generate(e.to_string());
        match self {
            Self::EcdsaP256 => KeyPair::generate().map_err(|e| gen_err(&e)),
            Self::EcdsaP384 => {
                KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).map_err(|e| gen_err(&e))
            }
            Self::Rsa2048 | Self::Rsa4096 => {
                use rsa::pkcs8::EncodePrivateKey;
                let bits = if self == Self::Rsa4096 { 4096 } else { 2048 };
                let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)
                    .map_err(|e| gen_err(&e))?;
                let der = key.to_pkcs8_der().map_err(|e| gen_err(&e))?;
                let der = rustls::pki_types::PrivatePkcs8KeyDer::from(der.as_bytes().to_vec());
                KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_RSA_SHA256)
                    .map_err(|e| gen_err(&e))
            }
        }
    }
}

/// How a generated identity is made.
#[derive(Debug, Clone)]
pub struct IdentitySpec {
    /// CN and DNS SAN.
    pub subject: String,
    /// Further SANs: IP addresses or DNS names.
    pub sans: Vec<String>,
    /// The key type.
    pub key_type: KeyType,
    /// Days the identity is valid.
    pub validity_days: u32,
    /// Name 127.0.0.1 too (the SIP TLS listener is on loopback).
    pub loopback: bool,
}

impl IdentitySpec {
    /// The defaults for `subject`: RSA 2048, two years, loopback named.
    pub fn new(subject: &str) -> Self {
        Self {
            subject: subject.to_owned(),
            sans: Vec::new(),
            key_type: KeyType::Rsa2048,
            validity_days: 730,
            loopback: true,
        }
    }
}

/// Our policy (identity + trust store) from the configuration and the store; `loopback`:
/// the SIP TLS listener is on loopback (the generated identity names 127.0.0.1 then).
pub fn load(t: &TlsConfig, loopback: bool) -> Result<(TlsPolicy, Origin), CertError> {
    let sources = TlsSources::load(t, loopback)?;
    let origin = sources.origin.clone();
    Ok((sources.policy()?, origin))
}

/// What the TLS policy is made of: the configuration's identity (or the generated one),
/// its trust files, and the store's units, which take precedence (issue 18: an identity
/// uploaded through the API replaces the file's until it is removed). Rebuilt after every
/// change to the store, and on SIGHUP.
#[derive(Debug, Clone)]
pub struct TlsSources {
    /// Where the configuration's identity came from.
    pub origin: Origin,
    config_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    config_key_path: PathBuf,
    /// The configuration's trust files.
    pub trust_paths: Vec<PathBuf>,
    /// The store.
    pub store: store::CertStore,
}

impl TlsSources {
    /// Reads the configuration's files (making the local identity when none is configured).
    pub fn load(t: &TlsConfig, loopback: bool) -> Result<Self, CertError> {
        let dir = PathBuf::from(&t.data_dir);
        let (cert_path, key_path, origin) = if t.certificate.is_empty() {
            let spec = IdentitySpec {
                subject: t.subject.clone(),
                sans: t.san.clone(),
                key_type: KeyType::parse(&t.key_type).unwrap_or(KeyType::Rsa2048),
                validity_days: t.validity_days,
                loopback,
            };
            let made = ensure_local_identity_with(&dir, &spec)?;
            let origin = if made {
                Origin::Generated(dir.clone())
            } else {
                Origin::Reused(dir.clone())
            };
            (dir.join(CERT), dir.join(KEY), origin)
        } else {
            (
                PathBuf::from(&t.certificate),
                PathBuf::from(&t.key),
                Origin::Configured,
            )
        };
        let config_chain = tls::load_certificates(&cert_path)?;
        // The key is checked now (the seed's line when it is not the certificate's).
        tls::identity(config_chain.clone(), tls::load_private_key(&key_path)?)?;
        let trust_paths: Vec<PathBuf> = if t.trust.is_empty() {
            vec![dir.join(CA_CERT)]
        } else {
            t.trust.iter().map(PathBuf::from).collect()
        };
        Ok(Self {
            origin,
            config_chain,
            config_key_path: key_path,
            trust_paths,
            store: store::CertStore::new(&dir),
        })
    }

    /// The identity of `unit` in use: the store's, else (for the SIP identity) the
    /// configuration's; `None` for an admin identity not uploaded.
    pub fn identity(
        &self,
        unit: store::Unit,
    ) -> Result<Option<std::sync::Arc<rustls::sign::CertifiedKey>>, CertError> {
        if let Some((chain, key)) = self.store.identity(unit)? {
            return Ok(Some(tls::identity(chain, key)?));
        }
        if unit != store::Unit::SipIdentity {
            return Ok(None);
        }
        let key = tls::load_private_key(&self.config_key_path)?;
        Ok(Some(tls::identity(self.config_chain.clone(), key)?))
    }

    /// Whether the SIP identity in use was uploaded (else it is the configuration's).
    pub fn uploaded(&self, unit: store::Unit) -> bool {
        self.store.dir(unit).join("chain.pem").exists()
    }

    /// The trunk's trust anchors: the configuration's files and the store's trunk-trust.
    pub fn trunk_anchors(
        &self,
    ) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, CertError> {
        let mut certs = Vec::new();
        for p in &self.trust_paths {
            certs.extend(tls::load_certificates(p)?);
        }
        certs.extend(self.store.trust(store::Unit::TrunkTrust));
        Ok(certs)
    }

    /// The trunk policy: the SIP identity in use, the trunk anchors (each also a pin).
    pub fn policy(&self) -> Result<TlsPolicy, CertError> {
        let identity = self
            .identity(store::Unit::SipIdentity)?
            .ok_or(CertError::Generate("no SIP identity".into()))?;
        let pins = self.trunk_anchors()?;
        let mut roots = rustls::RootCertStore::empty();
        for c in &pins {
            roots.add(c.clone()).map_err(TlsError::from)?;
        }
        Ok(TlsPolicy::new(identity, roots)
            .with_pins(pins)
            .with_crls(self.store.crls(store::Unit::TrunkTrust)))
    }
}

fn write(path: &Path, contents: &str) -> Result<(), CertError> {
    std::fs::write(path, contents).map_err(|source| CertError::DataDir {
        path: path.display().to_string(),
        source,
    })?;
    #[cfg(unix)]
    if path.extension().is_some_and(|e| e == "key") {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(())
}

/// [`ensure_local_identity_with`] with [`IdentitySpec::new`].
pub fn ensure_local_identity(dir: &Path, subject: &str) -> Result<bool, CertError> {
    ensure_local_identity_with(dir, &IdentitySpec::new(subject))
}

/// Makes the local CA, our certificate and the loopback peer's unless they exist, and
/// drops the CA's key; true when it made them.
pub fn ensure_local_identity_with(dir: &Path, spec: &IdentitySpec) -> Result<bool, CertError> {
    // An earlier version kept the CA's key: it goes.
    if dir.join(CA_KEY).exists() {
        let _ = std::fs::remove_file(dir.join(CA_KEY));
    }
    if dir.join(CERT).exists() && dir.join(KEY).exists() && dir.join(CA_CERT).exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(dir).map_err(|source| CertError::DataDir {
        path: dir.display().to_string(),
        source,
    })?;
    let ca_key = spec.key_type.generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())
        .map_err(|e| CertError::Generate(e.to_string()))?;
    ca.distinguished_name
        .push(DnType::CommonName, format!("{} local CA", spec.subject));
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    (ca.not_before, ca.not_after) = validity(CA_VALIDITY_DAYS);
    let ca_cert = ca
        .self_signed(&ca_key)
        .map_err(|e| CertError::Generate(e.to_string()))?;
    let issuer = Issuer::new(ca, ca_key);
    let (cert, key) = issue_with(&issuer, spec)?;
    // The loopback peer stands for a test or demo caller: P-256 is enough and quick.
    let peer = IdentitySpec {
        subject: LOOPBACK_PEER.to_owned(),
        sans: Vec::new(),
        key_type: KeyType::EcdsaP256,
        ..spec.clone()
    };
    let (peer_cert, peer_key) = issue_with(&issuer, &peer)?;
    // The CA's key ends here: dropped with `issuer`, never written.
    drop(issuer);
    write(&dir.join(CA_CERT), &ca_cert.pem())?;
    write(&dir.join(CERT), &cert)?;
    write(&dir.join(KEY), &key)?;
    write(&dir.join(PEER_CERT), &peer_cert)?;
    write(&dir.join(PEER_KEY), &peer_key)?;
    Ok(true)
}

/// From an hour ago (clock skew between us and the peer) for `days`.
fn validity(days: u32) -> (time::OffsetDateTime, time::OffsetDateTime) {
    let from = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    (from, from + time::Duration::days(i64::from(days)))
}

/// A certificate for `spec` signed by `ca`, usable as TLS client and server:
/// (certificate PEM, key PEM).
pub fn issue_with(
    ca: &Issuer<'_, KeyPair>,
    spec: &IdentitySpec,
) -> Result<(String, String), CertError> {
    let key = spec.key_type.generate()?;
    let mut p = CertificateParams::new(Vec::<String>::new())
        .map_err(|e| CertError::Generate(e.to_string()))?;
    p.distinguished_name.push(DnType::CommonName, &spec.subject);
    for name in std::iter::once(&spec.subject).chain(&spec.sans) {
        let san = san_of(name)?;
        if !p.subject_alt_names.contains(&san) {
            p.subject_alt_names.push(san);
        }
    }
    if spec.loopback {
        let lo = SanType::IpAddress([127, 0, 0, 1].into());
        if !p.subject_alt_names.contains(&lo) {
            p.subject_alt_names.push(lo);
        }
    }
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    (p.not_before, p.not_after) = validity(spec.validity_days);
    let cert = p
        .signed_by(&key, ca)
        .map_err(|e| CertError::Generate(e.to_string()))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A subjectAltName entry: an IP address, else a DNS name.
fn san_of(name: &str) -> Result<SanType, CertError> {
    Ok(match name.parse::<std::net::IpAddr>() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => SanType::DnsName(
            name.to_owned()
                .try_into()
                .map_err(|e: rcgen::Error| CertError::Generate(format!("SAN `{name}`: {e}")))?,
        ),
    })
}

/// The loopback trunk peer's certificate and key of a data directory (PEM): what the
/// demo, the load generator and the tests call the switch with.
pub fn loopback_peer_identity(dir: &Path) -> Result<(String, String), CertError> {
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f)).map_err(|source| CertError::DataDir {
            path: dir.join(f).display().to_string(),
            source,
        })
    };
    Ok((read(PEER_CERT)?, read(PEER_KEY)?))
}
#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mswitch-certs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn no_certificate_configured_makes_one_once() {
        let dir = temp("gen");
        let cfg = TlsConfig {
            data_dir: dir.display().to_string(),
            ..TlsConfig::default()
        };
        let (policy, origin) = load(&cfg, true).unwrap();
        assert_eq!(origin, Origin::Generated(dir.clone()));
        assert_eq!(
            tls::certificate_names(policy.certificate())[0],
            "mswitch".to_owned()
        );
        let (again, origin) = load(&cfg, true).unwrap();
        assert_eq!(origin, Origin::Reused(dir.clone()));
        assert_eq!(again.certificate(), policy.certificate(), "made once");
        // The loopback peer's certificate is made beside it.
        let (peer_cert, _) = loopback_peer_identity(&dir).unwrap();
        let der = tls::parse_certificates(peer_cert.as_bytes()).remove(0);
        assert!(tls::subject_matches(&der, "mswitch-peer"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_key_of_another_certificate_is_the_seed_error() {
        let a = temp("a");
        let b = temp("b");
        ensure_local_identity(&a, "one").unwrap();
        ensure_local_identity(&b, "two").unwrap();
        let cfg = TlsConfig {
            certificate: a.join(CERT).display().to_string(),
            key: b.join(KEY).display().to_string(),
            trust: vec![a.join(CA_CERT).display().to_string()],
            ..TlsConfig::default()
        };
        let e = load(&cfg, true).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("TLS error: Error loading Private key file"),
            "{e}"
        );
        std::fs::remove_dir_all(&a).unwrap();
        std::fs::remove_dir_all(&b).unwrap();
    }

    /// The generated certificates as x509-parser sees them.
    fn parsed(pem: &str) -> Vec<u8> {
        tls::parse_certificates(pem.as_bytes())
            .remove(0)
            .as_ref()
            .to_vec()
    }

    #[test]
    fn generated_certificates_are_rsa_2048_sha256_bounded_and_name_what_was_asked() {
        // Issue 15: they were ECDSA, valid 1975-4096, always 127.0.0.1, the CA key kept.
        let dir = temp("rsa");
        let spec = IdentitySpec {
            subject: "mswitch.example.com".into(),
            sans: vec!["10.1.2.3".into(), "ms2.example.com".into()],
            loopback: false,
            ..IdentitySpec::new("x")
        };
        assert!(ensure_local_identity_with(&dir, &spec).unwrap());
        assert!(!dir.join(CA_KEY).exists(), "the CA's key is dropped");
        let cert = std::fs::read_to_string(dir.join(CERT)).unwrap();
        let der = parsed(&cert);
        let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(
            c.signature_algorithm.algorithm,
            x509_parser::oid_registry::OID_PKCS1_SHA256WITHRSA
        );
        let bits = match c.public_key().parsed().unwrap() {
            x509_parser::public_key::PublicKey::RSA(k) => k.key_size(),
            other => panic!("{other:?}"),
        };
        assert_eq!(bits, 2048);
        let days =
            (c.validity().not_after.timestamp() - c.validity().not_before.timestamp()) / 86_400;
        assert_eq!(days, 730, "two years");
        let names = tls::certificate_names(&rustls::pki_types::CertificateDer::from(der.clone()));
        assert!(
            names.contains(&"mswitch.example.com".to_owned()),
            "{names:?}"
        );
        assert!(names.contains(&"10.1.2.3".to_owned()), "{names:?}");
        assert!(names.contains(&"ms2.example.com".to_owned()), "{names:?}");
        assert!(
            !names.contains(&"127.0.0.1".to_owned()),
            "not on loopback: {names:?}"
        );
        let eku = c.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        let ca = std::fs::read_to_string(dir.join(CA_CERT)).unwrap();
        let ca_der = parsed(&ca);
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        let ca_days =
            (ca.validity().not_after.timestamp() - ca.validity().not_before.timestamp()) / 86_400;
        assert!(
            ca_days <= 5 * 365 + 1,
            "the CA: at most five years ({ca_days})"
        );
        // ECDSA on request.
        let ec = temp("ec");
        ensure_local_identity_with(
            &ec,
            &IdentitySpec {
                key_type: KeyType::EcdsaP256,
                ..IdentitySpec::new("mswitch")
            },
        )
        .unwrap();
        let der = parsed(&std::fs::read_to_string(ec.join(CERT)).unwrap());
        let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert!(matches!(
            c.public_key().parsed().unwrap(),
            x509_parser::public_key::PublicKey::EC(_)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&ec).unwrap();
    }

    #[test]
    fn a_ca_key_left_by_an_earlier_version_is_deleted() {
        let dir = temp("oldkey");
        ensure_local_identity(&dir, "mswitch").unwrap();
        std::fs::write(dir.join(CA_KEY), "old").unwrap();
        assert!(!ensure_local_identity(&dir, "mswitch").unwrap(), "reused");
        assert!(!dir.join(CA_KEY).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

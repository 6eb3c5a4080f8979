//! The switch's TLS identity and trust store (ARCHITECTURE.md "Management"): the
//! configured files (PEM or DER), or, when none is configured, a local CA and an ECDSA
//! P-256 certificate it signs, made once in the data directory (the log says so). Upload
//! the CA (`ca.pem`) to Unified CM as CallManager-trust; its trunk profile's X.509 Subject
//! Name is the certificate's subject (`tls.subject`, seed 002 l.1575).

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

/// Our policy (identity + trust store) from the configuration.
pub fn load(t: &TlsConfig) -> Result<(TlsPolicy, Origin), CertError> {
    let dir = PathBuf::from(&t.data_dir);
    let (cert_path, key_path, origin) = if t.certificate.is_empty() {
        let made = ensure_local_identity(&dir, &t.subject)?;
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
    let chain = tls::load_certificates(&cert_path)?;
    let key = tls::load_private_key(&key_path)?;
    let identity = tls::identity(chain, key)?;
    let trust: Vec<PathBuf> = if t.trust.is_empty() {
        vec![dir.join(CA_CERT)]
    } else {
        t.trust.iter().map(PathBuf::from).collect()
    };
    let refs: Vec<&Path> = trust.iter().map(PathBuf::as_path).collect();
    let (roots, pins) = tls::load_trust_and_pins(&refs)?;
    Ok((TlsPolicy::new(identity, roots).with_pins(pins), origin))
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

/// Makes the local CA and our certificate unless they exist; true when it made them.
pub fn ensure_local_identity(dir: &Path, subject: &str) -> Result<bool, CertError> {
    if dir.join(CERT).exists() && dir.join(KEY).exists() && dir.join(CA_CERT).exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(dir).map_err(|source| CertError::DataDir {
        path: dir.display().to_string(),
        source,
    })?;
    let ca_key = KeyPair::generate().map_err(|e| CertError::Generate(e.to_string()))?;
    let mut ca = CertificateParams::new(Vec::<String>::new())
        .map_err(|e| CertError::Generate(e.to_string()))?;
    ca.distinguished_name
        .push(DnType::CommonName, format!("{subject} local CA"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca
        .self_signed(&ca_key)
        .map_err(|e| CertError::Generate(e.to_string()))?;
    write(&dir.join(CA_CERT), &ca_cert.pem())?;
    write(&dir.join(CA_KEY), &ca_key.serialize_pem())?;
    let (cert, key) = issue(&Issuer::new(ca, ca_key), subject)?;
    write(&dir.join(CERT), &cert)?;
    write(&dir.join(KEY), &key)?;
    Ok(true)
}

/// A certificate for `cn` (CN and DNS SAN, plus IP SAN 127.0.0.1) signed by `ca`, usable
/// as TLS client and server: (certificate PEM, key PEM).
pub fn issue(ca: &Issuer<'_, KeyPair>, cn: &str) -> Result<(String, String), CertError> {
    let key = KeyPair::generate().map_err(|e| CertError::Generate(e.to_string()))?;
    let mut p = CertificateParams::new(vec![cn.to_owned()])
        .map_err(|e| CertError::Generate(e.to_string()))?;
    p.subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = p
        .signed_by(&key, ca)
        .map_err(|e| CertError::Generate(e.to_string()))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The local CA of a data directory, to issue certificates for test peers and the demo.
pub fn local_ca(dir: &Path) -> Result<Issuer<'static, KeyPair>, CertError> {
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f)).map_err(|source| CertError::DataDir {
            path: dir.join(f).display().to_string(),
            source,
        })
    };
    let key = KeyPair::from_pem(&read(CA_KEY)?).map_err(|e| CertError::Generate(e.to_string()))?;
    Issuer::from_ca_cert_pem(&read(CA_CERT)?, key).map_err(|e| CertError::Generate(e.to_string()))
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
        let (policy, origin) = load(&cfg).unwrap();
        assert_eq!(origin, Origin::Generated(dir.clone()));
        assert_eq!(
            tls::certificate_names(policy.certificate())[0],
            "mswitch".to_owned()
        );
        let (again, origin) = load(&cfg).unwrap();
        assert_eq!(origin, Origin::Reused(dir.clone()));
        assert_eq!(again.certificate(), policy.certificate(), "made once");
        // A peer certificate from the local CA is trusted by the switch.
        let (peer_cert, _) = issue(&local_ca(&dir).unwrap(), "mswitch-peer").unwrap();
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
        let e = load(&cfg).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("TLS error: Error loading Private key file"),
            "{e}"
        );
        std::fs::remove_dir_all(&a).unwrap();
        std::fs::remove_dir_all(&b).unwrap();
    }
}

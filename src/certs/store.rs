//! The certificate store in the data directory (issue 18; the CTMS's four units, T7):
//! `data_dir/certs/<unit>/`, where an identity unit holds `chain.pem` and `key.pem` (mode
//! 0600) and a trust unit one `<sha256>.pem` per certificate. What is uploaded through the
//! API lands here, after the checks of [`super::checks`]; what the configuration file
//! names stays where it is and is shown beside it.
//!
//! Writes are atomic (a temporary file renamed over the old one), so a crash mid-upload
//! leaves the old identity whole.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use super::checks::Use;
use super::inspect::hex;

/// A unit of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unit {
    /// Trust anchors for the SIP trunk peers (the CTMS's CTM-trust and CAPF-trust).
    TrunkTrust,
    /// The switch's identity on the SIP trunk (the CTMS's LSC with its chain and key).
    SipIdentity,
    /// The admin web listener's identity (the CTMS's "tomcat"); absent: the SIP identity.
    AdminIdentity,
    /// Other trust anchors: the webhook receivers'.
    OtherTrust,
}

/// Every unit, in the order the API lists them.
pub const UNITS: [Unit; 4] = [
    Unit::SipIdentity,
    Unit::AdminIdentity,
    Unit::TrunkTrust,
    Unit::OtherTrust,
];

impl Unit {
    /// Its name in paths and the API.
    pub fn name(self) -> &'static str {
        match self {
            Self::TrunkTrust => "trunk-trust",
            Self::SipIdentity => "sip-identity",
            Self::AdminIdentity => "admin-identity",
            Self::OtherTrust => "other-trust",
        }
    }

    /// The unit named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        UNITS.into_iter().find(|u| u.name() == s)
    }

    /// What its certificates are checked for.
    pub fn usage(self) -> Use {
        match self {
            Self::SipIdentity => Use::Trunk,
            Self::AdminIdentity => Use::AdminWeb,
            Self::TrunkTrust | Self::OtherTrust => Use::Trust,
        }
    }

    /// An identity (certificate and key) rather than trust anchors.
    pub fn is_identity(self) -> bool {
        matches!(self, Self::SipIdentity | Self::AdminIdentity)
    }

    /// Where it is used, for the operator.
    pub fn used_for(self) -> &'static str {
        match self {
            Self::TrunkTrust => "verifying the SIP trunk peers (Unified CM) in and out",
            Self::SipIdentity => {
                "the switch's certificate on the SIP trunk, as server and client; also the admin web listener's when no admin-identity is set"
            }
            Self::AdminIdentity => "the admin web listener (status page and API)",
            Self::OtherTrust => "verifying webhook receivers (with the trunk trust)",
        }
    }
}

/// The store.
#[derive(Debug, Clone)]
pub struct CertStore {
    root: PathBuf,
}

const CHAIN: &str = "chain.pem";
const KEY: &str = "key.pem";
/// A certificate request waiting for the CA's answer, and its key.
const REQUEST: &str = "request.pem";
const PENDING_KEY: &str = "pending-key.pem";

/// PEM text of certificates.
pub fn certificates_pem(certs: &[CertificateDer<'_>]) -> String {
    certs.iter().map(|c| pem("CERTIFICATE", c)).collect()
}

/// RFC 7468 text of `der` (the encoder of the `pkcs8` crate we already use).
fn pem(label: &str, der: &[u8]) -> String {
    pkcs8::der::pem::encode_string(label, pkcs8::der::pem::LineEnding::LF, der).unwrap_or_default()
}

fn key_pem(key: &PrivateKeyDer<'_>) -> String {
    let label = match key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    pem(label, key.secret_der())
}

/// Writes `contents` to `path` through a temporary file renamed over it; `secret`: mode
/// 0600 from the start.
fn write_atomic(path: &Path, contents: &[u8], secret: bool) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut f = options.open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl CertStore {
    /// The store of `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("certs"),
        }
    }

    /// A unit's directory.
    pub fn dir(&self, unit: Unit) -> PathBuf {
        self.root.join(unit.name())
    }

    /// The identity uploaded into `unit`, if any.
    pub fn identity(
        &self,
        unit: Unit,
    ) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, sip::tls::TlsError>
    {
        let dir = self.dir(unit);
        if !dir.join(CHAIN).exists() {
            return Ok(None);
        }
        let chain = sip::tls::load_certificates(&dir.join(CHAIN))?;
        let key = sip::tls::load_private_key(&dir.join(KEY))?;
        Ok(Some((chain, key)))
    }

    /// Installs an identity (already checked): the key first, then the chain, each atomic.
    pub fn install_identity(
        &self,
        unit: Unit,
        chain: &[CertificateDer<'_>],
        key: &PrivateKeyDer<'_>,
    ) -> std::io::Result<()> {
        let dir = self.dir(unit);
        std::fs::create_dir_all(&dir)?;
        write_atomic(&dir.join(KEY), key_pem(key).as_bytes(), true)?;
        write_atomic(&dir.join(CHAIN), certificates_pem(chain).as_bytes(), false)
    }

    /// Keeps a certificate request and its key (0600) until the signed certificate comes.
    pub fn save_request(
        &self,
        unit: Unit,
        request_pem: &str,
        key_pem: &str,
    ) -> std::io::Result<()> {
        let dir = self.dir(unit);
        std::fs::create_dir_all(&dir)?;
        write_atomic(&dir.join(PENDING_KEY), key_pem.as_bytes(), true)?;
        write_atomic(&dir.join(REQUEST), request_pem.as_bytes(), false)
    }

    /// The pending certificate request of `unit`, PEM.
    pub fn request(&self, unit: Unit) -> Option<String> {
        std::fs::read_to_string(self.dir(unit).join(REQUEST)).ok()
    }

    /// The key of the pending request of `unit`.
    pub fn pending_key(&self, unit: Unit) -> Option<PrivateKeyDer<'static>> {
        let bytes = std::fs::read(self.dir(unit).join(PENDING_KEY)).ok()?;
        PrivateKeyDer::from_pem_slice(&bytes).ok()
    }

    /// Forgets the pending request (its certificate is installed).
    pub fn clear_request(&self, unit: Unit) {
        let _ = std::fs::remove_file(self.dir(unit).join(REQUEST));
        let _ = std::fs::remove_file(self.dir(unit).join(PENDING_KEY));
    }

    /// Removes the identity uploaded into `unit`; false when there was none.
    pub fn remove_identity(&self, unit: Unit) -> std::io::Result<bool> {
        let dir = self.dir(unit);
        if !dir.join(CHAIN).exists() {
            return Ok(false);
        }
        std::fs::remove_file(dir.join(CHAIN))?;
        let _ = std::fs::remove_file(dir.join(KEY));
        Ok(true)
    }

    /// The trust anchors uploaded into `unit`, with their file names' fingerprints.
    pub fn trust(&self, unit: Unit) -> Vec<CertificateDer<'static>> {
        let Ok(entries) = std::fs::read_dir(self.dir(unit)) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "pem"))
            .collect();
        paths.sort();
        paths
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .flat_map(|b| {
                CertificateDer::pem_slice_iter(&b)
                    .filter_map(Result::ok)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Adds trust anchors (already checked) to `unit`, one file each.
    pub fn add_trust(&self, unit: Unit, certs: &[CertificateDer<'_>]) -> std::io::Result<()> {
        let dir = self.dir(unit);
        std::fs::create_dir_all(&dir)?;
        for c in certs {
            let name = hex(ring::digest::digest(&ring::digest::SHA256, c).as_ref());
            write_atomic(
                &dir.join(format!("{name}.pem")),
                certificates_pem(std::slice::from_ref(c)).as_bytes(),
                false,
            )?;
        }
        Ok(())
    }

    /// Removes the trust anchor or CRL of SHA-256 `sha256` from `unit`; false when absent.
    pub fn remove_trust(&self, unit: Unit, sha256: &str) -> std::io::Result<bool> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(false);
        }
        for ext in ["pem", "crl"] {
            let path = self
                .dir(unit)
                .join(format!("{}.{ext}", sha256.to_ascii_lowercase()));
            match std::fs::remove_file(path) {
                Ok(()) => return Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// Adds revocation lists (already parsed) to a trust unit, one `<sha256>.crl` each.
    pub fn add_crls(
        &self,
        unit: Unit,
        crls: &[CertificateRevocationListDer<'_>],
    ) -> std::io::Result<()> {
        let dir = self.dir(unit);
        std::fs::create_dir_all(&dir)?;
        for c in crls {
            let name = hex(ring::digest::digest(&ring::digest::SHA256, c).as_ref());
            write_atomic(
                &dir.join(format!("{name}.crl")),
                pem("X509 CRL", c).as_bytes(),
                false,
            )?;
        }
        Ok(())
    }

    /// The revocation lists of a trust unit.
    pub fn crls(&self, unit: Unit) -> Vec<CertificateRevocationListDer<'static>> {
        let Ok(entries) = std::fs::read_dir(self.dir(unit)) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "crl"))
            .collect();
        paths.sort();
        paths
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .filter_map(|b| CertificateRevocationListDer::from_pem_slice(&b).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::test_pki::Ca;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mswitch-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn an_identity_and_trust_round_trip_and_are_removed() {
        let dir = temp("rt");
        let store = CertStore::new(&dir);
        let ca = Ca::new("Store CA");
        let (cert, key) = ca.trunk("sw1.example");
        assert!(store.identity(Unit::SipIdentity).unwrap().is_none());
        store
            .install_identity(Unit::SipIdentity, &[cert.clone(), ca.cert.clone()], &key)
            .unwrap();
        let (chain, back) = store.identity(Unit::SipIdentity).unwrap().unwrap();
        assert_eq!(chain, [cert, ca.cert.clone()]);
        assert_eq!(back.secret_der(), key.secret_der());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(store.dir(Unit::SipIdentity).join(KEY))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        store
            .add_trust(Unit::TrunkTrust, std::slice::from_ref(&ca.cert))
            .unwrap();
        assert_eq!(
            store.trust(Unit::TrunkTrust),
            std::slice::from_ref(&ca.cert)
        );
        let sha = hex(ring::digest::digest(&ring::digest::SHA256, &ca.cert).as_ref());
        assert!(
            !store
                .remove_trust(Unit::TrunkTrust, "../../etc/passwd")
                .unwrap()
        );
        assert!(store.remove_trust(Unit::TrunkTrust, &sha).unwrap());
        assert!(store.trust(Unit::TrunkTrust).is_empty());
        assert!(store.remove_identity(Unit::SipIdentity).unwrap());
        assert!(!store.remove_identity(Unit::SipIdentity).unwrap());
        assert_eq!(Unit::parse("admin-identity"), Some(Unit::AdminIdentity));
        assert_eq!(Unit::parse("tomcat"), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

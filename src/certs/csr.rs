//! Certificate signing requests (issue 18, seed 004 R58): a key made here (RSA 2048 by
//! default, RSA 4096 or ECDSA P-256/P-384 on request) and a PKCS#10 request with the CN and
//! SANs the admin gives, asking for serverAuth and clientAuth. The key waits in the store
//! (mode 0600) until the CA's certificate for it is installed; it never leaves the switch.

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose};
use serde::Deserialize;

use super::{CertError, KeyType, san_of};

/// `POST /api/v1/certificates/{unit}/csr`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrBody {
    /// The CN (default: the switch's `[tls] subject`).
    #[serde(default)]
    pub common_name: Option<String>,
    /// Further SANs: IP addresses or DNS names (the CN is always one).
    #[serde(default)]
    pub sans: Vec<String>,
    /// `rsa2048` (default), `rsa4096`, `ecdsa-p256`, `ecdsa-p384`.
    #[serde(default)]
    pub key: Option<String>,
}

/// A request and its key.
pub struct Csr {
    /// The PKCS#10 request, PEM.
    pub pem: String,
    /// Its key, PKCS#8 PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for Csr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never reaches a log.
        f.debug_struct("Csr")
            .field("pem", &self.pem)
            .finish_non_exhaustive()
    }
}

/// The key type named `s`.
pub fn key_type(s: Option<&str>) -> Result<KeyType, CertError> {
    match s.unwrap_or("rsa2048") {
        "rsa2048" => Ok(KeyType::Rsa2048),
        "rsa4096" => Ok(KeyType::Rsa4096),
        "ecdsa-p256" => Ok(KeyType::EcdsaP256),
        "ecdsa-p384" => Ok(KeyType::EcdsaP384),
        other => Err(CertError::Generate(format!(
            "key `{other}`: rsa2048, rsa4096, ecdsa-p256 or ecdsa-p384"
        ))),
    }
}

/// Makes a key and a request for `common_name` and `sans` (wildcards refused: seed 004
/// asks for certificates that name the node).
pub fn make(common_name: &str, sans: &[String], key: KeyType) -> Result<Csr, CertError> {
    let valid = |n: &str| !n.is_empty() && n.len() <= 253 && !n.contains('*');
    if !valid(common_name) || !sans.iter().all(|s| valid(s)) {
        return Err(CertError::Generate(
            "names must be 1-253 characters and no wildcard (seed 004: name the node)".into(),
        ));
    }
    let key = key.generate()?;
    let mut p = CertificateParams::new(Vec::<String>::new())
        .map_err(|e| CertError::Generate(e.to_string()))?;
    p.distinguished_name.push(DnType::CommonName, common_name);
    for name in std::iter::once(common_name).chain(sans.iter().map(String::as_str)) {
        let san = san_of(name)?;
        if !p.subject_alt_names.contains(&san) {
            p.subject_alt_names.push(san);
        }
    }
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let csr = p
        .serialize_request(&key)
        .map_err(|e| CertError::Generate(e.to_string()))?;
    Ok(Csr {
        pem: csr.pem().map_err(|e| CertError::Generate(e.to_string()))?,
        key_pem: key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::FromDer as _;

    fn parsed(pem: &str) -> Vec<u8> {
        use rustls::pki_types::pem::PemObject as _;
        rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec()
    }

    #[test]
    fn a_request_names_what_was_asked_and_its_signature_holds() {
        let csr = make("sw1.example", &["10.0.0.7".into()], KeyType::EcdsaP256).unwrap();
        let der = parsed(&csr.pem);
        let (_, req) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&der).unwrap();
        let info = &req.certification_request_info;
        assert_eq!(info.subject.to_string(), "CN=sw1.example");
        let mut names = Vec::new();
        let mut eku = (false, false);
        for ext in req.requested_extensions().into_iter().flatten() {
            match ext {
                x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) => {
                    names.extend(san.general_names.iter().map(ToString::to_string));
                }
                x509_parser::extensions::ParsedExtension::ExtendedKeyUsage(e) => {
                    eku = (e.server_auth, e.client_auth);
                }
                _ => {}
            }
        }
        assert_eq!(names, ["DNSName(sw1.example)", "IPAddress(0a:00:00:07)"]);
        assert_eq!(eku, (true, true));
        // Signed by the key that waits for the certificate (rcgen re-reads it).
        let key = rcgen::KeyPair::from_pem(&csr.key_pem).unwrap();
        assert_eq!(
            info.subject_pki.subject_public_key.data.as_ref(),
            key.public_key_raw()
        );
        // The CA's side: rcgen parses the request and verifies its signature.
        let params = rcgen::CertificateSigningRequestParams::from_der(&der.into()).unwrap();
        assert_eq!(params.params.subject_alt_names.len(), 2);
        assert!(!format!("{csr:?}").contains("PRIVATE"));
    }

    #[test]
    fn wildcards_and_unknown_keys_are_refused() {
        assert!(make("*.example", &[], KeyType::EcdsaP256).is_err());
        assert!(make("sw1", &["*.example".into()], KeyType::EcdsaP256).is_err());
        assert!(key_type(Some("dsa")).is_err());
        assert_eq!(key_type(None).unwrap(), KeyType::Rsa2048);
        assert_eq!(key_type(Some("ecdsa-p384")).unwrap(), KeyType::EcdsaP384);
    }
}

//! TLS for the SIP trunk (seeds-switch.md R5, R6, T3b): rustls with the ring provider,
//! TLS 1.3 preferred and 1.2 allowed, ECDHE with AES-GCM only; mutual authentication both
//! ways. A trunk peer's certificate must chain to the trust store, and its subject CN or a
//! SAN must equal the `subject` configured for that peer (what Unified CM's "X.509 Subject
//! Name" does, seed 002 l.1575). Certificates and keys load from PEM or DER.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};

/// The seed's line for a key that does not belong to its certificate (T1 L8).
pub const LOG_KEY_MISMATCH: &str = "TLS error: Error loading Private key file";
/// The seed's line when the peer's certificate is valid but not the configured subject:
/// the check after the handshake's own verification (T1 L9).
pub const LOG_SUBJECT_MISMATCH: &str =
    "TLS error: TLS connect failed because client side post-connection verification failed";
/// The seed's line when the peer's certificate does not chain to the trust store, has
/// expired, or is missing (T1 L9).
pub const LOG_NO_MATCHING_CERT: &str = "TLS error: TLS: didn't find matching cert";

/// A failure to load TLS material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no certificate (or no key) in PEM or DER.
    #[error("{path}: no {what} found (PEM or DER expected)")]
    Empty {
        /// The file.
        path: String,
        /// "certificate" or "private key".
        what: &'static str,
    },
    /// The key does not match the certificate (or the key is unusable).
    #[error("{LOG_KEY_MISMATCH}: {0}")]
    KeyMismatch(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The server side of an HTTPS listener (the admin API and page): `identity`, TLS 1.3 and
/// 1.2 with only the ECDHE AES-GCM suites (T3b), no client certificate (operators sign
/// in with a password), HTTP/1.1.
pub fn https_server_config(identity: Arc<CertifiedKey>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(FixedIdentity(identity)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The provider: ring, with only the ECDHE AES-GCM suites (T3b; no CHACHA20, no non-PFS).
pub fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::{cipher_suite as cs, default_provider};
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ],
        ..default_provider()
    })
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Every certificate in a file: a PEM bundle, or one DER certificate.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = parse_certificates(&bytes);
    if certs.is_empty() {
        return Err(TlsError::Empty {
            path: path.display().to_string(),
            what: "certificate",
        });
    }
    Ok(certs)
}

/// The certificates in PEM text, or the bytes as one DER certificate when they are not PEM.
pub fn parse_certificates(bytes: &[u8]) -> Vec<CertificateDer<'static>> {
    let pem: Vec<_> = CertificateDer::pem_slice_iter(bytes)
        .filter_map(Result::ok)
        .collect();
    if !pem.is_empty() {
        return pem;
    }
    // DER: a SEQUENCE that parses as a certificate.
    if x509_parser::parse_x509_certificate(bytes).is_ok_and(|(rest, _)| rest.is_empty()) {
        return vec![CertificateDer::from(bytes.to_vec())];
    }
    Vec::new()
}

/// The private key in a file: PEM (PKCS#8, SEC1 or PKCS#1), or DER PKCS#8.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .ok()
        .or_else(|| PrivateKeyDer::try_from(bytes).ok())
        .ok_or(TlsError::Empty {
            path: path.display().to_string(),
            what: "private key",
        })
}

/// Our certificate chain and key, checked to belong together.
pub fn identity(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let signer = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::KeyMismatch(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signer);
    certified
        .keys_match()
        .map_err(|e| TlsError::KeyMismatch(e.to_string()))?;
    Ok(Arc::new(certified))
}

/// The trust store from files (PEM bundles or DER certificates).
pub fn load_trust(paths: &[&Path]) -> Result<RootCertStore, TlsError> {
    Ok(load_trust_and_pins(paths)?.0)
}

/// The trust store from files, and the same certificates as pins: a peer that presents
/// exactly one of them (a self-signed Unified CM certificate uploaded as its trust,
/// issue 15) is accepted as itself, which a chain check refuses (a CA used as an end
/// entity).
pub fn load_trust_and_pins(
    paths: &[&Path],
) -> Result<(RootCertStore, Vec<CertificateDer<'static>>), TlsError> {
    let mut roots = RootCertStore::empty();
    let mut pins = Vec::new();
    for p in paths {
        for c in load_certificates(p)? {
            roots.add(c.clone())?;
            pins.push(c);
        }
    }
    Ok((roots, pins))
}

/// Whether `cert` is one of `pins` and valid at `now` (its own dates; the handshake's
/// signature proves the peer holds its key).
fn pinned(pins: &[CertificateDer<'static>], cert: &CertificateDer<'_>, now: UnixTime) -> bool {
    if !pins.iter().any(|p| p.as_ref() == cert.as_ref()) {
        return false;
    }
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return false;
    };
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let validity = parsed.validity();
    validity.not_before.timestamp() <= now && now <= validity.not_after.timestamp()
}

/// The names a certificate answers to: its subject CNs, then its DNS and IP SANs.
pub fn certificate_names(cert: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, x)) = x509_parser::parse_x509_certificate(cert) else {
        return Vec::new();
    };
    let mut names: Vec<String> = x
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
        .collect();
    if let Ok(Some(san)) = x.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push((*d).to_owned()),
                GeneralName::IPAddress(ip) => match ip.len() {
                    4 => names.push(
                        std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).unwrap_or_default())
                            .to_string(),
                    ),
                    16 => names.push(
                        std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).unwrap_or_default())
                            .to_string(),
                    ),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    names
}

/// Whether a certificate's CN or a SAN equals `subject` (DNS names compare without case).
pub fn subject_matches(cert: &CertificateDer<'_>, subject: &str) -> bool {
    certificate_names(cert)
        .iter()
        .any(|n| n.eq_ignore_ascii_case(subject))
}

/// The seed's log line for a handshake the peer's certificate made fail.
pub fn refusal_log_line(e: &rustls::Error) -> &'static str {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure) => {
            LOG_SUBJECT_MISMATCH
        }
        _ => LOG_NO_MATCHING_CERT,
    }
}

/// The line to log for a TLS handshake that failed: the seed's lines for certificate
/// failures (T1), and an honest line of its own for every other cause (issue 14: a cipher
/// or version mismatch, clear text on the TLS port and a client that hung up were all
/// logged as a certificate that did not match).
pub fn handshake_failure_line(e: &std::io::Error) -> &'static str {
    use rustls::AlertDescription as A;
    let Some(tls) = handshake_error(e) else {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => {
                "TLS handshake ended: the peer closed the connection"
            }
            _ => "TLS handshake failed: the connection failed",
        };
    };
    match tls {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            refusal_log_line(tls)
        }
        rustls::Error::AlertReceived(
            A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::CertificateRequired,
        ) => "TLS error: the peer refused our certificate",
        rustls::Error::PeerIncompatible(_)
        | rustls::Error::AlertReceived(
            A::HandshakeFailure | A::ProtocolVersion | A::InsufficientSecurity,
        ) => "TLS handshake failed: no protocol version or cipher suite in common",
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "TLS handshake failed: the peer did not speak TLS (clear text on the TLS port?)"
        }
        _ => "TLS handshake failed",
    }
}

/// Our TLS material: what every trunk connection uses, in and out.
#[derive(Clone)]
pub struct TlsPolicy {
    provider: Arc<CryptoProvider>,
    identity: Arc<CertifiedKey>,
    roots: Arc<RootCertStore>,
    /// Trusted certificates a peer may present as they are (self-signed peers).
    pins: Arc<Vec<CertificateDer<'static>>>,
    /// Revocation lists of the trust store's CAs: a peer certificate one of them lists is
    /// refused (issue 18, R59).
    crls: Arc<Vec<CertificateRevocationListDer<'static>>>,
}

impl std::fmt::Debug for TlsPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsPolicy")
            .field("trust_anchors", &self.roots.len())
            .finish_non_exhaustive()
    }
}

impl TlsPolicy {
    /// From our identity and the trust store.
    pub fn new(identity: Arc<CertifiedKey>, roots: RootCertStore) -> Self {
        Self {
            provider: provider(),
            identity,
            roots: Arc::new(roots),
            pins: Arc::new(Vec::new()),
            crls: Arc::new(Vec::new()),
        }
    }

    /// Refuses peer certificates that one of `crls` revokes (each verified against the
    /// CA that issued it when a handshake uses it; a CA without a list is not asked).
    pub fn with_crls(mut self, crls: Vec<CertificateRevocationListDer<'static>>) -> Self {
        self.crls = Arc::new(crls);
        self
    }

    /// Accepts a peer that presents exactly one of `pins` (still checked for its dates
    /// and its subject): how a self-signed Unified CM certificate is trusted.
    pub fn with_pins(mut self, pins: Vec<CertificateDer<'static>>) -> Self {
        self.pins = Arc::new(pins);
        self
    }

    /// Our certificate (the end entity).
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.identity.cert[0]
    }

    /// Our identity: certificate chain and key (the admin web listener's by default).
    pub fn identity(&self) -> Arc<CertifiedKey> {
        self.identity.clone()
    }

    /// The server side for connections from the trunk peer named `subject`: a client
    /// certificate is required, must chain to the trust store and name `subject`.
    pub fn server_config(&self, subject: &str) -> Result<Arc<ServerConfig>, TlsError> {
        let mut builder =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), self.provider.clone());
        if !self.crls.is_empty() {
            builder = builder
                .with_crls(self.crls.iter().cloned())
                .only_check_end_entity_revocation()
                .allow_unknown_revocation_status();
        }
        let webpki = builder
            .build()
            .map_err(|e| TlsError::Config(rustls::Error::General(e.to_string())))?;
        let verifier = Arc::new(SubjectClientVerifier {
            inner: webpki,
            subject: subject.to_owned(),
            pins: self.pins.clone(),
        });
        let config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(VERSIONS)?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(FixedIdentity(self.identity.clone())));
        Ok(Arc::new(config))
    }

    /// The client side toward the trunk peer named `subject`: its certificate must chain
    /// to the trust store and name `subject` (the host we dial is not what is checked;
    /// Unified CM certificates name the node, seed 004 l.171); we present ours.
    pub fn client_config(&self, subject: &str) -> Result<Arc<ClientConfig>, TlsError> {
        let crls = self
            .crls
            .iter()
            .map(|c| {
                webpki::OwnedCertRevocationList::from_der(c).map(webpki::CertRevocationList::from)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Config(rustls::Error::General(format!("CRL: {e:?}"))))?;
        let verifier = Arc::new(SubjectServerVerifier {
            roots: self.roots.clone(),
            crls: Arc::new(crls),
            pins: self.pins.clone(),
            subject: subject.to_owned(),
            algorithms: self.provider.signature_verification_algorithms,
        });
        let config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(VERSIONS)?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(Arc::new(FixedIdentity(self.identity.clone())));
        Ok(Arc::new(config))
    }
}

/// Always presents our one identity.
#[derive(Debug)]
struct FixedIdentity(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for FixedIdentity {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl rustls::client::ResolvesClientCert for FixedIdentity {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The webpki client check, then the subject check.
#[derive(Debug)]
struct SubjectClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    subject: String,
    pins: Arc<Vec<CertificateDer<'static>>>,
}

impl ClientCertVerifier for SubjectClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if !pinned(&self.pins, end_entity, now) {
            self.inner
                .verify_client_cert(end_entity, intermediates, now)?;
        }
        if subject_matches(end_entity, &self.subject) {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(CertificateError::ApplicationVerificationFailure.into())
        }
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The chain check against our trust store (webpki, serverAuth), then the subject check
/// in place of the host-name check.
#[derive(Debug)]
struct SubjectServerVerifier {
    roots: Arc<RootCertStore>,
    crls: Arc<Vec<webpki::CertRevocationList<'static>>>,
    pins: Arc<Vec<CertificateDer<'static>>>,
    subject: String,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for SubjectServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !pinned(&self.pins, end_entity, now) {
            let cert = ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                &self.roots,
                intermediates,
                now,
                self.algorithms.all,
            )?;
            if !self.crls.is_empty() {
                not_revoked(
                    end_entity,
                    intermediates,
                    &self.roots,
                    &self.crls,
                    now,
                    self.algorithms,
                )?;
            }
        }
        if subject_matches(end_entity, &self.subject) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(CertificateError::ApplicationVerificationFailure.into())
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The revocation check of a chain already verified: the end entity is in none of `crls`
/// (lists of CAs without one are not asked, RFC 5280 §6.3 leaves that to policy).
fn not_revoked(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    roots: &RootCertStore,
    crls: &[webpki::CertRevocationList<'static>],
    now: UnixTime,
    algorithms: WebPkiSupportedAlgorithms,
) -> Result<(), rustls::Error> {
    let refs: Vec<&webpki::CertRevocationList<'_>> = crls.iter().collect();
    let Ok(builder) = webpki::RevocationOptionsBuilder::new(&refs) else {
        return Ok(());
    };
    let revocation = builder
        .with_depth(webpki::RevocationCheckDepth::EndEntity)
        .with_status_policy(webpki::UnknownStatusPolicy::Allow)
        .build();
    let cert = webpki::EndEntityCert::try_from(end_entity)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    match cert.verify_for_usage(
        algorithms.all,
        &roots.roots,
        intermediates,
        now,
        webpki::KeyUsage::server_auth(),
        Some(revocation),
        None,
    ) {
        Ok(_) => Ok(()),
        Err(webpki::Error::CertRevoked) => Err(CertificateError::Revoked.into()),
        Err(e) => Err(CertificateError::Other(rustls::OtherError(Arc::new(e))).into()),
    }
}

/// The rustls error inside an I/O error from a tokio-rustls handshake.
pub fn handshake_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_handshake_failure_gets_its_own_honest_line() {
        let io = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let line = |e| handshake_failure_line(&io(e));
        assert_eq!(
            line(rustls::Error::InvalidCertificate(CertificateError::Expired)),
            LOG_NO_MATCHING_CERT
        );
        assert_eq!(
            line(rustls::Error::NoCertificatesPresented),
            LOG_NO_MATCHING_CERT
        );
        assert_eq!(
            line(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure
            )),
            LOG_SUBJECT_MISMATCH
        );
        assert!(
            line(rustls::Error::PeerIncompatible(
                rustls::PeerIncompatible::NoCipherSuitesInCommon
            ))
            .contains("cipher suite in common")
        );
        assert!(
            line(rustls::Error::AlertReceived(
                rustls::AlertDescription::ProtocolVersion
            ))
            .contains("protocol version")
        );
        assert!(
            line(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType
            ))
            .contains("did not speak TLS")
        );
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert!(handshake_failure_line(&eof).contains("closed the connection"));
    }
}

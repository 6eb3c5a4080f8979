//! Test PKI: a CA made with rcgen at test time, and leaf certificates for both ends.
#![allow(dead_code, unreachable_pub)]

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, date_time_ymd,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sip::tls::{self, TlsPolicy};

pub struct Ca {
    pub issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.as_ref().der().clone()
    }

    /// A leaf with CN `cn` and DNS SANs `sans`, usable as TLS client and server.
    pub fn leaf(
        &self,
        cn: &str,
        sans: &[&str],
        expired: bool,
    ) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let mut p =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        if expired {
            p.not_before = date_time_ymd(2020, 1, 1);
            p.not_after = date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (
            cert.der().clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }

    pub fn policy(&self, cn: &str, sans: &[&str], expired: bool) -> TlsPolicy {
        let (cert, key) = self.leaf(cn, sans, expired);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der()).unwrap();
        TlsPolicy::new(tls::identity(vec![cert], key).unwrap(), roots)
    }
}

/// A trunk on a loopback TCP listener whose one peer is 127.0.0.1 over TCP, with `limits`
/// on its connections, its events drained: (its SIP address, the drain task).
pub async fn tcp_trunk(
    limits: sip::conn_limits::StreamLimits,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use sip::driver::{Trunk, TrunkConfig};
    use sip::ua::{AgentConfig, Transport, TrunkPeer};
    let mut trunk = Trunk::start_with(
        TrunkConfig {
            udp: None,
            tcp: Some("127.0.0.1:0".parse().unwrap()),
            tls_listen: None,
            tls: None,
            agent: AgentConfig {
                peers: vec![TrunkPeer {
                    addr: "127.0.0.1:5060".parse().unwrap(),
                    transport: Transport::Tcp,
                    subject: None,
                    also: Vec::new(),
                }],
                options_interval: None,
                ..AgentConfig::default()
            },
        },
        limits,
    )
    .await
    .unwrap();
    let addr = trunk.local_addr(Transport::Tcp).unwrap();
    (
        addr,
        tokio::spawn(async move { while trunk.next_event().await.is_some() {} }),
    )
}

//! Mutual TLS between the switch and trunk peers over loopback TCP, with a test CA made by
//! rcgen: the right subject (CN or SAN) is accepted; a wrong subject, an unknown CA, an
//! expired certificate and a missing client certificate are refused with the seed's lines,
//! in both directions.

use std::sync::Arc;

mod common;

use common::Ca;
use rustls::pki_types::ServerName;
use sip::tls::{self, TlsPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Runs a handshake: `server` expects a client named `expect_client`, `client` expects a
/// server named `expect_server`. Returns (server result, client result) as log lines.
async fn handshake(
    server: &TlsPolicy,
    expect_client: &str,
    client: Arc<rustls::ClientConfig>,
) -> (Result<(), &'static str>, Result<(), String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(server.server_config(expect_client).unwrap());
    let server_side = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        match acceptor.accept(tcp).await {
            Ok(mut s) => {
                let mut b = [0u8; 5];
                s.read_exact(&mut b).await.unwrap();
                s.write_all(b"pong!").await.unwrap();
                s.flush().await.unwrap();
                Ok(())
            }
            Err(e) => Err(tls::refusal_log_line(
                tls::handshake_error(&e).expect("a TLS error"),
            )),
        }
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(client);
    let client_result = async {
        let mut s = connector
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(b"ping!").await.map_err(|e| e.to_string())?;
        let mut b = [0u8; 5];
        s.read_exact(&mut b).await.map_err(|e| e.to_string())?;
        Ok(())
    }
    .await;
    (server_side.await.unwrap(), client_result)
}

#[tokio::test]
async fn the_configured_subject_is_accepted_by_cn_or_san() {
    let ca = Ca::new("Test CA");
    let switch = ca.policy("mswitch", &[], false);
    for (cn, sans) in [("cucm1", &[][..]), ("node-7", &["cucm1"][..])] {
        let cucm = ca.policy(cn, sans, false);
        let (s, c) = handshake(&switch, "cucm1", cucm.client_config("mswitch").unwrap()).await;
        assert_eq!(s, Ok(()), "CN {cn}");
        assert_eq!(c, Ok(()), "CN {cn}");
    }
}

#[tokio::test]
async fn inbound_refusals_use_the_seed_lines() {
    let ca = Ca::new("Test CA");
    let switch = ca.policy("mswitch", &[], false);
    // The wrong subject: the chain is good, the name is not.
    let other = ca.policy("intruder", &["intruder.example"], false);
    let (s, c) = handshake(&switch, "cucm1", other.client_config("mswitch").unwrap()).await;
    assert_eq!(s, Err(tls::LOG_SUBJECT_MISMATCH));
    assert!(c.is_err());
    // An unknown CA.
    let stranger = Ca::new("Other CA");
    // (The rogue trusts our CA so that only our side refuses.)
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let (cert, key) = stranger.leaf("cucm1", &[], false);
    let rogue_trusting_us = TlsPolicy::new(tls::identity(vec![cert], key).unwrap(), roots.clone());
    let (s, _) = handshake(
        &switch,
        "cucm1",
        rogue_trusting_us.client_config("mswitch").unwrap(),
    )
    .await;
    assert_eq!(s, Err(tls::LOG_NO_MATCHING_CERT));
    // An expired certificate from the right CA with the right name.
    let expired = ca.policy("cucm1", &[], true);
    let (s, _) = handshake(&switch, "cucm1", expired.client_config("mswitch").unwrap()).await;
    assert_eq!(s, Err(tls::LOG_NO_MATCHING_CERT));
    // No client certificate at all.
    let no_cert = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (s, c) = handshake(&switch, "cucm1", Arc::new(no_cert)).await;
    assert_eq!(s, Err(tls::LOG_NO_MATCHING_CERT));
    assert!(c.is_err());
}

#[tokio::test]
async fn outbound_connections_check_the_peer_subject_too() {
    let ca = Ca::new("Test CA");
    let switch = ca.policy("mswitch", &[], false);
    // The peer we dial presents "impostor", but the trunk is configured for "cucm1".
    let impostor = ca.policy("impostor", &[], false);
    let (_, c) = handshake(&impostor, "mswitch", switch.client_config("cucm1").unwrap()).await;
    let c = c.unwrap_err();
    assert!(c.contains("ApplicationVerificationFailure"), "{c}");
    // The right one: accepted, and it sees our certificate.
    let cucm = ca.policy("cucm1", &[], false);
    let (s, c) = handshake(&cucm, "mswitch", switch.client_config("cucm1").unwrap()).await;
    assert_eq!((s, c), (Ok(()), Ok(())));
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused_with_the_seed_line() {
    let ca = Ca::new("Test CA");
    let (cert, _) = ca.leaf("mswitch", &[], false);
    let (_, other_key) = ca.leaf("mswitch", &[], false);
    let e = tls::identity(vec![cert], other_key).unwrap_err();
    assert!(e.to_string().starts_with(tls::LOG_KEY_MISMATCH), "{e}");
}

#[test]
fn certificates_and_keys_load_from_pem_and_der() {
    let dir = std::env::temp_dir().join(format!("mswitch-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = Ca::new("Test CA");
    let (cert, key) = ca.leaf("mswitch", &["sw.example"], false);
    let der = dir.join("cert.der");
    std::fs::write(&der, cert.as_ref()).unwrap();
    let pem = dir.join("bundle.pem");
    std::fs::write(
        &pem,
        format!("{}{}", ca.issuer.as_ref().pem(), ca.issuer.as_ref().pem()),
    )
    .unwrap();
    let key_der = dir.join("key.der");
    std::fs::write(&key_der, key.secret_der()).unwrap();
    assert_eq!(tls::load_certificates(&der).unwrap(), vec![cert.clone()]);
    assert_eq!(tls::load_certificates(&pem).unwrap().len(), 2);
    assert_eq!(tls::load_trust(&[&pem, &der]).unwrap().len(), 3);
    let loaded = tls::load_private_key(&key_der).unwrap();
    assert!(tls::identity(vec![cert.clone()], loaded).is_ok());
    assert_eq!(
        tls::certificate_names(&cert),
        vec!["mswitch".to_owned(), "sw.example".to_owned()]
    );
    let garbage = dir.join("garbage");
    std::fs::write(&garbage, b"not a certificate").unwrap();
    assert!(matches!(
        tls::load_certificates(&garbage),
        Err(tls::TlsError::Empty { .. })
    ));
    assert!(matches!(
        tls::load_private_key(&garbage),
        Err(tls::TlsError::Empty { .. })
    ));
    assert!(matches!(
        tls::load_certificates(&dir.join("missing")),
        Err(tls::TlsError::Read { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A self-signed certificate (as Unified CM's often is) for `cn`, with its policy: it
/// presents it, and trusts `trusts`.
fn self_signed(
    cn: &str,
    trusts: rustls::pki_types::CertificateDer<'static>,
) -> (rustls::pki_types::CertificateDer<'static>, TlsPolicy) {
    let mut p = rcgen::CertificateParams::new(vec![cn.to_owned()]).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap().der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        key.serialize_der(),
    ));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusts.clone()).unwrap();
    let policy = TlsPolicy::new(tls::identity(vec![cert.clone()], key).unwrap(), roots)
        .with_pins(vec![trusts]);
    (cert, policy)
}

#[tokio::test]
async fn a_trusted_self_signed_peer_certificate_is_accepted_both_ways() {
    // Issue 15: uploaded as the trust store, a self-signed Unified CM certificate was
    // refused (a CA used as an end entity).
    let ca = Ca::new("Test CA");
    let (cert, key) = ca.leaf("mswitch", &[], false);
    let identity = tls::identity(vec![cert.clone()], key).unwrap();
    let (cucm_cert, cucm) = self_signed("cucm-self", cert.clone());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cucm_cert.clone()).unwrap();
    let switch = TlsPolicy::new(identity, roots).with_pins(vec![cucm_cert.clone()]);
    // Unified CM calls the switch.
    let (s, c) = handshake(&switch, "cucm-self", cucm.client_config("mswitch").unwrap()).await;
    assert_eq!((s, c), (Ok(()), Ok(())), "inbound");
    // The switch calls Unified CM.
    let (s, c) = handshake(&cucm, "mswitch", switch.client_config("cucm-self").unwrap()).await;
    assert_eq!((s, c), (Ok(()), Ok(())), "outbound");
    // Another self-signed certificate with the same name is still refused.
    let (_, impostor) = self_signed("cucm-self", cert);
    let (s, _) = handshake(
        &switch,
        "cucm-self",
        impostor.client_config("mswitch").unwrap(),
    )
    .await;
    assert_eq!(s, Err(tls::LOG_NO_MATCHING_CERT), "an impostor");
}

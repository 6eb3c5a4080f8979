//! A webhook receiver for the tests: HTTPS with a CA of the test's, recording what it
//! gets, and the signature check a receiver does.
#![allow(dead_code)]

use std::sync::Arc;

/// A CA of the test's and a server certificate for 127.0.0.1 it signed, as PEM:
/// (ca, cert, key).
pub fn test_pki(name: &str) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("{name} CA"));
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".into()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// What a webhook receiver got: (timestamp, signature, body) per POST.
pub type Received = Arc<std::sync::Mutex<Vec<(String, String, String)>>>;

/// An HTTPS webhook receiver on `listener` with `cert`/`key`.
pub async fn receiver(listener: std::net::TcpListener, cert: &str, key: &str) -> Received {
    let got: Received = Arc::default();
    let store = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let store = store.clone();
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                store.lock().unwrap().push((
                    h("x-mswitch-timestamp"),
                    h("x-mswitch-signature"),
                    body,
                ));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let config = axum_server::tls_rustls::RustlsConfig::from_pem(
        cert.as_bytes().to_vec(),
        key.as_bytes().to_vec(),
    )
    .await
    .unwrap();
    let server = axum_server::tls_rustls::from_tcp_rustls(listener, config).unwrap();
    tokio::spawn(server.serve(app.into_make_service()));
    got
}

pub fn events_of(got: &Received, secret: &str) -> Vec<String> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    got.lock()
        .unwrap()
        .iter()
        .map(|(ts, sig, body)| {
            assert_eq!(
                sig,
                &format!(
                    "sha256={}",
                    mswitch::ops::webhooks::signature(&key, ts, body.as_bytes())
                ),
                "signed with the secret"
            );
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            v["event"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// The events `got` so far once `done` holds for them, or after 10 s (what came by then).
pub async fn events_when(
    got: &Received,
    secret: &str,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let mut events = Vec::new();
    for _ in 0..100 {
        events = events_of(got, secret);
        if done(&events) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    events
}

//! Events to an external manager (issue 17; seeds 000/001: the manager's feedback goes over
//! HTTPS, never falling back to HTTP): each `[[webhook]]` gets a JSON POST per event
//! (meeting started/ended, participant joined/left, security changed, trunk peer up/down),
//! signed with HMAC-SHA256 over `timestamp.body` in `X-Mswitch-Signature` (with
//! `X-Mswitch-Timestamp`), retried with backoff, from a bounded queue: call control only
//! ever `try_send`s, so a receiver that is slow, down or never answers costs media and
//! signalling nothing; what does not fit is dropped and counted.
//!
//! The receiver's certificate is verified against the webhook's `trust` files (else the
//! switch's trust store) by default; `verify = false` is an explicit choice, logged at
//! start. An `http://` URL is a configuration error.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use metrics::counter;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Events waiting per webhook; more are dropped (and counted).
pub const QUEUE: usize = 1024;
/// Attempts per event.
pub const ATTEMPTS: u32 = 5;
/// The first retry's wait; each next one doubles.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// How long one attempt may take (connect, TLS, answer).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// `[[webhook]]` as written.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `https://host[:port]/path`.
    pub url: String,
    /// The HMAC key (at least 16 characters).
    pub secret: String,
    /// Verify the receiver's certificate (default true).
    #[serde(default = "yes")]
    pub verify: bool,
    /// PEM or DER trust anchors for the receiver; [] = the switch's trust store.
    #[serde(default)]
    pub trust: Vec<String>,
}

fn yes() -> bool {
    true
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is never printed.
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("verify", &self.verify)
            .field("trust", &self.trust)
            .finish_non_exhaustive()
    }
}

/// A webhook, checked.
#[derive(Clone)]
pub struct Webhook {
    /// The URL, for logs.
    pub url: String,
    host: String,
    port: u16,
    path: String,
    secret: Arc<ring::hmac::Key>,
    /// Replaced when the store's trust changes (a hook with no `trust` of its own).
    tls: Arc<std::sync::RwLock<Arc<rustls::ClientConfig>>>,
    /// Verifies against the switch's trust (no `trust` files of its own).
    default_trust: bool,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is never printed.
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// `https://host[:port]/path` -> (host, port, path); anything else is an error.
pub fn parse_url(url: &str) -> Result<(String, u16, String), String> {
    let Some(rest) = url.strip_prefix("https://") else {
        return Err(format!(
            "`{url}`: only https:// (the manager's events never travel in clear)"
        ));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("`{url}`: bad host"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("`{url}`: bad port"))?,
            None if after.is_empty() => 443,
            None => return Err(format!("`{url}`: bad host")),
        };
        (h.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                p.parse().map_err(|_| format!("`{url}`: bad port"))?,
            ),
            None => (authority.to_owned(), 443),
        }
    };
    let ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    if !ok || path.chars().any(|c| c.is_ascii_control() || c == ' ') {
        return Err(format!("`{url}`: bad host or path"));
    }
    Ok((host, port, path.to_owned()))
}

/// Accepts any certificate: only with `verify = false`, the operator's explicit choice.
/// It still verifies against the switch's trust and logs what that would decide, when
/// the outcome changes (seeds-mgmt.md R30: so that turning verification on is safe).
#[derive(Debug)]
struct NoVerification {
    provider: Arc<rustls::crypto::CryptoProvider>,
    would: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    url: String,
    /// The last outcome logged: 0 none yet, 1 would verify, 2 would not.
    logged: std::sync::atomic::AtomicU8,
}

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use std::sync::atomic::Ordering;
        let outcome = self.would.as_ref().map(|v| {
            v.verify_server_cert(end_entity, intermediates, name, ocsp, now)
                .map(|_| ())
        });
        let code = match &outcome {
            Some(Ok(())) => 1,
            Some(Err(_)) => 2,
            None => 0,
        };
        if code != 0 && self.logged.swap(code, Ordering::Relaxed) != code {
            match outcome {
                Some(Err(e)) => {
                    tracing::warn!(url = %self.url, "webhook (verify = false): the receiver's certificate would NOT verify: {e}")
                }
                _ => {
                    tracing::info!(url = %self.url, "webhook (verify = false): the receiver's certificate would verify; verify = true is safe")
                }
            }
        }
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration verifying receivers against `roots`.
fn verifying(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, String> {
    Ok(
        rustls::ClientConfig::builder_with_provider(sip::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A trust store of `anchors` (those rustls will not take are left out).
fn roots_of(anchors: &[rustls::pki_types::CertificateDer<'static>]) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    let _ = roots.add_parsable_certificates(anchors.iter().cloned());
    roots
}

impl WebhookConfig {
    /// Checks it: the URL (https only), the secret, the trust files (`default_anchors`,
    /// the switch's trust, when none are given).
    pub fn check(
        &self,
        default_anchors: &[rustls::pki_types::CertificateDer<'static>],
    ) -> Result<Webhook, String> {
        let (host, port, path) = parse_url(&self.url)?;
        if self.secret.chars().count() < 16 {
            return Err("secret: at least 16 characters".into());
        }
        let provider = sip::tls::provider();
        let tls = if !self.verify {
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification {
                    would: rustls::client::WebPkiServerVerifier::builder_with_provider(
                        Arc::new(roots_of(default_anchors)),
                        provider.clone(),
                    )
                    .build()
                    .ok(),
                    provider,
                    url: self.url.clone(),
                    logged: std::sync::atomic::AtomicU8::new(0),
                }))
                .with_no_client_auth()
        } else if self.trust.is_empty() {
            verifying(roots_of(default_anchors))?
        } else {
            let paths: Vec<std::path::PathBuf> =
                self.trust.iter().map(std::path::PathBuf::from).collect();
            let refs: Vec<&std::path::Path> =
                paths.iter().map(std::path::PathBuf::as_path).collect();
            verifying(sip::tls::load_trust(&refs).map_err(|e| format!("trust: {e}"))?)?
        };
        Ok(Webhook {
            url: self.url.clone(),
            host,
            port,
            path,
            secret: Arc::new(ring::hmac::Key::new(
                ring::hmac::HMAC_SHA256,
                self.secret.as_bytes(),
            )),
            tls: Arc::new(std::sync::RwLock::new(Arc::new(tls))),
            default_trust: self.verify && self.trust.is_empty(),
        })
    }
}

/// One event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// `meeting_started`, `meeting_ended`, `participant_joined`, `participant_left`,
    /// `security_changed`, `trunk_peer_up`, `trunk_peer_down`.
    pub event: &'static str,
    /// Unix time, milliseconds.
    pub at_ms: u64,
    /// What it is about.
    pub data: serde_json::Value,
}

/// `hex(HMAC-SHA256(secret, timestamp "." body))`: what `X-Mswitch-Signature` carries
/// (after `sha256=`); a receiver recomputes it and compares in constant time.
pub fn signature(key: &ring::hmac::Key, timestamp: &str, body: &[u8]) -> String {
    let mut ctx = ring::hmac::Context::with_key(key);
    ctx.update(timestamp.as_bytes());
    ctx.update(b".");
    ctx.update(body);
    ctx.sign()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where call control puts events: one bounded queue per webhook.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    queues: Vec<mpsc::Sender<Event>>,
    /// The TLS of the hooks that verify against the switch's trust.
    default_trust: Vec<Arc<std::sync::RwLock<Arc<rustls::ClientConfig>>>>,
}

impl Notifier {
    /// Starts a delivery task per webhook (on the current runtime).
    pub fn start(hooks: Vec<Webhook>) -> Self {
        let default_trust = hooks
            .iter()
            .filter(|h| h.default_trust)
            .map(|h| h.tls.clone())
            .collect();
        let queues = hooks
            .into_iter()
            .map(|h| {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(deliver_all(h, rx));
                tx
            })
            .collect();
        Self {
            queues,
            default_trust,
        }
    }

    /// The switch's trust changed (issue 18: the store's trust units): the hooks without
    /// trust files of their own verify against `anchors` from their next connection.
    pub fn set_default_trust(&self, anchors: &[rustls::pki_types::CertificateDer<'static>]) {
        if self.default_trust.is_empty() {
            return;
        }
        let Ok(config) = verifying(roots_of(anchors)) else {
            return;
        };
        let config = Arc::new(config);
        for tls in &self.default_trust {
            if let Ok(mut t) = tls.write() {
                *t = config.clone();
            }
        }
    }

    /// Queues `event` for every webhook without waiting: a full queue drops it (counted).
    pub fn notify(&self, event: &Event) {
        for q in &self.queues {
            if q.try_send(event.clone()).is_err() {
                counter!("mswitch_webhook_events_total", "result" => "dropped").increment(1);
            }
        }
    }
}

async fn deliver_all(hook: Webhook, mut rx: mpsc::Receiver<Event>) {
    while let Some(event) = rx.recv().await {
        let Ok(body) = serde_json::to_vec(&event) else {
            continue;
        };
        let mut wait = FIRST_BACKOFF;
        let mut delivered = false;
        for attempt in 1..=ATTEMPTS {
            match tokio::time::timeout(ATTEMPT_TIMEOUT, post(&hook, &body)).await {
                Ok(Ok(status)) if (200..300).contains(&status) => {
                    delivered = true;
                    break;
                }
                Ok(Ok(status)) => {
                    tracing::debug!(url = %hook.url, attempt, status, "webhook refused")
                }
                Ok(Err(e)) => tracing::debug!(url = %hook.url, attempt, "webhook: {e}"),
                Err(_) => tracing::debug!(url = %hook.url, attempt, "webhook: no answer in time"),
            }
            if attempt < ATTEMPTS {
                counter!("mswitch_webhook_events_total", "result" => "retried").increment(1);
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        if delivered {
            counter!("mswitch_webhook_events_total", "result" => "delivered").increment(1);
        } else {
            counter!("mswitch_webhook_events_total", "result" => "failed").increment(1);
            tracing::warn!(url = %hook.url, event = event.event, "webhook: the event could not be delivered after {ATTEMPTS} attempts");
        }
    }
}

/// One POST: its status.
async fn post(hook: &Webhook, body: &[u8]) -> Result<u16, String> {
    let tcp = tokio::net::TcpStream::connect((
        hook.host.trim_matches(|c| c == '[' || c == ']'),
        hook.port,
    ))
    .await
    .map_err(|e| format!("connect: {e}"))?;
    let name = rustls::pki_types::ServerName::try_from(hook.host.clone())
        .map_err(|e| format!("server name: {e}"))?;
    let config = hook
        .tls
        .read()
        .map_err(|_| "TLS configuration unavailable".to_owned())?
        .clone();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    tokio::spawn(conn);
    let timestamp = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()))
    .to_string();
    let authority = if hook.port == 443 {
        hook.host.clone()
    } else {
        format!("{}:{}", hook.host, hook.port)
    };
    let req = hyper::Request::post(hook.path.as_str())
        .header("host", authority)
        .header("content-type", "application/json")
        .header("user-agent", concat!("mswitch/", env!("CARGO_PKG_VERSION")))
        .header("x-mswitch-timestamp", &timestamp)
        .header(
            "x-mswitch-signature",
            format!("sha256={}", signature(&hook.secret, &timestamp, body)),
        )
        .body(Full::new(Bytes::copy_from_slice(body)))
        .map_err(|e| e.to_string())?;
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let status = res.status().as_u16();
    let _ = res.into_body().collect().await;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_urls_with_a_host_are_taken() {
        assert_eq!(
            parse_url("https://mgr.example:8443/hooks/mswitch"),
            Ok(("mgr.example".into(), 8443, "/hooks/mswitch".into()))
        );
        assert_eq!(
            parse_url("https://10.0.0.9"),
            Ok(("10.0.0.9".into(), 443, "/".into()))
        );
        assert_eq!(
            parse_url("https://[::1]:9/x"),
            Ok(("::1".into(), 9, "/x".into()))
        );
        for bad in [
            "http://mgr.example/",
            "mgr.example",
            "https://",
            "https://a b/",
            "https://h:x/",
            "ftp://h/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        assert!(
            parse_url("http://mgr.example/")
                .unwrap_err()
                .contains("only https://")
        );
    }

    #[test]
    fn the_configuration_refuses_clear_text_and_short_secrets() {
        let parse = |hook: &str| crate::config::Config::parse(&format!("[[webhook]]\n{hook}"));
        let e = parse("url = \"http://mgr.example/hook\"\nsecret = \"0123456789abcdef\"\n")
            .unwrap_err();
        assert_eq!(e.key, "webhook[0].url");
        assert!(e.message.contains("only https://"), "{e}");
        let e = parse("url = \"https://mgr.example/hook\"\nsecret = \"short\"\n").unwrap_err();
        assert_eq!(e.key, "webhook[0].secret");
        let ok = parse(
            "url = \"https://mgr.example/hook\"\nsecret = \"0123456789abcdef\"\nverify = false\n",
        )
        .unwrap();
        assert!(!ok.webhooks[0].verify);
        assert!(
            !format!("{:?}", ok.webhooks).contains("0123456789abcdef"),
            "no secret in Debug"
        );
    }

    #[test]
    fn the_signature_is_hmac_sha256_over_the_timestamp_and_the_body() {
        let hex = |t: ring::hmac::Tag| -> String {
            t.as_ref().iter().map(|b| format!("{b:02x}")).collect()
        };
        // RFC 4231 §4.3 (test case 2) anchors the primitive.
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"Jefe");
        assert_eq!(
            hex(ring::hmac::sign(&key, b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            signature(&key, "1700000000", b"{\"event\":\"x\"}"),
            hex(ring::hmac::sign(&key, b"1700000000.{\"event\":\"x\"}"))
        );
        assert_ne!(
            signature(&key, "1700000001", b"{}"),
            signature(&key, "1700000000", b"{}")
        );
    }
}

//! The admin API over real HTTPS (issue 16): the switch's application on loopback with its
//! admin listener on a free port, signed in to with local accounts, acting on meetings of
//! simulated TIP endpoints over SIP/TLS.
//!
//! - 401 without credentials, 403 for a viewer's action, a CSRF token required with the
//!   cookie, the lockout after the configured failures, every change in the audit log;
//! - bad input (malformed JSON, wrong types, an oversized body, unknown routes) answered
//!   with a JSON error, never a panic; the plain-HTTP port only redirects;
//! - a configured meeting created through the API, kept in the data directory;
//! - kick ends a call with BYE; a locked meeting refuses a newcomer with 403;
//! - dial-out reaches an endpoint listening as the trunk peer, which joins the meeting;
//!   a trunk peer that answers 488 gets the seed's line (T1 L7).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::https::{Https, Reply};
use common::{ADMIN, VIEWER, bye_within, logged_within, switch_with_accounts, until_established};
use mswitch::endpoint::SimulatedCall;
use switch::dtls::DtlsIdentity;
use switch::testing::Endpoint;

fn audit(sw: &common::Switch) -> String {
    std::fs::read_to_string(sw.dir.join("audit.log")).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_roles_csrf_lockout_and_the_audit_log() {
    let sw = switch_with_accounts(
        "admin-auth",
        "33000-33099",
        "[admin]\nhttps = \"127.0.0.1:0\"\nhttp_redirect = \"127.0.0.1:0\"\nmetrics = \"\"\nmax_failed_logins = 3\n",
    )
    .await;
    let api = Https::new(sw.admin.unwrap(), &sw.dir);

    // No credentials, a wrong token: 401 with a JSON error.
    let r = api.send("GET", "/api/v1/status", &[], None).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (401, "unauthorized"),
        "{}",
        r.body
    );
    let r = api.get("/api/v1/meetings", "bm90IGEgdG9rZW4").await;
    assert_eq!(r.status, 401);
    let r = api.login(ADMIN.0, "not the password").await;
    assert_eq!((r.status, r.code().as_str()), (401, "login_failed"));

    // A viewer reads, and may not act.
    let viewer = api.token(VIEWER.0, VIEWER.1).await;
    let r = api.get("/api/v1/status", &viewer).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let status = r.json();
    assert_eq!(status["system"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        status["system"]["certificates"][0]["subject"], "CN=mswitch",
        "{status}"
    );
    let r = api
        .call(
            "PUT",
            "/api/v1/meetings/7000",
            &viewer,
            Some(r#"{"policy":"secure"}"#),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (403, "forbidden"));

    // The page's way: the cookie, and the CSRF token with every change.
    let login = api.login(ADMIN.0, ADMIN.1).await;
    assert_eq!(login.status, 200);
    let set_cookie = login.headers["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let csrf = login.json()["csrf"].as_str().unwrap().to_owned();
    let body = Some(r#"{"policy":"secure","switching":"segment"}"#);
    let r = api
        .send("PUT", "/api/v1/meetings/7000", &[("cookie", &cookie)], body)
        .await;
    assert_eq!((r.status, r.code().as_str()), (403, "csrf"), "{}", r.body);
    let r = api
        .send(
            "PUT",
            "/api/v1/meetings/7000",
            &[("cookie", &cookie), ("x-csrf-token", &csrf)],
            body,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let kept = std::fs::read_to_string(sw.dir.join("meetings.json")).unwrap();
    assert!(
        kept.contains("\"7000\"") && kept.contains("segment"),
        "{kept}"
    );
    let r = api
        .send("GET", "/api/v1/meetings/7000", &[("cookie", &cookie)], None)
        .await;
    let m = r.json();
    assert_eq!(
        (
            m["configured"].as_bool(),
            m["policy"].as_str(),
            m["switching"].as_str()
        ),
        (Some(true), Some("secure"), Some("segment")),
        "{m}"
    );

    // Bad input: a JSON error with a stable code, never a panic.
    let admin = api.token(ADMIN.0, ADMIN.1).await;
    for (method, path, body, status, code) in [
        (
            "PUT",
            "/api/v1/meetings/7001",
            Some("{"),
            400,
            "bad_request",
        ),
        (
            "PUT",
            "/api/v1/meetings/7001",
            Some(r#"{"policy":7}"#),
            400,
            "bad_request",
        ),
        (
            "PUT",
            "/api/v1/meetings/7001",
            Some(r#"{"policy":"secure","switching":7}"#),
            422,
            "bad_request",
        ),
        (
            "PUT",
            "/api/v1/meetings/7001",
            Some(r#"{"policy":"secure","extra":1}"#),
            422,
            "bad_request",
        ),
        (
            "PUT",
            "/api/v1/meetings/7001",
            Some(r#"{"policy":"secure","switching":"x"}"#),
            400,
            "bad_request",
        ),
        (
            "PUT",
            "/api/v1/meetings/a%20b",
            Some(r#"{"policy":"secure"}"#),
            400,
            "bad_number",
        ),
        (
            "DELETE",
            "/api/v1/meetings/4000/participants/x",
            None,
            400,
            "bad_path",
        ),
        (
            "POST",
            "/api/v1/meetings/4000/lock",
            None,
            404,
            "meeting_not_running",
        ),
        ("GET", "/api/v1/meetings/9999", None, 404, "no_such_meeting"),
        ("GET", "/api/v1/nothing", None, 404, "not_found"),
        ("PATCH", "/api/v1/status", None, 405, "method_not_allowed"),
    ] {
        let r = api.call(method, path, &admin, body).await;
        assert_eq!(
            (r.status, r.code()),
            (status, code.to_owned()),
            "{method} {path}: {}",
            r.body
        );
    }
    let big = format!(
        r#"{{"policy":"secure","switching":"{}"}}"#,
        "x".repeat(20_000)
    );
    let r = api
        .call("PUT", "/api/v1/meetings/7001", &admin, Some(&big))
        .await;
    assert_eq!((r.status, r.code().as_str()), (413, "too_large"));
    let r = api
        .send(
            "PUT",
            "/api/v1/meetings/7001",
            &[
                ("authorization", &format!("Bearer {admin}")),
                ("content-type", "text/plain"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, 415, "{}", r.body);

    // Lockout: the configured failures in a row lock the account, even to its password.
    for expected in [401, 401, 429] {
        assert_eq!(
            api.login(VIEWER.0, "guess guess guess").await.status,
            expected
        );
    }
    let r = api.login(VIEWER.0, VIEWER.1).await;
    assert_eq!((r.status, r.code().as_str()), (429, "locked"), "{}", r.body);
    assert!(r.headers.contains_key("retry-after"));

    // The plain-HTTP port only redirects to HTTPS.
    let redirect = redirect_of(sw.admin_redirect.unwrap()).await;
    let https_port = sw.admin.unwrap().port();
    assert!(
        redirect.starts_with("HTTP/1.1 308")
            && redirect.contains(&format!(
                "location: https://127.0.0.1:{https_port}/api/v1/status"
            )),
        "{redirect}"
    );
    // Only the ECDHE AES-GCM suites (T3b): a client offering only ChaCha20 gets nowhere.
    assert!(
        chacha_only_handshake(sw.admin.unwrap(), &sw.dir)
            .await
            .is_err()
    );
    // And the HTTPS port never answers in clear.
    let clear = clear_text_request(sw.admin.unwrap()).await;
    assert!(!clear.contains("HTTP/1.1 200"), "{clear}");

    // A new password set from the command line while the switch runs: the sessions
    // signed in before end, the old password no longer signs in, the new one does.
    mswitch::admin::store::set_password(
        &sw.dir,
        ADMIN.0,
        mswitch::admin::accounts::Role::Admin,
        "an entirely new passphrase",
        ("cli", "test", 0),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(api.get("/api/v1/status", &admin).await.status, 401);
    assert_eq!(api.login(ADMIN.0, ADMIN.1).await.status, 401);
    api.token(ADMIN.0, "an entirely new passphrase").await;

    let log = audit(&sw);
    for needle in [
        r#""user":"ops","#,
        r#""action":"login","result":"wrong user or password""#,
        r#""action":"PUT /api/v1/meetings/7000","result":"forbidden: role viewer""#,
        r#""action":"put meeting 7000 Secure Segment","result":"ok: "#,
        "locked until",
        r#""from":"127.0.0.1:"#,
    ] {
        assert!(log.contains(needle), "{needle} in {log}");
    }
    assert!(
        !log.contains(ADMIN.1) && !log.contains(VIEWER.1),
        "no password in the audit log"
    );
    sw.stop().await;
}

async fn redirect_of(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1:80\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

async fn chacha_only_handshake(
    addr: std::net::SocketAddr,
    data_dir: &std::path::Path,
) -> std::io::Result<()> {
    use rustls::crypto::ring::{cipher_suite, default_provider};
    let mut roots = rustls::RootCertStore::empty();
    for c in sip::tls::load_certificates(&data_dir.join("ca.pem")).unwrap() {
        roots.add(c).unwrap();
    }
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
            cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        ..default_provider()
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(rustls::pki_types::ServerName::from(addr.ip()), tcp)
        .await
        .map(|_| ())
}

async fn clear_text_request(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s
        .write_all(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Polls `GET path` until `check` holds (the page's counters come from the meetings'
/// reports, once a second); the last answer.
async fn until(
    api: &Https,
    token: &str,
    path: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..100 {
        let r: Reply = api.get(path, token).await;
        last = r.json();
        if r.status == 200 && check(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never held: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kick_sends_bye_and_a_locked_meeting_refuses_a_newcomer() {
    let sw = switch_with_accounts(
        "admin-kick",
        "33100-33299",
        "[[meeting]]\nnumber = \"4000\"\npolicy = \"secure\"\n",
    )
    .await;
    let api = Https::new(sw.admin.unwrap(), &sw.dir);
    let token = api.token(ADMIN.0, ADMIN.1).await;
    let dtls = Arc::new(DtlsIdentity::generate().unwrap());
    let mut calls = Vec::new();
    for ep in [Endpoint::new(1, 3), Endpoint::new(2, 1)] {
        calls.push(
            SimulatedCall::dial(ep, &sw.policy, sw.sip, "4000", false, &dtls)
                .await
                .unwrap(),
        );
    }
    assert!(until_established(&mut calls, 30).await, "TIP on every line");
    let m = until(&api, &token, "/api/v1/meetings/4000", |m| {
        m["participants"].as_array().is_some_and(|p| {
            p.len() == 2
                && p.iter().all(|p| {
                    p["lock_icon"] == true
                        && p["lines"].as_array().is_some_and(|l| {
                            l.len() == 2 && l.iter().all(|l| l["packets_in"].as_u64() > Some(0))
                        })
                })
        })
    })
    .await;
    assert_eq!(m["security"], "secure", "{m}");
    assert_eq!(m["policy"], "secure");
    let p = &m["participants"][0];
    assert_eq!(p["call_id"], calls[0].call_id.as_str(), "{m}");
    assert_eq!(p["lines"][0]["keying"], "dtls");
    assert_eq!(p["lines"][0]["tip"], "established");
    assert!(p["lines"][0]["srtp_profile"].is_string(), "{m}");
    assert_eq!(p["screens"], 3);

    // Lock: a newcomer gets 403, and the audit log says who locked it.
    let r = api
        .call("POST", "/api/v1/meetings/4000/lock", &token, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let refused = SimulatedCall::dial(
        Endpoint::new(3, 1),
        &sw.policy,
        sw.sip,
        "4000",
        false,
        &dtls,
    )
    .await;
    let Err(e) = refused else {
        panic!("a locked meeting took a newcomer")
    };
    assert!(e.to_string().contains("403"), "{e}");
    assert!(logged_within("call refused: the meeting is locked", 5).await);
    let r = api
        .call("POST", "/api/v1/meetings/4000/unlock", &token, None)
        .await;
    assert_eq!(r.status, 200);

    // Switching: segment, as the meeting shows.
    let r = api
        .call(
            "PUT",
            "/api/v1/meetings/4000/switching",
            &token,
            Some(r#"{"mode":"segment"}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Kick B: its call gets BYE, and it leaves the meeting.
    let b = m["participants"][1]["id"].as_u64().unwrap();
    let r = api
        .call(
            "DELETE",
            &format!("/api/v1/meetings/4000/participants/{b}"),
            &token,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["call_id"], calls[1].call_id.as_str());
    assert!(bye_within(&mut calls[1], 10).await, "B got BYE");
    let m = api.get("/api/v1/meetings/4000", &token).await.json();
    assert_eq!(m["participants"].as_array().map(Vec::len), Some(1), "{m}");
    assert_eq!(m["switching"], "segment");
    let r = api
        .call(
            "DELETE",
            &format!("/api/v1/meetings/4000/participants/{b}"),
            &token,
            None,
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (404, "no_such_participant"));

    // End: everyone gets BYE, the meeting stops running.
    let r = api
        .call("POST", "/api/v1/meetings/4000/end", &token, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(bye_within(&mut calls[0], 10).await, "A got BYE");
    let m = api.get("/api/v1/meetings/4000", &token).await.json();
    assert!(m["conf_id"].is_null(), "configured, not running: {m}");
    let log = audit(&sw);
    for needle in [
        "lock 4000",
        "unlock 4000",
        &format!("kick 4000/{b}"),
        "end 4000",
        "switching 4000 Segment",
    ] {
        assert!(log.contains(needle), "{needle} in {log}");
    }
    sw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_out_joins_an_endpoint_on_the_trunk_and_a_488_logs_the_seed_line() {
    // The test is the switch's trunk peer (Unified CM's place): a TLS listener presenting
    // `mswitch-peer`, which the switch dials.
    let peer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let sw = switch_with_accounts(
        "admin-dial",
        "33300-33499",
        &format!(
            "[[meeting]]\nnumber = \"4000\"\npolicy = \"secure\"\n\
             [[trunk]]\naddress = \"{peer_addr}\"\ntransport = \"tls\"\nsubject = \"mswitch-peer\"\n"
        ),
    )
    .await;
    let api = Https::new(sw.admin.unwrap(), &sw.dir);
    let token = api.token(ADMIN.0, ADMIN.1).await;
    let dtls = Arc::new(DtlsIdentity::generate().unwrap());
    let r = api
        .call(
            "POST",
            "/api/v1/meetings/4000/dial",
            &token,
            Some(r#"{"target":"5000"}"#),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let call_id = r.json()["call_id"].as_str().unwrap().to_owned();
    let mut calls = vec![
        SimulatedCall::answer(Endpoint::new(1, 1), &sw.policy, &peer, &dtls)
            .await
            .unwrap(),
    ];
    assert_eq!(calls[0].call_id, call_id);
    assert!(
        until_established(&mut calls, 30).await,
        "TIP on the dialled call"
    );
    let m = until(&api, &token, "/api/v1/meetings/4000", |m| {
        m["participants"][0]["lock_icon"] == true
    })
    .await;
    assert_eq!(m["participants"][0]["direction"], "out", "{m}");
    assert_eq!(m["participants"][0]["call_id"], call_id.as_str());
    assert_eq!(m["security"], "secure");

    // A trunk peer that refuses: 488 and the seed's line (T1 L7).
    let r = api
        .call(
            "POST",
            "/api/v1/meetings/4000/dial",
            &token,
            Some(r#"{"target":"5001"}"#),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let sip = &mut calls[0].sip;
    let invite = sip.request("INVITE").await.unwrap();
    let refuse = mswitch::endpoint::response(&invite, "488 Not Acceptable Here", sip.local, "");
    sip.send(&refuse).await.unwrap();
    assert!(
        logged_within(
            "Dialing 5001 received 488 Not Acceptable Here from Cisco Unified CM. Check SIP trunk config",
            10
        )
        .await
    );
    let m = until(&api, &token, "/api/v1/meetings/4000", |m| {
        m["participants"].as_array().map(Vec::len) == Some(1)
    })
    .await;
    assert_eq!(
        m["participants"][0]["call_id"],
        call_id.as_str(),
        "the refused call left nothing"
    );
    sw.stop().await;
}

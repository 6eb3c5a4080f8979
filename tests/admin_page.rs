//! The status page in a real browser (issue 16): Debian's Chromium, headless, driven over
//! the DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON messages ending in a
//! NUL byte on descriptors 3 and 4, set up here by the shell, no extra crate). It signs
//! in through the page's own form, sees the meeting of simulated endpoints with its
//! participants and its secure state, and after a kick through the API sees the
//! participant go, without a reload.
//!
//! `.ci/run` installs chromium and sets `MSWITCH_REQUIRE_CHROMIUM=1`, so there the test
//! cannot skip; elsewhere it skips with a line when no chromium is installed.

mod common;

use std::io::{BufRead, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use common::https::Https;
use common::{ADMIN, switch_with_accounts, until_established};
use mswitch::endpoint::SimulatedCall;
use serde_json::{Value, json};
use switch::dtls::DtlsIdentity;
use switch::testing::Endpoint;

/// Headless Chromium and its DevTools pipe.
struct Browser {
    child: Child,
    to: std::process::ChildStdin,
    from: Receiver<Value>,
    next_id: u64,
    session: Option<String>,
    profile: std::path::PathBuf,
}

impl Browser {
    /// Starts chromium trusting exactly the certificate whose SubjectPublicKeyInfo hashes
    /// to `spki_sha256` (base64), as a browser pinned to the switch would.
    fn start(binary: &str, spki_sha256: &str) -> Self {
        let profile = std::env::temp_dir().join(format!("mswitch-chromium-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        // The pipe: descriptor 3 is what chromium reads (our stdin pipe), 4 what it writes
        // (our stdout pipe); its own stdin and stdout go nowhere.
        let script = format!(
            "exec {binary} --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
             --disable-background-networking --disable-component-update --disable-sync \
             --disable-dev-shm-usage --remote-debugging-pipe --user-data-dir={} \
             --ignore-certificate-errors-spki-list={spki_sha256} about:blank \
             3<&0 4>&1 0</dev/null 1>/dev/null",
            profile.display()
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium starts");
        let to = child.stdin.take().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, from) = channel();
        std::thread::spawn(move || {
            let mut r = std::io::BufReader::new(out);
            let mut buf = Vec::new();
            while r.read_until(0, &mut buf).is_ok_and(|n| n > 0) {
                buf.pop();
                if let Ok(v) = serde_json::from_slice::<Value>(&buf)
                    && tx.send(v).is_err()
                {
                    return;
                }
                buf.clear();
            }
        });
        Self {
            child,
            to,
            from,
            next_id: 1,
            session: None,
            profile,
        }
    }

    /// Sends a DevTools command (to the attached page when there is one) and waits for
    /// its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).unwrap();
        self.to.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .from
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer to {method}"));
            if v["id"] == json!(id) {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Opens `url` in a new page and attaches to it.
    fn open(&mut self, url: &str) {
        let target = self.call("Target.createTarget", json!({ "url": "about:blank" }));
        let attached = self.call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        );
        self.session = attached["sessionId"].as_str().map(str::to_owned);
        self.call("Page.navigate", json!({ "url": url }));
    }

    /// The value of a JavaScript expression in the page (`null` while it throws).
    fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        r["result"]["value"].clone()
    }

    /// Evaluates `expression` until `check` holds on its value; the last value.
    fn until(&mut self, expression: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.eval(expression);
            if check(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "never held: {expression} -> {v}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// chromium's path, or `None` to skip (never under `.ci/run`).
fn chromium() -> Option<String> {
    for c in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if std::path::Path::new(c).exists() {
            return Some(c.into());
        }
    }
    assert!(
        std::env::var_os("MSWITCH_REQUIRE_CHROMIUM").is_none(),
        "MSWITCH_REQUIRE_CHROMIUM is set and no chromium is installed"
    );
    eprintln!("skipped: no chromium (apt-get install chromium; .ci/run does)");
    None
}

/// base64(SHA-256(SubjectPublicKeyInfo)) of the first certificate in `pem_path`.
fn spki_pin(pem_path: &std::path::Path) -> String {
    use base64::Engine;
    use x509_parser::prelude::{FromDer, X509Certificate};
    let der = sip::tls::load_certificates(pem_path).unwrap().remove(0);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.public_key().raw);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// What the page shows of its meetings: number, security, participants' Call-IDs, and
/// the kick buttons.
const MEETINGS: &str = r#"[...document.querySelectorAll('#meetings .meeting')].map(m => ({
    number: m.dataset.number,
    security: m.querySelector('.security') && m.querySelector('.security').dataset.security,
    text: m.querySelector('.security') && m.querySelector('.security').textContent,
    participants: [...m.querySelectorAll('.participant')].map(p => p.dataset.callId),
    kick_buttons: m.querySelectorAll('button.kick').length,
}))"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_the_meeting_and_a_kick_without_a_reload() {
    let Some(binary) = chromium() else {
        return;
    };
    let sw = switch_with_accounts(
        "admin-page",
        "33500-33699",
        "[[meeting]]\nnumber = \"4000\"\npolicy = \"secure\"\n",
    )
    .await;
    let dtls = Arc::new(DtlsIdentity::generate().unwrap());
    let mut calls = Vec::new();
    // The demo's meeting: A with three screens, B and C with one.
    for ep in [
        Endpoint::new(1, 3),
        Endpoint::new(2, 1),
        Endpoint::new(3, 1),
    ] {
        calls.push(
            SimulatedCall::dial(ep, &sw.policy, sw.sip, "4000", false, &dtls)
                .await
                .unwrap(),
        );
    }
    assert!(until_established(&mut calls, 30).await, "TIP on every line");
    let (a, b, c) = (
        calls[0].call_id.clone(),
        calls[1].call_id.clone(),
        calls[2].call_id.clone(),
    );
    let admin = sw.admin.unwrap();
    let pin = spki_pin(&sw.dir.join("mswitch.pem"));
    let url = format!("https://127.0.0.1:{}/", admin.port());
    let page = tokio::task::spawn_blocking(move || {
        let mut browser = Browser::start(&binary, &pin);
        browser.open(&url);
        // Signed out: the page's form, filled and sent as a person would.
        browser.until(
            "document.getElementById('login') && !document.getElementById('login').hidden",
            |v| v == &json!(true),
        );
        let fill = format!(
            "document.getElementById('user').value = {}; \
             document.getElementById('password').value = {}; \
             document.getElementById('login').requestSubmit(); true",
            json!(ADMIN.0),
            json!(ADMIN.1)
        );
        browser.eval(&fill);
        let shown = browser.until(MEETINGS, |v| {
            v[0]["participants"].as_array().map(Vec::len) == Some(3)
                && v[0]["security"] == json!("secure")
        });
        // Once the lines' counters are in (the meetings report every second).
        browser.until("document.body.innerText.includes('TIP established')", |v| {
            v == &json!(true)
        });
        eprintln!(
            "the page as rendered:\n{}",
            browser
                .eval("document.body.innerText")
                .as_str()
                .unwrap_or_default()
        );
        // The management security level (seeds 000/001) and the certificates' days left.
        let text = browser.eval("document.body.innerText");
        let text = text.as_str().unwrap_or_default();
        assert!(
            text.contains("level 4 of 4 (lowest of: admin HTTPS 4, SIP over TLS 4"),
            "{text}"
        );
        assert!(
            !text.contains("⚠"),
            "no certificate close to expiry: {text}"
        );
        browser.eval("window.__sameDocument = 'yes'");
        (browser, shown)
    })
    .await
    .unwrap();
    let (mut browser, shown) = page;
    assert_eq!(shown[0]["number"], json!("4000"), "{shown}");
    assert!(
        shown[0]["text"].as_str().unwrap().contains("secure"),
        "{shown}"
    );
    assert_eq!(shown[0]["participants"], json!([a, b, c]), "{shown}");
    assert_eq!(
        shown[0]["kick_buttons"],
        json!(3),
        "an admin sees the actions"
    );

    // A kick through the API: the page drops the participant on its own.
    let api = Https::new(admin, &sw.dir);
    let token = api.token(ADMIN.0, ADMIN.1).await;
    let m = api.get("/api/v1/meetings/4000", &token).await.json();
    let id = m["participants"][2]["id"].as_u64().unwrap();
    let r = api
        .call(
            "DELETE",
            &format!("/api/v1/meetings/4000/participants/{id}"),
            &token,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let after = tokio::task::spawn_blocking(move || {
        let after = browser.until(MEETINGS, |v| {
            v[0]["participants"].as_array().map(Vec::len) == Some(2)
        });
        let same = browser.eval("window.__sameDocument");
        (after, same)
    })
    .await
    .unwrap();
    assert_eq!(after.0[0]["participants"], json!([a, b]), "{}", after.0);
    assert_eq!(after.1, json!("yes"), "the page was not reloaded");
    sw.stop().await;
}

//! The `mswitch` binary as an operator runs it: exit codes and the messages that go with
//! them.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn mswitch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mswitch"))
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mswitch-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_bad_configuration_exits_2_naming_the_key() {
    let d = temp("bad");
    std::fs::write(d.join("c.toml"), "[media]\nports = \"9-1\"\n").unwrap();
    let out = mswitch()
        .args(["run", "--config"])
        .arg(d.join("c.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("media.ports"), "{err}");
    let out = mswitch().args(["run", "--nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = mswitch().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_dir_all(&d).unwrap();
}

/// Runs `mswitch run` in `dir` with `config`; returns the child. The admin listeners go
/// to free loopback ports unless `config` places them (tests run side by side; the
/// defaults are 443 and 80).
fn run(dir: &PathBuf, config: &str) -> std::process::Child {
    let config = if config.contains("[admin]") {
        config.to_owned()
    } else {
        format!(
            "{config}[admin]\nhttps = \"127.0.0.1:0\"\nhttp_redirect = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\n"
        )
    };
    std::fs::write(dir.join("c.toml"), config).unwrap();
    mswitch()
        .args(["run", "--config", "c.toml"])
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The child's stderr, line by line, as it comes.
struct Log {
    rx: std::sync::mpsc::Receiver<String>,
    text: String,
}

impl Log {
    fn of(child: &mut std::process::Child) -> Self {
        use std::io::BufRead;
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            rx,
            text: String::new(),
        }
    }

    /// Reads until a line contains `needle`, or `secs` pass, or the stream ends.
    fn until(&mut self, needle: &str, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.text.push_str(&line);
                    self.text.push('\n');
                    if line.contains(needle) {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }

    /// Everything, once the child has exited (its stderr closes).
    fn rest(mut self) -> String {
        while let Ok(line) = self.rx.recv_timeout(Duration::from_secs(10)) {
            self.text.push_str(&line);
            self.text.push('\n');
        }
        self.text
    }
}

/// Waits for the switch's start line; its log from there on.
fn started(child: &mut std::process::Child) -> Log {
    let mut log = Log::of(child);
    assert!(log.until("mswitch running", 60), "started: {}", log.text);
    log
}

/// Sends `sig` (`-TERM`, `-HUP`) to the child.
fn signal(child: &std::process::Child, sig: &str) {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success()
    );
}

fn wait(child: &mut std::process::Child, secs: u64) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

const LISTEN: &str = "[sip]\nudp = \"127.0.0.1:0\"\ntcp = \"127.0.0.1:0\"\ntls = \"127.0.0.1:0\"\noptions_interval = 0\n";

#[test]
fn without_a_certificate_one_is_made_and_sigterm_exits_0() {
    let d = temp("term");
    let mut child = run(&d, LISTEN);
    let log = started(&mut child);
    signal(&child, "-TERM");
    assert_eq!(wait(&mut child, 10), Some(0), "SIGTERM: exit 0");
    let err = log.rest();
    assert!(
        err.contains("no certificate configured: made a local CA"),
        "{err}"
    );
    assert!(err.contains("every call gets BYE"), "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn json_log_lines_and_a_drain_on_sigterm() {
    // Issue 17: one JSON object per line for log shippers, the message verbatim; the
    // first SIGTERM drains, and with no call left the switch is done at once (exit 0).
    let d = temp("json");
    let mut child = run(&d, &format!("{LISTEN}[log]\nformat = \"json\"\n"));
    let log = started(&mut child);
    signal(&child, "-TERM");
    assert_eq!(wait(&mut child, 10), Some(0), "SIGTERM: exit 0");
    let err = log.rest();
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("draining: new calls get 503")),
        "{err}"
    );
    assert!(messages.contains(&"drained: every call has ended"), "{err}");
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string())
    );
    let mut child = run(&d, &format!("{LISTEN}[log]\nformat = \"xml\"\n"));
    assert_eq!(wait(&mut child, 10), Some(2), "log.format is checked");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_key_that_is_not_the_certificates_exits_2_with_the_seed_line() {
    let d = temp("key");
    mswitch::certs::ensure_local_identity(&d.join("one"), "one").unwrap();
    mswitch::certs::ensure_local_identity(&d.join("two"), "two").unwrap();
    let mut child = run(
        &d,
        &format!(
            "{LISTEN}[tls]\ncertificate = \"one/mswitch.pem\"\nkey = \"two/mswitch.key\"\ntrust = [\"one/ca.pem\"]\n"
        ),
    );
    assert_eq!(wait(&mut child, 10), Some(2));
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("TLS error: Error loading Private key file"),
        "{err}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn sighup_reloads_the_certificates_and_the_switch_goes_on() {
    // Issue 14: SIGHUP ended the switch at once (exit 129, no BYE, no log line); issue
    // 18: it reloads the configured certificate paths.
    let d = temp("hup");
    let mut child = run(&d, LISTEN);
    let log = started(&mut child);
    signal(&child, "-HUP");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "still running after SIGHUP"
    );
    signal(&child, "-TERM");
    assert_eq!(wait(&mut child, 10), Some(0), "SIGTERM: exit 0");
    let err = log.rest();
    assert!(err.contains("SIGHUP: certificates reloaded"), "{err}");
    assert!(err.contains("every call gets BYE"), "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn start_up_errors_name_what_failed() {
    // Issue 14: a bind failure did not name the address; absurd values passed validation.
    let d = temp("edges");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut child = run(
        &d,
        &format!("[sip]\nudp = \"\"\ntcp = \"\"\ntls = \"{addr}\"\noptions_interval = 0\n"),
    );
    assert_eq!(wait(&mut child, 10), Some(1), "a listener that cannot bind");
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains(&format!("SIP TLS listener {addr}")), "{err}");
    for (bad, key) in [
        ("[media]\nworkers = 100000\n", "media.workers"),
        (
            "[sip]\nsession_expires = 100\nmin_se = 120\n",
            "sip.session_expires",
        ),
    ] {
        let mut child = run(&d, bad);
        assert_eq!(wait(&mut child, 10), Some(2), "{bad}");
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(err.contains(key), "{err}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_first_run_says_what_to_check_and_does_not_call_itself() {
    // Issue 15: with no configuration the switch opened TLS to its own listener (the
    // default trunk peer) and logged two TLS errors; it said nothing an operator could
    // check it against.
    let d = temp("firstrun");
    // The defaults but for the listener ports (tests run side by side): the default
    // trunk peer, 127.0.0.1:5061, is only ourselves when we listen on 5061, so listen
    // there only if it is free.
    let port_free = std::net::TcpListener::bind("127.0.0.1:5061").is_ok();
    let tls = if port_free {
        "127.0.0.1:5061"
    } else {
        "127.0.0.1:0"
    };
    let mut child = run(&d, &format!("[sip]\ntls = \"{tls}\"\n"));
    let log = started(&mut child);
    // Long enough for a keep-alive toward ourselves to have failed, were one sent.
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, "-TERM");
    assert_eq!(wait(&mut child, 10), Some(0));
    let err = log.rest();
    assert!(
        err.contains(
            "trunk peers taken: 127.0.0.1 over Tls presenting a certificate for mswitch-peer"
        ),
        "{err}"
    );
    assert!(
        err.contains("CallManager-trust") && err.contains("ca.pem"),
        "{err}"
    );
    assert!(err.contains("X.509 Subject Name to `mswitch`"), "{err}");
    assert!(
        err.contains("to call a meeting: INVITE sip:NUMBER@"),
        "{err}"
    );
    // Issue 16: the first start makes an admin account and says once how to sign in.
    assert!(
        err.contains("made `admin` with the password ")
            && err.contains("status page and admin API: https://127.0.0.1:"),
        "{err}"
    );
    let accounts = std::fs::read_to_string(d.join("mswitch-data/accounts.json")).unwrap();
    assert!(accounts.contains("\"admin\"") && accounts.contains("$argon2id$"));
    if port_free {
        assert!(err.contains("no keep-alive is sent"), "{err}");
        assert!(!err.contains("TLS error"), "no TLS toward ourselves: {err}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn admin_passwd_keeps_an_argon2id_hash_and_an_audit_entry() {
    // Issue 16 (accounts, in progress): the password comes on standard input, never as an
    // argument; the file keeps only its hash; every change is audited.
    let d = temp("passwd");
    std::fs::write(d.join("c.toml"), "[tls]\ndata_dir = \"data\"\n").unwrap();
    let set = |password: &str| {
        let mut child = mswitch()
            .args([
                "admin", "passwd", "ops", "--role", "viewer", "--config", "c.toml",
            ])
            .current_dir(&d)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(
            child.stdin.as_mut().unwrap(),
            format!("{password}\n").as_bytes(),
        )
        .unwrap();
        child.wait_with_output().unwrap()
    };
    let short = set("short");
    assert_eq!(short.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12"));
    let ok = set("correct horse battery");
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let accounts = std::fs::read_to_string(d.join("data/accounts.json")).unwrap();
    assert!(
        accounts.contains("$argon2id$") && accounts.contains("\"viewer\""),
        "{accounts}"
    );
    assert!(!accounts.contains("correct horse battery"));
    let audit = std::fs::read_to_string(d.join("data/audit.log")).unwrap();
    assert_eq!(audit.lines().count(), 2, "{audit}");
    assert!(
        audit.lines().next().unwrap().contains("at least 12"),
        "{audit}"
    );
    assert!(
        audit.lines().nth(1).unwrap().contains("\"result\":\"ok\""),
        "{audit}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

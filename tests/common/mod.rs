//! Shared by the end-to-end tests: the switch (`mswitch run`'s application) on loopback,
//! and a capture of everything it logs, for the tests that check the seed's lines.
#![allow(dead_code, unreachable_pub)]

pub mod etcd;
pub mod https;
pub mod ports;
pub mod webhook;

/// Whether the program a test drives is installed (`program arg` runs); when it is not,
/// the test is skipped with `hint`, unless `require_env` is set (CI sets it after
/// installing the program), which fails it.
pub fn tool_available(program: &str, arg: &str, require_env: &str, hint: &str) -> bool {
    let found = std::process::Command::new(program)
        .arg(arg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var(require_env).is_err(),
            "{require_env} is set but {program} is not installed"
        );
        eprintln!("{program} is not installed: {hint}");
    }
    found
}

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use mswitch::app::App;
use mswitch::config::Config;
use sip::tls::TlsPolicy;
use sip::ua::Transport;

/// Everything the application logged in this test process.
pub fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        struct W;
        impl Write for W {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                logs().lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(|| W)
            .try_init();
        Mutex::new(Vec::new())
    })
}

/// Whether the application logged `needle`.
pub fn logged(needle: &str) -> bool {
    String::from_utf8_lossy(&logs().lock().unwrap()).contains(needle)
}

/// Whether the application logs `needle` within `secs` seconds (for lines that follow a
/// message the switch handles after the test sent it).
pub async fn logged_within(needle: &str, secs: u64) -> bool {
    let until = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < until {
        if logged(needle) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    logged(needle)
}

/// The admin accounts a switch of [`switch_with_accounts`] has: (user, password).
pub const ADMIN: (&str, &str) = ("ops", "correct horse battery staple");
/// A viewer account.
pub const VIEWER: (&str, &str) = ("watcher", "a viewer's long password");

/// A running switch.
pub struct Switch {
    /// Its SIP/TLS address.
    pub sip: SocketAddr,
    /// Its admin API (HTTPS).
    pub admin: Option<SocketAddr>,
    /// Its plain-HTTP redirect.
    pub admin_redirect: Option<SocketAddr>,
    /// Its plain-HTTP metrics and health listener.
    pub metrics: Option<SocketAddr>,
    /// Drain it (`Stop::Drain`), or stop it.
    pub stops: tokio::sync::mpsc::UnboundedSender<mswitch::app::Stop>,
    /// Its data directory (local CA).
    pub dir: PathBuf,
    /// Ends when the switch's loop does.
    pub running: tokio::task::JoinHandle<()>,
    /// The TLS identity of trunk-peer clients (`mswitch-peer` from the local CA).
    pub policy: TlsPolicy,
}

/// The switch with `meetings` (TOML `[[meeting]]` tables), media `ports`, TIP deadlines.
pub async fn switch(name: &str, ports: &str, meetings: &str, tip_secs: f64) -> Switch {
    switch_with(name, ports, meetings, tip_secs).await
}

/// [`switch`] with `extra` TOML: `[[meeting]]` tables, or a `[sip]` table of its own whose
/// keys join the test's.
pub async fn switch_with(name: &str, ports: &str, extra: &str, tip_secs: f64) -> Switch {
    switch_in(name, ports, extra, tip_secs, false).await
}

/// [`switch_with`] whose data directory has the accounts [`ADMIN`] and [`VIEWER`] before
/// the switch starts.
pub async fn switch_with_accounts(name: &str, ports: &str, extra: &str) -> Switch {
    switch_in(name, ports, extra, 15.0, true).await
}

/// [`switch_with_accounts`] with TIP deadlines of `tip_secs`.
pub async fn switch_with_accounts_tip(
    name: &str,
    ports: &str,
    extra: &str,
    tip_secs: f64,
) -> Switch {
    switch_in(name, ports, extra, tip_secs, true).await
}

async fn switch_in(name: &str, ports: &str, extra: &str, tip_secs: f64, accounts: bool) -> Switch {
    let _ = logs();
    let (sip_extra, meetings) = match extra.strip_prefix("[sip]\n") {
        Some(rest) => (rest, ""),
        None => ("", extra),
    };
    let dir = std::env::temp_dir().join(format!("mswitch-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    if accounts {
        use mswitch::admin::accounts::Role;
        for ((user, password), role) in [(ADMIN, Role::Admin), (VIEWER, Role::Viewer)] {
            mswitch::admin::store::set_password(&dir, user, role, password, ("test", "test", 0))
                .unwrap();
        }
    }
    let settings = Config::parse(&format!(
        "[sip]\nudp = \"\"\ntcp = \"\"\ntls = \"127.0.0.1:0\"\noptions_interval = 0\n{sip_extra}\
         [tls]\ndata_dir = \"{}\"\n[media]\nports = \"{ports}\"\naddress = \"127.0.0.1\"\nworkers = 2\n\
         [tip]\nmuxctrl_timeout = {tip_secs}\nspimap_timeout = {tip_secs}\n\
         {admin}{meetings}",
        dir.display(),
        admin = if meetings.contains("[admin]") {
            ""
        } else {
            "[admin]\nhttps = \"127.0.0.1:0\"\nhttp_redirect = \"\"\nmetrics = \"127.0.0.1:0\"\n"
        }
    ))
    .unwrap();
    let app = App::start(settings).await.unwrap();
    let sip = app.sip_addr(Transport::Tls).unwrap();
    let admin = app.admin_addr();
    let admin_redirect = app.admin_redirect_addr();
    let metrics = app.metrics_addr();
    let (stops, stopped) = tokio::sync::mpsc::unbounded_channel();
    let running = tokio::spawn(app.run_until(stopped));
    let policy = mswitch::endpoint::peer_policy(&dir, "mswitch-peer").unwrap();
    Switch {
        sip,
        admin,
        admin_redirect,
        metrics,
        stops,
        dir,
        running,
        policy,
    }
}

impl Switch {
    /// Stops it (every call gets BYE) and removes its data directory.
    pub async fn stop(self) {
        let _ = self.stops.send(mswitch::app::Stop::Now);
        self.running.await.unwrap();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Pumps the calls until every line finished TIP (debug builds on a loaded machine can
/// take seconds for the ECDSA handshakes); false after `secs`.
pub async fn until_established(calls: &mut [mswitch::endpoint::SimulatedCall], secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if calls
            .iter()
            .all(mswitch::endpoint::SimulatedCall::established)
        {
            return true;
        }
        let now = Instant::now();
        for c in calls.iter_mut() {
            c.pump(now).await;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    false
}

/// Waits for the switch's BYE on a call, answering it; false if none comes in `secs`.
pub async fn bye_within(c: &mut mswitch::endpoint::SimulatedCall, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(200), c.sip.recv()).await else {
            c.pump(Instant::now()).await;
            continue;
        };
        if m.starts_with("BYE ") {
            return true;
        }
    }
    false
}

/// Runs the calls for `secs`: B (index 1) talks.
pub async fn run_media(calls: &mut [mswitch::endpoint::SimulatedCall], secs: f64) {
    run_media_recording(calls, secs, &mut std::collections::HashSet::new()).await;
}

/// [`run_media`], recording the first packet of every IDR sent in `idr`.
pub async fn run_media_recording(
    calls: &mut [mswitch::endpoint::SimulatedCall],
    secs: f64,
    idr: &mut std::collections::HashSet<(u32, u16)>,
) {
    let start = Instant::now();
    let mut next_tick = start;
    let mut tick = 0u32;
    while start.elapsed() < Duration::from_secs_f64(secs) {
        let now = Instant::now();
        for c in calls.iter_mut() {
            c.pump(now).await;
        }
        if now >= next_tick {
            next_tick += Duration::from_millis(20);
            tick += 1;
            for (i, c) in calls.iter_mut().enumerate() {
                if c.established() {
                    let level = if i == 1 { 60 } else { 5 };
                    c.media_tick(level, tick.is_multiple_of(2), idr).await;
                }
            }
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

/// How many media packets `call` received from simulated endpoint `id` (its sources'
/// SSRCs are `id << 16 | ...`).
pub fn received_from(call: &mswitch::endpoint::SimulatedCall, id: u32) -> usize {
    call.endpoint
        .received
        .iter()
        .filter(|r| r.1 >> 16 == id)
        .count()
}

/// `GET path` over plain HTTP (the metrics and health listener): (status, body).
pub async fn get_plain(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

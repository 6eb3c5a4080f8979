//! Shared by the end-to-end tests: the switch (`mswitch run`'s application) on loopback,
//! and a capture of everything it logs, for the tests that check the seed's lines.
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

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
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    while tokio::time::Instant::now() < until {
        if logged(needle) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    logged(needle)
}

/// A running switch.
pub struct Switch {
    /// Its SIP/TLS address.
    pub sip: SocketAddr,
    /// Its data directory (local CA).
    pub dir: PathBuf,
    stop: tokio::sync::oneshot::Sender<()>,
    running: tokio::task::JoinHandle<()>,
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
    let _ = logs();
    let (sip_extra, meetings) = match extra.strip_prefix("[sip]\n") {
        Some(rest) => (rest, ""),
        None => ("", extra),
    };
    let dir = std::env::temp_dir().join(format!("mswitch-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let settings = Config::parse(&format!(
        "[sip]\nudp = \"\"\ntcp = \"\"\ntls = \"127.0.0.1:0\"\noptions_interval = 0\n{sip_extra}\
         [tls]\ndata_dir = \"{}\"\n[media]\nports = \"{ports}\"\naddress = \"127.0.0.1\"\nworkers = 2\n\
         [tip]\nmuxctrl_timeout = {tip_secs}\nspimap_timeout = {tip_secs}\n{meetings}",
        dir.display()
    ))
    .unwrap();
    let app = App::start(settings).await.unwrap();
    let sip = app.sip_addr(Transport::Tls).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    let policy = mswitch::endpoint::peer_policy(&dir, "mswitch-peer").unwrap();
    Switch {
        sip,
        dir,
        stop,
        running,
        policy,
    }
}

impl Switch {
    /// Stops it (every call gets BYE) and removes its data directory.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.running.await.unwrap();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

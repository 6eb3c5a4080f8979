//! The switch under test as a process of its own, so that its CPU time is its own: started
//! from this executable with a configuration written for the run, stopped with SIGINT (at
//! once: a SIGTERM would drain).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::LoadError;

/// How the switch under test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchMode {
    /// Media workers.
    pub workers: usize,
    /// Datagrams per recvmmsg/sendmmsg call (1: batching off).
    pub batch: usize,
    /// Decrypt and re-encrypt per receiver (the SFU baseline).
    pub sfu_baseline: bool,
    /// UDP generic segmentation offload on the send path (`[media] gso`).
    pub gso: bool,
    /// UDP generic receive offload (`[media] gro`).
    pub gro: bool,
}

/// A switch the generator started.
#[derive(Debug)]
pub struct SwitchProcess {
    child: Child,
    /// Its process id.
    pub pid: u32,
    /// Its SIP/TLS address.
    pub sip: SocketAddr,
    /// Its data directory (the local CA the endpoints' certificates come from).
    pub data_dir: PathBuf,
    /// Its log.
    log: PathBuf,
}

impl SwitchProcess {
    /// Starts `mswitch run` with its data, configuration and log in `dir`, and waits until
    /// it takes TLS connections.
    pub fn start(dir: &Path, mode: SwitchMode) -> Result<Self, LoadError> {
        std::fs::create_dir_all(dir)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let sip = SocketAddr::from(([127, 0, 0, 1], port));
        let data_dir = dir.join("data");
        let config = dir.join("switch.toml");
        // Every simulated endpoint connects from 127.0.0.1: the per-address cap (16 by
        // default, issue 14) would refuse the 17th.
        std::fs::write(
            &config,
            format!(
                "[sip]\nudp = \"\"\ntcp = \"\"\ntls = \"{sip}\"\noptions_interval = 0\n\
                 max_connections = 4096\nmax_connections_per_address = 4096\n\
                 [tls]\ndata_dir = \"{}\"\n\
                 [media]\nports = \"20000-39999\"\naddress = \"127.0.0.1\"\nworkers = {}\n\
                 batch = {}\ngso = {}\ngro = {}\n[admin]\nhttps = \"\"\nhttp_redirect = \"\"\nmetrics = \"\"\n",
                data_dir.display(),
                mode.workers,
                mode.batch,
                mode.gso,
                mode.gro,
            ),
        )?;
        let log_path = dir.join("switch.log");
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(std::env::current_exe()?)
            .arg("run")
            .arg("--config")
            .arg(&config)
            .args(mode.sfu_baseline.then_some(super::SFU_BASELINE_FLAG))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let mut me = Self {
            pid: child.id(),
            child,
            sip,
            data_dir,
            log: log_path,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = me.child.try_wait()? {
                return Err(LoadError::Switch(format!(
                    "the switch exited at start ({status}); see {}",
                    dir.join("switch.log").display()
                )));
            }
            if TcpStream::connect(sip).is_ok() && me.data_dir.join("ca.pem").exists() {
                return Ok(me);
            }
            if Instant::now() > deadline {
                me.stop();
                return Err(LoadError::Switch("the switch did not start in 20 s".into()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A counter of the `media totals` line the switch logs when it stops.
    pub fn media_totals(&self, counter: &str) -> Option<u64> {
        let log = std::fs::read_to_string(&self.log).ok()?;
        let line = log.lines().rev().find(|l| l.contains("media totals"))?;
        media_total(line, counter)
    }

    /// SIGINT (every call gets BYE now; SIGTERM would only start a drain, which waits for
    /// the meetings), then SIGKILL if it has not exited within 5 s.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.pid.to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SwitchProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// `counter=N` in a log line (tracing's fields; colour codes around them are skipped).
fn media_total(line: &str, counter: &str) -> Option<u64> {
    let plain: String = {
        // Drop ANSI escapes (ESC [ ... m).
        let mut out = String::new();
        let mut esc = false;
        for c in line.chars() {
            match (esc, c) {
                (false, '\u{1b}') => esc = true,
                (true, 'm') => esc = false,
                (true, _) => {}
                (false, c) => out.push(c),
            }
        }
        out
    };
    let at = plain.find(&format!("{counter}="))? + counter.len() + 1;
    plain[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_totals_are_read_with_or_without_colour() {
        let coloured = "\u{1b}[2m2026\u{1b}[0m media totals \u{1b}[3mpackets_in\u{1b}[0m\u{1b}[2m=\u{1b}[0m74727 \u{1b}[3msend_dropped\u{1b}[0m\u{1b}[2m=\u{1b}[0m12 x";
        assert_eq!(media_total(coloured, "send_dropped"), Some(12));
        assert_eq!(media_total(coloured, "packets_in"), Some(74727));
        assert_eq!(
            media_total("media totals send_dropped=0", "send_dropped"),
            Some(0)
        );
        assert_eq!(media_total("media totals", "send_dropped"), None);
    }
}

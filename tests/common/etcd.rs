//! A real etcd for a test: Debian's `etcd` on random loopback ports with its own data
//! directory, stopped when dropped. Absent etcd skips the test, unless
//! `MSWITCH_REQUIRE_ETCD=1` (CI sets it after installing etcd-server).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// etcd's TLS toward its clients: its certificate and key, and the CA its clients'
/// certificates must chain to (PEM files).
#[derive(Clone)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

/// A running etcd.
pub struct Etcd {
    child: Child,
    dir: PathBuf,
    client: u16,
    peer: u16,
    tls: Option<ServerTls>,
    /// Its client URL.
    pub endpoint: String,
}

impl Etcd {
    /// Starts one and waits until it answers; `None` when etcd is not installed (and not
    /// required).
    pub fn start() -> Option<Self> {
        Self::start_with(None)
    }

    /// [`Etcd::start`] serving its clients over TLS only (`https://`), each client with a
    /// certificate from `tls.client_ca` (`--client-cert-auth`).
    pub fn start_tls(tls: ServerTls) -> Option<Self> {
        Self::start_with(Some(tls))
    }

    fn start_with(tls: Option<ServerTls>) -> Option<Self> {
        if !super::tool_available(
            "etcd",
            "--version",
            "MSWITCH_REQUIRE_ETCD",
            "cluster test not run (apt-get install etcd-server)",
        ) {
            return None;
        }
        let (client, peer) = (super::ports::free_port(), super::ports::free_port());
        // Named by its client port: no other etcd of this test binary has that one.
        let dir =
            std::env::temp_dir().join(format!("mswitch-etcd-{}-{client}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let child = spawn(&dir, client, peer, tls.as_ref());
        let scheme = if tls.is_some() { "https" } else { "http" };
        Some(Self {
            child,
            dir,
            client,
            peer,
            tls,
            endpoint: format!("{scheme}://127.0.0.1:{client}"),
        })
    }

    /// Stops it now (etcd unreachable from here on).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again after [`Etcd::stop`], on the same ports and data: its keys and
    /// leases are back (etcd extends restored leases by their TTL).
    pub fn restart(&mut self) {
        self.stop();
        self.child = spawn(&self.dir, self.client, self.peer, self.tls.as_ref());
    }
}

/// etcd on `client` and `peer` with its data in `dir`, once it accepts connections.
fn spawn(dir: &Path, client: u16, peer: u16, tls: Option<&ServerTls>) -> Child {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint = format!("{scheme}://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(
            std::env::temp_dir().join(format!("mswitch-etcd-{}-{client}.log", std::process::id())),
        )
        .expect("etcd log");
    let mut etcd = Command::new("etcd");
    if let Some(t) = tls {
        etcd.arg("--cert-file")
            .arg(&t.cert)
            .arg("--key-file")
            .arg(&t.key)
            .arg("--trusted-ca-file")
            .arg(&t.client_ca)
            .arg("--client-cert-auth");
    }
    let child = etcd
        .args(["--name", "test", "--data-dir"])
        .arg(dir)
        .args(["--listen-client-urls", &endpoint])
        .args(["--advertise-client-urls", &endpoint])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("test={peer_url}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("etcd starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = format!("127.0.0.1:{client}");
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "etcd did not start within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! Ports for the programs the tests start (`mswitch run`, etcd, baresip), which bind them
//! themselves after we chose them.

use std::net::{TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU16, Ordering};

/// The first port handed out, and how many: all below the kernel's ephemeral range (32768
/// and up), where no test's outgoing connection or `:0` bind can be given the port between
/// our check and the program's bind (a port taken so once left baresip without a TLS
/// transport, and its INVITE never came).
const FIRST: u16 = 10_000;
const COUNT: u16 = 20_000;

/// `span` consecutive loopback ports, each free now for TCP and for UDP; the first one.
/// Each test binary starts at its own offset (from its process id) and walks on from there,
/// so that binaries running side by side rarely try the same ports.
pub fn free_ports(span: u16) -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % 1000) as u16 * 20;
    loop {
        let offset = start.wrapping_add(NEXT.fetch_add(span, Ordering::Relaxed)) % (COUNT - span);
        let first = FIRST + offset;
        let free = (first..first + span).all(|port| {
            TcpListener::bind(("127.0.0.1", port)).is_ok()
                && UdpSocket::bind(("127.0.0.1", port)).is_ok()
        });
        if free {
            return first;
        }
    }
}

/// One loopback port, free now for TCP and UDP.
pub fn free_port() -> u16 {
    free_ports(1)
}

//! A trunk peer that sends and never reads (issue 14: keep-alive pings from such a peer, over
//! plain TCP, grew the switch by 870 MB on 64 MB sent). Its own test binary: the check reads
//! this process's resident memory.

use std::time::Duration;

mod common;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Resident memory of this process, in bytes (/proc/self/statm, pages of 4 KiB).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn options(i: usize) -> String {
    format!(
        "OPTIONS sip:mswitch@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKslow{i}\r\n\
         From: <sip:cm@127.0.0.1>;tag=cm\r\nTo: <sip:mswitch@127.0.0.1>\r\n\
         Call-ID: slow{i}@cm\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Writes `bytes` unless the switch stops reading for a second (it may: that is its
/// defence); returns whether all of it went.
async fn write_or_stall(s: &mut TcpStream, bytes: &[u8]) -> bool {
    matches!(
        timeout(Duration::from_secs(1), s.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_cannot_grow_the_switchs_memory() {
    let (addr, events) = common::tcp_trunk(sip::conn_limits::StreamLimits::default()).await;
    let before = rss();
    let mut slow = TcpStream::connect(addr).await.unwrap();
    // 16 MiB of keep-alive pings, then a flood of OPTIONS, none of the answers read.
    let pings = b"\r\n\r\n".repeat(256 * 1024);
    let mut sent = 0usize;
    for _ in 0..16 {
        if !write_or_stall(&mut slow, &pings).await {
            break;
        }
        sent += pings.len();
    }
    let flood: String = (0..5000).map(options).collect();
    write_or_stall(&mut slow, flood.as_bytes()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown = rss().saturating_sub(before);
    assert!(sent >= 4 << 20, "the switch read the pings ({sent} bytes)");
    assert!(
        grown < 24 << 20,
        "resident memory grew by {} MiB for a peer that never reads",
        grown >> 20
    );
    // The trunk still serves: a well-behaved connection gets its OPTIONS answered.
    drop(slow);
    let mut good = TcpStream::connect(addr).await.unwrap();
    good.write_all(options(99_999).as_bytes()).await.unwrap();
    let mut b = vec![0u8; 4096];
    let n = timeout(Duration::from_secs(5), good.read(&mut b))
        .await
        .expect("an answer")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&b[..n]).starts_with("SIP/2.0 200"),
        "{}",
        String::from_utf8_lossy(&b[..n])
    );
    events.abort();
}

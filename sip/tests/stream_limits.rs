//! Stream connections have limits (issue 14: half-sent TLS ClientHellos were held, idle
//! and half-open connections were never closed, connections were not capped): each limit
//! closes what passes it, over real loopback sockets, with the limits shortened.

use std::time::Duration;

mod common;

use sip::conn_limits::StreamLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const LIMITS: StreamLimits = StreamLimits {
    per_address: 3,
    total: 100,
    tls_handshake: Duration::from_millis(300),
    partial_message: Duration::from_millis(300),
    idle: Duration::from_millis(600),
    certificate_recheck: sip::conn_limits::CERTIFICATE_RECHECK,
};

async fn trunk() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    common::tcp_trunk(LIMITS).await
}

/// Whether the switch closes `s` within `secs`.
async fn closed_within(s: &mut TcpStream, secs: f64) -> bool {
    let mut b = [0u8; 256];
    matches!(
        timeout(Duration::from_secs_f64(secs), s.read(&mut b)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn a_half_sent_message_is_closed_after_its_limit() {
    let (addr, t) = trunk().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1")
        .await
        .unwrap();
    // A byte now and then does not keep it open.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.write_all(b":").await.unwrap();
    }
    assert!(
        closed_within(&mut s, 2.0).await,
        "a half-sent message is closed"
    );
    t.abort();
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_its_limit() {
    let (addr, t) = trunk().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert!(
        !closed_within(&mut s, 0.3).await,
        "open while within the limit"
    );
    assert!(
        closed_within(&mut s, 2.0).await,
        "closed once idle too long"
    );
    t.abort();
}

#[tokio::test]
async fn an_address_gets_only_so_many_connections_and_places_come_back() {
    let (addr, t) = trunk().await;
    let mut held = Vec::new();
    for _ in 0..LIMITS.per_address {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut extra = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_within(&mut extra, 1.0).await,
        "over the limit: closed at once"
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut again = TcpStream::connect(addr).await.unwrap();
    again
        .write_all(
            b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKl1\r\n\
              From: <sip:cm@127.0.0.1>;tag=a\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: l1\r\n\
              CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        )
        .await
        .unwrap();
    let mut b = vec![0u8; 2048];
    let n = timeout(Duration::from_secs(2), again.read(&mut b))
        .await
        .expect("an answer")
        .unwrap();
    assert!(b[..n].starts_with(b"SIP/2.0 200"), "the places came back");
    t.abort();
}

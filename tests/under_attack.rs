//! A live secure call under a bounded attack (issue 14), against `mswitch run`'s
//! application over loopback, in its own test binary (it reads this process's memory and
//! descriptors): forged DTLS and random datagrams at the call's media ports from the
//! endpoint's own address, a trunk peer that never reads, and half-open connections. The
//! call stays up with its media flowing; afterwards memory, descriptors and media ports
//! come back to where they were.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::switch_with;
use mswitch::endpoint::{SimulatedCall, SipClient};

use switch::dtls::DtlsIdentity;
use switch::testing::Endpoint;
use switch::tip::negotiation::Media;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .unwrap()
        * 4096
}

async fn pump(calls: &mut [SimulatedCall], secs: f64) {
    let mut idr = HashSet::new();
    let start = Instant::now();
    let mut tick = 0u32;
    while start.elapsed() < Duration::from_secs_f64(secs) {
        let now = Instant::now();
        for c in calls.iter_mut() {
            c.pump(now).await;
        }
        tick += 1;
        for (i, c) in calls.iter_mut().enumerate() {
            let level = if i == 1 { 70 } else { 5 };
            c.media_tick(level, tick.is_multiple_of(2), &mut idr).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn heard_from_b(c: &SimulatedCall) -> usize {
    c.endpoint
        .received
        .iter()
        .filter(|r| r.0 == Media::Audio && r.1 >> 16 == 2)
        .count()
}

/// Forged and random datagrams, first byte in the DTLS, RTP and RTCP ranges.
fn forged() -> Vec<Vec<u8>> {
    let mut declared_500 = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 9, 0x01, 0xf4];
    declared_500.extend_from_slice(&[1; 20]);
    let mut out = vec![vec![0x17, 0xfe, 0xfd], declared_500];
    let mut x = 0x2545_f491_u32;
    for i in 0..200 {
        let mut d = vec![0u8; 20 + (i * 7) % 1200];
        for b in &mut d {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        d[0] = [20, 23, 63, 0x80, 0x81][i % 5];
        out.push(d);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_call_survives_a_bounded_attack_and_everything_comes_back() {
    let ports = 33000..=33019u16;
    let fds_before = descriptors();
    let rss_before = rss();
    let sw = switch_with(
        "attack",
        "33000-33019",
        "[sip]\nhandshake_timeout = 0.5\nmessage_timeout = 0.5\nidle_timeout = 2\n",
        15.0,
    )
    .await;
    let dtls = Arc::new(DtlsIdentity::generate().unwrap());
    let mut calls = Vec::new();
    for (id, screens) in [(1, 1), (2, 1)] {
        calls.push(
            SimulatedCall::dial(
                Endpoint::new(id, screens),
                &sw.policy,
                sw.sip,
                "4000",
                false,
                &dtls,
            )
            .await
            .unwrap(),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !calls.iter().all(SimulatedCall::established) && Instant::now() < deadline {
        pump(&mut calls, 0.05).await;
    }
    assert!(calls.iter().all(SimulatedCall::established), "secure TIP");
    pump(&mut calls, 0.5).await;

    // Forged datagrams from A's own address at each of its lines.
    for d in forged() {
        for line in 0..2 {
            calls[0].send_raw(line, &d).await.unwrap();
        }
    }
    // A trunk peer that sends keep-alives and never reads.
    let mut slow = SipClient::connect(&sw.policy, sw.sip, "mswitch")
        .await
        .unwrap();
    let pings = "\r\n\r\n".repeat(64 * 1024);
    for _ in 0..8 {
        let _ = tokio::time::timeout(Duration::from_millis(500), slow.send(&pings)).await;
    }
    // Half-open connections: a few bytes of a ClientHello, never more.
    let mut half_open = Vec::new();
    for _ in 0..10 {
        let mut s = TcpStream::connect(sw.sip).await.unwrap();
        s.write_all(&[22, 3, 1, 0, 200, 1]).await.unwrap();
        half_open.push(s);
    }

    // The call goes on: no BYE, media both ways.
    let heard = heard_from_b(&calls[0]);
    pump(&mut calls, 1.5).await;
    assert!(calls.iter().all(SimulatedCall::established), "still up");
    assert!(
        heard_from_b(&calls[0]) > heard + 20,
        "A still hears B: {} then {}",
        heard,
        heard_from_b(&calls[0])
    );

    // Everything comes back once the attackers and the calls are gone.
    drop(half_open);
    drop(slow);
    for c in &mut calls {
        c.hangup("4000").await.unwrap();
    }
    drop(calls);
    sw.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for p in ports {
        assert!(
            std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok(),
            "media port {p} was given back"
        );
    }
    let fds_after = descriptors();
    assert!(
        fds_after <= fds_before + 4,
        "descriptors: {fds_before} before, {fds_after} after"
    );
    let grown = rss().saturating_sub(rss_before);
    assert!(grown < 64 << 20, "memory grew by {} MiB", grown >> 20);
}

//! DTLS-SRTP sessions shuttled in memory.
// Test code: it plays the driver and reads the clock.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::srtp::SrtpContext;

fn addr(p: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], p))
}

struct Pair {
    now: Instant,
    server: DtlsSession,
    client: DtlsSession,
}

impl Pair {
    fn new(
        server_profiles: Vec<Suite>,
        client_profiles: Vec<Suite>,
        client_sees: Option<[u8; 32]>,
    ) -> (Self, Arc<DtlsIdentity>, Arc<DtlsIdentity>) {
        let now = Instant::now();
        let (s_id, c_id) = (
            Arc::new(DtlsIdentity::generate().unwrap()),
            Arc::new(DtlsIdentity::generate().unwrap()),
        );
        let settings = |profiles| DtlsSettings {
            profiles,
            handshake_timeout: Duration::from_secs(10),
        };
        let server = DtlsSession::new(
            now,
            s_id.clone(),
            settings(server_profiles),
            Role::Passive,
            addr(1),
            addr(2),
            Some(c_id.fingerprint()),
        );
        let client = DtlsSession::new(
            now,
            c_id.clone(),
            settings(client_profiles),
            Role::Active,
            addr(2),
            addr(1),
            Some(client_sees.unwrap_or(s_id.fingerprint())),
        );
        (
            Self {
                now,
                server,
                client,
            },
            s_id,
            c_id,
        )
    }

    /// Moves datagrams both ways until quiet; returns the events of (server, client).
    fn run(&mut self) -> (Vec<DtlsEvent>, Vec<DtlsEvent>) {
        let (mut se, mut ce) = (Vec::new(), Vec::new());
        for _ in 0..50 {
            let mut moved = false;
            while let Some(d) = self.client.poll_transmit() {
                self.server.handle_datagram(self.now, &d);
                moved = true;
            }
            while let Some(d) = self.server.poll_transmit() {
                self.client.handle_datagram(self.now, &d);
                moved = true;
            }
            se.extend(std::iter::from_fn(|| self.server.poll_event()));
            ce.extend(std::iter::from_fn(|| self.client.poll_event()));
            if !moved {
                break;
            }
        }
        (se, ce)
    }
}

fn keys(events: Vec<DtlsEvent>) -> HopMasterKeys {
    match events.into_iter().next() {
        Some(DtlsEvent::Connected(k)) => k,
        other => panic!("not connected: {other:?}"),
    }
}

#[test]
fn handshake_exports_matching_per_hop_keys_for_every_profile() {
    for suite in Suite::ALL {
        let (mut pair, _, _) = Pair::new(vec![suite], Suite::ALL.to_vec(), None);
        let (se, ce) = pair.run();
        let (s, c) = (keys(se), keys(ce));
        assert_eq!((s.suite, c.suite), (suite, suite));
        assert!(pair.server.is_connected() && pair.client.is_connected());
        // What the client protects, the server unprotects, and back.
        let mut c_tx = SrtpContext::new(suite, &c.outbound);
        let mut s_rx = SrtpContext::new(suite, &s.inbound);
        let mut s_tx = SrtpContext::new(suite, &s.outbound);
        let mut c_rx = SrtpContext::new(suite, &c.inbound);
        for (tx, rx) in [(&mut c_tx, &mut s_rx), (&mut s_tx, &mut c_rx)] {
            let mut buf = vec![0u8; 100];
            buf[..8].copy_from_slice(&[0x80, 0xc9, 0, 1, 0, 0, 0, 9]);
            let n = tx.protect_rtcp(&mut buf, 8).unwrap();
            assert_eq!(rx.unprotect_rtcp(&mut buf[..n]), Ok(8), "{suite:?}");
        }
    }
}

#[test]
fn preference_order_is_offered() {
    // Both offer everything: the client's preference (ours, strongest first) wins.
    let (mut pair, _, _) = Pair::new(Suite::ALL.to_vec(), Suite::ALL.to_vec(), None);
    let (se, _) = pair.run();
    assert_eq!(keys(se).suite, Suite::AeadAes256Gcm);
}

#[test]
fn a_wrong_fingerprint_ends_the_handshake() {
    let (mut pair, _, _) = Pair::new(Suite::ALL.to_vec(), Suite::ALL.to_vec(), Some([7; 32]));
    let (se, ce) = pair.run();
    assert!(
        matches!(
            ce.first(),
            Some(DtlsEvent::Failed(DtlsFailure::FingerprintMismatch))
        ),
        "{ce:?}"
    );
    assert!(
        !se.iter().any(|e| matches!(e, DtlsEvent::Connected(_))),
        "{se:?}"
    );
    assert!(!pair.client.is_connected());
}

#[test]
fn dtls_before_the_fingerprint_is_buffered() {
    let now = Instant::now();
    let (s_id, c_id) = (
        Arc::new(DtlsIdentity::generate().unwrap()),
        Arc::new(DtlsIdentity::generate().unwrap()),
    );
    let server = DtlsSession::new(
        now,
        s_id.clone(),
        DtlsSettings::default(),
        Role::Passive,
        addr(1),
        addr(2),
        None,
    );
    let client = DtlsSession::new(
        now,
        c_id.clone(),
        DtlsSettings::default(),
        Role::Active,
        addr(2),
        addr(1),
        Some(s_id.fingerprint()),
    );
    let mut pair = Pair {
        now,
        server,
        client,
    };
    // The ClientHello arrives first; the SDP answer with the fingerprint later.
    while let Some(d) = pair.client.poll_transmit() {
        pair.server.handle_datagram(now, &d);
    }
    assert!(
        pair.server.poll_transmit().is_none(),
        "nothing sent before the fingerprint is known"
    );
    pair.server.set_remote_fingerprint(now, c_id.fingerprint());
    let (se, ce) = pair.run();
    assert_eq!(keys(se).suite, keys(ce).suite);
}

#[test]
fn a_handshake_past_its_deadline_fails() {
    let now = Instant::now();
    let id = Arc::new(DtlsIdentity::generate().unwrap());
    let mut s = DtlsSession::new(
        now,
        id,
        DtlsSettings::default(),
        Role::Active,
        addr(2),
        addr(1),
        Some([1; 32]),
    );
    let mut t = now;
    let mut flights = 0;
    while let Some(next) = s.poll_timeout() {
        t = next;
        s.handle_timeout(t);
        flights += std::iter::from_fn(|| s.poll_transmit()).count();
    }
    assert!(t <= now + Duration::from_secs(10), "failed by the deadline");
    assert!(flights >= 2, "the ClientHello is retransmitted");
    assert!(matches!(
        s.poll_event(),
        Some(DtlsEvent::Failed(DtlsFailure::Timeout))
    ));
    // A passive session whose peer never shows up fails at the deadline itself.
    let id = Arc::new(DtlsIdentity::generate().unwrap());
    let mut p = DtlsSession::new(
        now,
        id,
        DtlsSettings::default(),
        Role::Passive,
        addr(1),
        addr(2),
        None,
    );
    assert_eq!(p.poll_timeout(), Some(now + Duration::from_secs(10)));
    p.handle_timeout(now + Duration::from_secs(10));
    assert!(matches!(
        p.poll_event(),
        Some(DtlsEvent::Failed(DtlsFailure::Timeout))
    ));
    assert_eq!(p.poll_timeout(), None);
}

#[test]
fn sdp_fingerprints_round_trip() {
    let id = DtlsIdentity::generate().unwrap();
    let sdp = id.sdp_fingerprint();
    assert!(sdp.starts_with("sha-256 ") && sdp.len() == 8 + 32 * 3 - 1);
    assert_eq!(parse_sdp_fingerprint(&sdp), Some(id.fingerprint()));
    assert_eq!(parse_sdp_fingerprint("SHA-256 00:01"), None);
    assert_eq!(parse_sdp_fingerprint("sha-1 00"), None);
    assert_eq!(parse_sdp_fingerprint("sha-256 zz:00"), None);
}

/// Datagrams anyone can send with the peer's address: a truncated record header, a
/// handshake record declaring 500 bytes but carrying 20, a plaintext fatal alert, random
/// bytes in the DTLS range (issue 14: each of the first two ended a live call).
fn forged_datagrams() -> Vec<Vec<u8>> {
    let mut declared_500 = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 9, 0x01, 0xf4];
    declared_500.extend_from_slice(&[1; 20]);
    let fatal_alert = vec![21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0x30, 0, 2, 2, 40];
    let mut random = Vec::new();
    let mut x = 0x9e37_79b9_u32;
    for len in [1usize, 13, 14, 40, 300, 1200] {
        let mut d = vec![0u8; len];
        for b in &mut d {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        d[0] = 20 + (d[0] % 44);
        random.push(d);
    }
    let mut all = vec![vec![0x17, 0xfe, 0xfd], declared_500, fatal_alert];
    all.extend(random);
    all
}

#[test]
fn forged_datagrams_never_end_an_established_association() {
    let (mut pair, _, _) = Pair::new(Suite::ALL.to_vec(), Suite::ALL.to_vec(), None);
    let (se, ce) = pair.run();
    keys(se);
    keys(ce);
    let now = pair.now;
    let malformed = [vec![0x17, 0xfe, 0xfd], forged_datagrams()[1].clone()];
    for d in &malformed {
        assert_eq!(
            pair.server.handle_datagram(now, d),
            Received::Dropped,
            "counted as dropped"
        );
    }
    for d in forged_datagrams() {
        pair.server.handle_datagram(now, &d);
        pair.client.handle_datagram(now, &d);
    }
    let (se, ce) = pair.run();
    for e in se.iter().chain(&ce) {
        assert!(!matches!(e, DtlsEvent::Failed(_)), "{e:?}");
    }
    assert!(pair.server.is_connected() && pair.client.is_connected());
}

#[test]
fn forged_datagrams_during_the_handshake_do_not_end_it() {
    let (mut pair, _, _) = Pair::new(Suite::ALL.to_vec(), Suite::ALL.to_vec(), None);
    let now = pair.now;
    // Between the client's first flight and the server's answer.
    let first: Vec<Vec<u8>> = std::iter::from_fn(|| pair.client.poll_transmit()).collect();
    for d in forged_datagrams().iter().filter(|d| d[0] != 21) {
        pair.server.handle_datagram(now, d);
    }
    for d in &first {
        pair.server.handle_datagram(now, d);
    }
    let (se, ce) = pair.run();
    keys(se);
    keys(ce);
    assert!(pair.server.is_connected() && pair.client.is_connected());
}

//! The negotiation's rules, driven in virtual time against a scripted TIP endpoint.
// Test code: it plays the driver and reads the clock.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use super::*;
use crate::tip::simple::encode_ack;

const CALLED: &str = "13105";

fn secure_config(media: Media) -> LineConfig {
    let mut c = LineConfig::new(media, 0xc0de, CALLED);
    c.group = Some(GroupParams {
        spi: 0xa5a5,
        salt: [7; 14],
        kek: [9; 16],
    });
    c
}

fn drain(n: &mut Negotiation) -> (Vec<TipPacket>, Vec<Event>) {
    let tx = std::iter::from_fn(|| n.poll_transmit())
        .map(|b| TipPacket::decode(&b).unwrap())
        .collect();
    let ev = std::iter::from_fn(|| n.poll_event()).collect();
    (tx, ev)
}

fn peer_muxctrl(ntp: u64) -> Vec<u8> {
    let m = MuxCtrl {
        ssrc: 0xe0,
        version: 8,
        profile: muxctrl::PROFILE_SECURE,
        options: 0,
        num_xmit: 1,
        num_rcv: 1,
        ntp,
        conf_id: 0,
        xmit_positions: 2,
        rcv_positions: 2,
        shared_positions: 0,
    };
    let mut b = vec![0u8; 40];
    m.encode(&mut b).unwrap();
    b
}

fn ack_of(p: &TipPacket) -> Vec<u8> {
    let (subtype, _, ntp) = p.request_id().unwrap();
    let mut b = vec![0u8; 20];
    encode_ack(subtype, 0xe0, ntp, &mut b).unwrap();
    b
}

fn peer_mediaopts(xmit: u32) -> Vec<u8> {
    let h = AppHeader {
        subtype: mediaopts::SUBTYPE,
        ssrc: 0xe0,
        ntp: 555,
    };
    let m = MediaOpts::new(
        h,
        &[StreamOptions {
            ssrc: 0x10,
            xmit,
            rcv: xmit,
        }],
    )
    .unwrap();
    let mut b = vec![0u8; m.encoded_len()];
    m.encode(&mut b).unwrap();
    b
}

#[test]
fn secure_line_negotiates_muxctrl_mediaopts_spimap_and_notify() {
    let t0 = Instant::now();
    let mut n = Negotiation::new(secure_config(Media::Audio), t0);
    let (tx, _) = drain(&mut n);
    let TipPacket::MuxCtrl(ours) = &tx[0] else {
        panic!("{tx:?}")
    };
    assert!(ours.is_focus() && ours.is_secure() && ours.version == 8);
    assert_eq!(n.state(), State::ExpectMuxCtrl);

    n.handle_packet(t0, &peer_muxctrl(1));
    n.handle_packet(t0, &ack_of(&tx[0]));
    let (tx, ev) = drain(&mut n);
    assert!(matches!(ev[0], Event::PeerMuxCtrl(_)));
    assert_eq!(ev[1], Event::MuxCtrlComplete);
    assert!(
        matches!(
            tx[0],
            TipPacket::Ack {
                subtype: 1,
                ntp: 1,
                ..
            }
        ),
        "the peer's MUXCTRL is acknowledged"
    );
    let TipPacket::MediaOpts(m) = &tx[1] else {
        panic!("{tx:?}")
    };
    assert_eq!(
        m.streams()[0].rcv,
        mediaopts::EKT | mediaopts::ACTIVITY_METRIC
    );
    let TipPacket::Spimap(s) = &tx[2] else {
        panic!("{tx:?}")
    };
    assert_eq!(
        (s.spi, s.srtp_profile, s.ekt_profile, s.kek),
        (0xa5a5, 1, 1, [9; 16])
    );
    let TipPacket::Notify(notify) = &tx[3] else {
        panic!("{tx:?}")
    };
    assert_eq!(notify.security_icon, Some(true));
    assert_eq!(tx.len(), 4);
    assert_eq!(n.state(), State::ExpectSpimapAck);

    n.handle_packet(
        t0,
        &peer_mediaopts(mediaopts::EKT | mediaopts::ACTIVITY_METRIC),
    );
    for p in &tx[1..] {
        n.handle_packet(t0, &ack_of(p));
    }
    let (_, ev) = drain(&mut n);
    assert_eq!(
        ev,
        vec![
            Event::PeerMediaOptions {
                appended_byte: true,
                ekt: true
            },
            Event::SpimapAcked,
            Event::Established
        ]
    );
    assert_eq!(n.state(), State::Established);
    assert_eq!(n.poll_timeout(), None, "nothing left to retransmit");
}

#[test]
fn requests_are_retransmitted_every_250ms_until_acked() {
    let t0 = Instant::now();
    let mut n = Negotiation::new(secure_config(Media::Video), t0);
    let (first, _) = drain(&mut n);
    assert_eq!(n.poll_timeout(), Some(t0 + Duration::from_millis(250)));
    n.handle_timeout(t0 + Duration::from_millis(249));
    assert!(n.poll_transmit().is_none());
    for i in 1..=3 {
        let t = t0 + Duration::from_millis(250 * i);
        n.handle_timeout(t);
        let (tx, _) = drain(&mut n);
        assert_eq!(
            tx, first,
            "retransmission {i} is the same request (same NTP)"
        );
    }
    n.handle_packet(t0, &ack_of(&first[0]));
    n.handle_timeout(t0 + Duration::from_secs(2));
    assert!(n.poll_transmit().is_none());
}

#[test]
fn muxctrl_deadline_fails_with_the_seed_line() {
    let t0 = Instant::now();
    let mut n = Negotiation::new(secure_config(Media::Audio), t0);
    let mut t = t0;
    while let Some(next) = n.poll_timeout() {
        t = next;
        n.handle_timeout(t);
        let _ = drain(&mut n);
        if n.state() == State::Failed {
            break;
        }
    }
    assert_eq!(t, t0 + Duration::from_secs(15));
    assert_eq!(n.state(), State::Failed);
    assert_eq!(
        Failure::MediaTimeout.log_line(CALLED),
        "Media Timeout occurred for call : called num = 13105"
    );
    assert_eq!(n.poll_timeout(), None);
}

#[test]
fn spimap_deadline_fails_with_the_seed_line() {
    let t0 = Instant::now();
    let mut n = Negotiation::new(secure_config(Media::Audio), t0);
    let (tx, _) = drain(&mut n);
    let t1 = t0 + Duration::from_secs(1);
    n.handle_packet(t1, &peer_muxctrl(1));
    n.handle_packet(t1, &ack_of(&tx[0]));
    let _ = drain(&mut n);
    n.handle_timeout(t1 + Duration::from_millis(14_999));
    assert_ne!(n.state(), State::Failed);
    n.handle_timeout(t1 + Duration::from_secs(15));
    let (_, ev) = drain(&mut n);
    assert_eq!(ev.last(), Some(&Event::Failed(Failure::SpimapTimeout)));
    assert_eq!(
        Failure::SpimapTimeout.log_line(CALLED),
        "SPIMAP timeout, Dropping the call"
    );
    // A failed line ignores everything.
    n.handle_packet(t1, &peer_muxctrl(2));
    assert!(n.poll_transmit().is_none());
}

#[test]
fn duplicate_requests_are_acked_again_but_acted_on_once() {
    let t0 = Instant::now();
    let mut n = Negotiation::new(secure_config(Media::Audio), t0);
    let _ = drain(&mut n);
    n.handle_packet(t0, &peer_muxctrl(7));
    n.handle_packet(t0, &peer_muxctrl(7));
    let (tx, ev) = drain(&mut n);
    assert_eq!(
        tx.iter()
            .filter(|p| matches!(
                p,
                TipPacket::Ack {
                    subtype: 1,
                    ntp: 7,
                    ..
                }
            ))
            .count(),
        2
    );
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, Event::PeerMuxCtrl(_)))
            .count(),
        1
    );
}

#[test]
fn non_secure_line_sends_no_spimap_and_no_icon() {
    let t0 = Instant::now();
    let mut n = Negotiation::new(LineConfig::new(Media::Video, 1, CALLED), t0);
    let (tx, _) = drain(&mut n);
    let TipPacket::MuxCtrl(m) = &tx[0] else {
        panic!()
    };
    assert!(!m.is_secure());
    n.handle_packet(t0, &peer_muxctrl(1));
    n.handle_packet(t0, &ack_of(&tx[0]));
    let (tx, ev) = drain(&mut n);
    assert!(
        !tx.iter()
            .any(|p| matches!(p, TipPacket::Spimap(_) | TipPacket::Notify(_)))
    );
    let TipPacket::MediaOpts(o) = &tx[1] else {
        panic!("{tx:?}")
    };
    assert_eq!(o.streams()[0].rcv, mediaopts::REFRESH_FLAG);
    assert_eq!(ev.last(), Some(&Event::Established));
    // The peer does not append the byte: the flag is absent from its xmit options.
    n.handle_packet(t0, &peer_mediaopts(0));
    assert_eq!(
        n.poll_event(),
        Some(Event::PeerMediaOptions {
            appended_byte: false,
            ekt: false
        })
    );
}

#[test]
fn refresh_requests_go_out_and_come_in() {
    let t0 = Instant::now();
    let mut n = Negotiation::new(LineConfig::new(Media::Video, 1, CALLED), t0);
    let _ = drain(&mut n);
    n.send_refresh(t0, 0x77, RefreshKind::RequireIdr);
    let (tx, _) = drain(&mut n);
    assert!(matches!(
        tx[0],
        TipPacket::Refresh(Refresh {
            target: 0x77,
            kind: RefreshKind::RequireIdr,
            ..
        })
    ));
    let mut r = vec![0u8; 28];
    Refresh {
        header: AppHeader {
            subtype: simple::REFRESH,
            ssrc: 0xe0,
            ntp: 3,
        },
        target: 0x99,
        kind: RefreshKind::PreferIdr,
    }
    .encode(&mut r)
    .unwrap();
    n.handle_packet(t0, &r);
    assert_eq!(
        n.poll_event(),
        Some(Event::RefreshRequested {
            target: 0x99,
            kind: RefreshKind::PreferIdr
        })
    );
    // Garbage in a compound is ignored.
    n.handle_packet(t0, &[0x80, 200, 0, 1, 0, 0, 0, 0, 0xff]);
}

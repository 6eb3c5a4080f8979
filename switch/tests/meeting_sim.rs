//! A meeting driven in virtual time without sockets (switch::testing): three TIP endpoints
//! (one with 3 screens, two with 1) negotiate TIP over per-hop SRTCP, receive SPIMAP,
//! announce their keys in EKT, and send EKT-keyed audio (activity byte) and video (IDR
//! flag). Asserts: receivers decrypt what they get with the sender's key and the payload is
//! what was sent; the appended byte is gone; CSRC positions are right; the shown speaker
//! follows the loudest after the hold time and only at an IDR; forged and replayed packets
//! never arrive; no one receives their own media.
// Test code: it plays the driver and reads the clock.
#![allow(clippy::disallowed_methods)]

use std::collections::HashSet;
use std::time::Duration;

use switch::forward::TipCsrc;
use switch::meeting::MeetingEvent;
use switch::meeting::switching::Mode;
use switch::testing::{Endpoint, Sim};
use switch::tip::negotiation::Media;

#[test]
fn three_endpoints_negotiate_switch_and_receive_what_was_sent() {
    let mut sim = Sim::new(Mode::Site, &[(1, 3), (2, 1), (3, 1)]);
    let established = sim.negotiate();
    assert_eq!(established, 6, "{:?}", sim.events);
    assert!(
        sim.endpoints
            .iter()
            .all(|e| e.lines.iter().all(|l| l.established))
    );

    // B (2) talks: shown to everyone after it takes the floor (at once: silent meeting).
    for _ in 0..50 {
        sim.media_tick(&[5, 60, 5], true);
    }
    assert!(sim.events.contains(&MeetingEvent::SpeakerChanged(Some(2))));
    let a_video_from_b: Vec<_> = sim.endpoints[0]
        .received
        .iter()
        .filter(|r| r.0 == Media::Video && r.1 >> 16 == 2)
        .collect();
    assert!(!a_video_from_b.is_empty(), "A sees B");
    let first = a_video_from_b[0];
    assert!(
        sim.idr.contains(&(first.1, first.2)),
        "A's first picture of B starts at an IDR"
    );
    assert_eq!(
        TipCsrc::from_u32(first.3).output,
        1,
        "B on A's center screen"
    );

    // C (3) gets louder: B stays for the hold time, then C is shown, from an IDR on.
    let switch_start = sim.now;
    for _ in 0..150 {
        sim.media_tick(&[5, 20, 80], true);
    }
    assert_eq!(
        sim.events
            .iter()
            .rev()
            .find_map(|e| if let MeetingEvent::SpeakerChanged(s) = e {
                Some(*s)
            } else {
                None
            }),
        Some(Some(3))
    );
    let a_video_from_c: Vec<_> = sim.endpoints[0]
        .received
        .iter()
        .filter(|r| r.0 == Media::Video && r.1 >> 16 == 3)
        .collect();
    let first = a_video_from_c[0];
    assert!(
        sim.idr.contains(&(first.1, first.2)),
        "the switch to C happens at an IDR"
    );
    assert!(
        first.4.duration_since(switch_start) >= Duration::from_secs(2),
        "not before the hold time"
    );
    assert!(
        first.4.duration_since(switch_start) < Duration::from_secs(3),
        "soon after it"
    );
    // The speaker (C) sees the previous speaker (B).
    let c_sees: HashSet<u32> = sim.endpoints[2]
        .received
        .iter()
        .rev()
        .take(20)
        .filter(|r| r.0 == Media::Video)
        .map(|r| r.1 >> 16)
        .collect();
    assert_eq!(c_sees, HashSet::from([2]));

    // A (3 screens) talks with its right camera loudest: B (1 screen) sees A's right camera
    // on its center screen; C too; audio of A's right mic arrives at B.
    for _ in 0..150 {
        sim.media_tick(&[90, 5, 5], true);
    }
    let b_recent: Vec<_> = sim.endpoints[1]
        .received
        .iter()
        .rev()
        .take(30)
        .filter(|r| r.0 == Media::Video)
        .copied()
        .collect();
    assert!(!b_recent.is_empty());
    for r in &b_recent {
        assert_eq!(r.1 >> 16, 1, "B sees A");
        let c = TipCsrc::from_u32(r.3);
        assert_eq!(
            (c.output, c.sink, c.source),
            (1, 1, (r.1 & 0xff) as u8),
            "on B's center, source position kept"
        );
    }

    // A's right microphone is heard by B (1 speaker) on center, by nobody at A.
    let a_right_mic = sim.endpoints[0].lines[0].sources[2].1;
    let heard: Vec<_> = sim.endpoints[1]
        .received
        .iter()
        .filter(|r| r.1 == a_right_mic)
        .collect();
    assert!(!heard.is_empty(), "B hears A's right microphone");
    assert!(heard.iter().all(|r| TipCsrc::from_u32(r.3).output == 1));
    // Every endpoint got media, and every packet's payload was checked on arrival.
    for e in &sim.endpoints {
        assert!(
            e.received.len() > 100,
            "endpoint {} received {}",
            e.id,
            e.received.len()
        );
    }

    // Nothing genuine was dropped: every source announced its key before using it.
    assert_eq!(
        sim.meeting.forwarder().stats().dropped_total(),
        0,
        "{:?}",
        sim.meeting.forwarder().stats()
    );

    // Forged and replayed packets never arrive.
    let before: usize = sim.endpoints.iter().map(|e| e.received.len()).sum();
    let line = &mut sim.endpoints[1].lines[0];
    let (_, ssrc, tx, seq) = &mut line.sources[0];
    let mut buf = vec![0u8; 200];
    buf[0] = 0x81;
    buf[1] = 96;
    *seq += 1;
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    let n = tx.protect_rtp(&mut buf, 56, Some(90), true).unwrap();
    let genuine = buf[..n].to_vec();
    let mut forged = genuine.clone();
    forged[30] ^= 1;
    let leg = line.leg;
    sim.send(leg, &forged);
    sim.send(leg, &genuine);
    sim.send(leg, &genuine);
    let after: usize = sim.endpoints.iter().map(|e| e.received.len()).sum();
    assert!(
        after - before <= 2,
        "at most the genuine packet, once, to the two others"
    );
    let stats = sim.meeting.forwarder().stats();
    assert!(stats.dropped(switch::forward::DropReason::AuthFailed) >= 1);
    assert!(stats.dropped(switch::forward::DropReason::Replayed) >= 1);
    // Another participant's SSRC on B's leg is refused.
    let a_ssrc = sim.endpoints[0].lines[0].sources[0].1;
    let mut stolen = genuine.clone();
    stolen[8..12].copy_from_slice(&a_ssrc.to_be_bytes());
    sim.send(leg, &stolen);
    assert_eq!(sim.meeting.stats().ssrc_on_wrong_leg, 1);
}

#[test]
fn lines_keyed_by_dtls_srtp_negotiate_and_carry_media() {
    let mut sim = Sim::with_keying(Mode::Site, &[(1, 3), (2, 1), (3, 1)], true);
    // Per-hop keys come from the handshakes; TIP runs over them.
    assert_eq!(sim.negotiate(), 6, "{:?}", sim.events);
    for _ in 0..50 {
        sim.media_tick(&[5, 60, 5], true);
    }
    let a_sees_b = sim.endpoints[0]
        .received
        .iter()
        .filter(|r| r.0 == Media::Video && r.1 >> 16 == 2)
        .count();
    assert!(a_sees_b > 10, "A received {a_sees_b} video packets from B");
    assert_eq!(sim.meeting.forwarder().stats().dropped_total(), 0);
    assert_eq!(sim.meeting.stats().hop_auth_failed, 0);
}

#[test]
fn a_line_whose_handshake_never_completes_fails_its_participant() {
    use std::sync::Arc;
    use std::time::Instant;
    use switch::dtls::{DtlsIdentity, DtlsSession, DtlsSettings, Role};
    use switch::forward::TxBatch;
    use switch::meeting::switching::SwitchingConfig;
    use switch::meeting::{HopKeying, LineSetup, Meeting};
    use switch::tip::negotiation::LineConfig;

    let now = Instant::now();
    let mut meeting = Meeting::new(SwitchingConfig::default(), 8);
    let id = Arc::new(DtlsIdentity::generate().unwrap());
    let addr = |p| std::net::SocketAddr::from(([127, 0, 0, 1], p));
    let session = DtlsSession::new(
        now,
        id,
        DtlsSettings::default(),
        Role::Passive,
        addr(1),
        addr(2),
        Some([3; 32]),
    );
    let line = LineSetup {
        leg: 7,
        keying: HopKeying::Dtls(Box::new(session)),
        config: LineConfig::new(Media::Audio, 1, "4100"),
        rtcp: None,
        standard: Default::default(),
    };
    meeting.add_participant(now, 9, 1, vec![line]);
    let mut out = TxBatch::new(8, 8);
    // Plaintext RTCP before the handshake is dropped quietly.
    meeting.handle_datagram(now, 7, &[0x80, 0xc9, 0, 1, 0, 0, 0, 5], &mut out);
    assert_eq!(meeting.stats().before_keys, 1);
    assert!(out.is_empty());
    let deadline = meeting.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(10));
    meeting.handle_timeout(deadline, &mut out);
    let event = std::iter::from_fn(|| meeting.poll_event())
        .find(|e| matches!(e, MeetingEvent::ParticipantFailed { .. }));
    let Some(MeetingEvent::ParticipantFailed {
        participant,
        reason,
    }) = event
    else {
        panic!("no failure")
    };
    assert_eq!(participant, 9);
    assert_eq!(
        reason,
        switch::meeting::LineFailure::Dtls {
            failure: switch::dtls::DtlsFailure::Timeout,
            called_num: "4100".into(),
        }
    );
    assert_eq!(meeting.participant_ids().count(), 0);
}

#[test]
fn keyframe_requests_go_to_the_source_the_receiver_is_shown() {
    let mut sim = Sim::new(Mode::Site, &[(1, 3), (2, 1), (3, 1)]);
    assert_eq!(sim.negotiate(), 6);
    for _ in 0..50 {
        sim.media_tick(&[5, 60, 5], true);
    }
    let b_video = sim.endpoints[1].lines[1].sources[0].1;
    let c_video = sim.endpoints[2].lines[1].sources[0].1;
    assert!(
        sim.endpoints[1].lines[1].refresh.is_empty()
            && sim.endpoints[2].lines[1].refresh.is_empty()
    );
    // A (shown B) asks for a keyframe of B with a PLI, and of C (not shown) with a FIR.
    let a_video = &mut sim.endpoints[0].lines[1];
    let ctrl = a_video.control_ssrc.to_be_bytes();
    let mut pli = vec![0x81, 206, 0, 2];
    pli.extend(ctrl);
    pli.extend(b_video.to_be_bytes());
    let mut fir = vec![0x84, 206, 0, 4];
    fir.extend(ctrl);
    fir.extend([0, 0, 0, 0]);
    fir.extend(c_video.to_be_bytes());
    fir.extend([1, 0, 0, 0]);
    let (leg, pli, fir) = (
        a_video.leg,
        switch::testing::protect_hop(a_video, &pli),
        switch::testing::protect_hop(a_video, &fir),
    );
    sim.send(leg, &pli);
    sim.send(leg, &fir);
    assert!(
        sim.endpoints[1].lines[1].refresh.contains_key(&b_video),
        "B got a REFRESH for its camera"
    );
    assert!(
        sim.endpoints[2].lines[1].refresh.is_empty(),
        "C is not shown to A: no REFRESH"
    );
}

/// Without rtcp-mux (RFC 5761 not offered), each line's RTCP has its own leg: TIP and the
/// forwarded EKT SRTCP travel there, media on the RTP leg, and each kind arriving on the
/// other's leg is dropped. The endpoints assert the leg of everything they receive.
fn separate_rtcp_legs_carry_tip_and_srtcp(dtls: bool) {
    let mut sim = Sim::with_options(Mode::Site, &[(1, 3), (2, 1), (3, 1)], dtls, false);
    assert_eq!(sim.negotiate(), 6, "{:?}", sim.events);
    for _ in 0..50 {
        sim.media_tick(&[5, 60, 5], true);
    }
    let a_sees_b = sim.endpoints[0]
        .received
        .iter()
        .filter(|r| r.0 == Media::Video && r.1 >> 16 == 2)
        .count();
    assert!(a_sees_b > 10, "A received {a_sees_b} video packets from B");
    // B's EKT SRTCP goes to the others' audio RTCP legs (10 + 5, 30 + 5), unchanged.
    let (leg, sdes) = sim.endpoints[1].ekt_sdes(Media::Audio);
    assert_eq!(leg, 25);
    // (With DTLS, the switch's first TIP packets can beat the endpoint's own key
    // derivation and land here undecryptable: only what follows counts.)
    for ep in &mut sim.endpoints {
        ep.end_to_end_rtcp.clear();
    }
    sim.send(leg, &sdes);
    for (ep, rtcp_leg) in [(0, 15), (2, 35)] {
        assert_eq!(
            sim.endpoints[ep].end_to_end_rtcp,
            vec![(rtcp_leg, sdes.clone())]
        );
    }
    assert!(sim.endpoints[1].end_to_end_rtcp.is_empty());
    // RTP on the RTCP leg and RTCP on the RTP leg are dropped and counted.
    let mut b_audio = sim.endpoints[1].media_tick(60, false, &mut sim.idr);
    let (_, rtp) = b_audio.pop().expect("an audio packet");
    sim.send(25, &rtp);
    sim.send(20, &sdes);
    assert_eq!(sim.meeting.stats().wrong_leg_kind, 2);
    assert_eq!(sim.meeting.forwarder().stats().dropped_total(), 0);
    assert_eq!(sim.meeting.stats().hop_auth_failed, 0);
}

#[test]
fn lines_without_rtcp_mux_keyed_by_sdes_use_their_rtcp_legs() {
    separate_rtcp_legs_carry_tip_and_srtcp(false);
}

#[test]
fn lines_without_rtcp_mux_keyed_by_dtls_run_one_association_per_leg() {
    separate_rtcp_legs_carry_tip_and_srtcp(true);
}

/// A line gets media only once its TIP negotiation is done (SPIMAP acknowledged): before
/// that its endpoint has no group salt and could not decrypt anything.
#[test]
fn media_reaches_a_line_only_after_its_tip_negotiation() {
    let mut sim = Sim::new(Mode::Site, &[(1, 1), (2, 1)]);
    assert_eq!(sim.negotiate(), 4);
    // A third endpoint joins but never sends its MUXCTRL.
    let late = Endpoint::new(3, 1);
    let setup = late.setup("4000");
    let now = sim.now;
    sim.meeting.add_participant(now, 3, 1, setup);
    sim.endpoints.push(late);
    for _ in 0..60 {
        sim.media_tick(&[60, 5, 5], true);
    }
    assert!(
        sim.endpoints[2].received.is_empty(),
        "no media before TIP: {} packets",
        sim.endpoints[2].received.len()
    );
    assert!(sim.endpoints[1].received.iter().any(|r| r.1 >> 16 == 1));
}

/// A non-secure meeting (R35 Non-Secure, R33: never mixed) runs plain RTP with the same
/// switching: TIP with the non-secure profile and no SPIMAP, the appended byte stripped,
/// the CSRC rewritten, the speaker shown only at an IDR.
#[test]
fn a_non_secure_meeting_switches_plain_rtp_the_same_way() {
    let mut sim = Sim::non_secure(Mode::Site, &[(1, 3), (2, 1), (3, 1)]);
    assert_eq!(sim.negotiate(), 6, "{:?}", sim.events);
    for _ in 0..150 {
        sim.media_tick(&[5, 60, 5], true);
    }
    for ep in [0, 2] {
        let from_b = |m| {
            sim.endpoints[ep]
                .received
                .iter()
                .filter(|r| r.0 == m && r.1 >> 16 == 2)
                .count()
        };
        assert!(from_b(Media::Video) > 10, "endpoint {ep} sees B");
        assert!(from_b(Media::Audio) > 10, "endpoint {ep} hears B");
    }
    // B's picture on A's and C's center screen (position 1), switched at an IDR.
    let first_b_video = sim.endpoints[2]
        .received
        .iter()
        .find(|r| r.0 == Media::Video && r.1 >> 16 == 2)
        .unwrap();
    assert!(sim.idr.contains(&(first_b_video.1, first_b_video.2)));
    assert_eq!(TipCsrc::from_u32(first_b_video.3).output, 1);
    assert_eq!(sim.meeting.forwarder().stats().dropped_total(), 0);
}

/// A Best-Effort downgrade (R38, R40, R33): every secure line gets a NOTIFY clearing its
/// security icon and takes no media from then on, so no SRTP is ever forwarded as RTP;
/// added again with plain lines (after the SIP re-INVITE to RTP/AVP), the endpoints and a
/// non-secure newcomer switch plain RTP among themselves. A secure endpoint joining later
/// is held the same way until it is re-negotiated.
#[test]
fn a_downgrade_clears_the_icon_holds_srtp_back_and_reruns_tip_plain() {
    let mut sim = Sim::new(Mode::Site, &[(1, 3), (2, 1)]);
    assert_eq!(sim.negotiate(), 4, "{:?}", sim.events);
    for _ in 0..50 {
        sim.media_tick(&[5, 60], true);
    }
    assert!(sim.endpoints[0].received.iter().any(|r| r.1 >> 16 == 2));
    assert!(sim.meeting.is_secure());
    sim.events.clear();
    let now = sim.now;
    sim.meeting.downgrade(now);
    sim.advance(Duration::from_millis(1));
    assert!(!sim.meeting.is_secure());
    assert!(
        sim.events.contains(&MeetingEvent::Downgraded {
            participants: vec![1, 2]
        }),
        "{:?}",
        sim.events
    );
    for ep in &sim.endpoints {
        for l in &ep.lines {
            assert_eq!(l.security_icon, Some(false), "endpoint {} icon", ep.id);
        }
    }
    // The non-secure newcomer joins at once.
    let mut newcomer = Endpoint::new(3, 1).non_secure();
    sim.meeting
        .add_participant(now, 3, 1, newcomer.setup("4000"));
    let muxctrls = newcomer.muxctrls();
    sim.endpoints.push(newcomer);
    for (leg, d) in muxctrls {
        sim.send(leg, &d);
    }
    sim.advance(Duration::from_millis(300));
    assert!(sim.endpoints[2].lines.iter().all(|l| l.established));
    // Until re-negotiated, the others' SRTP goes nowhere: the newcomer's plain path would
    // reject it (its payload is not the plain one).
    let received =
        |sim: &Sim| -> Vec<usize> { sim.endpoints.iter().map(|e| e.received.len()).collect() };
    let before = received(&sim);
    for _ in 0..10 {
        sim.media_tick(&[5, 60, 30], true);
    }
    let after = received(&sim);
    assert_eq!(after[..2], before[..2], "nothing goes to the secure lines");
    assert_eq!(after[2], before[2], "no SRTP to the newcomer");
    assert!(sim.meeting.stats().other_security > 0);
    // The re-INVITEs are answered: each is added again with plain lines.
    let now = sim.now;
    for ep in &mut sim.endpoints[..2] {
        ep.downgrade();
        let screens = ep.lines[0].sources.len() as u8;
        sim.meeting
            .add_participant(now, ep.id, screens, ep.setup("4000"));
    }
    sim.events.clear();
    assert_eq!(sim.negotiate(), 4, "{:?}", sim.events);
    let before = received(&sim);
    for _ in 0..150 {
        sim.media_tick(&[5, 60, 30], true);
    }
    for ep in [0, 2] {
        let from_b = sim.endpoints[ep].received[before[ep]..]
            .iter()
            .filter(|r| r.1 >> 16 == 2)
            .count();
        assert!(from_b > 10, "endpoint {ep} gets B's plain media: {from_b}");
    }
    assert!(
        sim.endpoints[1].received[before[1]..]
            .iter()
            .any(|r| r.1 >> 16 == 3),
        "B hears the newcomer"
    );
    // A secure endpoint joining the non-secure meeting is held the same way until it too
    // is re-negotiated plain.
    let mut late = Endpoint::new(4, 1);
    late.expect_test_group = true;
    let now = sim.now;
    sim.meeting.add_participant(now, 4, 1, late.setup("4000"));
    sim.endpoints.push(late);
    sim.negotiate();
    let held_before = sim.meeting.stats().other_security;
    let before = received(&sim);
    for _ in 0..20 {
        sim.media_tick(&[5, 60, 30, 90], true);
    }
    let after = received(&sim);
    assert_eq!(after[3], before[3], "nothing goes to the held line");
    for (ep, from) in sim.endpoints[..3].iter().zip(&before) {
        assert!(
            ep.received[*from..].iter().all(|r| r.1 >> 16 != 4),
            "its SRTP reaches nobody"
        );
    }
    assert!(sim.meeting.stats().other_security > held_before);
    sim.endpoints[3].downgrade();
    let setup = sim.endpoints[3].setup("4000");
    sim.meeting.add_participant(now, 4, 1, setup);
    sim.negotiate();
    let before = received(&sim);
    for _ in 0..50 {
        sim.media_tick(&[5, 60, 30, 90], true);
    }
    assert!(
        sim.endpoints[1].received[before[1]..]
            .iter()
            .any(|r| r.1 >> 16 == 4),
        "plain now, it is heard"
    );
}

/// The screen count given at the join (from SDP) is only a guess: a video MUXCTRL that
/// announces three received streams makes the endpoint a 3-screen receiver, which hears
/// a 3-screen talker at each segment's own position instead of all at the center.
#[test]
fn the_video_muxctrl_corrects_the_screen_count() {
    let mut sim = Sim::new(Mode::Site, &[(1, 3), (2, 3)]);
    // A joined as if it had one screen (an SDP without its a=ssrc lines).
    let now = sim.now;
    let setup = sim.endpoints[0].setup("4000");
    sim.meeting.add_participant(now, 1, 1, setup);
    assert_eq!(sim.negotiate(), 4, "{:?}", sim.events);
    for _ in 0..100 {
        sim.media_tick(&[5, 60], true);
    }
    let outputs: HashSet<u8> = sim.endpoints[0]
        .received
        .iter()
        .filter(|r| r.0 == Media::Audio && r.1 >> 16 == 2)
        .map(|r| TipCsrc::from_u32(r.3).output)
        .collect();
    assert_eq!(
        outputs,
        HashSet::from([1, 2, 3]),
        "B heard at each position"
    );
}

/// A recvmmsg batch handled at once (tags verified and outputs signed together) gives
/// every endpoint exactly what one datagram at a time gives: the same packets, CSRCs and
/// decisions, every one decrypting with its sender's key.
#[test]
fn batches_of_datagrams_switch_exactly_as_one_at_a_time() {
    let run = |batched: bool| {
        let mut sim = Sim::new(Mode::Site, &[(1, 3), (2, 1), (3, 1)]);
        assert_eq!(sim.negotiate(), 6);
        for t in 0..200 {
            let levels = if t < 100 { [5, 60, 5] } else { [60, 5, 5] };
            if batched {
                sim.media_tick_batched(&levels, true);
            } else {
                sim.media_tick(&levels, true);
            }
        }
        let received: Vec<Vec<(Media, u32, u16, u32)>> = sim
            .endpoints
            .iter()
            .map(|e| e.received.iter().map(|r| (r.0, r.1, r.2, r.3)).collect())
            .collect();
        (received, sim.meeting.forwarder().stats().clone())
    };
    let (one, one_stats) = run(false);
    let (batched, batched_stats) = run(true);
    assert!(one.iter().all(|r| r.len() > 100), "media flowed");
    assert_eq!(batched, one);
    assert_eq!(batched_stats, one_stats);
}

#[test]
fn forged_dtls_datagrams_on_a_live_line_are_dropped_and_the_call_goes_on() {
    // Issue 14: one datagram with the endpoint's (spoofed) source, a malformed DTLS record,
    // ended the whole call.
    let mut sim = Sim::with_keying(Mode::Site, &[(1, 1), (2, 1)], true);
    assert_eq!(sim.negotiate(), 4, "{:?}", sim.events);
    let leg = sim.endpoints[0].lines[0].leg;
    let mut declared_500 = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 9, 0x01, 0xf4];
    declared_500.extend_from_slice(&[1; 20]);
    sim.send(leg, &[0x17, 0xfe, 0xfd]);
    sim.send(leg, &declared_500);
    assert_eq!(sim.meeting.stats().dtls_dropped, 2);
    for _ in 0..20 {
        sim.media_tick(&[60, 5], true);
    }
    assert!(
        !sim.events
            .iter()
            .any(|e| matches!(e, MeetingEvent::ParticipantFailed { .. })),
        "{:?}",
        sim.events
    );
    assert_eq!(sim.meeting.participant_ids().count(), 2);
    let b_hears_a = sim.endpoints[1]
        .received
        .iter()
        .filter(|r| r.0 == Media::Audio && r.1 >> 16 == 1)
        .count();
    assert!(b_hears_a > 5, "B received {b_hears_a} audio packets from A");
}

#[test]
fn a_late_joiner_starts_at_an_idr_even_when_the_refresh_came_before_its_tip() {
    // Issue 15: the screen of a newcomer moved to the speaker at an IDR that went out
    // before the newcomer's video line was established, so its first video was mid-stream.
    let mut sim = Sim::new(Mode::Site, &[(1, 1), (2, 1)]);
    assert_eq!(sim.negotiate(), 4);
    for _ in 0..60 {
        sim.media_tick(&[60, 5], true);
    }
    let late = Endpoint::new(3, 1);
    let setup = late.setup("4000");
    let now = sim.now;
    sim.meeting.add_participant(now, 3, 1, setup);
    sim.endpoints.push(late);
    // A answers the REFRESH for the newcomer's screen while its TIP is not through.
    for _ in 0..20 {
        sim.media_tick(&[60, 5, 5], true);
    }
    assert!(sim.endpoints[2].received.is_empty());
    assert_eq!(sim.negotiate(), 6, "{:?}", sim.events);
    for _ in 0..60 {
        sim.media_tick(&[60, 5, 5], true);
    }
    let first = sim.endpoints[2]
        .received
        .iter()
        .find(|r| r.0 == Media::Video)
        .expect("the newcomer sees video");
    assert!(
        sim.idr.contains(&(first.1, first.2)),
        "its first video packet ({:#x}, {}) starts an IDR",
        first.1,
        first.2
    );
}

/// What a meeting tells its operator (issue 16): per participant and line the keying,
/// the TIP state, packets in and forwarded out, and drops by reason; the switching mode an
/// operator set.
#[test]
fn the_report_counts_each_lines_traffic_and_drops_by_reason() {
    use switch::meeting::MeetingCommand;
    use switch::meeting::report::LineKeying;
    use switch::tip::negotiation::State;
    let mut sim = Sim::new(Mode::Site, &[(1, 1), (2, 1)]);
    assert_eq!(sim.negotiate(), 4);
    // B talks, then A: each is shown to the other (the speaker sees the previous one).
    for levels in [[5, 60], [60, 5]] {
        for _ in 0..150 {
            sim.media_tick(&levels, true);
        }
    }
    // A datagram with B's audio SSRC and a tag that does not verify.
    let b_audio = sim.endpoints[1]
        .lines
        .iter()
        .find(|l| l.media == Media::Audio)
        .unwrap();
    let (leg, ssrc) = (b_audio.leg, b_audio.sources[0].1);
    let mut forged = vec![0x80, 96, 0xff, 0x00, 0, 0, 0, 1];
    forged.extend_from_slice(&ssrc.to_be_bytes());
    forged.extend_from_slice(&[0x5a; 40]);
    sim.send(leg, &forged);

    let now = sim.now;
    sim.meeting
        .handle_command(now, MeetingCommand::SetSwitching(Mode::Segment));
    sim.meeting.handle_command(now, MeetingCommand::Report);
    let report = std::iter::from_fn(|| sim.meeting.poll_event())
        .find_map(|e| match e {
            MeetingEvent::Report(r) => Some(r),
            _ => None,
        })
        .expect("a report");
    assert!(report.secure);
    assert_eq!(report.mode, Mode::Segment);
    assert_eq!(report.participants.len(), 2);
    for p in &report.participants {
        assert_eq!(p.lines.len(), 2);
        for l in &p.lines {
            assert_eq!(l.keying, LineKeying::Sdes);
            assert!(l.suite.is_some());
            assert_eq!(l.tip, Some(State::Established));
            assert!(l.established && !l.held);
            assert!(l.counters.packets_in > 50, "{:?}", l.counters);
            assert!(l.counters.bytes_in > l.counters.packets_in * 12);
            assert!(
                l.counters.packets_out > 10,
                "participant {} {:?}: {:?}",
                p.id,
                l.media,
                l.counters
            );
        }
    }
    let b = &report.participants[1];
    let audio = b.lines.iter().find(|l| l.media == Media::Audio).unwrap();
    // Counted on its line, under the forwarder's reason (a short EKT tag that does not
    // parse: `malformed`), and in the meeting's totals.
    assert_eq!(
        audio.counters.dropped.iter().sum::<u64>(),
        1,
        "{:?}",
        audio.counters
    );
    let i = audio.counters.dropped.iter().position(|n| *n == 1).unwrap();
    let label = switch::forward::DropReason::ALL[i].label();
    assert!(
        report.dropped.contains(&(label, 1)),
        "{label}: {:?}",
        report.dropped
    );
    let a = &report.participants[0];
    assert!(
        a.lines
            .iter()
            .all(|l| l.counters.dropped.iter().sum::<u64>() == 0)
    );
}

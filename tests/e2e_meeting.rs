//! End to end: `mswitch run`'s application on loopback, called by simulated TIP endpoints
//! (`mswitch::endpoint`) over SIP/TLS with their own certificate (issued by the switch's
//! local CA for `mswitch-peer`, the default trunk peer). They key each media line with
//! DTLS-SRTP, negotiate TIP, take the meeting's group key from SPIMAP and send EKT-keyed
//! audio and video; every packet they receive is decrypted with its sender's key and
//! checked by the simulator.
//!
//! - the meeting with one 3-screen and two 1-screen endpoints, early and delayed offer;
//! - a Secure meeting refusing a plain-RTP endpoint: 488 and the `security mismatch` line;
//! - Non-Secure and Best-Effort meetings, including the downgrade of a secure one;
//! - an endpoint without TIP, and one that never acknowledges SPIMAP: the seed's lines,
//!   a BYE from the switch, and the others undisturbed.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::{
    bye_within, logged, logged_within, run_media, run_media_recording, switch, until_established,
};
use mswitch::endpoint::{self, SimulatedCall, SipClient};
use switch::dtls::DtlsIdentity;
use switch::testing::Endpoint;
use switch::tip::negotiation::Media;

/// A raw SIP/TLS client's INVITE to `number` with `offer`: its 200 (asserted) and the
/// switch's To tag.
async fn invite_ok(
    c: &mut SipClient,
    number: &str,
    call_id: &str,
    offer: &str,
) -> (String, String) {
    let local = c.local;
    c.send(&endpoint::request(
        "INVITE", local, number, call_id, None, 1, offer,
    ))
    .await
    .unwrap();
    let ok = c.final_response().await.unwrap();
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let tag = endpoint::header(&ok, "To:")
        .split(";tag=")
        .nth(1)
        .unwrap()
        .to_owned();
    (ok, tag)
}

/// The ACK of [`invite_ok`]'s 200.
async fn ack(c: &mut SipClient, number: &str, call_id: &str, tag: &str) {
    let local = c.local;
    c.send(&endpoint::request(
        "ACK",
        local,
        number,
        call_id,
        Some(tag),
        1,
        "",
    ))
    .await
    .unwrap();
}

fn from_b(c: &SimulatedCall, m: Media) -> usize {
    c.endpoint
        .received
        .iter()
        .filter(|r| r.0 == m && r.1 >> 16 == 2)
        .count()
}

async fn meeting_over_sip(delayed_offer: bool, ports: &str) {
    let name = if delayed_offer { "delayed" } else { "early" };
    let sw = switch(
        name,
        ports,
        "[[meeting]]\nnumber = \"4000\"\npolicy = \"secure\"\n",
        15.0,
    )
    .await;
    let dtls = Arc::new(DtlsIdentity::generate().unwrap());
    // C keeps RTCP on its own port (no a=rtcp-mux in its offer or answer).
    let eps = [
        Endpoint::new(1, 3),
        Endpoint::new(2, 1),
        Endpoint::new(3, 1).without_rtcp_mux(),
    ];
    let mut calls = dial_all(&sw, "4000", eps, delayed_offer, &dtls).await;
    assert!(until_established(&mut calls, 30).await, "TIP on every line");
    run_media(&mut calls, 3.0).await;
    for c in &calls {
        for l in &c.endpoint.lines {
            assert!(
                l.established,
                "endpoint {} {:?}: SPIMAP",
                c.endpoint.id, l.media
            );
            assert!(l.group.is_some_and(|g| g.0 % 2 == 1), "an odd group SPI");
        }
    }
    for i in [0, 2] {
        for m in [Media::Audio, Media::Video] {
            let n = from_b(&calls[i], m);
            assert!(n > 20, "endpoint {i}: {n} {m:?} packets from B");
        }
    }
    // A re-offer that changes A's keying (another fingerprint) is refused with 488 and
    // the session goes on (RFC 3261 §14.2).
    let a = &mut calls[0];
    let ours = a.local_sdp().unwrap();
    let rekey = ours.replacen("a=fingerprint:sha-256 ", "a=fingerprint:sha-256 00:", 2);
    let refused = a.reinvite("4000", 3, &rekey).await.unwrap();
    assert!(refused.starts_with("SIP/2.0 488"), "{refused}");
    // A puts the call on hold (re-INVITE, sendonly): the answer says recvonly.
    let hold = ours.replace("a=rtcp-mux\r\n", "a=rtcp-mux\r\na=sendonly\r\n");
    let ok = a.reinvite("4000", 4, &hold).await.unwrap();
    assert!(
        ok.starts_with("SIP/2.0 200") && ok.contains("CSeq: 4 INVITE"),
        "{ok}"
    );
    let answer = sip::sdp::parse(endpoint::body_of(&ok).as_bytes()).unwrap();
    assert!(
        answer
            .media
            .iter()
            .all(|m| m.direction == sip::sdp::Direction::RecvOnly),
        "{ok}"
    );
    let ack = endpoint::request("ACK", a.sip.local, "4000", &a.call_id, Some(&a.tag), 4, "");
    a.sip.send(&ack).await.unwrap();
    calls[1].hangup("4000").await.unwrap();
    // Shutdown: the remaining calls get BYE from the switch.
    sw.stop().await;
    for i in [0, 2] {
        let m = calls[i].sip.recv().await.unwrap();
        assert!(m.starts_with("BYE "), "{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tip_endpoints_meet_over_sip_tls_with_early_offer() {
    meeting_over_sip(false, "31000-31499").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tip_endpoints_meet_over_sip_tls_with_delayed_offer() {
    meeting_over_sip(true, "31500-31999").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secure_meeting_refuses_a_plain_rtp_endpoint_with_488_and_the_seed_line() {
    let sw = switch(
        "secure",
        "32000-32099",
        "[[meeting]]\nnumber = \"4001\"\npolicy = \"secure\"\n",
        15.0,
    )
    .await;
    let mut c = SipClient::connect(&sw.policy, sw.sip, "mswitch")
        .await
        .unwrap();
    let plain = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                 m=audio 40000 RTP/AVP 0\r\nm=video 40002 RTP/AVP 112\r\n";
    let invite = endpoint::request("INVITE", c.local, "4001", "plain-1", None, 1, plain);
    c.send(&invite).await.unwrap();
    let r = c.final_response().await.unwrap();
    assert!(r.starts_with("SIP/2.0 488"), "{r}");
    assert!(logged(
        "Call in state=Connected, call id=plain-1, conference id = "
    ));
    assert!(logged(
        "received error from Confmgr with error='security mismatch' during verification of security policy. Num=4001"
    ));
    sw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tip_and_spimap_timeouts_end_the_call_with_the_seed_lines_and_a_bye() {
    let sw = switch("timeouts", "32100-32199", "", 1.0).await;
    let dtls = Arc::new(DtlsIdentity::generate().unwrap());
    // A good endpoint, one that never speaks TIP, one that never acknowledges SPIMAP.
    let good = SimulatedCall::dial(
        Endpoint::new(1, 1),
        &sw.policy,
        sw.sip,
        "4002",
        false,
        &dtls,
    )
    .await
    .unwrap();
    // Starts TIP (sends its MUXCTRL) and never acknowledges ours: the seed's MUXCTRL
    // deadline, not a standard endpoint (that one never speaks TIP at all).
    let mut half = Endpoint::new(2, 1);
    half.ignore_muxctrl = true;
    let half = SimulatedCall::dial(half, &sw.policy, sw.sip, "4002", false, &dtls)
        .await
        .unwrap();
    let mut deaf = Endpoint::new(3, 1);
    deaf.ignore_spimap = true;
    let deaf = SimulatedCall::dial(deaf, &sw.policy, sw.sip, "4002", false, &dtls)
        .await
        .unwrap();
    let mut calls = vec![good, half, deaf];
    assert!(
        until_established(&mut calls[..1], 30).await,
        "the good one negotiates"
    );
    run_media(&mut calls, 1.0).await;
    assert!(bye_within(&mut calls[1], 20).await, "TIP not finished: BYE");
    assert!(bye_within(&mut calls[2], 20).await, "no SPIMAP ACK: BYE");
    assert!(logged(
        "Media Timeout occurred for call : called num = 4002"
    ));
    assert!(logged("SPIMAP timeout, Dropping the call"));
    // The good one is still up: it negotiated and its dialog is alive.
    assert!(calls[0].established());
    calls[0].hangup("4002").await.unwrap();
    sw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_holds_every_check() {
    let timeline = mswitch::demo::run().await.unwrap_or_else(|t| panic!("{t}"));
    assert!(timeline.contains("all checks held"), "{timeline}");
    assert!(timeline.contains("SPIMAP acknowledged"), "{timeline}");
    // Its own switch's scrape (values shared with this process's other switches).
    assert!(
        timeline.contains("mswitch_calls_started_total{direction=\"in\"}"),
        "{timeline}"
    );
}

/// Dials the non-secure endpoints `(id, screens)` into `number`.
async fn dial_plain(sw: &common::Switch, number: &str, eps: &[(u32, u8)]) -> Vec<SimulatedCall> {
    let dtls = Arc::new(DtlsIdentity::generate().unwrap());
    let eps = eps
        .iter()
        .map(|&(id, screens)| Endpoint::new(id, screens).non_secure());
    dial_all(sw, number, eps, false, &dtls).await
}

/// Dials each endpoint into `number`, in order (early offer unless `delayed_offer`).
async fn dial_all(
    sw: &common::Switch,
    number: &str,
    eps: impl IntoIterator<Item = Endpoint>,
    delayed_offer: bool,
    dtls: &Arc<DtlsIdentity>,
) -> Vec<SimulatedCall> {
    let mut calls = Vec::new();
    for ep in eps {
        calls.push(
            SimulatedCall::dial(ep, &sw.policy, sw.sip, number, delayed_offer, dtls)
                .await
                .unwrap(),
        );
    }
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_secure_meeting_runs_plain_rtp_with_the_same_switching() {
    let sw = switch(
        "nonsecure",
        "32300-32399",
        "[[meeting]]\nnumber = \"4003\"\npolicy = \"non-secure\"\n",
        15.0,
    )
    .await;
    let mut calls = dial_plain(&sw, "4003", &[(1, 3), (2, 1), (3, 1)]).await;
    for c in &calls {
        assert_eq!(
            c.switch_sdp.media[0].profile,
            Some(sip::sdp::Profile::Avp),
            "answered RTP/AVP"
        );
    }
    assert!(
        until_established(&mut calls, 30).await,
        "non-secure TIP on every line"
    );
    run_media(&mut calls, 3.0).await;
    for i in [0, 2] {
        for m in [Media::Audio, Media::Video] {
            let n = from_b(&calls[i], m);
            assert!(n > 20, "endpoint {i}: {n} {m:?} packets from B");
        }
    }
    // A secure endpoint joins it non-secure (T4): answered, held, re-INVITEd to RTP/AVP
    // (R33: media never mixed).
    let dtls = Arc::new(DtlsIdentity::generate().unwrap());
    joins_secure_and_is_downgraded(&sw, "4003", &dtls, &mut calls).await;
    sw.stop().await;
}

/// A secure endpoint (id 4) dials `number`, a non-secure meeting: it is answered, accepts
/// the switch's re-INVITE to RTP/AVP, runs TIP again and hears B (`calls[1]`).
async fn joins_secure_and_is_downgraded(
    sw: &common::Switch,
    number: &str,
    dtls: &Arc<DtlsIdentity>,
    calls: &mut Vec<SimulatedCall>,
) {
    let mut secure =
        SimulatedCall::dial(Endpoint::new(4, 1), &sw.policy, sw.sip, number, false, dtls)
            .await
            .unwrap();
    secure.accept_downgrade().await.unwrap();
    calls.push(secure);
    let i = calls.len() - 1;
    assert!(until_established(calls, 30).await, "TIP again, plain");
    let before = from_b(&calls[i], Media::Audio);
    run_media(calls, 2.0).await;
    let n = from_b(&calls[i], Media::Audio) - before;
    assert!(n > 20, "the downgraded endpoint hears B: {n}");
}

/// R38, T1 L3, R40: a non-secure endpoint joining a secure Best-Effort meeting downgrades
/// it. The seed's line is logged; every existing endpoint gets a TIP NOTIFY clearing its
/// security icon and a re-INVITE to RTP/AVP, which it accepts; TIP runs again without EKT
/// and the three switch plain RTP (each endpoint checks every payload, so SRTP forwarded
/// as RTP would fail). A secure endpoint joining afterwards is downgraded the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_effort_downgrades_every_endpoint_when_a_non_secure_one_joins() {
    let sw = switch(
        "downgrade",
        "32500-32599",
        "[[meeting]]\nnumber = \"4005\"\npolicy = \"best-effort\"\n",
        15.0,
    )
    .await;
    let dtls = Arc::new(DtlsIdentity::generate().unwrap());
    let eps = [Endpoint::new(1, 3), Endpoint::new(2, 1)];
    let mut calls = dial_all(&sw, "4005", eps, false, &dtls).await;
    assert!(until_established(&mut calls, 30).await, "secure TIP");
    run_media(&mut calls, 1.0).await;
    assert!(from_b(&calls[0], Media::Audio) > 10, "A hears B, secure");
    let icons = |c: &SimulatedCall| -> Vec<Option<bool>> {
        c.endpoint.lines.iter().map(|l| l.security_icon).collect()
    };
    assert_eq!(icons(&calls[0]), vec![Some(true); 2], "locked while secure");
    // The non-secure newcomer.
    let mut newcomer = dial_plain(&sw, "4005", &[(3, 1)]).await;
    assert!(logged(
        "Conference Manager Conf Id 1: will downgrade security from secure to non-secure. All existing endpoints will be downgraded to non-secure."
    ));
    for c in &mut calls {
        c.accept_downgrade().await.unwrap();
        assert_eq!(icons(c), vec![Some(false); 2], "icon cleared");
        assert_eq!(
            c.switch_sdp.media[0].profile,
            Some(sip::sdp::Profile::Avp),
            "re-offered RTP/AVP"
        );
    }
    calls.append(&mut newcomer);
    assert!(until_established(&mut calls, 30).await, "TIP again, plain");
    let before: Vec<[usize; 2]> = calls
        .iter()
        .map(|c| [Media::Audio, Media::Video].map(|m| from_b(c, m)))
        .collect();
    run_media(&mut calls, 3.0).await;
    for i in [0, 2] {
        for (k, m) in [Media::Audio, Media::Video].into_iter().enumerate() {
            let n = from_b(&calls[i], m) - before[i][k];
            assert!(n > 20, "endpoint {i}: {n} plain {m:?} packets from B");
        }
    }
    // A secure endpoint joining the non-secure meeting is downgraded too.
    joins_secure_and_is_downgraded(&sw, "4005", &dtls, &mut calls).await;
    for c in &mut calls {
        c.hangup("4005").await.unwrap();
    }
    sw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_effort_started_by_a_non_secure_endpoint_runs_non_secure_with_the_seed_line() {
    let sw = switch(
        "besteffort",
        "32400-32499",
        "[[meeting]]\nnumber = \"4004\"\npolicy = \"best-effort\"\n",
        15.0,
    )
    .await;
    let mut calls = dial_plain(&sw, "4004", &[(1, 1), (2, 1)]).await;
    // This switch's first meeting: conference id 1.
    assert!(logged("Conf Id 1: will start as non-secure"));
    assert!(until_established(&mut calls, 30).await);
    run_media(&mut calls, 2.0).await;
    let n = from_b(&calls[0], Media::Audio);
    assert!(n > 20, "A hears B: {n}");
    sw.stop().await;
}

/// R38: an added audio-only call downgrades a secure Best-Effort meeting like a non-secure
/// endpoint: the seed's line, the existing endpoints re-INVITEd to RTP/AVP, and the
/// audio-only caller's own SRTP re-INVITEd to RTP/AVP once its call is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_audio_only_call_downgrades_a_best_effort_meeting() {
    let sw = switch(
        "audioonly",
        "32600-32699",
        "[[meeting]]\nnumber = \"4006\"\npolicy = \"best-effort\"\n",
        15.0,
    )
    .await;
    let dtls = Arc::new(DtlsIdentity::generate().unwrap());
    let eps = [Endpoint::new(1, 1), Endpoint::new(2, 1)];
    let mut calls = dial_all(&sw, "4006", eps, false, &dtls).await;
    assert!(until_established(&mut calls, 30).await, "secure TIP");
    // An audio-only phone with DTLS-SRTP.
    let mut phone = SipClient::connect(&sw.policy, sw.sip, "mswitch")
        .await
        .unwrap();
    let offer = format!(
        "v=0\r\no=- 9 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio 40100 UDP/TLS/RTP/SAVP 0\r\na=rtcp-mux\r\na=setup:active\r\n\
         a=fingerprint:{}\r\n",
        dtls.sdp_fingerprint()
    );
    let local = phone.local;
    let (_, tag) = invite_ok(&mut phone, "4006", "phone-1", &offer).await;
    ack(&mut phone, "4006", "phone-1", &tag).await;
    // The downgrade follows the ACK (issue 14: never an unacknowledged INVITE).
    assert!(
        logged_within(
            "Conference Manager Conf Id 1: will downgrade security from secure to non-secure. All existing endpoints will be downgraded to non-secure.",
            5
        )
        .await
    );
    for c in &mut calls {
        c.accept_downgrade().await.unwrap();
    }
    let reinvite = loop {
        let m = phone.recv().await.unwrap();
        if m.starts_with("INVITE ") {
            break m;
        }
    };
    let reoffer = sip::sdp::parse(endpoint::body_of(&reinvite).as_bytes()).unwrap();
    assert_eq!(reoffer.media.len(), 1);
    assert_eq!(reoffer.media[0].profile, Some(sip::sdp::Profile::Avp));
    assert!(reoffer.media[0].fingerprint.is_none());
    let answer = "v=0\r\no=- 9 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                  m=audio 40100 RTP/AVP 0\r\na=rtcp-mux\r\n";
    phone
        .send(&endpoint::response(&reinvite, "200 OK", local, answer))
        .await
        .unwrap();
    assert!(until_established(&mut calls, 30).await, "TIP again, plain");
    run_media(&mut calls, 1.0).await;
    assert!(from_b(&calls[0], Media::Audio) > 10, "A hears B, plain");
    sw.stop().await;
}

/// Issue 14: one INVITE with plain SDP, never acknowledged, downgraded every secure
/// endpoint of a Best-Effort meeting. The downgrade now waits for the newcomer's ACK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_plain_invite_downgrades_nothing() {
    let sw = switch(
        "unacked",
        "32700-32799",
        "[[meeting]]\nnumber = \"4007\"\npolicy = \"best-effort\"\n",
        15.0,
    )
    .await;
    let dtls = Arc::new(DtlsIdentity::generate().unwrap());
    let eps = [Endpoint::new(1, 1), Endpoint::new(2, 1)];
    let mut calls = dial_all(&sw, "4007", eps, false, &dtls).await;
    assert!(until_established(&mut calls, 30).await, "secure TIP");
    run_media(&mut calls, 0.5).await;
    let icons = |c: &SimulatedCall| -> Vec<Option<bool>> {
        c.endpoint.lines.iter().map(|l| l.security_icon).collect()
    };
    let mut phone = SipClient::connect(&sw.policy, sw.sip, "mswitch")
        .await
        .unwrap();
    let plain = "v=0\r\no=- 9 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                 m=audio 40200 RTP/AVP 0\r\na=rtcp-mux\r\nm=video 40202 RTP/AVP 112\r\na=rtcp-mux\r\n";
    let (_, tag) = invite_ok(&mut phone, "4007", "unacked-1", plain).await;
    // No ACK yet: the meeting stays secure and its endpoints keep their lock icons.
    let before = from_b(&calls[0], Media::Audio);
    run_media(&mut calls, 1.5).await;
    for c in &calls {
        assert_eq!(icons(c), vec![Some(true); 2], "still locked");
    }
    assert!(
        from_b(&calls[0], Media::Audio) > before + 10,
        "secure media goes on"
    );
    // The ACK establishes the call: now the meeting is downgraded.
    ack(&mut phone, "4007", "unacked-1", &tag).await;
    for c in &mut calls {
        c.accept_downgrade().await.unwrap();
        assert_eq!(icons(c), vec![Some(false); 2], "icon cleared after the ACK");
    }
    sw.stop().await;
}

/// Issue 15: a newcomer's first picture must start at an IDR, end to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_first_sees_the_speaker_from_an_idr() {
    let sw = switch(
        "latejoiner",
        "32800-32899",
        "[[meeting]]\nnumber = \"4008\"\npolicy = \"secure\"\n",
        15.0,
    )
    .await;
    let dtls = Arc::new(DtlsIdentity::generate().unwrap());
    let mut idr = HashSet::new();
    let eps = [Endpoint::new(1, 1), Endpoint::new(2, 1)];
    let mut calls = dial_all(&sw, "4008", eps, false, &dtls).await;
    assert!(until_established(&mut calls, 30).await);
    run_media_recording(&mut calls, 3.0, &mut idr).await;
    calls.extend(dial_all(&sw, "4008", [Endpoint::new(3, 1)], false, &dtls).await);
    // The newcomer is slow to negotiate (not pumped for a while): the speaker answers the
    // REFRESH for its screen before its TIP is through, as a real encoder answers within
    // frames.
    run_media_recording(&mut calls[..2], 1.3, &mut idr).await;
    assert!(!calls[2].established());
    assert!(
        until_established(&mut calls, 30).await,
        "the newcomer negotiates"
    );
    run_media_recording(&mut calls, 2.0, &mut idr).await;
    let first = calls[2]
        .endpoint
        .received
        .iter()
        .find(|r| r.0 == Media::Video)
        .expect("the newcomer sees video");
    assert!(
        idr.contains(&(first.1, first.2)),
        "its first video packet ({:#x}, {}) starts an IDR",
        first.1,
        first.2
    );
    sw.stop().await;
}

// Test code: it plays the driver and reads the clock.
#![allow(clippy::disallowed_methods)]
use super::*;

const CUCM: &str = "10.0.0.2:5060";
const CUCM2: &str = "10.0.0.3:5060";
const SDP: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n\
                   m=audio 20000 UDP/TLS/RTP/SAVP 0\r\na=fingerprint:sha-256 AB:CD\r\na=setup:actpass\r\n";
const OUR_SDP: &[u8] = b"v=0\r\no=mswitch 7 1 IN IP4 10.0.0.1\r\ns=mswitch\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 16384 UDP/TLS/RTP/SAVP 0\r\n";

struct Harness {
    agent: Agent,
    now: Instant,
    from: Remote,
}

fn udp(a: &str) -> Remote {
    Remote {
        transport: Transport::Udp,
        addr: a.parse().unwrap(),
    }
}

impl Harness {
    fn new() -> Self {
        Self::with(|_| {})
    }

    fn with(f: impl FnOnce(&mut AgentConfig)) -> Self {
        let now = Instant::now();
        let mut config = AgentConfig {
            peers: vec![
                TrunkPeer {
                    addr: CUCM.parse().unwrap(),
                    transport: Transport::Udp,
                    subject: None,
                    also: Vec::new(),
                },
                TrunkPeer {
                    addr: CUCM2.parse().unwrap(),
                    transport: Transport::Udp,
                    subject: None,
                    also: Vec::new(),
                },
            ],
            local: vec![(Transport::Udp, "10.0.0.1:5060".parse().unwrap())],
            options_interval: None,
            ..AgentConfig::default()
        };
        f(&mut config);
        Self {
            agent: Agent::new(now, config),
            now,
            from: udp(CUCM),
        }
    }

    fn deliver(&mut self, text: &str) {
        self.agent
            .handle_message(self.now, self.from, text.as_bytes());
    }

    /// Everything sent, as text.
    fn sent(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.agent.poll_transmit(self.now))
            .map(|t| String::from_utf8_lossy(&t.bytes).into_owned())
            .collect()
    }

    fn events(&mut self) -> Vec<AgentEvent> {
        std::iter::from_fn(|| self.agent.poll_event(self.now)).collect()
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        let mut n = 0;
        while let Some(t) = self.agent.poll_timeout().filter(|t| *t <= end) {
            n += 1;
            assert!(n < 10_000, "a timer that does not move: {:?}", t - self.now);
            self.now = t.max(self.now);
            self.agent.handle_timeout(self.now);
        }
        self.now = end;
        self.agent.handle_timeout(self.now);
    }

    /// Delivers an INVITE and returns the call handle from the Incoming event.
    fn invite(&mut self, extra: &str, body: &str) -> CallHandle {
        self.invite_raw(&invite(1, extra, body))
    }

    /// Another INVITE, a new call: its own Call-ID (`suffix`) and CSeq.
    fn invite_with_cseq(&mut self, cseq: u32, suffix: &str) -> CallHandle {
        let text = invite(cseq, "", SDP).replacen("Call-ID: ", &format!("Call-ID: {suffix}"), 1);
        self.invite_raw(&text)
    }

    fn invite_raw(&mut self, text: &str) -> CallHandle {
        self.deliver(text);
        let sent = self.sent();
        assert!(sent[0].starts_with("SIP/2.0 100 Trying\r\n"), "{sent:?}");
        match self.events().as_slice() {
            [AgentEvent::Incoming { call, user, .. }] => {
                assert_eq!(user, "4000");
                *call
            }
            e => panic!("{e:?}"),
        }
    }
}

fn invite(cseq: u32, extra: &str, body: &str) -> String {
    let ct = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_owned()
    };
    format!(
        "INVITE sip:4000@10.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKinv{cseq}\r\n\
         From: <sip:1001@10.0.0.2>;tag=cm\r\nTo: <sip:4000@10.0.0.1>\r\n\
         Call-ID: call-1\r\nCSeq: {cseq} INVITE\r\nMax-Forwards: 70\r\n\
         Contact: <sip:1001@10.0.0.2:5060>\r\n{extra}{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// An in-dialog request from the peer (our tag is `tag`).
fn in_dialog(method: &str, cseq: u32, tag: &str, extra: &str, body: &str) -> String {
    let ct = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_owned()
    };
    format!(
        "{method} sip:mswitch@10.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK{method}{cseq}\r\n\
         From: <sip:1001@10.0.0.2>;tag=cm\r\nTo: <sip:4000@10.0.0.1>;tag={tag}\r\n\
         Call-ID: call-1\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n{extra}{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn tag_of(response: &str) -> String {
    let to = response
        .lines()
        .find(|l| l.starts_with("To:"))
        .expect("a To");
    to.split(";tag=").nth(1).expect("a tag").trim().to_owned()
}

fn status(s: &str) -> u16 {
    s[8..11].parse().unwrap()
}

#[test]
fn sip_from_a_non_trunk_address_gets_nothing_and_is_counted() {
    let mut h = Harness::new();
    h.from = udp("192.0.2.66:5060");
    h.deliver(&invite(1, "", SDP));
    h.deliver("OPTIONS sip:x SIP/2.0\r\n\r\n");
    assert!(h.sent().is_empty());
    assert!(h.events().is_empty());
    assert_eq!(h.agent.stats().not_a_peer, 2);
    assert_eq!(h.agent.call_count(), 0);
}

#[test]
fn options_from_a_peer_is_answered() {
    let mut h = Harness::new();
    h.deliver(
        "OPTIONS sip:10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKo\r\n\
         From: <sip:cm@10.0.0.2>;tag=1\r\nTo: <sip:10.0.0.1>\r\nCall-ID: o1\r\nCSeq: 5 OPTIONS\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
    );
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].starts_with("SIP/2.0 200 OK\r\n"), "{}", sent[0]);
    assert!(sent[0].contains("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, PRACK\r\n"));
    assert!(sent[0].contains("CSeq: 5 OPTIONS\r\n"));
}

#[test]
fn early_offer_call_rings_answers_retransmits_until_ack_and_ends_with_bye() {
    let mut h = Harness::new();
    let call = h.invite("", SDP);
    // A retransmitted INVITE gets the 100 again and no second call.
    h.deliver(&invite(1, "", SDP));
    assert_eq!(h.sent().len(), 1);
    assert!(h.events().is_empty());
    h.agent.ring(h.now, call);
    let ringing = h.sent();
    assert!(ringing[0].starts_with("SIP/2.0 180 Ringing\r\n"));
    h.agent.accept(h.now, call, OUR_SDP.to_vec());
    let ok = h.sent().remove(0);
    assert!(ok.starts_with("SIP/2.0 200 OK\r\n"), "{ok}");
    assert!(
        ok.contains("Contact: <sip:mswitch@10.0.0.1:5060;transport=udp>\r\n"),
        "{ok}"
    );
    assert!(ok.ends_with(std::str::from_utf8(OUR_SDP).unwrap()));
    let tag = tag_of(&ok);
    assert_eq!(tag, tag_of(&ringing[0]), "one To tag for the dialog");
    // No ACK yet: the 2xx is retransmitted at T1, then 2*T1.
    h.advance(Duration::from_millis(500));
    assert_eq!(h.sent(), vec![ok.clone()]);
    h.advance(Duration::from_millis(1000));
    assert_eq!(h.sent(), vec![ok.clone()]);
    h.deliver(&in_dialog("ACK", 1, &tag, "", ""));
    assert_eq!(h.events(), vec![AgentEvent::Established { call }]);
    h.advance(Duration::from_secs(10));
    assert!(h.sent().is_empty(), "no retransmission after the ACK");
    h.deliver(&in_dialog("BYE", 2, &tag, "", ""));
    let bye_ok = h.sent().remove(0);
    assert!(bye_ok.starts_with("SIP/2.0 200 OK\r\n") && bye_ok.contains("CSeq: 2 BYE"));
    assert_eq!(
        h.events(),
        vec![AgentEvent::Ended {
            call,
            reason: EndReason::Bye
        }]
    );
    assert_eq!(h.agent.call_count(), 0);
}

#[test]
fn delayed_offer_takes_our_offer_in_the_200_and_the_answer_from_the_ack() {
    let mut h = Harness::new();
    h.deliver(&invite(1, "", ""));
    h.sent();
    let call = match h.events().as_slice() {
        [AgentEvent::Incoming { call, offer, .. }] => {
            assert_eq!(*offer, None);
            *call
        }
        e => panic!("{e:?}"),
    };
    h.agent.accept(h.now, call, OUR_SDP.to_vec());
    let ok = h.sent().remove(0);
    assert!(ok.contains("Content-Type: application/sdp\r\n"));
    h.deliver(&in_dialog("ACK", 1, &tag_of(&ok), "", SDP));
    match h.events().as_slice() {
        [
            AgentEvent::Answer { call: c, answer },
            AgentEvent::Established { call: c2 },
        ] => {
            assert_eq!((*c, *c2), (call, call));
            assert_eq!(answer.media[0].port, 20000);
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn an_unacknowledged_2xx_ends_the_call_with_bye() {
    let mut h = Harness::new();
    let call = h.invite("", SDP);
    h.agent.accept(h.now, call, OUR_SDP.to_vec());
    h.sent();
    h.advance(Duration::from_secs(33));
    let sent = h.sent();
    let mut byes: Vec<_> = sent.iter().filter(|s| s.starts_with("BYE ")).collect();
    byes.dedup();
    assert_eq!(byes.len(), 1, "one BYE (retransmitted over UDP): {sent:?}");
    assert!(byes[0].starts_with("BYE sip:1001@10.0.0.2:5060 SIP/2.0\r\n"));
    assert!(byes[0].contains("Call-ID: call-1\r\n") && byes[0].contains(";tag=cm\r\n"));
    assert_eq!(
        h.events(),
        vec![AgentEvent::Ended {
            call,
            reason: EndReason::NoAck
        }]
    );
}

#[test]
fn cancel_before_the_answer_gets_200_and_487_and_after_it_changes_nothing() {
    let mut h = Harness::new();
    let call = h.invite("", SDP);
    let cancel = invite(1, "", "")
        .replace("INVITE sip:", "CANCEL sip:")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    h.deliver(&cancel);
    let sent = h.sent();
    assert_eq!(
        sent.iter().map(|s| status(s)).collect::<Vec<_>>(),
        vec![200, 487]
    );
    assert!(sent[0].contains("CSeq: 1 CANCEL"));
    assert!(sent[1].contains("CSeq: 1 INVITE"));
    assert_eq!(
        h.events(),
        vec![AgentEvent::Ended {
            call,
            reason: EndReason::Cancelled
        }]
    );
    // The application's late answer does nothing.
    h.agent.accept(h.now, call, OUR_SDP.to_vec());
    assert!(h.sent().is_empty());
    // The ACK of the 487 is absorbed by the transaction; the 487 is not resent.
    let ack = invite(1, "", "")
        .replace("INVITE sip:", "ACK sip:")
        .replace("CSeq: 1 INVITE", "CSeq: 1 ACK");
    h.deliver(&ack);
    h.advance(Duration::from_secs(2));
    assert!(h.sent().is_empty());

    // The race the other way: the 200 went out first; CANCEL gets 200, the call stays.
    let mut h = Harness::new();
    let call = h.invite("", SDP);
    h.agent.accept(h.now, call, OUR_SDP.to_vec());
    h.sent();
    h.deliver(&cancel);
    let sent = h.sent();
    assert_eq!(
        sent.iter().map(|s| status(s)).collect::<Vec<_>>(),
        vec![200]
    );
    assert!(h.events().is_empty());
    assert_eq!(h.agent.call_count(), 1);
}

#[test]
fn malformed_requests_get_400_when_a_response_is_possible() {
    let mut h = Harness::new();
    // No Max-Forwards: parsed, refused by the §8.1.1 checks.
    h.deliver(&invite(1, "", SDP).replace("Max-Forwards: 70\r\n", ""));
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].starts_with("SIP/2.0 400 Bad Request"),
        "{}",
        sent[0]
    );
    assert!(sent[0].contains("Call-ID: call-1\r\n"));
    // Garbage: nothing to answer to.
    h.deliver("\u{1}\u{2} hello");
    assert!(h.sent().is_empty());
    // An SDP that does not parse: 400 with a Warning.
    h.deliver(&invite(2, "", "not sdp"));
    let sent = h.sent();
    assert_eq!(status(&sent[0]), 400);
    assert!(h.events().is_empty());
    assert_eq!(h.agent.stats().malformed, 2);
}

#[test]
fn reinvite_hold_is_offered_to_the_application_and_out_of_order_cseq_is_refused() {
    let mut h = Harness::new();
    let call = h.invite("", SDP);
    h.agent.accept(h.now, call, OUR_SDP.to_vec());
    let tag = tag_of(&h.sent()[0]);
    h.deliver(&in_dialog("ACK", 1, &tag, "", ""));
    h.events();
    let hold = format!("{SDP}a=sendonly\r\n");
    h.deliver(&in_dialog("INVITE", 2, &tag, "", &hold));
    assert_eq!(status(&h.sent()[0]), 100);
    match h.events().as_slice() {
        [
            AgentEvent::Reoffer {
                call: c,
                offer: Some(o),
            },
        ] => {
            assert_eq!(*c, call);
            assert_eq!(o.media[0].direction, sdp::Direction::SendOnly);
        }
        e => panic!("{e:?}"),
    }
    h.agent.answer_reoffer(h.now, call, Some(OUR_SDP.to_vec()));
    let ok = h.sent().remove(0);
    assert!(ok.starts_with("SIP/2.0 200 OK") && ok.contains("CSeq: 2 INVITE"));
    h.deliver(&in_dialog("ACK", 2, &tag, "", ""));
    h.advance(Duration::from_secs(5));
    assert!(h.sent().is_empty(), "the re-INVITE's 2xx stops at its ACK");
    // CSeq 2 again (not a retransmission: another branch) is out of order.
    h.deliver(&in_dialog("INVITE", 2, &tag, "", SDP).replace("z9hG4bKINVITE2", "z9hG4bKother"));
    assert_eq!(status(&h.sent()[0]), 500);
    // UPDATE without SDP: answered at once.
    h.deliver(&in_dialog("UPDATE", 3, &tag, "", ""));
    assert_eq!(status(&h.sent()[0]), 200);
    // Unknown dialogs get 481; unknown methods 405.
    h.deliver(&in_dialog("BYE", 4, "nope", "", ""));
    assert_eq!(status(&h.sent()[0]), 481);
    h.deliver(&in_dialog("INFO", 5, &tag, "", ""));
    let sent = h.sent();
    assert_eq!(status(&sent[0]), 405);
    assert!(sent[0].contains("Allow: "));
}

#[test]
fn session_timers_are_negotiated_refreshed_and_enforced() {
    // Below our Min-SE: 422.
    let mut h = Harness::new();
    h.deliver(&invite(
        1,
        "Supported: timer\r\nSession-Expires: 60\r\n",
        SDP,
    ));
    let sent = h.sent();
    assert_eq!(status(&sent[0]), 422);
    assert!(sent[0].contains("Min-SE: 90\r\n"));
    assert!(h.events().is_empty());

    // The peer refreshes (refresher=uac) and then stops: BYE at 120 - 32 s.
    let mut h = Harness::new();
    let call = h.invite(
        "Supported: timer\r\nSession-Expires: 120;refresher=uac\r\n",
        SDP,
    );
    h.agent.accept(h.now, call, OUR_SDP.to_vec());
    let ok = h.sent().remove(0);
    assert!(
        ok.contains("Session-Expires: 120;refresher=uac\r\n"),
        "{ok}"
    );
    assert!(ok.contains("Require: timer\r\n"));
    let tag = tag_of(&ok);
    h.deliver(&in_dialog("ACK", 1, &tag, "", ""));
    h.advance(Duration::from_secs(80));
    h.deliver(&in_dialog("UPDATE", 2, &tag, "", ""));
    assert_eq!(status(&h.sent()[0]), 200);
    h.advance(Duration::from_secs(87));
    assert!(h.sent().is_empty(), "refreshed at 80 s: alive until 168 s");
    h.advance(Duration::from_secs(2));
    assert!(h.sent().iter().any(|s| s.starts_with("BYE ")));
    assert!(h.events().contains(&AgentEvent::Ended {
        call,
        reason: EndReason::SessionExpired
    }));

    // We refresh (the peer supports timers but named no refresher): UPDATE at half time.
    let mut h = Harness::new();
    let call = h.invite(
        "Supported: timer\r\nAllow: INVITE, ACK, BYE, UPDATE\r\nSession-Expires: 100\r\n",
        SDP,
    );
    h.agent.accept(h.now, call, OUR_SDP.to_vec());
    let ok = h.sent().remove(0);
    assert!(
        ok.contains("Session-Expires: 100;refresher=uas\r\n"),
        "{ok}"
    );
    h.deliver(&in_dialog("ACK", 1, &tag_of(&ok), "", ""));
    h.advance(Duration::from_secs(51));
    let sent = h.sent();
    let update = sent
        .iter()
        .find(|s| s.starts_with("UPDATE "))
        .expect("an UPDATE");
    assert!(update.contains("Session-Expires: 100;refresher=uas\r\n"));
    assert!(update.contains("CSeq: 2 UPDATE\r\n"));
}

#[test]
fn reliable_provisionals_are_retransmitted_until_prack() {
    let mut h = Harness::new();
    let call = h.invite("Require: 100rel\r\n", SDP);
    h.agent.ring(h.now, call);
    let ringing = h.sent().remove(0);
    assert!(
        ringing.contains("Require: 100rel\r\nRSeq: 1\r\n"),
        "{ringing}"
    );
    h.advance(Duration::from_millis(500));
    assert_eq!(h.sent(), vec![ringing.clone()]);
    h.deliver(&in_dialog(
        "PRACK",
        2,
        &tag_of(&ringing),
        "RAck: 1 1 INVITE\r\n",
        "",
    ));
    assert_eq!(status(&h.sent()[0]), 200);
    h.advance(Duration::from_secs(5));
    assert!(h.sent().is_empty(), "no retransmission after PRACK");
    // An extension we do not know is refused with 420.
    let mut h = Harness::new();
    h.deliver(&invite(1, "Require: 100rel, foo\r\n", SDP));
    let sent = h.sent();
    assert_eq!(status(&sent[0]), 420);
    assert!(sent[0].contains("Unsupported: foo\r\n"));
}

#[test]
fn options_keepalives_mark_peers_down_and_up() {
    let mut h = Harness::with(|c| c.options_interval = Some(Duration::from_secs(30)));
    h.advance(Duration::ZERO);
    let sent = h.sent();
    assert_eq!(sent.iter().filter(|s| s.starts_with("OPTIONS ")).count(), 2);
    // Peer 0 answers, peer 1 does not (UDP: retransmitted, then timer F).
    let options0 = sent
        .iter()
        .find(|s| s.contains("10.0.0.2"))
        .unwrap()
        .clone();
    let response = options0
        .replacen(
            "OPTIONS sip:10.0.0.2:5060;transport=udp SIP/2.0",
            "SIP/2.0 200 OK",
            1,
        )
        .replace(
            "To: <sip:10.0.0.2:5060;transport=udp>",
            "To: <sip:10.0.0.2:5060;transport=udp>;tag=x",
        );
    h.deliver(&response);
    h.advance(Duration::from_secs(33));
    // Every keep-alive's outcome is reported (the admin API's "last keep-alive"), and a
    // change of state besides.
    assert_eq!(
        h.events(),
        vec![
            AgentEvent::KeepAlive {
                peer: 0,
                status: Some(200)
            },
            AgentEvent::KeepAlive {
                peer: 1,
                status: None
            },
            AgentEvent::Peer {
                peer: 1,
                state: PeerState::Down
            }
        ]
    );
    assert_eq!(h.agent.peer_state(0), Some(PeerState::Up));
    assert_eq!(h.agent.peer_state(1), Some(PeerState::Down));
}

#[test]
fn an_options_answered_403_does_not_mark_the_peer_up() {
    // Issue 15: Unified CM answering 403 (it refuses our subject) marked the peer up.
    let mut h = Harness::with(|c| c.options_interval = Some(Duration::from_secs(30)));
    h.advance(Duration::ZERO);
    let sent = h.sent();
    let options0 = sent
        .iter()
        .find(|s| s.contains("10.0.0.2"))
        .unwrap()
        .clone();
    h.deliver(&answer(&options0, 403, ""));
    let events = h.events();
    assert!(
        events.contains(&AgentEvent::Peer {
            peer: 0,
            state: PeerState::Down
        }),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, AgentEvent::Log(l) if l.contains("answered OPTIONS with 403"))),
        "{events:?}"
    );
    assert_eq!(h.agent.peer_state(0), Some(PeerState::Down));
}

/// The response a peer gives to our request `req` (a new dialog: it adds its To tag).
fn answer(req: &str, code: u16, body: &str) -> String {
    answer_with(req, code, body, true)
}

/// The response a peer gives to our request `req`, adding its To tag when `add_tag`.
fn answer_with(req: &str, code: u16, body: &str, add_tag: bool) -> String {
    let mut out = format!("SIP/2.0 {code} X\r\n");
    for l in req.split("\r\n").skip(1) {
        if l.is_empty() {
            break;
        }
        if l.starts_with("Via:")
            || l.starts_with("From:")
            || l.starts_with("Call-ID:")
            || l.starts_with("CSeq:")
        {
            out.push_str(l);
            out.push_str("\r\n");
        } else if l.starts_with("To:") {
            let tag = if add_tag { ";tag=cm2" } else { "" };
            out.push_str(&format!("{l}{tag}\r\n"));
        }
    }
    out.push_str("Contact: <sip:4000@10.0.0.2:5060>\r\n");
    if !body.is_empty() {
        out.push_str("Content-Type: application/sdp\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    out
}

#[test]
fn outbound_calls_log_the_seed_lines_and_fail_over() {
    for (code, line) in [
        (
            403,
            "Dialing 5000 received 403 Forbidden from Cisco Unified CM. Check SIP trunk config.",
        ),
        (
            488,
            "Dialing 5000 received 488 Not Acceptable Here from Cisco Unified CM. Check SIP trunk config",
        ),
        (606, "Dialing 5000 received \"606 Not acceptable\""),
    ] {
        let mut h = Harness::new();
        let call = h.agent.call_out(h.now, "5000", OUR_SDP.to_vec());
        let inv = h.sent().remove(0);
        assert!(
            inv.starts_with("INVITE sip:5000@10.0.0.2:5060;transport=udp SIP/2.0\r\n"),
            "{inv}"
        );
        h.deliver(&answer(&inv, code, ""));
        let sent = h.sent();
        assert!(sent[0].starts_with("ACK "), "a failure is ACKed: {sent:?}");
        let events = h.events();
        assert!(
            matches!(&events[0], AgentEvent::Log(l) if l.starts_with(line)),
            "{events:?}"
        );
        assert_eq!(
            events[1],
            AgentEvent::Ended {
                call,
                reason: EndReason::Refused(code)
            }
        );
    }
    // Peer 0 never answers: the INVITE goes to peer 1, which answers 200.
    let mut h = Harness::new();
    let call = h.agent.call_out(h.now, "5000", OUR_SDP.to_vec());
    h.sent();
    h.advance(Duration::from_secs(33));
    let sent = h.sent();
    let inv2 = sent
        .iter()
        .find(|s| s.starts_with("INVITE sip:5000@10.0.0.3"))
        .expect("failover to peer 1")
        .clone();
    h.from = udp(CUCM2);
    h.deliver(&answer(&inv2, 200, SDP));
    let sent = h.sent();
    assert!(
        sent[0].starts_with("ACK sip:4000@10.0.0.2:5060 SIP/2.0"),
        "{sent:?}"
    );
    let events = h.events();
    assert!(matches!(events[0], AgentEvent::Answer { call: c, .. } if c == call));
    assert_eq!(events[1], AgentEvent::Established { call });
    // No peer answers: the seed's line.
    let mut h = Harness::new();
    let call = h.agent.call_out(h.now, "5000", OUR_SDP.to_vec());
    h.advance(Duration::from_secs(70));
    let events = h.events();
    let AgentEvent::Log(line) = &events[0] else {
        panic!("{events:?}")
    };
    assert!(line.starts_with(LOG_NO_CM), "{line}");
    assert!(
        line.contains("10.0.0.2:5060") && line.contains("10.0.0.3:5060"),
        "{line}"
    );
    assert!(line.contains("check that the port numbers match"), "{line}");
    assert_eq!(
        events[1],
        AgentEvent::Ended {
            call,
            reason: EndReason::Timeout
        }
    );
}

#[test]
fn an_incoming_call_the_application_never_answers_is_refused_after_timer_c() {
    let mut h = Harness::new();
    let call = h.invite("", SDP);
    h.advance(Duration::from_secs(179));
    assert!(h.sent().is_empty());
    h.advance(Duration::from_secs(2));
    let sent = h.sent();
    assert_eq!(status(&sent[0]), 480, "{sent:?}");
    assert_eq!(
        h.events(),
        vec![AgentEvent::Ended {
            call,
            reason: EndReason::Local
        }]
    );
    assert_eq!(h.agent.call_count(), 0);
}

#[test]
fn a_call_for_a_meeting_owned_elsewhere_is_redirected_with_a_302() {
    let mut h = Harness::new();
    let call = h.invite("", SDP);
    h.agent
        .redirect(h.now, call, "sip:4000@10.0.0.2:5061;transport=tls");
    let sent = h.sent();
    assert_eq!(status(&sent[0]), 302, "{sent:?}");
    assert!(
        sent[0].contains("\r\nContact: <sip:4000@10.0.0.2:5061;transport=tls>\r\n"),
        "{}",
        sent[0]
    );
    assert!(sent[0].contains(";tag="), "a To tag: {}", sent[0]);
    assert_eq!(
        h.events(),
        vec![AgentEvent::Ended {
            call,
            reason: EndReason::Local
        }]
    );
    // A target that could break the header is never written: 500 instead.
    let call = h.invite_with_cseq(2, "x");
    h.agent.redirect(h.now, call, "sip:a\r\nEvil: 1");
    let sent = h.sent();
    assert_eq!(status(&sent[0]), 500, "{sent:?}");
    assert!(!sent[0].contains("Evil"));
}

#[test]
fn a_reliable_provisional_never_pracked_refuses_the_invite_with_a_5xx() {
    let mut h = Harness::new();
    let call = h.invite("Require: 100rel\r\n", SDP);
    h.agent.ring(h.now, call);
    h.sent();
    h.advance(Duration::from_secs(33));
    let sent = h.sent();
    let finals: Vec<u16> = sent
        .iter()
        .map(|s| status(s))
        .filter(|c| *c >= 200)
        .collect();
    assert_eq!(finals.first(), Some(&504), "{sent:?}");
    assert_eq!(
        h.events(),
        vec![AgentEvent::Ended {
            call,
            reason: EndReason::Local
        }]
    );
}

const PLAIN_OFFER: &[u8] = b"v=0\r\no=mswitch 7 2 IN IP4 10.0.0.1\r\ns=mswitch\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 16384 RTP/AVP 0\r\n";
const PLAIN_ANSWER: &str = "v=0\r\no=- 1 2 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n\
                            m=audio 20000 RTP/AVP 0\r\n";

fn cseq_of(m: &str) -> u32 {
    let l = m.lines().find(|l| l.starts_with("CSeq:")).expect("a CSeq");
    l[5..].split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn our_reoffer_waits_for_the_ack_survives_glare_and_reports_answer_or_refusal() {
    let mut h = Harness::new();
    let call = h.invite("", SDP);
    h.agent.accept(h.now, call, OUR_SDP.to_vec());
    let tag = tag_of(&h.sent().remove(0));
    // RFC 3261 §14.1: no re-INVITE before the dialog is confirmed.
    h.agent.reoffer(h.now, call, PLAIN_OFFER.to_vec());
    assert!(h.sent().is_empty(), "the offer waits for the ACK");
    h.deliver(&in_dialog("ACK", 1, &tag, "", ""));
    assert_eq!(h.events(), vec![AgentEvent::Established { call }]);
    h.advance(Duration::from_millis(300));
    let first = h.sent().remove(0);
    assert!(
        first.starts_with("INVITE sip:1001@10.0.0.2:5060 SIP/2.0\r\n"),
        "{first}"
    );
    assert!(first.contains(&format!(";tag={tag}")) && first.contains(";tag=cm"));
    assert!(first.ends_with(std::str::from_utf8(PLAIN_OFFER).unwrap()));
    // Glare (§14.2): the peer's own re-INVITE meanwhile gets 491...
    h.deliver(&in_dialog("INVITE", 2, &tag, "", SDP));
    let glare = h.sent();
    assert!(glare.iter().any(|m| status(m) == 491), "{glare:?}");
    assert!(h.events().is_empty());
    // ...and its 491 to ours has ours sent again within 2 s, with a new CSeq.
    h.deliver(&answer_with(&first, 491, "", false));
    let acked = h.sent();
    assert!(acked.iter().any(|m| m.starts_with("ACK ")), "{acked:?}");
    assert!(h.events().is_empty(), "a 491 is no refusal");
    h.advance(Duration::from_millis(2100));
    let again = h
        .sent()
        .into_iter()
        .find(|m| m.starts_with("INVITE "))
        .expect("sent again");
    assert!(cseq_of(&again) > cseq_of(&first));
    h.deliver(&answer_with(&again, 200, PLAIN_ANSWER, false));
    let ack = h.sent().remove(0);
    assert!(
        ack.starts_with("ACK ") && cseq_of(&ack) == cseq_of(&again),
        "{ack}"
    );
    match h.events().as_slice() {
        [AgentEvent::ReofferAnswered { call: c, answer }] => {
            assert_eq!(*c, call);
            assert_eq!(answer.media[0].profile, Some(sdp::Profile::Avp));
        }
        e => panic!("{e:?}"),
    }
    // A refused offer is reported; the call goes on (§14.1).
    h.agent.reoffer(h.now, call, PLAIN_OFFER.to_vec());
    let third = h.sent().remove(0);
    h.deliver(&answer_with(&third, 488, "", false));
    assert_eq!(
        h.events(),
        vec![AgentEvent::ReofferRefused { call, status: 488 }]
    );
    assert_eq!(h.agent.call_count(), 1);
    h.advance(Duration::from_secs(5));
    assert!(
        h.sent().iter().all(|m| !m.starts_with("INVITE ")),
        "a refused offer is not sent again"
    );
}

#[test]
fn clear_sip_from_a_peer_configured_for_tls_is_dropped_unanswered() {
    // Issue 14: a forged UDP INVITE with the trunk peer's source address reached call
    // control. A peer configured for TLS is heard only over (authenticated) TLS.
    let mut h = Harness::with(|c| c.peers[0].transport = Transport::Tls);
    h.deliver(&invite(1, "", SDP));
    assert!(h.sent().is_empty(), "no response");
    assert!(h.events().is_empty(), "no call");
    h.from.transport = Transport::Tcp;
    h.deliver(&invite(2, "", SDP));
    assert!(h.sent().is_empty() && h.events().is_empty());
    assert_eq!(h.agent.stats().clear_from_tls_peer, 2);
    assert_eq!(h.agent.stats().not_a_peer, 0);
    // Over TLS the same INVITE is a call.
    h.from.transport = Transport::Tls;
    h.invite("", SDP);
    // A peer configured for UDP is still heard over UDP.
    let mut h = Harness::new();
    h.invite("", SDP);
}

#[test]
fn an_unknown_method_gets_501_with_allow() {
    // RFC 3261 §21.5.2 (issue 14: it got 400).
    let mut h = Harness::new();
    h.deliver(
        "FROBNICATE sip:4000@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKfr\r\n\
         From: <sip:1001@10.0.0.2>;tag=cm\r\nTo: <sip:4000@10.0.0.1>\r\nCall-ID: fr-1\r\n\
         CSeq: 1 FROBNICATE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
    );
    let sent = h.sent();
    assert!(
        sent[0].starts_with("SIP/2.0 501 Not Implemented\r\n"),
        "{sent:?}"
    );
    assert!(sent[0].contains("Allow: INVITE"), "{sent:?}");
    assert!(sent[0].contains("Call-ID: fr-1\r\n"), "{sent:?}");
    assert_eq!(h.agent.stats().not_implemented, 1);
}

#[test]
fn a_peer_named_by_host_follows_what_its_name_resolves_to() {
    // R2 (issue 15): a trunk peer's name resolved again; every address it resolves to is
    // the peer's, and the old one no longer.
    let mut h = Harness::new();
    h.agent.set_peer_addresses(
        0,
        &[
            "10.0.0.9:5060".parse().unwrap(),
            "10.0.0.10:5060".parse().unwrap(),
        ],
    );
    h.from = udp("10.0.0.2:5060");
    h.deliver(&invite(1, "", SDP));
    assert!(h.sent().is_empty(), "the old address is a stranger now");
    assert_eq!(h.agent.stats().not_a_peer, 1);
    h.from = udp("10.0.0.10:5060");
    h.invite("", SDP);
    assert_eq!(h.agent.peers()[0].addr, "10.0.0.9:5060".parse().unwrap());
}

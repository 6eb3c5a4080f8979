// Test code: it plays the driver and reads the clock.
#![allow(clippy::disallowed_methods)]
use super::*;
use crate::message::{SipMessage, parse};

const S: Duration = Duration::from_secs(1);

fn response(code: u16) -> Response {
    let text = format!(
        "SIP/2.0 {code} X\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n\
         To: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    match parse(text.as_bytes(), 4096).unwrap() {
        SipMessage::Response(r) => r,
        SipMessage::Request(_) => unreachable!(),
    }
}

/// Runs `t` until `end`, returning the times (from `start`) at which it sent something,
/// and its events.
fn run(
    t: &mut Transaction,
    start: Instant,
    end: Duration,
) -> (Vec<Duration>, Vec<TransactionEvent>) {
    let mut sent = Vec::new();
    let mut events = Vec::new();
    while let Some(p) = t.poll_transmit() {
        let _ = p;
        sent.push(Duration::ZERO);
    }
    while let Some(at) = t.poll_timeout().filter(|at| *at <= start + end) {
        t.handle_timeout(at);
        while t.poll_transmit().is_some() {
            sent.push(at - start);
        }
        while let Some(e) = t.poll_event() {
            events.push(e);
        }
    }
    (sent, events)
}

fn ms(v: &[u64]) -> Vec<Duration> {
    v.iter().map(|m| Duration::from_millis(*m)).collect()
}

#[test]
fn client_invite_over_udp_retransmits_with_timer_a_and_gives_up_at_timer_b() {
    let now = Instant::now();
    let mut t = Transaction::client(
        now,
        &Method::Invite,
        b"INVITE".to_vec(),
        false,
        Timers::default(),
    );
    let (sent, events) = run(&mut t, now, 40 * S);
    // Timer A doubles without cap: 0.5, 1, 2, 4, 8, 16 s after each other.
    assert_eq!(sent, ms(&[0, 500, 1500, 3500, 7500, 15500, 31500]));
    assert_eq!(events, vec![TransactionEvent::TimedOut]);
    assert!(t.is_terminated());
}

#[test]
fn client_invite_over_a_stream_never_retransmits() {
    let now = Instant::now();
    let mut t = Transaction::client(
        now,
        &Method::Invite,
        b"INVITE".to_vec(),
        true,
        Timers::default(),
    );
    let (sent, events) = run(&mut t, now, 40 * S);
    assert_eq!(sent, ms(&[0]));
    assert_eq!(events, vec![TransactionEvent::TimedOut]);
}

#[test]
fn client_invite_acks_a_failure_once_per_retransmission_and_reports_it_once() {
    let now = Instant::now();
    let mut t = Transaction::client(
        now,
        &Method::Invite,
        b"INVITE".to_vec(),
        false,
        Timers::default(),
    );
    assert!(t.poll_transmit().is_some());
    t.handle_response(now, response(180), |_| unreachable!());
    assert_eq!(t.state(), State::Proceeding);
    // A provisional stops the retransmissions and timer B.
    assert_eq!(t.poll_timeout(), None);
    t.handle_response(now, response(486), |_| b"ACK".to_vec());
    assert_eq!(t.poll_transmit().as_deref(), Some(&b"ACK"[..]));
    t.handle_response(now, response(486), |_| unreachable!());
    assert_eq!(t.poll_transmit().as_deref(), Some(&b"ACK"[..]));
    let codes: Vec<u16> = std::iter::from_fn(|| t.poll_event())
        .map(|e| match e {
            TransactionEvent::Response(r) => r.status_code.code(),
            e => panic!("{e:?}"),
        })
        .collect();
    assert_eq!(codes, vec![180, 486]);
    // Timer D: 32 s over UDP.
    assert_eq!(t.poll_timeout(), Some(now + 32 * S));
    t.handle_timeout(now + 32 * S);
    assert!(t.is_terminated());
    assert_eq!(t.poll_event(), None, "timer D is not a timeout");
}

#[test]
fn client_invite_2xx_goes_to_accepted_and_passes_retransmitted_2xx_up() {
    let now = Instant::now();
    let mut t = Transaction::client(
        now,
        &Method::Invite,
        b"INVITE".to_vec(),
        true,
        Timers::default(),
    );
    t.handle_response(now, response(200), |_| unreachable!());
    t.handle_response(now + S, response(200), |_| unreachable!());
    assert_eq!(t.state(), State::Accepted);
    assert_eq!(std::iter::from_fn(|| t.poll_event()).count(), 2);
    t.handle_timeout(now + 32 * S);
    assert!(t.is_terminated());
}

#[test]
fn client_non_invite_uses_timer_e_up_to_t2_then_timer_f() {
    let now = Instant::now();
    let mut t = Transaction::client(now, &Method::Bye, b"BYE".to_vec(), false, Timers::default());
    let (sent, events) = run(&mut t, now, 40 * S);
    assert_eq!(
        sent,
        ms(&[
            0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ])
    );
    assert_eq!(events, vec![TransactionEvent::TimedOut]);

    // In Proceeding, timer E fires every T2.
    let mut t = Transaction::client(
        now,
        &Method::Options,
        b"OPTIONS".to_vec(),
        false,
        Timers::default(),
    );
    t.poll_transmit();
    t.handle_response(
        now + Duration::from_millis(100),
        response(100),
        |_| unreachable!(),
    );
    t.handle_timeout(now + Duration::from_millis(500));
    assert!(t.poll_transmit().is_some());
    assert_eq!(t.poll_timeout(), Some(now + Duration::from_millis(4500)));
    // A final: Completed, timer K = T4, no more retransmissions.
    t.handle_response(now + S, response(200), |_| unreachable!());
    assert_eq!(t.state(), State::Completed);
    assert_eq!(t.poll_timeout(), Some(now + 6 * S));
}

#[test]
fn server_invite_retransmits_failures_with_timer_g_until_the_ack() {
    let now = Instant::now();
    let mut t = Transaction::server(&Method::Invite, false, Timers::default());
    t.send_response(now, 100, b"100".to_vec());
    assert_eq!(t.poll_transmit().as_deref(), Some(&b"100"[..]));
    // A retransmitted INVITE gets the last provisional again.
    t.handle_request(now, false);
    assert_eq!(t.poll_transmit().as_deref(), Some(&b"100"[..]));
    t.send_response(now, 488, b"488".to_vec());
    let (sent, _) = run(&mut t, now, Duration::from_millis(12000));
    // Timer G: 0.5, 1, 2, 4, 4 ... (capped at T2).
    assert_eq!(sent, ms(&[0, 500, 1500, 3500, 7500, 11500]));
    t.handle_request(now + 12 * S, true);
    assert_eq!(t.state(), State::Confirmed);
    assert_eq!(t.poll_event(), Some(TransactionEvent::AckReceived));
    // Timer I: T4, then gone; nothing more sent.
    let (sent, events) = run(&mut t, now, 20 * S);
    assert!(sent.is_empty() && events.is_empty());
    assert!(t.is_terminated());

    // Without the ACK: timer H (64*T1) times out.
    let mut t = Transaction::server(&Method::Invite, true, Timers::default());
    t.send_response(now, 603, b"603".to_vec());
    let (sent, events) = run(&mut t, now, 40 * S);
    assert_eq!(sent, ms(&[0]), "no timer G on a stream");
    assert_eq!(events, vec![TransactionEvent::TimedOut]);
}

#[test]
fn server_invite_2xx_is_accepted_and_absorbs_retransmitted_invites() {
    let now = Instant::now();
    let mut t = Transaction::server(&Method::Invite, false, Timers::default());
    t.send_response(now, 200, b"200".to_vec());
    assert!(t.poll_transmit().is_some());
    t.handle_request(now + S, false);
    assert_eq!(
        t.poll_transmit(),
        None,
        "the dialog retransmits the 2xx, not the transaction"
    );
    assert_eq!(t.state(), State::Accepted);
    t.handle_timeout(now + 32 * S);
    assert!(t.is_terminated());
    assert_eq!(t.poll_event(), None);
}

#[test]
fn server_non_invite_answers_retransmissions_until_timer_j() {
    let now = Instant::now();
    let mut t = Transaction::server(&Method::Bye, false, Timers::default());
    t.handle_request(now, false);
    assert_eq!(t.poll_transmit(), None, "nothing to resend in Trying");
    t.send_response(now, 200, b"200".to_vec());
    t.poll_transmit();
    t.handle_request(now + S, false);
    assert_eq!(t.poll_transmit().as_deref(), Some(&b"200"[..]));
    assert_eq!(t.poll_timeout(), Some(now + 32 * S));
    // A second final is ignored.
    t.send_response(now, 500, b"500".to_vec());
    assert_eq!(t.poll_transmit(), None);
    // Over a stream, timer J is 0.
    let mut t = Transaction::server(&Method::Bye, true, Timers::default());
    t.send_response(now, 200, b"200".to_vec());
    assert_eq!(t.poll_timeout(), Some(now));
}

#[test]
fn keys_fold_ack_into_invite() {
    let a = TransactionKey::server("z9hG4bK1", "H:5060", &Method::Ack);
    let i = TransactionKey::server("z9hG4bK1", "h:5060", &Method::Invite);
    let c = TransactionKey::server("z9hG4bK1", "h:5060", &Method::Cancel);
    assert_eq!(a, i);
    assert_ne!(c, i);
}

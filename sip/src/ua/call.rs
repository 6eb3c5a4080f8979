//! One call's dialog state (RFC 3261 §12), its 2xx and reliable-1xx retransmissions
//! (§13.3.1.4, RFC 3262 §3) and its session timer (RFC 4028).

use std::time::{Duration, Instant};

use super::build::{self, Local, RequestSpec};
use super::{Remote, strip_tag};
use crate::message::{self, Request, Response, header_value};
use crate::transaction::{Timers, TransactionKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// The peer called us.
    Uas,
    /// We called out.
    Uac,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallState {
    /// INVITE received, no final response yet.
    Early,
    /// 2xx sent, waiting for the ACK.
    WaitingAck,
    /// Up.
    Confirmed,
}

pub(super) struct Call {
    pub(super) role: Role,
    pub(super) state: CallState,
    pub(super) call_id: String,
    pub(super) local_tag: String,
    pub(super) remote_tag: Option<String>,
    pub(super) local_uri: String,
    pub(super) remote_uri: String,
    /// The peer's Contact URI: where in-dialog requests go (§12.1.1).
    pub(super) remote_target: String,
    pub(super) remote: Remote,
    pub(super) peer: usize,
    pub(super) local_cseq: u32,
    pub(super) remote_cseq: u32,
    /// The initial INVITE's server transaction and request (responses are built from it).
    pub(super) invite: Option<(TransactionKey, Request)>,
    pub(super) delayed_offer: bool,
    /// The INVITE required 100rel: provisionals (but 100) are sent reliably.
    pub(super) reliable_provisional: bool,
    pub(super) rseq: u32,
    pub(super) reliable_1xx: Option<Retransmit>,
    pub(super) final_2xx: Option<Retransmit>,
    pub(super) session_request: Option<SessionRequest>,
    pub(super) peer_supports_timer: bool,
    pub(super) peer_allows_update: bool,
    pub(super) session: Option<SessionTimer>,
    /// Our last SDP (re-sent in a refresh re-INVITE).
    pub(super) local_sdp: Vec<u8>,
    /// A re-INVITE or UPDATE waiting for the application's answer.
    pub(super) pending_reoffer: Option<(TransactionKey, Request)>,
    /// The CSeq of a re-INVITE whose 2xx waits for its ACK.
    pub(super) pending_invite_ack: Option<u32>,
    /// Our INVITE: the number dialled and our offer (re-sent to the next peer on failover).
    pub(super) outbound: Option<(String, Vec<u8>)>,
    /// An incoming call not answered by then is refused (480): an application that never
    /// decides must not hold the INVITE open forever (RFC 3261 §16.6 timer C: 3 min).
    pub(super) answer_by: Option<Instant>,
    /// Our own offer in a re-INVITE ([`super::Agent::reoffer`]), until it is answered.
    pub(super) our_offer: Option<OurOffer>,
    /// A re-INVITE of ours (an offer or a refresh) waits for its final response: RFC 3261
    /// §14.1 allows one at a time.
    pub(super) reinvite_in_flight: bool,
}

/// Our offer in a re-INVITE (RFC 3261 §14.1).
pub(super) struct OurOffer {
    /// The CSeq of the re-INVITE carrying it, once sent.
    pub(super) cseq: Option<u32>,
    /// When to send it: at once, or later while the dialog has another offer/answer
    /// exchange open or after a 491.
    pub(super) send_at: Option<Instant>,
}

impl Call {
    /// Whether a request with these identifiers belongs to this dialog (§12.2.2): the
    /// Call-ID, the peer's tag as From, and our tag as To.
    pub(super) fn matches(&self, call_id: &str, from_tag: &str, to_tag: Option<&str>) -> bool {
        self.call_id == call_id
            && self.remote_tag.as_deref() == Some(from_tag)
            && to_tag == Some(self.local_tag.as_str())
    }

    /// The session interval for our 2xx (RFC 4028 §9): the peer's if it asked (not below
    /// Min-SE), else ours when it supports timers; the peer's refresher choice, else us.
    pub(super) fn negotiate_session(&self, wanted: u32, min_se: u32) -> Option<SessionParams> {
        match &self.session_request {
            Some(r) => Some(SessionParams {
                interval: Duration::from_secs(u64::from(r.interval.max(min_se))),
                we_refresh: r.refresher != Some(Refresher::Uac) || !self.peer_supports_timer,
            }),
            None if self.peer_supports_timer => Some(SessionParams {
                interval: Duration::from_secs(u64::from(wanted.max(min_se))),
                we_refresh: true,
            }),
            None => None,
        }
    }

    /// The Session-Expires line for responses and refreshes (empty without a timer).
    pub(super) fn session_header(&self) -> String {
        self.session.as_ref().map_or_else(String::new, |s| {
            format!(
                "Session-Expires: {};refresher={}\r\n",
                s.interval.as_secs(),
                if s.we_refresh { "uas" } else { "uac" }
            )
        })
    }

    /// The earliest of the call's own timers.
    pub(super) fn next_timer(&self) -> impl Iterator<Item = Instant> + '_ {
        [
            self.final_2xx.as_ref().map(|r| r.next),
            self.reliable_1xx.as_ref().map(|r| r.next),
            self.session.as_ref().map(SessionTimer::next),
            self.answer_by.filter(|_| self.state == CallState::Early),
            self.our_offer.as_ref().and_then(|o| o.send_at),
        ]
        .into_iter()
        .flatten()
    }

    /// The ACK for a 2xx to our re-INVITE (§13.2.2.4): a new branch, the INVITE's CSeq.
    pub(super) fn ack_for_2xx(&self, local: &Local, branch: &str, r: &Response) -> Vec<u8> {
        let cseq = message::response_keys(r).map_or(self.local_cseq, |k| k.cseq);
        build::request(
            local,
            &RequestSpec {
                method: "ACK",
                uri: &self.remote_target,
                branch,
                from: &format!("{};tag={}", strip_tag(&self.local_uri), self.local_tag),
                to: &match &self.remote_tag {
                    Some(t) => format!("{};tag={t}", strip_tag(&self.remote_uri)),
                    None => strip_tag(&self.remote_uri).to_owned(),
                },
                call_id: &self.call_id,
                cseq,
                extra: "",
                body: None,
            },
        )
    }
}

/// The URI inside `<...>` of a name-addr, or the value itself when it has no brackets.
pub(super) fn uri_in_brackets(v: &str) -> Option<String> {
    match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if b > a => Some(v[a + 1..b].to_owned()),
        _ => v.split(';').next().map(|s| s.trim().to_owned()),
    }
}

/// A retransmission schedule: T1 doubling up to T2, giving up after 64*T1.
pub(super) struct Retransmit {
    bytes: Vec<u8>,
    next: Instant,
    interval: Duration,
    give_up: Instant,
    t2: Duration,
}

pub(super) enum RetransmitAction {
    Send(Vec<u8>),
    GiveUp,
    Wait,
}

impl Retransmit {
    pub(super) fn new(now: Instant, bytes: Vec<u8>, t: Timers) -> Self {
        Self {
            bytes,
            next: now + t.t1,
            interval: t.t1,
            give_up: now + t.t1 * 64,
            t2: t.t2,
        }
    }

    pub(super) fn poll(&mut self, now: Instant) -> RetransmitAction {
        if now >= self.give_up {
            return RetransmitAction::GiveUp;
        }
        if now < self.next {
            return RetransmitAction::Wait;
        }
        self.interval = (self.interval * 2).min(self.t2);
        self.next = (now + self.interval).min(self.give_up);
        RetransmitAction::Send(self.bytes.clone())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refresher {
    Uac,
    Uas,
}

/// What an INVITE asked of session timers (RFC 4028 §4): Session-Expires (long or
/// compact `x`) with its refresher parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SessionRequest {
    pub(super) interval: u32,
    pub(super) refresher: Option<Refresher>,
}

impl SessionRequest {
    pub(super) fn from_request(h: &message::rsip::Headers) -> Option<Self> {
        let v = header_value(h, "Session-Expires").or_else(|| header_value(h, "x"))?;
        let mut parts = v.split(';');
        let interval = parts.next()?.trim().parse().ok()?;
        let refresher = parts.find_map(|p| {
            let (k, v) = p.split_once('=')?;
            if !k.trim().eq_ignore_ascii_case("refresher") {
                return None;
            }
            match v.trim().to_ascii_lowercase().as_str() {
                "uac" => Some(Refresher::Uac),
                "uas" => Some(Refresher::Uas),
                _ => None,
            }
        });
        Some(Self {
            interval,
            refresher,
        })
    }
}

pub(super) struct SessionParams {
    pub(super) interval: Duration,
    pub(super) we_refresh: bool,
}

impl SessionParams {
    pub(super) fn start(self, now: Instant) -> SessionTimer {
        SessionTimer {
            interval: self.interval,
            we_refresh: self.we_refresh,
            last: now,
            refreshing: false,
        }
    }
}

/// A running session timer.
pub(super) struct SessionTimer {
    pub(super) interval: Duration,
    pub(super) we_refresh: bool,
    last: Instant,
    /// A refresh of ours is outstanding.
    refreshing: bool,
}

pub(super) enum SessionAction {
    Refresh,
    Expired,
    Wait,
}

impl SessionTimer {
    /// The refresher refreshes at half the interval (§7.4, §9); the other side gives up
    /// at the interval minus min(32 s, interval/3) (§10).
    fn next(&self) -> Instant {
        if self.we_refresh && !self.refreshing {
            self.last + self.interval / 2
        } else {
            self.last + self.interval - (self.interval / 3).min(Duration::from_secs(32))
        }
    }

    pub(super) fn poll(&mut self, now: Instant) -> SessionAction {
        if now < self.next() {
            return SessionAction::Wait;
        }
        if self.we_refresh && !self.refreshing {
            self.refreshing = true;
            SessionAction::Refresh
        } else {
            SessionAction::Expired
        }
    }

    pub(super) fn refreshed(&mut self, now: Instant) {
        self.last = now;
        self.refreshing = false;
    }
}

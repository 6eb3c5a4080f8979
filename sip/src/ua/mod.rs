//! The trunk user agent, sans-IO: it takes datagrams and stream frames from the trunk's
//! transports and time, and gives bytes to send and call events. Transactions
//! ([`crate::transaction`]) sit under it; dialogs, the trunk peers, OPTIONS keep-alives,
//! session timers (RFC 4028) and reliable provisionals (RFC 3262) are here.
//!
//! - SIP from an address that is not a trunk peer is dropped without a response and
//!   counted (seeds-switch.md R14, TDoS protection).
//! - An INVITE with SDP gives [`AgentEvent::Incoming`] with the offer; the application
//!   answers with [`Agent::accept`]. An INVITE without SDP (delayed offer, Unified CM's
//!   default) takes our offer in [`Agent::accept`], and the answer comes back in the ACK
//!   ([`AgentEvent::Answer`]).
//! - [`Agent::reoffer`] sends our own offer in a re-INVITE (RFC 3261 §14.1: one at a time,
//!   491 on glare and retried); the answer or refusal comes back as an event.
//! - re-INVITE and UPDATE with SDP give [`AgentEvent::Reoffer`]; without SDP a re-INVITE
//!   still needs our offer, an UPDATE is a session refresh answered at once.

mod build;
mod call;
mod trunk;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use self::build::{Local, RequestSpec};
use self::call::{Call, CallState, Role};
pub use self::trunk::{PeerState, TrunkPeer};
use crate::message::{
    self, Keys, Method, Request, Response, SipMessage, header_value, lists_option, response_to,
};
use crate::sdp::{self, Description};
use crate::transaction::{Timers, Transaction, TransactionEvent, TransactionKey};

/// A SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP (unreliable: transactions retransmit).
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl Transport {
    /// Whether the transport is reliable (no retransmissions, RFC 3261 §17).
    pub fn is_reliable(self) -> bool {
        self != Self::Udp
    }

    pub(crate) fn via_name(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
        }
    }

    pub(crate) fn uri_param(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }

    /// From a configuration value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "udp" => Self::Udp,
            "tcp" => Self::Tcp,
            "tls" => Self::Tls,
            _ => return None,
        })
    }
}

/// Where a message came from or goes to: a transport and the remote address (for
/// streams, the connection to that address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Remote {
    /// The transport.
    pub transport: Transport,
    /// The remote address.
    pub addr: SocketAddr,
}

/// Bytes to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where.
    pub to: Remote,
    /// What.
    pub bytes: Vec<u8>,
}

/// A call, as the application knows it.
pub type CallHandle = u64;

/// Why a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The peer sent BYE.
    Bye,
    /// The peer cancelled before we answered.
    Cancelled,
    /// Our 2xx was never acknowledged (RFC 3261 §13.3.1.4): we sent BYE.
    NoAck,
    /// A transaction timed out (timer B, F or H).
    Timeout,
    /// The session timer expired without a refresh (RFC 4028 §10): we sent BYE.
    SessionExpired,
    /// We ended it ([`Agent::hangup`] or [`Agent::reject`]).
    Local,
    /// An outbound INVITE was refused with this status.
    Refused(u16),
}

/// What the agent reports.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// A new INVITE from a trunk peer: answer with [`Agent::accept`] or [`Agent::reject`].
    Incoming {
        /// The call.
        call: CallHandle,
        /// The Request-URI user part (the meeting number).
        user: String,
        /// The SIP Call-ID (for logs).
        call_id: String,
        /// The offer; `None` for a delayed offer.
        offer: Option<Description>,
        /// Whether it came over TLS.
        over_tls: bool,
        /// Which trunk peer.
        peer: usize,
    },
    /// The SDP answer to our offer (in the ACK of a delayed-offer call, or in the 2xx to
    /// our INVITE).
    Answer {
        /// The call.
        call: CallHandle,
        /// The answer.
        answer: Description,
    },
    /// The call is up (our 2xx was acknowledged, or our INVITE was answered).
    Established {
        /// The call.
        call: CallHandle,
    },
    /// A re-INVITE or UPDATE: answer with [`Agent::answer_reoffer`]. `None`: a re-INVITE
    /// without SDP, which wants our current offer.
    Reoffer {
        /// The call.
        call: CallHandle,
        /// The new offer.
        offer: Option<Description>,
    },
    /// The answer to our re-INVITE's offer ([`Agent::reoffer`]).
    ReofferAnswered {
        /// The call.
        call: CallHandle,
        /// The answer.
        answer: Description,
    },
    /// Our re-INVITE's offer was refused (RFC 3261 §14.1: the session goes on as it was).
    ReofferRefused {
        /// The call.
        call: CallHandle,
        /// The final status (a 2xx here carried no usable SDP).
        status: u16,
    },
    /// The call is over; its media must go.
    Ended {
        /// The call.
        call: CallHandle,
        /// Why.
        reason: EndReason,
    },
    /// A trunk peer answered OPTIONS again / stopped answering.
    Peer {
        /// Its index in the configuration.
        peer: usize,
        /// Up or down.
        state: PeerState,
    },
    /// A line for the operator's log (seed T1 lines: 403, 488, 606, no trunk peer).
    Log(String),
}

/// How the agent behaves.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The trunk peers, in order of preference (at most five, seeds-switch.md R2).
    pub peers: Vec<TrunkPeer>,
    /// Our address per transport (Via and Contact).
    pub local: Vec<(Transport, SocketAddr)>,
    /// Transaction timers.
    pub timers: Timers,
    /// OPTIONS keep-alive interval; `None` disables it.
    pub options_interval: Option<Duration>,
    /// The session interval we ask for and accept (RFC 4028; 1800 s).
    pub session_expires: u32,
    /// The smallest session interval we accept (RFC 4028 Min-SE; at least 90 s).
    pub min_se: u32,
    /// The largest message accepted.
    pub max_message: usize,
    /// How long an incoming call may wait for the application's answer before it is
    /// refused with 480 (timer C's 3 minutes).
    pub answer_timeout: Duration,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            peers: Vec::new(),
            local: Vec::new(),
            timers: Timers::default(),
            options_interval: Some(Duration::from_secs(30)),
            session_expires: 1800,
            min_se: 90,
            max_message: crate::framing::DEFAULT_MAX_MESSAGE,
            answer_timeout: Duration::from_secs(180),
        }
    }
}

/// Counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentStats {
    /// Messages from addresses that are not trunk peers (dropped, no response).
    pub not_a_peer: u64,
    /// Messages that did not parse or lacked required headers.
    pub malformed: u64,
    /// 400 responses sent to them.
    pub bad_requests_answered: u64,
    /// Responses that matched no transaction.
    pub stray_responses: u64,
}

enum ClientPurpose {
    Options(usize),
    /// An in-dialog request of a call (BYE, refresh).
    InDialog(CallHandle, Method),
    /// Our INVITE toward peer index `usize`.
    Invite(CallHandle),
}

struct Client {
    tx: Transaction,
    to: Remote,
    purpose: ClientPurpose,
}

struct Server {
    tx: Transaction,
    to: Remote,
}

/// The trunk user agent.
pub struct Agent {
    config: AgentConfig,
    peers: Vec<trunk::PeerStatus>,
    servers: HashMap<TransactionKey, Server>,
    clients: HashMap<TransactionKey, Client>,
    calls: HashMap<CallHandle, Call>,
    next_call: CallHandle,
    transmits: VecDeque<Transmit>,
    events: VecDeque<AgentEvent>,
    stats: AgentStats,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("calls", &self.calls.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// An agent; OPTIONS keep-alives start at `now`.
    pub fn new(now: Instant, config: AgentConfig) -> Self {
        let peers = config
            .peers
            .iter()
            .map(|_| trunk::PeerStatus::new(now))
            .collect();
        Self {
            config,
            peers,
            servers: HashMap::new(),
            clients: HashMap::new(),
            calls: HashMap::new(),
            next_call: 1,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: AgentStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> &AgentStats {
        &self.stats
    }

    /// The trunk peer at an address (any port: peers connect from ephemeral ports).
    pub fn peer_for(&self, ip: IpAddr) -> Option<usize> {
        self.config.peers.iter().position(|p| p.addr.ip() == ip)
    }

    /// The trunk peers.
    pub fn peers(&self) -> &[TrunkPeer] {
        &self.config.peers
    }

    /// Whether a peer answers OPTIONS.
    pub fn peer_state(&self, peer: usize) -> Option<PeerState> {
        self.peers.get(peer).map(|p| p.state)
    }

    /// Calls in progress.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    fn send(&mut self, to: Remote, bytes: Vec<u8>) {
        self.transmits.push_back(Transmit { to, bytes });
    }

    /// A message that arrived from `from` (a datagram, or a frame of a stream).
    pub fn handle_message(&mut self, now: Instant, from: Remote, bytes: &[u8]) {
        let Some(peer) = self.peer_for(from.addr.ip()) else {
            self.stats.not_a_peer += 1;
            return;
        };
        self.peers[peer].heard(now);
        let msg = match message::parse(bytes, self.config.max_message) {
            Ok(m) => m,
            Err(e) => return self.malformed(from, bytes, &e.to_string()),
        };
        match msg {
            SipMessage::Request(r) => match message::request_keys(&r) {
                Ok(keys) => self.handle_request(now, from, peer, r, keys),
                Err(e) => self.malformed(from, bytes, &e.to_string()),
            },
            SipMessage::Response(r) => self.handle_response(now, r),
        }
    }

    fn malformed(&mut self, from: Remote, bytes: &[u8], why: &str) {
        self.stats.malformed += 1;
        let reason = format!("Bad Request ({why})");
        if let Some(resp) = message::bad_request_for(bytes, &reason) {
            self.stats.bad_requests_answered += 1;
            self.send(from, resp);
        }
    }

    /// Sends a response in its server transaction, at once (responses leave in the order
    /// they are made: a CANCEL's 200 before the INVITE's 487).
    fn respond(&mut self, now: Instant, key: &TransactionKey, status: u16, bytes: Vec<u8>) {
        if let Some(s) = self.servers.get_mut(key) {
            s.tx.send_response(now, status, bytes);
            while let Some(b) = s.tx.poll_transmit() {
                self.transmits.push_back(Transmit { to: s.to, bytes: b });
            }
        }
    }

    /// A response to `req` with extra header lines and an optional SDP body.
    fn response_bytes(
        &self,
        req: &Request,
        status: u16,
        to_tag: Option<&str>,
        extra: &str,
        body: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut r = response_to(req, status, to_tag);
        r.headers
            .retain(|h| !matches!(h, message::Header::ContentLength(_)));
        let mut text = r.to_string();
        // `to_string` ends the head with CRLF CRLF and no body: splice our headers in.
        text.truncate(text.len() - 2);
        text.push_str(extra);
        let mut out = text.into_bytes();
        match body {
            Some(b) => {
                out.extend_from_slice(
                    format!(
                        "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n",
                        b.len()
                    )
                    .as_bytes(),
                );
                out.extend_from_slice(b);
            }
            None => out.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
        }
        out
    }

    fn handle_request(&mut self, now: Instant, from: Remote, peer: usize, r: Request, k: Keys) {
        let key = TransactionKey::server(&k.branch, &k.sent_by, &r.method);
        let is_ack = r.method == Method::Ack;
        if let Some(s) = self.servers.get_mut(&key) {
            // A retransmission, or the ACK of a non-2xx final.
            if !(is_ack && s.tx.state() == crate::transaction::State::Accepted) {
                s.tx.handle_request(now, is_ack);
                return;
            }
        }
        if is_ack {
            return self.handle_ack(now, &r, &k);
        }
        self.servers.insert(
            key.clone(),
            Server {
                tx: Transaction::server(
                    &r.method,
                    from.transport.is_reliable(),
                    self.config.timers,
                ),
                to: from,
            },
        );
        match r.method {
            Method::Invite if k.to_tag.is_none() => self.handle_invite(now, from, peer, r, key, k),
            Method::Invite | Method::Update => self.handle_reoffer(now, r, key, k),
            Method::Cancel => self.handle_cancel(now, &r, &key, &k),
            Method::Bye => self.handle_bye(now, &r, &key, &k),
            Method::PRack => self.handle_prack(now, &r, &key, &k),
            Method::Options => {
                let extra = format!(
                    "Allow: {}\r\nAccept: application/sdp\r\nSupported: {}\r\n",
                    build::ALLOW,
                    build::SUPPORTED
                );
                let b = self.response_bytes(&r, 200, Some(&build::token(6)), &extra, None);
                self.respond(now, &key, 200, b);
            }
            _ => {
                let extra = format!("Allow: {}\r\n", build::ALLOW);
                let b = self.response_bytes(&r, 405, Some(&build::token(6)), &extra, None);
                self.respond(now, &key, 405, b);
            }
        }
    }

    fn find_call(&self, k: &Keys) -> Option<CallHandle> {
        self.calls
            .iter()
            .find(|(_, c)| c.matches(&k.call_id, &k.from_tag, k.to_tag.as_deref()))
            .map(|(h, _)| *h)
    }

    fn handle_invite(
        &mut self,
        now: Instant,
        from: Remote,
        peer: usize,
        r: Request,
        key: TransactionKey,
        k: Keys,
    ) {
        let local_tag = build::token(6);
        // RFC 3261 §8.2.2.3: option tags we do not know.
        let unsupported: Vec<String> = header_value(&r.headers, "Require")
            .map(|v| {
                v.split(',')
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty() && t != "100rel" && t != "timer")
                    .collect()
            })
            .unwrap_or_default();
        if !unsupported.is_empty() {
            let extra = format!("Unsupported: {}\r\n", unsupported.join(", "));
            let b = self.response_bytes(&r, 420, Some(&local_tag), &extra, None);
            return self.respond(now, &key, 420, b);
        }
        // RFC 4028 §8: too small a session interval gets 422 with our Min-SE.
        let session = call::SessionRequest::from_request(&r.headers);
        if session.is_some_and(|s| s.interval < self.config.min_se) {
            let extra = format!("Min-SE: {}\r\n", self.config.min_se);
            let b = self.response_bytes(&r, 422, Some(&local_tag), &extra, None);
            return self.respond(now, &key, 422, b);
        }
        let offer = match offer_in(&r) {
            Ok(o) => o,
            Err(e) => {
                let extra = format!("Warning: 399 mswitch \"{e}\"\r\n");
                let b = self.response_bytes(&r, 400, Some(&local_tag), &extra, None);
                return self.respond(now, &key, 400, b);
            }
        };
        let trying = self.response_bytes(&r, 100, None, "", None);
        self.respond(now, &key, 100, trying);
        let handle = self.next_call;
        self.next_call += 1;
        let user = r
            .uri
            .auth
            .as_ref()
            .map(|a| a.user.clone())
            .unwrap_or_default();
        let remote_target = r
            .headers
            .iter()
            .find_map(|h| match h {
                message::Header::Contact(c) => Some(c.value().to_owned()),
                _ => None,
            })
            .and_then(|c| call::uri_in_brackets(&c))
            .unwrap_or_else(|| r.uri.to_string());
        let from_value = header_of(&r, |h| match h {
            message::Header::From(v) => Some(v.value().to_owned()),
            _ => None,
        });
        let to_value = header_of(&r, |h| match h {
            message::Header::To(v) => Some(v.value().to_owned()),
            _ => None,
        });
        let reliable_provisional = lists_option(&r.headers, "Require", "100rel");
        let peer_supports_timer = lists_option(&r.headers, "Supported", "timer")
            || lists_option(&r.headers, "Require", "timer");
        let peer_allows_update = header_value(&r.headers, "Allow").is_some_and(|a| {
            a.split(',')
                .any(|m| m.trim().eq_ignore_ascii_case("UPDATE"))
        });
        let call = Call {
            role: Role::Uas,
            state: CallState::Early,
            call_id: k.call_id.clone(),
            local_tag,
            remote_tag: Some(k.from_tag.clone()),
            // From our side, the INVITE's To is our URI and its From the remote one.
            local_uri: to_value,
            remote_uri: from_value,
            remote_target,
            remote: from,
            peer,
            local_cseq: 1,
            remote_cseq: k.cseq,
            invite: Some((key, r.clone())),
            delayed_offer: offer.is_none(),
            reliable_provisional,
            rseq: 0,
            reliable_1xx: None,
            final_2xx: None,
            session_request: session,
            peer_supports_timer,
            peer_allows_update,
            session: None,
            local_sdp: Vec::new(),
            pending_reoffer: None,
            pending_invite_ack: None,
            outbound: None,
            answer_by: Some(now + self.config.answer_timeout),
            our_offer: None,
            reinvite_in_flight: false,
        };
        self.calls.insert(handle, call);
        self.events.push_back(AgentEvent::Incoming {
            call: handle,
            user,
            call_id: k.call_id,
            offer,
            over_tls: from.transport == Transport::Tls,
            peer,
        });
    }

    /// The INVITE of an incoming call still waiting for its final response.
    fn early_invite(&self, call: CallHandle) -> Option<(TransactionKey, Request)> {
        let c = self.calls.get(&call)?;
        (c.state == CallState::Early)
            .then(|| c.invite.clone())
            .flatten()
    }

    /// Sends 180 Ringing for an incoming call (reliably, RFC 3262, when the INVITE
    /// required 100rel).
    pub fn ring(&mut self, now: Instant, call: CallHandle) {
        let Some((key, req)) = self.early_invite(call) else {
            return;
        };
        let c = &self.calls[&call];
        let mut extra = local_for(&self.config, c.remote.transport).contact();
        let reliable = c.reliable_provisional;
        let rseq = c.rseq + 1;
        if reliable {
            extra.push_str(&format!("Require: 100rel\r\nRSeq: {rseq}\r\n"));
        }
        let tag = c.local_tag.clone();
        let b = self.response_bytes(&req, 180, Some(&tag), &extra, None);
        self.respond(now, &key, 180, b.clone());
        if reliable && let Some(c) = self.calls.get_mut(&call) {
            c.rseq = rseq;
            c.reliable_1xx = Some(call::Retransmit::new(now, b, self.config.timers));
        }
    }

    /// Answers an incoming call with 200 OK carrying `sdp`: our answer, or for a delayed
    /// offer our offer (its answer comes in the ACK).
    pub fn accept(&mut self, now: Instant, call: CallHandle, sdp: Vec<u8>) {
        let min_se = self.config.min_se;
        let wanted = self.config.session_expires;
        let timers = self.config.timers;
        let Some((key, req)) = self.early_invite(call) else {
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let mut extra = String::new();
        // RFC 4028 §9: the session interval and who refreshes.
        if let Some(s) = c.negotiate_session(wanted, min_se) {
            extra.push_str(&format!(
                "Session-Expires: {};refresher={}\r\n",
                s.interval.as_secs(),
                if s.we_refresh { "uas" } else { "uac" }
            ));
            if c.peer_supports_timer {
                extra.push_str("Require: timer\r\n");
            }
            c.session = Some(s.start(now));
        }
        extra.push_str(&format!(
            "Allow: {}\r\nSupported: {}\r\n",
            build::ALLOW,
            build::SUPPORTED
        ));
        c.local_sdp = sdp.clone();
        c.state = CallState::WaitingAck;
        let transport = c.remote.transport;
        let tag = c.local_tag.clone();
        let contact = local_for(&self.config, transport).contact();
        let b = self.response_bytes(
            &req,
            200,
            Some(&tag),
            &format!("{contact}{extra}"),
            Some(&sdp),
        );
        self.respond(now, &key, 200, b.clone());
        if let Some(c) = self.calls.get_mut(&call) {
            // RFC 3261 §13.3.1.4: the UAS core retransmits the 2xx until the ACK.
            c.final_2xx = Some(call::Retransmit::new(now, b, timers));
            c.reliable_1xx = None;
        }
    }

    /// Refuses an incoming call (a final status from 300 to 699), or ends an early one.
    pub fn reject(&mut self, now: Instant, call: CallHandle, status: u16, warning: Option<&str>) {
        let Some((key, req)) = self.early_invite(call) else {
            return;
        };
        let c = &self.calls[&call];
        let extra = warning.map_or_else(String::new, |w| {
            format!("Warning: 399 mswitch \"{}\"\r\n", w.replace('"', "'"))
        });
        let tag = c.local_tag.clone();
        let b = self.response_bytes(&req, status.clamp(300, 699), Some(&tag), &extra, None);
        self.respond(now, &key, status.clamp(300, 699), b);
        self.end(call, EndReason::Local);
    }

    fn end(&mut self, call: CallHandle, reason: EndReason) {
        if self.calls.remove(&call).is_some() {
            self.events.push_back(AgentEvent::Ended { call, reason });
        }
    }

    fn handle_ack(&mut self, now: Instant, r: &Request, k: &Keys) {
        let Some(handle) = self.find_call(k) else {
            return;
        };
        let Some(c) = self.calls.get_mut(&handle) else {
            return;
        };
        if c.pending_invite_ack
            .as_ref()
            .is_some_and(|cseq| *cseq == k.cseq)
        {
            // The ACK of a 2xx to a re-INVITE.
            c.pending_invite_ack = None;
            c.final_2xx = None;
            return;
        }
        if c.state != CallState::WaitingAck || k.cseq != c.remote_cseq {
            return;
        }
        c.state = CallState::Confirmed;
        c.final_2xx = None;
        let delayed = c.delayed_offer;
        let _ = now;
        if delayed && !r.body.is_empty() {
            match sdp::parse(&r.body) {
                Ok(answer) => self.events.push_back(AgentEvent::Answer {
                    call: handle,
                    answer,
                }),
                Err(_) => {
                    // An unusable answer in an ACK: the only way out is BYE (RFC 3261 §13.3.1.4).
                    self.events
                        .push_back(AgentEvent::Established { call: handle });
                    return self.hangup(now, handle);
                }
            }
        }
        self.events
            .push_back(AgentEvent::Established { call: handle });
    }

    fn handle_cancel(&mut self, now: Instant, r: &Request, key: &TransactionKey, k: &Keys) {
        let invite_key = TransactionKey::server(&k.branch, &k.sent_by, &Method::Invite);
        let call = self
            .calls
            .iter()
            .find(|(_, c)| c.invite.as_ref().is_some_and(|(ik, _)| *ik == invite_key))
            .map(|(h, c)| (*h, c.state));
        let tag = build::token(6);
        match call {
            Some((handle, CallState::Early)) => {
                let ok = self.response_bytes(r, 200, Some(&tag), "", None);
                self.respond(now, key, 200, ok);
                // RFC 3261 §9.2: the INVITE gets 487.
                let (ltag, req) = {
                    let c = &self.calls[&handle];
                    (
                        c.local_tag.clone(),
                        c.invite.as_ref().map(|(_, r)| r.clone()),
                    )
                };
                if let Some(req) = req {
                    let b = self.response_bytes(&req, 487, Some(&ltag), "", None);
                    self.respond(now, &invite_key, 487, b);
                }
                self.end(handle, EndReason::Cancelled);
            }
            Some(_) => {
                // Too late: the INVITE has its final response; CANCEL has no effect.
                let ok = self.response_bytes(r, 200, Some(&tag), "", None);
                self.respond(now, key, 200, ok);
            }
            None => {
                let b = self.response_bytes(r, 481, Some(&tag), "", None);
                self.respond(now, key, 481, b);
            }
        }
    }

    fn handle_bye(&mut self, now: Instant, r: &Request, key: &TransactionKey, k: &Keys) {
        match self.find_call(k) {
            Some(handle) => {
                let b = self.response_bytes(r, 200, None, "", None);
                self.respond(now, key, 200, b);
                // A BYE before our 2xx was acknowledged still ends the call.
                self.end(handle, EndReason::Bye);
            }
            None => {
                let b = self.response_bytes(r, 481, Some(&build::token(6)), "", None);
                self.respond(now, key, 481, b);
            }
        }
    }

    fn handle_prack(&mut self, now: Instant, r: &Request, key: &TransactionKey, k: &Keys) {
        let rack = header_value(&r.headers, "RAck").map(str::to_owned);
        let status = match self.find_call(k).and_then(|h| self.calls.get_mut(&h)) {
            Some(c) => {
                let acked = rack
                    .as_deref()
                    .and_then(|v| v.split_ascii_whitespace().next())
                    .and_then(|n| n.parse::<u32>().ok());
                if acked == Some(c.rseq) {
                    c.reliable_1xx = None;
                    200
                } else {
                    481
                }
            }
            None => 481,
        };
        let b = self.response_bytes(r, status, None, "", None);
        self.respond(now, key, status, b);
    }

    fn handle_reoffer(&mut self, now: Instant, r: Request, key: TransactionKey, k: Keys) {
        let Some(handle) = self.find_call(&k) else {
            let b = self.response_bytes(&r, 481, None, "", None);
            return self.respond(now, &key, 481, b);
        };
        let c = self.calls.get_mut(&handle).expect("found");
        // RFC 3261 §12.2.2: a lower CSeq is out of order.
        if k.cseq <= c.remote_cseq {
            let b = self.response_bytes(&r, 500, None, "Retry-After: 1\r\n", None);
            return self.respond(now, &key, 500, b);
        }
        // RFC 3261 §14.2: one re-offer at a time, and not while ours is out (glare).
        let ours_out = c.our_offer.as_ref().is_some_and(|o| o.cseq.is_some());
        if c.pending_reoffer.is_some() || (r.method == Method::Invite && ours_out) {
            let b = self.response_bytes(&r, 491, None, "", None);
            return self.respond(now, &key, 491, b);
        }
        c.remote_cseq = k.cseq;
        // Any re-INVITE or UPDATE from the peer refreshes the session (RFC 4028 §10).
        if let Some(s) = &mut c.session {
            s.refreshed(now);
        }
        if r.method == Method::Update && r.body.is_empty() {
            let extra = c.session_header();
            let b = self.response_bytes(&r, 200, None, &extra, None);
            return self.respond(now, &key, 200, b);
        }
        let Ok(offer) = offer_in(&r) else {
            let b = self.response_bytes(&r, 488, None, "", None);
            return self.respond(now, &key, 488, b);
        };
        if r.method == Method::Invite {
            let trying = self.response_bytes(&r, 100, None, "", None);
            self.respond(now, &key, 100, trying);
        }
        let c = self.calls.get_mut(&handle).expect("found");
        c.pending_reoffer = Some((key, r));
        self.events.push_back(AgentEvent::Reoffer {
            call: handle,
            offer,
        });
    }

    /// Answers a pending re-INVITE or UPDATE with `sdp` (200), or refuses it with 488
    /// when `sdp` is `None`.
    pub fn answer_reoffer(&mut self, now: Instant, call: CallHandle, sdp: Option<Vec<u8>>) {
        let timers = self.config.timers;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some((key, req)) = c.pending_reoffer.take() else {
            return;
        };
        let transport = c.remote.transport;
        let session = c.session_header();
        let is_invite = req.method == Method::Invite;
        match sdp {
            Some(body) => {
                c.local_sdp = body.clone();
                let contact = local_for(&self.config, transport).contact();
                let b = self.response_bytes(
                    &req,
                    200,
                    None,
                    &format!("{contact}{session}"),
                    Some(&body),
                );
                self.respond(now, &key, 200, b.clone());
                if is_invite && let Some(c) = self.calls.get_mut(&call) {
                    c.pending_invite_ack = Some(c.remote_cseq);
                    c.final_2xx = Some(call::Retransmit::new(now, b, timers));
                }
            }
            None => {
                let b = self.response_bytes(&req, 488, None, "", None);
                self.respond(now, &key, 488, b);
            }
        }
    }

    /// Offers `sdp` to the peer in a re-INVITE (RFC 3261 §14.1), e.g. to move the media
    /// to RTP/AVP; it becomes our SDP (refreshes re-send it). The answer comes as
    /// [`AgentEvent::ReofferAnswered`], a refusal as [`AgentEvent::ReofferRefused`]. It
    /// waits while the dialog is not confirmed or has another offer/answer exchange open,
    /// and is sent again after a 491 (§14.1: after 0 to 2 s, the Call-ID being the peer's).
    pub fn reoffer(&mut self, now: Instant, call: CallHandle, sdp: Vec<u8>) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.local_sdp = sdp;
        c.our_offer = Some(call::OurOffer {
            cseq: None,
            send_at: Some(now),
        });
        self.send_our_offer(now, call);
    }

    /// Sends our pending offer when the dialog is free for it, else waits a little.
    fn send_our_offer(&mut self, now: Instant, call: CallHandle) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let busy = c.state != CallState::Confirmed
            || c.pending_reoffer.is_some()
            || c.pending_invite_ack.is_some()
            || c.reinvite_in_flight;
        let Some(offer) = c.our_offer.as_mut().filter(|o| o.cseq.is_none()) else {
            return;
        };
        if busy {
            offer.send_at = Some(now + OFFER_RETRY);
            return;
        }
        offer.send_at = None;
        offer.cseq = Some(c.local_cseq + 1);
        c.reinvite_in_flight = true;
        let extra = c.session_header();
        let sdp = c.local_sdp.clone();
        self.send_in_dialog(now, call, Method::Invite, &extra, Some(sdp));
    }

    /// The final response to a re-INVITE of ours: an offer's answer or refusal.
    fn our_reinvite_done(&mut self, now: Instant, h: CallHandle, r: &Response) {
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        c.reinvite_in_flight = false;
        let cseq = message::response_keys(r).map(|k| k.cseq).ok();
        let Some(offer) = c
            .our_offer
            .as_mut()
            .filter(|o| o.cseq.is_some() && o.cseq == cseq)
        else {
            return;
        };
        let status = r.status_code.code();
        if status == 491 {
            // Glare (§14.1): both sides offered; ours goes again after 0 to 2 s.
            let mut b = [0u8; 2];
            let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
            let wait = Duration::from_millis(u64::from(u16::from_be_bytes(b)) % 2001);
            offer.cseq = None;
            offer.send_at = Some(now + wait);
            return;
        }
        c.our_offer = None;
        let answer = (200..300)
            .contains(&status)
            .then(|| sdp::parse(&r.body).ok())
            .flatten();
        self.events.push_back(match answer {
            Some(answer) => AgentEvent::ReofferAnswered { call: h, answer },
            None => AgentEvent::ReofferRefused { call: h, status },
        });
    }

    /// Calls `user` through the trunk with our offer `sdp`: the first peer that is up,
    /// then the next ones in order when one does not answer or is unavailable (503).
    /// Refusals are logged with the seed's lines (T1 L5, L6, L7, L12).
    pub fn call_out(&mut self, now: Instant, user: &str, sdp: Vec<u8>) -> CallHandle {
        let handle = self.next_call;
        self.next_call += 1;
        let first = (0..self.config.peers.len())
            .find(|i| self.peers[*i].state == PeerState::Up)
            .unwrap_or(0);
        self.invite_peer(now, handle, user, sdp, first);
        handle
    }

    fn invite_peer(
        &mut self,
        now: Instant,
        handle: CallHandle,
        user: &str,
        sdp: Vec<u8>,
        peer: usize,
    ) {
        let Some(p) = self.config.peers.get(peer).cloned() else {
            self.events.push_back(AgentEvent::Log(LOG_NO_CM.to_owned()));
            self.calls.remove(&handle);
            self.events.push_back(AgentEvent::Ended {
                call: handle,
                reason: EndReason::Timeout,
            });
            return;
        };
        let local = local_for(&self.config, p.transport);
        let uri = format!(
            "sip:{user}@{};transport={}",
            build::host_port(p.addr),
            p.transport.uri_param()
        );
        let local_uri = format!("<sip:mswitch@{}>", build::host_port(local.addr));
        let call = Call {
            role: Role::Uac,
            state: CallState::Early,
            call_id: format!("{}@mswitch", build::token(12)),
            local_tag: build::token(6),
            remote_tag: None,
            local_uri,
            remote_uri: format!("<{uri}>"),
            remote_target: uri,
            remote: Remote {
                transport: p.transport,
                addr: p.addr,
            },
            peer,
            local_cseq: 0,
            remote_cseq: 0,
            invite: None,
            delayed_offer: false,
            reliable_provisional: false,
            rseq: 0,
            reliable_1xx: None,
            final_2xx: None,
            session_request: None,
            peer_supports_timer: false,
            peer_allows_update: false,
            session: None,
            local_sdp: sdp.clone(),
            pending_reoffer: None,
            pending_invite_ack: None,
            outbound: Some((user.to_owned(), sdp.clone())),
            answer_by: None,
            our_offer: None,
            reinvite_in_flight: false,
        };
        self.calls.insert(handle, call);
        let expires = format!("Session-Expires: {}\r\n", self.config.session_expires);
        self.send_in_dialog(now, handle, Method::Invite, &expires, Some(sdp));
        // send_in_dialog files it as an in-dialog request: re-file it as our INVITE.
        for c in self.clients.values_mut() {
            if matches!(c.purpose, ClientPurpose::InDialog(h, Method::Invite) if h == handle) {
                c.purpose = ClientPurpose::Invite(handle);
            }
        }
    }

    /// The outcome of our INVITE.
    fn invite_result(&mut self, now: Instant, h: CallHandle, e: TransactionEvent) {
        let Some(c) = self.calls.get(&h) else { return };
        let (user, sdp) = c.outbound.clone().unwrap_or_default();
        let peer = c.peer;
        // No answer (timer B): the next trunk peer.
        let TransactionEvent::Response(r) = e else {
            return self.invite_peer(now, h, &user, sdp, peer + 1);
        };
        let code = r.status_code.code();
        match code {
            100..=199 => {}
            200..=299 => {
                let Some(c) = self.calls.get_mut(&h) else {
                    return;
                };
                if let Ok(k) = message::response_keys(&r) {
                    c.remote_tag = k.to_tag;
                }
                if let Some(t) = r.headers.iter().find_map(|x| match x {
                    message::Header::Contact(v) => uri_of(v.value()),
                    _ => None,
                }) {
                    c.remote_target = t;
                }
                let first = c.state == CallState::Early;
                c.state = CallState::Confirmed;
                let local = local_for(&self.config, c.remote.transport);
                let ack = c.ack_for_2xx(&local, &r);
                let to = c.remote;
                self.send(to, ack);
                if first {
                    if let Ok(answer) = sdp::parse(&r.body) {
                        self.events
                            .push_back(AgentEvent::Answer { call: h, answer });
                    }
                    self.events.push_back(AgentEvent::Established { call: h });
                }
            }
            503 => self.invite_peer(now, h, &user, sdp, peer + 1),
            _ => {
                let line = match code {
                    403 => Some(format!(
                        "Dialing {user} received 403 Forbidden from Cisco Unified CM. Check SIP trunk config."
                    )),
                    488 => Some(format!(
                        "Dialing {user} received 488 Not Acceptable Here from Cisco Unified CM. Check SIP trunk config"
                    )),
                    606 => Some(format!(
                        "Dialing {user} received \"606 Not acceptable\" from Cisco Unified CM: with Unified CM 6.1, select \"Encrypted without SDP keys\""
                    )),
                    _ => None,
                };
                if let Some(l) = line {
                    self.events.push_back(AgentEvent::Log(l));
                }
                self.end(h, EndReason::Refused(code));
            }
        }
    }

    /// A stream to `remote` could not be opened or broke: its pending requests fail at
    /// once (our INVITE moves to the next trunk peer).
    pub fn transport_failed(&mut self, now: Instant, remote: Remote) {
        let failed: Vec<TransactionKey> = self
            .clients
            .iter()
            .filter(|(_, c)| c.to == remote)
            .map(|(k, _)| k.clone())
            .collect();
        for k in failed {
            if let Some(c) = self.clients.remove(&k) {
                self.client_result(now, c.purpose, TransactionEvent::TimedOut);
            }
        }
    }

    /// Ends a call: BYE when it is up, a 480 when it is still ringing.
    pub fn hangup(&mut self, now: Instant, call: CallHandle) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        match (c.role, c.state) {
            (Role::Uas, CallState::Early) => self.reject(now, call, 480, None),
            // Our INVITE is still pending: the transaction runs out on its own; the call
            // is gone for the application (a CANCEL would be the courtesy, RFC 3261 §9.1).
            (Role::Uac, CallState::Early) => self.end(call, EndReason::Local),
            _ => {
                self.send_in_dialog(now, call, Method::Bye, "", None);
                self.end(call, EndReason::Local);
            }
        }
    }

    /// Sends an in-dialog request (BYE, UPDATE, re-INVITE) in a client transaction.
    fn send_in_dialog(
        &mut self,
        now: Instant,
        call: CallHandle,
        method: Method,
        extra: &str,
        body: Option<Vec<u8>>,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.local_cseq += 1;
        let branch = build::branch();
        let local = local_for(&self.config, c.remote.transport);
        let method_name = method.to_string();
        let bytes = build::request(
            &local,
            &RequestSpec {
                method: &method_name,
                uri: &c.remote_target,
                branch: &branch,
                from: &format!("{};tag={}", strip_tag(&c.local_uri), c.local_tag),
                to: &match &c.remote_tag {
                    Some(t) => format!("{};tag={t}", strip_tag(&c.remote_uri)),
                    None => strip_tag(&c.remote_uri).to_owned(),
                },
                call_id: &c.call_id,
                cseq: c.local_cseq,
                extra,
                body: body.as_deref().map(|b| ("application/sdp", b)),
            },
        );
        let to = c.remote;
        let tx = Transaction::client(
            now,
            &method,
            bytes,
            to.transport.is_reliable(),
            self.config.timers,
        );
        self.clients.insert(
            TransactionKey::client(&branch, &method),
            Client {
                tx,
                to,
                purpose: ClientPurpose::InDialog(call, method),
            },
        );
    }

    fn handle_response(&mut self, now: Instant, r: Response) {
        let Ok(k) = message::response_keys(&r) else {
            self.stats.malformed += 1;
            return;
        };
        let key = TransactionKey::client(&k.branch, &k.cseq_method);
        let Some(transport) = self.clients.get(&key).map(|c| c.to.transport) else {
            self.stats.stray_responses += 1;
            return;
        };
        let local = local_for(&self.config, transport);
        let client = self.clients.get_mut(&key).expect("found above");
        client
            .tx
            .handle_response(now, r, |resp| ack_for_failure(&local, &k, resp));
    }

    /// Time passed: transactions, 2xx and reliable 1xx retransmission, session timers,
    /// OPTIONS keep-alives.
    pub fn handle_timeout(&mut self, now: Instant) {
        for s in self.servers.values_mut() {
            if s.tx.poll_timeout().is_some_and(|t| t <= now) {
                s.tx.handle_timeout(now);
            }
        }
        for c in self.clients.values_mut() {
            if c.tx.poll_timeout().is_some_and(|t| t <= now) {
                c.tx.handle_timeout(now);
            }
        }
        let unanswered: Vec<CallHandle> = self
            .calls
            .iter()
            .filter(|(_, c)| c.state == CallState::Early && c.answer_by.is_some_and(|t| t <= now))
            .map(|(h, _)| *h)
            .collect();
        for h in unanswered {
            self.reject(now, h, 480, Some("not answered in time"));
        }
        let mut no_ack = Vec::new();
        let mut expired = Vec::new();
        let mut refresh = Vec::new();
        let mut resend = Vec::new();
        let mut unpracked = Vec::new();
        for (h, c) in &mut self.calls {
            for r in [&mut c.final_2xx, &mut c.reliable_1xx] {
                let Some(rt) = r else { continue };
                match rt.poll(now) {
                    call::RetransmitAction::Send(b) => resend.push((c.remote, b)),
                    call::RetransmitAction::GiveUp => {
                        *r = None;
                        match c.state {
                            CallState::WaitingAck => no_ack.push(*h),
                            // RFC 3262 §3: a reliable provisional never PRACKed within
                            // 64*T1: the INVITE is refused with a 5xx.
                            CallState::Early => unpracked.push(*h),
                            CallState::Confirmed => {}
                        }
                    }
                    call::RetransmitAction::Wait => {}
                }
            }
            if let Some(s) = &mut c.session {
                match s.poll(now) {
                    call::SessionAction::Refresh => refresh.push(*h),
                    call::SessionAction::Expired => expired.push(*h),
                    call::SessionAction::Wait => {}
                }
            }
        }
        for (to, b) in resend {
            self.send(to, b);
        }
        for h in unpracked {
            self.reject(
                now,
                h,
                504,
                Some("no PRACK for the reliable provisional response"),
            );
        }
        for h in no_ack {
            self.send_in_dialog(now, h, Method::Bye, "", None);
            self.end(h, EndReason::NoAck);
        }
        for h in expired {
            self.send_in_dialog(now, h, Method::Bye, "", None);
            self.end(h, EndReason::SessionExpired);
        }
        for h in refresh {
            self.refresh_session(now, h);
        }
        let offers: Vec<CallHandle> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                c.our_offer
                    .as_ref()
                    .and_then(|o| o.send_at)
                    .is_some_and(|t| t <= now)
            })
            .map(|(h, _)| *h)
            .collect();
        for h in offers {
            self.send_our_offer(now, h);
        }
        self.keepalive(now);
        self.collect(now);
    }

    /// We are the refresher (RFC 4028 §7.4): UPDATE without SDP when the peer allows it,
    /// else a re-INVITE with our current SDP.
    fn refresh_session(&mut self, now: Instant, h: CallHandle) {
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        let extra = c.session_header();
        if c.peer_allows_update {
            self.send_in_dialog(now, h, Method::Update, &extra, None);
        } else if c.reinvite_in_flight {
            // The re-INVITE that is out refreshes the session when it is answered.
        } else {
            c.reinvite_in_flight = true;
            let sdp = c.local_sdp.clone();
            self.send_in_dialog(now, h, Method::Invite, &extra, Some(sdp));
        }
    }

    fn keepalive(&mut self, now: Instant) {
        let Some(interval) = self.config.options_interval else {
            return;
        };
        for i in 0..self.peers.len() {
            if !self.peers[i].options_due(now, interval) {
                continue;
            }
            let p = self.config.peers[i].clone();
            let local = local_for(&self.config, p.transport);
            let branch = build::branch();
            let uri = format!(
                "sip:{};transport={}",
                build::host_port(p.addr),
                p.transport.uri_param()
            );
            let bytes = build::request(
                &local,
                &RequestSpec {
                    method: "OPTIONS",
                    uri: &uri,
                    branch: &branch,
                    from: &format!(
                        "<sip:mswitch@{}>;tag={}",
                        build::host_port(local.addr),
                        build::token(6)
                    ),
                    to: &format!("<{uri}>"),
                    call_id: &format!("{}@mswitch", build::token(12)),
                    cseq: 1,
                    extra: "Accept: application/sdp\r\n",
                    body: None,
                },
            );
            let to = Remote {
                transport: p.transport,
                addr: p.addr,
            };
            let tx = Transaction::client(
                now,
                &Method::Options,
                bytes,
                p.transport.is_reliable(),
                self.config.timers,
            );
            self.clients.insert(
                TransactionKey::client(&branch, &Method::Options),
                Client {
                    tx,
                    to,
                    purpose: ClientPurpose::Options(i),
                },
            );
        }
    }

    /// Moves transaction output to the transmit queue, handles their events, drops the
    /// finished ones.
    fn collect(&mut self, now: Instant) {
        let mut out = Vec::new();
        for s in self.servers.values_mut() {
            while let Some(b) = s.tx.poll_transmit() {
                out.push((s.to, b));
            }
            while let Some(e) = s.tx.poll_event() {
                if e == TransactionEvent::TimedOut {
                    // Timer H: our non-2xx was never ACKed; nothing more to do.
                }
            }
        }
        let mut results = Vec::new();
        for c in self.clients.values_mut() {
            while let Some(b) = c.tx.poll_transmit() {
                out.push((c.to, b));
            }
            while let Some(e) = c.tx.poll_event() {
                let p = match &c.purpose {
                    ClientPurpose::Options(i) => ClientPurpose::Options(*i),
                    ClientPurpose::InDialog(h, m) => ClientPurpose::InDialog(*h, *m),
                    ClientPurpose::Invite(h) => ClientPurpose::Invite(*h),
                };
                results.push((p, e));
            }
        }
        for (to, b) in out {
            self.send(to, b);
        }
        self.servers.retain(|_, s| !s.tx.is_terminated());
        self.clients.retain(|_, c| !c.tx.is_terminated());
        for (purpose, e) in results {
            self.client_result(now, purpose, e);
        }
    }

    fn client_result(&mut self, now: Instant, purpose: ClientPurpose, e: TransactionEvent) {
        let code = match &e {
            TransactionEvent::Response(r) => Some(r.status_code.code()),
            _ => None,
        };
        match purpose {
            ClientPurpose::Options(i) => {
                let up = code.is_some_and(|c| c >= 200);
                let down = e == TransactionEvent::TimedOut;
                if (up || down)
                    && let Some(state) = self.peers[i].answered(now, up)
                {
                    self.events.push_back(AgentEvent::Peer { peer: i, state });
                }
            }
            ClientPurpose::InDialog(h, method) => match (method, code) {
                // A refresh refused with 481/408 or timed out ends the call (RFC 4028 §10).
                (Method::Update | Method::Invite, Some(481 | 408) | None)
                    if self.calls.contains_key(&h) =>
                {
                    self.send_in_dialog(now, h, Method::Bye, "", None);
                    self.end(h, EndReason::Timeout);
                }
                (Method::Invite, Some(200..=299)) => {
                    // ACK our re-INVITE's 2xx (RFC 3261 §13.2.2.4).
                    if let (TransactionEvent::Response(r), Some(c)) = (&e, self.calls.get(&h)) {
                        let ack = c.ack_for_2xx(&local_for(&self.config, c.remote.transport), r);
                        let to = c.remote;
                        self.send(to, ack);
                        self.our_reinvite_done(now, h, r);
                    }
                    if let Some(s) = self.calls.get_mut(&h).and_then(|c| c.session.as_mut()) {
                        s.refreshed(now);
                    }
                }
                (Method::Invite, Some(300..)) => {
                    if let TransactionEvent::Response(r) = &e {
                        self.our_reinvite_done(now, h, r);
                    }
                }
                (Method::Update, Some(200..=299)) => {
                    if let Some(s) = self.calls.get_mut(&h).and_then(|c| c.session.as_mut()) {
                        s.refreshed(now);
                    }
                }
                _ => {}
            },
            ClientPurpose::Invite(h) => self.invite_result(now, h, e),
        }
    }

    /// When [`Agent::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let tx = self
            .servers
            .values()
            .filter_map(|s| s.tx.poll_timeout())
            .chain(self.clients.values().filter_map(|c| c.tx.poll_timeout()));
        let calls = self.calls.values().flat_map(|c| c.next_timer());
        let peers = self
            .config
            .options_interval
            .into_iter()
            .flat_map(|i| self.peers.iter().filter_map(move |p| p.next_options(i)));
        tx.chain(calls).chain(peers).min()
    }

    /// The next bytes to send. Call after every input.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if self.transmits.is_empty() {
            self.collect(now);
        }
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self, now: Instant) -> Option<AgentEvent> {
        if self.events.is_empty() {
            self.collect(now);
        }
        self.events.pop_front()
    }
}

/// Our address for a transport (Via, Contact): the configured one, else the first.
fn local_for(config: &AgentConfig, t: Transport) -> Local {
    let addr = config
        .local
        .iter()
        .find(|(x, _)| *x == t)
        .or(config.local.first())
        .map_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5060)), |(_, a)| *a);
    Local { addr, transport: t }
}

/// How long our re-INVITE offer waits while the dialog is busy with another exchange.
const OFFER_RETRY: Duration = Duration::from_millis(200);

/// The seed's line when no trunk peer can be reached (T1 L5).
pub const LOG_NO_CM: &str = "Could not connect to Cisco Unified CM";

fn uri_of(v: &str) -> Option<String> {
    call::uri_in_brackets(v)
}

/// The SDP in a request's body; `None` when it has none.
fn offer_in(r: &Request) -> Result<Option<Description>, sdp::SdpError> {
    if r.body.is_empty() {
        Ok(None)
    } else {
        sdp::parse(&r.body).map(Some)
    }
}

fn header_of(r: &Request, f: impl Fn(&message::Header) -> Option<String>) -> String {
    r.headers.iter().find_map(f).unwrap_or_default()
}

/// A From/To value without its tag parameter.
fn strip_tag(v: &str) -> &str {
    match v.find(";tag=") {
        Some(i) => &v[..i],
        None => v,
    }
}

/// The ACK for a non-2xx final response to our INVITE (RFC 3261 §17.1.1.3): same branch,
/// To from the response.
fn ack_for_failure(local: &Local, k: &Keys, resp: &Response) -> Vec<u8> {
    let get = |name: &str| -> String {
        resp.headers
            .iter()
            .find_map(|h| match (h, name) {
                (message::Header::From(v), "From") => Some(v.value().to_owned()),
                (message::Header::To(v), "To") => Some(v.value().to_owned()),
                _ => None,
            })
            .unwrap_or_default()
    };
    build::request(
        local,
        &RequestSpec {
            method: "ACK",
            uri: "sip:mswitch",
            branch: &k.branch,
            from: &get("From"),
            to: &get("To"),
            call_id: &k.call_id,
            cseq: k.cseq,
            extra: "",
            body: None,
        },
    )
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

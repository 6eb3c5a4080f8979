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
//!
//! Files: `vocab.rs` (transports, events, configuration), this file (the agent, routing
//! of requests and responses, the poll methods), `uas.rs` (calls we answer), `reoffer.rs`
//! (offers in a dialog), `uac.rs` (calls we make, in-dialog requests), `timers.rs`
//! (retransmission, session refresh, keep-alive), `call.rs` (dialog state), `trunk.rs`
//! (peers), `build.rs` (requests we write).

mod build;
mod call;
mod reoffer;
mod timers;
mod trunk;
mod uac;
mod uas;
mod vocab;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use self::build::{Local, RequestSpec, Tokens};
use self::call::{Call, CallState, Role};
pub use self::trunk::{PeerState, TrunkPeer};
pub use self::vocab::{
    AgentConfig, AgentEvent, AgentStats, CallHandle, EndReason, Remote, Transmit, Transport,
};
use crate::message::{
    self, Keys, Method, Request, Response, SipMessage, header_value, lists_option, response_to,
};
use crate::sdp::{self, Description};
use crate::transaction::{Timers, Transaction, TransactionEvent, TransactionKey};

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
    /// Tags, branches, Call-IDs and back-off from the caller's seed.
    tokens: Tokens,
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
        let tokens = Tokens::new(&config.rng_seed);
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
            tokens,
        }
    }

    /// The counters.
    pub fn stats(&self) -> &AgentStats {
        &self.stats
    }

    /// The trunk peer at an address (any port: peers connect from ephemeral ports) that
    /// takes SIP over `transport`. A peer configured for TLS takes only TLS (T6, R5): clear
    /// SIP from its address could be anyone's (a UDP source is spoofed at will).
    pub fn peer_for(&self, ip: IpAddr, transport: Transport) -> Option<usize> {
        self.config.peers.iter().position(|p| {
            p.has_ip(ip) && (transport == Transport::Tls || p.transport != Transport::Tls)
        })
    }

    /// Whether `ip` is a trunk peer's address, over any transport.
    pub fn is_peer_address(&self, ip: IpAddr) -> bool {
        self.config.peers.iter().any(|p| p.has_ip(ip))
    }

    /// Peer `peer`'s host name now resolves to `addrs` (the first is where we send):
    /// SIP from any of them is the peer's. Nothing changes for an empty list or an
    /// unknown peer.
    pub fn set_peer_addresses(&mut self, peer: usize, addrs: &[SocketAddr]) {
        if let (Some(p), Some(first)) = (self.config.peers.get_mut(peer), addrs.first()) {
            p.addr = *first;
            p.also = addrs[1..].iter().map(SocketAddr::ip).collect();
        }
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

    /// Calls whose in-dialog requests go over `remote` (a stream connection).
    pub fn calls_over(&self, remote: Remote) -> usize {
        self.calls.values().filter(|c| c.remote == remote).count()
    }

    fn send(&mut self, to: Remote, bytes: Vec<u8>) {
        self.transmits.push_back(Transmit { to, bytes });
    }

    /// A message that arrived from `from` (a datagram, or a frame of a stream).
    pub fn handle_message(&mut self, now: Instant, from: Remote, bytes: &[u8]) {
        let Some(peer) = self.peer_for(from.addr.ip(), from.transport) else {
            if self.is_peer_address(from.addr.ip()) {
                self.stats.clear_from_tls_peer += 1;
            } else {
                self.stats.not_a_peer += 1;
            }
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
        // A well-formed request with a method we do not know is not malformed: 501
        // (RFC 3261 §8.2.1, §21.5.2), with Allow.
        if message::unknown_method(bytes)
            && let Some(mut resp) = message::error_response_for(bytes, 501, "Not Implemented")
        {
            self.stats.not_implemented += 1;
            let allow = format!("Allow: {}\r\n", build::ALLOW);
            let at = resp.len() - "Content-Length: 0\r\n\r\n".len();
            resp.splice(at..at, allow.bytes());
            return self.send(from, resp);
        }
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
                let tag = self.tokens.token(6);
                let b = self.response_bytes(&r, 200, Some(&tag), &extra, None);
                self.respond(now, &key, 200, b);
            }
            _ => {
                let extra = format!("Allow: {}\r\n", build::ALLOW);
                let tag = self.tokens.token(6);
                let b = self.response_bytes(&r, 405, Some(&tag), &extra, None);
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

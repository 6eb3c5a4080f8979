//! The trunk's tokio driver: it owns the UDP socket, the TCP and TLS listeners and the
//! stream connections, and moves bytes between them and the sans-IO [`Agent`].
//!
//! - Either side may open a stream (seeds-switch.md R4); a stream to a remote address is
//!   reused for everything sent there, whoever opened it.
//! - A connection from an address that is not a trunk peer is closed at accept, before
//!   any TLS state exists (R14), and counted.
//! - TLS is mutual both ways ([`crate::tls`]): an inbound connection must present the
//!   certificate of the peer it comes from (its `subject`, else its IP address as CN or
//!   SAN); an outbound one presents ours and checks theirs the same way.
// The driver owns the clock (clippy.toml bans it in the cores).
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};

use crate::conn_limits::{ConnectionLimits, StreamLimits};
use crate::framing::{Frame, PONG, StreamFramer};
use crate::log_throttle::Throttle;
use crate::message_counts::Direction;
use crate::stream_queue::{HIGH_WATER, StreamSender, stream_queue};
use crate::tls::{self, TlsPolicy};
use crate::ua::{Agent, AgentConfig, AgentEvent, CallHandle, Remote, Transport};

/// The most trunk peers a switch has (seeds-switch.md R2).
pub const MAX_PEERS: usize = 5;

/// Where the trunk listens, and with what.
#[derive(Debug, Clone)]
pub struct TrunkConfig {
    /// UDP (5060); `None` disables it.
    pub udp: Option<SocketAddr>,
    /// TCP (5060).
    pub tcp: Option<SocketAddr>,
    /// TLS (5061); needs `tls`.
    pub tls_listen: Option<SocketAddr>,
    /// Our certificate and trust store; required for TLS in either direction.
    pub tls: Option<TlsPolicy>,
    /// The agent (peers, timers). Its `local` addresses are filled from the listeners.
    pub agent: AgentConfig,
}

/// Counters of the driver.
#[derive(Debug, Default)]
pub struct TrunkStats {
    /// Connections from addresses that are not trunk peers, closed at accept.
    pub refused_not_peer: AtomicU64,
    /// Clear (TCP) connections from a trunk peer configured for TLS, closed at accept.
    pub refused_clear: AtomicU64,
    /// TLS handshakes refused (certificate or subject), in or out.
    pub tls_refused: AtomicU64,
    /// Streams closed for a framing error (too large, bad Content-Length).
    pub framing_errors: AtomicU64,
    /// Outbound connections that could not be made.
    pub connect_failures: AtomicU64,
    /// Streams closed because the peer did not read what was sent to it.
    pub slow_readers_closed: AtomicU64,
    /// Connections refused for the per-address or total limit.
    pub refused_limit: AtomicU64,
    /// accept(2) errors (each pauses accepting).
    pub accept_errors: AtomicU64,
    /// Streams closed idle, or holding a half-sent message too long.
    pub idle_closed: AtomicU64,
    /// TLS connections closed because their peer certificate expired (once no call used
    /// them).
    pub certificate_expired_closed: AtomicU64,
    /// Messages in and out by method and status code.
    pub messages: crate::message_counts::MessageCounts,
}

/// How long a stream may keep more than [`HIGH_WATER`] bytes waiting for its peer before
/// it is closed: far longer than a live peer under load needs to read a few hundred
/// kilobytes of SIP.
const STALLED_READER_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

enum Command {
    Ring(CallHandle),
    Accept(CallHandle, Vec<u8>),
    Reject(CallHandle, u16, Option<String>),
    Redirect(CallHandle, String),
    AnswerReoffer(CallHandle, Option<Vec<u8>>),
    Reoffer(CallHandle, Vec<u8>),
    Hangup(CallHandle),
    CallOut(String, Vec<u8>, oneshot::Sender<(CallHandle, String)>),
    PeerAddresses(usize, Vec<SocketAddr>),
    SetTls(Acceptors, Connectors),
}

/// Per trunk peer, the TLS acceptor that checks its subject (`None`: no TLS).
type Acceptors = Arc<Vec<Option<tokio_rustls::TlsAcceptor>>>;
/// Per trunk peer, the TLS connector that checks its subject.
type Connectors = Arc<Vec<Option<tokio_rustls::TlsConnector>>>;

/// One acceptor and one connector per peer: each checks that peer's subject.
fn tls_per_peer(
    policy: Option<&TlsPolicy>,
    subjects: &[String],
) -> io::Result<(Acceptors, Connectors)> {
    let mut acceptors = Vec::new();
    let mut connectors = Vec::new();
    for subject in subjects {
        match policy {
            Some(policy) => {
                let server = policy.server_config(subject).map_err(io::Error::other)?;
                let client = policy.client_config(subject).map_err(io::Error::other)?;
                acceptors.push(Some(tokio_rustls::TlsAcceptor::from(server)));
                connectors.push(Some(tokio_rustls::TlsConnector::from(client)));
            }
            None => {
                acceptors.push(None);
                connectors.push(None);
            }
        }
    }
    Ok((Arc::new(acceptors), Arc::new(connectors)))
}

/// Updates trunk peers' addresses from another task: see [`Trunk::peer_updater`].
#[derive(Debug, Clone)]
pub struct PeerUpdater(mpsc::UnboundedSender<Command>);

impl PeerUpdater {
    /// Trunk peer `peer`'s host name now resolves to `addrs` (see
    /// [`Agent::set_peer_addresses`]); false once the trunk is gone.
    pub fn set(&self, peer: usize, addrs: Vec<SocketAddr>) -> bool {
        self.0.send(Command::PeerAddresses(peer, addrs)).is_ok()
    }
}

enum Inbound {
    Message(Remote, Vec<u8>),
    /// A stream is up: its sender, and for TLS its peer certificate's not-after (Unix).
    Connected(Remote, StreamSender, Option<i64>),
    Closed(Remote),
    ConnectFailed(Remote),
}

/// A running trunk: events come out, decisions go in.
pub struct Trunk {
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<AgentEvent>,
    stats: Arc<TrunkStats>,
    local: Vec<(Transport, SocketAddr)>,
    /// The subject each trunk peer's certificate must name, in peer order.
    subjects: Vec<String>,
}

impl std::fmt::Debug for Trunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trunk")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl Trunk {
    /// Binds the listeners and starts the driver on the current tokio runtime.
    pub async fn start(config: TrunkConfig) -> io::Result<Self> {
        Self::start_with(config, StreamLimits::default()).await
    }

    /// [`Trunk::start`] with other limits on stream connections than the defaults.
    pub async fn start_with(
        mut config: TrunkConfig,
        stream_limits: StreamLimits,
    ) -> io::Result<Self> {
        // Seeds-switch.md R2: Unified CM1 to CM5.
        if config.agent.peers.len() > MAX_PEERS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("at most {MAX_PEERS} trunk peers"),
            ));
        }
        // A bind failure names what could not be bound.
        let named = |what: &str, a: SocketAddr| {
            let what = what.to_owned();
            move |e: io::Error| io::Error::new(e.kind(), format!("SIP {what} listener {a}: {e}"))
        };
        let udp = match config.udp {
            Some(a) => Some(UdpSocket::bind(a).await.map_err(named("UDP", a))?),
            None => None,
        };
        let tcp = match config.tcp {
            Some(a) => Some(TcpListener::bind(a).await.map_err(named("TCP", a))?),
            None => None,
        };
        let tls_listener = match (config.tls_listen, &config.tls) {
            (Some(a), Some(_)) => Some(TcpListener::bind(a).await.map_err(named("TLS", a))?),
            (Some(_), None) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a TLS listener needs a certificate and trust store",
                ));
            }
            (None, _) => None,
        };
        let mut local = Vec::new();
        if let Some(s) = &udp {
            local.push((Transport::Udp, s.local_addr()?));
        }
        if let Some(s) = &tcp {
            local.push((Transport::Tcp, s.local_addr()?));
        }
        if let Some(s) = &tls_listener {
            local.push((Transport::Tls, s.local_addr()?));
        }
        config.agent.local = local.clone();
        // The core draws no randomness: its tags, branches and Call-IDs come from this
        // seed. ring's system RNG (getrandom) does not fail on Linux; if it did, the start
        // fails rather than run with a guessable seed.
        ring::rand::SecureRandom::fill(
            &ring::rand::SystemRandom::new(),
            &mut config.agent.rng_seed,
        )
        .map_err(|_| io::Error::other("the system RNG failed"))?;
        let subjects: Vec<String> = config
            .agent
            .peers
            .iter()
            .map(|p| p.subject.clone().unwrap_or_else(|| p.addr.ip().to_string()))
            .collect();
        let (acceptors, connectors) = tls_per_peer(config.tls.as_ref(), &subjects)?;
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (inbound_tx, inbound) = mpsc::unbounded_channel();
        let stats = Arc::new(TrunkStats::default());
        let max = config.agent.max_message;
        let driver = Driver {
            agent: Agent::new(Instant::now(), config.agent),
            udp,
            streams: HashMap::new(),
            pending: HashMap::new(),
            inbound_tx,
            events: events_tx,
            stats: stats.clone(),
            acceptors,
            connectors,
            max,
            limits: ConnectionLimits::new(&stream_limits),
            stream_limits,
            accept_paused_until: None,
            accept_backoff: ACCEPT_BACKOFF_MIN,
            peer_expiry: HashMap::new(),
            refused_log: Throttle::default(),
            stranger_log: Throttle::default(),
        };
        tokio::spawn(driver.run(tcp, tls_listener, inbound, commands_rx));
        Ok(Self {
            commands,
            events,
            stats,
            local,
            subjects,
        })
    }

    /// Replaces the TLS identity and trust (issue 18, hot reload): new connections, in and
    /// out, use `policy` at once; connections already up keep the session they have (and
    /// their calls go on). An error leaves the old policy in place.
    pub fn set_tls(&self, policy: &TlsPolicy) -> io::Result<()> {
        let (acceptors, connectors) = tls_per_peer(Some(policy), &self.subjects)?;
        self.commands
            .send(Command::SetTls(acceptors, connectors))
            .map_err(|_| io::Error::other("the SIP driver stopped"))
    }

    /// The next event; `None` when the driver stopped.
    pub async fn next_event(&mut self) -> Option<AgentEvent> {
        self.events.recv().await
    }

    /// Where a transport listens.
    pub fn local_addr(&self, t: Transport) -> Option<SocketAddr> {
        self.local.iter().find(|(x, _)| *x == t).map(|(_, a)| *a)
    }

    /// The counters.
    pub fn stats(&self) -> &TrunkStats {
        &self.stats
    }

    /// See [`Agent::ring`].
    pub fn ring(&self, call: CallHandle) {
        let _ = self.commands.send(Command::Ring(call));
    }

    /// See [`Agent::accept`].
    pub fn accept(&self, call: CallHandle, sdp: Vec<u8>) {
        let _ = self.commands.send(Command::Accept(call, sdp));
    }

    /// See [`Agent::reject`].
    pub fn reject(&self, call: CallHandle, status: u16, warning: Option<String>) {
        let _ = self.commands.send(Command::Reject(call, status, warning));
    }

    /// See [`Agent::redirect`].
    pub fn redirect(&self, call: CallHandle, contact: String) {
        let _ = self.commands.send(Command::Redirect(call, contact));
    }

    /// A handle that updates the trunk peers' addresses from another task (the one that
    /// resolves their names).
    pub fn peer_updater(&self) -> PeerUpdater {
        PeerUpdater(self.commands.clone())
    }

    /// See [`Agent::answer_reoffer`].
    pub fn answer_reoffer(&self, call: CallHandle, sdp: Option<Vec<u8>>) {
        let _ = self.commands.send(Command::AnswerReoffer(call, sdp));
    }

    /// See [`Agent::reoffer`].
    pub fn reoffer(&self, call: CallHandle, sdp: Vec<u8>) {
        let _ = self.commands.send(Command::Reoffer(call, sdp));
    }

    /// See [`Agent::hangup`].
    pub fn hangup(&self, call: CallHandle) {
        let _ = self.commands.send(Command::Hangup(call));
    }

    /// See [`Agent::call_out`].
    pub async fn call_out(&self, user: &str, sdp: Vec<u8>) -> Option<CallHandle> {
        self.call_out_with_id(user, sdp).await.map(|(h, _)| h)
    }

    /// [`Trunk::call_out`], with the call's SIP Call-ID (empty when the call already
    /// ended: no trunk peer to try).
    pub async fn call_out_with_id(&self, user: &str, sdp: Vec<u8>) -> Option<(CallHandle, String)> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::CallOut(user.to_owned(), sdp, tx))
            .ok()?;
        rx.await.ok()
    }
}

struct Driver {
    agent: Agent,
    udp: Option<UdpSocket>,
    /// Open streams by remote: the writer task's queue.
    streams: HashMap<Remote, StreamSender>,
    /// Bytes for streams being opened.
    pending: HashMap<Remote, Vec<Vec<u8>>>,
    inbound_tx: mpsc::UnboundedSender<Inbound>,
    events: mpsc::UnboundedSender<AgentEvent>,
    stats: Arc<TrunkStats>,
    acceptors: Acceptors,
    connectors: Connectors,
    max: usize,
    /// Open stream connections, by address.
    limits: ConnectionLimits,
    stream_limits: StreamLimits,
    /// After an accept error (out of descriptors): no accept before this, and the next
    /// pause.
    accept_paused_until: Option<tokio::time::Instant>,
    accept_backoff: std::time::Duration,
    /// Open TLS connections: their peer certificate's not-after (Unix seconds), and whether
    /// its expiry was logged.
    peer_expiry: HashMap<Remote, (i64, bool)>,
    /// Lines about connections a peer can repeat at will, one a second.
    refused_log: Throttle,
    stranger_log: Throttle,
}

/// The first pause after an accept error; it doubles up to [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF_MIN: std::time::Duration = std::time::Duration::from_millis(50);
const ACCEPT_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(1);

impl Driver {
    async fn run(
        mut self,
        tcp: Option<TcpListener>,
        tls: Option<TcpListener>,
        mut inbound: mpsc::UnboundedReceiver<Inbound>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        let mut buf = vec![0u8; 65536];
        let mut recheck = tokio::time::interval(self.stream_limits.certificate_recheck);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self
                .agent
                .poll_timeout()
                .map(tokio::time::Instant::from_std);
            let accepting = self.accept_paused_until.is_none();
            tokio::select! {
                r = recv_udp(&self.udp, &mut buf) => {
                    if let Ok((n, from)) = r {
                        let data = &buf[..n];
                        // RFC 5626 keep-alives over UDP carry no message.
                        if !data.iter().all(|b| b.is_ascii_whitespace()) {
                            let remote = Remote { transport: Transport::Udp, addr: from };
                            self.stats.messages.count(Direction::In, data);
                            self.agent.handle_message(Instant::now(), remote, data);
                        }
                    }
                }
                r = accept(&tcp), if accepting => match r {
                    Ok((stream, from)) => self.accepted(stream, from, Transport::Tcp),
                    Err(e) => self.accept_failed(&e),
                },
                r = accept(&tls), if accepting => match r {
                    Ok((stream, from)) => self.accepted(stream, from, Transport::Tls),
                    Err(e) => self.accept_failed(&e),
                },
                () = sleep_until(self.accept_paused_until), if !accepting => {
                    self.accept_paused_until = None;
                }
                Some(i) = inbound.recv() => self.inbound(i),
                c = commands.recv() => match c {
                    Some(c) => self.command(c),
                    None => return,
                },
                () = sleep_until(deadline) => self.agent.handle_timeout(Instant::now()),
                _ = recheck.tick() => self.recheck_peer_certificates(),
            }
            self.flush().await;
        }
    }

    /// Seed 004: a long-lived connection is checked again. One whose peer certificate has
    /// expired takes no new call (a new connection would fail its handshake anyway) and is
    /// closed as soon as no call uses it; the calls on it are not cut.
    fn recheck_peer_certificates(&mut self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let expired: Vec<Remote> = self
            .peer_expiry
            .iter()
            .filter(|(_, (t, _))| *t < now)
            .map(|(r, _)| *r)
            .collect();
        for remote in expired {
            let calls = self.agent.calls_over(remote);
            if calls == 0 {
                if let Some(w) = self.streams.remove(&remote) {
                    w.retire();
                }
                self.peer_expiry.remove(&remote);
                self.stats
                    .certificate_expired_closed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(remote = %remote.addr, "SIP/TLS connection closed: the peer's certificate expired and no call uses the connection");
            } else if let Some((_, logged)) = self.peer_expiry.get_mut(&remote)
                && !*logged
            {
                *logged = true;
                tracing::warn!(remote = %remote.addr, calls, "the peer's certificate expired while its SIP/TLS connection is up: it closes when its calls end");
            }
        }
    }

    fn command(&mut self, c: Command) {
        let now = Instant::now();
        match c {
            Command::Ring(h) => self.agent.ring(now, h),
            Command::Accept(h, sdp) => self.agent.accept(now, h, sdp),
            Command::Reject(h, s, w) => self.agent.reject(now, h, s, w.as_deref()),
            Command::Redirect(h, contact) => self.agent.redirect(now, h, &contact),
            Command::AnswerReoffer(h, sdp) => self.agent.answer_reoffer(now, h, sdp),
            Command::Reoffer(h, sdp) => self.agent.reoffer(now, h, sdp),
            Command::Hangup(h) => self.agent.hangup(now, h),
            Command::CallOut(user, sdp, reply) => {
                let call = self.agent.call_out(now, &user, sdp);
                let call_id = self.agent.call_id(call).unwrap_or_default().to_owned();
                let _ = reply.send((call, call_id));
            }
            Command::PeerAddresses(peer, addrs) => self.agent.set_peer_addresses(peer, &addrs),
            Command::SetTls(acceptors, connectors) => {
                self.acceptors = acceptors;
                self.connectors = connectors;
            }
        }
    }

    fn inbound(&mut self, i: Inbound) {
        let now = Instant::now();
        match i {
            Inbound::Message(from, bytes) => {
                self.stats.messages.count(Direction::In, &bytes);
                self.agent.handle_message(now, from, &bytes);
            }
            Inbound::Connected(remote, writer, not_after) => {
                for b in self.pending.remove(&remote).unwrap_or_default() {
                    let _ = writer.send(b);
                }
                self.streams.insert(remote, writer);
                if let Some(t) = not_after {
                    self.peer_expiry.insert(remote, (t, false));
                }
            }
            Inbound::Closed(remote) => {
                self.streams.remove(&remote);
                self.peer_expiry.remove(&remote);
            }
            Inbound::ConnectFailed(remote) => {
                self.stats.connect_failures.fetch_add(1, Ordering::Relaxed);
                self.pending.remove(&remote);
                self.agent.transport_failed(now, remote);
            }
        }
    }

    /// accept(2) failed (out of descriptors, most likely): accepting pauses, with a line
    /// that says why, instead of spinning on a listener that stays readable.
    fn accept_failed(&mut self, e: &io::Error) {
        self.stats.accept_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            pause_ms = self.accept_backoff.as_millis() as u64,
            "SIP accept failed: {e}; accepting pauses"
        );
        self.accept_paused_until = Some(tokio::time::Instant::now() + self.accept_backoff);
        self.accept_backoff = (self.accept_backoff * 2).min(ACCEPT_BACKOFF_MAX);
    }

    /// A new inbound stream: closed at once unless from a trunk peer (nothing is
    /// allocated for it) and within the connection limits; TLS is handshaken with that
    /// peer's subject check, within the limits' `tls_handshake`.
    fn accepted(&mut self, stream: TcpStream, from: SocketAddr, transport: Transport) {
        self.accept_backoff = ACCEPT_BACKOFF_MIN;
        let Some(peer) = self.agent.peer_for(from.ip(), transport) else {
            if self.agent.is_peer_address(from.ip()) {
                self.stats.refused_clear.fetch_add(1, Ordering::Relaxed);
                if let Some(not_logged) = self.stranger_log.allow(Instant::now()) {
                    tracing::warn!(%from, not_logged, "clear SIP connection from a trunk peer configured for TLS: closed");
                }
            } else {
                self.stats.refused_not_peer.fetch_add(1, Ordering::Relaxed);
                if let Some(not_logged) = self.stranger_log.allow(Instant::now()) {
                    tracing::warn!(%from, not_logged, "SIP connection from an address that is not a trunk peer: closed");
                }
            }
            return;
        };
        let slot = match self.limits.try_open(from.ip()) {
            Ok(slot) => slot,
            Err(hit) => {
                self.stats.refused_limit.fetch_add(1, Ordering::Relaxed);
                if let Some(not_logged) = self.refused_log.allow(Instant::now()) {
                    tracing::warn!(%from, not_logged, "SIP connection closed: {hit}");
                }
                return;
            }
        };
        let remote = Remote {
            transport,
            addr: from,
        };
        let inbound = self.inbound_tx.clone();
        let stats = self.stats.clone();
        let max = self.max;
        let limits = self.stream_limits;
        match transport {
            Transport::Tls => {
                let Some(acceptor) = self.acceptors.get(peer).cloned().flatten() else {
                    return;
                };
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(limits.tls_handshake, acceptor.accept(stream)).await
                    {
                        Ok(Ok(s)) => {
                            let not_after = peer_not_after(s.get_ref().1.peer_certificates());
                            serve(s, remote, not_after, inbound, stats, max, limits).await;
                        }
                        Ok(Err(e)) => tls_refused(&stats, &e, from),
                        Err(_) => {
                            stats.tls_refused.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(remote = %from, "TLS handshake not done within {:?}: closed", limits.tls_handshake);
                        }
                    }
                });
            }
            _ => {
                tokio::spawn(async move {
                    let _slot = slot;
                    serve(stream, remote, None, inbound, stats, max, limits).await;
                });
            }
        }
    }

    /// Sends what the agent has to send.
    async fn flush(&mut self) {
        let now = Instant::now();
        while let Some(t) = self.agent.poll_transmit(now) {
            self.stats.messages.count(Direction::Out, &t.bytes);
            match t.to.transport {
                Transport::Udp => {
                    if let Some(s) = &self.udp {
                        let _ = s.send_to(&t.bytes, t.to.addr).await;
                    }
                }
                _ => self.send_stream(t.to, t.bytes),
            }
        }
        while let Some(e) = self.agent.poll_event(now) {
            if let AgentEvent::Log(line) = &e {
                tracing::warn!("{line}");
            }
            let _ = self.events.send(e);
        }
    }

    fn send_stream(&mut self, to: Remote, bytes: Vec<u8>) {
        if let Some(w) = self.streams.get(&to) {
            if w.send(bytes.clone()).is_ok() {
                return;
            }
            self.streams.remove(&to);
        }
        if let Some(q) = self.pending.get_mut(&to) {
            q.push(bytes);
            return;
        }
        // Open it: our certificate is presented, the peer's subject checked.
        self.pending.insert(to, vec![bytes]);
        let connector = self
            .agent
            .peer_for(to.addr.ip(), to.transport)
            .and_then(|p| self.connectors.get(p).cloned().flatten());
        let inbound = self.inbound_tx.clone();
        let stats = self.stats.clone();
        let max = self.max;
        let limits = self.stream_limits;
        tokio::spawn(async move {
            let tcp = match TcpStream::connect(to.addr).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(
                        remote = %to.addr,
                        "{} ({}: {e}): check that the port numbers match the trunk's on Unified CM",
                        crate::ua::LOG_NO_CM,
                        to.addr
                    );
                    let _ = inbound.send(Inbound::ConnectFailed(to));
                    return;
                }
            };
            match (to.transport, connector) {
                (Transport::Tls, Some(c)) => {
                    let name = rustls::pki_types::ServerName::from(to.addr.ip());
                    match tokio::time::timeout(limits.tls_handshake, c.connect(name, tcp)).await {
                        Ok(Ok(s)) => {
                            let not_after = peer_not_after(s.get_ref().1.peer_certificates());
                            serve(s, to, not_after, inbound, stats, max, limits).await;
                        }
                        Ok(Err(e)) => {
                            tls_refused(&stats, &e, to.addr);
                            let _ = inbound.send(Inbound::ConnectFailed(to));
                        }
                        Err(_) => {
                            stats.tls_refused.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(remote = %to.addr, "TLS handshake not done within {:?}", limits.tls_handshake);
                            let _ = inbound.send(Inbound::ConnectFailed(to));
                        }
                    }
                }
                (Transport::Tls, None) => {
                    let _ = inbound.send(Inbound::ConnectFailed(to));
                }
                _ => serve(tcp, to, None, inbound, stats, max, limits).await,
            }
        });
    }
}

/// The not-after (Unix seconds) of a TLS peer's end-entity certificate.
fn peer_not_after(certs: Option<&[rustls::pki_types::CertificateDer<'_>]>) -> Option<i64> {
    let end_entity = certs?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(end_entity).ok()?;
    Some(cert.validity().not_after.timestamp())
}

fn tls_refused(stats: &TrunkStats, e: &io::Error, from: SocketAddr) {
    stats.tls_refused.fetch_add(1, Ordering::Relaxed);
    let line = tls::handshake_failure_line(e);
    tracing::warn!(remote = %from, error = %e, "{line}");
}

/// Runs one stream: frames in, queued bytes out, keep-alive pings answered.
async fn serve<S>(
    stream: S,
    remote: Remote,
    not_after: Option<i64>,
    inbound: mpsc::UnboundedSender<Inbound>,
    stats: Arc<TrunkStats>,
    max: usize,
    limits: StreamLimits,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (tx, mut rx) = stream_queue();
    if inbound
        .send(Inbound::Connected(remote, tx.clone(), not_after))
        .is_err()
    {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(item) = rx.next().await {
            if wr.write_all(&item.bytes).await.is_err() || wr.flush().await.is_err() {
                break;
            }
            rx.written(&item);
        }
        // A TLS stream sends its close_notify (RFC 8446 §6.1).
        let _ = wr.shutdown().await;
    });
    let mut framer = StreamFramer::new(max);
    let mut buf = vec![0u8; 16384];
    let mut message_started: Option<tokio::time::Instant> = None;
    let mut carried_message = false;
    'read: loop {
        // A peer that does not read what we send: stop reading from it (TCP flow control
        // then holds its sending back), and close it if that lasts.
        if tx.queued() > HIGH_WATER
            && tokio::time::timeout(STALLED_READER_LIMIT, tx.below_high_water())
                .await
                .is_err()
        {
            stats.slow_readers_closed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(remote = %remote.addr, "SIP stream closed: the peer does not read what is sent to it");
            break;
        }
        // A message begun and not finished within its limit (counted from its first
        // bytes: a byte now and then does not keep it open), or a connection that carried
        // no message within the idle limit, is closed. A connection that carried one stays
        // as long as its peer keeps it (a call's dialog may be quiet for many minutes);
        // the per-address and total caps bound how many there are.
        let now = tokio::time::Instant::now();
        if framer.buffered() == 0 {
            message_started = None;
        } else if message_started.is_none() {
            message_started = Some(now);
        }
        let quiet_until = match message_started {
            Some(t) => Some(t + limits.partial_message),
            None if !carried_message => Some(now + limits.idle),
            None => None,
        };
        let n = tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            () = sleep_until(quiet_until) => {
                stats.idle_closed.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    remote = %remote.addr,
                    buffered = framer.buffered(),
                    "SIP stream closed: idle, or a message not finished in time"
                );
                break;
            }
            () = tx.closed() => {
                // Retired by the driver, which logged why; else the queue overflowed.
                if !tx.is_retired() {
                    stats.slow_readers_closed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(remote = %remote.addr, "SIP stream closed: its send queue is full (the peer does not read)");
                }
                break;
            }
        };
        framer.push(&buf[..n]);
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Message(m))) => {
                    carried_message = true;
                    if inbound.send(Inbound::Message(remote, m)).is_err() {
                        break 'read;
                    }
                }
                Ok(Some(Frame::Ping)) => {
                    let _ = tx.pong(PONG);
                }
                Ok(Some(Frame::Pong)) => {}
                Ok(None) => break,
                Err(e) => {
                    stats.framing_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(remote = %remote.addr, "SIP stream closed: {e}");
                    break 'read;
                }
            }
        }
    }
    let retired = tx.is_retired();
    tx.close();
    drop(tx);
    if retired {
        // Closed on purpose: what is queued goes out, then the close_notify.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), writer).await;
    } else {
        writer.abort();
    }
    let _ = inbound.send(Inbound::Closed(remote));
}

async fn recv_udp(s: &Option<UdpSocket>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    match s {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

async fn accept(l: &Option<TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

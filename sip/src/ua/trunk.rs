//! Trunk peers (seeds-switch.md R2: up to five call controllers, tried in order) and their
//! OPTIONS keep-alive state.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::Transport;

/// One call controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkPeer {
    /// Its address (SIP from any port of this IP is taken as from it).
    pub addr: SocketAddr,
    /// The transport we use toward it.
    pub transport: Transport,
    /// The subject (certificate CN or SAN) it must present over TLS.
    pub subject: Option<String>,
    /// Further addresses its host name resolves to (R2 allows names): SIP from these
    /// is taken as from it too. `addr` is the one we send to.
    pub also: Vec<std::net::IpAddr>,
}

impl TrunkPeer {
    /// Whether SIP from `ip` is this peer's.
    pub fn has_ip(&self, ip: std::net::IpAddr) -> bool {
        self.addr.ip() == ip || self.also.contains(&ip)
    }
}

/// Whether a peer answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Answering (or not yet probed).
    Up,
    /// Its last OPTIONS timed out.
    Down,
}

#[derive(Debug, Clone)]
pub(super) struct PeerStatus {
    pub(super) state: PeerState,
    /// When the last OPTIONS went out; `None` before the first.
    last_probe: Option<Instant>,
    /// When anything was last heard from it.
    last_heard: Option<Instant>,
    created: Instant,
    /// An OPTIONS is outstanding.
    probing: bool,
}

impl PeerStatus {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            state: PeerState::Up,
            last_probe: None,
            last_heard: None,
            created: now,
            probing: false,
        }
    }

    pub(super) fn heard(&mut self, now: Instant) {
        self.last_heard = Some(now);
    }

    /// When the next OPTIONS is due: at once for the first, then every `interval` after
    /// the previous one; `None` while one is outstanding (its transaction's timers run).
    pub(super) fn next_options(&self, interval: Duration) -> Option<Instant> {
        if self.probing {
            return None;
        }
        Some(match self.last_probe {
            None => self.created,
            Some(t) => t + interval,
        })
    }

    /// Whether to send an OPTIONS now (and note that it went).
    pub(super) fn options_due(&mut self, now: Instant, interval: Duration) -> bool {
        if self.next_options(interval).is_none_or(|t| t > now) {
            return false;
        }
        self.probing = true;
        self.last_probe = Some(now);
        true
    }

    /// The OPTIONS got a final response (`up`) or timed out; returns the new state when
    /// it changed.
    pub(super) fn answered(&mut self, now: Instant, up: bool) -> Option<PeerState> {
        self.probing = false;
        let new = if up {
            self.last_heard = Some(now);
            PeerState::Up
        } else {
            PeerState::Down
        };
        (new != self.state).then(|| {
            self.state = new;
            new
        })
    }
}

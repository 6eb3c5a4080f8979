//! RFC 3261 §17 transactions, sans-IO: the four state machines with timers A-K, over
//! unreliable (UDP) and reliable (TCP, TLS) transports, with the RFC 6026 Accepted state
//! for INVITE 2xx.
//!
//! A transaction takes messages and time, and gives bytes to send and events. The
//! [`TransactionKey`] finds the transaction a message belongs to (§17.1.3, §17.2.3).

use std::time::{Duration, Instant};

use crate::message::{Method, Response};

/// RFC 3261 §17.1.1.1 timer values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate (500 ms).
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests and INVITE responses (4 s).
    pub t2: Duration,
    /// Longest time a message stays in the network (5 s).
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// What a transaction is found by: the top Via branch, its sent-by and the method, with
/// ACK folded into INVITE (a CANCEL has a transaction of its own, §9.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransactionKey {
    /// Via branch.
    pub branch: String,
    /// Via sent-by (server side); empty on the client side.
    pub sent_by: String,
    /// The method, with ACK folded into INVITE.
    pub method: String,
}

impl TransactionKey {
    /// The key of a transaction a server-side message belongs to.
    pub fn server(branch: &str, sent_by: &str, method: &Method) -> Self {
        let method = if *method == Method::Ack {
            Method::Invite
        } else {
            *method
        };
        Self {
            branch: branch.to_owned(),
            sent_by: sent_by.to_ascii_lowercase(),
            method: method.to_string(),
        }
    }

    /// The key of a client transaction (a response is matched by branch and CSeq method).
    pub fn client(branch: &str, method: &Method) -> Self {
        Self {
            branch: branch.to_owned(),
            sent_by: String::new(),
            method: method.to_string(),
        }
    }
}

/// Where a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Client INVITE: request sent, nothing heard.
    Calling,
    /// Client non-INVITE: request sent, nothing heard.
    Trying,
    /// A provisional response was sent or received.
    Proceeding,
    /// A final response (non-2xx for INVITE) was sent or received.
    Completed,
    /// Server INVITE: the ACK for a non-2xx arrived.
    Confirmed,
    /// INVITE 2xx sent or received (RFC 6026 §7.1): retransmissions absorbed.
    Accepted,
    /// Done: the transaction can be dropped.
    Terminated,
}

/// What a transaction reports.
#[derive(Debug, Clone, PartialEq)]
pub enum TransactionEvent {
    /// Client: a response for the transaction user (provisional, final, and 2xx
    /// retransmissions in Accepted, which the dialog must ACK again).
    Response(Box<Response>),
    /// Server INVITE: the ACK for our non-2xx arrived.
    AckReceived,
    /// Timer B, F or H fired: the peer never answered (or never ACKed).
    TimedOut,
}

/// Which machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// §17.1.1.
    ClientInvite,
    /// §17.1.2.
    ClientNonInvite,
    /// §17.2.1.
    ServerInvite,
    /// §17.2.2.
    ServerNonInvite,
}

/// One transaction.
#[derive(Debug)]
pub struct Transaction {
    kind: Kind,
    state: State,
    reliable: bool,
    timers: Timers,
    /// What a retransmission resends: the request (client) or the last response (server).
    last: Option<Vec<u8>>,
    /// Retransmission timer (A, E, G) and its current interval.
    retransmit_at: Option<Instant>,
    interval: Duration,
    /// Timeout timer (B, F, H) or the wait in Completed/Confirmed/Accepted (D, I, J, K, L, M).
    timeout_at: Option<Instant>,
    transmit: Vec<Vec<u8>>,
    events: Vec<TransactionEvent>,
    /// The ACK a client INVITE sends for a non-2xx final (§17.1.1.3).
    ack: Option<Vec<u8>>,
}

impl Transaction {
    /// A client transaction that sends `request` (already serialized) at `now`.
    pub fn client(
        now: Instant,
        method: &Method,
        request: Vec<u8>,
        reliable: bool,
        timers: Timers,
    ) -> Self {
        let invite = *method == Method::Invite;
        let mut t = Self {
            kind: if invite {
                Kind::ClientInvite
            } else {
                Kind::ClientNonInvite
            },
            state: if invite {
                State::Calling
            } else {
                State::Trying
            },
            reliable,
            timers,
            last: Some(request.clone()),
            retransmit_at: (!reliable).then_some(now + timers.t1),
            interval: timers.t1,
            // Timer B / F: 64*T1.
            timeout_at: Some(now + timers.t1 * 64),
            transmit: vec![request],
            events: Vec::new(),
            ack: None,
        };
        if reliable {
            t.retransmit_at = None;
        }
        t
    }

    /// A server transaction for a request that just arrived.
    pub fn server(method: &Method, reliable: bool, timers: Timers) -> Self {
        let invite = *method == Method::Invite;
        Self {
            kind: if invite {
                Kind::ServerInvite
            } else {
                Kind::ServerNonInvite
            },
            state: if invite {
                State::Proceeding
            } else {
                State::Trying
            },
            reliable,
            timers,
            last: None,
            retransmit_at: None,
            interval: timers.t1,
            timeout_at: None,
            transmit: Vec::new(),
            events: Vec::new(),
            ack: None,
        }
    }

    /// The machine.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether it is over.
    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// Server: the TU sends a response (`bytes` serialized, `status` its code).
    pub fn send_response(&mut self, now: Instant, status: u16, bytes: Vec<u8>) {
        if matches!(self.kind, Kind::ClientInvite | Kind::ClientNonInvite)
            || matches!(
                self.state,
                State::Completed | State::Confirmed | State::Terminated
            )
        {
            return;
        }
        let t = self.timers;
        self.transmit.push(bytes.clone());
        self.last = Some(bytes);
        match (self.kind, status) {
            (_, 100..=199) => {
                if self.kind == Kind::ServerNonInvite {
                    self.state = State::Proceeding;
                }
            }
            (Kind::ServerInvite, 200..=299) => {
                // RFC 6026 §8.7: Accepted, timer L = 64*T1; the TU retransmits the 2xx.
                self.state = State::Accepted;
                self.timeout_at = Some(now + t.t1 * 64);
            }
            (Kind::ServerInvite, _) => {
                self.state = State::Completed;
                // Timer G (unreliable only) and timer H = 64*T1.
                self.retransmit_at = (!self.reliable).then_some(now + t.t1);
                self.interval = t.t1;
                self.timeout_at = Some(now + t.t1 * 64);
            }
            (_, _) => {
                self.state = State::Completed;
                // Timer J: 64*T1 unreliable, 0 reliable.
                self.timeout_at = Some(
                    now + if self.reliable {
                        Duration::ZERO
                    } else {
                        t.t1 * 64
                    },
                );
            }
        }
    }

    /// Server: the same request arrived again (a retransmission), or, for INVITE, its ACK.
    pub fn handle_request(&mut self, now: Instant, is_ack: bool) {
        match (self.kind, self.state, is_ack) {
            (Kind::ServerInvite, State::Completed, true) => {
                self.state = State::Confirmed;
                self.retransmit_at = None;
                // Timer I: T4 unreliable, 0 reliable.
                self.timeout_at = Some(
                    now + if self.reliable {
                        Duration::ZERO
                    } else {
                        self.timers.t4
                    },
                );
                self.events.push(TransactionEvent::AckReceived);
            }
            (_, State::Proceeding | State::Completed, false) => {
                if let Some(last) = &self.last {
                    self.transmit.push(last.clone());
                }
            }
            // Accepted absorbs INVITE retransmissions (the TU retransmits the 2xx) and
            // passes nothing; Trying has nothing to resend yet.
            _ => {}
        }
    }

    /// Client: a response for this transaction arrived. `ack` builds the ACK for a
    /// non-2xx final response to an INVITE (§17.1.1.3).
    pub fn handle_response(
        &mut self,
        now: Instant,
        response: Response,
        ack: impl FnOnce(&Response) -> Vec<u8>,
    ) {
        let code = response.status_code.code();
        let t = self.timers;
        match (self.kind, self.state) {
            (Kind::ClientInvite, State::Calling | State::Proceeding) => {
                self.retransmit_at = None;
                match code {
                    100..=199 => {
                        self.state = State::Proceeding;
                        // Timer B no longer applies once something was heard.
                        self.timeout_at = None;
                    }
                    200..=299 => {
                        self.state = State::Accepted;
                        // Timer M = 64*T1 (RFC 6026 §8.4).
                        self.timeout_at = Some(now + t.t1 * 64);
                    }
                    _ => {
                        let a = ack(&response);
                        self.transmit.push(a.clone());
                        self.ack = Some(a);
                        self.state = State::Completed;
                        // Timer D: 32 s unreliable (at least 64*T1), 0 reliable.
                        self.timeout_at = Some(
                            now + if self.reliable {
                                Duration::ZERO
                            } else {
                                Duration::from_secs(32).max(t.t1 * 64)
                            },
                        );
                    }
                }
                self.events
                    .push(TransactionEvent::Response(Box::new(response)));
            }
            (Kind::ClientInvite, State::Accepted) if (200..=299).contains(&code) => {
                self.events
                    .push(TransactionEvent::Response(Box::new(response)));
            }
            (Kind::ClientInvite, State::Completed) if code >= 300 => {
                // A retransmitted final: ACK again, not passed up.
                if let Some(a) = &self.ack {
                    self.transmit.push(a.clone());
                }
            }
            (Kind::ClientNonInvite, State::Trying | State::Proceeding) => {
                if (100..=199).contains(&code) {
                    self.state = State::Proceeding;
                } else {
                    self.state = State::Completed;
                    self.retransmit_at = None;
                    // Timer K: T4 unreliable, 0 reliable.
                    self.timeout_at = Some(now + if self.reliable { Duration::ZERO } else { t.t4 });
                }
                self.events
                    .push(TransactionEvent::Response(Box::new(response)));
            }
            _ => {}
        }
    }

    /// When [`Transaction::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.retransmit_at, self.timeout_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timeout_at.is_some_and(|t| t <= now) {
            self.timeout_at = None;
            self.retransmit_at = None;
            let timed_out = match (self.kind, self.state) {
                // Timers B, F, H.
                (Kind::ClientInvite, State::Calling)
                | (Kind::ClientNonInvite, State::Trying | State::Proceeding)
                | (Kind::ServerInvite, State::Completed) => true,
                _ => false,
            };
            if timed_out {
                self.events.push(TransactionEvent::TimedOut);
            }
            self.state = State::Terminated;
            return;
        }
        if self.retransmit_at.is_some_and(|t| t <= now) {
            if let Some(last) = &self.last {
                self.transmit.push(last.clone());
            }
            let t2 = self.timers.t2;
            self.interval = match (self.kind, self.state) {
                // Timer A doubles without a cap (§17.1.1.2).
                (Kind::ClientInvite, _) => self.interval * 2,
                // Timer E in Proceeding fires every T2 (§17.1.2.2).
                (Kind::ClientNonInvite, State::Proceeding) => t2,
                // Timers E and G double up to T2.
                _ => (self.interval * 2).min(t2),
            };
            self.retransmit_at = Some(now + self.interval);
        }
    }

    /// The next datagram or stream write to send.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.transmit.is_empty()).then(|| self.transmit.remove(0))
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<TransactionEvent> {
        (!self.events.is_empty()).then(|| self.events.remove(0))
    }
}

#[cfg(test)]
#[path = "transaction_tests.rs"]
mod tests;

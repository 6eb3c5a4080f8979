//! The user agent's vocabulary: transports, remote addresses, what it transmits, call
//! handles, the events it reports, its configuration and counters.

use super::*;

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
        /// The caller's User-Agent header, if any (the endpoint's software release).
        user_agent: Option<String>,
        /// The From header's value (the caller), for call records.
        from_uri: String,
        /// The To header's value (the callee), for call records.
        to_uri: String,
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
    /// A trunk peer's answer to an OPTIONS keep-alive (`None`: none came), whatever it
    /// changed: the operator's "last keep-alive".
    KeepAlive {
        /// Its index in the configuration.
        peer: usize,
        /// The final status, if one came.
        status: Option<u16>,
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
    /// The seed of the agent's tags, branches, Call-IDs and glare back-off (quinn's
    /// `rng_seed`): the core draws no randomness of its own. [`crate::driver`] fills it
    /// from the system RNG; the default (zeros) is for tests and fuzzing, whose runs
    /// replay.
    pub rng_seed: [u8; 32],
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
            rng_seed: [0; 32],
        }
    }
}

/// Counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentStats {
    /// Messages from addresses that are not trunk peers (dropped, no response).
    pub not_a_peer: u64,
    /// Clear (UDP, TCP) messages from the address of a peer configured for TLS (dropped,
    /// no response).
    pub clear_from_tls_peer: u64,
    /// Messages that did not parse or lacked required headers.
    pub malformed: u64,
    /// Requests with a method we do not implement, answered 501.
    pub not_implemented: u64,
    /// 400 responses sent to them.
    pub bad_requests_answered: u64,
    /// Responses that matched no transaction.
    pub stray_responses: u64,
}

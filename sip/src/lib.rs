//! SIP trunk signalling for mswitch (ARCHITECTURE.md "Signalling"): the call controller
//! (Unified CM) reaches the switch over UDP, TCP or mutually authenticated TLS, and the
//! switch talks to nothing else. Sans-IO cores, thin tokio drivers.
//!
//! - [`framing`]: Content-Length framing of streams; [`message`]: parsing, checks, responses.
//! - [`tls`]: mutual TLS with the trunk peer's subject checked both ways.
//! - [`transaction`]: RFC 3261 §17 state machines, timers A-K.
//! - [`ua`]: the trunk user agent: peers, TDoS filter, dialogs, session timers, PRACK.
//! - [`driver`]: the tokio driver: UDP, TCP and TLS listeners, connections both ways.
//! - [`sdp`]: offer/answer as typed media lines; [`security`]: the Device Security modes.
#![forbid(unsafe_code)]

pub mod conn_limits;
pub mod driver;
pub mod framing;
pub mod fuzzing;
pub mod log_throttle;
pub mod message;
pub mod message_counts;
pub mod sdp;
pub mod security;
pub mod stream_queue;
pub mod tls;
pub mod transaction;
pub mod ua;

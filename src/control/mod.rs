//! Call control as a sans-IO core (ARCHITECTURE.md "Call control"): the decisions that glue
//! a SIP call to a meeting participant, made in pure code from events (an INVITE with its
//! offer, a re-offer, an answer, a meeting's failure) and tested without a socket. The
//! driver, [`crate::app`], executes them against the trunk, the media workers and the port
//! allocator.
//!
//! - [`incoming`]: an INVITE: meeting, Device Security mode (T6), policy (T4), keying.
//! - [`session`]: re-INVITE/UPDATE, the answer to a delayed offer, a downgrade's answer.
//! - [`lines`]: each line's TIP parameters.
//! - [`release`]: an endpoint's software release from its User-Agent (R37).
//! - [`refusal`]: the one table from a refusal to its status code and seed line.
//! - [`seed`]: the log lines, as values.

pub mod incoming;
pub mod lines;
pub mod refusal;
pub mod release;
pub mod seed;
pub mod session;

pub use incoming::{
    Admitted, CallRules, Incoming, IncomingDecision, MediaPlan, MeetingChange, MeetingView,
    decide_incoming,
};
pub use refusal::{Refusal, SetupFailure};
pub use seed::{SeedLine, Untrusted};
pub use session::{MovedLine, ReofferDecision, decide_reoffer};

#[cfg(test)]
mod tests;

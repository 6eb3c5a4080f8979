//! A socketless meeting simulator (str0m's TestRtc, quinn's Pair): TIP endpoints with 1 or
//! 3 screens that negotiate TIP over per-hop SRTCP, announce their keys in EKT, send
//! EKT-keyed audio (activity byte) and video (IDR flag, REFRESH answered a few frames
//! later), and check every packet they receive (decrypted with the sender's key, payload
//! intact, never their own media). For tests, benches and the load generator (feature
//! `testing`); the production switch is built without it.
//!
//! - `endpoint.rs`: the simulated endpoint, its lines and the shared test keys.
//! - `harness.rs`: [`Sim`], the meeting and its endpoints in virtual time.
//! - `standard.rs`: [`StandardEndpoint`], a SIP endpoint without TIP (issue 19).
// Test code: the simulator plays the driver.
#![allow(clippy::disallowed_methods)]

mod endpoint;
mod harness;
mod standard;

pub use endpoint::*;
pub use harness::*;
pub use standard::*;

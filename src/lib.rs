//! The mswitch application: CLI commands over the `ekt`, `switch` and `sip` crates.
//!
//! - [`control`]: call control's sans-IO core (decisions, refusals, seed lines).
//! - [`app`]: its driver (the trunk, the media workers, the port allocator).
//! - [`join`]: a call's sockets, per-hop keying and SDP.
//! - [`policy`]: the meeting security policy (T4).
//! - [`config`], [`certs`], [`selftest`].
//! - `tools` (feature `tools`): the simulated endpoint, the demo and the load generator.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod certs;
pub mod cluster;
pub mod config;
pub mod control;
pub mod join;
pub mod logging;
pub mod ops;
pub mod policy;
pub mod selftest;
#[cfg(feature = "tools")]
pub mod tools;
#[cfg(feature = "tools")]
pub use tools::{demo, endpoint, load};

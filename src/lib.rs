//! The mswitch application: CLI commands over the `ekt`, `switch` and `sip` crates.
#![forbid(unsafe_code)]

pub mod config;
pub mod policy;
pub mod selftest;

//! The mswitch application: CLI commands over the `ekt`, `switch` and `sip` crates.
#![forbid(unsafe_code)]

pub mod app;
pub mod certs;
pub mod config;
pub mod control;
pub mod demo;
pub mod endpoint;
pub mod join;
pub mod load;
pub mod policy;
pub mod selftest;

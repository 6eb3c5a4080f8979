//! The test tools built beside the switch (cargo feature `tools`, on by default): the
//! simulated TIP endpoint over SIP/TLS, a simulated standard SIP endpoint, `mswitch demo` and `mswitch load`. The production
//! switch is built without them (`cargo build --release --no-default-features`): it then
//! carries neither these modules nor the socketless simulator of `switch/testing`, and its
//! forwarder has no SFU comparison mode.

pub mod demo;
pub mod endpoint;
pub mod load;
pub mod standard_call;

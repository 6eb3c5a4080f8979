//! The pure pieces of a transcrypt leg (ARCHITECTURE.md "Standard SIP endpoints"): what
//! the switch needs to serve an endpoint that speaks neither TIP nor EKT. The meeting
//! (`meeting::standard`) puts them together.
//!
//! - [`g711`]: PCMU and PCMA.
//! - [`mixer`]: the loudest three others, per receiver, every 20 ms.
//! - [`level`]: audio level (RFC 6464 or from samples) and the TIP activity metric.
//! - [`h264`]: the refresh flag from NAL unit types.
//! - [`restamp`]: one continuous SSRC per m-line across switched sources.
//! - [`rtcp`]: the sender reports and PLIs the leg writes.

pub mod g711;
pub mod h264;
pub mod level;
pub mod mixer;
pub mod restamp;
pub mod rtcp;

//! The mswitch media plane.
//!
//! - [`srtp`]: SRTP/SRTCP transforms (RFC 3711, RFC 7714) and the TIP EKT base tag.
//! - [`forward`]: the forwarding fast path: verify, strip the appended byte, rewrite CSRC,
//!   re-sign, without running the payload cipher.
//! - [`rtp`]: RTP/RTCP header views.
//! - [`tip`]: TIP control packets (RTCP APP "xcts"); SPIMAP so far, the rest with issue 3.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod forward;
#[doc(hidden)]
pub mod fuzzing;
pub mod rtp;
pub mod srtp;
pub mod tip;

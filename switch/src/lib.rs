//! The mswitch media plane.
//!
//! - [`srtp`]: SRTP/SRTCP transforms (RFC 3711, RFC 7714) and the TIP EKT base tag.
//! - [`forward`]: the forwarding fast path: verify, strip the appended byte, rewrite CSRC,
//!   re-sign, without running the payload cipher.
//! - [`demux`]: DTLS / RTP / RTCP on one port (RFC 7983).
//! - [`dtls`]: DTLS-SRTP per media line (RFC 5764), sans-IO.
//! - [`ports`]: media port allocation.
//! - [`meeting`]: voice-activated switching and refresh-point display switching.
//! - [`rtp`]: RTP/RTCP header views.
//! - [`udp`]: the media worker: sockets, recvmmsg/sendmmsg batches, epoll (`unsafe` is
//!   only in `udp::sys` and in the SIMD engines, `srtp::batch::{shani, avx2}`).
//! - [`tip`]: TIP control packets (RTCP APP "xcts") and the per-line negotiation.
//! - [`tx`]: the output batch: preallocated slots the cores fill and the driver sends.
//! - `testing` (feature `testing`): the socketless simulator with TIP endpoints.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod demux;
pub mod dtls;
pub mod forward;
#[doc(hidden)]
pub mod fuzzing;
pub mod meeting;
pub mod ports;
pub mod rtp;
pub mod srtp;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tip;
pub mod transcrypt;
pub mod tx;
pub mod udp;

//! SRTP and SRTCP transforms (RFC 3711, RFC 7714): key derivation, contexts with
//! protect/unprotect for the four suites, ROC estimation, replay windows, and the TIP EKT
//! base tag. No I/O; everything works in caller-provided buffers.

mod auth;
pub mod batch;
mod context;
mod kdf;
mod keys;
mod replay;
mod roc;
mod suite;
mod tip_sender;
pub mod tip_tag;

#[cfg(test)]
mod tests;

pub use auth::{HmacSha1Key, tags_equal};
pub use context::{SrtpContext, TipTrailer};
pub(crate) use context::{gcm_rtcp_iv, gcm_rtp_iv};
pub use kdf::{Label, derive};
pub use keys::MasterKey;
pub(crate) use keys::Transform;
pub use replay::{ReplayError, ReplayWindow, WINDOW as REPLAY_WINDOW};
pub use roc::{IndexTracker, PacketIndex, index_of, roc_of};
pub use suite::Suite;
pub use tip_sender::TipEktSender;

use crate::rtp::HeaderError;

/// Why an SRTP or SRTCP packet was not protected or accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    /// The RTP/RTCP header is malformed.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// Too short for its header, trailer and tag.
    #[error("packet too short")]
    TooShort,
    /// The output buffer has no room for the tag.
    #[error("buffer too small for the tag")]
    BufferTooSmall,
    /// The authentication tag did not verify.
    #[error("authentication failed")]
    AuthFailed,
    /// Refused by the replay window.
    #[error("replayed or too old: {0:?}")]
    Replay(ReplayError),
    /// The packet index cannot be estimated (ROC would leave 0..2^32).
    #[error("packet index out of range")]
    IndexOutOfRange,
    /// Key or salt length does not fit the suite.
    #[error("key or salt length does not fit the suite")]
    BadKeyLength,
    /// The operation needs another suite (TIP EKT tags need AES_CM_128_HMAC_SHA1_80).
    #[error("operation not supported by this suite")]
    UnsupportedSuite,
    /// The EKT field is malformed.
    #[error(transparent)]
    Ekt(#[from] ekt::DecodeError),
}

impl From<ReplayError> for SrtpError {
    fn from(e: ReplayError) -> Self {
        Self::Replay(e)
    }
}

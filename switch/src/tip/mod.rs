//! TIP control packets: RTCP APP, PT 204, name "xcts" (WIRE.md section 5; ekt-spec.md §5).
//! One file per message: [`muxctrl`], [`mediaopts`], [`spimap`], and the small fixed
//! layouts in [`simple`] (REFRESH, NOTIFY, REQTOSEND, ACK); [`TipPacket`] decodes any.
//! [`negotiation`] is the per-line state machine.

mod header;
pub mod mediaopts;
pub mod muxctrl;
pub mod negotiation;
mod packet;
pub mod simple;
pub mod spimap;

pub use header::{APP_NAME, AppHeader, HEADER_LEN as APP_HEADER_LEN, RTCP_APP_PT};
pub use packet::TipPacket;

/// Why bytes are not the TIP packet expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TipError {
    /// Shorter than the packet needs.
    #[error("TIP packet too short: {have} bytes, need {need}")]
    TooShort {
        /// Bytes available.
        have: usize,
        /// Bytes needed.
        need: usize,
    },
    /// Not RTCP APP "xcts" version 2.
    #[error("not a TIP packet")]
    NotTip,
    /// The RTCP length field disagrees with the packet.
    #[error("RTCP length field {0} does not fit the packet")]
    BadLength(u16),
    /// A different subtype than the codec handles.
    #[error("unexpected TIP subtype {0}")]
    UnexpectedSubtype(u8),
    /// Output buffer too small.
    #[error("output buffer too small")]
    BufferTooSmall,
}

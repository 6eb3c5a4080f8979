//! The meeting core (sans-IO): who is shown to whom, and when.
//!
//! - [`switching`]: voice-activated switching from the audio activity metric.
//! - [`displays`]: each receiver screen's shown source, switched only at a refresh point.
//! - `core`: the sans-IO [`Meeting`]: participants, media routing, the forwarder.
//! - `line`: each media line's control plane (per-hop keys, DTLS-SRTP, TIP, timers).
//! - `command`: the typed interface: [`MeetingCommand`] in, [`MeetingEvent`] out.
//! - [`report`]: what a meeting tells its operator ([`MeetingCommand::Report`]).

mod command;
mod core;
pub mod displays;
mod line;
pub mod report;
pub mod switching;

pub use self::command::{LineFailure, MeetingCommand, MeetingEvent};
pub use self::core::{
    HopKeying, HopKeys, LineSetup, Meeting, MeetingStats, RtcpLeg, StandardSetup,
};

/// A media line's port handle, as the driver knows it.
pub type LegId = u32;

/// A participant of the meeting (one endpoint, one SIP call).
pub type ParticipantId = u32;

/// TIP positions (WIRE.md section 5): 1 center, 2 left, 3 right.
pub const CENTER: u8 = 1;
/// Left position.
pub const LEFT: u8 = 2;
/// Right position.
pub const RIGHT: u8 = 3;

/// The positions of an endpoint with `screens` screens (1 or 3), center first.
pub fn positions(screens: u8) -> &'static [u8] {
    if screens >= 3 {
        &[CENTER, LEFT, RIGHT]
    } else {
        &[CENTER]
    }
}

/// One camera/microphone of a participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId {
    /// Who.
    pub participant: ParticipantId,
    /// Which position (1 center, 2 left, 3 right).
    pub position: u8,
}

//! The meeting's typed interface toward call control: what may be done to a meeting
//! ([`MeetingCommand`], handled by [`Meeting::handle_command`](super::Meeting::handle_command))
//! and what it reports ([`MeetingEvent`], with a typed [`LineFailure`] where a participant
//! fails). The application maps each failure to its seed log line in one table; nothing
//! here formats a log line.

use super::ParticipantId;
use super::line::LineSetup;
use super::report::MeetingReport;
use super::switching::Mode;
use crate::dtls::DtlsFailure;
use crate::tip::negotiation::{Failure as TipFailure, Media};

/// What call control (and through it, the operator) may do to a meeting. Every variant is
/// a value: it can be logged, counted, replayed in the simulator and exposed to an
/// operator. Operator actions (lock, switching mode, kick) are added here as variants.
pub enum MeetingCommand {
    /// Adds a participant (or replaces it: a downgraded endpoint joins again with plain
    /// lines) with 1 or 3 screens and its media lines; TIP starts at the command's time.
    AddParticipant {
        /// Who.
        participant: ParticipantId,
        /// 1 or 3.
        screens: u8,
        /// Its media lines.
        lines: Vec<LineSetup>,
    },
    /// Removes a participant: its sources, screens and lines.
    RemoveParticipant(ParticipantId),
    /// Secure (SRTP with EKT) or non-secure (plain RTP); set before the first participant.
    SetSecure(bool),
    /// Best-Effort downgrade of a running secure meeting (R38, T1 L3).
    Downgrade,
    /// Site or segment switching from now on (an operator's action, R31).
    SetSwitching(Mode),
    /// Asks for a [`MeetingEvent::Report`] of the meeting as it is now.
    Report,
}

impl std::fmt::Debug for MeetingCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The lines carry keys: only their count is shown.
        match self {
            Self::AddParticipant {
                participant,
                screens,
                lines,
            } => f
                .debug_struct("AddParticipant")
                .field("participant", participant)
                .field("screens", screens)
                .field("lines", &lines.len())
                .finish(),
            Self::RemoveParticipant(p) => f.debug_tuple("RemoveParticipant").field(p).finish(),
            Self::SetSecure(s) => f.debug_tuple("SetSecure").field(s).finish(),
            Self::Downgrade => f.write_str("Downgrade"),
            Self::SetSwitching(m) => f.debug_tuple("SetSwitching").field(m).finish(),
            Self::Report => f.write_str("Report"),
        }
    }
}

/// Why a participant failed: its call must end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineFailure {
    /// A line's TIP negotiation missed a deadline (MUXCTRL or SPIMAP).
    Tip {
        /// Which deadline.
        failure: TipFailure,
        /// The called number of the line (the meeting's number).
        called_num: String,
    },
    /// A line's DTLS-SRTP association failed (fingerprint, deadline, profile, protocol).
    Dtls {
        /// Why.
        failure: DtlsFailure,
        /// The called number of the line (the meeting's number).
        called_num: String,
    },
}

/// What the meeting reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeetingEvent {
    /// A participant's TIP negotiation finished on a line.
    LineEstablished {
        /// Who.
        participant: ParticipantId,
        /// Which line.
        media: Media,
    },
    /// A line's endpoint never spoke TIP (or was configured as standard): the line is a
    /// transcrypt leg from now on (issue 19).
    StandardLine {
        /// Who.
        participant: ParticipantId,
        /// Which line.
        media: Media,
    },
    /// A participant failed and was removed: its call must end.
    ParticipantFailed {
        /// Who.
        participant: ParticipantId,
        /// Why.
        reason: LineFailure,
    },
    /// The site speaker changed.
    SpeakerChanged(Option<ParticipantId>),
    /// The meeting is non-secure now ([`MeetingCommand::Downgrade`]): its secure lines were
    /// told and take no media; each participant must be added again with plain lines.
    Downgraded {
        /// The participants whose lines are still secure.
        participants: Vec<ParticipantId>,
    },
    /// The answer to [`MeetingCommand::Report`].
    Report(Box<MeetingReport>),
}

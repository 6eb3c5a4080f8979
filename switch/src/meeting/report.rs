//! What a meeting tells its operator ([`MeetingCommand::Report`](super::MeetingCommand::Report)
//! answered by [`MeetingEvent::Report`](super::MeetingEvent::Report)): its security, switching
//! mode and speaker, and per participant and line the keying, TIP state and counters. A
//! value, built on the worker's thread and read by the admin API; no key material.

use super::ParticipantId;
use super::core::MeetingStats;
use super::switching::Mode;
use crate::forward::DropReason;
use crate::srtp::Suite;
use crate::tip::negotiation::{Media, State as TipState};

/// A line's traffic as the meeting saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineCounters {
    /// Datagrams that arrived on the line's legs (media, RTCP, DTLS, anything).
    pub packets_in: u64,
    /// Their bytes.
    pub bytes_in: u64,
    /// Media and end-to-end RTCP the meeting forwarded to the line.
    pub packets_out: u64,
    /// Their bytes as received from their sources (the copy sent drops the one appended
    /// byte of TIP media).
    pub bytes_out: u64,
    /// Media from the line the forwarder dropped, by reason ([`DropReason::ALL`] order).
    pub dropped: [u64; DropReason::ALL.len()],
    /// Media from the line held back: keyed for the other kind of meeting (R33).
    pub held: u64,
}

/// How a line's per-hop keys were made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKeying {
    /// SDES `a=crypto`.
    Sdes,
    /// DTLS-SRTP.
    Dtls,
    /// None (a non-secure meeting's plain RTP).
    Plain,
}

/// One media line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineReport {
    /// Audio or video.
    pub media: Media,
    /// Its keying.
    pub keying: LineKeying,
    /// The per-hop suite once keys exist (the DTLS profile negotiated, or the SDES suite).
    pub suite: Option<Suite>,
    /// The TIP negotiation's state (`None`: waiting for DTLS).
    pub tip: Option<TipState>,
    /// TIP is through: media flows to the line.
    pub established: bool,
    /// Keyed for the other kind of meeting, waiting for its re-INVITE (R38).
    pub held: bool,
    /// A transcrypt leg (issue 19): the endpoint speaks no TIP, its media is decrypted and
    /// re-protected by the switch; otherwise end to end (TIP with EKT).
    pub transcrypted: bool,
    /// Its traffic.
    pub counters: LineCounters,
}

/// One participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantReport {
    /// Who.
    pub id: ParticipantId,
    /// 1 or 3.
    pub screens: u8,
    /// Its lines.
    pub lines: Vec<LineReport>,
}

/// One meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingReport {
    /// SRTP with EKT, or plain RTP.
    pub secure: bool,
    /// Site or segment switching.
    pub mode: Mode,
    /// The site speaker.
    pub speaker: Option<ParticipantId>,
    /// Its participants.
    pub participants: Vec<ParticipantReport>,
    /// The forwarder's drops by reason, for the whole meeting.
    pub dropped: Vec<(&'static str, u64)>,
    /// The meeting's own drops.
    pub stats: MeetingStats,
}

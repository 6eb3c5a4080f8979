//! A SIP call as the application tracks it: its meeting and participant, its sockets and
//! SDP, where it stands in a downgrade, and what its call record will say.

use sip::sdp::Description;
use switch::meeting::{LegId, ParticipantId};

use super::PendingDowngrade;
use crate::join::LineSockets;
use crate::ops::cdr::CallEnd;

/// One call.
pub(super) struct CallState {
    pub(super) number: String,
    pub(super) call_id: String,
    pub(super) participant: ParticipantId,
    pub(super) lines: Vec<LineSockets>,
    pub(super) legs: Vec<LegId>,
    /// Delayed offer: our offer's SDES keys per line, until the answer comes.
    pub(super) offered: Option<(Description, Vec<Option<Vec<u8>>>)>,
    /// Our last SDP (answers a re-INVITE).
    pub(super) local_sdp: Vec<u8>,
    /// The peer's last SDP (a re-offer is compared with it).
    pub(super) remote_sdp: Option<Description>,
    pub(super) joined: bool,
    /// Joined with SRTP lines a non-secure meeting holds: re-INVITE it to RTP/AVP once
    /// the call is confirmed.
    pub(super) needs_downgrade: bool,
    /// Our re-INVITE to RTP/AVP is out: its answer adds the participant again, plain.
    pub(super) downgrading: bool,
    /// This call downgrades its secure Best-Effort meeting once it is established.
    pub(super) pending_downgrade: Option<PendingDowngrade>,
    /// The switch placed it (an operator's dial-out).
    pub(super) outbound: bool,
    /// Unix time it came (or was placed).
    pub(super) joined_at: u64,
    /// Why it ends, once known (its call record's end reason).
    pub(super) end: Option<CallEnd>,
    /// Unix time of the INVITE and of the answer, milliseconds (call record).
    pub(super) start_ms: u64,
    pub(super) answer_ms: Option<u64>,
    /// The caller's and the callee's URIs (call record).
    pub(super) from_uri: Option<String>,
    pub(super) to_uri: Option<String>,
    /// Which trunk peer.
    pub(super) peer: Option<usize>,
    /// When the INVITE came (join latency).
    pub(super) invited: std::time::Instant,
    /// When its lines are taken as a standard endpoint's without TIP
    /// (`control::lines::standard_detection`).
    pub(super) standard_after: Option<std::time::Duration>,
    /// Lines through TIP, and whether the join latency was recorded.
    pub(super) lines_established: usize,
    pub(super) latency_recorded: bool,
}

impl CallState {
    /// A call for meeting `number` whose participant will be `participant`.
    pub(super) fn new(number: String, call_id: String, participant: ParticipantId) -> Self {
        Self {
            number,
            call_id,
            participant,
            lines: Vec::new(),
            legs: Vec::new(),
            offered: None,
            local_sdp: Vec::new(),
            remote_sdp: None,
            joined: false,
            needs_downgrade: false,
            downgrading: false,
            pending_downgrade: None,
            outbound: false,
            joined_at: crate::admin::http::state::unix_now(),
            end: None,
            start_ms: super::ops::unix_ms(),
            answer_ms: None,
            from_uri: None,
            to_uri: None,
            peer: None,
            invited: std::time::Instant::now(),
            standard_after: None,
            lines_established: 0,
            latency_recorded: false,
        }
    }
}

impl super::App {
    /// The calls in meeting `number`.
    pub(super) fn calls_in(&self, number: &str) -> Vec<sip::ua::CallHandle> {
        self.calls
            .iter()
            .filter(|(_, c)| c.number == number)
            .map(|(h, _)| *h)
            .collect()
    }
}

//! One meeting, sans-IO: participants' media lines, the forwarder, switching and displays.
//!
//! [`Meeting::handle_datagram`] takes a datagram that arrived on a leg (a media line's
//! port) and fills a [`TxBatch`] with what to send, each entry addressed to a leg.
//! [`Meeting::handle_timeout`] drives the TIP negotiations. Drain
//! [`Meeting::poll_event`] after each call.
//!
//! Routing (issue 3; ARCHITECTURE.md "Meetings and switching"):
//! - an SSRC belongs to the leg it was first verified on; the same SSRC on another leg is
//!   dropped (no one speaks with another participant's voice);
//! - video: each receiver screen gets the source its layout shows, switched at an IDR,
//!   with the TIP CSRC rewritten for that screen; SSRC unchanged;
//! - audio: the loudest N sources go to every other participant's audio line;
//! - end-to-end SRTCP (the EKT SDES packet) goes to every other participant's line of the
//!   same media; per-hop SRTCP (from the peer's control SSRC) ends here and feeds TIP;
//! - no one receives their own media.
//!
//! A line whose offer had no `a=rtcp-mux` has a second leg for RTCP (RFC 3550 §11: the
//! next port). Its RTCP (TIP, forwarded SRTCP) travels there; RTP arriving on it, or RTCP
//! on the RTP leg, is dropped and counted. Keyed by DTLS, each leg runs its own
//! association (RFC 5764 §4.1) and the RTCP leg's keys protect the per-hop SRTCP.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::command::{LineFailure, MeetingCommand, MeetingEvent};
use super::displays::Displays;
use super::line::{Drained, Line, drain_line, flush_tip};
pub use super::line::{HopKeying, HopKeys, LineSetup, RtcpLeg, StandardSetup};
use super::report::{MeetingReport, ParticipantReport};
use super::switching::{Switching, SwitchingConfig};
use super::{CENTER, LegId, ParticipantId, SourceId};
use crate::demux::{PacketKind as Demux, classify};
use crate::dtls::Received;
use crate::forward::{
    CsrcRewrite, DropReason, Forwarder, MAX_BATCH, PacketKind, Receiver, SsrcHashBuilder, TipCsrc,
    TxBatch,
};
use crate::tip::negotiation::Media;
use crate::tip::simple::RefreshKind;

#[path = "standard.rs"]
mod standard;
pub(super) use standard::StandardLine;

/// How often the floor and the audio mix are re-evaluated: one audio packet interval.
/// Switching decisions need no finer grain, and the per-packet path stays a lookup.
const SWITCH_TICK: Duration = Duration::from_millis(20);

struct Participant {
    id: ParticipantId,
    screens: u8,
    lines: Vec<Line>,
    /// Video SSRC per source position (index = position - 1): where REFRESH goes.
    video_ssrc: [Option<u32>; 3],
}

/// Counters of what the meeting dropped before the forwarder saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeetingStats {
    /// Datagrams from a leg no participant has.
    pub unknown_leg: u64,
    /// Media whose SSRC belongs to another leg.
    pub ssrc_on_wrong_leg: u64,
    /// Per-hop SRTCP that failed to unprotect.
    pub hop_auth_failed: u64,
    /// RTCP before the line had per-hop keys (dropped quietly).
    pub before_keys: u64,
    /// DTLS, STUN and other kinds the meeting does not take (yet).
    pub not_media: u64,
    /// RTP on a line's RTCP leg, or RTCP on its RTP leg when RTCP has its own.
    pub wrong_leg_kind: u64,
    /// Media from a line keyed for the other kind of meeting: SRTP from a line not yet
    /// re-negotiated after a downgrade (R38), never forwarded as RTP (R33).
    pub other_security: u64,
    /// DTLS records that did not parse or authenticate (anyone can send them with the
    /// endpoint's address): dropped, the line unharmed (RFC 6347 §4.1.2.7).
    pub dtls_dropped: u64,
    /// DTLS-SRTP handshakes completed.
    pub dtls_connected: u64,
    /// DTLS-SRTP handshakes failed (fingerprint, deadline, profile, protocol).
    pub dtls_failed: u64,
    /// Keyframe requests (PLI, FIR) routed to a source.
    pub keyframe_requests: u64,
    /// Media from a transcrypt leg that failed per-hop verification or did not parse:
    /// it reached no one.
    pub transcrypt_dropped: u64,
}

/// One meeting.
pub struct Meeting {
    forwarder: Forwarder,
    switching: Switching,
    displays: Displays,
    participants: Vec<Participant>,
    /// Which participant owns a verified SSRC.
    /// (The forwarder's SSRC hasher: this is looked up per packet, SipHash showed in the
    /// load profile.)
    ssrc_owner: HashMap<u32, ParticipantId, SsrcHashBuilder>,
    events: VecDeque<MeetingEvent>,
    stats: MeetingStats,
    speaker: Option<ParticipantId>,
    scratch: Vec<u8>,
    receivers: Vec<Receiver>,
    refresh: Vec<SourceId>,
    /// The audio sources mixed in, as of the last tick.
    loudest: Vec<SourceId>,
    /// (receiver, video SSRC it wants refreshed), to route to the source it is shown.
    keyframe_requests: Vec<(ParticipantId, u32)>,
    next_tick: Option<Instant>,
    layouts_dirty: bool,
    /// SRTP with EKT (the default); false: a non-secure meeting's plain RTP (R33: never mixed).
    secure: bool,
    /// Output is waiting outside of any datagram or timer (a NOTIFY of a downgrade).
    flush_at: Option<Instant>,
    /// Transcrypt legs (issue 19): the audio mix when a standard endpoint hears G.711.
    mixer: Option<standard::MeetingMixer>,
    /// The next 20 ms tick of the mix and the sender reports; `None` without a
    /// transcrypt leg.
    next_standard_tick: Option<Instant>,
    /// A packet opened or built for a transcrypt leg (reserved once).
    transcrypt_buf: Vec<u8>,
    e2e_buf: Vec<u8>,
    /// Receivers of the packet being routed that are transcrypt legs.
    transcrypt_to: Vec<ParticipantId>,
    /// A line became a transcrypt leg: receivers may be ready for video.
    pending_ready: bool,
    /// A transcrypt leg hears audio passed through (a codec the switch does not mix).
    passthrough: bool,
}

/// Where a datagram arrived and what it is, as the meeting found it once.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    /// The participant and its line.
    pi: usize,
    li: usize,
    /// RFC 7983 demultiplexing.
    kind: Demux,
    /// Its place in the forwarder's batch, if it came in one.
    in_batch: Option<usize>,
}

impl std::fmt::Debug for Meeting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meeting")
            .field("participants", &self.participants.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Meeting {
    /// A meeting whose forwarder accepts at most `max_sources` sending SSRCs.
    pub fn new(config: SwitchingConfig, max_sources: usize) -> Self {
        Self {
            forwarder: Forwarder::new(max_sources),
            switching: Switching::new(config),
            displays: Displays::new(),
            participants: Vec::new(),
            ssrc_owner: HashMap::with_hasher(SsrcHashBuilder::new()),
            events: VecDeque::new(),
            stats: MeetingStats::default(),
            speaker: None,
            scratch: vec![0u8; crate::forward::SLOT_SIZE],
            receivers: Vec::with_capacity(64),
            refresh: Vec::new(),
            loudest: Vec::new(),
            keyframe_requests: Vec::new(),
            next_tick: None,
            layouts_dirty: false,
            secure: true,
            flush_at: None,
            mixer: None,
            next_standard_tick: None,
            transcrypt_buf: vec![0u8; crate::forward::SLOT_SIZE],
            e2e_buf: vec![0u8; crate::forward::SLOT_SIZE + 64],
            transcrypt_to: Vec::with_capacity(64),
            pending_ready: false,
            passthrough: false,
        }
    }

    /// Does what call control asks (the typed interface of ARCHITECTURE.md "Call
    /// control"); output it makes (a downgrade's NOTIFYs) goes at the next
    /// [`Meeting::handle_timeout`], which [`Meeting::poll_timeout`] asks for at `now`.
    pub fn handle_command(&mut self, now: Instant, command: MeetingCommand) {
        match command {
            MeetingCommand::AddParticipant {
                participant,
                screens,
                lines,
            } => self.add_participant(now, participant, screens, lines),
            MeetingCommand::RemoveParticipant(p) => self.remove_participant(p),
            MeetingCommand::SetSecure(secure) => self.set_secure(secure),
            MeetingCommand::Downgrade => self.downgrade(now),
            MeetingCommand::SetSwitching(mode) => {
                self.switching.set_mode(mode);
                self.layouts_dirty = true;
            }
            MeetingCommand::Report => {
                let report = self.report();
                self.events
                    .push_back(MeetingEvent::Report(Box::new(report)));
            }
        }
    }

    /// Makes the meeting non-secure (`false`): media is plain RTP, taken without a tag to
    /// verify and sent without one; set before the first participant joins.
    pub fn set_secure(&mut self, secure: bool) {
        self.secure = secure;
    }

    /// Best-Effort downgrade (R38, T1 L3): the meeting becomes non-secure. Every line that
    /// is still secure gets a TIP NOTIFY clearing its security icon (R40), and from now on
    /// neither sends nor receives media: its SRTP is never forwarded as RTP (R33). Each
    /// of those participants is re-negotiated to RTP/AVP (SIP re-INVITE) and added again
    /// with plain lines ([`Meeting::add_participant`] replaces it);
    /// [`MeetingEvent::Downgraded`] lists them.
    pub fn downgrade(&mut self, now: Instant) {
        self.secure = false;
        let mut secure_ones = Vec::new();
        for p in &mut self.participants {
            let mut secure_lines = p.lines.iter_mut().filter(|l| !l.plain_control).peekable();
            if secure_lines.peek().is_some() {
                secure_ones.push(p.id);
            }
            for l in secure_lines {
                l.established = false;
                l.held = true;
                if let Some(tip) = &mut l.tip {
                    tip.send_notify(now, false);
                }
            }
            // Plain lines that joined while the meeting was still secure (the newcomer
            // that causes the downgrade: it is carried out once its call is established)
            // were held; they take and get media now.
            for l in p.lines.iter_mut().filter(|l| l.plain_control && l.held) {
                l.held = false;
                l.established = l
                    .tip
                    .as_ref()
                    .is_some_and(|t| t.state() == crate::tip::negotiation::State::Established);
            }
        }
        self.layouts_dirty = true;
        self.flush_at = Some(now);
        self.events.push_back(MeetingEvent::Downgraded {
            participants: secure_ones,
        });
    }

    /// The meeting as its operator sees it.
    pub fn report(&self) -> MeetingReport {
        let fwd = self.forwarder.stats();
        MeetingReport {
            secure: self.secure,
            mode: self.switching.mode(),
            speaker: self.speaker,
            participants: self
                .participants
                .iter()
                .map(|p| ParticipantReport {
                    id: p.id,
                    screens: p.screens,
                    lines: p.lines.iter().map(Line::report).collect(),
                })
                .collect(),
            dropped: DropReason::ALL
                .iter()
                .map(|r| (r.label(), fwd.dropped(*r)))
                .collect(),
            stats: self.stats.clone(),
        }
    }

    /// Whether the meeting runs SRTP with EKT.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The forwarder: its EKT registry takes the meeting's group parameters.
    pub fn forwarder_mut(&mut self) -> &mut Forwarder {
        &mut self.forwarder
    }

    /// The forwarder's counters.
    pub fn forwarder(&self) -> &Forwarder {
        &self.forwarder
    }

    /// The meeting's own counters.
    pub fn stats(&self) -> &MeetingStats {
        &self.stats
    }

    /// Adds a participant with 1 or 3 screens and its media lines; TIP starts at `now`.
    pub fn add_participant(
        &mut self,
        now: Instant,
        id: ParticipantId,
        screens: u8,
        lines: Vec<LineSetup>,
    ) {
        self.remove_participant(id);
        let secure = self.secure;
        let lines = lines
            .into_iter()
            .map(|l| Line::new(now, l, secure))
            .collect();
        self.participants.push(Participant {
            id,
            screens,
            lines,
            video_ssrc: [None; 3],
        });
        self.switching.add_participant(id, screens);
        // Its screens switch once its video line can take media (TIP through).
        let mut no_refresh = Vec::new();
        self.displays.set_ready(id, false, &mut no_refresh);
        self.layouts_dirty = true;
    }

    /// Removes a participant: its sources, screens and lines.
    pub fn remove_participant(&mut self, id: ParticipantId) {
        self.participants.retain(|p| p.id != id);
        self.switching.remove_participant(id);
        self.displays.remove_participant(id);
        let gone: Vec<u32> = self
            .ssrc_owner
            .iter()
            .filter(|(_, o)| **o == id)
            .map(|(s, _)| *s)
            .collect();
        for ssrc in gone {
            self.ssrc_owner.remove(&ssrc);
            self.forwarder.remove_source(ssrc);
        }
        self.loudest.retain(|s| s.participant != id);
        if let Some(m) = &mut self.mixer {
            m.remove_owner(id);
        }
        self.layouts_dirty = true;
    }

    /// The participants.
    pub fn participant_ids(&self) -> impl Iterator<Item = ParticipantId> + '_ {
        self.participants.iter().map(|p| p.id)
    }

    /// The participant and line a leg belongs to, and whether it is the line's RTCP leg.
    fn find_leg(&self, leg: LegId) -> Option<(usize, usize, bool)> {
        self.participants.iter().enumerate().find_map(|(i, p)| {
            p.lines.iter().enumerate().find_map(|(j, l)| {
                if l.leg == leg {
                    Some((i, j, false))
                } else if l.rtcp_leg == Some(leg) {
                    Some((i, j, true))
                } else {
                    None
                }
            })
        })
    }

    /// Datagrams that arrived together on `leg` (a recvmmsg batch, up to
    /// [`MAX_BATCH`]): the same as [`Meeting::handle_datagram`] for each in order, with
    /// the media tags verified together and the outputs signed together (`forward`'s batch
    /// path). `out` must have room for the batch's outputs: its tags are written in place
    /// at the end.
    pub fn handle_datagrams(
        &mut self,
        now: Instant,
        leg: LegId,
        datagrams: &[&[u8]],
        out: &mut TxBatch,
    ) {
        let appended = self
            .find_leg(leg)
            .map(|(pi, li, _)| &self.participants[pi].lines[li])
            .filter(|l| self.secure && !l.held && l.standard.is_none())
            .map(|l| l.appended_byte);
        let Some(appended) = appended else {
            // Nothing to verify in batch here (non-secure, held or unknown).
            for d in datagrams {
                self.handle_datagram(now, leg, d, out);
            }
            return;
        };
        let mut packets: [(&[u8], bool); MAX_BATCH] = [(&[], false); MAX_BATCH];
        let n = datagrams.len().min(MAX_BATCH);
        for (p, d) in packets.iter_mut().zip(&datagrams[..n]) {
            *p = (d, appended);
        }
        self.forwarder.begin_batch(&packets[..n]);
        for (i, d) in datagrams.iter().enumerate() {
            self.handle_one(now, leg, d, out, (i < n).then_some(i));
        }
        self.forwarder.finish_batch(out);
    }

    /// A datagram that arrived on `leg`.
    pub fn handle_datagram(&mut self, now: Instant, leg: LegId, data: &[u8], out: &mut TxBatch) {
        self.handle_one(now, leg, data, out, None);
    }

    /// A datagram, datagram `in_batch` of the forwarder's batch if it is in one.
    fn handle_one(
        &mut self,
        now: Instant,
        leg: LegId,
        data: &[u8],
        out: &mut TxBatch,
        in_batch: Option<usize>,
    ) {
        let Some((pi, li, on_rtcp_leg)) = self.find_leg(leg) else {
            self.stats.unknown_leg += 1;
            return;
        };
        let line = &mut self.participants[pi].lines[li];
        line.counters.packets_in += 1;
        line.counters.bytes_in += data.len() as u64;
        let rtcp_has_own_leg = line.rtcp_leg.is_some();
        let standard = line.standard.is_some();
        let at = Arrival {
            pi,
            li,
            kind: classify(data),
            in_batch,
        };
        match at.kind {
            Demux::Rtp if on_rtcp_leg => self.stats.wrong_leg_kind += 1,
            Demux::Rtcp if rtcp_has_own_leg && !on_rtcp_leg => self.stats.wrong_leg_kind += 1,
            Demux::Rtp if standard => self.standard_media_in(now, at, data, out),
            Demux::Rtcp if standard => self.standard_rtcp_in(at, data),
            Demux::Rtp => self.handle_media(now, at, data, out),
            Demux::Rtcp => self.handle_rtcp(now, at, data, out),
            Demux::Dtls => {
                let session = if on_rtcp_leg {
                    &mut line.rtcp_dtls
                } else {
                    &mut line.dtls
                };
                match session.as_mut().map(|d| d.handle_datagram(now, data)) {
                    Some(Received::Taken) => {}
                    Some(Received::Dropped) => self.stats.dtls_dropped += 1,
                    None => self.stats.not_media += 1,
                }
            }
            _ => self.stats.not_media += 1,
        }
        self.after_input(now, out, Some((pi, li)));
    }

    fn handle_rtcp(&mut self, now: Instant, at: Arrival, data: &[u8], out: &mut TxBatch) {
        let (pi, li) = (at.pi, at.li);
        let ssrc = crate::rtp::rtcp_ssrc(data).ok();
        let line = &mut self.participants[pi].lines[li];
        let per_hop = match (ssrc, line.peer_control_ssrc) {
            (Some(s), Some(c)) => s == c,
            // Before the peer's MUXCTRL: anything that is not a known media source is
            // per-hop (its first MUXCTRL comes that way).
            (Some(s), None) => !self.ssrc_owner.contains_key(&s) && !self.forwarder.knows_key_of(s),
            (None, _) => true,
        };
        if !per_hop {
            return self.handle_media(now, at, data, out);
        }
        let plain = line.plain_control;
        let (hop, Some(tip)) = (&mut line.hop, &mut line.tip) else {
            // Plaintext or early RTCP before the handshake gave keys: dropped quietly.
            self.stats.before_keys += 1;
            return;
        };
        let buf = &mut self.scratch[..data.len()];
        buf.copy_from_slice(data);
        let opened = match (plain, hop) {
            (true, _) => Ok(data.len()),
            (false, Some(hop)) => hop.inbound.unprotect_rtcp(buf).map_err(|_| ()),
            (false, None) => {
                self.stats.before_keys += 1;
                return;
            }
        };
        match opened {
            Ok(n) => {
                let mut announced_screens = None;
                if let Some(m) = crate::rtp::rtcp_packets(&buf[..n])
                    .find_map(|p| crate::tip::muxctrl::MuxCtrl::decode(p).ok())
                {
                    line.peer_control_ssrc = Some(m.ssrc);
                    if line.media == Media::Video {
                        announced_screens = Some(m.num_rcv);
                    }
                }
                // Receiver reports end here (per hop); TIP requests drive the negotiation;
                // keyframe requests (RFC 4585 PLI, RFC 5104 FIR) go to the shown source.
                tip.handle_packet(now, &buf[..n]);
                let from = self.participants[pi].id;
                for p in crate::rtp::rtcp_packets(&buf[..n]) {
                    if let Some(target) = keyframe_request_target(p) {
                        self.keyframe_requests.push((from, target));
                    }
                }
                if let Some(streams) = announced_screens {
                    self.set_screens(pi, streams);
                }
            }
            Err(_) => self.stats.hop_auth_failed += 1,
        }
    }

    /// The screens a video line's MUXCTRL announces (the streams the endpoint receives)
    /// replace the guess made at the join from SDP.
    fn set_screens(&mut self, pi: usize, received_streams: u8) {
        let screens = if received_streams >= 3 { 3 } else { 1 };
        let p = &mut self.participants[pi];
        if p.screens != screens {
            p.screens = screens;
            self.switching.set_screens(p.id, screens);
            self.layouts_dirty = true;
        }
    }

    fn handle_media(&mut self, now: Instant, at: Arrival, data: &[u8], out: &mut TxBatch) {
        let (pi, li) = (at.pi, at.li);
        if self.participants[pi].lines[li].held {
            self.stats.other_security += 1;
            self.participants[pi].lines[li].counters.held += 1;
            return;
        }
        let from = self.participants[pi].id;
        let media = self.participants[pi].lines[li].media;
        let appended = self.participants[pi].lines[li].appended_byte;
        let ssrc = match at.kind {
            Demux::Rtcp => crate::rtp::rtcp_ssrc(data).ok(),
            _ => crate::rtp::RtpHeader::parse(data).ok().map(|h| h.ssrc),
        };
        if ssrc
            .and_then(|s| self.ssrc_owner.get(&s))
            .is_some_and(|owner| *owner != from)
        {
            self.stats.ssrc_on_wrong_leg += 1;
            return;
        }
        let verified = if self.secure {
            match at.in_batch {
                Some(i) => self.forwarder.verify_in_batch(i, data, appended),
                None => self.forwarder.verify(data, appended),
            }
        } else {
            self.forwarder.verify_unprotected(data, appended)
        };
        let v = match verified {
            Ok(v) => v,
            Err(reason) => {
                let i = DropReason::ALL.iter().position(|r| *r == reason);
                if let Some(n) =
                    i.and_then(|i| self.participants[pi].lines[li].counters.dropped.get_mut(i))
                {
                    *n += 1;
                }
                return;
            }
        };
        let len = data.len();
        self.ssrc_owner.entry(v.ssrc()).or_insert(from);
        self.receivers.clear();
        if v.kind() == PacketKind::Rtcp {
            // The EKT SDES packet: every other participant's line of the same media.
            for p in self.participants.iter().filter(|p| p.id != from) {
                for l in p
                    .lines
                    .iter()
                    .filter(|l| l.media == media && l.established && l.standard.is_none())
                {
                    l.count_sent(len);
                    self.receivers.push(Receiver {
                        id: l.rtcp_leg.unwrap_or(l.leg),
                        csrc: CsrcRewrite::Keep,
                    });
                }
            }
        } else {
            let position = v
                .first_csrc()
                .map_or(CENTER, |c| TipCsrc::from_u32(c).source.max(1));
            let source = SourceId {
                participant: from,
                position,
            };
            match media {
                Media::Audio => {
                    if let Some(level) = v.appended_byte() {
                        self.switching.audio_level(now, source, level);
                    }
                    if self.mixer.is_some() && self.participants[pi].lines[li].standard.is_none() {
                        self.mix_tip_source(data, &v, source);
                    }
                    if self.passthrough
                        && self.participants[pi].lines[li].standard.is_none()
                        && self.loudest.contains(&source)
                    {
                        self.transcrypt_to.clear();
                        self.pass_through_to(pi, li, source);
                    }
                    if self.loudest.contains(&source) {
                        for p in self.participants.iter().filter(|p| p.id != from) {
                            // Transcrypt legs hear the mix instead.
                            if let Some(l) = p.lines.iter().find(|l| {
                                l.media == Media::Audio && l.established && l.standard.is_none()
                            }) {
                                // Heard at its own position on a 3-speaker system, else center.
                                let speaker = if p.screens >= 3 { position } else { CENTER };
                                l.count_sent(len);
                                self.receivers.push(Receiver {
                                    id: l.leg,
                                    csrc: CsrcRewrite::TipScreen(speaker),
                                });
                            }
                        }
                    }
                }
                Media::Video => {
                    if let Some(slot) = self.participants[pi]
                        .video_ssrc
                        .get_mut(usize::from(position) - 1)
                    {
                        *slot = Some(v.ssrc());
                    }
                    let idr = v.appended_byte() == Some(1);
                    let participants = &self.participants;
                    let receivers = &mut self.receivers;
                    let transcrypt_to = &mut self.transcrypt_to;
                    transcrypt_to.clear();
                    self.displays.route_video(source, idr, |rx, screen| {
                        let line = participants.iter().find(|p| p.id == rx).and_then(|p| {
                            p.lines
                                .iter()
                                .find(|l| l.media == Media::Video && l.established)
                        });
                        if line.is_some_and(|l| l.standard.is_some()) {
                            transcrypt_to.push(rx);
                            return;
                        }
                        let leg = line.map(|l| {
                            l.count_sent(len);
                            l.leg
                        });
                        if let Some(id) = leg {
                            receivers.push(Receiver {
                                id,
                                csrc: CsrcRewrite::TipScreen(screen),
                            });
                        }
                    });
                }
            }
        }
        let _: Result<usize, DropReason> = self.forwarder.emit(data, &v, &self.receivers, out);
        if !self.transcrypt_to.is_empty() && v.kind() == PacketKind::Rtp {
            let mut to = std::mem::take(&mut self.transcrypt_to);
            for &rx in &to {
                self.transcrypt_out(now, rx, media, data, &v, out);
            }
            to.clear();
            self.transcrypt_to = to;
        }
    }

    /// Time passed: DTLS and TIP retransmissions and deadlines, switching hold times.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut TxBatch) {
        self.flush_at = None;
        for p in &mut self.participants {
            for l in &mut p.lines {
                for d in [l.dtls.as_mut(), l.rtcp_dtls.as_mut()]
                    .into_iter()
                    .flatten()
                {
                    if d.poll_timeout().is_some_and(|t| t <= now) {
                        d.handle_timeout(now);
                    }
                }
                if let Some(tip) = l
                    .tip
                    .as_mut()
                    .filter(|t| t.poll_timeout().is_some_and(|t| t <= now))
                {
                    tip.handle_timeout(now);
                }
            }
        }
        self.detect_standard(now);
        self.after_input(now, out, None);
    }

    /// When [`Meeting::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let lines = self.participants.iter().flat_map(|p| p.lines.iter());
        lines
            .filter_map(|l| l.deadline)
            .chain(self.flush_at)
            .chain(self.next_standard_tick)
            .min()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<MeetingEvent> {
        self.events.pop_front()
    }

    /// Drains the negotiations, applies switching, sends what is pending.
    /// `touched`: the line a datagram arrived on, the only one that can have new DTLS or TIP
    /// output; `None` after timers, which may touch any line.
    fn after_input(&mut self, now: Instant, out: &mut TxBatch, touched: Option<(usize, usize)>) {
        let mut failed = Vec::new();
        let mut work = Drained {
            events: &mut self.events,
            keyframe_requests: &mut self.keyframe_requests,
            failed: &mut failed,
            scratch: &mut self.scratch,
            out,
            newly_established: false,
            dtls_connected: 0,
        };
        match touched {
            Some((pi, li)) => {
                let p = &mut self.participants[pi];
                drain_line(now, p.id, &mut p.lines[li], &mut work);
            }
            None => {
                for p in &mut self.participants {
                    for l in &mut p.lines {
                        drain_line(now, p.id, l, &mut work);
                    }
                }
            }
        }
        let newly_established = work.newly_established;
        self.stats.dtls_connected += work.dtls_connected;
        self.stats.dtls_failed += failed
            .iter()
            .filter(|(_, f)| matches!(f, LineFailure::Dtls { .. }))
            .count() as u64;
        self.route_keyframe_requests(now, out);
        self.standard_tick(now, out);
        if std::mem::take(&mut self.pending_ready) {
            self.mark_ready_receivers(now, None, out);
        }
        if newly_established {
            self.mark_ready_receivers(now, touched.map(|(pi, _)| pi), out);
        }
        for (id, reason) in failed {
            // A participant fails once, however many of its lines failed with it (one
            // event, one log line, one BYE).
            if !self.participants.iter().any(|p| p.id == id) {
                continue;
            }
            self.events.push_back(MeetingEvent::ParticipantFailed {
                participant: id,
                reason,
            });
            self.remove_participant(id);
        }
        if self.next_tick.is_none_or(|t| now >= t) || self.layouts_dirty {
            self.next_tick = Some(now + SWITCH_TICK);
            let changed = self.switching.update(now);
            self.loudest = self.switching.loudest_audio(now);
            let speaker = self.switching.speaker();
            if speaker != self.speaker {
                self.speaker = speaker;
                self.events.push_back(MeetingEvent::SpeakerChanged(speaker));
            }
            if changed || self.layouts_dirty {
                self.layouts_dirty = false;
                self.apply_layouts(now, out);
            }
        }
    }

    /// A receiver's keyframe request goes to the source it is currently shown, as a TIP
    /// REFRESH; requests for anything it is not shown are dropped.
    fn route_keyframe_requests(&mut self, now: Instant, out: &mut TxBatch) {
        self.stats.keyframe_requests += self.keyframe_requests.len() as u64;
        for (receiver, target) in std::mem::take(&mut self.keyframe_requests) {
            let Some(&owner) = self.ssrc_owner.get(&target) else {
                continue;
            };
            let Some(source) = self.participants.iter().find(|p| p.id == owner) else {
                continue;
            };
            let Some(pos) = source.video_ssrc.iter().position(|s| *s == Some(target)) else {
                continue;
            };
            let shown = SourceId {
                participant: owner,
                position: pos as u8 + 1,
            };
            let screens = super::positions(3);
            if !screens
                .iter()
                .any(|&scr| self.displays.shown(receiver, scr) == Some(shown))
            {
                continue;
            }
            let p = self
                .participants
                .iter_mut()
                .find(|p| p.id == owner)
                .expect("found above");
            if let Some(l) = p.lines.iter_mut().find(|l| l.media == Media::Video) {
                if let Some(tip) = &mut l.tip {
                    tip.send_refresh(now, target, RefreshKind::RequireIdr);
                }
                standard::send_pli(l, out);
                flush_tip(l, &mut self.scratch, out);
            }
        }
    }

    /// Receivers whose video line became established since the last look (`only`: the
    /// one participant a datagram touched) may switch screens now; the sources their
    /// screens wait for are asked for a refresh again.
    fn mark_ready_receivers(&mut self, now: Instant, only: Option<usize>, out: &mut TxBatch) {
        let range = match only {
            Some(pi) => pi..pi + 1,
            None => 0..self.participants.len(),
        };
        let mut refresh = std::mem::take(&mut self.refresh);
        refresh.clear();
        for p in &self.participants[range] {
            let video_ready = p
                .lines
                .iter()
                .any(|l| l.media == Media::Video && l.established);
            if video_ready && !self.displays.is_ready(p.id) {
                self.displays.set_ready(p.id, true, &mut refresh);
            }
        }
        if !refresh.is_empty() {
            self.send_refreshes(now, &refresh, out);
        }
        self.refresh = refresh;
    }

    /// Asks each source for a refresh (TIP REFRESH to its video line) and sends them.
    fn send_refreshes(&mut self, now: Instant, sources: &[SourceId], out: &mut TxBatch) {
        for &source in sources {
            let Some(p) = self
                .participants
                .iter_mut()
                .find(|p| p.id == source.participant)
            else {
                continue;
            };
            let target = p
                .video_ssrc
                .get(usize::from(source.position) - 1)
                .copied()
                .flatten();
            let line = p.lines.iter_mut().find(|l| l.media == Media::Video);
            if let (Some(target), Some(l)) = (target, line) {
                if let Some(tip) = &mut l.tip {
                    tip.send_refresh(now, target, RefreshKind::RequireIdr);
                }
                standard::send_pli(l, out);
            }
        }
        for p in &mut self.participants {
            for l in p.lines.iter_mut().filter(|l| l.media == Media::Video) {
                flush_tip(l, &mut self.scratch, out);
            }
        }
    }

    fn apply_layouts(&mut self, now: Instant, out: &mut TxBatch) {
        let mut refresh = std::mem::take(&mut self.refresh);
        refresh.clear();
        for p in &self.participants {
            let layout = self.switching.layout(p.id);
            self.displays.set_layout(p.id, &layout, &mut refresh);
        }
        self.send_refreshes(now, &refresh, out);
        self.refresh = refresh;
    }
}

/// The media SSRC a PLI (RFC 4585 §6.3.1: PT 206, FMT 1) or FIR (RFC 5104 §4.3.1: PT 206,
/// FMT 4, first FCI entry) asks a keyframe of.
fn keyframe_request_target(p: &[u8]) -> Option<u32> {
    let be32 = |i: usize| {
        p.get(i..i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    if p.len() < 12 || p[1] != 206 {
        return None;
    }
    match p[0] & 0x1f {
        1 => be32(8),
        4 => be32(12),
        _ => None,
    }
}

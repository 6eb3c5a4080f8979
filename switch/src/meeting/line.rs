//! A participant's media line: its control plane (per-hop keys, DTLS-SRTP associations,
//! the TIP negotiation and their timers). The meeting ([`super::core`]) routes media
//! between lines; this file drives what each line says to its own endpoint.

use std::cell::Cell;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::command::{LineFailure, MeetingEvent};
use super::report::{LineCounters, LineKeying, LineReport};
use super::{LegId, ParticipantId};
use crate::dtls::{DtlsEvent, DtlsSession};
use crate::forward::TxBatch;
use crate::srtp::SrtpContext;
use crate::tip::negotiation::{Event as TipEvent, LineConfig, Media, Negotiation};

/// The per-hop SRTP contexts of a line: what the endpoint sends us, what we send it.
pub struct HopKeys {
    /// Unprotects the endpoint's per-hop SRTCP.
    pub inbound: SrtpContext,
    /// Protects our per-hop SRTCP (TIP control) to the endpoint.
    pub outbound: SrtpContext,
}

/// Where a line's per-hop keys come from.
pub enum HopKeying {
    /// `a=crypto` (SDES) from the SDP: known at once.
    Sdes(Box<HopKeys>),
    /// A DTLS-SRTP handshake on the line's port; TIP starts when it completes.
    Dtls(Box<DtlsSession>),
    /// None: a non-secure meeting's TIP runs over plain RTCP (Device Security Non-Secure).
    Plain,
}

/// A media line being added.
pub struct LineSetup {
    /// Its leg.
    pub leg: LegId,
    /// Per-hop keys, or the handshake that will make them.
    pub keying: HopKeying,
    /// The TIP negotiation parameters.
    pub config: LineConfig,
    /// A separate RTCP leg (the offer had no `a=rtcp-mux`); `None` multiplexes RTCP on `leg`.
    pub rtcp: Option<RtcpLeg>,
    /// What the line needs if its endpoint turns out to be a standard one.
    pub standard: StandardSetup,
}

/// How a line tells a standard endpoint (no TIP) and what a transcrypt leg for it needs
/// from the SDP (issue 19).
#[derive(Debug, Clone, Default)]
pub struct StandardSetup {
    /// No TIP packet this long after TIP started: the endpoint is standard. `None`: never
    /// (a TIP-only switch; the TIP deadlines end such a call).
    pub detect_after: Option<Duration>,
    /// The line's formats in the endpoint's order: payload type and `a=rtpmap` value.
    pub formats: Vec<(u8, Option<String>)>,
    /// The RFC 6464 audio level extension id, when the endpoint negotiated it.
    pub audio_level_ext: Option<u8>,
}

/// A line's separate RTCP port.
pub struct RtcpLeg {
    /// Its leg.
    pub leg: LegId,
    /// With DTLS keying, the RTCP port's own association (RFC 5764 §4.1), whose keys
    /// protect the per-hop SRTCP; `None` with SDES keying.
    pub dtls: Option<Box<DtlsSession>>,
}

pub(super) struct Line {
    pub(super) leg: LegId,
    /// The separate RTCP leg, if any: where per-hop and end-to-end RTCP travel.
    pub(super) rtcp_leg: Option<LegId>,
    /// The RTCP leg's DTLS association (keys the per-hop SRTCP when present).
    pub(super) rtcp_dtls: Option<Box<DtlsSession>>,
    pub(super) media: Media,
    /// Until the per-hop keys exist (DTLS), TIP waits with its configuration.
    pub(super) hop: Option<HopKeys>,
    pub(super) dtls: Option<Box<DtlsSession>>,
    pub(super) waiting_config: Option<LineConfig>,
    pub(super) tip: Option<Negotiation>,
    /// The peer's control SSRC (from its MUXCTRL): its SRTCP is per-hop.
    pub(super) peer_control_ssrc: Option<u32>,
    pub(super) appended_byte: bool,
    /// TIP control travels in plain RTCP (no per-hop keys).
    pub(super) plain_control: bool,
    /// TIP finished (SPIMAP acknowledged in a secure meeting): media goes to this line only
    /// from then on, since before it the endpoint has no group salt to decrypt with.
    pub(super) established: bool,
    /// When its DTLS or TIP next needs time, as of its last activity: the worker asks for
    /// the meeting's next timer on every wake-up, and asking the DTLS sessions themselves
    /// each time was 17 % of a loaded worker (issue 6's profile).
    pub(super) deadline: Option<Instant>,
    /// Keyed for the other kind of meeting (SRTP in a non-secure one: after a downgrade,
    /// or a secure endpoint joining a non-secure meeting): it neither takes nor gets media
    /// until its participant is added again with plain lines (R33: never mixed).
    pub(super) held: bool,
    /// What arrived and what the forwarder dropped (the operator's report).
    pub(super) counters: LineCounters,
    /// What the meeting forwarded to the line: counted where the line is picked as a
    /// receiver, through a shared borrow of the participants.
    pub(super) sent: Cell<(u64, u64)>,
    /// When its TIP negotiation started (detection of a standard endpoint counts from it).
    pub(super) tip_since: Option<Instant>,
    /// What a transcrypt leg would need, until the line is one or is TIP for sure.
    pub(super) standard_setup: Box<StandardSetup>,
    /// The RTP leg's own per-hop keys when RTCP has its own leg and DTLS association
    /// (RFC 5764 §4.1): a transcrypt leg's media is keyed by them.
    /// (Boxed: the lines are walked per packet, and most never have one.)
    pub(super) rtp_hop: Option<Box<HopKeys>>,
    /// The transcrypt leg, once the endpoint is known to be standard.
    pub(super) standard: Option<Box<super::core::StandardLine>>,
}

impl Line {
    /// A line being added at `now` to a meeting that is `secure` or not: SDES-keyed and
    /// plain lines start TIP at once, DTLS-keyed ones when the handshake gives keys.
    pub(super) fn new(now: Instant, l: LineSetup, secure: bool) -> Self {
        let media = l.config.media;
        let plain_control = matches!(l.keying, HopKeying::Plain);
        let tip_since = (!matches!(l.keying, HopKeying::Dtls(_))).then_some(now);
        let (hop, dtls, tip, waiting_config) = match l.keying {
            HopKeying::Sdes(keys) => (
                Some(*keys),
                None,
                Some(Negotiation::new(l.config, now)),
                None,
            ),
            HopKeying::Dtls(session) => (None, Some(session), None, Some(l.config)),
            HopKeying::Plain => (None, None, Some(Negotiation::new(l.config, now)), None),
        };
        let (rtcp_leg, rtcp_dtls) = match l.rtcp {
            Some(r) => (Some(r.leg), r.dtls),
            None => (None, None),
        };
        let mut line = Self {
            leg: l.leg,
            rtcp_leg,
            rtcp_dtls,
            media,
            hop,
            dtls,
            waiting_config,
            tip,
            peer_control_ssrc: None,
            appended_byte: false,
            plain_control,
            established: false,
            held: plain_control == secure,
            deadline: None,
            counters: LineCounters::default(),
            sent: Cell::new((0, 0)),
            tip_since,
            standard_setup: Box::new(l.standard),
            rtp_hop: None,
            standard: None,
        };
        line.deadline = line_deadline(&line);
        line
    }
}

impl Line {
    /// Counts a datagram of `len` bytes forwarded to this line.
    pub(super) fn count_sent(&self, len: usize) {
        let (packets, bytes) = self.sent.get();
        self.sent.set((packets + 1, bytes + len as u64));
    }

    /// The line as its operator sees it.
    pub(super) fn report(&self) -> LineReport {
        let (packets_out, bytes_out) = self.sent.get();
        LineReport {
            media: self.media,
            keying: if self.plain_control {
                LineKeying::Plain
            } else if self.dtls.is_some() {
                LineKeying::Dtls
            } else {
                LineKeying::Sdes
            },
            suite: self.hop.as_ref().map(|h| h.inbound.suite()),
            tip: self.tip.as_ref().map(Negotiation::state),
            established: self.established,
            held: self.held,
            transcrypted: self.standard.is_some(),
            counters: LineCounters {
                packets_out,
                bytes_out,
                ..self.counters
            },
        }
    }
}

/// Where draining a line's DTLS and TIP puts its results.
pub(super) struct Drained<'a> {
    pub(super) events: &'a mut VecDeque<MeetingEvent>,
    pub(super) keyframe_requests: &'a mut Vec<(ParticipantId, u32)>,
    pub(super) failed: &'a mut Vec<(ParticipantId, LineFailure)>,
    pub(super) scratch: &'a mut [u8],
    pub(super) out: &'a mut TxBatch,
    /// A line's TIP finished: receivers may have become ready for video.
    pub(super) newly_established: bool,
    /// DTLS-SRTP handshakes that gave a line its per-hop keys.
    pub(super) dtls_connected: u64,
}

/// Runs a line's DTLS, takes its TIP events and sends its pending TIP packets.
pub(super) fn drain_line(now: Instant, id: ParticipantId, l: &mut Line, w: &mut Drained<'_>) {
    let had_keys = l.hop.is_some();
    drive_dtls(now, l, id, w.out, w.failed);
    if !had_keys && l.hop.is_some() && l.dtls.is_some() {
        w.dtls_connected += 1;
    }
    if let Some(tip) = &mut l.tip {
        while let Some(e) = tip.poll_event() {
            match e {
                TipEvent::PeerMediaOptions { appended_byte, .. } => l.appended_byte = appended_byte,
                TipEvent::Established => {
                    l.established = !l.held;
                    w.newly_established = true;
                    w.events.push_back(MeetingEvent::LineEstablished {
                        participant: id,
                        media: l.media,
                    });
                }
                TipEvent::Failed(failure) => w.failed.push((
                    id,
                    LineFailure::Tip {
                        failure,
                        called_num: tip.config().called_num.clone(),
                    },
                )),
                TipEvent::RefreshRequested { target, .. } => w.keyframe_requests.push((id, target)),
                _ => {}
            }
        }
    }
    flush_tip(l, w.scratch, w.out);
}

/// Runs a line's DTLS associations: their datagrams go out unprotected; when the one that
/// keys the per-hop SRTCP connects (the RTCP leg's if there is one), the per-hop keys are
/// made and TIP starts; when either fails, the participant fails.
fn drive_dtls(
    now: Instant,
    l: &mut Line,
    id: ParticipantId,
    out: &mut TxBatch,
    failed: &mut Vec<(ParticipantId, LineFailure)>,
) {
    let rtcp_leg = l.rtcp_leg;
    for (session, leg, keys_rtcp) in [
        (&mut l.dtls, l.leg, rtcp_leg.is_none()),
        (&mut l.rtcp_dtls, rtcp_leg.unwrap_or(l.leg), true),
    ] {
        let Some(d) = session else { continue };
        while let Some(datagram) = d.poll_transmit() {
            if out.has_room(1) && datagram.len() <= crate::forward::SLOT_SIZE {
                out.next_slot()[..datagram.len()].copy_from_slice(&datagram);
                let slot = out.commit_slot(datagram.len());
                out.push(leg, slot);
            }
        }
        while let Some(e) = d.poll_event() {
            match e {
                // The RTP leg's association of a non-muxed line: its keys protect per-hop
                // RTP, which only a transcrypt leg uses (TIP media keys are end to end).
                DtlsEvent::Connected(keys) if !keys_rtcp => {
                    l.rtp_hop = Some(Box::new(HopKeys {
                        inbound: SrtpContext::new(keys.suite, &keys.inbound),
                        outbound: SrtpContext::new(keys.suite, &keys.outbound),
                    }));
                }
                DtlsEvent::Connected(keys) => {
                    l.hop = Some(HopKeys {
                        inbound: SrtpContext::new(keys.suite, &keys.inbound),
                        outbound: SrtpContext::new(keys.suite, &keys.outbound),
                    });
                    if let Some(config) = l.waiting_config.take() {
                        l.tip = Some(Negotiation::new(config, now));
                        l.tip_since = Some(now);
                    }
                }
                DtlsEvent::Failed(failure) => {
                    let called_num = l
                        .waiting_config
                        .as_ref()
                        .or(l.tip.as_ref().map(|t| t.config()))
                        .map_or_else(String::new, |c| c.called_num.clone());
                    failed.push((
                        id,
                        LineFailure::Dtls {
                            failure,
                            called_num,
                        },
                    ));
                }
            }
        }
    }
}

/// Protects a line's pending TIP packets with its per-hop key and queues them to its leg.
pub(super) fn flush_tip(l: &mut Line, scratch: &mut [u8], out: &mut TxBatch) {
    send_tip(l, scratch, out);
    // Every change to a line's DTLS or TIP ends here (drain_line, refresh requests).
    l.deadline = line_deadline(l);
}

/// When a line's DTLS or TIP next needs time.
pub(super) fn line_deadline(l: &Line) -> Option<Instant> {
    [
        l.dtls.as_ref().and_then(|d| d.poll_timeout()),
        l.rtcp_dtls.as_ref().and_then(|d| d.poll_timeout()),
        l.tip.as_ref().and_then(|t| t.poll_timeout()),
        standard_detection_due(l),
    ]
    .into_iter()
    .flatten()
    .min()
}

/// When a line that has not heard TIP is to be taken as a standard endpoint.
pub(super) fn standard_detection_due(l: &Line) -> Option<Instant> {
    let after = l.standard_setup.detect_after?;
    let tip = l.tip.as_ref()?;
    if l.standard.is_some() || tip.heard_peer() {
        return None;
    }
    Some(l.tip_since? + after)
}

fn send_tip(l: &mut Line, scratch: &mut [u8], out: &mut TxBatch) {
    let to = l.rtcp_leg.unwrap_or(l.leg);
    if l.plain_control {
        // Non-secure: TIP goes as it is.
        let Some(tip) = &mut l.tip else { return };
        while let Some(plain) = tip.poll_transmit() {
            if out.has_room(1) && plain.len() <= crate::forward::SLOT_SIZE {
                out.next_slot()[..plain.len()].copy_from_slice(&plain);
                let slot = out.commit_slot(plain.len());
                out.push(to, slot);
            }
        }
        return;
    }
    let (Some(tip), Some(hop)) = (&mut l.tip, &mut l.hop) else {
        return;
    };
    while let Some(plain) = tip.poll_transmit() {
        scratch[..plain.len()].copy_from_slice(&plain);
        if let Ok(n) = hop.outbound.protect_rtcp(scratch, plain.len())
            && out.has_room(1)
        {
            out.next_slot()[..n].copy_from_slice(&scratch[..n]);
            let slot = out.commit_slot(n);
            out.push(l.rtcp_leg.unwrap_or(l.leg), slot);
        }
    }
}

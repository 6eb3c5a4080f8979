//! TIP negotiation on one media line, switch side (WIRE.md sections 5 and 7; seed 002
//! l.2506-2507). Sans-IO: feed it decrypted per-hop RTCP with [`Negotiation::handle_packet`]
//! and time with [`Negotiation::handle_timeout`]; drain [`Negotiation::poll_transmit`],
//! [`Negotiation::poll_event`] and [`Negotiation::poll_timeout`] after every call.
//!
//! 1. Exchange MUXCTRL: ours (IS_FOCUS) retransmitted every 250 ms until ACKed; theirs
//!    acknowledged. Not done by the deadline (15 s): `Media Timeout occurred for call :
//!    called num = N`, and the participant fails.
//! 2. Then MEDIAOPTS (EKT in secure meetings, ACTIVITY_METRIC for audio, REFRESH_FLAG for
//!    video), and in a secure meeting SPIMAP with the group parameters (deadline 15 s:
//!    `SPIMAP timeout, Dropping the call`) and NOTIFY with the security icon.
//! 3. Every request received is acknowledged; a duplicate (same subtype and NTP timestamp)
//!    is acknowledged again but acted on once.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::mediaopts::{self, MediaOpts, StreamOptions};
use super::muxctrl::{self, MuxCtrl};
use super::simple::{self, Notify, Refresh, RefreshKind};
use super::spimap::{self, Spimap};
use super::{AppHeader, TipPacket};
use crate::rtp::rtcp_packets;

#[cfg(test)]
#[path = "negotiation_tests.rs"]
mod tests;

/// Audio or video line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Media {
    /// Audio: the appended byte is the activity metric.
    Audio,
    /// Video: the appended byte is the refresh flag.
    Video,
}

/// The meeting's EKT group parameters for this line (WIRE.md section 7).
#[derive(Clone, PartialEq, Eq)]
pub struct GroupParams {
    /// Odd SPI.
    pub spi: u16,
    /// SRTP master salt.
    pub salt: [u8; 14],
    /// Key-encrypting key.
    pub kek: [u8; 16],
}

impl std::fmt::Debug for GroupParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupParams")
            .field("spi", &self.spi)
            .finish_non_exhaustive()
    }
}

/// What a line negotiates.
#[derive(Debug, Clone)]
pub struct LineConfig {
    /// Audio or video.
    pub media: Media,
    /// The switch's control SSRC on this line.
    pub control_ssrc: u32,
    /// Positions the switch sends and receives (bitmask, 1 << position).
    pub positions: u16,
    /// Conference ID carried in MUXCTRL.
    pub conf_id: u64,
    /// Group parameters in a secure meeting; `None` for a non-secure one.
    pub group: Option<GroupParams>,
    /// The called number, for the seed's log line.
    pub called_num: String,
    /// NTP time (seconds << 32 | fraction) at `start`, from the driver's wall clock.
    pub ntp_at_start: u64,
    /// Request retransmission interval (WIRE.md section 7: 250 ms).
    pub retransmit_interval: Duration,
    /// MUXCTRL deadline (15 s).
    pub muxctrl_deadline: Duration,
    /// SPIMAP deadline (15 s).
    pub spimap_deadline: Duration,
}

impl LineConfig {
    /// A line with the WIRE.md section 7 timings.
    pub fn new(media: Media, control_ssrc: u32, called_num: impl Into<String>) -> Self {
        Self {
            media,
            control_ssrc,
            positions: 1 << 1,
            conf_id: 0,
            group: None,
            called_num: called_num.into(),
            ntp_at_start: 0,
            retransmit_interval: Duration::from_millis(250),
            muxctrl_deadline: Duration::from_secs(15),
            spimap_deadline: Duration::from_secs(15),
        }
    }
}

/// Why a line failed; each maps to the seed's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// MUXCTRL not completed by its deadline (seed 002 l.2506).
    MediaTimeout,
    /// SPIMAP not acknowledged by its deadline (seed 002 l.2507).
    SpimapTimeout,
}

impl Failure {
    /// The exact log line.
    pub fn log_line(self, called_num: &str) -> String {
        match self {
            Self::MediaTimeout => {
                format!("Media Timeout occurred for call : called num = {called_num}")
            }
            Self::SpimapTimeout => "SPIMAP timeout, Dropping the call".to_string(),
        }
    }
}

/// What the negotiation reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The peer's MUXCTRL (acted on once).
    PeerMuxCtrl(MuxCtrl),
    /// Both MUXCTRLs are through: the peer speaks TIP.
    MuxCtrlComplete,
    /// The peer's media options: whether its streams carry the appended byte (its xmit
    /// and our rcv options both have the flag, WIRE.md section 7), and whether it does EKT.
    PeerMediaOptions {
        /// The peer appends the activity/refresh byte.
        appended_byte: bool,
        /// The peer transmits with EKT.
        ekt: bool,
    },
    /// The peer acknowledged the SPIMAP: it has the group parameters.
    SpimapAcked,
    /// Negotiation is complete (secure: SPIMAP acknowledged too).
    Established,
    /// The peer asks for a refresh point on `target`.
    RefreshRequested {
        /// Video SSRC.
        target: u32,
        /// Kind.
        kind: RefreshKind,
    },
    /// The line failed; the call must be ended.
    Failed(Failure),
}

/// Where the negotiation is, named for what it awaits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for the peer's MUXCTRL and the ACK of ours.
    ExpectMuxCtrl,
    /// Secure: waiting for the SPIMAP ACK.
    ExpectSpimapAck,
    /// Done.
    Established,
    /// Failed; nothing more happens.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Retransmit = 0,
    MuxCtrlDeadline = 1,
    SpimapDeadline = 2,
}

#[derive(Debug)]
struct Pending {
    subtype: u8,
    ntp: u64,
    bytes: Vec<u8>,
    next_send: Instant,
}

/// TIP negotiation on one media line.
#[derive(Debug)]
pub struct Negotiation {
    config: LineConfig,
    start: Instant,
    state: State,
    last_ntp: u64,
    our_muxctrl_acked: bool,
    peer_muxctrl_seen: bool,
    /// Any TIP packet arrived from the peer: it speaks TIP (issue 19: an endpoint that
    /// never does is a standard endpoint).
    heard_peer: bool,
    pending: Vec<Pending>,
    /// Last (NTP) acted on per request subtype, for duplicate detection.
    seen: [Option<u64>; 32],
    timers: [Option<Instant>; 3],
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
}

impl Negotiation {
    /// Starts negotiating at `now`: our MUXCTRL is queued.
    pub fn new(config: LineConfig, now: Instant) -> Self {
        let mut me = Self {
            config,
            start: now,
            state: State::ExpectMuxCtrl,
            last_ntp: 0,
            our_muxctrl_acked: false,
            peer_muxctrl_seen: false,
            heard_peer: false,
            pending: Vec::new(),
            seen: [None; 32],
            timers: [None; 3],
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        me.timers[Timer::MuxCtrlDeadline as usize] = Some(now + me.config.muxctrl_deadline);
        let ntp = me.next_ntp(now);
        let profile = if me.config.group.is_some() {
            muxctrl::PROFILE_SECURE
        } else {
            0
        };
        let m = MuxCtrl {
            ssrc: me.config.control_ssrc,
            version: muxctrl::VERSION,
            profile: profile | muxctrl::PROFILE_FEEDBACK,
            options: muxctrl::OPTION_IS_FOCUS,
            num_xmit: me.config.positions.count_ones() as u8,
            num_rcv: me.config.positions.count_ones() as u8,
            ntp,
            conf_id: me.config.conf_id,
            xmit_positions: me.config.positions,
            rcv_positions: me.config.positions,
            shared_positions: 0,
        };
        let mut buf = vec![0u8; m.encoded_len()];
        m.encode(&mut buf).expect("sized buffer");
        me.request(now, muxctrl::SUBTYPE, ntp, buf);
        me
    }

    /// True once any TIP packet came from the peer.
    pub fn heard_peer(&self) -> bool {
        self.heard_peer
    }

    /// Where the negotiation is.
    pub fn state(&self) -> State {
        self.state
    }

    /// The configuration.
    pub fn config(&self) -> &LineConfig {
        &self.config
    }

    /// A unique, increasing NTP timestamp for `now` (requests are matched to ACKs by it).
    fn next_ntp(&mut self, now: Instant) -> u64 {
        let d = now.saturating_duration_since(self.start);
        let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
        let ntp = self
            .config
            .ntp_at_start
            .wrapping_add((d.as_secs() << 32) | frac);
        self.last_ntp = ntp.max(self.last_ntp + 1);
        self.last_ntp
    }

    fn request(&mut self, now: Instant, subtype: u8, ntp: u64, bytes: Vec<u8>) {
        self.transmits.push_back(bytes.clone());
        self.pending.push(Pending {
            subtype,
            ntp,
            bytes,
            next_send: now + self.config.retransmit_interval,
        });
        self.arm_retransmit();
    }

    fn arm_retransmit(&mut self) {
        self.timers[Timer::Retransmit as usize] = self.pending.iter().map(|p| p.next_send).min();
    }

    fn ack(&mut self, subtype: u8, ntp: u64) {
        let mut buf = vec![0u8; super::APP_HEADER_LEN];
        simple::encode_ack(subtype, self.config.control_ssrc, ntp, &mut buf).expect("sized buffer");
        self.transmits.push_back(buf);
    }

    fn fail(&mut self, failure: Failure) {
        self.state = State::Failed;
        self.pending.clear();
        self.timers = [None; 3];
        self.events.push_back(Event::Failed(failure));
    }

    /// A decrypted per-hop RTCP compound from the peer. Non-TIP and malformed packets in it
    /// are ignored (the driver counts them).
    pub fn handle_packet(&mut self, now: Instant, compound: &[u8]) {
        if self.state == State::Failed {
            return;
        }
        for raw in rtcp_packets(compound) {
            if let Ok(p) = TipPacket::decode(raw) {
                self.heard_peer = true;
                self.handle_tip(now, p);
            }
        }
    }

    fn handle_tip(&mut self, now: Instant, p: TipPacket) {
        if let TipPacket::Ack { subtype, ntp, .. } = p {
            return self.handle_ack(now, subtype, ntp);
        }
        let Some((subtype, _, ntp)) = p.request_id() else {
            return;
        };
        self.ack(subtype, ntp);
        let slot = &mut self.seen[usize::from(subtype & 0x1f)];
        if *slot == Some(ntp) {
            return; // a retransmission: acknowledged again, acted on once
        }
        *slot = Some(ntp);
        match p {
            TipPacket::MuxCtrl(m) => {
                self.peer_muxctrl_seen = true;
                self.events.push_back(Event::PeerMuxCtrl(m));
                self.maybe_muxctrl_complete(now);
            }
            TipPacket::MediaOpts(m) => {
                let flag = match self.config.media {
                    Media::Audio => mediaopts::ACTIVITY_METRIC,
                    Media::Video => mediaopts::REFRESH_FLAG,
                };
                self.events.push_back(Event::PeerMediaOptions {
                    // Our rcv options always carry the flag (see `send_after_muxctrl`).
                    appended_byte: m.xmit_any() & flag != 0,
                    ekt: m.xmit_any() & mediaopts::EKT != 0 || m.rcv_any() & mediaopts::EKT != 0,
                });
            }
            TipPacket::Refresh(r) => self.events.push_back(Event::RefreshRequested {
                target: r.target,
                kind: r.kind,
            }),
            _ => {}
        }
    }

    fn handle_ack(&mut self, now: Instant, subtype: u8, ntp: u64) {
        let Some(i) = self
            .pending
            .iter()
            .position(|p| p.subtype == subtype && p.ntp == ntp)
        else {
            return;
        };
        self.pending.swap_remove(i);
        self.arm_retransmit();
        match subtype {
            muxctrl::SUBTYPE => {
                self.our_muxctrl_acked = true;
                self.maybe_muxctrl_complete(now);
            }
            spimap::SUBTYPE => {
                self.timers[Timer::SpimapDeadline as usize] = None;
                self.events.push_back(Event::SpimapAcked);
                if self.state == State::ExpectSpimapAck {
                    self.state = State::Established;
                    self.events.push_back(Event::Established);
                }
            }
            _ => {}
        }
    }

    fn maybe_muxctrl_complete(&mut self, now: Instant) {
        if self.state != State::ExpectMuxCtrl || !self.our_muxctrl_acked || !self.peer_muxctrl_seen
        {
            return;
        }
        self.timers[Timer::MuxCtrlDeadline as usize] = None;
        self.events.push_back(Event::MuxCtrlComplete);
        self.send_after_muxctrl(now);
    }

    fn send_after_muxctrl(&mut self, now: Instant) {
        let secure = self.config.group.is_some();
        let ssrc = self.config.control_ssrc;
        let flag = match self.config.media {
            Media::Audio => mediaopts::ACTIVITY_METRIC,
            Media::Video => mediaopts::REFRESH_FLAG,
        };
        let ekt = if secure { mediaopts::EKT } else { 0 };
        // What we send to the endpoint has the byte stripped; what we receive may carry it.
        let ntp = self.next_ntp(now);
        let header = AppHeader {
            subtype: mediaopts::SUBTYPE,
            ssrc,
            ntp,
        };
        let opts = MediaOpts::new(
            header,
            &[StreamOptions {
                ssrc,
                xmit: ekt,
                rcv: ekt | flag,
            }],
        )
        .expect("one block");
        let mut buf = vec![0u8; opts.encoded_len()];
        opts.encode(&mut buf).expect("sized buffer");
        self.request(now, mediaopts::SUBTYPE, ntp, buf);

        let Some(group) = self.config.group.clone() else {
            self.state = State::Established;
            self.events.push_back(Event::Established);
            return;
        };
        let ntp = self.next_ntp(now);
        let s = Spimap {
            header: AppHeader {
                subtype: spimap::SUBTYPE,
                ssrc,
                ntp,
            },
            spi: group.spi,
            srtp_profile: 1,
            ekt_profile: 1,
            salt: group.salt,
            kek: group.kek,
        };
        let mut buf = vec![0u8; spimap::LEN];
        s.encode(&mut buf).expect("sized buffer");
        self.request(now, spimap::SUBTYPE, ntp, buf);
        self.timers[Timer::SpimapDeadline as usize] = Some(now + self.config.spimap_deadline);
        self.state = State::ExpectSpimapAck;
        self.send_notify(now, true);
    }

    /// Sends NOTIFY with the security icon (on, or off after a downgrade).
    pub fn send_notify(&mut self, now: Instant, secure: bool) {
        if self.state == State::Failed {
            return;
        }
        let ntp = self.next_ntp(now);
        let n = Notify {
            header: AppHeader {
                subtype: simple::NOTIFY,
                ssrc: self.config.control_ssrc,
                ntp,
            },
            security_icon: Some(secure),
        };
        let mut buf = vec![0u8; super::APP_HEADER_LEN + 4];
        n.encode(&mut buf).expect("sized buffer");
        self.request(now, simple::NOTIFY, ntp, buf);
    }

    /// Asks the endpoint for a refresh point on its video SSRC `target`.
    pub fn send_refresh(&mut self, now: Instant, target: u32, kind: RefreshKind) {
        if self.state == State::Failed {
            return;
        }
        let ntp = self.next_ntp(now);
        let r = Refresh {
            header: AppHeader {
                subtype: simple::REFRESH,
                ssrc: self.config.control_ssrc,
                ntp,
            },
            target,
            kind,
        };
        let mut buf = vec![0u8; super::APP_HEADER_LEN + 8];
        r.encode(&mut buf).expect("sized buffer");
        self.request(now, simple::REFRESH, ntp, buf);
    }

    /// Time passed: retransmit what is due, enforce the deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timers[Timer::MuxCtrlDeadline as usize].is_some_and(|t| now >= t) {
            return self.fail(Failure::MediaTimeout);
        }
        if self.timers[Timer::SpimapDeadline as usize].is_some_and(|t| now >= t) {
            return self.fail(Failure::SpimapTimeout);
        }
        let interval = self.config.retransmit_interval;
        for p in self.pending.iter_mut().filter(|p| p.next_send <= now) {
            self.transmits.push_back(p.bytes.clone());
            p.next_send = now + interval;
        }
        self.arm_retransmit();
    }

    /// The next plaintext RTCP packet to protect and send on the line.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Negotiation::handle_timeout`] must be called next; `None` when nothing waits.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().flatten().min().copied()
    }
}

//! The simulation: a meeting and its endpoints, stepped in virtual time.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ekt::Spi;

use crate::dtls::DtlsIdentity;
use crate::forward::{TipCsrc, TxBatch};
use crate::meeting::switching::{Mode, SwitchingConfig};
use crate::meeting::{LegId, Meeting, MeetingEvent};
use crate::tip::negotiation::Media;

use super::endpoint::*;

/// A meeting and its endpoints in virtual time.
#[allow(missing_docs)]
pub struct Sim {
    pub now: Instant,
    pub meeting: Meeting,
    pub endpoints: Vec<Endpoint>,
    pub out: TxBatch,
    /// (ssrc, seq) of packets flagged as the first packet of an IDR.
    pub idr: HashSet<(u32, u16)>,
    pub events: Vec<MeetingEvent>,
    /// Standard endpoints (transcrypt legs).
    pub standard: Vec<super::StandardEndpoint>,
}

impl Sim {
    /// Delivers the meeting's outputs to the endpoints until nothing is left; endpoints
    /// answer TIP and check every media packet they receive.
    pub fn deliver_outputs(&mut self) {
        let now = self.now;
        loop {
            let outputs: Vec<(LegId, Vec<u8>)> =
                self.out.iter().map(|(l, b)| (l, b.to_vec())).collect();
            self.out.clear();
            while let Some(e) = self.meeting.poll_event() {
                self.events.push(e);
            }
            if outputs.is_empty() {
                return;
            }
            let mut replies = Vec::new();
            for (leg, bytes) in outputs {
                if let Some(s) = self.standard.iter_mut().find(|s| s.legs().contains(&leg)) {
                    replies.extend(s.handle_datagram(now, leg, &bytes));
                    continue;
                }
                let ep = self
                    .endpoints
                    .iter_mut()
                    .find(|e| {
                        e.lines
                            .iter()
                            .any(|l| l.leg == leg || l.rtcp_leg == Some(leg))
                    })
                    .expect("a known leg");
                replies.extend(ep.handle_datagram(now, leg, &bytes));
            }
            for (leg, bytes) in replies {
                self.meeting
                    .handle_datagram(self.now, leg, &bytes, &mut self.out);
            }
            self.pump_endpoint_dtls_events();
        }
    }

    /// Endpoint DTLS events: a completed handshake gives the per-hop keys.
    fn pump_endpoint_dtls_events(&mut self) {
        for ep in &mut self.endpoints {
            ep.dtls_events();
        }
    }

    /// A datagram from an endpoint on `leg`.
    pub fn send(&mut self, leg: LegId, bytes: &[u8]) {
        self.meeting
            .handle_datagram(self.now, leg, bytes, &mut self.out);
        self.deliver_outputs();
    }

    /// Datagrams from an endpoint that arrive together on `leg` (a recvmmsg batch).
    pub fn send_batch(&mut self, leg: LegId, datagrams: &[Vec<u8>]) {
        let batch: Vec<&[u8]> = datagrams.iter().map(Vec::as_slice).collect();
        self.meeting
            .handle_datagrams(self.now, leg, &batch, &mut self.out);
        self.deliver_outputs();
    }

    /// [`Sim::media_tick`] with each endpoint's packets of a line arriving as one batch.
    pub fn media_tick_batched(&mut self, levels: &[u8], video: bool) {
        let mut packets: Vec<(LegId, Vec<u8>)> = Vec::new();
        for (ei, ep) in self.endpoints.iter_mut().enumerate() {
            packets.extend(ep.media_tick(levels[ei], video, &mut self.idr));
        }
        let mut i = 0;
        while i < packets.len() {
            let leg = packets[i].0;
            let run: Vec<Vec<u8>> = packets[i..]
                .iter()
                .take_while(|(l, _)| *l == leg)
                .map(|(_, p)| p.clone())
                .collect();
            i += run.len();
            self.send_batch(leg, &run);
        }
        self.advance(Duration::from_millis(20));
    }

    /// Advances virtual time, running the meeting's timers.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.meeting.poll_timeout().filter(|t| *t <= end) {
            self.now = t.max(self.now);
            self.meeting.handle_timeout(self.now, &mut self.out);
            self.deliver_outputs();
        }
        self.now = end;
        self.meeting.handle_timeout(self.now, &mut self.out);
        self.deliver_outputs();
    }

    /// One 20 ms tick of media from every established line: audio from every source with
    /// `levels[endpoint]`, and a video frame (two packets) from every video source when
    /// `video`.
    pub fn media_tick(&mut self, levels: &[u8], video: bool) {
        let mut packets = Vec::new();
        for (ei, ep) in self.endpoints.iter_mut().enumerate() {
            packets.extend(ep.media_tick(levels[ei], video, &mut self.idr));
        }
        for (leg, p) in packets {
            self.send(leg, &p);
        }
        self.advance(Duration::from_millis(20));
    }
}

impl Sim {
    /// A standard endpoint joins (SDES keys; standard after `detect_after` without TIP).
    pub fn add_standard(&mut self, ep: super::StandardEndpoint, detect_after: Duration) {
        let setup = ep.setup(detect_after);
        self.meeting.add_participant(self.now, ep.id, 1, setup);
        self.standard.push(ep);
        self.deliver_outputs();
    }

    /// A standard endpoint joins keyed by DTLS-SRTP (rtcp-mux): it runs its handshake
    /// with the meeting until both sides have keys.
    pub fn add_standard_dtls(&mut self, mut ep: super::StandardEndpoint, detect_after: Duration) {
        let id = || Arc::new(DtlsIdentity::generate().expect("ECDSA identity"));
        let (switch_id, endpoint_id) = (id(), id());
        let setup = ep.setup_with(detect_after, Some((&switch_id, &endpoint_id)), self.now);
        ep.start_dtls_toward(self.now, switch_id.fingerprint(), &endpoint_id);
        self.meeting.add_participant(self.now, ep.id, 1, setup);
        let first = ep.dtls_pump();
        self.standard.push(ep);
        for (leg, d) in first {
            self.send(leg, &d);
        }
        let i = self.standard.len() - 1;
        for _ in 0..50 {
            if self.standard[i].keyed() {
                break;
            }
            let more = self.standard[i].dtls_pump();
            for (leg, d) in more {
                self.send(leg, &d);
            }
            self.advance(Duration::from_millis(10));
        }
        assert!(self.standard[i].keyed(), "the DTLS handshake completes");
    }

    /// 20 ms of media from the standard endpoints (`amplitudes[i]` for the i-th) and, with
    /// `levels`, from the TIP endpoints; then time runs 20 ms.
    pub fn mixed_tick(&mut self, levels: &[u8], amplitudes: &[f64], video: bool) {
        let mut packets = Vec::new();
        for (ei, ep) in self.endpoints.iter_mut().enumerate() {
            packets.extend(ep.media_tick(levels[ei], video, &mut self.idr));
        }
        for (i, s) in self.standard.iter_mut().enumerate() {
            packets.extend(s.media_tick(amplitudes[i], video));
        }
        for (leg, p) in packets {
            self.send(leg, &p);
        }
        self.advance(Duration::from_millis(20));
    }
}

impl Sim {
    /// A meeting with the group parameters of both lines and `endpoints` `(id, screens)`
    /// joined (TIP not yet run: see [`Sim::negotiate`]).
    pub fn new(mode: Mode, endpoints: &[(u32, u8)]) -> Self {
        Self::with_keying(mode, endpoints, false)
    }

    /// As [`Sim::new`]; with `dtls`, every line is keyed by a real DTLS-SRTP handshake
    /// (switch passive, endpoint active, fingerprints as SDP would carry them).
    pub fn with_keying(mode: Mode, endpoints: &[(u32, u8)], dtls: bool) -> Self {
        Self::with_options(mode, endpoints, dtls, true)
    }

    /// A non-secure meeting: plain RTP and RTCP, TIP without EKT or SPIMAP.
    pub fn non_secure(mode: Mode, endpoints: &[(u32, u8)]) -> Self {
        Self::build(mode, endpoints, false, true, false)
    }

    /// As [`Sim::with_keying`]; without `rtcp_mux`, every line's RTCP has its own leg.
    pub fn with_options(mode: Mode, endpoints: &[(u32, u8)], dtls: bool, rtcp_mux: bool) -> Self {
        Self::build(mode, endpoints, dtls, rtcp_mux, true)
    }

    fn build(
        mode: Mode,
        endpoints: &[(u32, u8)],
        dtls: bool,
        rtcp_mux: bool,
        secure: bool,
    ) -> Self {
        let mut meeting = Meeting::new(
            SwitchingConfig {
                mode,
                ..SwitchingConfig::default()
            },
            256,
        );
        meeting.set_secure(secure);
        let registry = meeting.forwarder_mut().registry_mut();
        registry
            .insert(Spi(AUDIO_SPI), params(AUDIO_SPI))
            .expect("fresh registry");
        registry
            .insert(Spi(VIDEO_SPI), params(VIDEO_SPI))
            .expect("fresh registry");
        let mut sim = Self {
            now: Instant::now(),
            meeting,
            endpoints: endpoints
                .iter()
                .map(|&(id, screens)| {
                    let ep = Endpoint::new(id, screens);
                    let ep = if secure { ep } else { ep.non_secure() };
                    if rtcp_mux { ep } else { ep.without_rtcp_mux() }
                })
                .collect(),
            out: TxBatch::new(1024, 4096),
            idr: HashSet::new(),
            events: Vec::new(),
            standard: Vec::new(),
        };
        let identities = dtls.then(|| {
            let id = || Arc::new(DtlsIdentity::generate().expect("ECDSA identity"));
            (id(), id())
        });
        for i in 0..sim.endpoints.len() {
            let (id, screens) = (
                sim.endpoints[i].id,
                sim.endpoints[i].lines[0].sources.len() as u8,
            );
            let setup = sim.endpoints[i].setup_with(
                "4000",
                identities.as_ref().map(|(s, e)| (s, e)),
                sim.now,
            );
            if let Some((switch_id, endpoint_id)) = &identities {
                let now = sim.now;
                sim.endpoints[i].start_dtls(now, switch_id, endpoint_id);
            }
            sim.meeting.add_participant(sim.now, id, screens, setup);
        }
        sim.deliver_outputs();
        sim.pump_endpoint_dtls();
        sim
    }

    /// Sends what the endpoints' DTLS sessions have to send and adopts their per-hop keys
    /// when they connect.
    fn pump_endpoint_dtls(&mut self) {
        let mut datagrams = Vec::new();
        for ep in &mut self.endpoints {
            datagrams.extend(ep.dtls_pump());
        }
        for (leg, dg) in datagrams {
            self.send(leg, &dg);
        }
    }

    /// Every endpoint sends its MUXCTRL on each line; time runs until TIP is through.
    /// Returns how many lines are established.
    pub fn negotiate(&mut self) -> usize {
        let mut datagrams = Vec::new();
        for ep in &mut self.endpoints {
            datagrams.extend(ep.muxctrls());
        }
        for (leg, d) in datagrams {
            self.send(leg, &d);
        }
        self.advance(Duration::from_millis(300));
        self.events
            .iter()
            .filter(|e| matches!(e, MeetingEvent::LineEstablished { .. }))
            .count()
    }

    /// Video packets of `wire_len` bytes from `(endpoint index, position)`, continuing its
    /// sequence: every other packet with a full EKT tag, none flagged IDR. Not sent: for
    /// benches that time the meeting alone.
    pub fn video_packets(
        &mut self,
        endpoint: usize,
        position: u8,
        count: usize,
        wire_len: usize,
    ) -> Vec<(LegId, Vec<u8>)> {
        let line = self.endpoints[endpoint]
            .lines
            .iter_mut()
            .find(|l| l.media == Media::Video)
            .expect("video line");
        let leg = line.leg;
        let (_, ssrc, tx, seq) = line
            .sources
            .iter_mut()
            .find(|s| s.0 == position)
            .expect("position");
        (0..count)
            .map(|k| {
                *seq = seq.wrapping_add(1);
                let full = k % 2 == 0;
                let mut buf = vec![0u8; 1500];
                let csrc = TipCsrc {
                    clock_id: 0x777,
                    output: position,
                    source: position,
                    sink: position,
                }
                .to_u32();
                buf[0] = 0x81;
                buf[1] = 112;
                buf[2..4].copy_from_slice(&seq.to_be_bytes());
                buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
                buf[12..16].copy_from_slice(&csrc.to_be_bytes());
                let rtp_len = wire_len - 1 - if full { 34 } else { 11 };
                let n = tx
                    .protect_rtp(&mut buf, rtp_len, Some(0), full)
                    .expect("room");
                buf.truncate(n);
                (leg, buf)
            })
            .collect()
    }
}

//! A simulated standard SIP endpoint (issue 19): no TIP, no EKT; per-hop keys by SDES or
//! DTLS-SRTP (rtcp-mux); audio
//! in PCMU (a tone of its own), video H.264-shaped (SPS + IDR on request, else non-IDR
//! slices). It records everything it receives, decrypted with the switch's per-hop key.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::dtls::{DtlsEvent, DtlsIdentity, DtlsSession, DtlsSettings, Role};
use crate::meeting::{HopKeying, HopKeys, LegId, LineSetup, StandardSetup};
use crate::rtp::RtpHeader;
use crate::srtp::{MasterKey, SrtpContext, Suite};
use crate::tip::negotiation::{LineConfig, Media};
use crate::transcrypt::g711::Law;

use super::endpoint::{endpoint_addr, group_of, switch_addr};

/// What the endpoint received on a line, decrypted.
#[derive(Debug, Clone)]
pub struct Heard {
    /// Audio or video.
    pub media: Media,
    /// Its RTP header fields.
    pub ssrc: u32,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub ts: u32,
    /// Payload type.
    pub pt: u8,
    /// The payload in the clear.
    pub payload: Vec<u8>,
}

struct StdLine {
    media: Media,
    leg: LegId,
    /// Endpoint -> switch (its SDES key) and switch -> endpoint (the switch's).
    tx: SrtpContext,
    rx: SrtpContext,
    rx_rtcp: SrtpContext,
    ssrc: u32,
    seq: u16,
    ts: u32,
    keys: ([u8; 16], [u8; 14], [u8; 16], [u8; 14]),
    /// DTLS-SRTP keying: its (active) association; the contexts above are replaced when
    /// it connects.
    dtls: Option<DtlsSession>,
    keyed: bool,
}

/// A standard endpoint with an audio and a video line on legs `id * 10` and `+ 1`.
pub struct StandardEndpoint {
    /// Its participant id.
    pub id: u32,
    lines: Vec<StdLine>,
    /// The tone it sends (Hz) and its amplitude.
    pub tone: f64,
    /// Sample counter of the tone.
    phase: u64,
    /// What it received, in order.
    pub heard: Vec<Heard>,
    /// RTCP it received, decrypted.
    pub rtcp: Vec<Vec<u8>>,
    /// Frames until it sends an IDR (a PLI asks for one).
    pub idr_in: Option<u8>,
    /// Keep every packet in [`StandardEndpoint::heard`] (tests); a load generator only
    /// counts.
    pub record: bool,
    /// Media packets received: audio, video.
    pub received: [u64; 2],
    /// Packets missing in its video stream (gaps in the one sequence).
    pub video_lost: u64,
    last_video_seq: Option<u16>,
    /// Datagrams that did not decrypt with the switch's per-hop key.
    pub decrypt_failures: u64,
    /// Its audio format (payload type, rtpmap): PCMU unless changed.
    pub audio_format: (u8, String),
    /// Plain RTP and RTCP (a non-secure meeting, RTP/AVP).
    pub plain: bool,
}

const SUITE: Suite = Suite::AesCm128HmacSha1_80;

fn ctx(key: &[u8; 16], salt: &[u8; 14]) -> SrtpContext {
    SrtpContext::new(SUITE, &MasterKey::new(SUITE, key, salt).expect("sizes"))
}

impl StandardEndpoint {
    /// An endpoint sending a `tone` Hz sine.
    pub fn new(id: u32, tone: f64) -> Self {
        let lines = [Media::Audio, Media::Video]
            .into_iter()
            .enumerate()
            .map(|(i, media)| {
                let leg = id * 10 + i as u32;
                let b = leg as u8;
                let keys = ([b; 16], [b ^ 1; 14], [b ^ 2; 16], [b ^ 3; 14]);
                StdLine {
                    media,
                    leg,
                    tx: ctx(&keys.0, &keys.1),
                    rx: ctx(&keys.2, &keys.3),
                    rx_rtcp: ctx(&keys.2, &keys.3),
                    ssrc: 0xabc0_0000 | leg,
                    seq: 1000,
                    ts: 5000,
                    keys,
                    dtls: None,
                    keyed: true,
                }
            })
            .collect();
        Self {
            id,
            lines,
            tone,
            phase: 0,
            heard: Vec::new(),
            rtcp: Vec::new(),
            idr_in: Some(0),
            record: true,
            received: [0; 2],
            video_lost: 0,
            last_video_seq: None,
            decrypt_failures: 0,
            audio_format: (0, "PCMU/8000".to_owned()),
            plain: false,
        }
    }

    /// Its legs.
    pub fn legs(&self) -> Vec<LegId> {
        self.lines.iter().map(|l| l.leg).collect()
    }

    /// The SSRC it sends with on `media`.
    pub fn ssrc(&self, media: Media) -> u32 {
        self.lines
            .iter()
            .find(|l| l.media == media)
            .map_or(0, |l| l.ssrc)
    }

    /// The lines as the switch's call control would add them (SDES keys, PCMU and H.264,
    /// standard after `detect_after` without TIP).
    pub fn setup(&self, detect_after: Duration) -> Vec<LineSetup> {
        self.setup_with(detect_after, None, Instant::now())
    }

    /// As [`StandardEndpoint::setup`]; with `dtls` (the switch's and the endpoint's
    /// identities) each line is keyed by DTLS-SRTP, the switch passive, and the endpoint
    /// starts its active side.
    pub fn setup_with(
        &self,
        detect_after: Duration,
        dtls: Option<(&Arc<DtlsIdentity>, &Arc<DtlsIdentity>)>,
        now: Instant,
    ) -> Vec<LineSetup> {
        self.lines
            .iter()
            .map(|l| {
                let (tk, ts, rk, rs) = &l.keys;
                let mut config = LineConfig::new(l.media, 0xe000_0000 | l.leg, "4000");
                config.group = (!self.plain).then(|| group_of(l.media));
                let formats = match l.media {
                    Media::Audio => vec![(self.audio_format.0, Some(self.audio_format.1.clone()))],
                    Media::Video => vec![(96, Some("H264/90000".to_owned()))],
                };
                let keying = match dtls {
                    None if self.plain => HopKeying::Plain,
                    None => HopKeying::Sdes(Box::new(HopKeys {
                        inbound: ctx(tk, ts),
                        outbound: ctx(rk, rs),
                    })),
                    Some((switch_id, endpoint_id)) => HopKeying::Dtls(Box::new(DtlsSession::new(
                        now,
                        switch_id.clone(),
                        DtlsSettings::default(),
                        Role::Passive,
                        switch_addr(l.leg),
                        endpoint_addr(l.leg),
                        Some(endpoint_id.fingerprint()),
                    ))),
                };
                LineSetup {
                    leg: l.leg,
                    keying,
                    config,
                    rtcp: None,
                    standard: StandardSetup {
                        detect_after: Some(detect_after),
                        formats,
                        audio_level_ext: None,
                    },
                }
            })
            .collect()
    }

    /// Starts an active DTLS handshake on every line toward a switch known by its
    /// certificate fingerprint, as `endpoint_id`; until it connects the line sends nothing.
    pub fn start_dtls_toward(
        &mut self,
        now: Instant,
        switch_fingerprint: [u8; 32],
        endpoint_id: &Arc<DtlsIdentity>,
    ) {
        for l in &mut self.lines {
            l.dtls = Some(DtlsSession::new(
                now,
                endpoint_id.clone(),
                DtlsSettings::default(),
                Role::Active,
                endpoint_addr(l.leg),
                switch_addr(l.leg),
                Some(switch_fingerprint),
            ));
            l.keyed = false;
        }
    }

    /// Its DTLS: events taken (a connected association keys the line), datagrams to send.
    pub fn dtls_pump(&mut self) -> Vec<(LegId, Vec<u8>)> {
        let mut out = Vec::new();
        for l in &mut self.lines {
            let Some(d) = &mut l.dtls else { continue };
            while let Some(e) = d.poll_event() {
                match e {
                    DtlsEvent::Connected(k) => {
                        l.tx = SrtpContext::new(k.suite, &k.outbound);
                        l.rx = SrtpContext::new(k.suite, &k.inbound);
                        l.rx_rtcp = SrtpContext::new(k.suite, &k.inbound);
                        l.keyed = true;
                    }
                    DtlsEvent::Failed(f) => panic!("standard endpoint DTLS failed: {f:?}"),
                }
            }
            out.extend(std::iter::from_fn(|| d.poll_transmit()).map(|dg| (l.leg, dg)));
        }
        out
    }

    /// Time passed: DTLS retransmissions.
    pub fn handle_timeout(&mut self, now: Instant) {
        for d in self.lines.iter_mut().filter_map(|l| l.dtls.as_mut()) {
            if d.poll_timeout().is_some_and(|t| t <= now) {
                d.handle_timeout(now);
            }
        }
    }

    /// Every line has its per-hop keys.
    pub fn keyed(&self) -> bool {
        self.lines.iter().all(|l| l.keyed)
    }

    /// 20 ms of media: 160 PCMU samples of its tone at `amplitude` (0 is silence), and
    /// with `video` a frame of two packets (an IDR when one is due).
    pub fn media_tick(&mut self, amplitude: f64, video: bool) -> Vec<(LegId, Vec<u8>)> {
        let mut out = Vec::new();
        let idr = match &mut self.idr_in {
            Some(0) => {
                self.idr_in = None;
                true
            }
            Some(n) => {
                *n -= 1;
                false
            }
            None => false,
        };
        let samples: Vec<u8> = (0..160)
            .map(|i| {
                let t = (self.phase + i) as f64 / 8000.0;
                let v = amplitude * (t * self.tone * std::f64::consts::TAU).sin();
                Law::Mu.encode(v as i16)
            })
            .collect();
        self.phase += 160;
        for l in self.lines.iter_mut().filter(|l| l.keyed) {
            let payloads: Vec<Vec<u8>> = match l.media {
                Media::Audio => vec![samples.clone()],
                Media::Video if !video => continue,
                Media::Video if idr => vec![
                    [0x67, 0x42, 0x00, 0x1f].to_vec(),
                    std::iter::once(0x65).chain(0..200u8).collect(),
                ],
                Media::Video => vec![
                    std::iter::once(0x41).chain(0..200u8).collect(),
                    std::iter::once(0x41).chain(1..201u8).collect(),
                ],
            };
            let n = payloads.len();
            for (k, p) in payloads.into_iter().enumerate() {
                l.seq = l.seq.wrapping_add(1);
                let mut b = vec![0u8; 12 + p.len() + 16];
                b[0] = 0x80;
                b[1] = match l.media {
                    Media::Audio => self.audio_format.0,
                    Media::Video => 96 | if k + 1 == n { 0x80 } else { 0 },
                };
                b[2..4].copy_from_slice(&l.seq.to_be_bytes());
                b[4..8].copy_from_slice(&l.ts.to_be_bytes());
                b[8..12].copy_from_slice(&l.ssrc.to_be_bytes());
                b[12..12 + p.len()].copy_from_slice(&p);
                let len = if self.plain {
                    12 + p.len()
                } else {
                    l.tx.protect_rtp(&mut b, 12 + p.len()).expect("room")
                };
                b.truncate(len);
                out.push((l.leg, b));
            }
            l.ts =
                l.ts.wrapping_add(if l.media == Media::Audio { 160 } else { 1800 });
        }
        out
    }

    /// A PLI (RFC 4585 §6.3.1) about `media_ssrc` on its video line, protected.
    pub fn pli(&mut self, media_ssrc: u32) -> (LegId, Vec<u8>) {
        let l = self
            .lines
            .iter_mut()
            .find(|l| l.media == Media::Video)
            .expect("video line");
        let mut b = vec![0u8; 12 + 64];
        crate::transcrypt::rtcp::picture_loss(&mut b, l.ssrc, media_ssrc);
        let n = l.tx.protect_rtcp(&mut b, 12).expect("room");
        b.truncate(n);
        (l.leg, b)
    }

    /// A datagram from the switch: DTLS goes to the association (its answers returned);
    /// media and RTCP are decrypted with the switch's per-hop key (failures counted in
    /// [`StandardEndpoint::decrypt_failures`]); a PLI makes the next frame an IDR.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        leg: LegId,
        bytes: &[u8],
    ) -> Vec<(LegId, Vec<u8>)> {
        let Some(l) = self.lines.iter_mut().find(|l| l.leg == leg) else {
            panic!("not this endpoint's leg {leg}");
        };
        if bytes.first().is_some_and(|b| (20..=63).contains(b)) {
            if let Some(d) = &mut l.dtls {
                d.handle_datagram(now, bytes);
            }
            return self.dtls_pump();
        }
        let mut b = bytes.to_vec();
        if crate::rtp::is_rtcp(&b) {
            let opened = if self.plain {
                Ok(b.len())
            } else {
                l.rx_rtcp.unprotect_rtcp(&mut b)
            };
            let Ok(n) = opened else {
                self.decrypt_failures += 1;
                return Vec::new();
            };
            b.truncate(n);
            for p in crate::rtp::rtcp_packets(&b) {
                if p.len() >= 12 && p[1] == 206 && p[0] & 0x1f == 1 {
                    self.idr_in = Some(2);
                }
            }
            if self.record {
                self.rtcp.push(b);
            }
            return Vec::new();
        }
        let opened = if self.plain {
            Ok(b.len())
        } else {
            l.rx.unprotect_rtp(&mut b)
        };
        let Ok(n) = opened else {
            self.decrypt_failures += 1;
            return Vec::new();
        };
        let Ok(h) = RtpHeader::parse(&b[..n]) else {
            self.decrypt_failures += 1;
            return Vec::new();
        };
        // No TIP CSRC toward a standard endpoint.
        if h.csrc_count != 0 {
            self.decrypt_failures += 1;
        }
        let media = l.media;
        self.received[usize::from(media == Media::Video)] += 1;
        if media == Media::Video {
            if let Some(last) = self.last_video_seq {
                let gap = h.seq.wrapping_sub(last).wrapping_sub(1);
                if gap < 1000 {
                    self.video_lost += u64::from(gap);
                }
            }
            self.last_video_seq = Some(h.seq);
        }
        if self.record {
            self.heard.push(Heard {
                media,
                ssrc: h.ssrc,
                seq: h.seq,
                ts: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
                pt: h.payload_type,
                payload: b[h.len..n].to_vec(),
            });
        }
        Vec::new()
    }
}

/// The power of `hz` in 8 kHz samples (the Goertzel filter), normalised by the length: how
/// the tests tell which tones a recording holds.
pub fn goertzel(samples: &[i16], hz: f64) -> f64 {
    let w = std::f64::consts::TAU * hz / 8000.0;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s = f64::from(x) + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - c * s1 * s2) / (samples.len().max(1) as f64).powi(2)
}

//! Transcrypt legs (issue 19; ARCHITECTURE.md "Standard SIP endpoints"): a line whose
//! endpoint never spoke TIP. TIP endpoints keep the untouched end-to-end path; only what a
//! standard endpoint sends or receives is decrypted here.
//!
//! - **From the endpoint**: verified and decrypted with the leg's per-hop keys (SDES or
//!   DTLS-SRTP) before anything else, then re-protected end to end under a key the switch
//!   picked for it, announced in full TIP EKT tags under the meeting's group parameters,
//!   with the TIP CSRC and the appended byte (audio activity from RFC 6464 or the decoded
//!   samples, video refresh flag from the H.264 NAL types). From there it is one more TIP
//!   source: verified by the forwarder like any other and switched by voice.
//! - **To the endpoint**: video is the source its one screen shows (the same displays and
//!   switching), opened with the sender's key, restamped into one continuous stream and
//!   protected with the leg's per-hop keys; audio is the mix of the loudest three others
//!   (G.711), every 20 ms. A sender report per stream every second; its PLI and FIR become
//!   a keyframe request to the source it is shown.

use std::time::{Duration, Instant};

use ekt::kek::EktCipher;
use ekt::{ParameterSet, Spi, SrtpProfile};
use ring::rand::SecureRandom;

use super::{Arrival, Meeting, keyframe_request_target};
use crate::forward::{DropReason, SLOT_SIZE, TipCsrc, TxBatch, Verified};
use crate::meeting::line::{Line, StandardSetup, line_deadline, standard_detection_due};
use crate::meeting::{CENTER, HopKeys, ParticipantId, SourceId};
use crate::rtp::{RtpHeader, rtcp_packets};
use crate::srtp::TipEktSender;
use crate::tip::negotiation::{LineConfig, Media, State};
use crate::transcrypt::g711::Law;
use crate::transcrypt::h264::RefreshMarker;
use crate::transcrypt::level::{self, activity_of};
use crate::transcrypt::mixer::{FRAME, MixKey, Mixer};
use crate::transcrypt::restamp::Restamper;
use crate::transcrypt::rtcp;

/// The mix, as a source of a receiver's audio stream.
const MIX_SOURCE: u32 = 0;
/// RFC 3550 §6.2: a sender report every few seconds; once a second is what a receiver
/// needs for lip sync soon after a join.
const SR_INTERVAL: Duration = Duration::from_secs(1);

/// The meeting's standard endpoints, as one of them arrives or leaves.
pub(crate) type MeetingMixer = Mixer<SourceId>;

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The system RNG does not fail on Linux.
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    b
}

/// A transcrypt leg's state.
pub(crate) struct StandardLine {
    /// Audio: the G.711 law of the endpoint's first G.711 format (what it hears in).
    law: Option<Law>,
    /// Its formats, for the law of what it sends.
    formats: Vec<(u8, Option<String>)>,
    /// Audio without G.711: its codec (`name/clock`, lower case), which it hears passed
    /// through from the loudest source of the same codec.
    pub(super) codec: Option<String>,
    /// The payload type of what it is sent.
    send_pt: u8,
    /// The one stream it receives on this m-line.
    out: Restamper,
    /// The mix's own sequence number and timestamp (the restamper's source).
    mix_seq: u16,
    mix_ts: u32,
    /// Its media re-protected end to end (secure meetings).
    e2e: Option<TipEktSender>,
    e2e_sent: u64,
    /// The TIP CSRC clock id of its media.
    clock_id: u32,
    marker: RefreshMarker,
    level_ext: Option<u8>,
    /// The SSRC it sends with (PLI target).
    endpoint_ssrc: Option<u32>,
    /// Sender SSRC of our RTCP (SR, PLI): the line's TIP control SSRC.
    control_ssrc: u32,
    /// NTP time at an instant, for sender reports.
    ntp_base: (Instant, u64),
    next_sr: Instant,
}

impl StandardLine {
    fn new(
        now: Instant,
        media: Media,
        config: &LineConfig,
        since: Instant,
        s: StandardSetup,
    ) -> Self {
        let g711 = s
            .formats
            .iter()
            .find(|(pt, map)| Law::from_payload_type(*pt, map.as_deref()).is_some());
        let (law, send_pt) = match (media, g711) {
            (Media::Audio, Some((pt, map))) => (Law::from_payload_type(*pt, map.as_deref()), *pt),
            _ => (None, s.formats.first().map_or(0, |f| f.0)),
        };
        // Audio without G.711 hears a source of its own codec passed through (its first
        // format's encoding name and clock rate).
        let codec = match (media, law) {
            (Media::Audio, None) => s.formats.first().and_then(|f| f.1.as_deref()).map(codec_id),
            _ => None,
        };
        let clock = match (media, &codec) {
            (Media::Video, _) => 90_000,
            (Media::Audio, Some(c)) => c
                .split('/')
                .nth(1)
                .and_then(|r| r.parse().ok())
                .filter(|r| *r > 0)
                .unwrap_or(8000),
            (Media::Audio, None) => 8000,
        };
        let e2e = config.group.as_ref().and_then(|g| {
            let params = ParameterSet::new(
                EktCipher::AesEcb128,
                &g.kek,
                SrtpProfile::AesCm128HmacSha1_80,
                &g.salt,
            )
            .ok()?;
            TipEktSender::new(&random::<16>(), &params, Spi(g.spi)).ok()
        });
        let r: [u8; 12] = random();
        let be32 = |i: usize| u32::from_be_bytes([r[i], r[i + 1], r[i + 2], r[i + 3]]);
        Self {
            law,
            codec,
            formats: s.formats,
            send_pt,
            out: Restamper::new(be32(0), clock, u16::from_be_bytes([r[4], r[5]]), be32(8)),
            mix_seq: 0,
            mix_ts: 0,
            e2e,
            e2e_sent: 0,
            clock_id: be32(6) & 0xf_ffff,
            marker: RefreshMarker::default(),
            level_ext: s.audio_level_ext,
            endpoint_ssrc: None,
            control_ssrc: config.control_ssrc,
            ntp_base: (since, config.ntp_at_start),
            next_sr: now + SR_INTERVAL,
        }
    }

    fn ntp(&self, now: Instant) -> u64 {
        let d = now.saturating_duration_since(self.ntp_base.0);
        let frac = (u128::from(d.subsec_nanos()) << 32) / 1_000_000_000;
        self.ntp_base.1 + (d.as_secs() << 32) + frac as u64
    }
}

/// A codec as `name/clock` in lower case, from an `a=rtpmap` value (channels dropped).
fn codec_id(rtpmap: &str) -> String {
    let mut parts = rtpmap.split('/');
    let name = parts.next().unwrap_or_default();
    let clock = parts.next().unwrap_or_default();
    format!("{name}/{clock}").to_lowercase()
}

/// Whether two `a=rtpmap` values (or [`codec_id`]s) name the same codec: encoding name
/// and clock rate, any case, channels aside. Allocates nothing (it runs per packet).
fn same_codec(a: &str, b: &str) -> bool {
    let (mut a, mut b) = (a.split('/'), b.split('/'));
    let name = a.next().unwrap_or_default();
    let clock = a.next().unwrap_or_default();
    name.eq_ignore_ascii_case(b.next().unwrap_or_default())
        && clock.eq_ignore_ascii_case(b.next().unwrap_or_default())
}

/// The keys of a transcrypt leg's media: the RTP leg's own association when RTCP has its
/// own (RFC 5764 §4.1), else the line's per-hop keys (SDES, or DTLS with rtcp-mux).
fn media_keys<'a>(
    rtp_hop: &'a mut Option<Box<HopKeys>>,
    hop: &'a mut Option<HopKeys>,
) -> Option<&'a mut HopKeys> {
    match rtp_hop {
        Some(k) => Some(k),
        None => hop.as_mut(),
    }
}

/// Protects an RTP packet built in `slot[..len]` for a leg (plain in a non-secure
/// meeting); `None` when it could not be.
fn protect_media(l: &mut Line, slot: &mut [u8], len: usize) -> Option<usize> {
    if l.plain_control {
        return Some(len);
    }
    media_keys(&mut l.rtp_hop, &mut l.hop)?
        .outbound
        .protect_rtp(slot, len)
        .ok()
}

/// Protects and queues an RTCP packet built in `slot[..len]` to the line's RTCP leg.
fn send_rtcp(l: &mut Line, out: &mut TxBatch, build: impl FnOnce(&mut [u8]) -> usize) {
    if !out.has_room(1) {
        return;
    }
    let slot = out.next_slot();
    let len = build(&mut slot[..]);
    let n = if l.plain_control {
        Some(len)
    } else {
        l.hop
            .as_mut()
            .and_then(|h| h.outbound.protect_rtcp(slot, len).ok())
    };
    if let Some(n) = n {
        let s = out.commit_slot(n);
        out.push(l.rtcp_leg.unwrap_or(l.leg), s);
    }
}

/// Asks a standard endpoint's video for a keyframe (RFC 4585 §6.3.1 PLI), the transcrypt
/// leg's REFRESH.
pub(super) fn send_pli(l: &mut Line, out: &mut TxBatch) {
    let Some(s) = l.standard.as_deref() else {
        return;
    };
    let Some(media) = s.endpoint_ssrc else { return };
    let sender = s.control_ssrc;
    send_rtcp(l, out, |b| rtcp::picture_loss(b, sender, media));
}

impl Meeting {
    /// Lines whose endpoint has not spoken TIP within the configured wait become
    /// transcrypt legs.
    pub(super) fn detect_standard(&mut self, now: Instant) {
        for pi in 0..self.participants.len() {
            for li in 0..self.participants[pi].lines.len() {
                let l = &self.participants[pi].lines[li];
                if standard_detection_due(l).is_some_and(|t| t <= now) {
                    self.make_standard(now, pi, li);
                }
            }
        }
    }

    fn make_standard(&mut self, now: Instant, pi: usize, li: usize) {
        let id = self.participants[pi].id;
        let l = &mut self.participants[pi].lines[li];
        // A negotiation that failed at its deadline in the same instant has said so.
        if l.tip.as_ref().is_none_or(|t| t.state() == State::Failed) {
            return;
        }
        let Some(tip) = l.tip.take() else { return };
        let setup = *std::mem::take(&mut l.standard_setup);
        let since = l.tip_since.unwrap_or(now);
        let s = StandardLine::new(now, l.media, tip.config(), since, setup);
        let mixes = s.law.is_some();
        self.passthrough |= s.codec.is_some();
        l.standard = Some(Box::new(s));
        l.established = !l.held;
        // Its media reaches the forwarder re-protected with the appended byte.
        l.appended_byte = true;
        l.deadline = line_deadline(l);
        let media = l.media;
        if mixes {
            self.mixer.get_or_insert_with(Mixer::new);
        }
        self.next_standard_tick.get_or_insert(now);
        self.pending_ready = true;
        self.layouts_dirty = true;
        self.events.push_back(super::MeetingEvent::StandardLine {
            participant: id,
            media,
        });
    }

    /// Media from a transcrypt leg: per-hop verified and decrypted first (a forgery
    /// stops here), then re-protected end to end and taken like a TIP source's.
    pub(super) fn standard_media_in(
        &mut self,
        now: Instant,
        at: Arrival,
        data: &[u8],
        out: &mut TxBatch,
    ) {
        let (pi, li) = (at.pi, at.li);
        let from = self.participants[pi].id;
        let l = &mut self.participants[pi].lines[li];
        if l.held {
            self.stats.other_security += 1;
            l.counters.held += 1;
            return;
        }
        let mut buf = std::mem::take(&mut self.transcrypt_buf);
        let opened = if data.len() > SLOT_SIZE {
            Err(DropReason::TooLarge)
        } else {
            buf[..data.len()].copy_from_slice(data);
            if l.plain_control {
                Ok(data.len())
            } else {
                match media_keys(&mut l.rtp_hop, &mut l.hop) {
                    Some(k) => k
                        .inbound
                        .unprotect_rtp(&mut buf[..data.len()])
                        .map_err(|_| DropReason::AuthFailed),
                    None => Err(DropReason::UnknownSsrc),
                }
            }
        };
        let parsed = opened.and_then(|n| {
            RtpHeader::parse(&buf[..n])
                .map(|h| (n, h))
                .map_err(|_| DropReason::Malformed)
        });
        let (n, hdr) = match parsed {
            Ok(x) => x,
            Err(reason) => {
                self.stats.transcrypt_dropped += 1;
                if let Some(c) = DropReason::ALL
                    .iter()
                    .position(|r| *r == reason)
                    .and_then(|i| l.counters.dropped.get_mut(i))
                {
                    *c += 1;
                }
                self.transcrypt_buf = buf;
                return;
            }
        };
        if self
            .ssrc_owner
            .get(&hdr.ssrc)
            .is_some_and(|owner| *owner != from)
        {
            self.stats.ssrc_on_wrong_leg += 1;
            self.transcrypt_buf = buf;
            return;
        }
        let media = l.media;
        let s = l.standard.as_deref_mut().expect("a transcrypt leg");
        s.endpoint_ssrc = Some(hdr.ssrc);
        let ts = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let payload = &buf[hdr.len..n];
        let x = match media {
            Media::Audio => {
                let map = s
                    .formats
                    .iter()
                    .find(|f| f.0 == hdr.payload_type)
                    .and_then(|f| f.1.as_deref());
                let law = Law::from_payload_type(hdr.payload_type, map);
                let mut lvl = s
                    .level_ext
                    .and_then(|id| level::extension_level(&buf[..n], id));
                if let Some(law) = law {
                    // Decoded once: the level's energy is summed as the mixer takes them.
                    let mut energy = 0.0f64;
                    let samples = payload.iter().map(|&c| {
                        let x = law.decode(c);
                        energy += f64::from(x) * f64::from(x);
                        x
                    });
                    match &mut self.mixer {
                        Some(m) => {
                            let source = SourceId {
                                participant: from,
                                position: CENTER,
                            };
                            let key = MixKey {
                                owner: from,
                                source,
                            };
                            m.push(key, samples);
                        }
                        None => samples.for_each(drop),
                    }
                    lvl = lvl.or(Some(level::level_of_energy(energy, payload.len())));
                }
                activity_of(lvl.unwrap_or(level::SILENT))
            }
            Media::Video => s.marker.flag(ts, payload),
        };
        // The TIP packet: the header with the TIP CSRC (no extension), the payload, then
        // the appended byte and the EKT tag.
        let mut e2e = std::mem::take(&mut self.e2e_buf);
        let plen = n - hdr.len;
        e2e[0] = 0x81 | (buf[0] & 0x20);
        e2e[1..12].copy_from_slice(&buf[1..12]);
        let csrc = TipCsrc {
            clock_id: s.clock_id,
            output: CENTER,
            source: CENTER,
            sink: CENTER,
        };
        e2e[12..16].copy_from_slice(&csrc.to_u32().to_be_bytes());
        e2e[16..16 + plen].copy_from_slice(payload);
        self.transcrypt_buf = buf;
        let len = 16 + plen;
        let total = match &mut s.e2e {
            Some(tx) => {
                // Full tags at the start, on refresh points and every fourth packet
                // after: a receiver that joins late learns the key within a few.
                let full = s.e2e_sent < 3 || x == 1 && media == Media::Video || hdr.seq % 4 == 0;
                tx.protect_rtp(&mut e2e, len, Some(x), full).ok()
            }
            None => {
                e2e[len] = x;
                Some(len + 1)
            }
        };
        s.e2e_sent += 1;
        if let Some(total) = total {
            self.handle_media(now, at, &e2e[..total], out);
        }
        self.e2e_buf = e2e;
    }

    /// RTCP from a transcrypt leg: per-hop, ends here; its keyframe requests go to the
    /// source it is shown.
    pub(super) fn standard_rtcp_in(&mut self, at: Arrival, data: &[u8]) {
        let from = self.participants[at.pi].id;
        let l = &mut self.participants[at.pi].lines[at.li];
        if data.len() > self.scratch.len() {
            self.stats.hop_auth_failed += 1;
            return;
        }
        let buf = &mut self.scratch[..data.len()];
        buf.copy_from_slice(data);
        let n = if l.plain_control {
            Ok(data.len())
        } else {
            match l.hop.as_mut() {
                Some(h) => h.inbound.unprotect_rtcp(buf).map_err(|_| ()),
                None => Err(()),
            }
        };
        let Ok(n) = n else {
            self.stats.hop_auth_failed += 1;
            return;
        };
        let Some(s) = l.standard.as_deref() else {
            return;
        };
        for p in rtcp_packets(&buf[..n]) {
            if keyframe_request_target(p) == Some(s.out.ssrc())
                && let Some(source) = s.out.source()
            {
                self.keyframe_requests.push((from, source));
            }
        }
    }

    /// A TIP source's G.711 audio into the mix (only when a standard endpoint listens).
    pub(super) fn mix_tip_source(&mut self, data: &[u8], v: &Verified, source: SourceId) {
        let Some(mixer) = &mut self.mixer else { return };
        let pt = data.get(1).map_or(0xff, |b| b & 0x7f);
        let Some(law) = Law::from_payload_type(pt, None) else {
            return;
        };
        let Ok(n) = self.forwarder.open(data, v, &mut self.transcrypt_buf) else {
            return;
        };
        let Ok(hdr) = RtpHeader::parse(&self.transcrypt_buf[..n]) else {
            return;
        };
        mixer.push(
            MixKey {
                owner: source.participant,
                source,
            },
            self.transcrypt_buf[hdr.len..n]
                .iter()
                .map(|&c| law.decode(c)),
        );
    }

    /// The transcrypt legs a TIP audio source is passed through to (issue 19: a codec the
    /// switch cannot mix, heard only by receivers that negotiated the same one): those whose
    /// codec is the source line's and for whom it is the loudest such source that is not
    /// their own. They go to `transcrypt_to`.
    pub(super) fn pass_through_to(&mut self, pi: usize, li: usize, source: SourceId) {
        let participants = &self.participants;
        // A TIP line's codec: its first SDP format (what a TIP endpoint sends).
        let rtpmap_of = |p: ParticipantId| {
            participants.iter().find(|x| x.id == p).and_then(|x| {
                x.lines
                    .iter()
                    .find(|l| l.media == Media::Audio && l.standard.is_none())
                    .and_then(|l| l.standard_setup.formats.first())
                    .and_then(|f| f.1.as_deref())
            })
        };
        let Some(codec) = participants[pi].lines[li]
            .standard_setup
            .formats
            .first()
            .and_then(|f| f.1.as_deref())
        else {
            return;
        };
        for p in participants.iter().filter(|p| p.id != source.participant) {
            let wants = p.lines.iter().any(|l| {
                l.media == Media::Audio
                    && l.established
                    && l.standard
                        .as_deref()
                        .and_then(|s| s.codec.as_deref())
                        .is_some_and(|c| same_codec(c, codec))
            });
            if !wants {
                continue;
            }
            // The loudest source of that codec that is not the receiver's own.
            let loudest = self.loudest.iter().find(|s| {
                s.participant != p.id
                    && rtpmap_of(s.participant).is_some_and(|m| same_codec(m, codec))
            });
            if loudest == Some(&source) {
                self.transcrypt_to.push(p.id);
            }
        }
    }

    /// A verified packet to the transcrypt leg of `receiver` on `media`: opened with the
    /// sender's key, restamped into the leg's one stream, protected per hop.
    pub(super) fn transcrypt_out(
        &mut self,
        now: Instant,
        receiver: ParticipantId,
        media: Media,
        data: &[u8],
        v: &Verified,
        out: &mut TxBatch,
    ) {
        let Ok(n) = self.forwarder.open(data, v, &mut self.transcrypt_buf) else {
            return;
        };
        let buf = &self.transcrypt_buf[..n];
        let Ok(hdr) = RtpHeader::parse(buf) else {
            return;
        };
        let Some(l) = self
            .participants
            .iter_mut()
            .find(|p| p.id == receiver)
            .and_then(|p| {
                p.lines
                    .iter_mut()
                    .find(|l| l.media == media && l.standard.is_some())
            })
        else {
            return;
        };
        let s = l.standard.as_deref_mut().expect("found above");
        let ts = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let Some((seq, ts)) = s.out.map(now, v.ssrc(), hdr.seq, ts) else {
            return;
        };
        if !out.has_room(1) {
            return;
        }
        let payload = &buf[hdr.len..];
        let slot = out.next_slot();
        slot[0] = 0x80 | (buf[0] & 0x20);
        slot[1] = (buf[1] & 0x80) | s.send_pt;
        slot[2..4].copy_from_slice(&seq.to_be_bytes());
        slot[4..8].copy_from_slice(&ts.to_be_bytes());
        slot[8..12].copy_from_slice(&s.out.ssrc().to_be_bytes());
        slot[12..12 + payload.len()].copy_from_slice(payload);
        s.out.count(payload.len());
        let len = 12 + payload.len();
        if let Some(total) = protect_media(l, &mut slot[..], len) {
            let committed = out.commit_slot(total);
            out.push(l.leg, committed);
            l.count_sent(total);
        }
    }

    /// Every 20 ms while the meeting has a transcrypt leg: the mix to each standard audio
    /// endpoint, and the sender reports that are due.
    pub(super) fn standard_tick(&mut self, now: Instant, out: &mut TxBatch) {
        let Some(due) = self.next_standard_tick else {
            return;
        };
        if now < due {
            return;
        }
        let any = self
            .participants
            .iter()
            .any(|p| p.lines.iter().any(|l| l.standard.is_some()));
        if !any {
            self.next_standard_tick = None;
            self.mixer = None;
            return;
        }
        let tick = Duration::from_millis(20);
        // Behind by more than a few frames (a stalled worker): start again from now.
        self.next_standard_tick = Some(if now > due + 5 * tick {
            now + tick
        } else {
            due + tick
        });
        let mut frame = [0i16; FRAME];
        if let Some(mixer) = &mut self.mixer {
            mixer.tick();
            for p in &mut self.participants {
                for l in p.lines.iter_mut().filter(|l| l.established) {
                    let Some(s) = l.standard.as_deref_mut() else {
                        continue;
                    };
                    let Some(law) = s.law else { continue };
                    if !out.has_room(1) {
                        continue;
                    }
                    mixer.mix_for(p.id, &mut frame);
                    s.mix_seq = s.mix_seq.wrapping_add(1);
                    s.mix_ts = s.mix_ts.wrapping_add(FRAME as u32);
                    let Some((seq, ts)) = s.out.map(now, MIX_SOURCE, s.mix_seq, s.mix_ts) else {
                        continue;
                    };
                    let slot = out.next_slot();
                    slot[0] = 0x80;
                    slot[1] = s.send_pt;
                    slot[2..4].copy_from_slice(&seq.to_be_bytes());
                    slot[4..8].copy_from_slice(&ts.to_be_bytes());
                    slot[8..12].copy_from_slice(&s.out.ssrc().to_be_bytes());
                    for (o, x) in slot[12..12 + FRAME].iter_mut().zip(frame) {
                        *o = law.encode(x);
                    }
                    s.out.count(FRAME);
                    if let Some(total) = protect_media(l, &mut slot[..], 12 + FRAME) {
                        let committed = out.commit_slot(total);
                        out.push(l.leg, committed);
                        l.count_sent(total);
                    }
                }
            }
        }
        for p in &mut self.participants {
            for l in &mut p.lines {
                let Some(s) = l.standard.as_deref_mut() else {
                    continue;
                };
                if now < s.next_sr {
                    continue;
                }
                s.next_sr = now + SR_INTERVAL;
                let Some((rtp_ts, packets, octets)) = s.out.report(now) else {
                    continue;
                };
                let (ssrc, ntp) = (s.out.ssrc(), s.ntp(now));
                send_rtcp(l, out, |b| {
                    rtcp::sender_report(b, ssrc, ntp, rtp_ts, packets, octets)
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{codec_id, same_codec};

    #[test]
    fn codecs_are_the_same_by_name_and_clock() {
        assert!(same_codec("AAC-LD/48000", "aac-ld/48000"));
        assert!(same_codec("opus/48000/2", "OPUS/48000"));
        assert!(same_codec(&codec_id("opus/48000/2"), "opus/48000"));
        assert!(!same_codec("opus/48000", "opus/16000"));
        assert!(!same_codec("PCMU/8000", "PCMA/8000"));
        assert!(!same_codec("", "PCMA/8000"));
    }
}

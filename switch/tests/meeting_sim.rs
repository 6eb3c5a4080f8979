//! A meeting driven in virtual time without sockets: three TIP endpoints (one with 3
//! screens, two with 1) negotiate TIP over per-hop SRTCP, receive SPIMAP, announce their
//! keys in EKT, and send EKT-keyed audio (activity byte) and video (IDR flag). Asserts:
//! receivers decrypt what they get with the sender's key and the payload is what was sent;
//! the appended byte is gone; CSRC positions are right; the shown speaker follows the
//! loudest after the hold time and only at an IDR; forged and replayed packets never
//! arrive; no one receives their own media.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use ekt::kek::EktCipher;
use ekt::{ParameterSet, Spi, SrtpProfile};
use switch::forward::{TipCsrc, TxBatch};
use switch::meeting::switching::{Mode, SwitchingConfig};
use switch::meeting::{HopKeys, LegId, LineSetup, Meeting, MeetingEvent};
use switch::srtp::{MasterKey, SrtpContext, Suite, TipEktSender};
use switch::tip::muxctrl::{self, MuxCtrl};
use switch::tip::negotiation::{GroupParams, LineConfig, Media};
use switch::tip::simple::encode_ack;
use switch::tip::{TipPacket, mediaopts};

const HOP: Suite = Suite::AesCm128HmacSha1_80;
const AUDIO_SPI: u16 = 0x0101;
const VIDEO_SPI: u16 = 0x0103;
const SALT: [u8; 14] = [0x5a; 14];

fn group(spi: u16) -> GroupParams {
    GroupParams {
        spi,
        salt: SALT,
        kek: [spi as u8; 16],
    }
}

fn params(spi: u16) -> ParameterSet {
    ParameterSet::new(
        EktCipher::AesEcb128,
        &[spi as u8; 16],
        SrtpProfile::AesCm128HmacSha1_80,
        &SALT,
    )
    .unwrap()
}

fn hop_ctx(seed: u8) -> SrtpContext {
    SrtpContext::new(HOP, &MasterKey::new(HOP, &[seed; 16], &[seed; 14]).unwrap())
}

fn sender_key(ssrc: u32) -> [u8; 16] {
    let b = ssrc.to_be_bytes();
    [
        b[0], b[1], b[2], b[3], 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    ]
}

/// One media line of a simulated endpoint.
struct EpLine {
    leg: LegId,
    media: Media,
    control_ssrc: u32,
    /// Endpoint -> switch per-hop context, and switch -> endpoint.
    hop_tx: SrtpContext,
    hop_rx: SrtpContext,
    established: bool,
    /// Sources on this line: (position, ssrc, sender).
    sources: Vec<(u8, u32, TipEktSender, u16)>,
    /// Refresh requested per ssrc: frames until the IDR (an encoder takes a few frames).
    refresh: HashMap<u32, u8>,
}

struct Endpoint {
    id: u32,
    lines: Vec<EpLine>,
    /// What arrived: (media, sender ssrc, seq, CSRC, when).
    received: Vec<(Media, u32, u16, u32, Instant)>,
    /// Per sender ssrc: the receiving SRTP context (keyed with the sender's key).
    rx: HashMap<u32, SrtpContext>,
}

fn seed(leg: LegId, dir: u8) -> u8 {
    (leg as u8).wrapping_mul(7).wrapping_add(dir)
}

impl Endpoint {
    fn new(id: u32, screens: u8) -> Self {
        let positions: &[u8] = if screens == 3 { &[1, 2, 3] } else { &[1] };
        let lines = [Media::Audio, Media::Video]
            .into_iter()
            .enumerate()
            .map(|(i, media)| {
                let leg = id * 10 + i as u32;
                let spi = if media == Media::Audio {
                    AUDIO_SPI
                } else {
                    VIDEO_SPI
                };
                let sources = positions
                    .iter()
                    .map(|&pos| {
                        let ssrc = id << 16 | (i as u32) << 8 | u32::from(pos);
                        let tx =
                            TipEktSender::new(&sender_key(ssrc), &params(spi), Spi(spi)).unwrap();
                        (pos, ssrc, tx, 0u16)
                    })
                    .collect();
                EpLine {
                    leg,
                    media,
                    control_ssrc: 0xc000_0000 | leg,
                    hop_tx: hop_ctx(seed(leg, 1)),
                    hop_rx: hop_ctx(seed(leg, 2)),
                    established: false,
                    sources,
                    refresh: HashMap::new(),
                }
            })
            .collect();
        Self {
            id,
            lines,
            received: Vec::new(),
            rx: HashMap::new(),
        }
    }

    fn setup(&self, called: &str) -> Vec<LineSetup> {
        self.lines
            .iter()
            .map(|l| {
                let mut config = LineConfig::new(l.media, 0x5000_0000 | l.leg, called);
                config.group = Some(group(if l.media == Media::Audio {
                    AUDIO_SPI
                } else {
                    VIDEO_SPI
                }));
                config.positions = if l.sources.len() == 3 { 0b1110 } else { 0b10 };
                LineSetup {
                    leg: l.leg,
                    hop: HopKeys {
                        inbound: hop_ctx(seed(l.leg, 1)),
                        outbound: hop_ctx(seed(l.leg, 2)),
                    },
                    config,
                }
            })
            .collect()
    }
}

fn protect_hop(line: &mut EpLine, plain: &[u8]) -> Vec<u8> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + 64, 0);
    let n = line.hop_tx.protect_rtcp(&mut buf, plain.len()).unwrap();
    buf.truncate(n);
    buf
}

struct Sim {
    now: Instant,
    meeting: Meeting,
    endpoints: Vec<Endpoint>,
    out: TxBatch,
    /// (ssrc, seq) of packets flagged as the first packet of an IDR.
    idr: HashSet<(u32, u16)>,
    events: Vec<MeetingEvent>,
}

impl Sim {
    fn deliver_outputs(&mut self) {
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
                let ep = self
                    .endpoints
                    .iter_mut()
                    .find(|e| e.lines.iter().any(|l| l.leg == leg))
                    .unwrap();
                let own: HashSet<u32> = ep
                    .lines
                    .iter()
                    .flat_map(|l| l.sources.iter().map(|s| s.1))
                    .collect();
                let line = ep.lines.iter_mut().find(|l| l.leg == leg).unwrap();
                if bytes[1] >= 192 && bytes[1] <= 223 {
                    // Per-hop TIP from the switch, or a forwarded EKT SDES packet.
                    let mut b = bytes.clone();
                    if let Ok(n) = line.hop_rx.unprotect_rtcp(&mut b) {
                        for p in switch::rtp::rtcp_packets(&b[..n]) {
                            let Ok(tip) = TipPacket::decode(p) else {
                                continue;
                            };
                            if let Some((subtype, _, ntp)) = tip.request_id() {
                                let mut ack = [0u8; 20];
                                encode_ack(subtype, line.control_ssrc, ntp, &mut ack).unwrap();
                                replies.push((leg, protect_hop(line, &ack)));
                            }
                            match tip {
                                TipPacket::MuxCtrl(_) => {
                                    let flag = if line.media == Media::Audio {
                                        mediaopts::ACTIVITY_METRIC
                                    } else {
                                        mediaopts::REFRESH_FLAG
                                    };
                                    let h = switch::tip::AppHeader {
                                        subtype: mediaopts::SUBTYPE,
                                        ssrc: line.control_ssrc,
                                        ntp: 9,
                                    };
                                    let streams: Vec<_> = line
                                        .sources
                                        .iter()
                                        .map(|s| mediaopts::StreamOptions {
                                            ssrc: s.1,
                                            xmit: mediaopts::EKT | flag,
                                            rcv: mediaopts::EKT,
                                        })
                                        .collect();
                                    let m = mediaopts::MediaOpts::new(h, &streams).unwrap();
                                    let mut buf = vec![0u8; m.encoded_len()];
                                    m.encode(&mut buf).unwrap();
                                    replies.push((leg, protect_hop(line, &buf)));
                                }
                                TipPacket::Spimap(s) => {
                                    assert_eq!(
                                        (s.spi, s.kek),
                                        (group(s.spi).spi, group(s.spi).kek)
                                    );
                                    line.established = true;
                                }
                                TipPacket::Refresh(r) => {
                                    line.refresh.entry(r.target).or_insert(3);
                                }
                                _ => {}
                            }
                        }
                    }
                    continue;
                }
                // Forwarded media: decrypt with the sender's key.
                let ssrc = u32::from_be_bytes(bytes[8..12].try_into().unwrap());
                assert!(
                    !own.contains(&ssrc),
                    "endpoint {} received its own media",
                    ep.id
                );
                let spi = if line.media == Media::Audio {
                    AUDIO_SPI
                } else {
                    VIDEO_SPI
                };
                let rx = ep.rx.entry(ssrc).or_insert_with(|| {
                    SrtpContext::new(
                        HOP,
                        &MasterKey::new(HOP, &sender_key(ssrc), &params(spi).master_salt()[..14])
                            .unwrap(),
                    )
                });
                let mut b = bytes.clone();
                let (len, x) = rx
                    .unprotect_rtp_tip(&mut b, false)
                    .expect("forwarded media decrypts with the sender's key");
                assert_eq!(x, None);
                let seq = u16::from_be_bytes([b[2], b[3]]);
                let csrc = u32::from_be_bytes(b[12..16].try_into().unwrap());
                assert_eq!(
                    &b[16..len],
                    &payload(ssrc, seq, line.media)[..],
                    "payload intact"
                );
                ep.received.push((line.media, ssrc, seq, csrc, now));
            }
            for (leg, bytes) in replies {
                self.meeting
                    .handle_datagram(self.now, leg, &bytes, &mut self.out);
            }
        }
    }

    fn send(&mut self, leg: LegId, bytes: &[u8]) {
        self.meeting
            .handle_datagram(self.now, leg, bytes, &mut self.out);
        self.deliver_outputs();
    }

    fn advance(&mut self, d: Duration) {
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

    /// One 20 ms tick of media: audio from every source with `levels[endpoint]`, and a
    /// video frame (two packets) from every video source every other tick.
    fn media_tick(&mut self, levels: &[u8], video: bool) {
        let mut packets = Vec::new();
        for (ei, ep) in self.endpoints.iter_mut().enumerate() {
            for line in ep.lines.iter_mut().filter(|l| l.established) {
                let media = line.media;
                if media == Media::Video && !video {
                    continue;
                }
                for (pos, ssrc, tx, seq) in &mut line.sources {
                    let refresh = match line.refresh.get_mut(ssrc) {
                        Some(0) => line.refresh.remove(ssrc).is_some(),
                        Some(n) => {
                            *n -= 1;
                            false
                        }
                        None => false,
                    };
                    let count = if media == Media::Video { 2 } else { 1 };
                    for k in 0..count {
                        *seq = seq.wrapping_add(1);
                        let mut buf = vec![0u8; 1500];
                        let csrc = TipCsrc {
                            clock_id: 0x777,
                            output: *pos,
                            source: *pos,
                            sink: *pos,
                        }
                        .to_u32();
                        buf[0] = 0x81;
                        buf[1] = if media == Media::Audio { 96 } else { 112 };
                        buf[2..4].copy_from_slice(&seq.to_be_bytes());
                        buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
                        buf[12..16].copy_from_slice(&csrc.to_be_bytes());
                        let p = payload(*ssrc, *seq, media);
                        buf[16..16 + p.len()].copy_from_slice(&p);
                        let (x, full) = match media {
                            Media::Audio => (levels[ei] + *pos, *seq % 3 == 0),
                            // An IDR on request, and every 50 frames anyway.
                            Media::Video => {
                                (u8::from(k == 0 && (refresh || *seq % 100 == 1)), k == 0)
                            }
                        };
                        if media == Media::Video && x == 1 {
                            self.idr.insert((*ssrc, *seq));
                        }
                        let n = tx
                            .protect_rtp(&mut buf, 16 + p.len(), Some(x), full)
                            .unwrap();
                        buf.truncate(n);
                        packets.push((line.leg, buf));
                    }
                }
            }
        }
        for (leg, p) in packets {
            self.send(leg, &p);
        }
        self.advance(Duration::from_millis(20));
    }
}

fn payload(ssrc: u32, seq: u16, media: Media) -> Vec<u8> {
    let n = if media == Media::Audio { 40 } else { 200 };
    (0..n)
        .map(|i| (ssrc as u8) ^ (seq as u8) ^ (i as u8))
        .collect()
}

#[test]
fn three_endpoints_negotiate_switch_and_receive_what_was_sent() {
    let mut meeting = Meeting::new(
        SwitchingConfig {
            mode: Mode::Site,
            ..SwitchingConfig::default()
        },
        64,
    );
    meeting
        .forwarder_mut()
        .registry_mut()
        .insert(Spi(AUDIO_SPI), params(AUDIO_SPI))
        .unwrap();
    meeting
        .forwarder_mut()
        .registry_mut()
        .insert(Spi(VIDEO_SPI), params(VIDEO_SPI))
        .unwrap();
    let mut sim = Sim {
        now: Instant::now(),
        meeting,
        endpoints: vec![
            Endpoint::new(1, 3),
            Endpoint::new(2, 1),
            Endpoint::new(3, 1),
        ],
        out: TxBatch::new(512, 2048),
        idr: HashSet::new(),
        events: Vec::new(),
    };
    for i in 0..3 {
        let (id, screens) = (
            sim.endpoints[i].id,
            sim.endpoints[i].lines[0].sources.len() as u8,
        );
        let setup = sim.endpoints[i].setup("4000");
        sim.meeting.add_participant(sim.now, id, screens, setup);
    }
    sim.deliver_outputs();
    // Each endpoint sends its MUXCTRL on each line.
    for i in 0..3 {
        for li in 0..2 {
            let line = &mut sim.endpoints[i].lines[li];
            let m = MuxCtrl {
                ssrc: line.control_ssrc,
                version: 8,
                profile: muxctrl::PROFILE_SECURE,
                options: 0,
                num_xmit: line.sources.len() as u8,
                num_rcv: line.sources.len() as u8,
                ntp: 1,
                conf_id: 0,
                xmit_positions: 0,
                rcv_positions: 0,
                shared_positions: 0,
            };
            let mut b = [0u8; 40];
            m.encode(&mut b).unwrap();
            let p = protect_hop(line, &b);
            let leg = line.leg;
            sim.send(leg, &p);
        }
    }
    sim.advance(Duration::from_millis(300));
    let established = sim
        .events
        .iter()
        .filter(|e| matches!(e, MeetingEvent::LineEstablished { .. }))
        .count();
    assert_eq!(established, 6, "{:?}", sim.events);
    assert!(
        sim.endpoints
            .iter()
            .all(|e| e.lines.iter().all(|l| l.established))
    );

    // B (2) talks: shown to everyone after it takes the floor (at once: silent meeting).
    for _ in 0..50 {
        sim.media_tick(&[5, 60, 5], true);
    }
    assert!(sim.events.contains(&MeetingEvent::SpeakerChanged(Some(2))));
    let a_video_from_b: Vec<_> = sim.endpoints[0]
        .received
        .iter()
        .filter(|r| r.0 == Media::Video && r.1 >> 16 == 2)
        .collect();
    assert!(!a_video_from_b.is_empty(), "A sees B");
    let first = a_video_from_b[0];
    assert!(
        sim.idr.contains(&(first.1, first.2)),
        "A's first picture of B starts at an IDR"
    );
    assert_eq!(
        TipCsrc::from_u32(first.3).output,
        1,
        "B on A's center screen"
    );

    // C (3) gets louder: B stays for the hold time, then C is shown, from an IDR on.
    let switch_start = sim.now;
    for _ in 0..150 {
        sim.media_tick(&[5, 20, 80], true);
    }
    assert_eq!(
        sim.events
            .iter()
            .rev()
            .find_map(|e| if let MeetingEvent::SpeakerChanged(s) = e {
                Some(*s)
            } else {
                None
            }),
        Some(Some(3))
    );
    let a_video_from_c: Vec<_> = sim.endpoints[0]
        .received
        .iter()
        .filter(|r| r.0 == Media::Video && r.1 >> 16 == 3)
        .collect();
    let first = a_video_from_c[0];
    assert!(
        sim.idr.contains(&(first.1, first.2)),
        "the switch to C happens at an IDR"
    );
    assert!(
        first.4.duration_since(switch_start) >= Duration::from_secs(2),
        "not before the hold time"
    );
    assert!(
        first.4.duration_since(switch_start) < Duration::from_secs(3),
        "soon after it"
    );
    // The speaker (C) sees the previous speaker (B).
    let c_sees: HashSet<u32> = sim.endpoints[2]
        .received
        .iter()
        .rev()
        .take(20)
        .filter(|r| r.0 == Media::Video)
        .map(|r| r.1 >> 16)
        .collect();
    assert_eq!(c_sees, HashSet::from([2]));

    // A (3 screens) talks with its right camera loudest: B (1 screen) sees A's right camera
    // on its center screen; C too; audio of A's right mic arrives at B.
    for _ in 0..150 {
        sim.media_tick(&[90, 5, 5], true);
    }
    let b_recent: Vec<_> = sim.endpoints[1]
        .received
        .iter()
        .rev()
        .take(30)
        .filter(|r| r.0 == Media::Video)
        .copied()
        .collect();
    assert!(!b_recent.is_empty());
    for r in &b_recent {
        assert_eq!(r.1 >> 16, 1, "B sees A");
        let c = TipCsrc::from_u32(r.3);
        assert_eq!(
            (c.output, c.sink, c.source),
            (1, 1, (r.1 & 0xff) as u8),
            "on B's center, source position kept"
        );
    }

    // A's right microphone is heard by B (1 speaker) on center, by nobody at A.
    let a_right_mic = sim.endpoints[0].lines[0].sources[2].1;
    let heard: Vec<_> = sim.endpoints[1]
        .received
        .iter()
        .filter(|r| r.1 == a_right_mic)
        .collect();
    assert!(!heard.is_empty(), "B hears A's right microphone");
    assert!(heard.iter().all(|r| TipCsrc::from_u32(r.3).output == 1));
    // Every endpoint got media, and every packet's payload was checked on arrival.
    for e in &sim.endpoints {
        assert!(
            e.received.len() > 100,
            "endpoint {} received {}",
            e.id,
            e.received.len()
        );
    }

    // Forged and replayed packets never arrive.
    let before: usize = sim.endpoints.iter().map(|e| e.received.len()).sum();
    let line = &mut sim.endpoints[1].lines[0];
    let (_, ssrc, tx, seq) = &mut line.sources[0];
    let mut buf = vec![0u8; 200];
    buf[0] = 0x81;
    buf[1] = 96;
    *seq += 1;
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    let n = tx.protect_rtp(&mut buf, 56, Some(90), true).unwrap();
    let genuine = buf[..n].to_vec();
    let mut forged = genuine.clone();
    forged[30] ^= 1;
    let leg = line.leg;
    sim.send(leg, &forged);
    sim.send(leg, &genuine);
    sim.send(leg, &genuine);
    let after: usize = sim.endpoints.iter().map(|e| e.received.len()).sum();
    assert!(
        after - before <= 2,
        "at most the genuine packet, once, to the two others"
    );
    let stats = sim.meeting.forwarder().stats();
    assert!(stats.dropped(switch::forward::DropReason::AuthFailed) >= 1);
    assert!(stats.dropped(switch::forward::DropReason::Replayed) >= 1);
    // Another participant's SSRC on B's leg is refused.
    let a_ssrc = sim.endpoints[0].lines[0].sources[0].1;
    let mut stolen = genuine.clone();
    stolen[8..12].copy_from_slice(&a_ssrc.to_be_bytes());
    sim.send(leg, &stolen);
    assert_eq!(sim.meeting.stats().ssrc_on_wrong_leg, 1);
}

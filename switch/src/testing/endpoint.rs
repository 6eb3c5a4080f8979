//! The simulated TIP endpoint and the keys the simulations share.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use ekt::kek::EktCipher;
use ekt::{ParameterSet, Spi, SrtpProfile};

use crate::dtls::{DtlsEvent, DtlsIdentity, DtlsSession, DtlsSettings, Role};
use crate::forward::TipCsrc;
use crate::meeting::{HopKeying, HopKeys, LegId, LineSetup, RtcpLeg, StandardSetup};
use crate::srtp::{MasterKey, SrtpContext, Suite, TipEktSender};
use crate::tip::muxctrl::{self, MuxCtrl};
use crate::tip::negotiation::{GroupParams, LineConfig, Media};
use crate::tip::simple::encode_ack;
use crate::tip::{TipPacket, mediaopts};

/// The per-hop suite of the simulated lines.
pub const HOP: Suite = Suite::AesCm128HmacSha1_80;
/// The audio line's group SPI.
pub const AUDIO_SPI: u16 = 0x0101;
/// The video line's group SPI.
pub const VIDEO_SPI: u16 = 0x0103;
/// The group master salt.
pub const SALT: [u8; 14] = [0x5a; 14];

/// The group parameters of `spi` (KEK derived from the SPI).
pub fn group(spi: u16) -> GroupParams {
    GroupParams {
        spi,
        salt: SALT,
        kek: [spi as u8; 16],
    }
}

/// The group parameters of a `media` line (its SPI: [`AUDIO_SPI`] or [`VIDEO_SPI`]).
pub fn group_of(media: Media) -> GroupParams {
    group(if media == Media::Audio {
        AUDIO_SPI
    } else {
        VIDEO_SPI
    })
}

/// The EKT parameter set of a SPIMAP's salt and KEK (TIP's profile and cipher).
fn params_of(salt: &[u8; 14], kek: &[u8; 16]) -> Option<ParameterSet> {
    ParameterSet::new(
        EktCipher::AesEcb128,
        kek,
        SrtpProfile::AesCm128HmacSha1_80,
        salt,
    )
    .ok()
}

/// The EKT parameter set of `spi`.
pub fn params(spi: u16) -> ParameterSet {
    ParameterSet::new(
        EktCipher::AesEcb128,
        &[spi as u8; 16],
        SrtpProfile::AesCm128HmacSha1_80,
        &SALT,
    )
    .unwrap()
}

/// A per-hop context keyed from `seed`.
pub fn hop_ctx(seed: u8) -> SrtpContext {
    SrtpContext::new(HOP, &MasterKey::new(HOP, &[seed; 16], &[seed; 14]).unwrap())
}

/// The master key a simulated source uses.
pub fn sender_key(ssrc: u32) -> [u8; 16] {
    let b = ssrc.to_be_bytes();
    [
        b[0], b[1], b[2], b[3], 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    ]
}

/// One media line of a simulated endpoint.
#[allow(missing_docs)]
pub struct EpLine {
    pub leg: LegId,
    /// Without rtcp-mux: the line's RTCP leg (`leg + 5`).
    pub rtcp_leg: Option<LegId>,
    pub media: Media,
    pub control_ssrc: u32,
    /// Endpoint -> switch per-hop context, and switch -> endpoint.
    pub hop_tx: SrtpContext,
    pub hop_rx: SrtpContext,
    pub established: bool,
    /// DTLS mode: the endpoint's (active) handshake with the switch.
    pub dtls: Option<DtlsSession>,
    /// DTLS mode without rtcp-mux: the RTCP leg's own association (RFC 5764 §4.1).
    pub rtcp_dtls: Option<DtlsSession>,
    /// Sources on this line: (position, ssrc, sender).
    pub sources: Vec<(u8, u32, TipEktSender, u16)>,
    /// Refresh requested per ssrc: frames until the IDR (an encoder takes a few frames).
    pub refresh: HashMap<u32, u8>,
    /// The group parameters the last SPIMAP gave: (SPI, salt, KEK).
    pub group: Option<(u16, [u8; 14], [u8; 16])>,
    /// The SRTP profile the DTLS handshake chose.
    pub dtls_suite: Option<Suite>,
    /// Non-secure: plain RTP and RTCP, TIP without EKT (a non-secure meeting).
    pub plain: bool,
    /// The security icon the switch's last NOTIFY showed (R40).
    pub security_icon: Option<bool>,
}

/// A simulated TIP endpoint.
#[allow(missing_docs)]
pub struct Endpoint {
    pub id: u32,
    pub lines: Vec<EpLine>,
    /// What arrived: (media, sender ssrc, seq, CSRC, when).
    pub received: Vec<(Media, u32, u16, u32, Instant)>,
    /// Per sender ssrc: the receiving SRTP context (keyed with the sender's key).
    pub rx: HashMap<u32, SrtpContext>,
    /// End-to-end SRTCP (not per-hop) that arrived: (leg, bytes).
    pub end_to_end_rtcp: Vec<(LegId, Vec<u8>)>,
    /// Whether SPIMAP must carry the simulator's fixed group parameters ([`group`]); a
    /// switch that makes its own (mswitch run) clears it, and the endpoint adopts them.
    pub expect_test_group: bool,
    /// Never acknowledge SPIMAP (a faulty endpoint: the switch's SPIMAP deadline fires).
    pub ignore_spimap: bool,
    /// Never acknowledge the switch's MUXCTRL (an endpoint that starts TIP and does not
    /// finish it: the MUXCTRL deadline fires).
    pub ignore_muxctrl: bool,
    /// Media from senders that are not simulated TIP sources (transcrypt legs' media, re-
    /// protected by the switch), decrypted: (media, ssrc, seq, payload).
    pub foreign: Vec<(Media, u32, u16, Vec<u8>)>,
    /// Packets from an unknown sender before its first full EKT tag (not decryptable).
    pub unknown_key: u64,
}

fn seed(leg: LegId, dir: u8) -> u8 {
    (leg as u8).wrapping_mul(7).wrapping_add(dir)
}

impl Endpoint {
    /// An endpoint with 1 or 3 screens; its legs are `id * 10` (audio) and `id * 10 + 1`.
    pub fn new(id: u32, screens: u8) -> Self {
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
                    rtcp_leg: None,
                    media,
                    control_ssrc: 0xc000_0000 | leg,
                    hop_tx: hop_ctx(seed(leg, 1)),
                    hop_rx: hop_ctx(seed(leg, 2)),
                    established: false,
                    dtls: None,
                    rtcp_dtls: None,
                    group: None,
                    dtls_suite: None,
                    plain: false,
                    security_icon: None,
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
            end_to_end_rtcp: Vec::new(),
            expect_test_group: true,
            ignore_spimap: false,
            ignore_muxctrl: false,
            foreign: Vec::new(),
            unknown_key: 0,
        }
    }

    /// The same endpoint, non-secure: plain RTP/RTCP, TIP with the non-secure profile.
    pub fn non_secure(mut self) -> Self {
        for l in &mut self.lines {
            l.plain = true;
        }
        self
    }

    /// The endpoint after the switch's re-INVITE to RTP/AVP (a Best-Effort downgrade,
    /// R38): its lines drop DTLS and the per-hop keys, send plain RTP and run TIP again
    /// without EKT.
    pub fn downgrade(&mut self) {
        for l in &mut self.lines {
            l.plain = true;
            l.dtls = None;
            l.rtcp_dtls = None;
            l.dtls_suite = None;
            l.group = None;
            l.established = false;
        }
    }

    /// The same endpoint without rtcp-mux: each line's RTCP has its own leg, `leg + 5`.
    pub fn without_rtcp_mux(mut self) -> Self {
        for l in &mut self.lines {
            l.rtcp_leg = Some(l.leg + 5);
        }
        self
    }

    /// The meeting-side setup of its lines.
    pub fn setup(&self, called: &str) -> Vec<LineSetup> {
        self.setup_with(called, None, Instant::now())
    }

    /// The meeting-side setup of its lines; with `dtls` (the switch's identity) each line
    /// is keyed by a DTLS-SRTP handshake instead of SDES, and the endpoint starts its own
    /// (active) side.
    pub fn setup_with(
        &self,
        called: &str,
        dtls: Option<(&Arc<DtlsIdentity>, &Arc<DtlsIdentity>)>,
        now: Instant,
    ) -> Vec<LineSetup> {
        self.lines
            .iter()
            .map(|l| {
                let mut config = LineConfig::new(l.media, 0x5000_0000 | l.leg, called);
                config.group = Some(group_of(l.media));
                config.positions = if l.sources.len() == 3 { 0b1110 } else { 0b10 };
                let passive = |leg: LegId| {
                    dtls.map(|(switch_id, endpoint_id)| {
                        Box::new(DtlsSession::new(
                            now,
                            switch_id.clone(),
                            DtlsSettings::default(),
                            Role::Passive,
                            switch_addr(leg),
                            endpoint_addr(leg),
                            Some(endpoint_id.fingerprint()),
                        ))
                    })
                };
                if l.plain {
                    config.group = None;
                }
                let keying = match passive(l.leg) {
                    None if l.plain => HopKeying::Plain,
                    None => HopKeying::Sdes(Box::new(HopKeys {
                        inbound: hop_ctx(seed(l.leg, 1)),
                        outbound: hop_ctx(seed(l.leg, 2)),
                    })),
                    Some(session) => HopKeying::Dtls(session),
                };
                LineSetup {
                    leg: l.leg,
                    keying,
                    config,
                    rtcp: l.rtcp_leg.map(|leg| RtcpLeg {
                        leg,
                        dtls: passive(leg),
                    }),
                    // What its SDP offers (tools/endpoint.rs): AAC-LD and H.264.
                    standard: StandardSetup {
                        detect_after: None,
                        formats: vec![match l.media {
                            Media::Audio => (96, Some("AAC-LD/48000".to_owned())),
                            Media::Video => (112, Some("H264/90000".to_owned())),
                        }],
                        audio_level_ext: None,
                    },
                }
            })
            .collect()
    }
}

/// The switch's address for a leg (the simulation has no sockets; DTLS wants addresses).
pub(super) fn switch_addr(leg: LegId) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 20000 + leg as u16))
}

/// An endpoint's address for a leg.
pub(super) fn endpoint_addr(leg: LegId) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 2], 30000 + leg as u16))
}

impl Endpoint {
    /// A datagram from the switch on `leg`: DTLS is handshaken, per-hop TIP is answered
    /// (ACKs, MEDIAOPTS after MUXCTRL, IDR some frames after REFRESH), media is decrypted
    /// with the sender's key and checked. Returns the datagrams to send back.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        leg: LegId,
        bytes: &[u8],
    ) -> Vec<(LegId, Vec<u8>)> {
        let mut replies = Vec::new();
        let own: HashSet<u32> = self
            .lines
            .iter()
            .flat_map(|l| l.sources.iter().map(|s| s.1))
            .collect();
        let Some(line) = self
            .lines
            .iter_mut()
            .find(|l| l.leg == leg || l.rtcp_leg == Some(leg))
        else {
            return replies;
        };
        let on_rtcp_leg = line.rtcp_leg == Some(leg);
        let rtcp_leg = line.rtcp_leg.unwrap_or(line.leg);
        if (20..=63).contains(&bytes[0]) {
            // DTLS from the switch (RFC 7983).
            let session = if on_rtcp_leg {
                &mut line.rtcp_dtls
            } else {
                &mut line.dtls
            };
            if let Some(d) = session {
                d.handle_datagram(now, bytes);
                while let Some(dg) = d.poll_transmit() {
                    replies.push((leg, dg));
                }
            }
            return replies;
        }
        let is_rtcp = bytes[1] >= 192 && bytes[1] <= 223;
        assert!(
            line.rtcp_leg.is_none() || is_rtcp == on_rtcp_leg,
            "endpoint {}: {} arrived on the wrong leg {leg}",
            self.id,
            if is_rtcp { "RTCP" } else { "RTP" },
        );
        if is_rtcp {
            // Per-hop TIP from the switch, or a forwarded EKT SDES packet.
            let mut b = bytes.to_vec();
            let opened = if line.plain {
                Ok(b.len())
            } else {
                line.hop_rx.unprotect_rtcp(&mut b)
            };
            let Ok(n) = opened else {
                self.end_to_end_rtcp.push((leg, bytes.to_vec()));
                return replies;
            };
            for p in crate::rtp::rtcp_packets(&b[..n]) {
                let Ok(tip) = TipPacket::decode(p) else {
                    return replies;
                };
                let ignored = self.ignore_spimap && matches!(tip, TipPacket::Spimap(_))
                    || self.ignore_muxctrl && matches!(tip, TipPacket::MuxCtrl(_));
                if let Some((subtype, _, ntp)) = tip.request_id().filter(|_| !ignored) {
                    let mut ack = [0u8; 20];
                    encode_ack(subtype, line.control_ssrc, ntp, &mut ack).unwrap();
                    replies.push((rtcp_leg, protect_hop(line, &ack)));
                }
                match tip {
                    TipPacket::MuxCtrl(_) => {
                        let flag = if line.media == Media::Audio {
                            mediaopts::ACTIVITY_METRIC
                        } else {
                            mediaopts::REFRESH_FLAG
                        };
                        let h = crate::tip::AppHeader {
                            subtype: mediaopts::SUBTYPE,
                            ssrc: line.control_ssrc,
                            ntp: 9,
                        };
                        let streams: Vec<_> = line
                            .sources
                            .iter()
                            .map(|s| mediaopts::StreamOptions {
                                ssrc: s.1,
                                xmit: if line.plain {
                                    flag
                                } else {
                                    mediaopts::EKT | flag
                                },
                                rcv: if line.plain { 0 } else { mediaopts::EKT },
                            })
                            .collect();
                        let m = mediaopts::MediaOpts::new(h, &streams).unwrap();
                        let mut buf = vec![0u8; m.encoded_len()];
                        m.encode(&mut buf).unwrap();
                        replies.push((rtcp_leg, protect_hop(line, &buf)));
                    }
                    TipPacket::Spimap(_) if ignored => {}
                    TipPacket::Spimap(s) => {
                        if self.expect_test_group {
                            assert_eq!((s.spi, s.kek), (group(s.spi).spi, group(s.spi).kek));
                        }
                        adopt_group(line, s.spi, s.salt, s.kek);
                        line.established = true;
                    }
                    TipPacket::Refresh(r) => {
                        line.refresh.entry(r.target).or_insert(3);
                    }
                    TipPacket::Notify(n) => line.security_icon = n.security_icon,
                    // Non-secure: no SPIMAP; the switch's MEDIAOPTS ends the negotiation.
                    TipPacket::MediaOpts(_) if line.plain => line.established = true,
                    _ => {}
                }
            }
            return replies;
        }
        // Forwarded media: decrypt with the sender's key.
        let ssrc = u32::from_be_bytes(bytes[8..12].try_into().unwrap());
        assert!(
            !own.contains(&ssrc),
            "endpoint {} received its own media",
            self.id
        );
        if line.plain {
            // Plain RTP: the appended byte must be gone, the payload as sent.
            let seq = u16::from_be_bytes([bytes[2], bytes[3]]);
            let csrc = u32::from_be_bytes(bytes[12..16].try_into().unwrap());
            if !is_simulated_source(ssrc) {
                self.foreign
                    .push((line.media, ssrc, seq, bytes[16..].to_vec()));
                self.received.push((line.media, ssrc, seq, csrc, now));
                return replies;
            }
            assert_eq!(
                &bytes[16..],
                &payload(ssrc, seq, line.media)[..],
                "payload intact, appended byte gone"
            );
            self.received.push((line.media, ssrc, seq, csrc, now));
            return replies;
        }
        // Every sender of the meeting uses the group's master salt (SPIMAP). A simulated
        // source's key is known; any other sender's (a transcrypt leg's) is learned from
        // its first full EKT tag, as a TIP receiver does.
        let salt = line.group.map_or(SALT, |g| g.1);
        let simulated = is_simulated_source(ssrc);
        if !self.rx.contains_key(&ssrc) {
            let key = if simulated {
                Some(sender_key(ssrc))
            } else {
                key_from_full_tag(line, bytes)
            };
            let Some(key) = key else {
                self.unknown_key += 1;
                return replies;
            };
            self.rx.insert(
                ssrc,
                SrtpContext::new(HOP, &MasterKey::new(HOP, &key, &salt).unwrap()),
            );
        }
        let rx = self.rx.get_mut(&ssrc).expect("inserted above");
        let mut b = bytes.to_vec();
        let (len, x) = rx
            .unprotect_rtp_tip(&mut b, false)
            .expect("forwarded media decrypts with the sender's key");
        assert_eq!(x, None);
        let seq = u16::from_be_bytes([b[2], b[3]]);
        let csrc = u32::from_be_bytes(b[12..16].try_into().unwrap());
        if simulated {
            assert_eq!(
                &b[16..len],
                &payload(ssrc, seq, line.media)[..],
                "payload intact"
            );
        } else {
            self.foreign
                .push((line.media, ssrc, seq, b[16..len].to_vec()));
        }
        self.received.push((line.media, ssrc, seq, csrc, now));
        replies
    }

    /// An end-to-end SRTCP packet (RR + SDES CNAME, WIRE.md section 7) from the first
    /// source of its `media` line, with the full EKT tag: how a sender announces its key
    /// on RTCP.
    pub fn ekt_sdes(&mut self, media: Media) -> (LegId, Vec<u8>) {
        let line = self
            .lines
            .iter_mut()
            .find(|l| l.media == media)
            .expect("line");
        let (_, ssrc, tx, _) = &mut line.sources[0];
        let s = ssrc.to_be_bytes();
        let plain = [
            0x80, 0xc9, 0, 1, s[0], s[1], s[2], s[3], 0x81, 0xca, 0, 3, s[0], s[1], s[2], s[3], 1,
            3, b'a', b'b', b'c', 0, 0, 0,
        ];
        let mut buf = vec![0u8; 200];
        buf[..plain.len()].copy_from_slice(&plain);
        let n = tx.protect_rtcp(&mut buf, plain.len(), true).expect("room");
        buf.truncate(n);
        (line.rtcp_leg.unwrap_or(line.leg), buf)
    }

    /// Its MUXCTRL on every line, protected per hop: how a TIP endpoint opens negotiation.
    pub fn muxctrls(&mut self) -> Vec<(LegId, Vec<u8>)> {
        self.lines
            .iter_mut()
            .map(|line| {
                let m = MuxCtrl {
                    ssrc: line.control_ssrc,
                    version: 8,
                    profile: if line.plain {
                        0
                    } else {
                        muxctrl::PROFILE_SECURE
                    },
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
                m.encode(&mut b).expect("40 bytes");
                (line.rtcp_leg.unwrap_or(line.leg), protect_hop(line, &b))
            })
            .collect()
    }

    /// Time passed: its DTLS handshakes retransmit what was lost (a real endpoint's
    /// ClientHello can arrive before the switch reads the port).
    pub fn handle_timeout(&mut self, now: Instant) {
        for l in &mut self.lines {
            for d in [l.dtls.as_mut(), l.rtcp_dtls.as_mut()]
                .into_iter()
                .flatten()
            {
                if d.poll_timeout().is_some_and(|t| t <= now) {
                    d.handle_timeout(now);
                }
            }
        }
    }

    /// Its lines' DTLS: takes the events (adopting per-hop keys on completion) and returns
    /// the datagrams to send.
    pub fn dtls_pump(&mut self) -> Vec<(LegId, Vec<u8>)> {
        self.dtls_events();
        let mut datagrams = Vec::new();
        for l in &mut self.lines {
            let rtcp_leg = l.rtcp_leg.unwrap_or(l.leg);
            for (d, leg) in [(&mut l.dtls, l.leg), (&mut l.rtcp_dtls, rtcp_leg)] {
                if let Some(d) = d {
                    datagrams.extend(std::iter::from_fn(|| d.poll_transmit()).map(|dg| (leg, dg)));
                }
            }
        }
        datagrams
    }

    /// Starts an active DTLS handshake on every line toward the switch's `switch_id`, as
    /// `endpoint_id`.
    pub fn start_dtls(
        &mut self,
        now: Instant,
        switch_id: &Arc<DtlsIdentity>,
        endpoint_id: &Arc<DtlsIdentity>,
    ) {
        self.start_dtls_toward(now, switch_id.fingerprint(), endpoint_id);
    }

    /// Starts an active DTLS handshake on every line toward a switch known by its
    /// certificate fingerprint (from its SDP), as `endpoint_id`.
    pub fn start_dtls_toward(
        &mut self,
        now: Instant,
        switch_fingerprint: [u8; 32],
        endpoint_id: &Arc<DtlsIdentity>,
    ) {
        let active = |leg: LegId| {
            DtlsSession::new(
                now,
                endpoint_id.clone(),
                DtlsSettings::default(),
                Role::Active,
                endpoint_addr(leg),
                switch_addr(leg),
                Some(switch_fingerprint),
            )
        };
        for l in &mut self.lines {
            l.dtls = Some(active(l.leg));
            l.rtcp_dtls = l.rtcp_leg.map(active);
        }
    }

    /// Takes the DTLS events of every line: a completed handshake gives the per-hop keys.
    pub fn dtls_events(&mut self) {
        for l in &mut self.lines {
            let separate = l.rtcp_leg.is_some();
            for (d, keys_rtcp) in [(&mut l.dtls, !separate), (&mut l.rtcp_dtls, true)] {
                let Some(d) = d else { continue };
                while let Some(e) = d.poll_event() {
                    match e {
                        DtlsEvent::Connected(k) if keys_rtcp => {
                            l.dtls_suite = Some(k.suite);
                            l.hop_tx = SrtpContext::new(k.suite, &k.outbound);
                            l.hop_rx = SrtpContext::new(k.suite, &k.inbound);
                        }
                        DtlsEvent::Connected(_) => {}
                        DtlsEvent::Failed(f) => panic!("endpoint DTLS failed: {f:?}"),
                    }
                }
            }
        }
    }

    /// One 20 ms tick of this endpoint's media on its established lines; video frames
    /// when `video`. First packets of IDRs are recorded in `idr`.
    pub fn media_tick(
        &mut self,
        level: u8,
        video: bool,
        idr: &mut HashSet<(u32, u16)>,
    ) -> Vec<(LegId, Vec<u8>)> {
        let mut packets = Vec::new();
        for line in self.lines.iter_mut().filter(|l| l.established) {
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
                        // Every third audio packet carries the full tag, the first one too.
                        Media::Audio => (level + *pos, *seq % 3 == 1),
                        // An IDR on request, and every 50 frames anyway.
                        Media::Video => (u8::from(k == 0 && (refresh || *seq % 100 == 1)), k == 0),
                    };
                    if media == Media::Video && x == 1 {
                        idr.insert((*ssrc, *seq));
                    }
                    let n = if line.plain {
                        // Plain RTP with the appended byte last (ekt-spec.md §5.3).
                        buf[16 + p.len()] = x;
                        16 + p.len() + 1
                    } else {
                        tx.protect_rtp(&mut buf, 16 + p.len(), Some(x), full)
                            .expect("room")
                    };
                    buf.truncate(n);
                    packets.push((line.leg, buf));
                }
            }
        }
        packets
    }
}

/// Takes the group parameters a SPIMAP gave: the line's sources announce their keys under
/// them from now on (their sequence numbers go on).
fn adopt_group(line: &mut EpLine, spi: u16, salt: [u8; 14], kek: [u8; 16]) {
    if line.group == Some((spi, salt, kek)) {
        return;
    }
    line.group = Some((spi, salt, kek));
    let params = params_of(&salt, &kek).expect("SPIMAP sizes");
    for (_, ssrc, tx, _) in &mut line.sources {
        if let Ok(t) = TipEktSender::new(&sender_key(*ssrc), &params, Spi(spi)) {
            *tx = t;
        }
    }
}

/// Simulated sources are `id << 16 | line << 8 | position` with small ids and lines.
pub fn is_simulated_source(ssrc: u32) -> bool {
    ssrc >> 16 < 0x1000 && (ssrc >> 8) & 0xff < 2 && (1..=3).contains(&(ssrc & 0xff))
}

/// The master key a full TIP EKT tag carries, unwrapped with the line's group KEK
/// (ekt-spec.md §3.6 step 4).
pub fn key_from_full_tag(line: &EpLine, bytes: &[u8]) -> Option<[u8; 16]> {
    let hdr = crate::rtp::RtpHeader::parse(bytes).ok()?;
    let parsed = ekt::tip_tag::TipEkt::parse(bytes, hdr.len, 10, 16).ok()?;
    let ekt::tip_tag::TipEkt::Full(f) = parsed.field else {
        return None;
    };
    let (spi, salt, kek) = line.group.unwrap_or_else(|| {
        let g = group_of(line.media);
        (g.spi, g.salt, g.kek)
    });
    if f.spi != Spi(spi) {
        return None;
    }
    let set = params_of(&salt, &kek)?;
    let mut key = [0u8; 16];
    (set.kek().unwrap(f.emk, &mut key).ok()? == 16).then_some(key)
}

/// Protects a per-hop RTCP packet from the endpoint.
pub fn protect_hop(line: &mut EpLine, plain: &[u8]) -> Vec<u8> {
    if line.plain {
        return plain.to_vec();
    }
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + 64, 0);
    let n = line.hop_tx.protect_rtcp(&mut buf, plain.len()).unwrap();
    buf.truncate(n);
    buf
}

/// The payload a simulated source sends for `seq`.
pub fn payload(ssrc: u32, seq: u16, media: Media) -> Vec<u8> {
    let n = if media == Media::Audio { 40 } else { 200 };
    // The sequence number and the endpoint id first: a receiver can tell which packet of
    // which source it got (the transcrypt tests, where SSRC and sequence are rewritten).
    (0..n)
        .map(|i| match i {
            0 => (seq >> 8) as u8,
            1 => seq as u8,
            2 => (ssrc >> 16) as u8,
            _ => (ssrc as u8) ^ (seq as u8) ^ (i as u8),
        })
        .collect()
}

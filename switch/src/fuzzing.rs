//! Entry points for the cargo-fuzz targets (fuzz/) and the random-bytes smoke tests. Not API.
// Test code: it plays the driver (an in-memory DTLS pair made at the clock's now).
#![allow(clippy::disallowed_methods)]

use ekt::kek::EktCipher;
use ekt::{ParameterSet, Spi, SrtpProfile};

use crate::forward::{CsrcRewrite, Forwarder, GhashEngine, Receiver, SLOT_SIZE, TxBatch};
use crate::rtp::{RtpHeader, is_rtcp, rtcp_ssrc};
use crate::srtp::{MasterKey, SrtpContext, Suite, TipEktSender};

const KEK: [u8; 16] = [1; 16];
const SALT: [u8; 14] = [2; 14];
const SPI: Spi = Spi(0x0101);
const TIP_SSRC: u32 = 0x7000;

fn master(suite: Suite) -> MasterKey {
    MasterKey::new(suite, &vec![3; suite.key_len()], &vec![4; suite.salt_len()])
        .expect("suite lengths")
}

fn group_params() -> ParameterSet {
    ParameterSet::new(
        EktCipher::AesEcb128,
        &KEK,
        SrtpProfile::AesCm128HmacSha1_80,
        &SALT,
    )
    .expect("params")
}

fn forwarder(ghash: GhashEngine) -> Forwarder {
    let mut f = Forwarder::new(8);
    f.set_ghash_engine(ghash);
    let set = ParameterSet::new(
        EktCipher::AesEcb128,
        &KEK,
        SrtpProfile::AesCm128HmacSha1_80,
        &SALT,
    )
    .expect("params");
    f.registry_mut().insert(SPI, set).expect("fresh registry");
    for (i, suite) in Suite::ALL.into_iter().enumerate() {
        f.add_keyed_source(i as u32, suite, &master(suite))
            .expect("room");
    }
    f
}

const RECEIVERS: [Receiver; 3] = [
    Receiver {
        id: 1,
        csrc: CsrcRewrite::TipScreen(1),
    },
    Receiver {
        id: 2,
        csrc: CsrcRewrite::TipScreen(3),
    },
    Receiver {
        id: 3,
        csrc: CsrcRewrite::Keep,
    },
];

/// RTP/RTCP header parsing: never panics, never claims more than it has.
pub fn rtp_header(data: &[u8]) {
    if let Ok(h) = RtpHeader::parse(data) {
        assert!(h.len <= data.len() && h.len >= 12 + 4 * usize::from(h.csrc_count));
    }
    let _ = is_rtcp(data);
    let _ = rtcp_ssrc(data);
}

/// TIP packet decoders: never panic; what decodes re-encodes to the same bytes.
pub fn tip_packet(data: &[u8]) {
    let _ = crate::tip::AppHeader::decode(data);
    let _ = crate::tip::TipPacket::decode(data);
    for p in crate::rtp::rtcp_packets(data) {
        let _ = crate::tip::TipPacket::decode(p);
    }
    if let Ok(m) = crate::tip::muxctrl::MuxCtrl::decode(data) {
        let mut out = [0u8; 64];
        let n = m.encode(&mut out).expect("room");
        assert_eq!(
            crate::tip::muxctrl::MuxCtrl::decode(&out[..n]).map(|b| b.ntp),
            Ok(m.ntp)
        );
    }
    if let Ok(s) = crate::tip::spimap::Spimap::decode(data) {
        let mut out = [0u8; crate::tip::spimap::LEN];
        s.encode(&mut out).expect("room");
        assert_eq!(crate::tip::spimap::Spimap::decode(&out).as_ref(), Ok(&s));
    }
}

/// Every unprotect entry point of every suite over arbitrary bytes.
pub fn srtp_unprotect(data: &[u8]) {
    for suite in Suite::ALL {
        let mut ctx = SrtpContext::new(suite, &master(suite));
        let _ = ctx.unprotect_rtp(&mut data.to_vec());
        let _ = ctx.unprotect_rtcp(&mut data.to_vec());
        let _ = ctx.unprotect_rtp_tip(&mut data.to_vec(), true);
        let _ = ctx.unprotect_rtcp_tip(&mut data.to_vec());
    }
}

/// The forwarder over arbitrary bytes (must drop them), and over the fuzzer's bytes
/// properly protected by a sender (must verify and emit: a genuine packet is never lost,
/// and what is sent decrypts to the same payload under the sender's key). The mode byte's
/// top bit picks the portable GHASH engine instead of the CPU's.
pub fn forward(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let ghash = if mode & 0x80 != 0 {
        GhashEngine::Portable
    } else {
        GhashEngine::detect()
    };
    let mut f = forwarder(ghash);
    let mut out = TxBatch::new(4, 8);
    if let Ok(v) = f.verify(rest, mode & 1 == 1) {
        let _ = f.emit(rest, &v, &RECEIVERS, &mut out);
    }
    // A non-secure meeting's path: whatever parses is forwarded, one byte shorter when the
    // appended byte is negotiated, and never panics.
    out.clear();
    if let Ok(v) = f.verify_unprotected(rest, mode & 1 == 1) {
        let n = f
            .emit(rest, &v, &RECEIVERS, &mut out)
            .expect("room for the receivers");
        let stripped = usize::from(mode & 1 == 1 && !is_rtcp(rest));
        assert!(
            out.iter()
                .take(n)
                .all(|(_, b)| b.len() == rest.len() - stripped)
        );
    }
    // Protect `rest` as an RTP packet from a sender the forwarder knows.
    let Ok(hdr) = RtpHeader::parse(rest) else {
        return;
    };
    if is_rtcp(rest) || rest.len() + 64 > SLOT_SIZE {
        return;
    }
    let mut buf = vec![0u8; rest.len() + 64];
    buf[..rest.len()].copy_from_slice(rest);
    let suite_pick = usize::from(mode >> 1) % 5;
    let appended = mode & 1 == 1;
    let n = if suite_pick == 4 {
        buf[8..12].copy_from_slice(&TIP_SSRC.to_be_bytes());
        let mut tx = TipEktSender::new(&[9; 16], &group_params(), SPI).expect("TIP parameters");
        tx.set_isn(hdr.seq);
        tx.protect_rtp(&mut buf, rest.len(), appended.then_some(mode), true)
            .expect("room")
    } else {
        let suite = Suite::ALL[suite_pick];
        buf[8..12].copy_from_slice(&(suite_pick as u32).to_be_bytes());
        let mut tx = SrtpContext::new(suite, &master(suite));
        if appended && !suite.is_aead() {
            tx.protect_rtp_with_appended_byte(&mut buf, rest.len(), mode)
                .expect("room")
        } else {
            tx.protect_rtp(&mut buf, rest.len()).expect("room")
        }
    };
    let packet = &buf[..n];
    let appended = appended && !Suite::ALL.get(suite_pick).is_some_and(|s| s.is_aead());
    let mut f = forwarder(ghash);
    let v = f
        .verify(packet, appended)
        .expect("a correctly protected packet verifies");
    out.clear();
    let sent = f
        .emit(packet, &v, &RECEIVERS, &mut out)
        .expect("room for three receivers");
    assert_eq!(sent, RECEIVERS.len());
    // Every copy's new tag verifies at a receiver holding the sender's key (an independent
    // path: SrtpContext's AES-CM + HMAC or the aes-gcm crate), and its payload is intact.
    if let Some(&suite) = Suite::ALL.get(suite_pick) {
        for (_, sent) in out.iter() {
            let mut copy = sent.to_vec();
            let mut rx = SrtpContext::new(suite, &master(suite));
            let n = rx
                .unprotect_rtp(&mut copy)
                .expect("a forwarded copy verifies at the receiver");
            assert_eq!(&copy[hdr.len..n], &rest[hdr.len..], "payload intact");
        }
    }
}

/// An established DTLS-SRTP association, both ends in memory, made once per thread: the
/// handshake costs milliseconds and its state carries over from input to input, as a live
/// line's does.
struct EstablishedLine {
    now: std::time::Instant,
    server: crate::dtls::DtlsSession,
    client: crate::dtls::DtlsSession,
}

fn establish() -> EstablishedLine {
    use crate::dtls::{DtlsIdentity, DtlsSession, DtlsSettings, Role};
    use std::sync::Arc;
    let now = std::time::Instant::now();
    let addr = |p| std::net::SocketAddr::from(([127, 0, 0, 1], p));
    let (s_id, c_id) = (
        Arc::new(DtlsIdentity::generate().expect("identity")),
        Arc::new(DtlsIdentity::generate().expect("identity")),
    );
    let (s_fp, c_fp) = (s_id.fingerprint(), c_id.fingerprint());
    let session = |id, role, local, remote, fp| {
        DtlsSession::new(
            now,
            id,
            DtlsSettings::default(),
            role,
            local,
            remote,
            Some(fp),
        )
    };
    let mut line = EstablishedLine {
        now,
        server: session(s_id, Role::Passive, addr(1), addr(2), c_fp),
        client: session(c_id, Role::Active, addr(2), addr(1), s_fp),
    };
    for _ in 0..50 {
        shuttle(&mut line);
    }
    assert!(
        line.server.is_connected() && line.client.is_connected(),
        "the in-memory handshake completes"
    );
    line
}

/// Moves what each end queued to the other; panics if either end failed.
fn shuttle(line: &mut EstablishedLine) {
    use crate::dtls::DtlsEvent;
    while let Some(d) = line.client.poll_transmit() {
        line.server.handle_datagram(line.now, &d);
    }
    while let Some(d) = line.server.poll_transmit() {
        line.client.handle_datagram(line.now, &d);
    }
    for s in [&mut line.server, &mut line.client] {
        while let Some(e) = s.poll_event() {
            assert!(!matches!(e, DtlsEvent::Failed(_)), "the line failed: {e:?}");
        }
    }
}

std::thread_local! {
    static LINE: std::cell::RefCell<Option<EstablishedLine>> = const { std::cell::RefCell::new(None) };
}

/// Arbitrary bytes, as a datagram with the endpoint's (spoofable) address, to both ends of
/// an established DTLS-SRTP line: the association survives (RFC 6347 §4.1.2.7; issue 14:
/// one malformed record used to end the call).
pub fn dtls_established(data: &[u8]) {
    LINE.with(|cell| {
        let mut cell = cell.borrow_mut();
        let line = cell.get_or_insert_with(establish);
        line.server.handle_datagram(line.now, data);
        line.client.handle_datagram(line.now, data);
        shuttle(line);
        assert!(
            line.server.is_connected() && line.client.is_connected(),
            "unauthenticated input ended an established association"
        );
    });
}

/// A transcrypt leg (issue 19) over arbitrary bytes: the H.264 and RFC 6464 readers, and a
/// meeting with a standard endpoint (SDES) that gets the bytes as they come (dropped by
/// per-hop verification, never forwarded) and as a genuine packet protected with the
/// endpoint's key (taken: decrypted, re-protected end to end, mixed). Never panics.
pub fn transcrypt(data: &[u8]) {
    use crate::meeting::switching::SwitchingConfig;
    use crate::meeting::{HopKeying, HopKeys, LineSetup, Meeting, StandardSetup};
    use crate::tip::negotiation::{GroupParams, LineConfig, Media};
    use crate::transcrypt::{h264, level};
    use std::time::{Duration, Instant};

    let _ = h264::begins_keyframe(data);
    let _ = h264::RefreshMarker::default().flag(0, data);
    for id in 0..16 {
        let _ = level::extension_level(data, id);
    }
    let now = Instant::now();
    let mut meeting = Meeting::new(SwitchingConfig::default(), 16);
    meeting
        .forwarder_mut()
        .registry_mut()
        .insert(SPI, group_params())
        .expect("fresh registry");
    let suite = Suite::AesCm128HmacSha1_80;
    let key = |b: u8| SrtpContext::new(suite, &master_of(suite, b));
    let lines = [
        (Media::Audio, 10u32, "PCMU/8000", 0u8),
        (Media::Video, 11, "H264/90000", 96),
    ]
    .into_iter()
    .map(|(media, leg, map, pt)| {
        let mut config = LineConfig::new(media, 0x100 + leg, "1");
        config.group = Some(GroupParams {
            spi: SPI.0,
            salt: SALT,
            kek: KEK,
        });
        LineSetup {
            leg,
            keying: HopKeying::Sdes(Box::new(HopKeys {
                inbound: key(leg as u8),
                outbound: key(0x40),
            })),
            config,
            rtcp: None,
            standard: StandardSetup {
                detect_after: Some(Duration::ZERO),
                formats: vec![(pt, Some(map.to_owned()))],
                audio_level_ext: Some(1),
            },
        }
    })
    .collect();
    meeting.add_participant(now, 1, 1, lines);
    let mut out = TxBatch::new(64, 64);
    meeting.handle_timeout(now, &mut out);
    out.clear();
    for leg in [10, 11] {
        meeting.handle_datagram(now, leg, data, &mut out);
        let before = meeting.stats().transcrypt_dropped;
        // The same bytes as a genuine RTP packet of the endpoint.
        if data.len() >= 12 && data.len() + 16 <= SLOT_SIZE {
            let mut p = data.to_vec();
            p[0] = 0x80 | (p[0] & 0x3f);
            p.resize(data.len() + 16, 0);
            let mut tx = key(leg as u8);
            if let Ok(n) = tx.protect_rtp(&mut p, data.len()) {
                meeting.handle_datagram(now, leg, &p[..n], &mut out);
                assert_eq!(
                    meeting.stats().transcrypt_dropped,
                    before,
                    "a genuine packet is taken"
                );
            }
        }
    }
    meeting.handle_timeout(now + Duration::from_millis(40), &mut out);
}

fn master_of(suite: Suite, b: u8) -> MasterKey {
    MasterKey::new(
        suite,
        &vec![b; suite.key_len()],
        &vec![b ^ 1; suite.salt_len()],
    )
    .expect("suite lengths")
}

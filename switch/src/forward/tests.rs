//! The fast path's rules: WIRE.md section 3 vectors, single-bit flips, replay, provisional
//! keys, ISN rekeying, SRTCP forwarding, slot sharing.

use ekt::kek::EktCipher;
use ekt::{ParameterSet, Spi, SrtpProfile};

use super::*;
use crate::srtp::{MasterKey, SrtpContext, Suite, TipEktSender};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

const KEK: &str = "000102030405060708090a0b0c0d0e0f";
const SALT: &str = "0ec675ad498afeebb6960b3aabe6";
const SPI: Spi = Spi(0xa5a5);
// WIRE.md section 3.
const FULL_IN: &str = "81701234decafbadcafebabe123451214e55dc4ce79978d88ca4d215949d2402016c2b86db4d3f17ba13ee53c128b0a3642573474b33a2d4b90b8e000000001234a5a5";
const FULL_OUT: &str = "81701234decafbadcafebabe123453234e55dc4ce79978d88ca4d215949d2402172e6dd8f67e39e135b353c128b0a3642573474b33a2d4b90b8e000000001234a5a5";
const SHORT_IN: &str =
    "81701235decafbadcafebabe1234512111399ff951c3e036f8de27e9c27ee3e0004c84de539929e5a2728e00";
const SHORT_OUT: &str =
    "81701235decafbadcafebabe1234532311399ff951c3e036f8de27e9c27ee3e02730134cf68ff9e2066d00";

fn forwarder() -> Forwarder {
    let mut f = Forwarder::new(16);
    f.registry_mut().insert(SPI, group_params()).unwrap();
    f
}

const SCREEN3: [Receiver; 1] = [Receiver {
    id: 7,
    csrc: CsrcRewrite::TipScreen(3),
}];

fn forward_one(
    f: &mut Forwarder,
    packet: &[u8],
    receivers: &[Receiver],
) -> Result<Vec<(ReceiverId, Vec<u8>)>, DropReason> {
    let mut out = TxBatch::new(8, 16);
    let v = f.verify(packet, true)?;
    f.emit(packet, &v, receivers, &mut out)?;
    Ok(out.iter().map(|(r, b)| (r, b.to_vec())).collect())
}

#[test]
fn wire_section_3_full_and_short_vectors() {
    let mut f = forwarder();
    let v = f.verify(&h(FULL_IN), true).unwrap();
    assert_eq!(
        (v.appended_byte(), v.first_csrc(), v.full_ekt_tag()),
        (Some(1), Some(0x1234_5121), true)
    );
    let mut out = TxBatch::new(4, 4);
    assert_eq!(f.emit(&h(FULL_IN), &v, &SCREEN3, &mut out), Ok(1));
    assert_eq!(
        out.iter()
            .map(|(r, b)| (r, hex::encode(b)))
            .collect::<Vec<_>>(),
        vec![(7, FULL_OUT.to_string())]
    );
    assert_eq!(
        forward_one(&mut f, &h(SHORT_IN), &SCREEN3).unwrap(),
        vec![(7, h(SHORT_OUT))]
    );
    let s = f.stats();
    assert_eq!(
        (
            s.verified,
            s.forwarded,
            s.resigned,
            s.keys_learned,
            s.dropped_total()
        ),
        (2, 2, 2, 1, 0)
    );
}

#[test]
fn every_single_bit_flip_of_the_vectors_is_dropped() {
    let full = h(FULL_IN);
    for bit in 0..full.len() * 8 {
        let mut f = forwarder();
        let mut p = full.clone();
        p[bit / 8] ^= 1 << (bit % 8);
        assert!(
            forward_one(&mut f, &p, &SCREEN3).is_err(),
            "full, bit {bit}"
        );
        assert_eq!(
            (f.stats().forwarded, f.stats().dropped_total()),
            (0, 1),
            "full, bit {bit}"
        );
        assert!(
            !f.knows_key_of(0xcafebabe),
            "a failed full tag taught a key (bit {bit})"
        );
    }
    let short = h(SHORT_IN);
    for bit in 0..short.len() * 8 {
        let mut f = forwarder();
        forward_one(&mut f, &full, &SCREEN3).unwrap();
        let mut p = short.clone();
        p[bit / 8] ^= 1 << (bit % 8);
        assert!(
            forward_one(&mut f, &p, &SCREEN3).is_err(),
            "short, bit {bit}"
        );
        assert_eq!(f.stats().forwarded, 1, "short, bit {bit}");
        // The forwarder's state is intact: the genuine packet still goes through.
        assert_eq!(
            forward_one(&mut f, &short, &SCREEN3).unwrap(),
            vec![(7, h(SHORT_OUT))],
            "bit {bit}"
        );
    }
}

#[test]
fn replays_are_dropped_and_counted() {
    let mut f = forwarder();
    forward_one(&mut f, &h(FULL_IN), &SCREEN3).unwrap();
    assert_eq!(
        forward_one(&mut f, &h(FULL_IN), &SCREEN3),
        Err(DropReason::Replayed)
    );
    forward_one(&mut f, &h(SHORT_IN), &SCREEN3).unwrap();
    assert_eq!(
        forward_one(&mut f, &h(SHORT_IN), &SCREEN3),
        Err(DropReason::Replayed)
    );
    assert_eq!(f.stats().dropped(DropReason::Replayed), 2);
}

#[test]
fn short_tag_before_any_key_and_unknown_spi_are_dropped() {
    let mut f = forwarder();
    assert_eq!(
        forward_one(&mut f, &h(SHORT_IN), &SCREEN3),
        Err(DropReason::UnknownSsrc)
    );
    let mut other_spi = h(FULL_IN);
    let n = other_spi.len();
    other_spi[n - 2] = 0x11;
    assert_eq!(
        forward_one(&mut f, &other_spi, &SCREEN3),
        Err(DropReason::UnknownSpi)
    );
    assert_eq!(
        forward_one(&mut f, &[0x81, 0x70, 0, 0], &SCREEN3),
        Err(DropReason::Malformed)
    );
    assert_eq!(
        forward_one(&mut f, &[0x80; 1600], &SCREEN3),
        Err(DropReason::TooLarge)
    );
}

/// A TIP endpoint's sender: its own master key, EMK under the group KEK.
struct Sender {
    tip: TipEktSender,
    ssrc: u32,
    seq: u16,
}

fn group_params() -> ParameterSet {
    ParameterSet::new(
        EktCipher::AesEcb128,
        &h(KEK),
        SrtpProfile::AesCm128HmacSha1_80,
        &h(SALT),
    )
    .unwrap()
}

impl Sender {
    fn new(mk: &[u8], ssrc: u32, seq: u16) -> Self {
        Self {
            tip: TipEktSender::new(mk, &group_params(), SPI).unwrap(),
            ssrc,
            seq,
        }
    }

    fn packet(&mut self, full: bool, isn: u16, x: u8, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; 1500];
        buf[..12].copy_from_slice(&h("81700000000000000000000012345121")[..12]);
        buf[2..4].copy_from_slice(&self.seq.to_be_bytes());
        buf[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        buf[12..16].copy_from_slice(&0x1234_5121u32.to_be_bytes());
        buf[16..16 + payload.len()].copy_from_slice(payload);
        self.tip.set_isn(isn);
        let n = self
            .tip
            .protect_rtp(&mut buf, 16 + payload.len(), Some(x), full)
            .unwrap();
        self.seq = self.seq.wrapping_add(1);
        buf.truncate(n);
        buf
    }
}

#[test]
fn forwarded_packets_decrypt_with_the_senders_key_and_lose_the_byte() {
    let mut f = forwarder();
    let mut tx = Sender::new(&[0x42; 16], 0x1111, 65530);
    let mut rx = SrtpContext::new(
        Suite::AesCm128HmacSha1_80,
        &MasterKey::new(Suite::AesCm128HmacSha1_80, &[0x42; 16], &h(SALT)).unwrap(),
    );
    // Across a sequence-number wrap: full tag every third packet, as TIP audio does.
    for i in 0..12u8 {
        let payload = [i; 40];
        let p = tx.packet(i % 3 == 0, 0, 10 + i, &payload);
        let v = f.verify(&p, true).unwrap();
        assert_eq!(v.appended_byte(), Some(10 + i));
        let mut out = TxBatch::new(2, 2);
        f.emit(&p, &v, &SCREEN3, &mut out).unwrap();
        let (_, bytes) = out.iter().next().unwrap();
        assert_eq!(bytes.len(), p.len() - 1, "the appended byte is gone");
        let mut got = bytes.to_vec();
        let (len, x) = rx.unprotect_rtp_tip(&mut got, false).unwrap();
        assert_eq!(x, None);
        assert_eq!(
            &got[12..16],
            &0x1234_5323u32.to_be_bytes(),
            "CSRC on screen 3"
        );
        assert_eq!(&got[16..len], &payload, "payload intact");
    }
    assert_eq!(rx.roc(), 1);
}

#[test]
fn a_failed_new_key_has_no_effect() {
    let mut f = forwarder();
    let mut good = Sender::new(&[1; 16], 0x2222, 100);
    forward_one(&mut f, &good.packet(true, 0, 0, &[5; 20]), &SCREEN3).unwrap();
    // An attacker announces another key for the SSRC without knowing the KEK-wrapped key's
    // auth key: the EMK decrypts to garbage and the tag fails.
    let mut forged = good.packet(true, 0, 0, &[6; 20]);
    let n = forged.len();
    forged[n - 20] ^= 0x55; // inside the EMK
    assert_eq!(
        forward_one(&mut f, &forged, &SCREEN3),
        Err(DropReason::AuthFailed)
    );
    // The real key still works, including for the sequence number the forgery used.
    good.seq -= 1;
    forward_one(&mut f, &good.packet(false, 0, 0, &[6; 20]), &SCREEN3).unwrap();
    assert_eq!(f.stats().keys_learned, 1);
}

#[test]
fn rekey_with_isn_keeps_the_old_key_until_the_new_one_starts() {
    let mut f = forwarder();
    let mut old = Sender::new(&[1; 16], 0x3333, 10);
    forward_one(&mut f, &old.packet(true, 0, 0, &[1; 8]), &SCREEN3).unwrap();
    forward_one(&mut f, &old.packet(false, 0, 0, &[1; 8]), &SCREEN3).unwrap(); // seq 11
    // The new key is announced at seq 12 with ISN 15: packets 13 and 14 still use the old key.
    let mut new = Sender::new(&[2; 16], 0x3333, 12);
    forward_one(&mut f, &new.packet(true, 15, 0, &[2; 8]), &SCREEN3).unwrap();
    assert_eq!(f.stats().keys_learned, 2);
    old.seq = 13;
    forward_one(&mut f, &old.packet(false, 0, 0, &[1; 8]), &SCREEN3).unwrap();
    forward_one(&mut f, &old.packet(false, 0, 0, &[1; 8]), &SCREEN3).unwrap();
    new.seq = 15;
    forward_one(&mut f, &new.packet(false, 0, 0, &[2; 8]), &SCREEN3).unwrap();
    // The old key is not accepted from the new key's start on.
    old.seq = 16;
    assert_eq!(
        forward_one(&mut f, &old.packet(false, 0, 0, &[1; 8]), &SCREEN3),
        Err(DropReason::AuthFailed)
    );
}

#[test]
fn a_late_full_tag_of_the_previous_key_does_not_undo_a_rekey() {
    let mut f = forwarder();
    let mut old = Sender::new(&[1; 16], 0x3434, 10);
    let late = old.packet(true, 0, 0, &[1; 8]); // seq 10, delivered late
    forward_one(&mut f, &old.packet(true, 0, 0, &[1; 8]), &SCREEN3).unwrap(); // seq 11
    let mut new = Sender::new(&[2; 16], 0x3434, 12);
    forward_one(&mut f, &new.packet(true, 12, 0, &[2; 8]), &SCREEN3).unwrap();
    // The reordered old packet is still genuine and forwarded...
    forward_one(&mut f, &late, &SCREEN3).unwrap();
    // ...but the new key stays current.
    forward_one(&mut f, &new.packet(false, 0, 0, &[2; 8]), &SCREEN3).unwrap();
    assert_eq!(f.stats().keys_learned, 2);
}

#[test]
fn roc_is_never_lowered_by_a_full_tag() {
    let mut f = forwarder();
    let mut s = Sender::new(&[3; 16], 0x4444, 65535);
    forward_one(&mut f, &s.packet(true, 0, 0, &[0; 4]), &SCREEN3).unwrap();
    forward_one(&mut f, &s.packet(true, 0, 0, &[0; 4]), &SCREEN3).unwrap(); // seq 0, ROC 1
    // A full tag claiming ROC 0 for seq 1 is an index far behind: refused, ROC stays 1.
    let mut stale = Sender::new(&[3; 16], 0x4444, 1);
    assert_eq!(
        forward_one(&mut f, &stale.packet(true, 0, 0, &[0; 4]), &SCREEN3),
        Err(DropReason::TooOld)
    );
    forward_one(&mut f, &s.packet(false, 0, 0, &[0; 4]), &SCREEN3).unwrap(); // seq 1, ROC 1
}

#[test]
fn receivers_with_the_same_header_share_one_signed_packet() {
    let mut f = forwarder();
    let mut s = Sender::new(&[4; 16], 0x5555, 1);
    let p = s.packet(true, 0, 1, &[9; 1000]);
    let v = f.verify(&p, true).unwrap();
    let rx = |id, screen| Receiver {
        id,
        csrc: CsrcRewrite::TipScreen(screen),
    };
    let receivers = [rx(1, 1), rx(2, 1), rx(3, 2), rx(4, 1), rx(5, 2)];
    let mut out = TxBatch::new(8, 8);
    assert_eq!(f.emit(&p, &v, &receivers, &mut out), Ok(5));
    assert_eq!(
        (out.len(), out.distinct_packets(), f.stats().resigned),
        (5, 2, 2)
    );
    let got: Vec<_> = out.iter().map(|(r, b)| (r, b[15])).collect();
    assert_eq!(
        got,
        vec![(1, 0x21), (2, 0x21), (3, 0x22), (4, 0x21), (5, 0x22)]
    );
    // No room: dropped and counted, nothing partial beyond what fit.
    let mut small = TxBatch::new(1, 2);
    assert_eq!(
        f.emit(&p, &v, &receivers, &mut small),
        Err(DropReason::OutputFull)
    );
    assert_eq!(f.stats().dropped(DropReason::OutputFull), 1);
}

#[test]
fn unchanged_packets_keep_their_tag() {
    let mut f = forwarder();
    let mut s = Sender::new(&[4; 16], 0x6666, 1);
    let p = s.packet(true, 0, 0, &[9; 100]);
    // No appended byte negotiated and CSRC kept: the bytes go out as received.
    let v = f.verify(&p, false).unwrap();
    let mut out = TxBatch::new(2, 2);
    f.emit(
        &p,
        &v,
        &[Receiver {
            id: 1,
            csrc: CsrcRewrite::Keep,
        }],
        &mut out,
    )
    .unwrap();
    assert_eq!(out.iter().next().unwrap().1, &p[..]);
    assert_eq!(f.stats().resigned, 0);
}

#[test]
fn ekt_sdes_srtcp_is_verified_teaches_the_key_and_goes_out_unchanged() {
    let mut f = forwarder();
    let mut s = Sender::new(&[8; 16], 0x7777, 500);
    s.tip.context_mut().set_roc(3);
    let mut rtcp = vec![0u8; 200];
    // RR (no report blocks) + SDES CNAME from the media SSRC (WIRE.md section 7).
    let plain = h("80c9000100007777 81ca000300007777 0103616263000000");
    rtcp[..plain.len()].copy_from_slice(&plain);
    let n = s.tip.protect_rtcp(&mut rtcp, plain.len(), true).unwrap();
    rtcp.truncate(n);
    for bit in (0..n * 8).step_by(7) {
        let mut bad = rtcp.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(
            forward_one(&mut forwarder(), &bad, &SCREEN3).is_err(),
            "bit {bit}"
        );
    }
    let got = forward_one(&mut f, &rtcp, &SCREEN3).unwrap();
    assert_eq!(got, vec![(7, rtcp.clone())]);
    assert!(f.knows_key_of(0x7777));
    assert_eq!(
        forward_one(&mut f, &rtcp, &SCREEN3),
        Err(DropReason::Replayed)
    );
    // The SRTCP ROC seeded the SRTP context: a short-tagged packet at ROC 3 verifies.
    forward_one(&mut f, &s.packet(false, 0, 0, &[1; 10]), &SCREEN3).unwrap();
}

#[test]
fn keyed_sources_of_every_suite_are_verified_and_retagged() {
    for suite in Suite::ALL {
        let mut f = Forwarder::new(4);
        let master = MasterKey::new(
            suite,
            &vec![0x31; suite.key_len()],
            &vec![0x32; suite.salt_len()],
        )
        .unwrap();
        f.add_keyed_source(0xabcd, suite, &master).unwrap();
        let mut tx = SrtpContext::new(suite, &master);
        let mut rx = SrtpContext::new(suite, &master);
        for seq in [65534u16, 65535, 0, 1] {
            let mut buf = vec![0u8; 1500];
            let plain = h("81700000 00000000 0000abcd 12345121");
            buf[..16].copy_from_slice(&plain);
            buf[2..4].copy_from_slice(&seq.to_be_bytes());
            buf[16..216].copy_from_slice(&[seq as u8; 200]);
            let n = tx.protect_rtp(&mut buf, 216).unwrap();
            let p = &buf[..n];
            let mut bad = p.to_vec();
            bad[100] ^= 1;
            assert_eq!(
                forward_one(&mut f, &bad, &SCREEN3),
                Err(DropReason::AuthFailed),
                "{suite:?}"
            );
            let mut out = TxBatch::new(2, 2);
            let v = f.verify(p, false).unwrap();
            f.emit(p, &v, &SCREEN3, &mut out).unwrap();
            let mut got = out.iter().next().unwrap().1.to_vec();
            let len = rx.unprotect_rtp(&mut got).unwrap();
            assert_eq!(&got[12..16], &0x1234_5323u32.to_be_bytes(), "{suite:?}");
            assert_eq!(&got[16..len], &[seq as u8; 200], "{suite:?}");
        }
        // Its SRTCP is verified and forwarded unchanged.
        let mut rtcp = vec![0u8; 100];
        rtcp[..8].copy_from_slice(&h("80c900010000abcd"));
        let n = tx.protect_rtcp(&mut rtcp, 8).unwrap();
        assert_eq!(
            forward_one(&mut f, &rtcp[..n], &SCREEN3).unwrap(),
            vec![(7, rtcp[..n].to_vec())],
            "{suite:?}"
        );
        rtcp[9] ^= 1;
        assert!(forward_one(&mut forwarder(), &rtcp[..n], &SCREEN3).is_err());
    }
}

#[test]
fn unprotected_rtp_of_a_non_secure_meeting_loses_its_appended_byte_and_gets_the_screen() {
    let mut f = Forwarder::new(4);
    // Header with one CSRC (positions 1/2/1), 4 payload bytes, appended IDR flag 1.
    let p = h("81700001 00000000 0000abcd 12345121 deadbeef 01");
    let receivers = [
        Receiver {
            id: 1,
            csrc: CsrcRewrite::TipScreen(3),
        },
        Receiver {
            id: 2,
            csrc: CsrcRewrite::TipScreen(3),
        },
        Receiver {
            id: 3,
            csrc: CsrcRewrite::TipScreen(1),
        },
    ];
    let v = f.verify_unprotected(&p, true).unwrap();
    assert_eq!(v.appended_byte(), Some(1));
    assert_eq!(v.ssrc(), 0xabcd);
    let mut out = TxBatch::new(8, 16);
    assert_eq!(f.emit(&p, &v, &receivers, &mut out), Ok(3));
    let got: Vec<(ReceiverId, Vec<u8>)> = out.iter().map(|(r, b)| (r, b.to_vec())).collect();
    let screen3 = h("81700001 00000000 0000abcd 12345323 deadbeef");
    let screen1 = h("81700001 00000000 0000abcd 12345121 deadbeef");
    assert_eq!(got, vec![(1, screen3.clone()), (2, screen3), (3, screen1)]);
    assert_eq!(
        out.distinct_packets(),
        2,
        "one copy per distinct output header"
    );
    // Without the appended byte negotiated, the packet goes as it is.
    let v = f.verify_unprotected(&p[..p.len() - 1], false).unwrap();
    assert_eq!(v.appended_byte(), None);
    // Plain RTCP goes out unchanged; a header-only packet cannot carry the byte.
    let rtcp = h("80c9000100007777");
    let v = f.verify_unprotected(&rtcp, false).unwrap();
    assert_eq!(v.kind(), PacketKind::Rtcp);
    assert_eq!(
        f.verify_unprotected(&p[..16], true),
        Err(DropReason::Malformed)
    );
    assert_eq!(
        f.verify_unprotected(&[0x80, 0x60], false),
        Err(DropReason::Malformed)
    );
}

/// The SFU baseline (comparison only) does an SFU's work: one decryption, then an
/// encryption and a signature per receiver, with no sharing; its output is byte for byte
/// the fast path's, so the endpoints check it the same way.
#[test]
fn the_sfu_baseline_re_encrypts_per_receiver_and_sends_the_same_bytes() {
    let rx = |id, screen| Receiver {
        id,
        csrc: CsrcRewrite::TipScreen(screen),
    };
    let receivers = [rx(1, 1), rx(2, 1), rx(3, 2)];
    let mut outputs = Vec::new();
    for sfu in [false, true] {
        let mut f = forwarder();
        f.set_sfu_baseline(sfu);
        let mut s = Sender::new(&[4; 16], 0x5555, 1);
        let mut out = TxBatch::new(16, 16);
        for (i, full) in [true, false, false].into_iter().enumerate() {
            let p = s.packet(full, i as u16, 1, &[9; 1000]);
            let v = f.verify(&p, true).unwrap();
            assert_eq!(f.emit(&p, &v, &receivers, &mut out), Ok(3));
        }
        let shared = out.distinct_packets();
        outputs.push((
            out.iter().map(|(r, b)| (r, b.to_vec())).collect::<Vec<_>>(),
            shared,
            f.stats().resigned,
        ));
    }
    let (fast, sfu) = (&outputs[0], &outputs[1]);
    assert_eq!(fast.0, sfu.0, "the same datagrams");
    assert_eq!(
        (fast.1, fast.2),
        (6, 6),
        "the fast path signs per distinct header"
    );
    assert_eq!((sfu.1, sfu.2), (9, 9), "the baseline per receiver");
}

/// A batch decides every packet exactly as one-at-a-time verification does, whatever
/// engine computes its tags: keys learned and changed mid-batch (ISN), packets of the old
/// key before the new one starts, a duplicate inside the batch, a forged tag, an unknown
/// sender, and long runs of short tags (what the engines take).
#[test]
fn a_batch_decides_every_packet_as_one_at_a_time_does_with_every_engine() {
    let mut a = Sender::new(&[1; 16], 0x0a0a, 100);
    let mut b = Sender::new(&[3; 16], 0x0b0b, 7);
    let mut packets = vec![
        a.packet(true, 0, 1, &[1; 300]),
        b.packet(true, 0, 2, &[2; 900]),
    ];
    for i in 0..40u8 {
        packets.push(a.packet(false, 0, i, &[i; 1000]));
        packets.push(b.packet(false, 0, i, &vec![i; 200 + usize::from(i) * 20]));
    }
    let dup = packets[5].clone();
    packets.push(dup);
    let mut forged = a.packet(false, 0, 9, &[9; 500]);
    let n = forged.len();
    forged[n - 3] ^= 1;
    packets.push(forged);
    packets.push(Sender::new(&[5; 16], 0x0c0c, 1).packet(false, 0, 0, &[0; 100]));
    // A rekeys: announced now with ISN 3 packets ahead; the old key covers the gap.
    let old_seq = a.seq;
    let mut a2 = Sender::new(&[2; 16], 0x0a0a, old_seq);
    packets.push(a2.packet(true, old_seq + 3, 0, &[4; 400]));
    a.seq = old_seq + 1;
    packets.push(a.packet(false, 0, 0, &[5; 400]));
    packets.push(a.packet(false, 0, 0, &[6; 400]));
    a2.seq = old_seq + 3;
    for i in 0..20u8 {
        packets.push(a2.packet(false, 0, i, &[i; 1100]));
    }
    // The old key after the new one started: refused.
    a.seq = a2.seq;
    packets.push(a.packet(false, 0, 0, &[7; 400]));

    let rx = [
        Receiver {
            id: 1,
            csrc: CsrcRewrite::TipScreen(1),
        },
        Receiver {
            id: 2,
            csrc: CsrcRewrite::TipScreen(2),
        },
    ];
    let run = |engine: Option<Engine>| {
        let mut f = forwarder();
        let mut out = TxBatch::new(1024, 1024);
        match engine {
            None => {
                for p in &packets {
                    if let Ok(v) = f.verify(p, true) {
                        f.emit(p, &v, &rx, &mut out).unwrap();
                    }
                }
            }
            Some(e) => {
                f.set_hmac_engine(e);
                let batch: Vec<Inbound<'_>> = packets
                    .iter()
                    .map(|p| Inbound {
                        data: p,
                        appended_byte: true,
                        receivers: &rx,
                    })
                    .collect();
                f.forward_batch(&batch, &mut out);
            }
        }
        let sent: Vec<(u32, Vec<u8>)> = out.iter().map(|(r, b)| (r, b.to_vec())).collect();
        (sent, format!("{:?}", f.stats()))
    };
    let one_at_a_time = run(None);
    let stats = &one_at_a_time.1;
    // Every case happened: 3 keys, the forged tag and the old key after the new one's
    // start (AuthFailed), the unknown sender, the duplicate.
    assert!(stats.contains("keys_learned: 3"), "{stats}");
    assert!(
        stats.contains("dropped: [0, 0, 1, 0, 0, 2, 1, 0"),
        "{stats}"
    );
    let mut engines = vec![Engine::Scalar];
    engines.extend(
        (1..=4)
            .map(Engine::ShaNi)
            .chain([Engine::Avx2])
            .filter(|e| e.available()),
    );
    for engine in engines {
        assert_eq!(run(Some(engine)), one_at_a_time, "{engine:?}");
    }
    let f = forwarder();
    assert_eq!(f.engine, Engine::detect());
}

/// Issue 19: a verified packet opens to the sender's plaintext (TIP EKT and AEAD), and
/// only with the key that verified it.
#[test]
fn a_verified_packet_opens_to_its_plaintext() {
    let mut f = forwarder();
    let mut tx = TipEktSender::new(&[7u8; 16], &group_params(), SPI).unwrap();
    let plain: Vec<u8> = [
        0x81, 0x00, 0, 5, 0, 0, 0, 160, 0, 0, 0, 0x42, 0x12, 0x34, 0x51, 0x21,
    ]
    .into_iter()
    .chain((0..160u8).map(|i| i ^ 0x5a))
    .collect();
    let mut buf = plain.clone();
    buf.resize(plain.len() + 64, 0);
    let n = tx
        .protect_rtp(&mut buf, plain.len(), Some(40), true)
        .unwrap();
    let v = f.verify(&buf[..n], true).unwrap();
    let mut out = [0u8; 1500];
    assert_eq!(f.open(&buf[..n], &v, &mut out), Ok(plain.len()));
    assert_eq!(&out[..plain.len()], &plain[..]);
    // A verdict of another packet does not open this one.
    assert_eq!(
        f.open(&buf[..n - 1], &v, &mut out),
        Err(DropReason::Malformed)
    );

    let suite = Suite::AeadAes128Gcm;
    let master = MasterKey::new(suite, &[3u8; 16], &[4u8; 12]).unwrap();
    f.add_keyed_source(0x99, suite, &master).unwrap();
    let mut gcm = SrtpContext::new(suite, &master);
    let plain: Vec<u8> = [0x80, 0x60, 0, 9, 0, 0, 1, 0, 0, 0, 0, 0x99]
        .into_iter()
        .chain(0..100u8)
        .collect();
    let mut buf = plain.clone();
    buf.resize(plain.len() + 16, 0);
    let n = gcm.protect_rtp(&mut buf, plain.len()).unwrap();
    let v = f.verify(&buf[..n], false).unwrap();
    assert_eq!(f.open(&buf[..n], &v, &mut out), Ok(plain.len()));
    assert_eq!(&out[..plain.len()], &plain[..]);
}

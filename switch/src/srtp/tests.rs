//! Published vectors through the SRTP contexts: RFC 3711 / libsrtp `srtp_validate`, the
//! TIP EKT tags and forwarding inputs of WIRE.md sections 2-3, RFC 7714 §16.1.1 and §17.1.

use ekt::Spi;

use super::*;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).unwrap()
}

const MK: &str = "e1f97a0d3e018be0d64fa32c06de4139";
const SALT: &str = "0ec675ad498afeebb6960b3aabe6";
const EMK: &str = "53c128b0a3642573474b33a2d4b90b8e";

fn b3_context(suite: Suite) -> SrtpContext {
    SrtpContext::new(suite, &MasterKey::new(suite, &h(MK), &h(SALT)).unwrap())
}

fn rtp_plain(header: &str) -> Vec<u8> {
    let mut p = h(header);
    p.extend([0xab; 16]);
    p
}

fn protect(ctx: &mut SrtpContext, plain: &[u8]) -> Vec<u8> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + 64, 0);
    let n = ctx.protect_rtp(&mut buf, plain.len()).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn libsrtp_srtp_validate_vector() {
    let mut tx = b3_context(Suite::AesCm128HmacSha1_80);
    let out = protect(&mut tx, &rtp_plain("800f1234decafbadcafebabe"));
    assert_eq!(
        hex::encode(&out),
        "800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb"
    );
    let mut rx = b3_context(Suite::AesCm128HmacSha1_80);
    let mut back = out.clone();
    let n = rx.unprotect_rtp(&mut back).unwrap();
    assert_eq!(&back[..n], &rtp_plain("800f1234decafbadcafebabe")[..]);
    // The same packet again is a replay.
    assert_eq!(
        rx.unprotect_rtp(&mut out.clone()),
        Err(SrtpError::Replay(ReplayError::Duplicate))
    );
}

#[test]
fn libsrtp_srtcp_validate_vector() {
    let mut tx = b3_context(Suite::AesCm128HmacSha1_80);
    let mut buf = h("81c8000bcafebabe");
    buf.extend([0xab; 16]);
    let len = buf.len();
    buf.resize(len + 14, 0);
    assert_eq!(tx.protect_rtcp(&mut buf, len), Ok(len + 14));
    assert_eq!(
        hex::encode(&buf),
        "81c8000bcafebabe7128035be487b9bdbef89041f977a5a880000001993e08cd54d6c1230798"
    );
    let mut rx = b3_context(Suite::AesCm128HmacSha1_80);
    assert_eq!(rx.unprotect_rtcp(&mut buf), Ok(len));
}

#[test]
fn wire_tip_ekt_base_tags_for_srtp() {
    // WIRE.md section 2: full and short base tags over the section 1 packet.
    let emk = h(EMK);
    let full = TipTrailer::Full {
        emk: &emk,
        isn: 0x1234,
        spi: Spi(0xa5a5),
    };
    for (trailer, tag) in [
        (full, "cf49b15df34e5e8bdf14"),
        (TipTrailer::Short, "4264487c1cf815b2eed2"),
    ] {
        let mut tx = b3_context(Suite::AesCm128HmacSha1_80);
        let plain = rtp_plain("800f1234decafbadcafebabe");
        let mut buf = plain.clone();
        buf.resize(100, 0);
        let n = tx
            .protect_rtp_tip(&mut buf, plain.len(), None, trailer)
            .unwrap();
        assert_eq!(hex::encode(&buf[28..38]), tag);
        let mut rx = b3_context(Suite::AesCm128HmacSha1_80);
        let (len, x) = rx.unprotect_rtp_tip(&mut buf[..n], false).unwrap();
        assert_eq!((&buf[..len], x), (&plain[..], None));
    }
}

#[test]
fn wire_tip_ekt_base_tags_for_srtcp() {
    let emk = h(EMK);
    let full = TipTrailer::Full {
        emk: &emk,
        isn: 0x1234,
        spi: Spi(0xa5a5),
    };
    for (trailer, tag) in [
        (full, "e7e58f1fad306fa21ff9"),
        (TipTrailer::Short, "9c62776da67ccbe91b00"),
    ] {
        let mut tx = b3_context(Suite::AesCm128HmacSha1_80);
        let mut buf = h("81c8000bcafebabe");
        buf.extend([0xab; 16]);
        let len = buf.len();
        buf.resize(100, 0);
        let n = tx.protect_rtcp_tip(&mut buf, len, trailer).unwrap();
        assert_eq!(
            hex::encode(&buf[..28]),
            "81c8000bcafebabe7128035be487b9bdbef89041f977a5a880000001"
        );
        assert_eq!(hex::encode(&buf[28..38]), tag);
        if let TipTrailer::Full { .. } = trailer {
            // WIRE.md / ekt-spec.md §3.9: the full 62-byte packet.
            assert_eq!(n, 62);
            assert_eq!(hex::encode(&buf[38..62]), format!("{EMK}000000001234a5a5"));
        }
        let mut rx = b3_context(Suite::AesCm128HmacSha1_80);
        assert_eq!(rx.unprotect_rtcp_tip(&mut buf[..n]), Ok(len));
        assert_eq!(&buf[8..24], &[0xab; 16]);
    }
}

#[test]
fn wire_forwarding_inputs_are_what_a_tip_sender_writes() {
    // WIRE.md section 3 "full in" (X = 1, an IDR) and "short in" (seq 0x1235, X = 0).
    let mut tx = b3_context(Suite::AesCm128HmacSha1_80);
    let emk = h(EMK);
    let trailer = TipTrailer::Full {
        emk: &emk,
        isn: 0x1234,
        spi: Spi(0xa5a5),
    };
    let cases = [
        (
            "81701234decafbadcafebabe12345121",
            1,
            trailer,
            "81701234decafbadcafebabe123451214e55dc4ce79978d88ca4d215949d2402016c2b86db4d3f17ba13ee53c128b0a3642573474b33a2d4b90b8e000000001234a5a5",
        ),
        (
            "81701235decafbadcafebabe12345121",
            0,
            TipTrailer::Short,
            "81701235decafbadcafebabe1234512111399ff951c3e036f8de27e9c27ee3e0004c84de539929e5a2728e00",
        ),
    ];
    for (header, x, trailer, want) in cases {
        let plain = rtp_plain(header);
        let mut buf = plain.clone();
        buf.resize(100, 0);
        let n = tx
            .protect_rtp_tip(&mut buf, plain.len(), Some(x), trailer)
            .unwrap();
        assert_eq!(hex::encode(&buf[..n]), want);
    }
}

#[test]
fn tip_tags_refuse_other_suites_and_tampering() {
    let mut gcm = SrtpContext::from_gcm_session_keys(Suite::AeadAes128Gcm, &[0; 16], &[0; 12]);
    let mut buf = rtp_plain("800f1234decafbadcafebabe");
    buf.resize(100, 0);
    assert_eq!(
        gcm.protect_rtp_tip(&mut buf, 28, None, TipTrailer::Short),
        Err(SrtpError::UnsupportedSuite)
    );
    let mut tx = b3_context(Suite::AesCm128HmacSha1_32);
    assert_eq!(
        tx.protect_rtp_tip(&mut buf, 28, None, TipTrailer::Short),
        Err(SrtpError::UnsupportedSuite)
    );
    let mut tx = b3_context(Suite::AesCm128HmacSha1_80);
    let n = tx
        .protect_rtp_tip(&mut buf, 28, Some(7), TipTrailer::Short)
        .unwrap();
    buf[20] ^= 1;
    let mut rx = b3_context(Suite::AesCm128HmacSha1_80);
    assert_eq!(
        rx.unprotect_rtp_tip(&mut buf[..n], true),
        Err(SrtpError::AuthFailed)
    );
}

const RFC7714_KEY: &str = "000102030405060708090a0b0c0d0e0f";
const RFC7714_SALT: &str = "517569642070726f2071756f";

fn rfc7714_context() -> SrtpContext {
    let salt: [u8; 12] = h(RFC7714_SALT).try_into().unwrap();
    SrtpContext::from_gcm_session_keys(Suite::AeadAes128Gcm, &h(RFC7714_KEY), &salt)
}

#[test]
fn rfc7714_16_1_1_srtp_aes128_gcm() {
    let mut plain = h("8040f17b8041f8d35501a0b2");
    plain.extend(b"Gallia est omnis divisa in partes tres");
    let mut tx = rfc7714_context();
    let out = protect(&mut tx, &plain);
    assert_eq!(
        hex::encode(&out),
        "8040f17b8041f8d35501a0b2f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833899d7f27beb16a9152cf765ee4390cce"
    );
    let mut rx = rfc7714_context();
    let mut back = out.clone();
    let n = rx.unprotect_rtp(&mut back).unwrap();
    assert_eq!(&back[..n], &plain[..]);
    let mut bad = out;
    bad[40] ^= 0x10;
    assert_eq!(
        rfc7714_context().unprotect_rtp(&mut bad),
        Err(SrtpError::AuthFailed)
    );
}

#[test]
fn rfc7714_17_1_srtcp_aes128_gcm() {
    let mut buf = h("81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61");
    buf.extend(h("deadbeef").repeat(5));
    let len = buf.len();
    buf.resize(len + 20, 0);
    let mut tx = rfc7714_context();
    tx.set_rtcp_sent(0x5d4 - 1);
    let n = tx.protect_rtcp(&mut buf, len).unwrap();
    let out = hex::encode(&buf[..n]);
    // ekt-spec.md §8.1 quotes the output with its middle elided; check both ends.
    assert!(out.starts_with("81c8000d4d61727363e94885"), "{out}");
    assert!(
        out.ends_with("0bb9275bc84aa45896cf4d2fc5abf87245d9eade800005d4"),
        "{out}"
    );
    let mut rx = rfc7714_context();
    assert_eq!(rx.unprotect_rtcp(&mut buf[..n]), Ok(len));
}

#[test]
fn every_suite_round_trips_rtp_and_rtcp_and_refuses_tampering() {
    for suite in Suite::ALL {
        let mk = MasterKey::new(
            suite,
            &vec![0x11; suite.key_len()],
            &vec![0x22; suite.salt_len()],
        )
        .unwrap();
        let (mut tx, mut rx) = (SrtpContext::new(suite, &mk), SrtpContext::new(suite, &mk));
        for seq in [65534u16, 65535, 0, 1] {
            let mut plain = h("80600000000000010000abcd");
            plain[2..4].copy_from_slice(&seq.to_be_bytes());
            plain.extend([seq as u8; 50]);
            let mut wire = protect(&mut tx, &plain);
            assert_eq!(wire.len(), plain.len() + suite.srtp_tag_len());
            let mut tampered = wire.clone();
            tampered[20] ^= 4;
            assert_eq!(
                rx.unprotect_rtp(&mut tampered),
                Err(SrtpError::AuthFailed),
                "{suite:?}"
            );
            let n = rx.unprotect_rtp(&mut wire).unwrap();
            assert_eq!(&wire[..n], &plain[..], "{suite:?} seq {seq}");
        }
        assert_eq!((tx.roc(), rx.roc()), (1, 1));
        let mut rtcp = h("81c90001cafebabe");
        rtcp.extend([9u8; 24]);
        let len = rtcp.len();
        rtcp.resize(len + 20, 0);
        let n = tx.protect_rtcp(&mut rtcp, len).unwrap();
        assert_eq!(n, len + 4 + suite.srtcp_tag_len());
        assert_eq!(rx.unprotect_rtcp(&mut rtcp[..n]), Ok(len));
        assert_eq!(&rtcp[8..len], &[9u8; 24]);
    }
}

#[test]
fn short_and_malformed_packets_are_errors_not_panics() {
    let mut rx = b3_context(Suite::AesCm128HmacSha1_80);
    assert!(rx.unprotect_rtp(&mut [0x80; 15]).is_err());
    assert!(rx.unprotect_rtp(&mut []).is_err());
    assert!(
        rx.unprotect_rtcp(&mut [0x81, 200, 0, 0, 0, 0, 0, 1, 9])
            .is_err()
    );
    assert!(rx.unprotect_rtp_tip(&mut [0x80; 20], true).is_err());
    assert!(rx.unprotect_rtcp_tip(&mut [0x81; 20]).is_err());
    let mut buf = [0x80u8; 20];
    assert_eq!(rx.protect_rtp(&mut buf, 20), Err(SrtpError::BufferTooSmall));
    assert_eq!(rx.protect_rtp(&mut buf, 30), Err(SrtpError::TooShort));
    assert!(MasterKey::new(Suite::AeadAes256Gcm, &[0; 16], &[0; 12]).is_err());
    assert_eq!(
        format!(
            "{:?}",
            MasterKey::new(Suite::AeadAes128Gcm, &[7; 16], &[0; 12]).unwrap()
        ),
        "MasterKey"
    );
}

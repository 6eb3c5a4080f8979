//! Interop with webrtc-srtp, an independent SRTP implementation, for all four suites:
//! our protect -> its unprotect and back, RTP and RTCP, across a ROC wrap; and packets our
//! fast path forwarded (CSRC rewritten, appended byte stripped, tag recomputed) are
//! accepted by webrtc-srtp holding the sender's key, payload intact, with every GHASH
//! engine this CPU runs.

use switch::forward::{CsrcRewrite, Forwarder, GhashEngine, Receiver, TxBatch};
use switch::srtp::{MasterKey, SrtpContext, Suite};
use webrtc_srtp::context::Context;
use webrtc_srtp::protection_profile::ProtectionProfile;

fn profile(s: Suite) -> ProtectionProfile {
    match s {
        Suite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        Suite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        Suite::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
        Suite::AeadAes256Gcm => ProtectionProfile::AeadAes256Gcm,
    }
}

struct Keys {
    key: Vec<u8>,
    salt: Vec<u8>,
}

impl Keys {
    fn new(suite: Suite, seed: u8) -> Self {
        Self {
            key: (0..suite.key_len())
                .map(|i| seed.wrapping_mul(31).wrapping_add(i as u8))
                .collect(),
            salt: (0..suite.salt_len())
                .map(|i| seed ^ (i as u8 * 7))
                .collect(),
        }
    }
    fn ours(&self, suite: Suite) -> SrtpContext {
        SrtpContext::new(suite, &self.master(suite))
    }
    fn master(&self, suite: Suite) -> MasterKey {
        MasterKey::new(suite, &self.key, &self.salt).unwrap()
    }
    fn theirs(&self, suite: Suite) -> Context {
        Context::new(&self.key, &self.salt, profile(suite), None, None).unwrap()
    }
}

/// RTP with one TIP CSRC, sequence number `seq`, a payload that depends on it.
fn rtp(seq: u16, ssrc: u32, payload_len: usize) -> Vec<u8> {
    let mut p = vec![0x81, 0x70];
    p.extend(seq.to_be_bytes());
    p.extend(
        0x0102_0304u32
            .wrapping_add(u32::from(seq) * 3000)
            .to_be_bytes(),
    );
    p.extend(ssrc.to_be_bytes());
    p.extend(0x1234_5121u32.to_be_bytes());
    p.extend((0..payload_len).map(|i| (i as u16 ^ seq) as u8));
    p
}

const SEQS: [u16; 8] = [65532, 65533, 65534, 65535, 0, 1, 2, 3];

#[test]
fn our_srtp_is_their_srtp_and_back_across_a_roc_wrap() {
    for suite in Suite::ALL {
        let k = Keys::new(suite, 1);
        let (mut ours_tx, mut ours_rx) = (k.ours(suite), k.ours(suite));
        let (mut theirs_tx, mut theirs_rx) = (k.theirs(suite), k.theirs(suite));
        for seq in SEQS {
            let plain = rtp(seq, 0xdead_beef, 160);
            let mut buf = plain.clone();
            buf.resize(plain.len() + 16, 0);
            let n = ours_tx.protect_rtp(&mut buf, plain.len()).unwrap();
            let theirs = theirs_tx.encrypt_rtp(&plain).unwrap();
            assert_eq!(
                &buf[..n],
                &theirs[..],
                "{suite:?} seq {seq}: identical ciphertext and tag"
            );
            let back = theirs_rx.decrypt_rtp(&buf[..n]).unwrap();
            assert_eq!(&back[..], &plain[..], "{suite:?} seq {seq}");
            let mut again = theirs.to_vec();
            let m = ours_rx.unprotect_rtp(&mut again).unwrap();
            assert_eq!(&again[..m], &plain[..], "{suite:?} seq {seq}");
        }
        assert_eq!(ours_tx.roc(), 1);
    }
}

#[test]
fn our_srtcp_is_their_srtcp_and_back() {
    for suite in Suite::ALL {
        let k = Keys::new(suite, 2);
        let (mut ours_tx, mut ours_rx) = (k.ours(suite), k.ours(suite));
        let (mut theirs_tx, mut theirs_rx) = (k.theirs(suite), k.theirs(suite));
        for i in 0..5u8 {
            // RR without report blocks + SDES CNAME.
            let mut plain = vec![0x80, 0xc9, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef];
            plain.extend([
                0x81,
                0xca,
                0x00,
                0x03,
                0xde,
                0xad,
                0xbe,
                0xef,
                0x01,
                0x03,
                b'a',
                b'b',
                b'c' + i,
                0,
                0,
                0,
            ]);
            let mut buf = plain.clone();
            buf.resize(plain.len() + 20, 0);
            let n = ours_tx.protect_rtcp(&mut buf, plain.len()).unwrap();
            let back = theirs_rx.decrypt_rtcp(&buf[..n]).unwrap();
            assert_eq!(&back[..], &plain[..], "{suite:?}");
            let mut theirs = theirs_tx.encrypt_rtcp(&plain).unwrap().to_vec();
            let m = ours_rx.unprotect_rtcp(&mut theirs).unwrap();
            assert_eq!(&theirs[..m], &plain[..], "{suite:?}");
        }
    }
}

#[test]
fn forwarded_packets_are_accepted_by_webrtc_srtp() {
    let engines = [GhashEngine::Portable, GhashEngine::Clmul];
    for (suite, ghash) in Suite::ALL
        .into_iter()
        .flat_map(|s| engines.into_iter().map(move |e| (s, e)))
        .filter(|(_, e)| e.available())
    {
        let k = Keys::new(suite, 3);
        let mut sender = k.ours(suite);
        let mut receiver = k.theirs(suite);
        let mut f = Forwarder::new(4);
        f.set_ghash_engine(ghash);
        f.add_keyed_source(0x0bad_cafe, suite, &k.master(suite))
            .unwrap();
        let screen2 = [Receiver {
            id: 9,
            csrc: CsrcRewrite::TipScreen(2),
        }];
        // The appended byte rides on HMAC suites only (WIRE.md section 6).
        let appended = !suite.is_aead();
        for (i, seq) in SEQS.into_iter().enumerate() {
            let plain = rtp(seq, 0x0bad_cafe, 1100);
            let mut buf = plain.clone();
            buf.resize(1200, 0);
            let n = if appended {
                sender
                    .protect_rtp_with_appended_byte(&mut buf, plain.len(), 40 + i as u8)
                    .unwrap()
            } else {
                sender.protect_rtp(&mut buf, plain.len()).unwrap()
            };
            // A flipped ciphertext bit is refused, whatever the engine.
            let mut forged = buf[..n].to_vec();
            forged[20] ^= 0x04;
            assert!(f.verify(&forged, appended).is_err(), "{suite:?} {ghash:?}");
            let v = f.verify(&buf[..n], appended).unwrap();
            assert_eq!(v.appended_byte(), appended.then_some(40 + i as u8));
            let mut out = TxBatch::new(1, 1);
            f.emit(&buf[..n], &v, &screen2, &mut out).unwrap();
            let (_, fwd) = out.iter().next().unwrap();
            let got = receiver
                .decrypt_rtp(fwd)
                .unwrap_or_else(|e| panic!("{suite:?} {ghash:?} seq {seq}: {e}"));
            let mut want = plain.clone();
            want[12..16].copy_from_slice(&0x1234_5222u32.to_be_bytes());
            assert_eq!(
                &got[..],
                &want[..],
                "{suite:?} seq {seq}: CSRC on screen 2, payload intact"
            );
        }
        assert_eq!(
            f.stats().dropped_total(),
            SEQS.len() as u64,
            "the forgeries"
        );
    }
}

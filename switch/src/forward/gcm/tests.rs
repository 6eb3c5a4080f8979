use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes128Gcm, Aes256Gcm, KeyInit as _};
use ghash::GHash;
use ghash::universal_hash::UniversalHash;

use super::*;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// The engines this CPU runs (the portable one everywhere).
fn engines() -> Vec<GhashEngine> {
    [GhashEngine::Portable, GhashEngine::Clmul]
        .into_iter()
        .filter(|e| e.available())
        .collect()
}

/// A small deterministic generator (xorshift64*), so that failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    fn block(&mut self) -> Block {
        self.bytes(16).try_into().unwrap()
    }
}

/// GHASH_H(A, C) straight from the `ghash` crate.
fn crate_ghash(h: &Block, a: &[u8], c: &[u8]) -> Block {
    let mut g = GHash::new(&(*h).into());
    g.update_padded(a);
    g.update_padded(c);
    g.update(&[length_block(a.len(), c.len()).into()]);
    g.finalize().into()
}

// RFC 7714 §16.1.1 session key, salt and packet.
fn rfc7714(engine: GhashEngine) -> (GcmAuth, [u8; 12], Vec<u8>, Vec<u8>, Block) {
    let salt: [u8; 12] = h("517569642070726f2071756f").try_into().unwrap();
    let auth = GcmAuth::new(engine, &h("000102030405060708090a0b0c0d0e0f"), &salt);
    let iv: [u8; 12] = h("51753c6580c2726f20718414").try_into().unwrap();
    let a = h("8040f17b8041f8d35501a0b2");
    let c = h("f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833");
    let tag: Block = h("899d7f27beb16a9152cf765ee4390cce").try_into().unwrap();
    (auth, iv, a, c, tag)
}

#[test]
fn detect_picks_an_available_engine_and_new_falls_back() {
    assert!(GhashEngine::detect().available());
    for engine in [GhashEngine::Portable, GhashEngine::Clmul] {
        let auth = GcmAuth::new(engine, &[1; 16], &[2; 12]);
        let want = if engine.available() {
            engine
        } else {
            GhashEngine::Portable
        };
        assert_eq!(auth.engine(), want);
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("pclmulqdq") {
        assert_eq!(GhashEngine::detect(), GhashEngine::Clmul);
    }
}

#[test]
fn rfc7714_tag_and_h() {
    for engine in engines() {
        let (auth, iv, a, c, tag) = rfc7714(engine);
        assert_eq!(
            auth.encrypt(&[0; 16]).to_vec(),
            h("c6a13b37878f5b826f4f8162a1c8d879")
        );
        assert_eq!(auth.tag(&iv, &a, &c), tag, "{engine:?}");
    }
}

#[test]
fn wire_section_6_add_csrc() {
    for engine in engines() {
        // WIRE.md section 6: add CSRC 11223344 (CC = 1): the header grows by 4 bytes.
        let (auth, iv, a, c, tag) = rfc7714(engine);
        let a2 = h("8140f17b8041f8d35501a0b211223344");
        let want = h("1b0f8784bb6d3f87b9d4a3ed9e59c848");
        assert_eq!(
            auth.retag_header(tag, &a, &a2, c.len()).to_vec(),
            want,
            "{engine:?}"
        );
        assert_eq!(auth.tag(&iv, &a2, &c).to_vec(), want);
        assert_eq!(auth.retag_general(tag, &a, &c, &a2, &c).to_vec(), want);
    }
}

#[test]
fn wire_section_6_drop_last_ciphertext_byte() {
    for engine in engines() {
        let (auth, _, a, c, tag) = rfc7714(engine);
        let t = auth.retag_general(tag, &a, &c, &a, &c[..c.len() - 1]);
        assert_eq!(
            t.to_vec(),
            h("3ed21e805cdcdf093c07dd9824e364d7"),
            "{engine:?}"
        );
    }
}

#[test]
fn retag_matches_full_gcm_for_many_lengths() {
    for engine in engines() {
        let auth = GcmAuth::new(engine, &[7u8; 32], &[9u8; 12]);
        let iv = [3u8; 12];
        for c_len in [0usize, 1, 15, 16, 17, 160, 1000, 1188, 1450, 1500] {
            let c: Vec<u8> = (0..c_len).map(|i| (i * 31) as u8).collect();
            for (a, a2) in [
                (
                    h("806000010000000100000002"),
                    h("816000010000000100000002aabbccdd"),
                ),
                (
                    h("816000010000000100000002aabbccdd"),
                    h("816000010000000100000002aabbc0dd"),
                ),
                (
                    h("906000010000000100000002bede0001aa000000"),
                    h("906000010000000100000002bede0001ab000000"),
                ),
            ] {
                let t = auth.tag(&iv, &a, &c);
                assert_eq!(
                    auth.retag_header(t, &a, &a2, c.len()),
                    auth.tag(&iv, &a2, &c),
                    "{engine:?} {c_len}"
                );
            }
        }
    }
}

/// Every engine's GHASH equals the `ghash` crate's for every total length 0-1500, split
/// between A and C at random, and for messages longer than the power table (several
/// reductions, the Horner carry between chunks).
#[test]
fn ghash_equals_the_ghash_crate_at_every_length() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let long = [
        16 * MAX_POWER - 16,
        16 * MAX_POWER,
        16 * MAX_POWER + 1,
        3 * 16 * MAX_POWER + 7,
        9000,
    ];
    for engine in engines() {
        for total in (0..=1500).chain(long) {
            let key = rng.bytes(32);
            let auth = GcmAuth::new(engine, &key, &[0; 12]);
            let hk = auth.encrypt(&[0; 16]);
            let msg = rng.bytes(total);
            let split = rng.below(total.min(64) + 1);
            let (a, c) = msg.split_at(split);
            assert_eq!(
                auth.ghash(a, c),
                crate_ghash(&hk, a, c),
                "{engine:?} {total} {split}"
            );
            let mut g = GHash::new(&hk.into());
            g.update_padded(a);
            assert_eq!(
                auth.horner(a),
                <[u8; 16]>::from(g.finalize()),
                "{engine:?} horner"
            );
        }
    }
}

/// Keys at the edges of the field (0, 1, x^127, all ones, one bit set at a word boundary)
/// through both engines' tables, multiplies and hashes.
#[test]
fn engines_agree_on_edge_keys_and_powers_beyond_the_table() {
    let mut rng = Rng(7);
    let mut keys: Vec<Block> = vec![[0; 16], [0xff; 16]];
    for bit in [0usize, 63, 64, 127] {
        let mut k = [0u8; 16];
        k[bit / 8] = 0x80 >> (bit % 8);
        keys.push(k);
    }
    keys.push(rng.block());
    for hk in keys {
        let portable = portable::Key::from_h(&hk, 8);
        let clmul = clmul::available().then(|| clmul::Key::from_h(&hk, 8));
        let msg = rng.bytes(300);
        for (a, c) in [
            (&msg[..0], &msg[..0]),
            (&msg[..12], &msg[12..]),
            (&msg[..17], &msg[..200]),
        ] {
            let want = crate_ghash(&hk, a, c);
            let len = length_block(a.len(), c.len());
            assert_eq!(portable.ghash(&[a, c], Some(&len)), want);
            if let Some(clmul) = &clmul {
                assert_eq!(clmul.ghash(&[a, c], Some(&len)), want, "{hk:02x?}");
            }
        }
        let x = rng.block();
        for k in [1, 2, 7, 8, 9, 16, 17, 100] {
            // X * H^k by Horner: GHASH_H(X, 0, ..., 0) over k blocks.
            let mut g = GHash::new(&hk.into());
            g.update(&[x.into()]);
            for _ in 1..k {
                g.update(&[[0u8; 16].into()]);
            }
            let want: Block = g.finalize().into();
            assert_eq!(portable.mul_power(&x, k), want, "portable H^{k}");
            if let Some(clmul) = &clmul {
                assert_eq!(clmul.mul_power(&x, k), want, "clmul H^{k}");
            }
        }
    }
}

/// Every engine's tag equals the `aes-gcm` crate's, for 128- and 256-bit keys, every
/// ciphertext length 0-1500 and headers of 0-72 bytes.
#[test]
fn tag_equals_the_aes_gcm_crate_at_every_length() {
    let mut rng = Rng(0xdead_beef);
    for engine in engines() {
        for len in 0..=1500 {
            let key = rng.bytes(if len % 2 == 0 { 16 } else { 32 });
            let iv: [u8; 12] = rng.bytes(12).try_into().unwrap();
            let aad_len = rng.below(73);
            let aad = rng.bytes(aad_len);
            let mut data = rng.bytes(len);
            let tag: Block = if key.len() == 16 {
                Aes128Gcm::new_from_slice(&key)
                    .unwrap()
                    .encrypt_inout_detached(&iv.into(), &aad, data.as_mut_slice().into())
                    .unwrap()
                    .into()
            } else {
                Aes256Gcm::new_from_slice(&key)
                    .unwrap()
                    .encrypt_inout_detached(&iv.into(), &aad, data.as_mut_slice().into())
                    .unwrap()
                    .into()
            };
            let auth = GcmAuth::new(engine, &key, &[0; 12]);
            assert_eq!(auth.tag(&iv, &aad, &data), tag, "{engine:?} {len}");
        }
    }
}

/// The AES-NI key schedule and cipher equal FIPS 197 Appendix C and the `aes` crate for
/// random 128- and 256-bit keys.
#[test]
fn aes_ni_equals_fips_197_and_the_aes_crate() {
    if !clmul::available() {
        return;
    }
    let pt: Block = h("00112233445566778899aabbccddeeff").try_into().unwrap();
    for (key, ct) in [
        (
            "000102030405060708090a0b0c0d0e0f",
            "69c4e0d86a7b0430d8cdb78070b4c55a",
        ),
        (
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "8ea2b7ca516745bfeafc49904b496089",
        ),
    ] {
        assert_eq!(clmul::Key::new(&h(key), 1).encrypt(&pt).to_vec(), h(ct));
    }
    let mut rng = Rng(99);
    for i in 0..200 {
        let key = rng.bytes(if i % 2 == 0 { 16 } else { 32 });
        let block = rng.block();
        assert_eq!(
            clmul::Key::new(&key, 1).encrypt(&block),
            portable::Key::new(&key, 1).encrypt(&block),
            "{key:02x?}"
        );
    }
}

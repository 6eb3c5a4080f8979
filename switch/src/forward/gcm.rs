//! AES-GCM authentication without the payload cipher (WIRE.md section 6).
//!
//! GCM's tag is T = E_K(J0) xor GHASH_H(A, C). Verifying needs one GHASH over the packet
//! and one AES block; after a header change A -> A' (SSRC, SEQ and ROC unchanged, so J0 is
//! unchanged) the new tag is
//!
//! ```text
//! T' = T xor (Horner_H(A) xor Horner_H(A')) * H^(n+1) xor (L xor L') * H
//! ```
//!
//! with n = ceil(|C| / 16) and L the length block: O(header), from a per-key table of
//! powers of H. The ciphertext is never decrypted. Multiplications use the `ghash` crate's
//! own (CLMUL-accelerated) arithmetic: X * H^k = GHASH_{H^k}(X).

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::{Aes128, Aes256};
use ghash::GHash;
use ghash::universal_hash::UniversalHash;
use zeroize::Zeroize;

use super::tx::SLOT_SIZE;

/// Highest power of H kept: n + 1 for the largest ciphertext a slot holds.
const MAX_POWER: usize = SLOT_SIZE.div_ceil(16) + 1;

type Block = [u8; 16];

enum BlockCipher {
    Aes128(Aes128),
    Aes256(Aes256),
}

/// A GCM session key's authentication half: E_K for J0, GHASH key H and its powers.
/// Zeroized on drop (the `aes` and `ghash` types zeroize themselves).
pub(crate) struct GcmAuth {
    cipher: BlockCipher,
    salt: [u8; 12],
    /// powers[k - 1] multiplies by H^k.
    powers: Box<[GHash]>,
}

impl Drop for GcmAuth {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

fn xor(a: Block, b: Block) -> Block {
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// The GHASH length block: len(A) * 8 || len(C) * 8, 64 bits each.
fn length_block(a_len: usize, c_len: usize) -> Block {
    let mut l = [0u8; 16];
    l[..8].copy_from_slice(&(a_len as u64 * 8).to_be_bytes());
    l[8..].copy_from_slice(&(c_len as u64 * 8).to_be_bytes());
    l
}

impl GcmAuth {
    /// From a GCM session key (16 or 32 bytes) and session salt.
    pub(crate) fn new(key: &[u8], salt: &[u8; 12]) -> Self {
        let cipher = match key.len() {
            16 => BlockCipher::Aes128(Aes128::new_from_slice(key).expect("16-byte key")),
            32 => BlockCipher::Aes256(Aes256::new_from_slice(key).expect("32-byte key")),
            n => panic!("GCM key of {n} bytes"),
        };
        let mut me = Self {
            cipher,
            salt: *salt,
            powers: Box::new([]),
        };
        let mut h = me.encrypt([0u8; 16]);
        let base = GHash::new(&h.into());
        let mut powers = Vec::with_capacity(MAX_POWER);
        powers.push(base.clone());
        let mut cur = h;
        for _ in 1..MAX_POWER {
            let mut g = base.clone();
            g.update(&[cur.into()]);
            cur = g.finalize().into();
            powers.push(GHash::new(&cur.into()));
        }
        h.zeroize();
        cur.zeroize();
        me.powers = powers.into_boxed_slice();
        me
    }

    fn encrypt(&self, block: Block) -> Block {
        let mut b = block.into();
        match &self.cipher {
            BlockCipher::Aes128(a) => a.encrypt_block(&mut b),
            BlockCipher::Aes256(a) => a.encrypt_block(&mut b),
        }
        b.into()
    }

    pub(crate) fn salt(&self) -> &[u8; 12] {
        &self.salt
    }

    /// X * H^k.
    fn mul_power(&self, x: Block, k: usize) -> Block {
        let mut g = self.powers[k - 1].clone();
        g.update(&[x.into()]);
        g.finalize().into()
    }

    /// Horner_H(A): GHASH over A's zero-padded blocks without the length block.
    pub(crate) fn horner(&self, a: &[u8]) -> Block {
        let mut g = self.powers[0].clone();
        g.update_padded(a);
        g.finalize().into()
    }

    /// GHASH_H(A, C) (NIST SP 800-38D §6.4).
    pub(crate) fn ghash(&self, a: &[u8], c: &[u8]) -> Block {
        let mut g = self.powers[0].clone();
        g.update_padded(a);
        g.update_padded(c);
        g.update(&[length_block(a.len(), c.len()).into()]);
        g.finalize().into()
    }

    /// The GCM tag of (A, C) under the 96-bit IV: GHASH xor E_K(J0), J0 = IV || 0^31 || 1.
    pub(crate) fn tag(&self, iv: &[u8; 12], a: &[u8], c: &[u8]) -> Block {
        let mut j0 = [0u8; 16];
        j0[..12].copy_from_slice(iv);
        j0[15] = 1;
        xor(self.ghash(a, c), self.encrypt(j0))
    }

    /// The tag after replacing a header whose Horner value is `horner_a` (length `a_len`)
    /// with `a_new`, over an unchanged ciphertext of `c_len` bytes.
    pub(crate) fn retag_header(
        &self,
        tag: Block,
        horner_a: Block,
        a_len: usize,
        a_new: &[u8],
        c_len: usize,
    ) -> Block {
        let n = c_len.div_ceil(16);
        let d = xor(horner_a, self.horner(a_new));
        let mut t = xor(tag, self.mul_power(d, n + 1));
        if a_len != a_new.len() {
            let dl = xor(length_block(a_len, c_len), length_block(a_new.len(), c_len));
            t = xor(t, self.mul_power(dl, 1));
        }
        t
    }

    /// The tag after any change of A and C with the IV unchanged:
    /// T' = T xor GHASH(A, C) xor GHASH(A', C'). Costs two full GHASHes.
    #[cfg(test)]
    pub(crate) fn retag_general(
        &self,
        tag: Block,
        a: &[u8],
        c: &[u8],
        a2: &[u8],
        c2: &[u8],
    ) -> Block {
        xor(xor(tag, self.ghash(a, c)), self.ghash(a2, c2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    // RFC 7714 §16.1.1 session key, salt and packet.
    fn rfc7714() -> (GcmAuth, [u8; 12], Vec<u8>, Vec<u8>, Block) {
        let salt: [u8; 12] = h("517569642070726f2071756f").try_into().unwrap();
        let auth = GcmAuth::new(&h("000102030405060708090a0b0c0d0e0f"), &salt);
        let iv: [u8; 12] = h("51753c6580c2726f20718414").try_into().unwrap();
        let a = h("8040f17b8041f8d35501a0b2");
        let c = h("f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833");
        let tag: Block = h("899d7f27beb16a9152cf765ee4390cce").try_into().unwrap();
        (auth, iv, a, c, tag)
    }

    #[test]
    fn rfc7714_tag_and_h() {
        let (auth, iv, a, c, tag) = rfc7714();
        assert_eq!(
            auth.encrypt([0; 16]).to_vec(),
            h("c6a13b37878f5b826f4f8162a1c8d879")
        );
        assert_eq!(auth.tag(&iv, &a, &c), tag);
    }

    #[test]
    fn wire_section_6_add_csrc() {
        // WIRE.md section 6: add CSRC 11223344 (CC = 1): the header grows by 4 bytes.
        let (auth, iv, a, c, tag) = rfc7714();
        let a2 = h("8140f17b8041f8d35501a0b211223344");
        let want = h("1b0f8784bb6d3f87b9d4a3ed9e59c848");
        assert_eq!(
            auth.retag_header(tag, auth.horner(&a), a.len(), &a2, c.len())
                .to_vec(),
            want
        );
        assert_eq!(auth.tag(&iv, &a2, &c).to_vec(), want);
        assert_eq!(auth.retag_general(tag, &a, &c, &a2, &c).to_vec(), want);
    }

    #[test]
    fn wire_section_6_drop_last_ciphertext_byte() {
        let (auth, _, a, c, tag) = rfc7714();
        let t = auth.retag_general(tag, &a, &c, &a, &c[..c.len() - 1]);
        assert_eq!(t.to_vec(), h("3ed21e805cdcdf093c07dd9824e364d7"));
    }

    #[test]
    fn retag_matches_full_gcm_for_many_lengths() {
        let auth = GcmAuth::new(&[7u8; 32], &[9u8; 12]);
        let iv = [3u8; 12];
        for c_len in [0usize, 1, 15, 16, 17, 160, 1000, 1188, 1450] {
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
                    auth.retag_header(t, auth.horner(&a), a.len(), &a2, c.len()),
                    auth.tag(&iv, &a2, &c),
                    "{c_len}"
                );
            }
        }
    }
}

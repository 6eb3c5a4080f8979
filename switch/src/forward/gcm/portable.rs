//! The portable engine: the `aes` crate for E_K and the `ghash` crate for GHASH, the
//! reference and the engine where the CPU lacks PCLMULQDQ or AES-NI. The `ghash` crate's
//! keyed state is its own (CLMUL-accelerated where it can) multiplier, so the power table
//! is one keyed state per power: X * H^k = GHASH_{H^k}(X).

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::{Aes128, Aes256};
use ghash::GHash;
use ghash::universal_hash::UniversalHash;
use zeroize::Zeroize;

use super::Block;

enum BlockCipher {
    Aes128(Aes128),
    Aes256(Aes256),
}

/// A GCM key: the block cipher and keyed GHASH states for H^1..H^count (the crates' types
/// zeroize themselves on drop).
pub(super) struct Key {
    cipher: BlockCipher,
    powers: Box<[GHash]>,
}

impl Key {
    /// From an AES-128 or AES-256 key, with `count` powers of H (at least 1). Panics on
    /// another key length.
    pub(super) fn new(key: &[u8], count: usize) -> Self {
        let cipher = match key.len() {
            16 => BlockCipher::Aes128(Aes128::new_from_slice(key).expect("16-byte key")),
            32 => BlockCipher::Aes256(Aes256::new_from_slice(key).expect("32-byte key")),
            n => panic!("AES key of {n} bytes"),
        };
        let mut me = Self {
            cipher,
            powers: Box::new([]),
        };
        let mut h = me.encrypt(&[0; 16]);
        me.powers = powers(&h, count);
        h.zeroize();
        me
    }

    /// A table for a chosen H (the cipher is keyed with zeros): for tests at the edges of
    /// the field.
    #[cfg(test)]
    pub(super) fn from_h(h: &Block, count: usize) -> Self {
        Self {
            cipher: BlockCipher::Aes128(Aes128::new(&[0; 16].into())),
            powers: powers(h, count),
        }
    }

    /// E_K(block).
    pub(super) fn encrypt(&self, block: &Block) -> Block {
        let mut b = (*block).into();
        match &self.cipher {
            BlockCipher::Aes128(a) => a.encrypt_block(&mut b),
            BlockCipher::Aes256(a) => a.encrypt_block(&mut b),
        }
        b.into()
    }

    /// As [`super::clmul::Key::ghash`].
    pub(super) fn ghash(&self, parts: &[&[u8]], last: Option<&Block>) -> Block {
        let mut g = self.powers[0].clone();
        for p in parts {
            g.update_padded(p);
        }
        if let Some(b) = last {
            g.update(&[(*b).into()]);
        }
        g.finalize().into()
    }

    /// x * H^k, k >= 1 (powers beyond the table by repeated multiplication).
    pub(super) fn mul_power(&self, x: &Block, mut k: usize) -> Block {
        let count = self.powers.len();
        let mut v = *x;
        while k > count {
            v = self.mul_power(&v, count);
            k -= count;
        }
        let mut g = self.powers[k - 1].clone();
        g.update(&[v.into()]);
        g.finalize().into()
    }
}

fn powers(h: &Block, count: usize) -> Box<[GHash]> {
    let base = GHash::new(&(*h).into());
    let mut powers = Vec::with_capacity(count);
    let mut cur = *h;
    for _ in 0..count {
        powers.push(GHash::new(&cur.into()));
        let mut g = base.clone();
        g.update(&[cur.into()]);
        cur = g.finalize().into();
    }
    cur.zeroize();
    powers.into_boxed_slice()
}

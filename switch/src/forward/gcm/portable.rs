//! GHASH with the `ghash` crate: the reference, and the engine where the CPU lacks
//! PCLMULQDQ. The crate's keyed state is its own (CLMUL-accelerated where it can)
//! multiplier, so the power table is one keyed state per power: X * H^k = GHASH_{H^k}(X).

use ghash::GHash;
use ghash::universal_hash::UniversalHash;
use zeroize::Zeroize;

use super::Block;

/// Keyed states for H^1..H^count (zeroized on drop by the crate).
pub(super) struct Powers(Box<[GHash]>);

impl Powers {
    pub(super) fn new(h: &Block, count: usize) -> Self {
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
        Self(powers.into_boxed_slice())
    }

    /// As [`super::clmul::ghash`].
    pub(super) fn ghash(&self, parts: &[&[u8]], last: Option<&Block>) -> Block {
        let mut g = self.0[0].clone();
        for p in parts {
            g.update_padded(p);
        }
        if let Some(b) = last {
            g.update(&[(*b).into()]);
        }
        g.finalize().into()
    }

    /// As [`super::clmul::mul_power`].
    pub(super) fn mul_power(&self, x: &Block, mut k: usize) -> Block {
        let mut v = *x;
        while k > self.0.len() {
            v = self.mul_power(&v, self.0.len());
            k -= self.0.len();
        }
        let mut g = self.0[k - 1].clone();
        g.update(&[v.into()]);
        g.finalize().into()
    }
}

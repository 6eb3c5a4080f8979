//! AES-GCM authentication without the payload cipher (WIRE.md section 6).
//!
//! GCM's tag is T = E_K(J0) xor GHASH_H(A, C). Verifying needs one GHASH over the packet
//! and one AES block; after a header change A -> A' (SSRC, SEQ and ROC unchanged, so J0 is
//! unchanged) the new tag is
//!
//! ```text
//! T' = T xor (Horner_H(A) xor Horner_H(A')) * H^(n+1) xor (L xor L') * H
//!    = T xor sum_i A_i * H^(a+n+2-i) xor sum_i A'_i * H^(a'+n+2-i) xor (L xor L') * H
//! ```
//!
//! with n = ceil(|C| / 16), a = ceil(|A| / 16) and L the length block: O(header), each
//! header block times its power from a per-key table, one reduction. When A and A' have
//! the same length, Horner's linearity leaves one product per block of A xor A'. The
//! ciphertext is never decrypted.
//!
//! Two engines compute it: [`GhashEngine::Clmul`] (`clmul.rs`: PCLMULQDQ over the table,
//! one reduction per packet, and AES-NI for E_K(J0), all in registers) and
//! [`GhashEngine::Portable`] (`portable.rs`: the `ghash` and `aes` crates), the reference
//! and the fallback.

mod clmul;
mod portable;
#[cfg(test)]
mod tests;

use zeroize::Zeroize;

use crate::tx::SLOT_SIZE;

/// Highest power of H kept: n + 1 for the largest ciphertext a slot holds, which also
/// covers a whole packet's GHASH (header, ciphertext and length block) in one reduction.
const MAX_POWER: usize = SLOT_SIZE.div_ceil(16) + 1;

type Block = [u8; 16];

/// How GHASH and E_K(J0) are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GhashEngine {
    /// The `ghash` and `aes` crates, one keyed GHASH state per power of H: the reference
    /// and the fallback.
    Portable,
    /// PCLMULQDQ over a table of powers of H, one reduction per packet; AES-NI.
    Clmul,
}

impl GhashEngine {
    /// The best engine this CPU runs.
    pub fn detect() -> Self {
        if clmul::available() {
            Self::Clmul
        } else {
            Self::Portable
        }
    }

    /// Whether this CPU runs it.
    pub fn available(self) -> bool {
        match self {
            Self::Portable => true,
            Self::Clmul => clmul::available(),
        }
    }
}

/// The key in the engine's form (each zeroizes itself on drop).
#[expect(
    clippy::large_enum_variant,
    reason = "GcmAuth is boxed by its owner; the hot variant stays inline, one pointer chase fewer per packet"
)]
enum Keyed {
    Portable(Box<portable::Key>),
    Clmul(clmul::Key),
}

/// A GCM session key's authentication half: E_K for J0, GHASH key H and its powers.
pub(crate) struct GcmAuth {
    salt: [u8; 12],
    key: Keyed,
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
    /// From a GCM session key (16 or 32 bytes) and session salt, with `engine` (the
    /// portable one if the CPU lacks what `engine` needs). Panics on another key length.
    pub(crate) fn new(engine: GhashEngine, key: &[u8], salt: &[u8; 12]) -> Self {
        let key = if engine == GhashEngine::Clmul && clmul::available() {
            Keyed::Clmul(clmul::Key::new(key, MAX_POWER))
        } else {
            Keyed::Portable(Box::new(portable::Key::new(key, MAX_POWER)))
        };
        Self { salt: *salt, key }
    }

    /// The engine this key runs on.
    #[cfg(test)]
    pub(crate) fn engine(&self) -> GhashEngine {
        match self.key {
            Keyed::Portable(_) => GhashEngine::Portable,
            Keyed::Clmul(_) => GhashEngine::Clmul,
        }
    }

    pub(crate) fn salt(&self) -> &[u8; 12] {
        &self.salt
    }

    /// E_K(block).
    #[cfg(test)]
    fn encrypt(&self, block: &Block) -> Block {
        match &self.key {
            Keyed::Portable(k) => k.encrypt(block),
            Keyed::Clmul(k) => k.encrypt(block),
        }
    }

    #[cfg(test)]
    fn hash(&self, parts: &[&[u8]], last: Option<&Block>) -> Block {
        match &self.key {
            Keyed::Portable(k) => k.ghash(parts, last),
            Keyed::Clmul(k) => k.ghash(parts, last),
        }
    }

    /// Horner_H(A): GHASH over A's zero-padded blocks without the length block.
    #[cfg(test)]
    pub(crate) fn horner(&self, a: &[u8]) -> Block {
        self.hash(&[a], None)
    }

    /// GHASH_H(A, C) (NIST SP 800-38D §6.4).
    #[cfg(test)]
    pub(crate) fn ghash(&self, a: &[u8], c: &[u8]) -> Block {
        self.hash(&[a, c], Some(&length_block(a.len(), c.len())))
    }

    /// The GCM tag of (A, C) under the 96-bit IV: GHASH xor E_K(J0), J0 = IV || 0^31 || 1
    /// (NIST SP 800-38D §7.1).
    pub(crate) fn tag(&self, iv: &[u8; 12], a: &[u8], c: &[u8]) -> Block {
        let mut j0 = [0u8; 16];
        j0[..12].copy_from_slice(iv);
        j0[15] = 1;
        let len = length_block(a.len(), c.len());
        match &self.key {
            Keyed::Portable(k) => xor(k.ghash(&[a, c], Some(&len)), k.encrypt(&j0)),
            Keyed::Clmul(k) => k.tag(&j0, &[a, c], Some(&len)),
        }
    }

    /// The tag after replacing the header `a_old` with `a_new`, over an unchanged
    /// ciphertext of `c_len` bytes and the same IV.
    pub(crate) fn retag_header(
        &self,
        tag: Block,
        a_old: &[u8],
        a_new: &[u8],
        c_len: usize,
    ) -> Block {
        let k = match &self.key {
            Keyed::Portable(k) => k,
            Keyed::Clmul(k) => return k.retag_header(&tag, a_old, a_new, c_len),
        };
        let n = c_len.div_ceil(16);
        let sum = |terms: &mut dyn Iterator<Item = (Block, usize)>| {
            terms.fold([0; 16], |s, (x, p)| xor(s, k.mul_power(&x, p)))
        };
        let delta = if a_old.len() == a_new.len() {
            let pairs = header_terms(a_old, n).zip(header_terms(a_new, n));
            sum(&mut pairs.map(|((x, p), (y, _))| (xor(x, y), p)))
        } else {
            let dl = xor(
                length_block(a_old.len(), c_len),
                length_block(a_new.len(), c_len),
            );
            let terms = header_terms(a_old, n).chain(header_terms(a_new, n));
            sum(&mut terms.chain(std::iter::once((dl, 1))))
        };
        xor(tag, delta)
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

/// A's zero-padded blocks, each with the power of H that multiplies it in GHASH(A, C) when
/// C has `n` blocks: the i-th of a blocks (from 1) by H^(a+n+2-i).
fn header_terms(a: &[u8], n: usize) -> impl Iterator<Item = (Block, usize)> + '_ {
    let blocks = a.len().div_ceil(16);
    a.chunks(16).enumerate().map(move |(i, chunk)| {
        let mut b = [0u8; 16];
        b[..chunk.len()].copy_from_slice(chunk);
        (b, blocks + n + 1 - i)
    })
}

//! GHASH with PCLMULQDQ over a per-key table of powers of H.
//!
//! A packet of m blocks X_1..X_m hashes to sum X_i * H^(m-i+1): every block is multiplied
//! by its own power from the table and the 256-bit products are summed unreduced, with one
//! reduction per packet and no serial dependency between blocks (perf-limits.md, "GHASH":
//! serial Horner waits a multiply and a reduction per block). Messages longer than the
//! table are taken in chunks of its size, one reduction each.
//!
//! The arithmetic is POLYVAL's (RFC 8452 Appendix A): a GHASH block, byte-reversed, is a
//! POLYVAL element, and GHASH's H becomes mulX_POLYVAL(ByteReverse(H)). POLYVAL's product
//! dot(a, b) = a * b * x^-128 needs no bit reflection, and its Montgomery reduction is two
//! carry-less multiplies by the constant 0xc2...01. The table holds P_k = dot(P_(k-1),
//! P_1), so that dot(X, P_k) is the POLYVAL image of X * H^k, each with its Karatsuba
//! half (P_k's two 64-bit halves xored): a product then takes three carry-less multiplies
//! instead of four, and PCLMULQDQ's throughput is what bounds the loop. All the `unsafe`
//! and `target_feature` code of the engine is here.
#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m128i, _mm_clmulepi64_si128, _mm_loadu_si128, _mm_set_epi8, _mm_set_epi64x,
    _mm_setzero_si128, _mm_shuffle_epi8, _mm_shuffle_epi32, _mm_slli_si128, _mm_srli_si128,
    _mm_storeu_si128, _mm_xor_si128,
};

use super::Block;

/// Whether this CPU has what the engine needs (PCLMULQDQ, SSSE3).
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("pclmulqdq")
            && std::arch::is_x86_feature_detected!("ssse3")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The low 64 bits of v xor its high 64 bits, the operand of Karatsuba's middle product.
fn karatsuba_half(v: u128) -> u128 {
    (v ^ (v >> 64)) & u128::from(u64::MAX)
}

/// P_k and its Karatsuba half, from a table laid out by [`powers`].
fn entry(table: &[u128], k: usize) -> (&u128, &u128) {
    (&table[2 * k - 2], &table[2 * k - 1])
}

/// mulX_POLYVAL (RFC 8452 Appendix A): multiplies by x modulo x^128 + x^127 + x^126 +
/// x^121 + 1.
fn mul_x(v: u128) -> u128 {
    let carry = v >> 127;
    (v << 1) ^ (carry * 0xc200_0000_0000_0000_0000_0000_0000_0001)
}

/// The table for the GHASH key `h`: P_1..P_count (POLYVAL elements as little-endian u128),
/// each followed by its Karatsuba half. Panics if the CPU lacks the instructions; callers
/// check [`available`] first.
pub(super) fn powers(h: &Block, count: usize) -> Box<[u128]> {
    assert!(available(), "PCLMULQDQ engine on a CPU without PCLMULQDQ");
    let mut table = vec![0u128; 2 * count].into_boxed_slice();
    if count == 0 {
        return table;
    }
    table[0] = mul_x(u128::from_be_bytes(*h));
    table[1] = karatsuba_half(table[0]);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `available()` checked PCLMULQDQ and SSSE3, the features `fill_powers` is
    // compiled for; it touches only the slice it is given.
    unsafe {
        fill_powers(&mut table);
    }
    table
}

/// GHASH_H of `parts`, each zero-padded to whole blocks, followed by `last` when given (the
/// length block), with `powers` from [`powers`] for H. Panics if `powers` is empty or the
/// CPU lacks the instructions.
pub(super) fn ghash(powers: &[u128], parts: &[&[u8]], last: Option<&Block>) -> Block {
    assert!(available(), "PCLMULQDQ engine on a CPU without PCLMULQDQ");
    assert!(powers.len() >= 2, "empty power table");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `powers`: the CPU has the features `ghash_clmul` is compiled for, and
    // it reads only the slices it is given.
    unsafe {
        ghash_clmul(powers, parts, last)
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!()
}

/// x * H^k for 1 <= k (powers beyond the table are reached by repeated multiplication).
/// Panics if `k` is 0, `powers` is empty or the CPU lacks the instructions.
#[cfg(test)]
pub(super) fn mul_power(powers: &[u128], x: &Block, k: usize) -> Block {
    assert!(available(), "PCLMULQDQ engine on a CPU without PCLMULQDQ");
    assert!(
        k >= 1 && powers.len() >= 2,
        "no power H^{k} in an empty table"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `powers`.
    unsafe {
        mul_power_clmul(powers, x, k)
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!()
}

/// sum X_i * H^(k_i) over `terms`, every k_i >= 1: one reduction for the terms whose power
/// is in the table. Panics if a k is 0, `powers` is empty or the CPU lacks the
/// instructions.
pub(super) fn sum_products(powers: &[u128], terms: impl Iterator<Item = (Block, usize)>) -> Block {
    assert!(available(), "PCLMULQDQ engine on a CPU without PCLMULQDQ");
    assert!(powers.len() >= 2, "empty power table");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `powers`.
    unsafe {
        sum_products_clmul(powers, terms)
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,ssse3")]
fn sum_products_clmul(powers: &[u128], terms: impl Iterator<Item = (Block, usize)>) -> Block {
    let count = powers.len() / 2;
    let mut sum = Wide::zero();
    let mut beyond = [0u8; 16];
    for (x, k) in terms {
        assert!(k >= 1, "no power H^0 in the table");
        if k <= count {
            let (p, p_half) = entry(powers, k);
            sum.add_product(load_block(&x), load_u128(p), load_u128(p_half));
        } else {
            let y = mul_power_clmul(powers, &x, k);
            beyond = std::array::from_fn(|i| beyond[i] ^ y[i]);
        }
    }
    let r = store_block(sum.reduce());
    std::array::from_fn(|i| r[i] ^ beyond[i])
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,ssse3")]
fn byte_reverse(x: __m128i) -> __m128i {
    _mm_shuffle_epi8(
        x,
        _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
    )
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,ssse3")]
fn load_u128(v: &u128) -> __m128i {
    // SAFETY: `v` is 16 readable bytes; loadu has no alignment requirement. x86 is
    // little-endian, so the low 64 bits of `v` land in the low lane.
    unsafe { _mm_loadu_si128(std::ptr::from_ref(v).cast()) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,ssse3")]
fn store_u128(x: __m128i) -> u128 {
    let mut v = 0u128;
    // SAFETY: `v` is 16 writable bytes; storeu has no alignment requirement.
    unsafe { _mm_storeu_si128(std::ptr::from_mut(&mut v).cast(), x) };
    v
}

/// A GHASH block (big-endian bytes) as a POLYVAL element.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,ssse3")]
fn load_block(b: &[u8; 16]) -> __m128i {
    // SAFETY: `b` is 16 readable bytes; loadu has no alignment requirement.
    byte_reverse(unsafe { _mm_loadu_si128(b.as_ptr().cast()) })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,ssse3")]
fn store_block(x: __m128i) -> Block {
    let mut b = [0u8; 16];
    // SAFETY: `b` is 16 writable bytes; storeu has no alignment requirement.
    unsafe { _mm_storeu_si128(b.as_mut_ptr().cast(), byte_reverse(x)) };
    b
}

/// A sum of 256-bit carry-less products, not yet reduced: lo + cross * x^64 + hi * x^128,
/// where the cross terms are kept in Karatsuba form, cross = mid xor lo xor hi.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Wide {
    lo: __m128i,
    mid: __m128i,
    hi: __m128i,
}

#[cfg(target_arch = "x86_64")]
impl Wide {
    #[target_feature(enable = "pclmulqdq,ssse3")]
    fn zero() -> Self {
        Self {
            lo: _mm_setzero_si128(),
            mid: _mm_setzero_si128(),
            hi: _mm_setzero_si128(),
        }
    }

    /// self += a * b, with `b_half` the Karatsuba half of b (three 64x64 products:
    /// (a0 + a1)(b0 + b1) = a0 b0 + a1 b1 + cross).
    #[target_feature(enable = "pclmulqdq,ssse3")]
    fn add_product(&mut self, a: __m128i, b: __m128i, b_half: __m128i) {
        let a_half = _mm_xor_si128(a, _mm_shuffle_epi32::<0x4e>(a));
        self.lo = _mm_xor_si128(self.lo, _mm_clmulepi64_si128::<0x00>(a, b));
        self.hi = _mm_xor_si128(self.hi, _mm_clmulepi64_si128::<0x11>(a, b));
        self.mid = _mm_xor_si128(self.mid, _mm_clmulepi64_si128::<0x00>(a_half, b_half));
    }

    /// self * x^-128 mod the POLYVAL polynomial: two Montgomery steps, each folding the low
    /// 64 bits with one multiply by 0xc2 << 56 (RFC 8452 Appendix A; Gueron's GFMUL).
    #[target_feature(enable = "pclmulqdq,ssse3")]
    fn reduce(self) -> __m128i {
        let cross = _mm_xor_si128(self.mid, _mm_xor_si128(self.lo, self.hi));
        let lo = _mm_xor_si128(self.lo, _mm_slli_si128::<8>(cross));
        let hi = _mm_xor_si128(self.hi, _mm_srli_si128::<8>(cross));
        let poly = _mm_set_epi64x(0xc200_0000_0000_0000_u64 as i64, 1);
        let t = _mm_clmulepi64_si128::<0x10>(lo, poly);
        let lo = _mm_xor_si128(_mm_shuffle_epi32::<0x4e>(lo), t);
        let t = _mm_clmulepi64_si128::<0x10>(lo, poly);
        let lo = _mm_xor_si128(_mm_shuffle_epi32::<0x4e>(lo), t);
        _mm_xor_si128(hi, lo)
    }
}

/// POLYVAL's dot(a, b) = a * b * x^-128.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,ssse3")]
fn dot(a: __m128i, b: __m128i) -> __m128i {
    let mut w = Wide::zero();
    w.add_product(a, b, _mm_xor_si128(b, _mm_shuffle_epi32::<0x4e>(b)));
    w.reduce()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,ssse3")]
fn fill_powers(table: &mut [u128]) {
    let p1 = load_u128(&table[0]);
    let mut p = p1;
    for pair in table[2..].chunks_exact_mut(2) {
        p = dot(p, p1);
        pair[0] = store_u128(p);
        pair[1] = karatsuba_half(pair[0]);
    }
}

/// Sums the blocks it is fed, each times its power, a chunk of up to `count` blocks per
/// reduction (the table's size). The first chunk is the short one, so that every later
/// chunk fills the table and the last block of the message is the last of a chunk (times
/// H^1).
#[cfg(target_arch = "x86_64")]
struct Aggregate<'a> {
    table: &'a [u128],
    count: usize,
    sum: Wide,
    /// The reduced sum of the chunks before this one; added to the chunk's first block
    /// (Horner across chunks), zero otherwise.
    carry: __m128i,
    /// Blocks left in this chunk: the next block is multiplied by H^left.
    left: usize,
}

#[cfg(target_arch = "x86_64")]
impl<'a> Aggregate<'a> {
    #[target_feature(enable = "pclmulqdq,ssse3")]
    fn new(table: &'a [u128], blocks: usize) -> Self {
        let count = table.len() / 2;
        Self {
            table,
            count,
            sum: Wide::zero(),
            carry: _mm_setzero_si128(),
            left: if blocks == 0 {
                0
            } else {
                (blocks - 1) % count + 1
            },
        }
    }

    /// Ends the chunk when its last block was fed.
    #[target_feature(enable = "pclmulqdq,ssse3")]
    fn close_chunk(&mut self) {
        if self.left == 0 {
            self.carry = self.sum.reduce();
            self.sum = Wide::zero();
            self.left = self.count;
        }
    }

    #[target_feature(enable = "pclmulqdq,ssse3")]
    fn block(&mut self, x: __m128i) {
        let (p, p_half) = entry(self.table, self.left);
        let x = _mm_xor_si128(x, self.carry);
        self.carry = _mm_setzero_si128();
        self.sum.add_product(x, load_u128(p), load_u128(p_half));
        self.left -= 1;
        self.close_chunk();
    }

    /// Feeds `bytes` zero-padded to whole blocks.
    #[target_feature(enable = "pclmulqdq,ssse3")]
    fn padded(&mut self, bytes: &[u8]) {
        let mut blocks = bytes.chunks_exact(16);
        while blocks.len() > 0 {
            // A run of whole blocks within the chunk, against descending powers, without a
            // per-block check.
            let run = blocks.len().min(self.left);
            let entries = self.table[2 * (self.left - run)..2 * self.left].chunks_exact(2);
            let mut carry = self.carry;
            for (b, e) in (&mut blocks).take(run).zip(entries.rev()) {
                let x = _mm_xor_si128(load_block(b.try_into().expect("16-byte chunk")), carry);
                carry = _mm_setzero_si128();
                self.sum.add_product(x, load_u128(&e[0]), load_u128(&e[1]));
            }
            self.carry = carry;
            self.left -= run;
            self.close_chunk();
        }
        let tail = blocks.remainder();
        if !tail.is_empty() {
            let mut b = [0u8; 16];
            b[..tail.len()].copy_from_slice(tail);
            self.block(load_block(&b));
        }
    }

    /// The hash once every block was fed.
    fn finish(self) -> __m128i {
        self.carry
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,ssse3")]
fn ghash_clmul(powers: &[u128], parts: &[&[u8]], last: Option<&Block>) -> Block {
    let blocks =
        parts.iter().map(|p| p.len().div_ceil(16)).sum::<usize>() + usize::from(last.is_some());
    let mut agg = Aggregate::new(powers, blocks);
    for p in parts {
        agg.padded(p);
    }
    if let Some(b) = last {
        agg.block(load_block(b));
    }
    store_block(agg.finish())
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,ssse3")]
fn mul_power_clmul(powers: &[u128], x: &Block, mut k: usize) -> Block {
    let count = powers.len() / 2;
    let mut v = load_block(x);
    let mut w = Wide::zero();
    while k > count {
        let (p, p_half) = entry(powers, count);
        w.add_product(v, load_u128(p), load_u128(p_half));
        v = w.reduce();
        w = Wide::zero();
        k -= count;
    }
    let (p, p_half) = entry(powers, k);
    w.add_product(v, load_u128(p), load_u128(p_half));
    store_block(w.reduce())
}

//! The x86 engine: GHASH with PCLMULQDQ over a per-key table of powers of H, and E_K with
//! AES-NI, so that a tag is computed without leaving registers.
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
//! instead of four, and PCLMULQDQ's throughput (one every 2 cycles on this machine's
//! Zen 2) is what bounds the loop.
//!
//! All the `unsafe` and `target_feature` code of the engine is here. A [`Key`] exists only
//! once [`available`] said yes, which is what makes its methods' `unsafe` blocks sound.
#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m128i, _mm_aesenc_si128, _mm_aesenclast_si128, _mm_aeskeygenassist_si128,
    _mm_clmulepi64_si128, _mm_loadu_si128, _mm_set_epi8, _mm_set_epi64x, _mm_setzero_si128,
    _mm_shuffle_epi8, _mm_shuffle_epi32, _mm_slli_si128, _mm_srli_si128, _mm_storeu_si128,
    _mm_xor_si128,
};

use zeroize::Zeroize;

use super::Block;

/// Whether this CPU has what the engine needs (PCLMULQDQ, AES-NI, SSSE3).
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("pclmulqdq")
            && std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("ssse3")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A GCM key in the engine's form: AES round keys, and the table of powers of H. Zeroized
/// on drop.
pub(super) struct Key {
    /// Round keys 0..=rounds (AES-128: 10 rounds, AES-256: 14).
    round_keys: [u128; 15],
    rounds: usize,
    /// P_1..P_count, each followed by its Karatsuba half (POLYVAL elements as
    /// little-endian u128).
    table: Box<[u128]>,
}

impl Drop for Key {
    fn drop(&mut self) {
        self.round_keys.zeroize();
        self.table.zeroize();
    }
}

/// The low 64 bits of v xor its high 64 bits, the operand of Karatsuba's middle product.
fn karatsuba_half(v: u128) -> u128 {
    (v ^ (v >> 64)) & u128::from(u64::MAX)
}

/// mulX_POLYVAL (RFC 8452 Appendix A): multiplies by x modulo x^128 + x^127 + x^126 +
/// x^121 + 1.
fn mul_x(v: u128) -> u128 {
    let carry = v >> 127;
    (v << 1) ^ (carry * 0xc200_0000_0000_0000_0000_0000_0000_0001)
}

impl Key {
    /// From an AES-128 or AES-256 key, with `count` powers of H (at least 1). Panics if the
    /// CPU lacks the instructions (callers check [`available`] first) or on another key
    /// length.
    pub(super) fn new(key: &[u8], count: usize) -> Self {
        assert!(
            available(),
            "PCLMULQDQ engine on a CPU without PCLMULQDQ and AES-NI"
        );
        assert!(count >= 1, "a table without H");
        let mut me = Self {
            round_keys: [0; 15],
            rounds: match key.len() {
                16 => 10,
                32 => 14,
                n => panic!("AES key of {n} bytes"),
            },
            table: vec![0u128; 2 * count].into_boxed_slice(),
        };
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `available()` checked PCLMULQDQ, AES-NI and SSSE3, the features these
        // functions are compiled for; they touch only what they are given.
        unsafe {
            expand_key(key, &mut me.round_keys);
            let mut h = me.encrypt(&[0; 16]);
            me.table[0] = mul_x(u128::from_be_bytes(h));
            me.table[1] = karatsuba_half(me.table[0]);
            fill_powers(&mut me.table);
            h.zeroize();
        }
        me
    }

    /// A table for a chosen H, without an AES key: tests reach keys at the edges of the
    /// field this way.
    #[cfg(test)]
    pub(super) fn from_h(h: &Block, count: usize) -> Self {
        assert!(available() && count >= 1);
        let mut table = vec![0u128; 2 * count].into_boxed_slice();
        table[0] = mul_x(u128::from_be_bytes(*h));
        table[1] = karatsuba_half(table[0]);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `available()` was asserted.
        unsafe {
            fill_powers(&mut table);
        }
        Self {
            round_keys: [0; 15],
            rounds: 10,
            table,
        }
    }

    /// x * H^k, k >= 1.
    #[cfg(test)]
    pub(super) fn mul_power(&self, x: &Block, k: usize) -> Block {
        assert!(k >= 1);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Key` exists only on a CPU with the engine's features.
        unsafe {
            store_block(mul_power(self, load_block(x), k))
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!()
    }

    fn count(&self) -> usize {
        self.table.len() / 2
    }

    /// E_K(block).
    pub(super) fn encrypt(&self, block: &Block) -> Block {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Key` exists only on a CPU with the engine's features (`new`).
        unsafe {
            let mut b = [0u8; 16];
            _mm_storeu_si128(b.as_mut_ptr().cast(), aes_encrypt(self, load_raw(block)));
            b
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!()
    }

    /// GHASH_H of `parts`, each zero-padded to whole blocks, followed by `last` when given
    /// (the length block).
    #[cfg(test)]
    pub(super) fn ghash(&self, parts: &[&[u8]], last: Option<&Block>) -> Block {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Key` exists only on a CPU with the engine's features (`new`).
        unsafe {
            store_block(ghash(self, parts, last))
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!()
    }

    /// GHASH_H(parts, last) xor E_K(j0): a GCM tag.
    pub(super) fn tag(&self, j0: &Block, parts: &[&[u8]], last: Option<&Block>) -> Block {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Key` exists only on a CPU with the engine's features (`new`).
        unsafe {
            tag(self, j0, parts, last)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!()
    }

    /// The tag after replacing the header `a_old` with `a_new` over an unchanged ciphertext
    /// of `c_len` bytes and the same IV (the formula in `mod.rs`), in one reduction.
    pub(super) fn retag_header(
        &self,
        tag: &Block,
        a_old: &[u8],
        a_new: &[u8],
        c_len: usize,
    ) -> Block {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Key` exists only on a CPU with the engine's features (`new`).
        unsafe {
            retag_header(self, tag, a_old, a_new, c_len)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!()
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,aes,ssse3")]
#[inline]
fn byte_reverse(x: __m128i) -> __m128i {
    _mm_shuffle_epi8(
        x,
        _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
    )
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,aes,ssse3")]
#[inline]
fn load_u128(v: &u128) -> __m128i {
    // SAFETY: `v` is 16 readable bytes; loadu has no alignment requirement. x86 is
    // little-endian, so the low 64 bits of `v` land in the low lane.
    unsafe { _mm_loadu_si128(std::ptr::from_ref(v).cast()) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,aes,ssse3")]
#[inline]
fn store_u128(x: __m128i) -> u128 {
    let mut v = 0u128;
    // SAFETY: `v` is 16 writable bytes; storeu has no alignment requirement.
    unsafe { _mm_storeu_si128(std::ptr::from_mut(&mut v).cast(), x) };
    v
}

/// 16 bytes as they are (an AES block).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,aes,ssse3")]
#[inline]
fn load_raw(b: &[u8]) -> __m128i {
    assert!(b.len() >= 16, "a block is 16 bytes");
    // SAFETY: `b` has 16 readable bytes (asserted); loadu has no alignment requirement.
    unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
}

/// A GHASH block (big-endian bytes) as a POLYVAL element.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,aes,ssse3")]
#[inline]
fn load_block(b: &[u8]) -> __m128i {
    byte_reverse(load_raw(b))
}

#[cfg(all(test, target_arch = "x86_64"))]
#[target_feature(enable = "pclmulqdq,aes,ssse3")]
#[inline]
fn store_block(x: __m128i) -> Block {
    let mut b = [0u8; 16];
    // SAFETY: `b` is 16 writable bytes; storeu has no alignment requirement.
    unsafe { _mm_storeu_si128(b.as_mut_ptr().cast(), byte_reverse(x)) };
    b
}

/// The AES key schedule (FIPS 197 §5.2) with AESKEYGENASSIST: each new round key is the
/// previous one (or, for AES-256, the one two back) xored with its own shifted copies and
/// with the assist's RotWord/SubWord/Rcon word.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,aes,ssse3")]
fn expand_key(key: &[u8], out: &mut [u128; 15]) {
    /// prev xor (prev << 32) xor (prev << 64) xor (prev << 96) xor the assist word.
    #[target_feature(enable = "pclmulqdq,aes,ssse3")]
    fn next(prev: __m128i, assist: __m128i) -> __m128i {
        let mut k = prev;
        let mut shifted = _mm_slli_si128::<4>(prev);
        k = _mm_xor_si128(k, shifted);
        shifted = _mm_slli_si128::<4>(shifted);
        k = _mm_xor_si128(k, shifted);
        shifted = _mm_slli_si128::<4>(shifted);
        k = _mm_xor_si128(k, shifted);
        _mm_xor_si128(k, assist)
    }
    macro_rules! step128 {
        ($k:ident, $i:expr, $rcon:expr) => {
            $k = next(
                $k,
                _mm_shuffle_epi32::<0xff>(_mm_aeskeygenassist_si128::<$rcon>($k)),
            );
            out[$i] = store_u128($k);
        };
    }
    // AES-256: even keys take RotWord+SubWord+Rcon of the odd key before; odd keys take
    // SubWord alone of the even key before (FIPS 197 §5.2, Nk = 8).
    macro_rules! even256 {
        ($a:ident, $b:ident, $i:expr, $rcon:expr) => {
            $a = next(
                $a,
                _mm_shuffle_epi32::<0xff>(_mm_aeskeygenassist_si128::<$rcon>($b)),
            );
            out[$i] = store_u128($a);
        };
    }
    macro_rules! odd256 {
        ($a:ident, $b:ident, $i:expr) => {
            $b = next(
                $b,
                _mm_shuffle_epi32::<0xaa>(_mm_aeskeygenassist_si128::<0>($a)),
            );
            out[$i] = store_u128($b);
        };
    }
    macro_rules! for_each_rcon {
        ($even:ident, $odd:ident, $a:ident, $b:ident, [$(($i:expr, $rcon:expr)),*]) => {
            $(
                $even!($a, $b, $i, $rcon);
                $odd!($a, $b, $i + 1);
            )*
        };
    }
    if key.len() == 16 {
        let mut k = load_raw(key);
        out[0] = store_u128(k);
        step128!(k, 1, 0x01);
        step128!(k, 2, 0x02);
        step128!(k, 3, 0x04);
        step128!(k, 4, 0x08);
        step128!(k, 5, 0x10);
        step128!(k, 6, 0x20);
        step128!(k, 7, 0x40);
        step128!(k, 8, 0x80);
        step128!(k, 9, 0x1b);
        step128!(k, 10, 0x36);
    } else {
        let (mut a, mut b) = (load_raw(&key[..16]), load_raw(&key[16..]));
        out[0] = store_u128(a);
        out[1] = store_u128(b);
        // Round keys 2i and 2i + 1 from Rcon[i] (FIPS 197 §5.2); the last has no odd one.
        for_each_rcon!(
            even256,
            odd256,
            a,
            b,
            [
                (2, 0x01),
                (4, 0x02),
                (6, 0x04),
                (8, 0x08),
                (10, 0x10),
                (12, 0x20)
            ]
        );
        even256!(a, b, 14, 0x40);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,aes,ssse3")]
#[inline]
fn aes_encrypt(key: &Key, block: __m128i) -> __m128i {
    let rk = &key.round_keys;
    let mut s = _mm_xor_si128(block, load_u128(&rk[0]));
    for k in &rk[1..key.rounds] {
        s = _mm_aesenc_si128(s, load_u128(k));
    }
    _mm_aesenclast_si128(s, load_u128(&rk[key.rounds]))
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
    #[target_feature(enable = "pclmulqdq,aes,ssse3")]
    #[inline]
    fn zero() -> Self {
        Self {
            lo: _mm_setzero_si128(),
            mid: _mm_setzero_si128(),
            hi: _mm_setzero_si128(),
        }
    }

    /// self += a * b, with `b_half` the Karatsuba half of b (three 64x64 products:
    /// (a0 + a1)(b0 + b1) = a0 b0 + a1 b1 + cross).
    #[target_feature(enable = "pclmulqdq,aes,ssse3")]
    #[inline]
    fn add_product(&mut self, a: __m128i, b: __m128i, b_half: __m128i) {
        let a_half = _mm_xor_si128(a, _mm_shuffle_epi32::<0x4e>(a));
        self.lo = _mm_xor_si128(self.lo, _mm_clmulepi64_si128::<0x00>(a, b));
        self.hi = _mm_xor_si128(self.hi, _mm_clmulepi64_si128::<0x11>(a, b));
        self.mid = _mm_xor_si128(self.mid, _mm_clmulepi64_si128::<0x00>(a_half, b_half));
    }

    /// self += a * P_k.
    #[target_feature(enable = "pclmulqdq,aes,ssse3")]
    #[inline]
    fn add_power(&mut self, a: __m128i, table: &[u128], k: usize) {
        self.add_product(
            a,
            load_u128(&table[2 * k - 2]),
            load_u128(&table[2 * k - 1]),
        );
    }

    /// self * x^-128 mod the POLYVAL polynomial: two Montgomery steps, each folding the low
    /// 64 bits with one multiply by 0xc2 << 56 (RFC 8452 Appendix A; Gueron's GFMUL).
    #[target_feature(enable = "pclmulqdq,aes,ssse3")]
    #[inline]
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
#[target_feature(enable = "pclmulqdq,aes,ssse3")]
#[inline]
fn dot(a: __m128i, b: __m128i) -> __m128i {
    let mut w = Wide::zero();
    w.add_product(a, b, _mm_xor_si128(b, _mm_shuffle_epi32::<0x4e>(b)));
    w.reduce()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,aes,ssse3")]
fn fill_powers(table: &mut [u128]) {
    let p1 = load_u128(&table[0]);
    let mut p = p1;
    for pair in table[2..].chunks_exact_mut(2) {
        p = dot(p, p1);
        pair[0] = store_u128(p);
        pair[1] = karatsuba_half(pair[0]);
    }
}

/// Sums the blocks it is fed, each times its power, a chunk of up to the table's size per
/// reduction. The first chunk is the short one, so that every later chunk fills the table
/// and the last block of the message is the last of a chunk (times H^1).
#[cfg(target_arch = "x86_64")]
struct Aggregate<'a> {
    table: &'a [u128],
    sum: Wide,
    /// The reduced sum of the chunks before this one; added to the chunk's first block
    /// (Horner across chunks), zero otherwise.
    carry: __m128i,
    /// Blocks left in this chunk: the next block is multiplied by H^left.
    left: usize,
}

#[cfg(target_arch = "x86_64")]
impl<'a> Aggregate<'a> {
    #[target_feature(enable = "pclmulqdq,aes,ssse3")]
    fn new(key: &'a Key, blocks: usize) -> Self {
        Self {
            table: &key.table,
            sum: Wide::zero(),
            carry: _mm_setzero_si128(),
            left: if blocks == 0 {
                0
            } else {
                (blocks - 1) % key.count() + 1
            },
        }
    }

    /// Ends the chunk when its last block was fed.
    #[target_feature(enable = "pclmulqdq,aes,ssse3")]
    #[inline]
    fn close_chunk(&mut self) {
        if self.left == 0 {
            self.carry = self.sum.reduce();
            self.sum = Wide::zero();
            self.left = self.table.len() / 2;
        }
    }

    #[target_feature(enable = "pclmulqdq,aes,ssse3")]
    #[inline]
    fn block(&mut self, x: __m128i) {
        let x = _mm_xor_si128(x, self.carry);
        self.carry = _mm_setzero_si128();
        self.sum.add_power(x, self.table, self.left);
        self.left -= 1;
        self.close_chunk();
    }

    /// Feeds `bytes` zero-padded to whole blocks.
    #[target_feature(enable = "pclmulqdq,aes,ssse3")]
    fn padded(&mut self, mut bytes: &[u8]) {
        while bytes.len() >= 16 {
            // A run of whole blocks within the chunk, against descending powers, without a
            // per-block check.
            let run = (bytes.len() / 16).min(self.left);
            let (head, rest) = bytes.split_at(16 * run);
            bytes = rest;
            let entries = self.table[2 * (self.left - run)..2 * self.left].chunks_exact(2);
            let mut carry = self.carry;
            for (b, e) in head.chunks_exact(16).zip(entries.rev()) {
                let x = _mm_xor_si128(load_block(b), carry);
                carry = _mm_setzero_si128();
                self.sum.add_product(x, load_u128(&e[0]), load_u128(&e[1]));
            }
            self.carry = carry;
            self.left -= run;
            self.close_chunk();
        }
        if !bytes.is_empty() {
            let mut b = [0u8; 16];
            b[..bytes.len()].copy_from_slice(bytes);
            self.block(load_block(&b));
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,aes,ssse3")]
fn ghash(key: &Key, parts: &[&[u8]], last: Option<&Block>) -> __m128i {
    let blocks =
        parts.iter().map(|p| p.len().div_ceil(16)).sum::<usize>() + usize::from(last.is_some());
    let mut agg = Aggregate::new(key, blocks);
    for p in parts {
        agg.padded(p);
    }
    if let Some(b) = last {
        agg.block(load_block(b));
    }
    agg.carry
}

/// x * H^k for any k >= 1: powers beyond the table by repeated multiplication.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,aes,ssse3")]
fn mul_power(key: &Key, x: __m128i, mut k: usize) -> __m128i {
    let count = key.count();
    let mut v = x;
    while k > count {
        v = dot(v, load_u128(&key.table[2 * count - 2]));
        k -= count;
    }
    dot(v, load_u128(&key.table[2 * k - 2]))
}

/// The AES block is started first so that it overlaps the hash.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,aes,ssse3")]
fn tag(key: &Key, j0: &Block, parts: &[&[u8]], last: Option<&Block>) -> Block {
    let mask = aes_encrypt(key, load_raw(j0));
    let hash = byte_reverse(ghash(key, parts, last));
    let mut t = [0u8; 16];
    // SAFETY: `t` is 16 writable bytes; storeu has no alignment requirement.
    unsafe { _mm_storeu_si128(t.as_mut_ptr().cast(), _mm_xor_si128(hash, mask)) };
    t
}

/// The i-th 16 bytes of `a`, zero-padded, as a POLYVAL element.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,aes,ssse3")]
#[inline]
fn header_block(a: &[u8], i: usize) -> __m128i {
    let chunk = &a[16 * i..a.len().min(16 * i + 16)];
    if chunk.len() == 16 {
        load_block(chunk)
    } else {
        let mut b = [0u8; 16];
        b[..chunk.len()].copy_from_slice(chunk);
        load_block(&b)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,aes,ssse3")]
fn retag_header(key: &Key, tag: &Block, a_old: &[u8], a_new: &[u8], c_len: usize) -> Block {
    let n = c_len.div_ceil(16);
    let mut sum = Wide::zero();
    // Terms whose power is beyond the table (headers of packets near the slot size).
    let mut beyond = _mm_setzero_si128();
    let mut term = |x: __m128i, k: usize| {
        if k <= key.count() {
            sum.add_power(x, &key.table, k);
        } else {
            beyond = _mm_xor_si128(beyond, mul_power(key, x, k));
        }
    };
    let (a, a2) = (a_old.len().div_ceil(16), a_new.len().div_ceil(16));
    if a_old.len() == a_new.len() {
        // Horner is linear: one product per block of A xor A'.
        for i in 0..a {
            term(
                _mm_xor_si128(header_block(a_old, i), header_block(a_new, i)),
                a + n + 1 - i,
            );
        }
    } else {
        for i in 0..a {
            term(header_block(a_old, i), a + n + 1 - i);
        }
        for i in 0..a2 {
            term(header_block(a_new, i), a2 + n + 1 - i);
        }
        let mut l = [0u8; 16];
        l[..8].copy_from_slice(&((a_old.len() ^ a_new.len()) as u64 * 8).to_be_bytes());
        term(load_block(&l), 1);
    }
    let delta = byte_reverse(_mm_xor_si128(sum.reduce(), beyond));
    let mut t = [0u8; 16];
    // SAFETY: `t` is 16 writable bytes; storeu has no alignment requirement.
    unsafe { _mm_storeu_si128(t.as_mut_ptr().cast(), _mm_xor_si128(load_raw(tag), delta)) };
    t
}

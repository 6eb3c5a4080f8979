//! SHA-1 compression in AVX2, 8 messages at once: each 256-bit register holds one word of
//! each of 8 streams (perf-limits.md "AVX2, 8 lanes": rotate = shift, shift, or). The
//! message words are transposed in 8x8 blocks on load. All the `unsafe` and
//! `target_feature` code of the AVX2 engine is here.
#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m256i, _mm256_add_epi32, _mm256_and_si256, _mm256_andnot_si256, _mm256_loadu_si256,
    _mm256_or_si256, _mm256_permute2x128_si256, _mm256_set_epi8, _mm256_set1_epi32,
    _mm256_shuffle_epi8, _mm256_slli_epi32, _mm256_srli_epi32, _mm256_storeu_si256,
    _mm256_unpackhi_epi32, _mm256_unpackhi_epi64, _mm256_unpacklo_epi32, _mm256_unpacklo_epi64,
    _mm256_xor_si256,
};

/// Streams per call.
pub(super) const LANES: usize = 8;

/// Whether this CPU has AVX2.
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Compresses `nblocks` 64-byte blocks of `blocks[i]` into `states[i]` for 8 streams.
/// Panics if a stream is shorter than its blocks or the CPU lacks AVX2.
pub(super) fn compress(states: &mut [[u32; 5]; LANES], blocks: [&[u8]; LANES], nblocks: usize) {
    assert!(available(), "AVX2 engine on a CPU without AVX2");
    for b in &blocks {
        assert!(b.len() >= 64 * nblocks, "stream shorter than its blocks");
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `available()` checked that the CPU has AVX2, the feature `compress_avx2` is
    // compiled for; every stream has `64 * nblocks` readable bytes (asserted above), which
    // is all it reads.
    unsafe {
        compress_avx2(states, &blocks, nblocks);
    }
}

#[cfg(target_arch = "x86_64")]
macro_rules! rol {
    ($x:expr, $n:literal) => {
        _mm256_or_si256(
            _mm256_slli_epi32::<$n>($x),
            _mm256_srli_epi32::<{ 32 - $n }>($x),
        )
    };
}

/// Transposes 8 rows of 8 words: `r[i]` word `j` becomes `out[j]` word `i`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn transpose8(r: [__m256i; 8]) -> [__m256i; 8] {
    let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
    let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
    let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
    let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
    let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
    let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
    let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
    let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
    let u0 = _mm256_unpacklo_epi64(t0, t2);
    let u1 = _mm256_unpackhi_epi64(t0, t2);
    let u2 = _mm256_unpacklo_epi64(t1, t3);
    let u3 = _mm256_unpackhi_epi64(t1, t3);
    let u4 = _mm256_unpacklo_epi64(t4, t6);
    let u5 = _mm256_unpackhi_epi64(t4, t6);
    let u6 = _mm256_unpacklo_epi64(t5, t7);
    let u7 = _mm256_unpackhi_epi64(t5, t7);
    [
        _mm256_permute2x128_si256::<0x20>(u0, u4),
        _mm256_permute2x128_si256::<0x20>(u1, u5),
        _mm256_permute2x128_si256::<0x20>(u2, u6),
        _mm256_permute2x128_si256::<0x20>(u3, u7),
        _mm256_permute2x128_si256::<0x31>(u0, u4),
        _mm256_permute2x128_si256::<0x31>(u1, u5),
        _mm256_permute2x128_si256::<0x31>(u2, u6),
        _mm256_permute2x128_si256::<0x31>(u3, u7),
    ]
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn compress_avx2(states: &mut [[u32; 5]; LANES], blocks: &[&[u8]; LANES], nblocks: usize) {
    // Big-endian words: reverse the bytes of each 32-bit word.
    let bswap = _mm256_set_epi8(
        12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11, 4, 5,
        6, 7, 0, 1, 2, 3,
    );
    let column = |k: usize| {
        let mut v = [0u32; LANES];
        for (x, s) in v.iter_mut().zip(states.iter()) {
            *x = s[k];
        }
        // SAFETY: `v` is 32 readable bytes; loadu has no alignment requirement.
        unsafe { _mm256_loadu_si256(v.as_ptr().cast()) }
    };
    let mut h: [__m256i; 5] = std::array::from_fn(column);
    for blk in 0..nblocks {
        let mut w = [_mm256_set1_epi32(0); 16];
        for half in 0..2 {
            let rows: [__m256i; 8] = std::array::from_fn(|i| {
                let off = blk * 64 + half * 32;
                let bytes = &blocks[i][off..off + 32];
                // SAFETY: `bytes` is 32 readable bytes; loadu has no alignment requirement.
                unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
            });
            for (j, v) in transpose8(rows).into_iter().enumerate() {
                w[half * 8 + j] = _mm256_shuffle_epi8(v, bswap);
            }
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        macro_rules! round {
            ($t:expr, $f:expr, $k:literal) => {{
                let t: usize = $t;
                if t >= 16 {
                    let x = _mm256_xor_si256(
                        _mm256_xor_si256(w[(t - 3) % 16], w[(t - 8) % 16]),
                        _mm256_xor_si256(w[(t - 14) % 16], w[t % 16]),
                    );
                    w[t % 16] = rol!(x, 1);
                }
                let f = $f;
                let temp = _mm256_add_epi32(
                    _mm256_add_epi32(rol!(a, 5), f),
                    _mm256_add_epi32(_mm256_add_epi32(e, _mm256_set1_epi32($k as i32)), w[t % 16]),
                );
                e = d;
                d = c;
                c = rol!(b, 30);
                b = a;
                a = temp;
            }};
        }
        for t in 0..20 {
            round!(
                t,
                _mm256_or_si256(_mm256_and_si256(b, c), _mm256_andnot_si256(b, d)),
                0x5A82_7999u32
            );
        }
        for t in 20..40 {
            round!(
                t,
                _mm256_xor_si256(_mm256_xor_si256(b, c), d),
                0x6ED9_EBA1u32
            );
        }
        for t in 40..60 {
            round!(
                t,
                _mm256_or_si256(
                    _mm256_and_si256(b, c),
                    _mm256_and_si256(d, _mm256_or_si256(b, c))
                ),
                0x8F1B_BCDCu32
            );
        }
        for t in 60..80 {
            round!(
                t,
                _mm256_xor_si256(_mm256_xor_si256(b, c), d),
                0xCA62_C1D6u32
            );
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = _mm256_add_epi32(*x, y);
        }
    }
    for (k, v) in h.iter().enumerate() {
        let mut out = [0u32; LANES];
        // SAFETY: `out` is 32 writable bytes; storeu has no alignment requirement.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), *v) };
        for (s, x) in states.iter_mut().zip(out) {
            s[k] = x;
        }
    }
}

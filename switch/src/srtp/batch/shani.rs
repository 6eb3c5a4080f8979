//! SHA-1 compression with the x86 SHA extensions, N independent streams interleaved.
//!
//! One stream is latency-bound: every `sha1rnds4` waits for the previous one (about 6
//! cycles each, 20 per block). N streams issue their rounds side by side, so the core
//! overlaps them (perf-limits.md: 2.16x with 4 streams). All the `unsafe` and
//! `target_feature` code of the SHA-NI engine is here.
#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_extract_epi32, _mm_loadu_si128, _mm_set_epi8, _mm_set_epi32,
    _mm_sha1msg1_epu32, _mm_sha1msg2_epu32, _mm_sha1nexte_epu32, _mm_sha1rnds4_epu32,
    _mm_shuffle_epi8, _mm_xor_si128,
};

/// Whether this CPU has what the engine needs (SHA, SSSE3, SSE4.1).
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("ssse3")
            && std::arch::is_x86_feature_detected!("sse4.1")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Compresses `nblocks` 64-byte blocks of `blocks[i]` into `states[i]`, for N streams at
/// once. Panics if a stream has fewer than `64 * nblocks` bytes; callers check
/// [`available`] first (it panics too if the CPU lacks the instructions).
pub(super) fn compress<const N: usize>(
    states: &mut [[u32; 5]; N],
    blocks: [&[u8]; N],
    nblocks: usize,
) {
    assert!(available(), "SHA-NI engine on a CPU without SHA extensions");
    for b in &blocks {
        assert!(b.len() >= 64 * nblocks, "stream shorter than its blocks");
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `available()` checked that the CPU has SHA, SSSE3 and SSE4.1, the features
    // `compress_ni` is compiled for; every stream has `64 * nblocks` readable bytes
    // (asserted above), which is all it reads.
    unsafe {
        compress_ni(states, &blocks, nblocks);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,ssse3,sse4.1")]
fn compress_ni<const N: usize>(states: &mut [[u32; 5]; N], blocks: &[&[u8]; N], nblocks: usize) {
    // Big-endian words: byte-reverse the 16 bytes so W0 lands in the top lane.
    let bswap = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let mut abcd: [__m128i; N] = std::array::from_fn(|i| {
        let s = &states[i];
        _mm_set_epi32(s[0] as i32, s[1] as i32, s[2] as i32, s[3] as i32)
    });
    let mut e0: [__m128i; N] = std::array::from_fn(|i| _mm_set_epi32(states[i][4] as i32, 0, 0, 0));
    for blk in 0..nblocks {
        let abcd_save = abcd;
        let e_save = e0;
        // w[k % 4] holds words 4k..4k+3 of the schedule.
        let mut w: [[__m128i; 4]; N] = std::array::from_fn(|i| {
            std::array::from_fn(|j| {
                let off = blk * 64 + 16 * j;
                let bytes = &blocks[i][off..off + 16];
                // SAFETY: `bytes` is 16 readable bytes; loadu has no alignment requirement.
                let v = unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) };
                _mm_shuffle_epi8(v, bswap)
            })
        });
        // Rounds 0-3: E is added to the first words.
        let mut e: [__m128i; N] = std::array::from_fn(|i| _mm_add_epi32(e0[i], w[i][0]));
        let mut prev = abcd;
        for i in 0..N {
            abcd[i] = _mm_sha1rnds4_epu32::<0>(abcd[i], e[i]);
        }
        // Rounds 4k..4k+3 of every stream, unrolled so that the word slots and the round
        // function are constants (a loop here measured 20 % slower).
        macro_rules! group {
            ($k:literal, $f:literal, $schedule:literal) => {
                for i in 0..N {
                    if $schedule {
                        // W[4k..] = rol1(W[t-3] ^ W[t-8] ^ W[t-14] ^ W[t-16]), four at a time.
                        let x = _mm_sha1msg1_epu32(w[i][$k % 4], w[i][($k + 1) % 4]);
                        let x = _mm_xor_si128(x, w[i][($k + 2) % 4]);
                        w[i][$k % 4] = _mm_sha1msg2_epu32(x, w[i][($k + 3) % 4]);
                    }
                    e[i] = _mm_sha1nexte_epu32(prev[i], w[i][$k % 4]);
                    prev[i] = abcd[i];
                    abcd[i] = _mm_sha1rnds4_epu32::<$f>(abcd[i], e[i]);
                }
            };
        }
        group!(1, 0, false);
        group!(2, 0, false);
        group!(3, 0, false);
        group!(4, 0, true);
        group!(5, 1, true);
        group!(6, 1, true);
        group!(7, 1, true);
        group!(8, 1, true);
        group!(9, 1, true);
        group!(10, 2, true);
        group!(11, 2, true);
        group!(12, 2, true);
        group!(13, 2, true);
        group!(14, 2, true);
        group!(15, 3, true);
        group!(16, 3, true);
        group!(17, 3, true);
        group!(18, 3, true);
        group!(19, 3, true);
        for i in 0..N {
            // E of the next block: rol30(A four rounds before the end) + E at the start.
            e0[i] = _mm_sha1nexte_epu32(prev[i], e_save[i]);
            abcd[i] = _mm_add_epi32(abcd[i], abcd_save[i]);
        }
    }
    for i in 0..N {
        states[i] = [
            _mm_extract_epi32::<3>(abcd[i]) as u32,
            _mm_extract_epi32::<2>(abcd[i]) as u32,
            _mm_extract_epi32::<1>(abcd[i]) as u32,
            _mm_extract_epi32::<0>(abcd[i]) as u32,
            _mm_extract_epi32::<3>(e0[i]) as u32,
        ];
    }
}

//! HMAC-SHA1 over a batch of messages at once (issue 7): the authentication of every
//! packet a recvmmsg batch brings, computed in interleaved streams instead of one packet
//! after the other.
//!
//! - [`HmacPads`]: the inner and outer pad states of a key, computed once per session key
//!   (RFC 2104), zeroized on drop.
//! - [`Engine`]: the scalar path (the `sha1` crate's compression, one message at a time:
//!   the reference and the fallback), SHA-NI with 1 to 4 interleaved streams ([`shani`]),
//!   or AVX2 with 8 lanes ([`avx2`]). This machine has no AVX-512, so the 16-lane engine
//!   of perf-limits.md is not here.
//! - [`hmac_sha1_batch`]: a scheduler that runs the longest messages first and refills a
//!   stream as soon as its message is done, so streams of different lengths stay busy.

mod avx2;
mod shani;

#[cfg(test)]
mod tests;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// SHA-1's initial state (FIPS 180-4 §5.3.1).
const SHA1_IV: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];

/// The longest message a job may carry (a datagram, plus room for the ROC).
pub const MAX_MESSAGE: usize = 2048;

/// Bytes of a padded tail: under a block of the first part, the whole second part, 0x80,
/// zeros, the 8-byte length.
const LANE_BYTES: usize = (63 + MAX_MESSAGE + 9).div_ceil(64) * 64;

/// A key's HMAC pads, hashed: the SHA-1 states after `K ^ ipad` and after `K ^ opad`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct HmacPads {
    inner: [u32; 5],
    outer: [u32; 5],
}

impl std::fmt::Debug for HmacPads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacPads")
    }
}

impl HmacPads {
    /// No key: a placeholder for unused job slots (its results mean nothing).
    pub const EMPTY: Self = Self {
        inner: [0; 5],
        outer: [0; 5],
    };

    /// The pads of `key` (a key longer than a block is hashed first, RFC 2104 §2).
    pub fn new(key: &[u8]) -> Self {
        let mut k = [0u8; 64];
        if key.len() > 64 {
            use sha1::Digest;
            let d = sha1::Sha1::digest(key);
            k[..20].copy_from_slice(&d);
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let pad = |x: u8| {
            let mut block = [[0u8; 64]];
            for (b, kb) in block[0].iter_mut().zip(&k) {
                *b = kb ^ x;
            }
            let mut state = SHA1_IV;
            sha1::block_api::compress(&mut state, &block);
            block[0].zeroize();
            state
        };
        let pads = Self {
            inner: pad(0x36),
            outer: pad(0x5c),
        };
        k.zeroize();
        pads
    }
}

/// One HMAC to compute: over the concatenation of `parts` (the authenticated portion and
/// the ROC, for SRTP), with `pads`; the result goes to `tag`.
#[derive(Debug)]
pub struct HmacJob<'a> {
    /// The key.
    pub pads: &'a HmacPads,
    /// The message, in two pieces (at most [`MAX_MESSAGE`] bytes in all).
    pub parts: [&'a [u8]; 2],
    /// The HMAC, once computed.
    pub tag: [u8; 20],
}

impl<'a> HmacJob<'a> {
    /// A job over `first || second`.
    pub fn new(pads: &'a HmacPads, first: &'a [u8], second: &'a [u8]) -> Self {
        Self {
            pads,
            parts: [first, second],
            tag: [0; 20],
        }
    }

    fn len(&self) -> usize {
        self.parts[0].len() + self.parts[1].len()
    }
}

/// How a batch is hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// One message at a time with the `sha1` crate's compression (itself SHA-NI where the
    /// CPU has it): the reference and the fallback.
    Scalar,
    /// SHA-NI, this many streams interleaved (1 to 4).
    ShaNi(usize),
    /// AVX2, 8 streams in the lanes of 256-bit registers.
    Avx2,
}

impl Engine {
    /// The best engine this CPU runs: SHA-NI with 4 streams; else AVX2 with 8 lanes; else
    /// scalar. (On this development machine, per 1204-byte HMAC in batches of 64:
    /// SHA-NI x4 522 ns, AVX2 x8 584 ns, scalar 737 ns.)
    pub fn detect() -> Self {
        if shani::available() {
            Self::ShaNi(4)
        } else if avx2::available() {
            Self::Avx2
        } else {
            Self::Scalar
        }
    }

    /// What actually runs a batch of `jobs`: idle streams cost as much as busy ones, so a
    /// small batch takes fewer SHA-NI streams, and AVX2's 8 lanes only pay from about 7
    /// jobs (below that, scalar is faster).
    fn for_batch(self, jobs: usize) -> Self {
        match self {
            Self::ShaNi(n) => Self::ShaNi(n.min(jobs).max(1)),
            Self::Avx2 if jobs < 7 => Self::Scalar,
            e => e,
        }
    }

    /// Whether this CPU runs it.
    pub fn available(self) -> bool {
        match self {
            Self::Scalar => true,
            Self::ShaNi(n) => (1..=4).contains(&n) && shani::available(),
            Self::Avx2 => avx2::available(),
        }
    }
}

/// Why a batch was refused (nothing was computed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// A job's message is longer than [`MAX_MESSAGE`].
    #[error("a message is longer than {MAX_MESSAGE} bytes")]
    TooLong,
    /// The engine does not run on this CPU.
    #[error("the engine does not run on this CPU")]
    Unavailable,
}

/// Computes every job's HMAC with `engine`. The batch is taken in chunks of 256 jobs,
/// longest first within a chunk; no allocation.
pub fn hmac_sha1_batch(engine: Engine, jobs: &mut [HmacJob<'_>]) -> Result<(), BatchError> {
    if jobs.iter().any(|j| j.len() > MAX_MESSAGE) {
        return Err(BatchError::TooLong);
    }
    if !engine.available() {
        return Err(BatchError::Unavailable);
    }
    match engine.for_batch(jobs.len()) {
        Engine::Scalar => {
            let mut buf = [0u8; LANE_BYTES];
            for j in jobs.iter_mut() {
                scalar(j, &mut buf);
            }
            buf[..64].zeroize();
        }
        Engine::ShaNi(1) => run_lanes::<1>(jobs, shani::compress::<1>),
        Engine::ShaNi(2) => run_lanes::<2>(jobs, shani::compress::<2>),
        Engine::ShaNi(3) => run_lanes::<3>(jobs, shani::compress::<3>),
        Engine::ShaNi(_) => run_lanes::<4>(jobs, shani::compress::<4>),
        Engine::Avx2 => run_lanes::<{ avx2::LANES }>(jobs, avx2::compress),
    }
    Ok(())
}

/// The whole blocks of a job's first part, hashed straight from the caller's memory.
fn direct_blocks(job: &HmacJob<'_>) -> usize {
    job.parts[0].len() / 64
}

/// Writes what follows the direct blocks (the rest of the first part, the second part),
/// then `0x80`, zeros and the bit length of `64 + message` into `buf` (the inner hash's
/// last blocks); returns how many blocks.
fn pad_tail(job: &HmacJob<'_>, buf: &mut [u8; LANE_BYTES]) -> usize {
    let (a, b) = (&job.parts[0][direct_blocks(job) * 64..], job.parts[1]);
    let t = a.len() + b.len();
    buf[..a.len()].copy_from_slice(a);
    buf[a.len()..t].copy_from_slice(b);
    let blocks = (t + 9).div_ceil(64);
    let end = blocks * 64;
    buf[t] = 0x80;
    buf[t + 1..end - 8].fill(0);
    buf[end - 8..end].copy_from_slice(&(((64 + job.len()) as u64) * 8).to_be_bytes());
    blocks
}

/// The outer hash's input: the inner digest, padded (one block; 64 + 20 bytes hashed).
fn pad_outer(inner: &[u32; 5], buf: &mut [u8]) {
    for (i, w) in inner.iter().enumerate() {
        buf[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
    }
    buf[20] = 0x80;
    buf[21..56].fill(0);
    buf[56..64].copy_from_slice(&((64u64 + 20) * 8).to_be_bytes());
}

fn digest(state: &[u32; 5]) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (i, w) in state.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
    }
    out
}

fn as_blocks(buf: &[u8], n: usize) -> &[[u8; 64]] {
    let (blocks, _) = buf[..64 * n].as_chunks::<64>();
    blocks
}

/// One job with the `sha1` crate's compression.
fn scalar(job: &mut HmacJob<'_>, buf: &mut [u8; LANE_BYTES]) {
    let mut state = job.pads.inner;
    sha1::block_api::compress(&mut state, as_blocks(job.parts[0], direct_blocks(job)));
    let n = pad_tail(job, buf);
    sha1::block_api::compress(&mut state, as_blocks(buf, n));
    pad_outer(&state, buf);
    let mut outer = job.pads.outer;
    sha1::block_api::compress(&mut outer, as_blocks(buf, 1));
    job.tag = digest(&outer);
    state.zeroize();
    outer.zeroize();
}

/// Where a stream is in its job.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The first part's whole blocks, from the caller's memory.
    Direct,
    /// The rest of the inner message, padded, from the stream's buffer.
    Tail,
    /// The outer hash's block.
    Outer,
}

/// A stream of a multi-stream engine: which job, where it is.
struct Lane {
    job: usize,
    state: [u32; 5],
    phase: Phase,
    /// Blocks done and in all of the current phase.
    done: usize,
    blocks: usize,
}

/// An engine's compression: `nblocks` blocks of each of N streams.
type Compress<const N: usize> = fn(&mut [[u32; 5]; N], [&[u8]; N], usize);

/// A multi-stream engine with N streams: each call compresses every busy stream for the
/// fewest blocks any of them has left; a stream whose inner hash ends goes on to its
/// outer block, and one whose HMAC ends takes the next job (longest first).
fn run_lanes<const N: usize>(jobs: &mut [HmacJob<'_>], compress: Compress<N>) {
    for chunk in jobs.chunks_mut(256) {
        let mut order = [0u16; 256];
        for (i, o) in order.iter_mut().enumerate().take(chunk.len()) {
            *o = i as u16;
        }
        let order = &mut order[..chunk.len()];
        order.sort_unstable_by_key(|&i| std::cmp::Reverse(chunk[usize::from(i)].len()));
        let mut next = 0;
        let mut bufs = [[0u8; LANE_BYTES]; N];
        let mut lanes: [Option<Lane>; N] = std::array::from_fn(|_| None);
        loop {
            for (lane, buf) in lanes.iter_mut().zip(bufs.iter_mut()) {
                if lane.is_none() && next < order.len() {
                    let job = usize::from(order[next]);
                    next += 1;
                    let direct = direct_blocks(&chunk[job]);
                    let (phase, blocks) = if direct > 0 {
                        (Phase::Direct, direct)
                    } else {
                        (Phase::Tail, pad_tail(&chunk[job], buf))
                    };
                    *lane = Some(Lane {
                        job,
                        state: chunk[job].pads.inner,
                        phase,
                        done: 0,
                        blocks,
                    });
                }
            }
            let Some(step) = lanes.iter().flatten().map(|l| l.blocks - l.done).min() else {
                break;
            };
            // Idle streams hash a busy one's blocks again; their result is dropped.
            let busy = lanes.iter().position(Option::is_some).expect("one is busy");
            let mut states = [[0u32; 5]; N];
            let inputs: [&[u8]; N] = std::array::from_fn(|i| {
                let (l, buf) = match &lanes[i] {
                    Some(l) => (l, &bufs[i]),
                    None => (lanes[busy].as_ref().expect("busy"), &bufs[busy]),
                };
                states[i] = l.state;
                let from = l.done * 64;
                match l.phase {
                    Phase::Direct => &chunk[l.job].parts[0][from..],
                    Phase::Tail | Phase::Outer => &buf[from..],
                }
            });
            compress(&mut states, inputs, step);
            for i in 0..N {
                let Some(l) = &mut lanes[i] else { continue };
                l.state = states[i];
                l.done += step;
                if l.done < l.blocks {
                    continue;
                }
                l.done = 0;
                match l.phase {
                    Phase::Direct => {
                        l.phase = Phase::Tail;
                        l.blocks = pad_tail(&chunk[l.job], &mut bufs[i]);
                    }
                    Phase::Tail => {
                        pad_outer(&l.state, &mut bufs[i]);
                        l.state = chunk[l.job].pads.outer;
                        l.phase = Phase::Outer;
                        l.blocks = 1;
                    }
                    Phase::Outer => {
                        chunk[l.job].tag = digest(&l.state);
                        lanes[i] = None;
                    }
                }
            }
        }
        // The buffers held packet bytes and inner digests; the key-derived states were
        // in the lanes, which are gone.
        for b in &mut bufs {
            b[..64].zeroize();
        }
    }
}

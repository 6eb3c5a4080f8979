//! The forwarding fast path (seed 002 l.1773-1786; WIRE.md sections 2, 3 and 6).
//!
//! A received SRTP packet from a known sender becomes one packet per receiver without the
//! payload cipher ever running:
//!
//! 1. [`Forwarder::verify`]: parse the header, find the sender by SSRC, verify the tag
//!    (TIP EKT base tag, plain SRTP tag, or GCM tag via GHASH + E_K(J0)), check replay, and
//!    read the appended byte. A full EKT tag goes through the receiver procedure of WIRE.md
//!    section 2: a provisional key that has no effect unless the tag verifies, ROC never
//!    lowered, ISN as the first sequence number under the new key.
//! 2. The caller decides the receivers (the meeting uses the appended byte for that).
//! 3. [`Forwarder::emit`]: strip the appended byte, rewrite the CSRC for each receiver and
//!    re-sign once per distinct output header (HMAC), or re-tag from GHASH alone (AEAD).
//!    Receivers with the same output header share one output slot.
//!
//! A recvmmsg batch goes through the same steps with its HMACs computed together:
//! [`Forwarder::begin_batch`], then [`Forwarder::verify_in_batch`] and
//! [`Forwarder::emit`] per datagram, then [`Forwarder::finish_batch`];
//! [`Forwarder::forward_batch`] runs all of it for a batch whose receivers are known up
//! front. Nothing allocates per packet: outputs go to a preallocated [`TxBatch`]. A packet
//! that fails any check is dropped, counted by [`DropReason`], and reaches no receiver.
//!
//! Files: `verify.rs` (the four tag shapes and replay), `emit.rs` (copies, CSRC, re-sign),
//! `batch.rs` (the batch protocol), `sfu.rs` (the SFU comparison, tools builds only),
//! `source.rs` (sender keys), `csrc.rs`, `stats.rs`, `gcm/`.

mod batch;
mod csrc;
mod emit;
mod gcm;
mod open;
#[cfg(feature = "testing")]
mod sfu;
mod source;
pub(crate) use source::SsrcHashBuilder;
mod stats;
mod verify;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use ekt::SpiRegistry;

pub use crate::tx::{ReceiverId, SLOT_SIZE, TxBatch, TxEntry};
pub use csrc::{CsrcRewrite, TipCsrc};
pub use gcm::GhashEngine;
pub use stats::{DropReason, ForwardStats};

use self::batch::{DeferredSign, EarlyShort};
use self::source::{Keying, Source, SourceKey};
use crate::srtp::batch::Engine;
use crate::srtp::{HmacSha1Key, MasterKey, ReplayError, ReplayWindow, Suite};

/// The most datagrams verified, or output copies signed, together: one pass of the batch
/// HMAC engine (the worker's recvmmsg batch, `udp::BATCH`, is at most this).
pub const MAX_BATCH: usize = 64;

const GCM_TAG_LEN: usize = 16;
const E_INDEX_LEN: usize = 4;
const E_FLAG: u32 = 0x8000_0000;
/// Distinct output headers remembered per packet for slot sharing. More are still
/// forwarded correctly, each with its own slot.
const MAX_SHARED_HEADERS: usize = 16;

/// One receiver of a packet and how its copy's CSRC is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receiver {
    /// Destination handle.
    pub id: ReceiverId,
    /// CSRC rewrite for this receiver's screen.
    pub csrc: CsrcRewrite,
}

/// A received packet with its receivers, for [`Forwarder::forward_batch`].
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// The datagram.
    pub data: &'a [u8],
    /// The media line negotiated the appended byte (MEDIAOPTS, WIRE.md section 7).
    pub appended_byte: bool,
    /// Who gets it.
    pub receivers: &'a [Receiver],
}

/// RTP or RTCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// SRTP media.
    Rtp,
    /// SRTCP (end-to-end, e.g. the EKT SDES packet).
    Rtcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    TipFull,
    TipShort,
    Plain {
        tag_len: usize,
    },
    Aead,
    /// Plain RTP/RTCP of a non-secure meeting: nothing to verify or sign.
    Unprotected,
}

/// A packet that verified. Only [`Forwarder::verify`] makes one, so [`Forwarder::emit`]
/// can only forward what verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    ssrc: u32,
    kind: PacketKind,
    index: u64,
    appended: Option<u8>,
    first_csrc: Option<u32>,
    len: usize,
    hdr_len: usize,
    /// End of the ciphertext (the appended byte and the tag follow).
    payload_end: usize,
    tag_start: usize,
    /// Start of what follows the tag (the EKT trailer), copied unchanged.
    trailer_start: usize,
    shape: Shape,
    generation: u64,
}

impl Verified {
    /// The sender.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }
    /// RTP or RTCP.
    pub fn kind(&self) -> PacketKind {
        self.kind
    }
    /// SRTP packet index (RTP) or SRTCP index (RTCP).
    pub fn index(&self) -> u64 {
        self.index
    }
    /// The appended byte: audio activity or video refresh flag (WIRE.md section 3).
    pub fn appended_byte(&self) -> Option<u8> {
        self.appended
    }
    /// The first CSRC as received (the TIP position word), if any.
    pub fn first_csrc(&self) -> Option<u32> {
        self.first_csrc
    }
    /// True when the packet carried a full EKT tag.
    pub fn full_ekt_tag(&self) -> bool {
        self.shape == Shape::TipFull
    }
}

/// The forwarding state of one meeting: EKT parameter sets, sender sources and counters.
pub struct Forwarder {
    registry: SpiRegistry,
    sources: HashMap<u32, Source, SsrcHashBuilder>,
    max_sources: usize,
    next_generation: u64,
    stats: ForwardStats,
    /// The SFU baseline (comparison only, tools builds): see `Forwarder::set_sfu_baseline`.
    #[cfg(feature = "testing")]
    sfu: sfu::SfuBaseline,
    /// How [`Forwarder::forward_batch`] computes a batch's tags.
    engine: Engine,
    /// How the GHASH of keys learned from now on is computed.
    ghash: GhashEngine,
    /// Inside a batch ([`Forwarder::begin_batch`]): output signatures are collected and
    /// computed together instead of one by one.
    defer_signing: bool,
    /// The signatures waiting (capacity [`MAX_BATCH`], reserved up front).
    deferred: Vec<DeferredSign>,
    /// The batch begun last: per datagram, what it is checked against, and its computed
    /// tag.
    prepared: Box<[Option<EarlyShort>; MAX_BATCH]>,
    prepared_tags: Box<[[u8; 20]; MAX_BATCH]>,
    prepared_len: usize,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("sources", &self.sources.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn replay_check(w: &ReplayWindow, index: u64) -> Result<(), DropReason> {
    w.check(index).map_err(|e| match e {
        ReplayError::Duplicate => DropReason::Replayed,
        ReplayError::TooOld => DropReason::TooOld,
    })
}

fn auth_of(t: &crate::srtp::Transform) -> &HmacSha1Key {
    t.auth().expect("HMAC-suite key")
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Forwarder {
    /// A forwarder for at most `max_sources` sending SSRCs (memory is reserved up front so
    /// learning a source does not allocate).
    pub fn new(max_sources: usize) -> Self {
        Self {
            registry: SpiRegistry::new(),
            sources: HashMap::with_capacity_and_hasher(max_sources, SsrcHashBuilder::new()),
            max_sources,
            next_generation: 1,
            stats: ForwardStats::default(),
            #[cfg(feature = "testing")]
            sfu: sfu::SfuBaseline::default(),
            engine: Engine::detect(),
            ghash: GhashEngine::detect(),
            defer_signing: false,
            deferred: Vec::with_capacity(MAX_BATCH),
            prepared: Box::new([None; MAX_BATCH]),
            prepared_tags: Box::new([[0; 20]; MAX_BATCH]),
            prepared_len: 0,
        }
    }

    /// The EKT parameter sets (the meeting's SPIMAP group parameters).
    pub fn registry_mut(&mut self) -> &mut SpiRegistry {
        &mut self.registry
    }

    /// Counters.
    pub fn stats(&self) -> &ForwardStats {
        &self.stats
    }

    /// Adds a sender whose master key is configured rather than learned from EKT; its
    /// packets carry plain SRTP tags (HMAC suites) or GCM tags (AEAD suites).
    pub fn add_keyed_source(
        &mut self,
        ssrc: u32,
        suite: Suite,
        master: &MasterKey,
    ) -> Result<(), DropReason> {
        if !self.sources.contains_key(&ssrc) && self.sources.len() >= self.max_sources {
            return Err(DropReason::TooManySources);
        }
        let generation = self.bump_generation();
        let mut s = Source::new(Keying::Plain);
        s.install(SourceKey::new(self.ghash, suite, master, generation), None);
        self.sources.insert(ssrc, s);
        Ok(())
    }

    /// Forgets a sender (it left).
    pub fn remove_source(&mut self, ssrc: u32) {
        self.sources.remove(&ssrc);
    }

    /// True when the sender's key is known.
    pub fn knows_key_of(&self, ssrc: u32) -> bool {
        self.sources.get(&ssrc).is_some_and(|s| s.current.is_some())
    }

    fn bump_generation(&mut self) -> u64 {
        let g = self.next_generation;
        self.next_generation += 1;
        g
    }

    /// The HMAC engine of the batch path (the best the CPU runs by default; tests force
    /// the others).
    pub fn set_hmac_engine(&mut self, engine: Engine) {
        self.engine = engine;
    }

    /// The GHASH engine of AEAD keys installed from now on (the best the CPU runs by
    /// default; tests force the portable one).
    pub fn set_ghash_engine(&mut self, engine: GhashEngine) {
        self.ghash = engine;
    }
}

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
//! [`Forwarder::forward_batch`] runs both for a batch whose receivers are known up front.
//! Nothing allocates per packet: outputs go to a preallocated [`TxBatch`]. A packet that
//! fails any check is dropped, counted by [`DropReason`], and reaches no receiver.

mod csrc;
mod gcm;
mod source;
pub(crate) use source::SsrcHashBuilder;
mod stats;
mod tx;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use ekt::tip_tag::{self as tip, TagForm, TipEkt};
use ekt::{SpiRegistry, SrtpProfile};

pub use csrc::{CsrcRewrite, TipCsrc};
pub use gcm::GhashEngine;
pub use stats::{DropReason, ForwardStats};
pub use tx::{ReceiverId, SLOT_SIZE, TxBatch, TxEntry};

use self::source::{Keying, Source, SourceKey};
use crate::rtp::{RTCP_HEADER_LEN, RtpHeader, is_rtcp, rtcp_ssrc};
use crate::srtp::batch::{Engine, HmacJob, HmacPads, hmac_sha1_batch};
use crate::srtp::tip_tag::{BASE_TAG_LEN, TagKind, rtcp_base_tag, rtp_base_tag};
use crate::srtp::{
    HmacSha1Key, MasterKey, ReplayError, ReplayWindow, Suite, index_of, roc_of, tags_equal,
};

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

/// Packets per pass of the batch HMAC engine in [`Forwarder::forward_batch`].
const BATCH_JOBS: usize = 64;

/// An output copy laid out in its slot whose tag is still to be computed.
#[derive(Debug, Clone)]
struct DeferredSign {
    slot: u32,
    /// The key's pads, copied: a key change later in the batch cannot take them away.
    pads: HmacPads,
    /// End of the authenticated portion in the slot (the base tag goes there).
    payload_end: usize,
    /// What the HMAC takes after the authenticated portion (WIRE.md section 2), and how
    /// much of it.
    tail: [u8; BASE_TAG_LEN + 48 + 4],
    tail_len: usize,
}

/// A short-tag packet whose tag stage 1 of a batch computes: what it is checked against.
#[derive(Debug, Clone, Copy)]
struct EarlyShort {
    ssrc: u32,
    /// Where the tag starts (the end of the authenticated portion), for this setting of
    /// the appended byte.
    start: usize,
    appended: bool,
    index: u64,
    generation: u64,
    /// The rest of the authenticated input: ROC, then zeros (WIRE.md section 2).
    tail: [u8; BASE_TAG_LEN + 1],
}

/// The forwarding state of one meeting: EKT parameter sets, sender sources and counters.
pub struct Forwarder {
    registry: SpiRegistry,
    sources: HashMap<u32, Source, SsrcHashBuilder>,
    max_sources: usize,
    next_generation: u64,
    stats: ForwardStats,
    /// The SFU baseline (comparison only): see [`Forwarder::set_sfu_baseline`].
    sfu_baseline: bool,
    /// The decrypted payload in the SFU baseline, reserved up front.
    plaintext: Box<[u8; SLOT_SIZE]>,
    /// How [`Forwarder::forward_batch`] computes a batch's tags.
    engine: Engine,
    /// How the GHASH of keys learned from now on is computed.
    ghash: GhashEngine,
    /// Inside [`Forwarder::forward_batch`]: output signatures are collected and computed
    /// together ([`Forwarder::sign_deferred`]) instead of one by one.
    defer_signing: bool,
    /// The signatures waiting (capacity [`BATCH_JOBS`], reserved up front).
    deferred: Vec<DeferredSign>,
    /// The last [`Forwarder::prepare_batch`]: per datagram, what it is checked against,
    /// and its computed tag.
    prepared: Box<[Option<EarlyShort>; BATCH_JOBS]>,
    prepared_tags: Box<[[u8; 20]; BATCH_JOBS]>,
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
            sfu_baseline: false,
            plaintext: Box::new([0u8; SLOT_SIZE]),
            engine: Engine::detect(),
            ghash: GhashEngine::detect(),
            defer_signing: false,
            deferred: Vec::with_capacity(BATCH_JOBS),
            prepared: Box::new([None; BATCH_JOBS]),
            prepared_tags: Box::new([[0; 20]; BATCH_JOBS]),
            prepared_len: 0,
        }
    }

    /// For comparison only (`mswitch load`'s baseline): forward as an SFU does, decrypting
    /// each verified AES-CM packet once and, for every receiver, encrypting and signing it
    /// again (an SFU keys each receiver's hop with its own key; here the sender's key is
    /// used again so that the endpoints can check the result, at the same cost). No
    /// header-sharing of signatures. AEAD packets take the normal path.
    pub fn set_sfu_baseline(&mut self, on: bool) {
        self.sfu_baseline = on;
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

    /// Verifies a received packet (stage 1). Counts the drop reason on failure.
    pub fn verify(&mut self, data: &[u8], appended_byte: bool) -> Result<Verified, DropReason> {
        let r = if data.len() > SLOT_SIZE {
            Err(DropReason::TooLarge)
        } else if is_rtcp(data) {
            self.verify_rtcp(data)
        } else {
            self.verify_rtp(data, appended_byte)
        };
        match r {
            Ok(_) => self.stats.verified += 1,
            Err(reason) => self.stats.drop(reason),
        }
        r
    }

    /// Takes a packet of a non-secure meeting (RTP/AVP): there is no tag to verify, so
    /// this only checks the header and finds the appended byte (the last byte of the
    /// packet, ekt-spec.md §5.3). The meeting binds the SSRC to the leg it came on.
    pub fn verify_unprotected(
        &mut self,
        data: &[u8],
        appended_byte: bool,
    ) -> Result<Verified, DropReason> {
        let r = if data.len() > SLOT_SIZE {
            Err(DropReason::TooLarge)
        } else if is_rtcp(data) {
            rtcp_ssrc(data)
                .map_err(|_| DropReason::Malformed)
                .map(|ssrc| Self::rtcp_verdict(ssrc, data.len(), Shape::Unprotected))
        } else {
            RtpHeader::parse(data)
                .map_err(|_| DropReason::Malformed)
                .and_then(|hdr| {
                    if appended_byte && data.len() <= hdr.len {
                        return Err(DropReason::Malformed);
                    }
                    Ok(Self::verdict(
                        &hdr,
                        data,
                        appended_byte,
                        data.len(),
                        0,
                        Shape::Unprotected,
                    ))
                })
        };
        match r {
            Ok(_) => self.stats.verified += 1,
            Err(reason) => self.stats.drop(reason),
        }
        r
    }

    fn verify_rtp(&mut self, data: &[u8], appended: bool) -> Result<Verified, DropReason> {
        let hdr = RtpHeader::parse(data).map_err(|_| DropReason::Malformed)?;
        match self.sources.get(&hdr.ssrc).map(|s| s.keying) {
            Some(Keying::Plain) => self.verify_keyed_rtp(data, &hdr, appended),
            Some(Keying::TipEkt) | None => self.verify_tip_rtp(data, &hdr, appended),
        }
    }

    fn verdict(
        hdr: &RtpHeader,
        data: &[u8],
        appended: bool,
        ap_end: usize,
        tag_len: usize,
        shape: Shape,
    ) -> Verified {
        Verified {
            ssrc: hdr.ssrc,
            kind: PacketKind::Rtp,
            index: 0,
            appended: appended.then(|| data[ap_end - 1]),
            first_csrc: (hdr.csrc_count > 0).then(|| be32(&data[12..16])),
            len: data.len(),
            hdr_len: hdr.len,
            payload_end: ap_end - usize::from(appended),
            tag_start: ap_end,
            trailer_start: ap_end + tag_len,
            shape,
            generation: 0,
        }
    }

    /// TIP EKT (WIRE.md section 2; ekt-spec.md §3.6).
    fn verify_tip_rtp(
        &mut self,
        data: &[u8],
        hdr: &RtpHeader,
        appended: bool,
    ) -> Result<Verified, DropReason> {
        let min_start = hdr.len + usize::from(appended);
        let form = tip::tag_form(data).map_err(|_| DropReason::Malformed)?;
        if form == TagForm::Short {
            let s = self
                .sources
                .get_mut(&hdr.ssrc)
                .ok_or(DropReason::UnknownSsrc)?;
            let parsed = TipEkt::parse(data, min_start, BASE_TAG_LEN, 0)
                .map_err(|_| DropReason::Malformed)?;
            let index = s
                .index
                .estimate(hdr.seq)
                .ok_or(DropReason::IndexOutOfRange)?;
            replay_check(&s.replay, index)?;
            let key = s.key_for_index(index).ok_or(DropReason::UnknownSsrc)?;
            let ap = &data[..parsed.start];
            let tag = rtp_base_tag(
                auth_of(key.ctx.rtp_transform()),
                ap,
                TagKind::Short,
                roc_of(index),
            );
            if !tags_equal(
                &data[parsed.start..parsed.start + BASE_TAG_LEN],
                &tag[..BASE_TAG_LEN],
            ) {
                return Err(DropReason::AuthFailed);
            }
            let generation = key.generation;
            s.replay.accept(index);
            s.index.accept(index);
            let mut v = Self::verdict(
                hdr,
                data,
                appended,
                parsed.start,
                BASE_TAG_LEN,
                Shape::TipShort,
            );
            v.index = index;
            v.generation = generation;
            return Ok(v);
        }

        let spi = tip::peek_spi(data).map_err(|_| DropReason::Malformed)?;
        let params = self.registry.get(spi).ok_or(DropReason::UnknownSpi)?;
        if params.profile() != SrtpProfile::AesCm128HmacSha1_80 {
            return Err(DropReason::UnknownSpi);
        }
        let parsed = TipEkt::parse(data, min_start, BASE_TAG_LEN, params.emk_len())
            .map_err(|_| DropReason::Malformed)?;
        let TipEkt::Full(f) = parsed.field else {
            return Err(DropReason::Malformed);
        };
        // A full tag gives the packet's exact index (WIRE.md section 7, ROC).
        let index = index_of(f.roc, hdr.seq);
        let ap = &data[..parsed.start];
        let kind = TagKind::Full(&data[parsed.start + BASE_TAG_LEN..]);
        let mut v = Self::verdict(
            hdr,
            data,
            appended,
            parsed.start,
            BASE_TAG_LEN,
            Shape::TipFull,
        );
        v.index = index;

        if let Some(s) = self.sources.get_mut(&hdr.ssrc) {
            replay_check(&s.replay, index)?;
            if let Some(key) = s.key_announced_by(spi, f.emk) {
                let tag = rtp_base_tag(auth_of(key.ctx.rtp_transform()), ap, kind, f.roc);
                if !tags_equal(f.base_tag, &tag[..BASE_TAG_LEN]) {
                    return Err(DropReason::AuthFailed);
                }
                v.generation = key.generation;
                s.replay.accept(index);
                s.index.accept(index);
                return Ok(v);
            }
        }

        // A new key: provisional until the tag verifies (ekt-spec.md §3.6 steps 4-6).
        let generation = self.next_generation;
        let key = SourceKey::from_emk(self.ghash, params, spi, f.emk, generation)?;
        let tag = rtp_base_tag(auth_of(key.ctx.rtp_transform()), ap, kind, f.roc);
        if !tags_equal(f.base_tag, &tag[..BASE_TAG_LEN]) {
            return Err(DropReason::AuthFailed);
        }
        let s = self.source_for_learning(hdr.ssrc)?;
        s.install(key, (f.isn != 0).then(|| index_of(f.roc, f.isn)));
        s.replay.accept(index);
        s.index.accept(index);
        self.next_generation += 1;
        self.stats.keys_learned += 1;
        v.generation = generation;
        Ok(v)
    }

    fn source_for_learning(&mut self, ssrc: u32) -> Result<&mut Source, DropReason> {
        if !self.sources.contains_key(&ssrc) && self.sources.len() >= self.max_sources {
            return Err(DropReason::TooManySources);
        }
        Ok(self
            .sources
            .entry(ssrc)
            .or_insert_with(|| Source::new(Keying::TipEkt)))
    }

    /// A configured key: plain SRTP tag or GCM tag.
    fn verify_keyed_rtp(
        &mut self,
        data: &[u8],
        hdr: &RtpHeader,
        appended: bool,
    ) -> Result<Verified, DropReason> {
        let s = self
            .sources
            .get_mut(&hdr.ssrc)
            .ok_or(DropReason::UnknownSsrc)?;
        let key = s.current.as_ref().ok_or(DropReason::UnknownSsrc)?;
        let index = s
            .index
            .estimate(hdr.seq)
            .ok_or(DropReason::IndexOutOfRange)?;
        replay_check(&s.replay, index)?;
        let suite = key.ctx.suite();
        let n = data.len();
        let mut v = if let Some(gcm) = &key.gcm_rtp {
            // AEAD streams carry activity and refresh in header extensions, not an appended
            // byte (WIRE.md section 6).
            if n < hdr.len + GCM_TAG_LEN {
                return Err(DropReason::Malformed);
            }
            let end = n - GCM_TAG_LEN;
            let iv = crate::srtp::gcm_rtp_iv(gcm.salt(), hdr.ssrc, index);
            let tag = gcm.tag(&iv, &data[..hdr.len], &data[hdr.len..end]);
            if !tags_equal(&data[end..], &tag) {
                return Err(DropReason::AuthFailed);
            }
            Self::verdict(hdr, data, false, end, GCM_TAG_LEN, Shape::Aead)
        } else {
            let tag_len = suite.srtp_tag_len();
            let end = n
                .checked_sub(tag_len)
                .filter(|&e| e >= hdr.len + usize::from(appended));
            let end = end.ok_or(DropReason::Malformed)?;
            let tag =
                auth_of(key.ctx.rtp_transform()).mac(&[&data[..end], &roc_of(index).to_be_bytes()]);
            if !tags_equal(&data[end..], &tag[..tag_len]) {
                return Err(DropReason::AuthFailed);
            }
            Self::verdict(hdr, data, appended, end, tag_len, Shape::Plain { tag_len })
        };
        v.index = index;
        v.generation = key.generation;
        s.replay.accept(index);
        s.index.accept(index);
        Ok(v)
    }

    /// An RTCP packet of `n` bytes from `ssrc`, forwarded unchanged.
    fn rtcp_verdict(ssrc: u32, n: usize, shape: Shape) -> Verified {
        Verified {
            ssrc,
            kind: PacketKind::Rtcp,
            index: 0,
            appended: None,
            first_csrc: None,
            len: n,
            hdr_len: RTCP_HEADER_LEN,
            payload_end: n,
            tag_start: n,
            trailer_start: n,
            shape,
            generation: 0,
        }
    }

    /// End-to-end SRTCP: the EKT SDES packet (WIRE.md section 7) or a keyed source's SRTCP.
    /// Verified and forwarded unchanged.
    fn verify_rtcp(&mut self, data: &[u8]) -> Result<Verified, DropReason> {
        let ssrc = rtcp_ssrc(data).map_err(|_| DropReason::Malformed)?;
        let n = data.len();
        let mut v = Self::rtcp_verdict(ssrc, n, Shape::TipShort);
        if let Some(s) = self
            .sources
            .get_mut(&ssrc)
            .filter(|s| s.keying == Keying::Plain)
        {
            let key = s.current.as_ref().ok_or(DropReason::UnknownSsrc)?;
            if let Some(gcm) = &key.gcm_rtcp {
                // RFC 7714 §9: header | C | tag | E|index. Unencrypted (E = 0) AEAD SRTCP
                // authenticates the whole packet as AAD and is not forwarded.
                let min = RTCP_HEADER_LEN + GCM_TAG_LEN + E_INDEX_LEN;
                let w = (n >= min)
                    .then(|| be32(&data[n - 4..]))
                    .ok_or(DropReason::Malformed)?;
                if w & E_FLAG == 0 {
                    return Err(DropReason::Malformed);
                }
                let index = w & !E_FLAG;
                replay_check(&s.rtcp_replay, u64::from(index))?;
                let mut aad = [0u8; RTCP_HEADER_LEN + E_INDEX_LEN];
                aad[..RTCP_HEADER_LEN].copy_from_slice(&data[..RTCP_HEADER_LEN]);
                aad[RTCP_HEADER_LEN..].copy_from_slice(&data[n - 4..]);
                let iv = crate::srtp::gcm_rtcp_iv(gcm.salt(), ssrc, index);
                let tag = gcm.tag(&iv, &aad, &data[RTCP_HEADER_LEN..n - min + RTCP_HEADER_LEN]);
                if !tags_equal(&data[n - GCM_TAG_LEN - E_INDEX_LEN..n - E_INDEX_LEN], &tag) {
                    return Err(DropReason::AuthFailed);
                }
                v.index = u64::from(index);
            } else {
                let tag_len = key.ctx.suite().srtcp_tag_len();
                let end = n
                    .checked_sub(tag_len)
                    .filter(|&e| e >= RTCP_HEADER_LEN + E_INDEX_LEN);
                let end = end.ok_or(DropReason::Malformed)?;
                let index = be32(&data[end - 4..end]) & !E_FLAG;
                replay_check(&s.rtcp_replay, u64::from(index))?;
                let tag = auth_of(key.ctx.rtcp_transform()).mac(&[&data[..end]]);
                if !tags_equal(&data[end..], &tag[..tag_len]) {
                    return Err(DropReason::AuthFailed);
                }
                v.index = u64::from(index);
            }
            s.rtcp_replay.accept(v.index);
            return Ok(v);
        }
        self.verify_tip_rtcp(data, v)
    }

    fn verify_tip_rtcp(&mut self, data: &[u8], mut v: Verified) -> Result<Verified, DropReason> {
        let min_start = RTCP_HEADER_LEN + E_INDEX_LEN;
        let emk_len = match tip::tag_form(data).map_err(|_| DropReason::Malformed)? {
            TagForm::Short => 0,
            TagForm::Full => {
                let spi = tip::peek_spi(data).map_err(|_| DropReason::Malformed)?;
                let params = self.registry.get(spi).ok_or(DropReason::UnknownSpi)?;
                if params.profile() != SrtpProfile::AesCm128HmacSha1_80 {
                    return Err(DropReason::UnknownSpi);
                }
                params.emk_len()
            }
        };
        let parsed = TipEkt::parse(data, min_start, BASE_TAG_LEN, emk_len)
            .map_err(|_| DropReason::Malformed)?;
        let ap = &data[..parsed.start];
        let index = u64::from(be32(&ap[ap.len() - 4..]) & !E_FLAG);
        v.index = index;
        let received = &data[parsed.start..parsed.start + BASE_TAG_LEN];
        let f = match parsed.field {
            TipEkt::Short { .. } => {
                let s = self
                    .sources
                    .get_mut(&v.ssrc)
                    .ok_or(DropReason::UnknownSsrc)?;
                replay_check(&s.rtcp_replay, index)?;
                let key = s.current.as_ref().ok_or(DropReason::UnknownSsrc)?;
                let tag = rtcp_base_tag(auth_of(key.ctx.rtcp_transform()), ap, TagKind::Short);
                if !tags_equal(received, &tag[..BASE_TAG_LEN]) {
                    return Err(DropReason::AuthFailed);
                }
                s.rtcp_replay.accept(index);
                return Ok(v);
            }
            TipEkt::Full(f) => f,
        };
        let kind = TagKind::Full(&data[parsed.start + BASE_TAG_LEN..]);
        if let Some(s) = self.sources.get_mut(&v.ssrc) {
            replay_check(&s.rtcp_replay, index)?;
            if let Some(key) = s.key_announced_by(f.spi, f.emk) {
                let tag = rtcp_base_tag(auth_of(key.ctx.rtcp_transform()), ap, kind);
                if !tags_equal(received, &tag[..BASE_TAG_LEN]) {
                    return Err(DropReason::AuthFailed);
                }
                s.rtcp_replay.accept(index);
                return Ok(v);
            }
        }
        let params = self.registry.get(f.spi).ok_or(DropReason::UnknownSpi)?;
        let key = SourceKey::from_emk(self.ghash, params, f.spi, f.emk, self.next_generation)?;
        let tag = rtcp_base_tag(auth_of(key.ctx.rtcp_transform()), ap, kind);
        if !tags_equal(received, &tag[..BASE_TAG_LEN]) {
            return Err(DropReason::AuthFailed);
        }
        let s = self.source_for_learning(v.ssrc)?;
        // The SRTCP ROC seeds a source with no SRTP history, and is otherwise ignored for
        // SRTP index estimation (WIRE.md section 7, ROC).
        if s.index.highest().is_none() {
            s.index.set_roc(f.roc);
        }
        s.install(key, (f.isn != 0).then(|| index_of(f.roc, f.isn)));
        s.rtcp_replay.accept(index);
        self.next_generation += 1;
        self.stats.keys_learned += 1;
        Ok(v)
    }

    /// Produces the receivers' copies of a verified packet (stage 3) into `out`; returns
    /// the datagrams added. RTCP goes out unchanged; RTP loses its appended byte, gets each
    /// receiver's CSRC and a tag computed once per distinct output header.
    pub fn emit(
        &mut self,
        data: &[u8],
        v: &Verified,
        receivers: &[Receiver],
        out: &mut TxBatch,
    ) -> Result<usize, DropReason> {
        let r = self.emit_inner(data, v, receivers, out);
        match r {
            Ok(n) => self.stats.forwarded += n as u64,
            Err(reason) => self.stats.drop(reason),
        }
        r
    }

    fn emit_inner(
        &mut self,
        data: &[u8],
        v: &Verified,
        receivers: &[Receiver],
        out: &mut TxBatch,
    ) -> Result<usize, DropReason> {
        if data.len() != v.len {
            return Err(DropReason::Malformed);
        }
        if receivers.is_empty() {
            return Ok(0);
        }
        if !out.has_room(receivers.len()) {
            return Err(DropReason::OutputFull);
        }
        if v.kind == PacketKind::Rtcp {
            out.next_slot()[..data.len()].copy_from_slice(data);
            let slot = out.commit_slot(data.len());
            for r in receivers {
                out.push(r.id, slot);
            }
            return Ok(receivers.len());
        }
        if self.defer_signing && self.deferred.len() + receivers.len() > self.deferred.capacity() {
            self.sign_deferred(out);
        }
        // Re-sign only with the key that verified the packet; plain RTP of a non-secure
        // meeting has none and is sent unsigned.
        let key = if v.shape == Shape::Unprotected {
            None
        } else {
            let source = self.sources.get(&v.ssrc).ok_or(DropReason::UnknownSsrc)?;
            Some(source.key(v.generation).ok_or(DropReason::UnknownSsrc)?)
        };
        if self.sfu_baseline
            && let Some(key) = key
            && v.shape != Shape::Aead
        {
            let n = emit_sfu(&mut self.plaintext, data, v, key, receivers, out);
            self.stats.resigned += n as u64;
            return Ok(n);
        }
        let mut shared: [(u32, u32); MAX_SHARED_HEADERS] = [(0, 0); MAX_SHARED_HEADERS];
        let mut n_shared = 0;
        let mut resigned = 0;
        for (i, r) in receivers.iter().enumerate() {
            let csrc_out = v.first_csrc.map(|c| r.csrc.apply(c));
            let group = csrc_out.unwrap_or(0);
            let slot = match shared[..n_shared].iter().find(|(g, _)| *g == group) {
                Some(&(_, slot)) => slot,
                None => {
                    if !out.has_room(receivers.len() - i) {
                        self.stats.resigned += resigned;
                        return Err(DropReason::OutputFull);
                    }
                    let defer = self.defer_signing
                        && matches!(v.shape, Shape::TipShort | Shape::TipFull)
                        && data.len() - v.trailer_start <= 48;
                    let (len, signed) = build(data, v, key, csrc_out, out.next_slot(), !defer);
                    resigned += u64::from(signed);
                    let slot = out.commit_slot(len);
                    if defer
                        && signed
                        && let Some(key) = key
                    {
                        self.deferred
                            .push(deferred_sign(v, key, slot, out.slot_bytes(slot)));
                    }
                    if n_shared < MAX_SHARED_HEADERS {
                        shared[n_shared] = (group, slot);
                        n_shared += 1;
                    }
                    slot
                }
            };
            out.push(r.id, slot);
        }
        self.stats.resigned += resigned;
        Ok(receivers.len())
    }

    /// Verifies and emits every packet of a batch (as recvmmsg delivers it) whose receivers
    /// are known up front; returns the datagrams added to `out`. The same decisions and
    /// bytes as [`Forwarder::verify`] and [`Forwarder::emit`] packet by packet, with the
    /// tags computed together (see [`Forwarder::prepare_batch`]).
    pub fn forward_batch(&mut self, batch: &[Inbound<'_>], out: &mut TxBatch) -> usize {
        let mut sent = 0;
        self.begin_batch();
        for chunk in batch.chunks(BATCH_JOBS) {
            let mut data: [(&[u8], bool); BATCH_JOBS] = [(&[], false); BATCH_JOBS];
            for (d, p) in data.iter_mut().zip(chunk) {
                *d = (p.data, p.appended_byte);
            }
            self.prepare_batch(&data[..chunk.len()]);
            for (i, p) in chunk.iter().enumerate() {
                if let Ok(v) = self.verify_prepared(i, p.data, p.appended_byte) {
                    sent += self.emit(p.data, &v, p.receivers, out).unwrap_or(0);
                }
            }
            self.sign_deferred(out);
        }
        self.end_batch(out);
        sent
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

    /// Starts a batch: until [`Forwarder::end_batch`], [`Forwarder::emit`] lays out its
    /// copies and leaves their HMAC tags to be computed together.
    pub fn begin_batch(&mut self) {
        self.defer_signing = true;
    }

    /// Ends a batch: every copy emitted since [`Forwarder::begin_batch`] gets its tag.
    /// Call it before `out` is sent.
    pub fn end_batch(&mut self, out: &mut TxBatch) {
        self.sign_deferred(out);
        self.defer_signing = false;
        self.prepared_len = 0;
    }

    /// Stage 1 of a batch of up to 64 datagrams (data, appended byte negotiated): the
    /// base tags of the short-tag packets of known TIP senders (most of the traffic),
    /// computed together, with the key and index each would be verified with now. Each
    /// datagram is then verified in order with [`Forwarder::verify_prepared`].
    pub fn prepare_batch(&mut self, packets: &[(&[u8], bool)]) {
        static NO_KEY: HmacPads = HmacPads::EMPTY;
        let packets = &packets[..packets.len().min(BATCH_JOBS)];
        self.prepared_len = packets.len();
        for (e, (data, appended)) in self.prepared.iter_mut().zip(packets) {
            *e = None;
            if !data.is_empty() {
                *e = early_short(&self.sources, data, *appended);
            }
        }
        let mut jobs: [HmacJob<'_>; BATCH_JOBS] =
            std::array::from_fn(|_| HmacJob::new(&NO_KEY, &[], &[]));
        let mut at = [0usize; BATCH_JOBS];
        let mut n = 0;
        for (i, (data, _)) in packets.iter().enumerate() {
            let Some(e) = &self.prepared[i] else { continue };
            let Some(key) = self.sources.get(&e.ssrc).and_then(|s| s.key(e.generation)) else {
                continue;
            };
            jobs[n] = HmacJob::new(
                auth_of(key.ctx.rtp_transform()).pads(),
                &data[..e.start],
                &e.tail,
            );
            at[n] = i;
            n += 1;
        }
        if n > 0 && hmac_sha1_batch(self.engine, &mut jobs[..n]).is_err() {
            // An engine this CPU lacks: each packet is verified on its own.
            self.prepared_len = 0;
            return;
        }
        for (job, &i) in jobs[..n].iter().zip(&at[..n]) {
            self.prepared_tags[i] = job.tag;
        }
    }

    /// Verifies datagram `i` of the last [`Forwarder::prepare_batch`] (`data` must be the
    /// same): the decision [`Forwarder::verify`] would take, with the tag computed there
    /// when it is still the one to check (else verified on its own).
    pub fn verify_prepared(
        &mut self,
        i: usize,
        data: &[u8],
        appended: bool,
    ) -> Result<Verified, DropReason> {
        match self.prepared.get(i).filter(|_| i < self.prepared_len) {
            Some(Some(e)) => {
                let (e, tag) = (*e, self.prepared_tags[i]);
                self.finish_short(data, appended, &e, &tag)
            }
            _ => self.verify(data, appended),
        }
    }

    /// Computes the waiting output signatures together and writes them into their slots.
    fn sign_deferred(&mut self, out: &mut TxBatch) {
        if self.deferred.is_empty() {
            return;
        }
        static NO_KEY: HmacPads = HmacPads::EMPTY;
        let mut jobs: [HmacJob<'_>; BATCH_JOBS] =
            std::array::from_fn(|_| HmacJob::new(&NO_KEY, &[], &[]));
        let n = self.deferred.len();
        for (job, d) in jobs.iter_mut().zip(&self.deferred) {
            *job = HmacJob::new(
                &d.pads,
                &out.slot_bytes(d.slot)[..d.payload_end],
                &d.tail[..d.tail_len],
            );
        }
        if hmac_sha1_batch(self.engine, &mut jobs[..n]).is_err() {
            // An engine this CPU lacks: the scalar one takes any job of a slot.
            let _ = hmac_sha1_batch(Engine::Scalar, &mut jobs[..n]);
        }
        let tags: [[u8; 20]; BATCH_JOBS] = std::array::from_fn(|i| jobs[i].tag);
        for (d, tag) in self.deferred.iter().zip(&tags) {
            let slot = out.slot_bytes_mut(d.slot);
            slot[d.payload_end..d.payload_end + BASE_TAG_LEN].copy_from_slice(&tag[..BASE_TAG_LEN]);
        }
        self.deferred.clear();
    }

    /// Stage 2 for a packet whose tag was computed in stage 1: the same decision as
    /// [`Forwarder::verify`], in order; verified on its own if its sender's key or index
    /// moved since stage 1.
    fn finish_short(
        &mut self,
        data: &[u8],
        appended: bool,
        e: &EarlyShort,
        tag: &[u8; 20],
    ) -> Result<Verified, DropReason> {
        // Only the sender's state can have moved since stage 1 (the packet's own bytes
        // were parsed there): its index estimate and the key that index selects.
        let hdr = RtpHeader::parse(data).map_err(|_| DropReason::Malformed)?;
        let unchanged = appended == e.appended
            && self.sources.get(&hdr.ssrc).is_some_and(|s| {
                s.index.estimate(hdr.seq) == Some(e.index)
                    && s.key_for_index(e.index).map(|k| k.generation) == Some(e.generation)
            });
        if !unchanged {
            return self.verify(data, appended);
        }
        let s = self.sources.get_mut(&hdr.ssrc).expect("checked above");
        let r = replay_check(&s.replay, e.index).and_then(|()| {
            if tags_equal(&data[e.start..e.start + BASE_TAG_LEN], &tag[..BASE_TAG_LEN]) {
                Ok(())
            } else {
                Err(DropReason::AuthFailed)
            }
        });
        match r {
            Ok(()) => {
                s.replay.accept(e.index);
                s.index.accept(e.index);
                self.stats.verified += 1;
                let mut v =
                    Self::verdict(&hdr, data, appended, e.start, BASE_TAG_LEN, Shape::TipShort);
                v.index = e.index;
                v.generation = e.generation;
                Ok(v)
            }
            Err(reason) => {
                self.stats.drop(reason);
                Err(reason)
            }
        }
    }
}

/// Writes one receiver's copy into `slot`: header with `csrc_out`, the ciphertext without
/// the appended byte, a new tag (none without a key: plain RTP), the unchanged trailer.
/// Returns (length, re-signed).
fn build(
    data: &[u8],
    v: &Verified,
    key: Option<&SourceKey>,
    csrc_out: Option<u32>,
    slot: &mut [u8; SLOT_SIZE],
    sign_now: bool,
) -> (usize, bool) {
    let p = v.payload_end;
    let trailer = &data[v.trailer_start..];
    let tag_len = v.trailer_start - v.tag_start;
    let len = p + tag_len + trailer.len();
    slot[..p].copy_from_slice(&data[..p]);
    if let Some(c) = csrc_out {
        slot[12..16].copy_from_slice(&c.to_be_bytes());
    }
    slot[p + tag_len..len].copy_from_slice(trailer);
    if v.appended.is_none() && csrc_out == v.first_csrc {
        // Same authenticated bytes: the received tag is still right.
        slot[p..p + tag_len].copy_from_slice(&data[v.tag_start..v.trailer_start]);
        return (len, false);
    }
    let Some(key) = key else {
        return (len, false);
    };
    match v.shape {
        // Deferred: the caller computes it with the batch ([`Forwarder::sign_deferred`]).
        Shape::TipFull | Shape::TipShort if !sign_now => {}
        Shape::TipFull | Shape::TipShort | Shape::Plain { .. } => {
            sign_hmac(v, key, slot, tag_len, len);
        }
        // Has no key: returned above.
        Shape::Unprotected => {}
        Shape::Aead => {
            let gcm = key
                .gcm_rtp
                .as_ref()
                .expect("AEAD key has a GHASH authenticator");
            let received: [u8; 16] = data[v.tag_start..v.trailer_start]
                .try_into()
                .expect("16-byte GCM tag");
            let a_in = &data[..v.hdr_len];
            let tag = gcm.retag_header(received, a_in, &slot[..v.hdr_len], p - v.hdr_len);
            slot[p..p + GCM_TAG_LEN].copy_from_slice(&tag);
        }
    }
    (len, true)
}

/// Writes the HMAC tag of the copy laid out in `slot[..len]` (authenticated portion
/// `..payload_end`, then `tag_len` tag bytes, then any EKT trailer).
fn sign_hmac(
    v: &Verified,
    key: &SourceKey,
    slot: &mut [u8; SLOT_SIZE],
    tag_len: usize,
    len: usize,
) {
    let p = v.payload_end;
    let auth = auth_of(key.ctx.rtp_transform());
    match v.shape {
        Shape::TipFull | Shape::TipShort => {
            let kind = if v.shape == Shape::TipFull {
                TagKind::Full(&slot[p + tag_len..len])
            } else {
                TagKind::Short
            };
            let tag = rtp_base_tag(auth, &slot[..p], kind, roc_of(v.index));
            slot[p..p + BASE_TAG_LEN].copy_from_slice(&tag[..BASE_TAG_LEN]);
        }
        Shape::Plain { tag_len } => {
            let tag = auth.mac(&[&slot[..p], &roc_of(v.index).to_be_bytes()]);
            slot[p..p + tag_len].copy_from_slice(&tag[..tag_len]);
        }
        Shape::Unprotected | Shape::Aead => {}
    }
}

/// A copy laid out in `slot` (committed as `slot_id`) whose TIP base tag is deferred:
/// what its HMAC takes after the authenticated portion, as [`rtp_base_tag`] builds it.
fn deferred_sign(v: &Verified, key: &SourceKey, slot_id: u32, slot: &[u8]) -> DeferredSign {
    let tag_len = v.trailer_start - v.tag_start;
    let trailer = &slot[v.payload_end + tag_len..];
    let roc = roc_of(v.index).to_be_bytes();
    let mut tail = [0u8; BASE_TAG_LEN + 48 + 4];
    let tail_len = match v.shape {
        Shape::TipFull => {
            let t = BASE_TAG_LEN + trailer.len();
            tail[BASE_TAG_LEN..t].copy_from_slice(trailer);
            tail[t..t + 4].copy_from_slice(&roc);
            t + 4
        }
        _ => {
            tail[..4].copy_from_slice(&roc);
            BASE_TAG_LEN + 1
        }
    };
    DeferredSign {
        slot: slot_id,
        pads: auth_of(key.ctx.rtp_transform()).pads().clone(),
        payload_end: v.payload_end,
        tail,
        tail_len,
    }
}

/// The SFU baseline's emit ([`Forwarder::set_sfu_baseline`]): decrypt once into
/// `plaintext`, then for every receiver encrypt and sign a copy; returns the copies.
fn emit_sfu(
    plaintext: &mut [u8; SLOT_SIZE],
    data: &[u8],
    v: &Verified,
    key: &SourceKey,
    receivers: &[Receiver],
    out: &mut TxBatch,
) -> usize {
    let transform = key.ctx.rtp_transform();
    let payload = v.hdr_len..v.payload_end;
    let plain = &mut plaintext[..payload.len()];
    plain.copy_from_slice(&data[payload.clone()]);
    transform.apply_keystream(v.ssrc, v.index, plain);
    let trailer = &data[v.trailer_start..];
    let tag_len = v.trailer_start - v.tag_start;
    let len = v.payload_end + tag_len + trailer.len();
    for r in receivers {
        let slot = out.next_slot();
        slot[..v.hdr_len].copy_from_slice(&data[..v.hdr_len]);
        if let Some(c) = v.first_csrc.map(|c| r.csrc.apply(c)) {
            slot[12..16].copy_from_slice(&c.to_be_bytes());
        }
        slot[payload.clone()].copy_from_slice(plain);
        transform.apply_keystream(v.ssrc, v.index, &mut slot[payload.clone()]);
        slot[len - trailer.len()..len].copy_from_slice(trailer);
        sign_hmac(v, key, slot, tag_len, len);
        let slot = out.commit_slot(len);
        out.push(r.id, slot);
    }
    receivers.len()
}

/// What [`Forwarder::verify`] would check a short-tag TIP packet against now, if it is
/// one from a known sender.
fn early_short(
    sources: &HashMap<u32, Source, SsrcHashBuilder>,
    data: &[u8],
    appended: bool,
) -> Option<EarlyShort> {
    if data.len() > SLOT_SIZE || is_rtcp(data) {
        return None;
    }
    let hdr = RtpHeader::parse(data).ok()?;
    let s = sources.get(&hdr.ssrc)?;
    if s.keying != Keying::TipEkt || tip::tag_form(data).ok()? != TagForm::Short {
        return None;
    }
    let parsed = TipEkt::parse(data, hdr.len + usize::from(appended), BASE_TAG_LEN, 0).ok()?;
    let index = s.index.estimate(hdr.seq)?;
    let key = s.key_for_index(index)?;
    let mut tail = [0u8; BASE_TAG_LEN + 1];
    tail[..4].copy_from_slice(&roc_of(index).to_be_bytes());
    Some(EarlyShort {
        ssrc: hdr.ssrc,
        start: parsed.start,
        appended,
        index,
        generation: key.generation,
        tail,
    })
}

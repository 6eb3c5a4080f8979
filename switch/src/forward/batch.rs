//! The batch protocol of the fast path: a recvmmsg batch's short-tag HMACs computed
//! together before the datagrams are verified in order, and its output copies' HMACs
//! computed together before it is sent (`srtp::batch`: SHA-NI streams or AVX2 lanes).
//! The decisions and bytes are exactly those of one packet at a time.

use super::*;
use crate::rtp::{RtpHeader, is_rtcp};
use crate::srtp::batch::{HmacJob, HmacPads, hmac_sha1_batch};
use crate::srtp::tip_tag::BASE_TAG_LEN;
use crate::srtp::{roc_of, tags_equal};
use ekt::tip_tag::{self as tip, TagForm, TipEkt};

/// An output copy laid out in its slot whose tag is still to be computed.
#[derive(Debug, Clone)]
pub(super) struct DeferredSign {
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
pub(super) struct EarlyShort {
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

impl Forwarder {
    /// Verifies and emits every packet of a batch (as recvmmsg delivers it) whose receivers
    /// are known up front; returns the datagrams added to `out`. The same decisions and
    /// bytes as [`Forwarder::verify`] and [`Forwarder::emit`] packet by packet, with the
    /// tags computed together ([`Forwarder::begin_batch`]), [`MAX_BATCH`] at a time.
    pub fn forward_batch(&mut self, batch: &[Inbound<'_>], out: &mut TxBatch) -> usize {
        let mut sent = 0;
        for chunk in batch.chunks(MAX_BATCH) {
            let mut data: [(&[u8], bool); MAX_BATCH] = [(&[], false); MAX_BATCH];
            for (d, p) in data.iter_mut().zip(chunk) {
                *d = (p.data, p.appended_byte);
            }
            self.begin_batch(&data[..chunk.len()]);
            for (i, p) in chunk.iter().enumerate() {
                if let Ok(v) = self.verify_in_batch(i, p.data, p.appended_byte) {
                    sent += self.emit(p.data, &v, p.receivers, out).unwrap_or(0);
                }
            }
            self.finish_batch(out);
        }
        sent
    }

    /// Begins a batch of up to [`MAX_BATCH`] datagrams (data, appended byte negotiated):
    /// the base tags of the short-tag packets of known TIP senders (most of the traffic)
    /// are computed together, with the key and index each would be verified with now.
    /// Then each datagram is verified in order with [`Forwarder::verify_in_batch`] and
    /// its copies laid out with [`Forwarder::emit`], whose HMAC tags wait for
    /// [`Forwarder::finish_batch`] (or are computed together when [`MAX_BATCH`] wait).
    pub fn begin_batch(&mut self, packets: &[(&[u8], bool)]) {
        static NO_KEY: HmacPads = HmacPads::EMPTY;
        self.defer_signing = true;
        let packets = &packets[..packets.len().min(MAX_BATCH)];
        self.prepared_len = packets.len();
        for (e, (data, appended)) in self.prepared.iter_mut().zip(packets) {
            *e = None;
            if !data.is_empty() {
                *e = early_short(&self.sources, data, *appended);
            }
        }
        let mut jobs: [HmacJob<'_>; MAX_BATCH] =
            std::array::from_fn(|_| HmacJob::new(&NO_KEY, &[], &[]));
        let mut at = [0usize; MAX_BATCH];
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

    /// Verifies datagram `i` of the batch begun last (`data` must be the same): the
    /// decision [`Forwarder::verify`] would take, with the tag computed at the start of
    /// the batch when it is still the one to check (else verified on its own). Outside a
    /// batch, or past its end, it is [`Forwarder::verify`].
    pub fn verify_in_batch(
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

    /// Ends the batch: every copy emitted since [`Forwarder::begin_batch`] gets its tag.
    /// Call it before `out` is sent.
    pub fn finish_batch(&mut self, out: &mut TxBatch) {
        self.sign_deferred(out);
        self.defer_signing = false;
        self.prepared_len = 0;
    }

    /// Computes the waiting output signatures together and writes them into their slots.
    pub(super) fn sign_deferred(&mut self, out: &mut TxBatch) {
        if self.deferred.is_empty() {
            return;
        }
        static NO_KEY: HmacPads = HmacPads::EMPTY;
        let mut jobs: [HmacJob<'_>; MAX_BATCH] =
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
        let tags: [[u8; 20]; MAX_BATCH] = std::array::from_fn(|i| jobs[i].tag);
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

/// A copy laid out in `slot` (committed as `slot_id`) whose TIP base tag is deferred:
/// what its HMAC takes after the authenticated portion, as [`rtp_base_tag`] builds it.
pub(super) fn deferred_sign(
    v: &Verified,
    key: &SourceKey,
    slot_id: u32,
    slot: &[u8],
) -> DeferredSign {
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

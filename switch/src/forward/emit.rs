//! Stage 3 of the fast path: a verified packet's copies, one per receiver, each without
//! the appended byte and with the receiver's CSRC, re-signed once per distinct output
//! header (HMAC, or the O(header) GCM re-tag of WIRE.md section 6). Inside a batch the
//! HMAC tags are deferred and computed together (`batch.rs`).

use super::batch::deferred_sign;
use super::*;
use crate::srtp::roc_of;
use crate::srtp::tip_tag::{BASE_TAG_LEN, TagKind, rtp_base_tag};

impl Forwarder {
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
        #[cfg(feature = "testing")]
        if let Some(key) = key
            && let Some(n) = self.sfu.emit(data, v, key, receivers, out)
        {
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
pub(super) fn sign_hmac(
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

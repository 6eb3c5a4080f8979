//! The SFU baseline, for comparison only (`mswitch load`, tools builds: feature
//! `testing`): forward as an SFU does, decrypting each verified AES-CM packet once and,
//! for every receiver, encrypting and signing it again (an SFU keys each receiver's hop
//! with its own key; here the sender's key is used again so that the endpoints can check
//! the result, at the same cost). No header-sharing of signatures. AEAD packets take the
//! normal path. The production switch is built without it.

use super::emit::sign_hmac;
use super::*;

/// The SFU baseline's state: whether it is on, and the decrypted payload (reserved up
/// front).
pub(super) struct SfuBaseline {
    on: bool,
    plaintext: Box<[u8; SLOT_SIZE]>,
}

impl Default for SfuBaseline {
    fn default() -> Self {
        Self {
            on: false,
            plaintext: Box::new([0u8; SLOT_SIZE]),
        }
    }
}

impl Forwarder {
    /// For comparison only (`mswitch load`'s baseline): forward as an SFU does, decrypting
    /// each verified AES-CM packet once and, for every receiver, encrypting and signing it
    /// again (an SFU keys each receiver's hop with its own key; here the sender's key is
    /// used again so that the endpoints can check the result, at the same cost). No
    /// header-sharing of signatures. AEAD packets take the normal path.
    pub fn set_sfu_baseline(&mut self, on: bool) {
        self.sfu.on = on;
    }
}

impl SfuBaseline {
    /// Emits `v`'s copies as an SFU would when on (and the packet is not AEAD); returns the
    /// copies, or `None` when the normal path must run.
    pub(super) fn emit(
        &mut self,
        data: &[u8],
        v: &Verified,
        key: &SourceKey,
        receivers: &[Receiver],
        out: &mut TxBatch,
    ) -> Option<usize> {
        (self.on && v.shape != Shape::Aead)
            .then(|| emit_sfu(&mut self.plaintext, data, v, key, receivers, out))
    }
}

/// The SFU baseline's emit (`Forwarder::set_sfu_baseline`): decrypt once into
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

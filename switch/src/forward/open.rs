//! A verified packet's payload in the clear, for a transcrypt leg (issue 19): only the
//! streams a standard endpoint receives are ever decrypted, with the key that verified
//! them (the sender's, learned from EKT), after verification, never instead of it.

use super::*;

impl Forwarder {
    /// Writes the plain RTP packet of `data` (verified as `v`) into `out`: the header as
    /// received, the decrypted payload, no appended byte and no tag. Returns its length.
    pub fn open(&self, data: &[u8], v: &Verified, out: &mut [u8]) -> Result<usize, DropReason> {
        if data.len() != v.len || v.kind != PacketKind::Rtp {
            return Err(DropReason::Malformed);
        }
        let n = v.payload_end;
        let dst = out.get_mut(..n).ok_or(DropReason::TooLarge)?;
        dst.copy_from_slice(&data[..n]);
        if v.shape == Shape::Unprotected {
            return Ok(n);
        }
        let key = self
            .sources
            .get(&v.ssrc)
            .and_then(|s| s.key(v.generation))
            .ok_or(DropReason::UnknownSsrc)?;
        let tag = &data[v.tag_start..v.trailer_start];
        key.ctx
            .decrypt_verified_rtp(dst, v.hdr_len, v.index, tag)
            .map_err(|_| DropReason::AuthFailed)?;
        Ok(n)
    }
}

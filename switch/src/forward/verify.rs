//! Stage 1 of the fast path: a packet's tag verified before anything else is done with it,
//! in each of its four shapes (TIP EKT full and short tags, configured SRTP, AEAD), and the
//! replay check (RFC 3711 §3.3.2). Plain RTP of a non-secure meeting is taken unverified.

use ekt::SrtpProfile;
use ekt::tip_tag::{self as tip, TagForm, TipEkt};

use super::*;
use crate::rtp::{RTCP_HEADER_LEN, RtpHeader, is_rtcp, rtcp_ssrc};
use crate::srtp::tip_tag::{BASE_TAG_LEN, TagKind, rtcp_base_tag, rtp_base_tag};
use crate::srtp::{index_of, roc_of, tags_equal};

impl Forwarder {
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

    pub(super) fn verdict(
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
}

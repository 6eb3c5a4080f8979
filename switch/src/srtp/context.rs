//! An SRTP crypto context for one SSRC: protect and unprotect RTP and RTCP in place.

use aes::Aes128;
use aes::cipher::StreamCipher;
use aes_gcm::AeadInOut;
use ctr::cipher::{InnerIvInit, StreamCipherCoreWrapper};
use ekt::Spi;

use super::tip_tag::{self, BASE_TAG_LEN, TagKind};
use super::{
    IndexTracker, MasterKey, ReplayWindow, SrtpError, Suite, Transform, index_of, roc_of,
    tags_equal,
};
use crate::rtp::{RTCP_HEADER_LEN, RtpHeader, rtcp_ssrc};

/// SRTCP E flag (RFC 3711 §3.4).
const E_FLAG: u32 = 0x8000_0000;
/// E|index word length.
const E_INDEX_LEN: usize = 4;
/// AEAD tag length (RFC 7714 §7.1: always the full 16 bytes).
const GCM_TAG_LEN: usize = 16;

/// What follows the base tag of a TIP EKT packet being protected.
#[derive(Debug, Clone, Copy)]
pub enum TipTrailer<'a> {
    /// A full tag carrying the sender's encrypted master key.
    Full {
        /// E(KEK, MK).
        emk: &'a [u8],
        /// First sequence number under this key, or 0 (WIRE.md section 7, ISN).
        isn: u16,
        /// The parameter set's SPI (odd).
        spi: Spi,
    },
    /// A short tag.
    Short,
}

/// An SRTP/SRTCP crypto context for one SSRC (RFC 3711 §3.2): session keys for both
/// stream kinds, the SRTP index, replay windows and the SRTCP send index.
pub struct SrtpContext {
    suite: Suite,
    rtp: Transform,
    rtcp: Transform,
    rtp_index: IndexTracker,
    rtp_replay: ReplayWindow,
    rtcp_replay: ReplayWindow,
    rtcp_sent: u32,
}

impl std::fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpContext")
            .field("suite", &self.suite)
            .field("roc", &self.rtp_index.roc())
            .finish_non_exhaustive()
    }
}

/// RFC 3711 §4.1.1: IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16).
#[inline]
fn aes_cm_apply(aes: &Aes128, salt: &[u8; 14], ssrc: u32, index: u64, data: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(salt);
    for (d, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *d ^= s;
    }
    for (d, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
        *d ^= s;
    }
    let core =
        ctr::CtrCore::<Aes128, ctr::flavors::Ctr128BE>::inner_iv_init(aes.clone(), &iv.into());
    StreamCipherCoreWrapper::from_core(core).apply_keystream(data);
}

/// RFC 7714 §8.1: IV = (00 00 || SSRC || ROC || SEQ) XOR salt.
#[inline]
pub(crate) fn gcm_rtp_iv(salt: &[u8; 12], ssrc: u32, index: u64) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[6..12].copy_from_slice(&index.to_be_bytes()[2..]);
    for (d, s) in iv.iter_mut().zip(salt) {
        *d ^= s;
    }
    iv
}

/// RFC 7714 §9.1: IV = (00 00 || SSRC || 00 00 || 0 || SRTCP index) XOR salt.
#[inline]
pub(crate) fn gcm_rtcp_iv(salt: &[u8; 12], ssrc: u32, index: u32) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[8..12].copy_from_slice(&(index & !E_FLAG).to_be_bytes());
    for (d, s) in iv.iter_mut().zip(salt) {
        *d ^= s;
    }
    iv
}

fn gcm_seal(t: &Transform, iv: &[u8; 12], aad: &[&[u8]], data: &mut [u8]) -> [u8; GCM_TAG_LEN] {
    let mut joined = [0u8; 64];
    let aad = join(aad, &mut joined);
    let tag = match t {
        Transform::Gcm128 { aead, .. } => aead.encrypt_inout_detached(iv.into(), aad, data.into()),
        Transform::Gcm256 { aead, .. } => aead.encrypt_inout_detached(iv.into(), aad, data.into()),
        Transform::AesCm { .. } => unreachable!("GCM transform expected"),
    };
    tag.expect("SRTP packets are far below the GCM length limits")
        .into()
}

fn gcm_open(
    t: &Transform,
    iv: &[u8; 12],
    aad: &[&[u8]],
    data: &mut [u8],
    tag: &[u8],
) -> Result<(), SrtpError> {
    let mut joined = [0u8; 64];
    let aad = join(aad, &mut joined);
    let tag = <&[u8; GCM_TAG_LEN]>::try_from(tag).map_err(|_| SrtpError::TooShort)?;
    let r = match t {
        Transform::Gcm128 { aead, .. } => {
            aead.decrypt_inout_detached(iv.into(), aad, data.into(), tag.into())
        }
        Transform::Gcm256 { aead, .. } => {
            aead.decrypt_inout_detached(iv.into(), aad, data.into(), tag.into())
        }
        Transform::AesCm { .. } => unreachable!("GCM transform expected"),
    };
    r.map_err(|_| SrtpError::AuthFailed)
}

/// Joins AAD parts into `scratch` when there is more than one and they fit; the AAD of
/// SRTP is one header slice, of SRTCP 8 + 4 bytes.
fn join<'a>(parts: &[&'a [u8]], scratch: &'a mut [u8; 64]) -> &'a [u8] {
    if let [one] = parts {
        return one;
    }
    let mut n = 0;
    for p in parts {
        scratch[n..n + p.len()].copy_from_slice(p);
        n += p.len();
    }
    &scratch[..n]
}

impl SrtpContext {
    /// A context for `suite` keyed with `master`.
    pub fn new(suite: Suite, master: &MasterKey) -> Self {
        Self {
            suite,
            rtp: Transform::derive(suite, master, false),
            rtcp: Transform::derive(suite, master, true),
            rtp_index: IndexTracker::new(),
            rtp_replay: ReplayWindow::new(),
            rtcp_replay: ReplayWindow::new(),
            rtcp_sent: 0,
        }
    }

    /// A context keyed directly with session keys (no KDF), for AEAD suites: the form the
    /// RFC 7714 test vectors are given in.
    #[cfg(test)]
    pub(crate) fn from_gcm_session_keys(suite: Suite, key: &[u8], salt: &[u8; 12]) -> Self {
        let t = || Transform::gcm_from_session(suite, key, salt);
        Self {
            suite,
            rtp: t(),
            rtcp: t(),
            rtp_index: IndexTracker::new(),
            rtp_replay: ReplayWindow::new(),
            rtcp_replay: ReplayWindow::new(),
            rtcp_sent: 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn set_rtcp_sent(&mut self, index: u32) {
        self.rtcp_sent = index;
    }

    /// The suite.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The SRTP rollover counter.
    pub fn roc(&self) -> u32 {
        self.rtp_index.roc()
    }

    /// Sets the ROC (for a late joiner, or from EKT). Never lowers it once packets were seen.
    pub fn set_roc(&mut self, roc: u32) {
        self.rtp_index.set_roc(roc);
    }

    pub(crate) fn rtp_transform(&self) -> &Transform {
        &self.rtp
    }

    pub(crate) fn rtcp_transform(&self) -> &Transform {
        &self.rtcp
    }

    /// Protects the RTP packet in `buf[..len]` in place; returns the SRTP length. `buf`
    /// must have room for the tag.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        self.protect_rtp_inner(buf, len, None, None)
    }

    /// Protects with a plain SRTP tag and the TIP appended byte (WIRE.md section 3) after
    /// the ciphertext, inside the authenticated portion. HMAC suites only: AEAD streams
    /// signal activity in header extensions (WIRE.md section 6).
    pub fn protect_rtp_with_appended_byte(
        &mut self,
        buf: &mut [u8],
        len: usize,
        byte: u8,
    ) -> Result<usize, SrtpError> {
        self.protect_rtp_inner(buf, len, Some(byte), None)
    }

    /// The one SRTP protect path: encrypt, append the TIP byte if any, then the tag in the
    /// shape asked for (plain RFC 3711 tag, or TIP EKT base tag and trailer).
    fn protect_rtp_inner(
        &mut self,
        buf: &mut [u8],
        len: usize,
        appended: Option<u8>,
        tip: Option<TipTrailer<'_>>,
    ) -> Result<usize, SrtpError> {
        if tip.is_some() && self.suite != Suite::AesCm128HmacSha1_80 {
            return Err(SrtpError::UnsupportedSuite);
        }
        let hdr = RtpHeader::parse(buf.get(..len).ok_or(SrtpError::TooShort)?)?;
        let index = self
            .rtp_index
            .estimate(hdr.seq)
            .ok_or(SrtpError::IndexOutOfRange)?;
        let ap_len = len + usize::from(appended.is_some());
        let total = ap_len
            + match &tip {
                Some(t) => BASE_TAG_LEN + trailer_len(t),
                None => self.suite.srtp_tag_len(),
            };
        if buf.len() < total {
            return Err(SrtpError::BufferTooSmall);
        }
        let roc = roc_of(index);
        match &self.rtp {
            Transform::AesCm { aes, salt, auth } => {
                aes_cm_apply(aes, salt, hdr.ssrc, index, &mut buf[hdr.len..len]);
                if let Some(x) = appended {
                    buf[len] = x;
                }
                let (tag, tag_len) = match tip {
                    Some(trailer) => {
                        let tag =
                            write_trailer_and_tag(buf, ap_len, total, trailer, roc, |ap, kind| {
                                tip_tag::rtp_base_tag(auth, ap, kind, roc)
                            })?;
                        (tag, BASE_TAG_LEN)
                    }
                    None => (
                        auth.mac(&[&buf[..ap_len], &roc.to_be_bytes()]),
                        total - ap_len,
                    ),
                };
                buf[ap_len..ap_len + tag_len].copy_from_slice(&tag[..tag_len]);
            }
            t => {
                // AEAD streams carry no appended byte and no TIP tag (WIRE.md section 6).
                if appended.is_some() {
                    return Err(SrtpError::UnsupportedSuite);
                }
                let iv = gcm_rtp_iv(t.gcm_salt(), hdr.ssrc, index);
                let (head, body) = buf.split_at_mut(hdr.len);
                let tag = gcm_seal(t, &iv, &[head], &mut body[..len - hdr.len]);
                buf[len..total].copy_from_slice(&tag);
            }
        }
        self.rtp_index.accept(index);
        Ok(total)
    }

    /// Decrypts the payload of an SRTP packet whose tag was already verified (the
    /// forwarder's verdict), in place: `packet` is the header and ciphertext, `tag` the
    /// AEAD tag (AEAD suites re-check it, their cipher needs it; HMAC suites ignore it).
    /// Index, replay and key state are the verifier's and are not touched.
    pub(crate) fn decrypt_verified_rtp(
        &self,
        packet: &mut [u8],
        hdr_len: usize,
        index: u64,
        tag: &[u8],
    ) -> Result<(), SrtpError> {
        let ssrc = RtpHeader::parse(packet)?.ssrc;
        match &self.rtp {
            Transform::AesCm { aes, salt, .. } => {
                aes_cm_apply(aes, salt, ssrc, index, &mut packet[hdr_len..]);
                Ok(())
            }
            t => {
                let iv = gcm_rtp_iv(t.gcm_salt(), ssrc, index);
                let (head, body) = packet.split_at_mut(hdr_len);
                gcm_open(t, &iv, &[head], body, tag)
            }
        }
    }

    /// Verifies and decrypts the SRTP packet in `buf` in place; returns the RTP length.
    /// Replayed packets and bad tags are refused and change nothing.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let hdr = RtpHeader::parse(buf)?;
        let tag_len = self.suite.srtp_tag_len();
        let end = buf
            .len()
            .checked_sub(tag_len)
            .filter(|&e| e >= hdr.len)
            .ok_or(SrtpError::TooShort)?;
        let index = self
            .rtp_index
            .estimate(hdr.seq)
            .ok_or(SrtpError::IndexOutOfRange)?;
        self.rtp_replay.check(index)?;
        match &self.rtp {
            Transform::AesCm { aes, salt, auth } => {
                let tag = auth.mac(&[&buf[..end], &roc_of(index).to_be_bytes()]);
                if !tags_equal(&buf[end..], &tag[..tag_len]) {
                    return Err(SrtpError::AuthFailed);
                }
                aes_cm_apply(aes, salt, hdr.ssrc, index, &mut buf[hdr.len..end]);
            }
            t => {
                let iv = gcm_rtp_iv(t.gcm_salt(), hdr.ssrc, index);
                let (head, body) = buf.split_at_mut(hdr.len);
                let (data, tag) = body.split_at_mut(end - hdr.len);
                gcm_open(t, &iv, &[head], data, tag)?;
            }
        }
        self.rtp_replay.accept(index);
        self.rtp_index.accept(index);
        Ok(end)
    }

    /// Protects an RTP packet with a TIP EKT tag (WIRE.md section 2): the payload is
    /// encrypted, `appended` (the activity or refresh byte, WIRE.md section 3) goes after the
    /// ciphertext inside the authenticated portion, then the base tag and the EKT trailer.
    pub fn protect_rtp_tip(
        &mut self,
        buf: &mut [u8],
        len: usize,
        appended: Option<u8>,
        trailer: TipTrailer<'_>,
    ) -> Result<usize, SrtpError> {
        self.protect_rtp_inner(buf, len, appended, Some(trailer))
    }

    /// Verifies and decrypts an SRTP packet ending in a TIP EKT tag, with this context's
    /// key (an endpoint that learned the sender's key). `appended` says whether the packet
    /// carries the appended byte, which is returned. The EKT trailer is checked only as
    /// part of the authenticated input; key learning is `forward`'s job.
    pub fn unprotect_rtp_tip(
        &mut self,
        buf: &mut [u8],
        appended: bool,
    ) -> Result<(usize, Option<u8>), SrtpError> {
        let Transform::AesCm { aes, salt, auth } = &self.rtp else {
            return Err(SrtpError::UnsupportedSuite);
        };
        let hdr = RtpHeader::parse(buf)?;
        let parsed =
            ekt::tip_tag::TipEkt::parse(buf, hdr.len + usize::from(appended), BASE_TAG_LEN, 16)?;
        let ap_len = parsed.start;
        let (index, kind) = match parsed.field {
            ekt::tip_tag::TipEkt::Full(f) => (
                index_of(f.roc, hdr.seq),
                TagKind::Full(&buf[ap_len + BASE_TAG_LEN..]),
            ),
            ekt::tip_tag::TipEkt::Short { .. } => (
                self.rtp_index
                    .estimate(hdr.seq)
                    .ok_or(SrtpError::IndexOutOfRange)?,
                TagKind::Short,
            ),
        };
        self.rtp_replay.check(index)?;
        let tag = tip_tag::rtp_base_tag(auth, &buf[..ap_len], kind, roc_of(index));
        if !tags_equal(&buf[ap_len..ap_len + BASE_TAG_LEN], &tag[..BASE_TAG_LEN]) {
            return Err(SrtpError::AuthFailed);
        }
        let (payload_end, x) = if appended {
            (ap_len - 1, Some(buf[ap_len - 1]))
        } else {
            (ap_len, None)
        };
        aes_cm_apply(aes, salt, hdr.ssrc, index, &mut buf[hdr.len..payload_end]);
        self.rtp_replay.accept(index);
        self.rtp_index.accept(index);
        Ok((payload_end, x))
    }

    fn next_rtcp_index(&mut self) -> u32 {
        // RFC 3711 §3.4: 31 bits; the first packet is index 1 (WIRE.md section 7).
        self.rtcp_sent = (self.rtcp_sent + 1) & !E_FLAG;
        self.rtcp_sent
    }

    /// Protects the RTCP compound packet in `buf[..len]` (E = 1); returns the SRTCP length.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        self.protect_rtcp_inner(buf, len, None)
    }

    /// The one SRTCP protect path (E = 1): plain tag, GCM, or TIP EKT base tag and trailer.
    fn protect_rtcp_inner(
        &mut self,
        buf: &mut [u8],
        len: usize,
        tip: Option<TipTrailer<'_>>,
    ) -> Result<usize, SrtpError> {
        if tip.is_some() && self.suite != Suite::AesCm128HmacSha1_80 {
            return Err(SrtpError::UnsupportedSuite);
        }
        let ssrc = rtcp_ssrc(buf.get(..len).ok_or(SrtpError::TooShort)?)?;
        let tag_len = self.suite.srtcp_tag_len();
        let total = len
            + E_INDEX_LEN
            + match &tip {
                Some(t) => BASE_TAG_LEN + trailer_len(t),
                None => tag_len,
            };
        if buf.len() < total {
            return Err(SrtpError::BufferTooSmall);
        }
        // The ROC field of an SRTCP EKT tag is the sender's SRTP ROC (ekt-spec.md §3.3).
        let roc = self.rtp_index.roc();
        let index = self.next_rtcp_index();
        let e_index = (index | E_FLAG).to_be_bytes();
        match &self.rtcp {
            Transform::AesCm { aes, salt, auth } => {
                aes_cm_apply(
                    aes,
                    salt,
                    ssrc,
                    u64::from(index),
                    &mut buf[RTCP_HEADER_LEN..len],
                );
                let ap_len = len + E_INDEX_LEN;
                buf[len..ap_len].copy_from_slice(&e_index);
                let (tag, n) = match tip {
                    Some(trailer) => {
                        let tag =
                            write_trailer_and_tag(buf, ap_len, total, trailer, roc, |ap, kind| {
                                tip_tag::rtcp_base_tag(auth, ap, kind)
                            })?;
                        (tag, BASE_TAG_LEN)
                    }
                    None => (auth.mac(&[&buf[..ap_len]]), tag_len),
                };
                buf[ap_len..ap_len + n].copy_from_slice(&tag[..n]);
            }
            t => {
                // RFC 7714 §9.2: AAD = header(8) || E|index; the tag precedes E|index.
                let iv = gcm_rtcp_iv(t.gcm_salt(), ssrc, index);
                let (head, body) = buf.split_at_mut(RTCP_HEADER_LEN);
                let tag = gcm_seal(
                    t,
                    &iv,
                    &[head, &e_index],
                    &mut body[..len - RTCP_HEADER_LEN],
                );
                buf[len..len + GCM_TAG_LEN].copy_from_slice(&tag);
                buf[len + GCM_TAG_LEN..total].copy_from_slice(&e_index);
            }
        }
        Ok(total)
    }

    /// Verifies and decrypts the SRTCP packet in `buf`; returns the RTCP length.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let ssrc = rtcp_ssrc(buf)?;
        let tag_len = self.suite.srtcp_tag_len();
        let n = buf.len();
        let end = n
            .checked_sub(tag_len + E_INDEX_LEN)
            .filter(|&e| e >= RTCP_HEADER_LEN)
            .ok_or(SrtpError::TooShort)?;
        match &self.rtcp {
            Transform::AesCm { aes, salt, auth } => {
                let w = u32::from_be_bytes([buf[end], buf[end + 1], buf[end + 2], buf[end + 3]]);
                let index = w & !E_FLAG;
                self.rtcp_replay.check(u64::from(index))?;
                let tag = auth.mac(&[&buf[..end + E_INDEX_LEN]]);
                if !tags_equal(&buf[end + E_INDEX_LEN..], &tag[..tag_len]) {
                    return Err(SrtpError::AuthFailed);
                }
                if w & E_FLAG != 0 {
                    aes_cm_apply(
                        aes,
                        salt,
                        ssrc,
                        u64::from(index),
                        &mut buf[RTCP_HEADER_LEN..end],
                    );
                }
                self.rtcp_replay.accept(u64::from(index));
            }
            t => {
                let w = u32::from_be_bytes([buf[n - 4], buf[n - 3], buf[n - 2], buf[n - 1]]);
                let index = w & !E_FLAG;
                self.rtcp_replay.check(u64::from(index))?;
                let iv = gcm_rtcp_iv(t.gcm_salt(), ssrc, index);
                let e_index = w.to_be_bytes();
                let (head, rest) = buf.split_at_mut(RTCP_HEADER_LEN);
                let (data, tail) = rest.split_at_mut(end - RTCP_HEADER_LEN);
                let tag = &tail[..GCM_TAG_LEN];
                if w & E_FLAG != 0 {
                    gcm_open(t, &iv, &[head, &e_index], data, tag)?;
                } else {
                    // RFC 7714 §9.3: unencrypted SRTCP authenticates the whole packet as AAD.
                    let mut aad = [0u8; 1500];
                    let m = head.len() + data.len();
                    if m + E_INDEX_LEN > aad.len() {
                        return Err(SrtpError::TooShort);
                    }
                    aad[..head.len()].copy_from_slice(head);
                    aad[head.len()..m].copy_from_slice(data);
                    aad[m..m + E_INDEX_LEN].copy_from_slice(&e_index);
                    gcm_open(t, &iv, &[&aad[..m + E_INDEX_LEN]], &mut [], tag)?;
                }
                self.rtcp_replay.accept(u64::from(index));
            }
        }
        Ok(end)
    }

    /// Protects an RTCP packet with a TIP EKT tag (E = 1): header | ciphertext | E|index |
    /// base tag | EKT trailer.
    pub fn protect_rtcp_tip(
        &mut self,
        buf: &mut [u8],
        len: usize,
        trailer: TipTrailer<'_>,
    ) -> Result<usize, SrtpError> {
        self.protect_rtcp_inner(buf, len, Some(trailer))
    }

    /// Verifies and decrypts an SRTCP packet ending in a TIP EKT tag with this context's
    /// key; returns the RTCP length.
    pub fn unprotect_rtcp_tip(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let Transform::AesCm { aes, salt, auth } = &self.rtcp else {
            return Err(SrtpError::UnsupportedSuite);
        };
        let ssrc = rtcp_ssrc(buf)?;
        let parsed =
            ekt::tip_tag::TipEkt::parse(buf, RTCP_HEADER_LEN + E_INDEX_LEN, BASE_TAG_LEN, 16)?;
        let ap_len = parsed.start;
        let kind = match parsed.field {
            ekt::tip_tag::TipEkt::Full(_) => TagKind::Full(&buf[ap_len + BASE_TAG_LEN..]),
            ekt::tip_tag::TipEkt::Short { .. } => TagKind::Short,
        };
        let w = u32::from_be_bytes([
            buf[ap_len - 4],
            buf[ap_len - 3],
            buf[ap_len - 2],
            buf[ap_len - 1],
        ]);
        let index = w & !E_FLAG;
        self.rtcp_replay.check(u64::from(index))?;
        let tag = tip_tag::rtcp_base_tag(auth, &buf[..ap_len], kind);
        if !tags_equal(&buf[ap_len..ap_len + BASE_TAG_LEN], &tag[..BASE_TAG_LEN]) {
            return Err(SrtpError::AuthFailed);
        }
        let end = ap_len - E_INDEX_LEN;
        if w & E_FLAG != 0 {
            aes_cm_apply(
                aes,
                salt,
                ssrc,
                u64::from(index),
                &mut buf[RTCP_HEADER_LEN..end],
            );
        }
        self.rtcp_replay.accept(u64::from(index));
        Ok(end)
    }
}

fn trailer_len(t: &TipTrailer<'_>) -> usize {
    match t {
        TipTrailer::Full { emk, .. } => emk.len() + ekt::tip_tag::FULL_TAG_TRAILER_LEN,
        TipTrailer::Short => ekt::tip_tag::SHORT_TAG_TRAILER_LEN,
    }
}

/// Writes the EKT trailer after the base-tag slot and returns the base tag computed by
/// `tag_of(authenticated portion, trailer kind)`.
fn write_trailer_and_tag(
    buf: &mut [u8],
    ap_len: usize,
    total: usize,
    trailer: TipTrailer<'_>,
    roc: u32,
    tag_of: impl FnOnce(&[u8], TagKind<'_>) -> [u8; 20],
) -> Result<[u8; 20], SrtpError> {
    let t0 = ap_len + BASE_TAG_LEN;
    match trailer {
        TipTrailer::Full { emk, isn, spi } => {
            // The ROC field is the sender's SRTP ROC, for SRTCP too (ekt-spec.md §3.3).
            ekt::tip_tag::write_full_trailer(&mut buf[t0..total], emk, roc, isn, spi)
                .map_err(|_| SrtpError::BufferTooSmall)?;
            Ok(tag_of(&buf[..ap_len], TagKind::Full(&buf[t0..total])))
        }
        TipTrailer::Short => {
            buf[t0] = 0;
            Ok(tag_of(&buf[..ap_len], TagKind::Short))
        }
    }
}

impl Transform {
    /// XORs the AES-CM keystream of packet `index` of `ssrc` into `data` (encrypts or
    /// decrypts an SRTP payload); false for AEAD transforms, which have no bare keystream
    /// here. Only the SFU baseline of `forward` needs it (tools builds): the switch never
    /// decrypts.
    #[cfg(feature = "testing")]
    pub(crate) fn apply_keystream(&self, ssrc: u32, index: u64, data: &mut [u8]) -> bool {
        match self {
            Self::AesCm { aes, salt, .. } => {
                aes_cm_apply(aes, salt, ssrc, index, data);
                true
            }
            Self::Gcm128 { .. } | Self::Gcm256 { .. } => false,
        }
    }

    fn gcm_salt(&self) -> &[u8; 12] {
        match self {
            Self::Gcm128 { salt, .. } | Self::Gcm256 { salt, .. } => salt,
            Self::AesCm { .. } => unreachable!("AES-CM transform has no GCM salt"),
        }
    }
}

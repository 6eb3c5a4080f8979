//! The TIP EKT base authentication tag: what the HMAC covers. The drafts are ambiguous,
//! so the choice lives here and only here (WIRE.md section 2; ekt-spec.md §3.5 and open
//! question 1). An interop capture that says otherwise changes these four lines.
//!
//! ```text
//! full,  SRTP : HMAC(k_a, AP || 00 x10 || EMK || ROC || ISN || SPI || ROC)   variant A
//! full,  SRTCP: HMAC(k_a, AP || 00 x10 || EMK || ROC || ISN || SPI)
//! short, SRTP : HMAC(k_a, AP || ROC || 00 x6 || 00)                           variant C
//! short, SRTCP: HMAC(k_a, AP || 00 x10 || 00)
//! ```
//! AP is the RFC 3711 authenticated portion; for SRTCP it ends with E|index.

use super::auth::HmacSha1Key;

/// TIP's base tag length: AES_CM_128_HMAC_SHA1_80 (WIRE.md section 7).
pub const BASE_TAG_LEN: usize = 10;

const ZEROS: [u8; BASE_TAG_LEN] = [0; BASE_TAG_LEN];

/// The EKT part of the tag field after the base tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind<'a> {
    /// Full tag: the bytes EMK | ROC | ISN | SPI exactly as in the packet.
    Full(&'a [u8]),
    /// Short tag: the single 0x00.
    Short,
}

/// Longest EKT trailer after the base tag: an AES-KW EMK of a 32-byte key (40) + 8.
const MAX_TRAILER_LEN: usize = 48;

/// The base tag of an SRTP packet. `roc` is the packet's rollover counter.
#[inline]
pub fn rtp_base_tag(k_a: &HmacSha1Key, ap: &[u8], kind: TagKind<'_>, roc: u32) -> [u8; 20] {
    let roc = roc.to_be_bytes();
    // The fixed-size tail is assembled on the stack so the HMAC sees two updates, not
    // four (each small update costs the hmac crate a buffer round trip).
    let mut tail = [0u8; BASE_TAG_LEN + MAX_TRAILER_LEN + 4];
    let n = match kind {
        TagKind::Full(trailer) if trailer.len() <= MAX_TRAILER_LEN => {
            let t = BASE_TAG_LEN + trailer.len();
            tail[BASE_TAG_LEN..t].copy_from_slice(trailer);
            tail[t..t + 4].copy_from_slice(&roc);
            t + 4
        }
        TagKind::Full(trailer) => return k_a.mac(&[ap, &ZEROS, trailer, &roc]),
        TagKind::Short => {
            tail[..4].copy_from_slice(&roc);
            BASE_TAG_LEN + 1
        }
    };
    k_a.mac(&[ap, &tail[..n]])
}

/// The base tag of an SRTCP packet (`ap` ends with E|index).
#[inline]
pub fn rtcp_base_tag(k_a: &HmacSha1Key, ap: &[u8], kind: TagKind<'_>) -> [u8; 20] {
    match kind {
        TagKind::Full(trailer) => k_a.mac(&[ap, &ZEROS, trailer]),
        TagKind::Short => k_a.mac(&[ap, &[0; BASE_TAG_LEN + 1]]),
    }
}

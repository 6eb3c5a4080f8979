//! HMAC-SHA1 authentication (RFC 3711 §4.2.1) with a pre-keyed instance, and the
//! constant-time tag comparison every verification uses.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use super::batch::HmacPads;

// Key material must be wiped on drop (issue 2). A pre-keyed `Hmac<Sha1>` is two
// `Sha1Core` states (the keyed inner and outer pads), each zeroized by its own `Drop` with
// sha1's `zeroize` feature; the AES key schedules by aes's. Fails to compile if a feature
// change loses that.
const _: () = {
    fn zeroized_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    fn check() {
        zeroized_on_drop::<sha1::block_api::Sha1Core>();
        zeroized_on_drop::<aes::Aes128>();
        zeroized_on_drop::<aes::Aes256>();
    }
    let _ = check;
};

/// A pre-keyed HMAC-SHA1: the inner and outer pad states are computed once per session
/// key, and each tag clones them (two compression calls saved per packet; crates.md
/// "HMAC-SHA1"). Zeroized on drop (hmac's `zeroize` feature).
#[derive(Clone)]
pub struct HmacSha1Key {
    mac: Hmac<Sha1>,
    /// The same key's pad states for the batch engines ([`crate::srtp::batch`]).
    pads: HmacPads,
}

impl std::fmt::Debug for HmacSha1Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacSha1Key")
    }
}

impl HmacSha1Key {
    /// Keys the HMAC with a session authentication key.
    pub fn new(key: &[u8]) -> Self {
        Self {
            mac: Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes keys of any length"),
            pads: HmacPads::new(key),
        }
    }

    /// The key's pads, for [`crate::srtp::batch::hmac_sha1_batch`].
    pub fn pads(&self) -> &HmacPads {
        &self.pads
    }

    /// HMAC over the concatenation of `parts`.
    #[inline]
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 20] {
        let mut m = self.mac.clone();
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }
}

/// Constant-time equality of a received tag and a computed one (never `==` on tags): the
/// differences are OR-ed without branching and the result compared once through `subtle`,
/// whose optimisation barrier keeps the compiler from adding an early exit. (`subtle`'s
/// slice comparison puts a barrier on every byte, which measured ~10 ns per packet.)
#[inline]
pub fn tags_equal(received: &[u8], computed: &[u8]) -> bool {
    if received.len() != computed.len() {
        return false;
    }
    let diff = received
        .iter()
        .zip(computed)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    bool::from(diff.ct_eq(&0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2202_hmac_sha1_case_2() {
        // RFC 2202 §3, test case 2.
        let k = HmacSha1Key::new(b"Jefe");
        let tag = k.mac(&[b"what do ya want ", b"for nothing?"]);
        assert_eq!(hex::encode(tag), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
        assert!(tags_equal(&tag[..10], &tag[..10]));
        assert!(!tags_equal(&tag[..10], &tag[..9]));
        let mut other = tag;
        other[9] ^= 1;
        assert!(!tags_equal(&tag[..10], &other[..10]));
        assert_eq!(format!("{k:?}"), "HmacSha1Key");
    }
}

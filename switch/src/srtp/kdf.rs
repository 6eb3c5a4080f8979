//! SRTP key derivation: the AES-CM PRF with kdr = 0 (RFC 3711 §4.3), AES_256_CM_PRF for
//! 256-bit keys (RFC 6188 §7), and the RFC 7714 §11 salt handling for GCM.

use aes::cipher::{KeyInit, StreamCipher};
use aes::{Aes128, Aes256};
use ctr::cipher::{InnerIvInit, StreamCipherCoreWrapper};
use zeroize::Zeroize;

/// RFC 3711 §4.3.2 key derivation labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Label {
    /// SRTP encryption key.
    RtpEncryption = 0x00,
    /// SRTP authentication key.
    RtpAuth = 0x01,
    /// SRTP salt.
    RtpSalt = 0x02,
    /// SRTCP encryption key.
    RtcpEncryption = 0x03,
    /// SRTCP authentication key.
    RtcpAuth = 0x04,
    /// SRTCP salt.
    RtcpSalt = 0x05,
}

/// Fills `out` with PRF(master_key, label) (RFC 3711 §4.3.1 with r = 0, kdr = 0).
///
/// The master salt may be 14 bytes (AES-CM) or 12 (GCM); a 12-byte salt is zero-extended
/// to 112 bits on the right, as libsrtp does (RFC 7714 §11; ekt-spec.md §8.1). A master key
/// of 16 bytes keys AES-128, 32 bytes AES-256 (RFC 6188). Other key lengths are a
/// programming error caught by the callers' length checks.
pub fn derive(master_key: &[u8], master_salt: &[u8], label: Label, out: &mut [u8]) {
    // x = key_id XOR master_salt, key_id = label || r (r = 0) right-aligned in 112 bits:
    // the label lands on byte 7. IV = x * 2^16.
    let mut iv = [0u8; 16];
    iv[..master_salt.len()].copy_from_slice(master_salt);
    iv[7] ^= label as u8;
    out.fill(0);
    match master_key.len() {
        16 => {
            let aes = Aes128::new_from_slice(master_key).expect("16-byte key");
            let core =
                ctr::CtrCore::<Aes128, ctr::flavors::Ctr128BE>::inner_iv_init(aes, &iv.into());
            StreamCipherCoreWrapper::from_core(core).apply_keystream(out);
        }
        32 => {
            let aes = Aes256::new_from_slice(master_key).expect("32-byte key");
            let core =
                ctr::CtrCore::<Aes256, ctr::flavors::Ctr128BE>::inner_iv_init(aes, &iv.into());
            StreamCipherCoreWrapper::from_core(core).apply_keystream(out);
        }
        n => panic!("SRTP master key of {n} bytes"),
    }
    iv.zeroize();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn rfc3711_b3_and_srtcp_labels() {
        // RFC 3711 App. B.3 (SRTP labels) and WIRE.md section 1 (SRTCP labels).
        let mk = h("e1f97a0d3e018be0d64fa32c06de4139");
        let salt = h("0ec675ad498afeebb6960b3aabe6");
        let cases: [(Label, &str); 6] = [
            (Label::RtpEncryption, "c61e7a93744f39ee10734afe3ff7a087"),
            (Label::RtpSalt, "30cbbc08863d8c85d49db34a9ae1"),
            (Label::RtpAuth, "cebe321f6ff7716b6fd4ab49af256a156d38baa4"),
            (Label::RtcpEncryption, "4c1aa45a81f73d61c800bbb00fbb1eaa"),
            (Label::RtcpAuth, "8d54534feb49ae8e7993a6bd0b844fc323a93dfd"),
            (Label::RtcpSalt, "9581c7ad87b3e530bf3e4454a8b3"),
        ];
        for (label, want) in cases {
            let want = h(want);
            let mut out = vec![0u8; want.len()];
            derive(&mk, &salt, label, &mut out);
            assert_eq!(out, want, "{label:?}");
        }
    }

    #[test]
    fn rfc3711_b3_auth_key_stream_prefix() {
        // RFC 3711 App. B.3 lists the auth-key keystream beyond the 20 bytes used.
        let mut out = [0u8; 32];
        derive(
            &h("e1f97a0d3e018be0d64fa32c06de4139"),
            &h("0ec675ad498afeebb6960b3aabe6"),
            Label::RtpAuth,
            &mut out,
        );
        assert_eq!(
            hex::encode(&out[..32]),
            "cebe321f6ff7716b6fd4ab49af256a156d38baa48f0a0acf3c34e2359e6cdbce"
        );
    }
}

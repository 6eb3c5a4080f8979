//! The entry point of the certificate fuzz target (`fuzz/fuzz_targets/certificate_input.rs`):
//! what an admin's upload or a file in the store can hold, through every parser and
//! check. Nothing may panic, and nothing that is not a certificate passes a check.

use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use super::checks::{Use, check_identity, check_trust};
use super::inspect::inspect;
use super::store::UNITS;
use crate::admin::certificates::{UploadBody, upload};

/// Feeds `data` to the certificate parsers and checks.
pub fn certificate_input(data: &[u8]) {
    let der = CertificateDer::from(data.to_vec());
    let parsed = inspect(data);
    let trusted = check_trust(std::slice::from_ref(&der), UnixTime::now());
    assert!(
        parsed.is_ok() || trusted.is_err(),
        "only certificates are trusted"
    );
    let _ = sip::tls::parse_certificates(data);
    if let Ok(key) = PrivateKeyDer::try_from(data.to_vec()) {
        for usage in [Use::Trunk, Use::AdminWeb] {
            let r = check_identity(
                vec![der.clone()],
                key.clone_key(),
                usage,
                &[],
                UnixTime::now(),
            );
            assert!(parsed.is_ok() || r.is_err());
        }
    }
    for unit in UNITS {
        if let Ok(body) = serde_json::from_slice::<UploadBody>(data) {
            let _ = upload(unit, body, None);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn certificate_input_takes_anything() {
        let ca = crate::certs::test_pki::Ca::new("Fuzz CA");
        let mut inputs: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"\x30\x82\xff\xff".to_vec(),
            br#"{"certificate":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}"#
                .to_vec(),
            br#"{"certificate_der":"MAA=","key_der":"MAA="}"#.to_vec(),
            ca.cert.to_vec(),
        ];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for len in [1usize, 7, 64, 300] {
            let mut v = ca.cert[..len.min(ca.cert.len())].to_vec();
            for b in &mut v {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if x.is_multiple_of(5) {
                    *b = x as u8;
                }
            }
            inputs.push(v);
        }
        for i in inputs {
            super::certificate_input(&i);
        }
    }
}

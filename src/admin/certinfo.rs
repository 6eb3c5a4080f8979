//! A certificate's summary for the operator (subject, issuer, expiry, fingerprint), read
//! with x509-parser from the DER the switch loaded.

use x509_parser::prelude::{FromDer, X509Certificate};

use super::view::CertificateView;

/// The summary of `der` for `unit`, with days left counted from Unix time `now`; `None`
/// when it does not parse.
pub fn summarize(unit: &str, der: &[u8], now: i64) -> Option<CertificateView> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let not_after = cert.validity().not_after.to_datetime();
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    Some(CertificateView {
        unit: unit.to_owned(),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_after: format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            not_after.year(),
            u8::from(not_after.month()),
            not_after.day(),
            not_after.hour(),
            not_after.minute(),
            not_after.second()
        ),
        days_left: (not_after.unix_timestamp() - now).div_euclid(86_400),
        expiring: false,
        sha256: digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_is_summarized() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["mswitch".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mswitch");
        params.not_after = rcgen::date_time_ymd(2030, 1, 2);
        let cert = params.self_signed(&key).unwrap();
        let now = 1_893_456_000 - 10 * 86_400; // 2030-01-01 minus ten days
        let v = summarize("sip-identity", cert.der(), now).unwrap();
        assert_eq!(v.subject, "CN=mswitch");
        assert_eq!(v.issuer, "CN=mswitch");
        assert_eq!(v.not_after, "2030-01-02T00:00:00Z");
        assert_eq!(v.days_left, 11);
        assert_eq!(v.sha256.len(), 64);
        assert_eq!(summarize("x", b"not a certificate", now), None);
    }
}

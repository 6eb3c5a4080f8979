//! A certificate's summary for the operator (subject, SANs, issuer, serial, validity, key,
//! EKU, fingerprint, where it is used), from the DER the switch loaded.

use super::view::CertificateView;

/// The summary of `der` for `unit`, with days left counted from Unix time `now`; `None`
/// when it does not parse.
pub fn summarize(unit: &str, der: &[u8], now: i64) -> Option<CertificateView> {
    let d = crate::certs::inspect::inspect(der).ok()?;
    Some(CertificateView {
        unit: unit.to_owned(),
        used_for: crate::certs::store::Unit::parse(unit)
            .map_or("", crate::certs::store::Unit::used_for)
            .to_owned(),
        subject: d.subject,
        sans: d.sans,
        issuer: d.issuer,
        serial: d.serial,
        not_after: d.not_after,
        days_left: (d.validity_unix.1 - now).div_euclid(86_400),
        key: format!("{} {}", d.key_type, d.key_bits),
        eku: d.eku,
        sha256: d.sha256,
        expiring: false,
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
        assert_eq!(v.sans, ["DNS:mswitch"]);
        assert_eq!(v.key, "ECDSA P-256 256");
        assert!(v.used_for.contains("SIP trunk"), "{}", v.used_for);
        assert_eq!(summarize("x", b"not a certificate", now), None);
    }
}

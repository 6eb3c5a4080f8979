//! What an operator reads of a certificate (issue 18: subject, SANs, issuer, serial,
//! validity, key type and size, SHA-256 fingerprint, EKU), read with x509-parser.

use serde::Serialize;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use x509_parser::public_key::PublicKey;

/// A certificate as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertDetails {
    /// The subject's distinguished name (`CN=...`).
    pub subject: String,
    /// Its common name, when it has one.
    pub common_name: Option<String>,
    /// DNS names and IP addresses of the subjectAltName extension.
    pub sans: Vec<String>,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// The serial number, hex bytes separated by `:`.
    pub serial: String,
    /// Validity (RFC 3339, UTC).
    pub not_before: String,
    /// Validity end (RFC 3339, UTC).
    pub not_after: String,
    /// Unix seconds of `not_before` and `not_after`.
    pub validity_unix: (i64, i64),
    /// The public key: `RSA`, `ECDSA P-256`, `ECDSA P-384`, `Ed25519`, or what else it is.
    pub key_type: String,
    /// Its size in bits (the modulus for RSA, the field for EC).
    pub key_bits: usize,
    /// SHA-256 of the DER, lower-case hex.
    pub sha256: String,
    /// Extended key usages (`serverAuth`, `clientAuth`, ...); empty when the extension
    /// is absent (any use).
    pub eku: Vec<String>,
    /// A CA certificate (basicConstraints cA).
    pub is_ca: bool,
    /// Issued by itself (subject = issuer).
    pub self_issued: bool,
}

/// Why a certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an X.509 certificate: {0}")]
pub struct NotACertificate(pub String);

/// The details of `der`.
pub fn inspect(der: &[u8]) -> Result<CertDetails, NotACertificate> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| NotACertificate(e.to_string()))?;
    if !rest.is_empty() {
        return Err(NotACertificate("bytes after the certificate".into()));
    }
    let validity = cert.validity();
    let (key_type, key_bits) = key_of(&cert);
    let mut sans = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => sans.push(format!("DNS:{d}")),
                GeneralName::IPAddress(ip) => sans.push(format!("IP:{}", ip_text(ip))),
                GeneralName::URI(u) => sans.push(format!("URI:{u}")),
                GeneralName::RFC822Name(m) => sans.push(format!("email:{m}")),
                _ => {}
            }
        }
    }
    let mut eku = Vec::new();
    if let Ok(Some(ext)) = cert.extended_key_usage() {
        let e = ext.value;
        for (on, name) in [
            (e.any, "any"),
            (e.server_auth, "serverAuth"),
            (e.client_auth, "clientAuth"),
            (e.code_signing, "codeSigning"),
            (e.email_protection, "emailProtection"),
            (e.time_stamping, "timeStamping"),
            (e.ocsp_signing, "OCSPSigning"),
        ] {
            if on {
                eku.push(name.to_owned());
            }
        }
        eku.extend(e.other.iter().map(|o| o.to_id_string()));
    }
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    Ok(CertDetails {
        subject: cert.subject().to_string(),
        common_name,
        sans,
        issuer: cert.issuer().to_string(),
        serial: cert.raw_serial_as_string(),
        not_before: rfc3339(validity.not_before.timestamp()),
        not_after: rfc3339(validity.not_after.timestamp()),
        validity_unix: (
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
        ),
        key_type,
        key_bits,
        sha256: hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref()),
        eku,
        is_ca: cert.is_ca(),
        self_issued: cert.subject() == cert.issuer(),
    })
}

/// A certificate revocation list as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrlDetails {
    /// The CA that issued it.
    pub issuer: String,
    /// When it was issued (RFC 3339).
    pub this_update: String,
    /// When the next one is due, if it says.
    pub next_update: Option<String>,
    /// How many certificates it revokes.
    pub revoked: usize,
    /// SHA-256 of the DER, lower-case hex.
    pub sha256: String,
}

/// The details of the CRL `der`.
pub fn inspect_crl(der: &[u8]) -> Result<CrlDetails, NotACertificate> {
    use x509_parser::revocation_list::CertificateRevocationList;
    let (rest, crl) = CertificateRevocationList::from_der(der)
        .map_err(|e| NotACertificate(format!("not a CRL: {e}")))?;
    if !rest.is_empty() {
        return Err(NotACertificate("bytes after the CRL".into()));
    }
    Ok(CrlDetails {
        issuer: crl.issuer().to_string(),
        this_update: rfc3339(crl.last_update().timestamp()),
        next_update: crl.next_update().map(|t| rfc3339(t.timestamp())),
        revoked: crl.iter_revoked_certificates().count(),
        sha256: hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref()),
    })
}

fn key_of(cert: &X509Certificate<'_>) -> (String, usize) {
    let spki = cert.public_key();
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => ("RSA".into(), rsa.key_size()),
        Ok(PublicKey::EC(point)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            let name = match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => "ECDSA P-256".to_owned(),
                Some("1.3.132.0.34") => "ECDSA P-384".to_owned(),
                Some("1.3.132.0.35") => "ECDSA P-521".to_owned(),
                Some(other) => format!("ECDSA {other}"),
                None => "ECDSA".to_owned(),
            };
            (name, point.key_size())
        }
        _ => match spki.algorithm.algorithm.to_id_string().as_str() {
            "1.3.101.112" => ("Ed25519".into(), 256),
            other => (other.to_owned(), 0),
        },
    }
}

fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).unwrap_or_default()).to_string(),
        16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).unwrap_or_default()).to_string(),
        _ => hex(bytes),
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => unix.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_read() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let mut p =
            rcgen::CertificateParams::new(vec!["sw1.example".into(), "10.0.0.7".into()]).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "sw1.example");
        p.serial_number = Some(rcgen::SerialNumber::from(vec![0x01, 0xab]));
        p.not_before = rcgen::date_time_ymd(2026, 1, 1);
        p.not_after = rcgen::date_time_ymd(2028, 1, 1);
        p.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = p.self_signed(&key).unwrap();
        let d = inspect(cert.der()).unwrap();
        assert_eq!(d.subject, "CN=sw1.example");
        assert_eq!(d.common_name.as_deref(), Some("sw1.example"));
        assert_eq!(d.sans, ["DNS:sw1.example", "IP:10.0.0.7"]);
        assert_eq!(d.serial, "01:ab");
        assert_eq!(d.not_before, "2026-01-01T00:00:00Z");
        assert_eq!(d.not_after, "2028-01-01T00:00:00Z");
        assert_eq!(d.key_type, "ECDSA P-384");
        assert_eq!(d.key_bits, 384);
        assert_eq!(d.eku, ["serverAuth", "clientAuth"]);
        assert!(d.self_issued && !d.is_ca);
        assert_eq!(d.sha256.len(), 64);
        assert!(inspect(b"\x30\x03\x02\x01\x00").is_err());
        let mut trailing = cert.der().to_vec();
        trailing.push(0);
        assert!(inspect(&trailing).is_err());
    }

    #[test]
    fn rsa_keys_report_their_modulus_size() {
        let d = inspect(&crate::certs::test_pki::rsa_self_signed("r", 2048)).unwrap();
        assert_eq!((d.key_type.as_str(), d.key_bits), ("RSA", 2048));
    }
}

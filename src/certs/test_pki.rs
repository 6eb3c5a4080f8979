//! Certificates for the unit tests: a CA and what it issues, with the knobs the upload
//! rules look at.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A test CA.
pub(crate) struct Ca {
    pub(crate) cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let cert = p.self_signed(&key).unwrap();
        Self {
            cert: cert.der().clone(),
            issuer: Issuer::new(p, key),
        }
    }

    /// A leaf for `names` with `eku`, valid `days` from yesterday (negative: expired).
    pub(crate) fn issue(
        &self,
        names: &[&str],
        eku: &[ExtendedKeyUsagePurpose],
        days: i64,
        key: KeyPair,
    ) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let der = key.serialize_der();
        self.issue_for(names, eku, days, &key, der)
    }

    /// [`Ca::issue`] for any public key (one ring will not sign with), its PKCS#8 `key`.
    pub(crate) fn issue_for(
        &self,
        names: &[&str],
        eku: &[ExtendedKeyUsagePurpose],
        days: i64,
        public: &impl rcgen::PublicKeyData,
        key: Vec<u8>,
    ) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let mut p =
            CertificateParams::new(names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name.push(DnType::CommonName, names[0]);
        p.extended_key_usages = eku.to_vec();
        let now = time::OffsetDateTime::now_utc();
        if days < 0 {
            p.not_before = now - time::Duration::days(30);
            p.not_after = now + time::Duration::days(days);
        } else {
            p.not_before = now - time::Duration::days(1);
            p.not_after = now + time::Duration::days(days);
        }
        let cert = p.signed_by(public, &self.issuer).unwrap();
        (
            cert.der().clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
    }

    /// A trunk identity: serverAuth + clientAuth, a year, ECDSA P-256.
    pub(crate) fn trunk(&self, name: &str) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        self.issue(
            &[name],
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            365,
            KeyPair::generate().unwrap(),
        )
    }
}

/// An RSA key of `bits` for rcgen.
pub(crate) fn rsa_key(bits: usize) -> KeyPair {
    use rsa::pkcs8::EncodePrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits).unwrap();
    let der = key.to_pkcs8_der().unwrap();
    let der = PrivatePkcs8KeyDer::from(der.as_bytes().to_vec());
    KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_RSA_SHA256).unwrap()
}

/// A self-signed RSA certificate of `bits`.
pub(crate) fn rsa_self_signed(name: &str, bits: usize) -> Vec<u8> {
    let key = rsa_key(bits);
    let mut p = CertificateParams::new(vec![name.to_owned()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.self_signed(&key).unwrap().der().to_vec()
}

/// An RSA key of `bits` too small for ring: its public key for rcgen and its PKCS#8.
pub(crate) fn weak_rsa(bits: usize) -> (rcgen::SubjectPublicKeyInfo, Vec<u8>) {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits).unwrap();
    let spki = key.to_public_key().to_public_key_der().unwrap();
    (
        rcgen::SubjectPublicKeyInfo::from_der(spki.as_bytes()).unwrap(),
        key.to_pkcs8_der().unwrap().as_bytes().to_vec(),
    )
}

use rcgen::{ExtendedKeyUsagePurpose as Eku, KeyPair};
use rustls::pki_types::UnixTime;

use super::*;
use crate::certs::test_pki::{Ca, rsa_key, weak_rsa};

fn now() -> UnixTime {
    UnixTime::now()
}

/// `cert` and `key` checked for `usage` with `ca` trusted, now.
fn against_ca(
    ca: &Ca,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    usage: Use,
) -> Result<CheckedIdentity, Refused> {
    check_identity(
        vec![cert],
        key,
        usage,
        std::slice::from_ref(&ca.cert),
        now(),
    )
}

#[test]
fn a_good_trunk_identity_passes_with_its_ca_trusted_or_in_the_chain() {
    let ca = Ca::new("Test CA");
    let (cert, key) = ca.trunk("sw1.example");
    let ok = against_ca(&ca, cert.clone(), key.clone_key(), Use::Trunk).unwrap();
    assert_eq!(ok.details.common_name.as_deref(), Some("sw1.example"));
    // The CA at the chain's end instead of in a trust unit.
    check_identity(vec![cert, ca.cert.clone()], key, Use::Trunk, &[], now()).unwrap();
}

#[test]
fn a_key_of_another_certificate_is_the_seed_line_and_nothing_is_made() {
    let ca = Ca::new("Test CA");
    let (cert, _) = ca.trunk("sw1.example");
    let (_, other_key) = ca.trunk("sw2.example");
    let e = against_ca(&ca, cert, other_key, Use::Trunk).unwrap_err();
    assert_eq!(e, Refused::KeyMismatch);
    assert!(
        e.to_string()
            .starts_with("TLS error: Error loading Private key file"),
        "{e}"
    );
}

#[test]
fn a_chain_to_no_trusted_ca_is_refused() {
    let ca = Ca::new("Test CA");
    let stranger = Ca::new("Other CA");
    let (cert, key) = ca.trunk("sw1.example");
    let e =
        check_identity(vec![cert.clone()], key.clone_key(), Use::Trunk, &[], now()).unwrap_err();
    assert!(matches!(e, Refused::Chain(_)), "{e}");
    let e = check_identity(
        vec![cert],
        key,
        Use::Trunk,
        std::slice::from_ref(&stranger.cert),
        now(),
    )
    .unwrap_err();
    assert!(matches!(e, Refused::Chain(_)), "{e}");
}

#[test]
fn expired_and_not_yet_valid_are_refused() {
    let ca = Ca::new("Test CA");
    let (cert, key) = ca.issue(
        &["sw1.example"],
        &[Eku::ServerAuth, Eku::ClientAuth],
        -1,
        KeyPair::generate().unwrap(),
    );
    let e = against_ca(&ca, cert, key, Use::Trunk).unwrap_err();
    assert!(matches!(e, Refused::OutsideValidity { .. }), "{e}");
    let (cert, key) = ca.trunk("sw1.example");
    let last_year = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        now().as_secs() - 400 * 86_400,
    ));
    let e = check_identity(
        vec![cert],
        key,
        Use::Trunk,
        std::slice::from_ref(&ca.cert),
        last_year,
    )
    .unwrap_err();
    assert!(matches!(e, Refused::OutsideValidity { .. }), "{e}");
}

#[test]
fn the_trunk_needs_server_and_client_auth_the_web_server_auth() {
    let ca = Ca::new("Test CA");
    let (cert, key) = ca.issue(
        &["sw1.example"],
        &[Eku::ServerAuth],
        365,
        KeyPair::generate().unwrap(),
    );
    let e = against_ca(&ca, cert.clone(), key.clone_key(), Use::Trunk).unwrap_err();
    assert!(
        matches!(
            e,
            Refused::Eku {
                needs: "clientAuth",
                ..
            }
        ),
        "{e}"
    );
    against_ca(&ca, cert, key, Use::AdminWeb).unwrap();
    let (cert, key) = ca.issue(
        &["sw1.example"],
        &[Eku::ClientAuth],
        365,
        KeyPair::generate().unwrap(),
    );
    let e = against_ca(&ca, cert, key, Use::AdminWeb).unwrap_err();
    assert!(
        matches!(
            e,
            Refused::Eku {
                needs: "serverAuth",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn wildcards_are_refused() {
    let ca = Ca::new("Test CA");
    let (cert, key) = ca.issue(
        &["*.example", "sw1.example"],
        &[Eku::ServerAuth, Eku::ClientAuth],
        365,
        KeyPair::generate().unwrap(),
    );
    let e = against_ca(&ca, cert, key, Use::Trunk).unwrap_err();
    assert_eq!(e, Refused::Wildcard("*.example".into()));
}

#[test]
fn weak_keys_are_refused_and_rsa_2048_and_p384_pass() {
    let ca = Ca::new("Test CA");
    let trunk = [Eku::ServerAuth, Eku::ClientAuth];
    let (public, pkcs8) = weak_rsa(1024);
    let (cert, key) = ca.issue_for(&["sw1.example"], &trunk, 365, &public, pkcs8);
    let e = against_ca(&ca, cert, key, Use::Trunk).unwrap_err();
    assert_eq!(e, Refused::WeakKey("RSA 1024".into()));
    let (cert, key) = ca.issue(&["sw1.example"], &trunk, 365, rsa_key(2048));
    against_ca(&ca, cert, key, Use::Trunk).unwrap();
    let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let (cert, key) = ca.issue(&["sw1.example"], &trunk, 365, p384);
    against_ca(&ca, cert, key, Use::Trunk).unwrap();
    let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let (cert, key) = ca.issue(&["sw1.example"], &trunk, 365, ed);
    let e = against_ca(&ca, cert, key, Use::Trunk).unwrap_err();
    assert!(matches!(e, Refused::WeakKey(_)), "{e}");
}

#[test]
fn a_ca_is_no_identity_and_trust_uploads_are_checked() {
    let ca = Ca::new("Test CA");
    let e = check_identity(
        vec![ca.cert.clone()],
        ca.trunk("x").1,
        Use::Trunk,
        &[],
        now(),
    )
    .unwrap_err();
    assert_eq!(e, Refused::CaAsIdentity);
    assert_eq!(check_trust(&[], now()).unwrap_err(), Refused::NoCertificate);
    let d = check_trust(std::slice::from_ref(&ca.cert), now()).unwrap();
    assert!(d[0].is_ca);
    let junk = CertificateDer::from(vec![0x30, 0x00]);
    assert!(matches!(
        check_trust(&[junk], now()),
        Err(Refused::NotACertificate(_))
    ));
}

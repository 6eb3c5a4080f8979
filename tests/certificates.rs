//! The certificate store through the API, end to end (issue 18): uploads refused with
//! their reason while the old identity keeps serving, and an identity replaced while a
//! meeting runs: its calls go on over their open connections, the next SIP/TLS connection
//! and the admin listener present the new certificate at once.

mod common;

use std::sync::Arc;

use common::https::Https;
use common::{ADMIN, VIEWER, run_media, switch_with_accounts, until_established};
use mswitch::endpoint::SimulatedCall;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose as Eku, IsCa, Issuer,
    KeyPair,
};
use switch::dtls::DtlsIdentity;
use switch::testing::Endpoint;

/// A CA of the operator's: its certificate and what it issues.
struct OperatorCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl OperatorCa {
    fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "Operator Issuing CA");
        let cert = p.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    /// (chain PEM with the CA at its end, key PEM, SHA-256 hex of the leaf).
    fn issue(&self, names: &[&str], eku: &[Eku]) -> (String, String, String) {
        self.issue_for(names, eku, time::Duration::days(365))
    }

    /// [`OperatorCa::issue`] valid from a day ago for `validity` from now.
    fn issue_for(
        &self,
        names: &[&str],
        eku: &[Eku],
        validity: time::Duration,
    ) -> (String, String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name.push(DnType::CommonName, names[0]);
        p.extended_key_usages = eku.to_vec();
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(1);
        p.not_after = now + validity;
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        let sha: String = ring::digest::digest(&ring::digest::SHA256, cert.der())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        (
            format!("{}{}", cert.pem(), self.pem),
            key.serialize_pem(),
            sha,
        )
    }
}

/// `PUT /api/v1/certificates/{unit}` with `body`, asserted to succeed: the units after it.
async fn put_ok(
    api: &Https,
    token: &str,
    unit: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let r = api
        .call(
            "PUT",
            &format!("/api/v1/certificates/{unit}"),
            token,
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// A switch with the test accounts, its admin API (trusting the switch's own CA) and an
/// admin's token.
async fn signed_in(name: &str, ports: &str, extra: &str) -> (common::Switch, Https, String) {
    let sw = switch_with_accounts(name, ports, extra).await;
    let api = Https::new(sw.admin.unwrap(), &sw.dir);
    let token = api.token(ADMIN.0, ADMIN.1).await;
    (sw, api, token)
}

/// The switch's admin API as a client that trusts only `ca_pem` (written to `dir`): the
/// handshake succeeds once the switch presents a certificate from that CA.
fn api_trusting(sw: &common::Switch, dir: &std::path::Path, ca_pem: &str) -> Https {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_pem).unwrap();
    Https::new(sw.admin.unwrap(), dir)
}

/// A switch (admin signed in) whose trunk trust has a new operator CA, uploaded.
async fn switch_trusting_an_operator_ca(
    name: &str,
    ports: &str,
    extra: &str,
) -> (common::Switch, Https, String, OperatorCa) {
    let (sw, api, token) = signed_in(name, ports, extra).await;
    let ca = OperatorCa::new();
    put_ok(
        &api,
        &token,
        "trunk-trust",
        serde_json::json!({ "certificate": ca.pem }),
    )
    .await;
    (sw, api, token, ca)
}

fn upload_body(chain: &str, key: &str) -> String {
    serde_json::json!({ "certificate": chain, "key": key }).to_string()
}

/// The SHA-256 of the end entity of `unit` in a `GET /api/v1/certificates` answer.
fn leaf_of(units: &serde_json::Value, unit: &str) -> (String, String) {
    let u = units
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["unit"] == unit)
        .unwrap_or_else(|| panic!("no {unit}: {units}"));
    let c = &u["certificates"][0];
    (
        c["sha256"].as_str().unwrap_or_default().to_owned(),
        c["source"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_replaced_while_a_meeting_runs_serves_the_next_connection() {
    let (sw, api, token) = signed_in(
        "certs-reload",
        "34800-34999",
        "[[meeting]]\nnumber = \"4000\"\npolicy = \"secure\"\n",
    )
    .await;
    let r = api.get("/api/v1/certificates", &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (old_sha, source) = leaf_of(&r.json(), "sip-identity");
    assert_eq!(source, "generated");
    let units = r.json();
    let sip = &units[0]["certificates"][0];
    assert_eq!(sip["subject"], "CN=mswitch", "{sip}");
    assert_eq!(sip["key_type"], "RSA");
    assert_eq!(sip["key_bits"], 2048);
    assert_eq!(
        sip["eku"],
        serde_json::json!(["serverAuth", "clientAuth"]),
        "{sip}"
    );

    let dtls = Arc::new(DtlsIdentity::generate().unwrap());
    let mut calls = Vec::new();
    for id in [1, 2] {
        calls.push(
            SimulatedCall::dial(
                Endpoint::new(id, 1),
                &sw.policy,
                sw.sip,
                "4000",
                false,
                &dtls,
            )
            .await
            .unwrap(),
        );
    }
    assert!(until_established(&mut calls, 30).await);

    let ca = OperatorCa::new();
    let trunk = [Eku::ServerAuth, Eku::ClientAuth];
    let (chain, key, new_sha) = ca.issue(&["mswitch", "127.0.0.1"], &trunk);
    // Each refusal names its rule, is audited, and leaves the old identity serving.
    let (_, other_key, _) = ca.issue(&["mswitch"], &trunk);
    let (wild_chain, wild_key, _) = ca.issue(&["*.example", "mswitch"], &trunk);
    let (server_only, server_only_key, _) = ca.issue(&["mswitch"], &[Eku::ServerAuth]);
    for (body, needle) in [
        (
            upload_body(&chain, &other_key),
            "TLS error: Error loading Private key file",
        ),
        (upload_body(&wild_chain, &wild_key), "wildcard"),
        (upload_body(&server_only, &server_only_key), "clientAuth"),
        (
            upload_body(
                chain
                    .split_inclusive("-----END CERTIFICATE-----\n")
                    .next()
                    .unwrap(),
                &key,
            ),
            "does not verify",
        ),
    ] {
        let r = api
            .call(
                "PUT",
                "/api/v1/certificates/sip-identity",
                &token,
                Some(&body),
            )
            .await;
        assert_eq!(r.status, 422, "{}", r.body);
        assert_eq!(r.code(), "certificate_refused");
        assert!(r.body.contains(needle), "{needle}: {}", r.body);
    }
    let viewer = api.token(VIEWER.0, VIEWER.1).await;
    let r = api
        .call(
            "PUT",
            "/api/v1/certificates/sip-identity",
            &viewer,
            Some(&upload_body(&chain, &key)),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = api.get("/api/v1/certificates", &token).await;
    assert_eq!(
        leaf_of(&r.json(), "sip-identity").0,
        old_sha,
        "the old identity stays"
    );

    // The good one.
    let r = api
        .call(
            "PUT",
            "/api/v1/certificates/sip-identity",
            &token,
            Some(&upload_body(&chain, &key)),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        leaf_of(&r.json(), "sip-identity"),
        (new_sha.clone(), "uploaded".to_owned())
    );

    // The running calls go on over their connections.
    let before = calls[1].endpoint.received.len();
    run_media(&mut calls, 1.5).await;
    let from_a = calls[1].endpoint.received[before..]
        .iter()
        .filter(|r| r.1 >> 16 == 1)
        .count();
    assert!(from_a > 20, "B still gets A after the change: {from_a}");

    // A new connection gets the new certificate: a peer trusting only the old CA is
    // refused, one trusting the operator's CA gets in.
    assert!(
        SimulatedCall::dial(
            Endpoint::new(3, 1),
            &sw.policy,
            sw.sip,
            "4000",
            false,
            &dtls
        )
        .await
        .is_err(),
        "the old CA no longer names the switch"
    );
    let trusting_new =
        std::env::temp_dir().join(format!("mswitch-certs-new-{}", std::process::id()));
    let identity = sw.policy.identity();
    let mut roots = rustls::RootCertStore::empty();
    for c in sip::tls::parse_certificates(ca.pem.as_bytes()) {
        roots.add(c).unwrap();
    }
    let new_policy = sip::tls::TlsPolicy::new(identity, roots);
    let mut c = vec![
        SimulatedCall::dial(
            Endpoint::new(3, 1),
            &new_policy,
            sw.sip,
            "4000",
            false,
            &dtls,
        )
        .await
        .unwrap(),
    ];
    assert!(until_established(&mut c, 30).await);

    // The admin listener (no admin identity of its own) presents it too.
    assert!(
        api.handshake().await.is_err(),
        "the old CA no longer names it"
    );
    let api = api_trusting(&sw, &trusting_new, &ca.pem);
    api.handshake().await.unwrap();
    let audit = std::fs::read_to_string(sw.dir.join("audit.log")).unwrap();
    assert!(audit.contains("install sip-identity"), "{audit}");
    assert!(audit.contains("refused: "), "{audit}");
    // Kept across a restart: the store is on disk, the key private.
    let stored = sw.dir.join("certs/sip-identity");
    assert!(stored.join("chain.pem").exists() && stored.join("key.pem").exists());
    let _ = std::fs::remove_dir_all(&trusting_new);
    sw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_anchors_are_added_listed_and_removed_and_identities_only_replaced() {
    let (sw, api, token) = signed_in("certs-trust", "35000-35099", "").await;
    let ca = OperatorCa::new();
    put_ok(
        &api,
        &token,
        "trunk-trust",
        serde_json::json!({ "certificate": ca.pem }),
    )
    .await;
    let r = api.get("/api/v1/certificates/trunk-trust", &token).await;
    let certs = r.json()["certificates"].as_array().unwrap().clone();
    let ours = certs
        .iter()
        .find(|c| c["subject"] == "CN=Operator Issuing CA")
        .expect("listed");
    assert_eq!(ours["source"], "uploaded");
    assert_eq!(ours["is_ca"], true);
    let sha = ours["sha256"].as_str().unwrap();
    let path = format!("/api/v1/certificates/trunk-trust/{sha}");
    assert_eq!(api.call("DELETE", &path, &token, None).await.status, 200);
    let r = api.call("DELETE", &path, &token, None).await;
    assert_eq!((r.status, r.code()), (404, "not_found".to_owned()));
    let r = api
        .call(
            "DELETE",
            &format!("/api/v1/certificates/sip-identity/{sha}"),
            &token,
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (409, "in_use".to_owned()),
        "{}",
        r.body
    );
    let r = api.get("/api/v1/certificates/tomcat", &token).await;
    assert_eq!(r.status, 404);
    let r = api
        .call(
            "PUT",
            "/api/v1/certificates/trunk-trust",
            &token,
            Some("{\"certificate\":\"junk\"}"),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (422, "bad_upload".to_owned()),
        "{}",
        r.body
    );
    sw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_made_here_signed_by_the_ca_is_installed_and_served() {
    let (sw, api, token) = signed_in("certs-csr", "35100-35199", "").await;
    let r = api
        .call(
            "POST",
            "/api/v1/certificates/sip-identity/csr",
            &token,
            Some(r#"{"sans":["127.0.0.1","sw1.example"],"key":"ecdsa-p256"}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let csr_pem = r.json()["csr"].as_str().unwrap().to_owned();
    let download = api
        .get("/api/v1/certificates/sip-identity/csr", &token)
        .await;
    assert_eq!(download.status, 200);
    assert_eq!(download.body, csr_pem);
    assert_eq!(download.headers["content-type"], "application/pkcs10");
    let viewer = api.token(VIEWER.0, VIEWER.1).await;
    assert_eq!(
        api.get("/api/v1/certificates/sip-identity/csr", &viewer)
            .await
            .status,
        403
    );
    // The CA's side: parse, check the signature, and issue what was asked.
    use rustls::pki_types::pem::PemObject as _;
    let der = rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
        .unwrap();
    let req = rcgen::CertificateSigningRequestParams::from_der(&der).unwrap();
    assert_eq!(
        req.params
            .distinguished_name
            .get(&DnType::CommonName)
            .map(|v| format!("{v:?}")),
        Some("Utf8String(\"mswitch\")".to_owned()),
        "the node's name by default"
    );
    let ca = OperatorCa::new();
    let mut params = req.params.clone();
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(365);
    let cert = params.signed_by(&req.public_key, &ca.issuer).unwrap();
    // Installed without a key: the request's key, which never left the switch.
    let body =
        serde_json::json!({ "certificate": format!("{}{}", cert.pem(), ca.pem) }).to_string();
    let r = api
        .call(
            "PUT",
            "/api/v1/certificates/sip-identity",
            &token,
            Some(&body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // From now on the admin listener presents the new certificate too.
    let trusting_new =
        std::env::temp_dir().join(format!("mswitch-certs-csr-{}", std::process::id()));
    let api = api_trusting(&sw, &trusting_new, &ca.pem);
    assert_eq!(
        api.get("/api/v1/certificates/sip-identity/csr", &token)
            .await
            .status,
        404,
        "the request is done"
    );
    let _ = std::fs::remove_dir_all(&trusting_new);
    sw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_the_configured_certificate_paths_and_a_bad_file_changes_nothing() {
    let sw = switch_with_accounts(
        "certs-hup",
        "35200-35399",
        "[[meeting]]\nnumber = \"4000\"\npolicy = \"secure\"\n",
    )
    .await;
    let dtls = Arc::new(DtlsIdentity::generate().unwrap());
    let mut calls = vec![
        SimulatedCall::dial(
            Endpoint::new(1, 1),
            &sw.policy,
            sw.sip,
            "4000",
            false,
            &dtls,
        )
        .await
        .unwrap(),
    ];
    assert!(until_established(&mut calls, 30).await);
    let files = std::env::temp_dir().join(format!("mswitch-certs-hup-{}", std::process::id()));
    std::fs::create_dir_all(&files).unwrap();
    let ca = OperatorCa::new();
    let (chain, key, _) = ca.issue(
        &["mswitch", "127.0.0.1"],
        &[Eku::ServerAuth, Eku::ClientAuth],
    );
    let (_, other_key, _) = ca.issue(&["mswitch"], &[Eku::ServerAuth, Eku::ClientAuth]);
    std::fs::write(files.join("chain.pem"), &chain).unwrap();
    std::fs::write(files.join("key.pem"), &key).unwrap();
    std::fs::write(files.join("other.pem"), &other_key).unwrap();
    std::fs::write(files.join("ca.pem"), &ca.pem).unwrap();
    let reload = |key_file: &str| {
        let text = format!(
            "[tls]\ndata_dir = \"{}\"\ncertificate = \"{}\"\nkey = \"{}\"\ntrust = [\"{}\"]\n",
            sw.dir.display(),
            files.join("chain.pem").display(),
            files.join(key_file).display(),
            sw.dir.join("ca.pem").display(),
        );
        mswitch::app::Stop::Reload(Box::new(mswitch::config::Config::parse(&text).unwrap()))
    };
    let old_ca = Https::new(sw.admin.unwrap(), &sw.dir);
    let new_ca = Https::new(sw.admin.unwrap(), &files);

    // A key that is not the certificate's: the seed's line, and nothing changes.
    sw.stops.send(reload("other.pem")).unwrap();
    assert!(
        common::logged_within(
            "SIGHUP: the configured certificates do not load, nothing changes: TLS error: Error loading Private key file",
            10
        )
        .await
    );
    old_ca.handshake().await.unwrap();

    sw.stops.send(reload("key.pem")).unwrap();
    assert!(common::logged_within("SIGHUP: certificates reloaded", 10).await);
    new_ca.handshake().await.unwrap();
    assert!(old_ca.handshake().await.is_err());
    // The call made before goes on beside one made after, over the new certificate.
    let mut roots = rustls::RootCertStore::empty();
    for c in sip::tls::parse_certificates(ca.pem.as_bytes()) {
        roots.add(c).unwrap();
    }
    let policy = sip::tls::TlsPolicy::new(sw.policy.identity(), roots);
    calls.push(
        SimulatedCall::dial(Endpoint::new(2, 1), &policy, sw.sip, "4000", false, &dtls)
            .await
            .unwrap(),
    );
    assert!(until_established(&mut calls, 30).await);
    run_media(&mut calls, 1.5).await;
    let from_a = common::received_from(&calls[1], 1);
    assert!(from_a > 20, "B gets A, whose call began before: {from_a}");
    let _ = std::fs::remove_dir_all(&files);
    sw.stop().await;
}

/// A trunk peer's identity (`mswitch-peer`) from `ca` with `serial`, as a client policy
/// that trusts the switch's local CA.
fn peer_from(ca: &OperatorCa, serial: u64, switch_dir: &std::path::Path) -> sip::tls::TlsPolicy {
    peer_valid_for(ca, serial, switch_dir, time::Duration::days(365))
}

/// [`peer_from`] valid from a day ago for `validity` from now.
fn peer_valid_for(
    ca: &OperatorCa,
    serial: u64,
    switch_dir: &std::path::Path,
    validity: time::Duration,
) -> sip::tls::TlsPolicy {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["mswitch-peer".to_owned()]).unwrap();
    p.distinguished_name
        .push(DnType::CommonName, "mswitch-peer");
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(1);
    p.not_after = now + validity;
    p.serial_number = Some(rcgen::SerialNumber::from(serial));
    p.extended_key_usages = vec![Eku::ServerAuth, Eku::ClientAuth];
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let identity = sip::tls::identity(vec![cert.der().clone()], key).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in sip::tls::load_certificates(&switch_dir.join("ca.pem")).unwrap() {
        roots.add(c).unwrap();
    }
    sip::tls::TlsPolicy::new(identity, roots)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crl_in_the_trunk_trust_refuses_the_revoked_peer_at_its_next_connection() {
    let (sw, api, token, ca) = switch_trusting_an_operator_ca(
        "certs-crl",
        "35400-35599",
        "[[meeting]]\nnumber = \"4000\"\npolicy = \"secure\"\n",
    )
    .await;
    let revoked = peer_from(&ca, 0x1001, &sw.dir);
    let kept = peer_from(&ca, 0x1002, &sw.dir);
    let dtls = Arc::new(DtlsIdentity::generate().unwrap());
    let dial = |policy: &sip::tls::TlsPolicy, id: u32| {
        let policy = policy.clone();
        let dtls = dtls.clone();
        let sip = sw.sip;
        async move {
            SimulatedCall::dial(Endpoint::new(id, 1), &policy, sip, "4000", false, &dtls).await
        }
    };
    // Trusted through the uploaded CA.
    let mut first = dial(&revoked, 1).await.expect("the CA's peer gets in");
    first.hangup("4000").await.unwrap();

    let now = time::OffsetDateTime::now_utc();
    let crl = rcgen::CertificateRevocationListParams {
        this_update: now - time::Duration::hours(1),
        next_update: now + time::Duration::days(7),
        crl_number: rcgen::SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![rcgen::RevokedCertParams {
            serial_number: rcgen::SerialNumber::from(0x1001u64),
            revocation_time: now - time::Duration::minutes(5),
            reason_code: Some(rcgen::RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&ca.issuer)
    .unwrap();
    let units = put_ok(
        &api,
        &token,
        "trunk-trust",
        serde_json::json!({ "crl": crl.pem().unwrap() }),
    )
    .await;
    let trust = units
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["unit"] == "trunk-trust")
        .unwrap()
        .clone();
    assert_eq!(trust["crls"][0]["revoked"], 1, "{trust}");
    assert_eq!(trust["crls"][0]["issuer"], "CN=Operator Issuing CA");

    assert!(
        dial(&revoked, 2).await.is_err(),
        "the revoked certificate is refused at its next connection"
    );
    let mut other = dial(&kept, 3)
        .await
        .expect("a certificate the CRL does not list");
    other.hangup("4000").await.unwrap();
    // Removing the list lets the peer in again.
    let sha = trust["crls"][0]["sha256"].as_str().unwrap();
    let r = api
        .call(
            "DELETE",
            &format!("/api/v1/certificates/trunk-trust/{sha}"),
            &token,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    dial(&revoked, 4).await.expect("no list, no refusal");
    sw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_close_to_expiry_is_warned_of_flagged_measured_and_sent_to_the_webhooks() {
    const SECRET: &str = "the expiry webhook secret";
    let (hook_ca, hook_cert, hook_key) = common::webhook::test_pki("receiver");
    let hooks = std::env::temp_dir().join(format!("mswitch-certs-exp-{}", std::process::id()));
    std::fs::create_dir_all(&hooks).unwrap();
    std::fs::write(hooks.join("ca.pem"), &hook_ca).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let extra = format!(
        "[[webhook]]\nurl = \"https://127.0.0.1:{}/hook\"\nsecret = \"{SECRET}\"\ntrust = [\"{}\"]\n",
        listener.local_addr().unwrap().port(),
        hooks.join("ca.pem").display()
    );
    let got = common::webhook::receiver(listener, &hook_cert, &hook_key).await;
    let (sw, api, token) = signed_in("certs-expiry", "35600-35699", &extra).await;
    let ca = OperatorCa::new();
    let (chain, key, sha) = ca.issue_for(
        &["mswitch", "127.0.0.1"],
        &[Eku::ServerAuth, Eku::ClientAuth],
        time::Duration::hours(5 * 24 + 12),
    );
    let r = api
        .call(
            "PUT",
            "/api/v1/certificates/sip-identity",
            &token,
            Some(&upload_body(&chain, &key)),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        common::logged_within("certificate expires in 5 days: replace it before then", 10).await,
        "the warning's log line"
    );
    let events = common::webhook::events_when(&got, SECRET, |e| {
        e.iter().any(|e| e == "certificate_expiring")
    })
    .await;
    assert!(
        events.contains(&"certificate_expiring".to_owned()),
        "{events:?}"
    );
    assert!(
        events.contains(&"certificates_changed".to_owned()),
        "{events:?}"
    );
    let bodies = got.lock().unwrap().clone();
    let expiring = bodies
        .iter()
        .find(|(_, _, b)| b.contains("certificate_expiring"))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&expiring.2).unwrap();
    assert_eq!(v["data"]["sha256"], sha.as_str(), "{v}");
    assert_eq!(v["data"]["days_left"], 5);
    // The page's flag, from the status the page polls (it trusts the new CA now).
    let api = api_trusting(&sw, &hooks.join("new"), &ca.pem);
    let system = api.get("/api/v1/system", &token).await.json();
    // Admin HTTPS, SIP over mutual TLS, metrics on loopback, a verifying webhook: level 4.
    assert_eq!(system["security_level"]["effective"], 4, "{system}");
    assert_eq!(
        system["security_level"]["services"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "{system}"
    );
    let sip = system["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["unit"] == "sip-identity")
        .unwrap()
        .clone();
    assert_eq!(
        (sip["expiring"].clone(), sip["days_left"].clone()),
        (true.into(), 5.into()),
        "{sip}"
    );
    // The metric.
    let (status, scrape) = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(sw.metrics.unwrap())
            .await
            .unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        (out[9..12].to_owned(), out)
    };
    assert_eq!(status, "200");
    let seconds: f64 = scrape
        .lines()
        .find(|l| l.starts_with("mswitch_certificate_expiry_seconds{unit=\"sip-identity\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .expect("the gauge");
    assert!(
        seconds > 5.0 * 86_400.0 && seconds < 6.0 * 86_400.0,
        "{seconds}"
    );
    let _ = std::fs::remove_dir_all(&hooks);
    sw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_whose_peer_certificate_expires_closes_when_its_call_ends() {
    let (sw, _, _, ca) = switch_trusting_an_operator_ca(
        "certs-peer-expiry",
        "35700-35799",
        "[sip]\ncertificate_recheck = 0.5\n",
    )
    .await;
    // Valid for a few seconds more: the call is made while it is valid.
    let policy = peer_valid_for(&ca, 0x2001, &sw.dir, time::Duration::seconds(4));
    let dtls = Arc::new(DtlsIdentity::generate().unwrap());
    let mut calls = vec![
        SimulatedCall::dial(Endpoint::new(1, 1), &policy, sw.sip, "4000", false, &dtls)
            .await
            .unwrap(),
    ];
    assert!(until_established(&mut calls, 30).await);
    // Past its expiry the connection stays while the call is up...
    assert!(
        common::logged_within(
            "the peer's certificate expired while its SIP/TLS connection is up: it closes when its calls end",
            20
        )
        .await
    );
    // ... and carries the call's BYE; then the switch closes it.
    let mut call = calls.pop().unwrap();
    call.hangup("4000").await.unwrap();
    assert!(
        common::logged_within(
            "SIP/TLS connection closed: the peer's certificate expired and no call uses the connection",
            10
        )
        .await
    );
    let closed = call.sip.recv().await.unwrap_err();
    assert!(
        closed.to_string().contains("closed the connection"),
        "{closed}"
    );
    sw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_without_trust_files_follows_the_stores_other_trust() {
    const SECRET: &str = "the other-trust webhook secret";
    let (hook_ca, hook_cert, hook_key) = common::webhook::test_pki("receiver");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // No `trust`: the switch's own trust, which does not know the receiver's CA yet.
    let extra = format!(
        "[[webhook]]\nurl = \"https://127.0.0.1:{}/hook\"\nsecret = \"{SECRET}\"\n",
        listener.local_addr().unwrap().port(),
    );
    let got = common::webhook::receiver(listener, &hook_cert, &hook_key).await;
    let (sw, api, token) = signed_in("certs-other-trust", "35800-35899", &extra).await;
    let other = OperatorCa::new();
    // A change whose event the receiver cannot get: its certificate is not trusted.
    put_ok(
        &api,
        &token,
        "trunk-trust",
        serde_json::json!({ "certificate": other.pem }),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert!(got.lock().unwrap().is_empty(), "not verified, not sent");
    // Its CA into other-trust: the next events (and the retries) get through.
    put_ok(
        &api,
        &token,
        "other-trust",
        serde_json::json!({ "certificate": hook_ca }),
    )
    .await;
    let events = common::webhook::events_when(&got, SECRET, |e| e.len() >= 2).await;
    assert_eq!(
        events,
        ["certificates_changed", "certificates_changed"],
        "the first by its retries, the second at once"
    );
    sw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_identity_of_its_own_serves_the_page_while_the_trunk_keeps_its_certificate() {
    let (sw, api, token) = signed_in("certs-admin-id", "35900-35949", "").await;
    let ca = OperatorCa::new();
    // A web certificate: serverAuth is enough here (the trunk's would need clientAuth too).
    let (chain, key, sha) = ca.issue(&["127.0.0.1", "admin.example"], &[Eku::ServerAuth]);
    let r = api
        .call(
            "PUT",
            "/api/v1/certificates/admin-identity",
            &token,
            Some(&upload_body(&chain, &key)),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let units = r.json();
    assert_eq!(
        leaf_of(&units, "admin-identity"),
        (sha, "uploaded".to_owned())
    );
    assert_eq!(
        leaf_of(&units, "sip-identity").1,
        "generated",
        "the trunk's stays"
    );
    // The page and API now present it; SIP/TLS still presents the generated one.
    assert!(api.handshake().await.is_err());
    let trusting_new =
        std::env::temp_dir().join(format!("mswitch-certs-web-{}", std::process::id()));
    api_trusting(&sw, &trusting_new, &ca.pem)
        .handshake()
        .await
        .unwrap();
    let dtls = Arc::new(DtlsIdentity::generate().unwrap());
    SimulatedCall::dial(
        Endpoint::new(1, 1),
        &sw.policy,
        sw.sip,
        "4000",
        false,
        &dtls,
    )
    .await
    .expect("the trunk's certificate is unchanged");
    let _ = std::fs::remove_dir_all(&trusting_new);
    sw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unverified_webhook_is_level_3_and_logs_what_verification_would_say() {
    const SECRET: &str = "the unverified webhook secret";
    let (_, hook_cert, hook_key) = common::webhook::test_pki("receiver");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let extra = format!(
        "[[webhook]]\nurl = \"https://127.0.0.1:{}/hook\"\nsecret = \"{SECRET}\"\nverify = false\n",
        listener.local_addr().unwrap().port(),
    );
    let got = common::webhook::receiver(listener, &hook_cert, &hook_key).await;
    let (sw, api, token) = signed_in("certs-unverified-hook", "35950-35999", &extra).await;
    let system = api.get("/api/v1/system", &token).await.json();
    assert_eq!(system["security_level"]["effective"], 3, "{system}");
    put_ok(
        &api,
        &token,
        "other-trust",
        serde_json::json!({ "certificate": OperatorCa::new().pem }),
    )
    .await;
    // Delivered (the operator chose so), and the log says verification would refuse it.
    let events = common::webhook::events_when(&got, SECRET, |e| !e.is_empty()).await;
    assert_eq!(events, ["certificates_changed"]);
    assert!(
        common::logged_within(
            "webhook (verify = false): the receiver's certificate would NOT verify",
            5
        )
        .await
    );
    sw.stop().await;
}

//! The cluster registry against a real etcd (issue 21): one owner per meeting, its token
//! fencing a node whose lease lapsed, the records going with the lease.

mod common;

use std::time::{Duration, Instant};

use common::etcd::Etcd;
use mswitch::cluster::placement::{NodeRecord, Owner};
use mswitch::cluster::registry::{Claim, Registry, RegistryError};

fn record(id: &str) -> NodeRecord {
    NodeRecord {
        id: id.into(),
        sip_uri: format!("sip:{id}.test:5061;transport=tls"),
        admin: format!("https://{id}.test:8443"),
        meetings: 0,
        segments: 0,
        cpu: 0.0,
        draining: false,
    }
}

async fn join(etcd: &Etcd, id: &str, ttl_s: u64) -> Registry {
    join_under(etcd, "/mswitch-test", id, ttl_s).await
}

/// Node `id` in the registry under `prefix`, with a lease of `ttl_s`.
async fn join_under(etcd: &Etcd, prefix: &str, id: &str, ttl_s: u64) -> Registry {
    Registry::join(
        std::slice::from_ref(&etcd.endpoint),
        None,
        prefix,
        &record(id),
        Duration::from_secs(ttl_s),
        Duration::from_secs(5),
    )
    .await
    .expect("joins")
}

#[tokio::test]
async fn a_meeting_has_one_owner_and_a_lapsed_owner_is_fenced_out() {
    let Some(etcd) = Etcd::start() else { return };
    let mut a = join(&etcd, "a", 2).await;
    let mut b = join(&etcd, "b", 30).await;
    let mut ids: Vec<String> = b.nodes().await.unwrap().into_iter().map(|n| n.id).collect();
    ids.sort();
    assert_eq!(ids, ["a", "b"]);

    // The first claim wins; the second learns the owner and its token.
    let Claim::Won { token: t1 } = a.claim("7000").await.unwrap() else {
        panic!("a claims first")
    };
    assert_eq!(
        b.claim("7000").await.unwrap(),
        Claim::Held {
            node: "a".into(),
            token: t1
        }
    );
    assert_eq!(a.owner("7000").await.unwrap(), Owner::Here { token: t1 });
    assert_eq!(
        b.owner("7000").await.unwrap(),
        Owner::Elsewhere {
            node: "a".into(),
            token: t1
        }
    );
    assert!(a.holds("7000", t1).await.unwrap());
    assert_eq!(b.owner("7001").await.unwrap(), Owner::Nobody);

    // a stops renewing (paused, or cut off): its lease lapses and b takes the meeting
    // under a new token. a's token no longer holds, and a's release cannot touch b's claim.
    a.renew().await.unwrap();
    let paused = Instant::now();
    let t2 = loop {
        match b.claim("7000").await.unwrap() {
            Claim::Won { token } => break token,
            Claim::Held { .. } => {
                assert!(
                    paused.elapsed() < Duration::from_secs(10),
                    "a's lease lapses"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    eprintln!(
        "meeting taken over {:?} after the owner's last renewal (TTL 2 s)",
        paused.elapsed()
    );
    assert!(
        paused.elapsed() >= Duration::from_secs(1),
        "not before the lease lapsed"
    );
    assert!(t2 > t1, "a new token: {t2} after {t1}");
    assert!(!a.holds("7000", t1).await.unwrap(), "fenced out");
    let renewed = a.renew().await;
    assert!(
        matches!(renewed, Err(RegistryError::LeaseLost)),
        "{renewed:?}"
    );
    assert!(!a.release("7000", t1).await.unwrap());
    assert_eq!(b.owner("7000").await.unwrap(), Owner::Here { token: t2 });
    let ids: Vec<String> = b.nodes().await.unwrap().into_iter().map(|n| n.id).collect();
    assert_eq!(ids, ["b"], "a's record went with its lease");

    // b ends the meeting: released, free for anyone.
    assert!(b.release("7000", t2).await.unwrap());
    assert_eq!(b.owner("7000").await.unwrap(), Owner::Nobody);
}

#[tokio::test]
async fn a_node_that_leaves_frees_its_meetings_at_once_and_load_is_published() {
    let Some(etcd) = Etcd::start() else { return };
    let mut a = join(&etcd, "a", 30).await;
    let mut b = join(&etcd, "b", 30).await;
    for m in ["7000", "7001"] {
        assert!(matches!(a.claim(m).await.unwrap(), Claim::Won { .. }));
    }
    let mut busy = record("a");
    (busy.meetings, busy.segments, busy.draining) = (2, 12, true);
    a.publish(&busy).await.unwrap();
    let seen = b.nodes().await.unwrap();
    assert_eq!(seen.iter().find(|n| n.id == "a"), Some(&busy));
    a.leave().await.unwrap();
    for m in ["7000", "7001"] {
        assert!(
            matches!(b.claim(m).await.unwrap(), Claim::Won { .. }),
            "{m}"
        );
    }
    assert!(b.nodes().await.unwrap().iter().all(|n| n.id != "a"));
}

fn settings(etcd: &Etcd, id: &str, ttl_s: u64) -> mswitch::cluster::config::ClusterSettings {
    mswitch::cluster::config::ClusterSettings {
        etcd: vec![etcd.endpoint.clone()],
        tls: None,
        node_id: id.into(),
        sip_uri: Some(record(id).sip_uri),
        prefix: "/mswitch-node-test".into(),
        lease_ttl: Duration::from_secs(ttl_s),
        etcd_down: mswitch::cluster::placement::EtcdDown::Refuse,
        limits: mswitch::cluster::placement::Limits::default(),
    }
}

#[tokio::test]
async fn nodes_route_a_meeting_to_its_owner_and_give_up_before_a_lost_lease_lapses() {
    use mswitch::cluster::node::{ClusterNode, NodeEvent, Routed};
    use mswitch::cluster::placement::{Refusal, Route};
    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    let (a_events, mut a_rx) = tokio::sync::mpsc::unbounded_channel();
    let (b_events, _b_rx) = tokio::sync::mpsc::unbounded_channel();
    let (a, a_fence) = ClusterNode::start(settings(&etcd, "a", 3), record("a"), a_events)
        .await
        .unwrap();
    let (b, _) = ClusterNode::start(settings(&etcd, "b", 3), record("b"), b_events)
        .await
        .unwrap();
    // The first call claims the meeting where it lands; a call at the other node is
    // redirected there; the owner's next call is served under the same token.
    let first = a.route("7000", false).await;
    let Routed {
        route: Route::Serve { claim: true },
        token: Some(token),
        fence: Some(_),
    } = first
    else {
        panic!("{first:?}")
    };
    let redirected = b.route("7000", false).await;
    assert_eq!(
        redirected.route,
        Route::Redirect {
            node: "a".into(),
            sip_uri: record("a").sip_uri
        }
    );
    assert_eq!(redirected.token, None);
    assert_eq!(a.route("7000", true).await.token, Some(token));
    // Renewals keep the node in for longer than its TTL.
    tokio::time::sleep(Duration::from_secs(4)).await;
    while let Ok(e) = a_rx.try_recv() {
        assert!(
            matches!(e, NodeEvent::Nodes(_)),
            "only the nodes' list while etcd answers: {e:?}"
        );
    }
    assert_eq!(
        b.route("7000", false).await.route,
        Route::Redirect {
            node: "a".into(),
            sip_uri: record("a").sip_uri
        }
    );
    // etcd goes away: running meetings are the node's to end before its lease could
    // lapse (TTL 3 s: the deadline is at most 2.4 s after the last renewal went out).
    etcd.stop();
    let cut = Instant::now();
    // It says etcd is unreachable first (readiness), then gives up.
    let mut next = async || loop {
        match tokio::time::timeout(Duration::from_secs(5), a_rx.recv()).await {
            Ok(Some(NodeEvent::Nodes(_))) => continue,
            other => return other,
        }
    };
    let event = next().await;
    assert!(
        matches!(event, Ok(Some(NodeEvent::Reachable(false)))),
        "{event:?}"
    );
    let event = next().await;
    assert!(
        matches!(event, Ok(Some(NodeEvent::GaveUp { .. }))),
        "{event:?}"
    );
    // The media workers' fence lapses with it, whether call control heard or not.
    assert!(a_fence.expired(Instant::now()));
    // Measured, not asserted: the deadline itself is the lease rule's, tested exactly in
    // cluster::lease.
    eprintln!(
        "gave up {:?} after etcd stopped (TTL 3 s, renewals every 1 s)",
        cut.elapsed()
    );
    // Without etcd a new meeting is refused (the default rule); one running here goes on.
    assert_eq!(
        b.route("7001", false).await.route,
        Route::Refuse(Refusal::RegistryUnreachable)
    );
    assert_eq!(
        b.route("7002", true).await.route,
        Route::Serve { claim: false }
    );
}

/// Two switches in one cluster: the first call for a meeting claims it where it lands; a
/// call for it through the other switch gets 302 to the owner, and once there both
/// endpoints are in one meeting and see each other's media.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_for_one_meeting_through_two_switches_meet_on_its_owner_after_a_302() {
    use mswitch::endpoint::SimulatedCall;
    use switch::dtls::DtlsIdentity;
    use switch::testing::Endpoint;
    let Some(etcd) = Etcd::start() else { return };
    let conf = |id: &str| {
        format!(
            "[cluster]\netcd = [\"{}\"]\nnode_id = \"{id}\"\nprefix = \"/e2e-{}\"\nlease_ttl = 3\n",
            etcd.endpoint,
            std::process::id()
        )
    };
    let a = common::switch_with_accounts("cluster-a", "36200-36299", &conf("a")).await;
    let b = common::switch_with("cluster-b", "36300-36399", &conf("b"), 15.0).await;
    let dtls = std::sync::Arc::new(DtlsIdentity::generate().unwrap());
    let first = SimulatedCall::dial(Endpoint::new(1, 1), &a.policy, a.sip, "7000", false, &dtls)
        .await
        .unwrap();
    // a's admin API shows its place: registered, holding 7000 under its token, both
    // nodes listed (the registry's list is refreshed every 5 s).
    let api = common::https::Https::new(a.admin.unwrap(), &a.dir);
    let token = api.token(common::ADMIN.0, common::ADMIN.1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let cluster = loop {
        let system = api.get("/api/v1/system", &token).await.json();
        let cluster = system["cluster"].clone();
        if cluster["nodes"].as_array().is_some_and(|n| n.len() == 2) {
            break cluster;
        }
        assert!(Instant::now() < deadline, "both nodes listed: {cluster}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(cluster["node_id"], "a");
    assert_eq!(cluster["registered"], true);
    assert_eq!(cluster["etcd_reachable"], true);
    assert_eq!(cluster["held"][0]["number"], "7000");
    assert!(cluster["held"][0]["token"].as_i64().unwrap() > 0);
    // Through b: redirected to a, with the dialled number.
    let redirected =
        SimulatedCall::dial(Endpoint::new(2, 1), &b.policy, b.sip, "7000", false, &dtls).await;
    let e = redirected
        .err()
        .expect("redirected, not served")
        .to_string();
    assert!(e.starts_with("SIP/2.0 302"), "{e}");
    let contact = format!("sip:7000@{};transport=tls", a.sip);
    assert!(
        common::logged_within(&format!("contact={contact}"), 5).await,
        "the 302 names a: {contact}"
    );
    // Followed: both on a, one meeting, each sees the other.
    let second = SimulatedCall::dial(Endpoint::new(2, 1), &a.policy, a.sip, "7000", false, &dtls)
        .await
        .unwrap();
    let mut calls = vec![first, second];
    assert!(common::until_established(&mut calls, 20).await);
    common::run_media(&mut calls, 2.0).await;
    assert!(common::received_from(&calls[0], 2) > 0, "1 sees 2");
    assert!(common::received_from(&calls[1], 1) > 0, "2 sees 1");
    // A new meeting through b is b's own.
    let third =
        SimulatedCall::dial(Endpoint::new(3, 1), &b.policy, b.sip, "7001", false, &dtls).await;
    assert!(third.is_ok(), "{:?}", third.err());
    // a stops (BYE to its calls, its lease revoked): the meeting is free at once, and
    // the redial through b lands there.
    drop(calls);
    a.stop().await;
    let redial =
        SimulatedCall::dial(Endpoint::new(4, 1), &b.policy, b.sip, "7000", false, &dtls).await;
    assert!(redial.is_ok(), "b takes the meeting: {:?}", redial.err());
    drop(third);
    drop(redial);
    b.stop().await;
}

/// A switch cut off from etcd ends its calls before its lease can lapse (BYE to each), so
/// that no other node can serve the meeting while it still does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_cut_off_from_etcd_ends_its_calls_before_its_lease_lapses() {
    use mswitch::endpoint::SimulatedCall;
    use switch::dtls::DtlsIdentity;
    use switch::testing::Endpoint;
    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    let conf = format!(
        "[cluster]\netcd = [\"{}\"]\nnode_id = \"solo\"\nprefix = \"/cut-{}\"\nlease_ttl = 3\n",
        etcd.endpoint,
        std::process::id()
    );
    let a = common::switch_with("cluster-cut", "36400-36499", &conf, 15.0).await;
    let dtls = std::sync::Arc::new(DtlsIdentity::generate().unwrap());
    let mut calls = Vec::new();
    for id in [1, 2] {
        calls.push(
            SimulatedCall::dial(Endpoint::new(id, 1), &a.policy, a.sip, "7100", false, &dtls)
                .await
                .unwrap(),
        );
    }
    assert!(common::until_established(&mut calls, 20).await);
    let metrics = a.metrics.expect("the metrics listener");
    etcd.stop();
    let cut = Instant::now();
    // Readiness turns as soon as a renewal fails (new meetings are refused: the default
    // rule), while the calls go on until the lease's deadline.
    let readiness = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(6);
        loop {
            let (status, body) = common::get_plain(metrics, "/readyz").await;
            if status == 503 || Instant::now() > deadline {
                return (status, body);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    for c in &mut calls {
        assert!(
            common::bye_within(c, 6).await,
            "BYE once the lease cannot be renewed"
        );
    }
    // Measured, not asserted (the deadline itself is cluster::lease's, tested exactly).
    eprintln!(
        "calls ended {:?} after etcd stopped (TTL 3 s: the lease could lapse 3 s after the last renewal)",
        cut.elapsed()
    );
    let (status, body) = readiness.await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("etcd is unreachable") || body.contains("not registered in the cluster"),
        "{body}"
    );
    assert!(body.contains("new meetings are refused"), "{body}");
    assert!(common::logged(
        "cluster: no lease renewal got through in time"
    ));
    a.stop().await;
}

/// etcd unreachable with `etcd_down = "local"`: readiness says so and new meetings are
/// served here, unregistered. When etcd is back the registry is reconciled with what runs
/// here: a meeting no one holds is claimed, one another node registered meanwhile is
/// ended here (BYE) so that its registered owner is the only one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_etcd_is_back_what_ran_unregistered_is_claimed_or_ended() {
    use mswitch::endpoint::SimulatedCall;
    use switch::dtls::DtlsIdentity;
    use switch::testing::Endpoint;
    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    let prefix = format!("/back-{}", std::process::id());
    let conf = format!(
        "[cluster]\netcd = [\"{}\"]\nnode_id = \"a\"\nprefix = \"{prefix}\"\nlease_ttl = 10\netcd_down = \"local\"\n",
        etcd.endpoint
    );
    let a = common::switch_with("cluster-back", "36500-36599", &conf, 15.0).await;
    let metrics = a.metrics.expect("the metrics listener");
    // Another node holds 7201 under a long lease (etcd keeps it across its restart).
    let mut other = join_under(&etcd, &prefix, "x", 60).await;
    assert!(matches!(
        other.claim("7201").await.unwrap(),
        Claim::Won { .. }
    ));

    etcd.stop();
    let dtls = std::sync::Arc::new(DtlsIdentity::generate().unwrap());
    let mut calls = Vec::new();
    for (id, number) in [(1, "7200"), (2, "7201")] {
        calls.push(
            SimulatedCall::dial(Endpoint::new(id, 1), &a.policy, a.sip, number, false, &dtls)
                .await
                .expect("served here while etcd is unreachable"),
        );
    }
    let (status, body) = common::get_plain(metrics, "/readyz").await;
    assert_eq!(status, 200, "calls may still come: {body}");
    assert!(
        body.contains("etcd is unreachable") && body.contains("served here unregistered"),
        "{body}"
    );

    etcd.restart();
    let back = Instant::now();
    // 7201 is x's: the copy here ends (BYE); 7200 is claimed by a and goes on.
    assert!(
        common::bye_within(&mut calls[1], 15).await,
        "the meeting registered elsewhere ends here"
    );
    eprintln!("conflict ended {:?} after etcd came back", back.elapsed());
    assert!(common::logged(
        "is registered to another node: ending it here"
    ));
    let mut observer = join_under(&etcd, &prefix, "obs", 60).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match observer.owner("7200").await.unwrap() {
            Owner::Elsewhere { node, .. } if node == "a" => break,
            o => assert!(Instant::now() < deadline, "7200 claimed by a: {o:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("7200 claimed {:?} after etcd came back", back.elapsed());
    assert!(!common::bye_within(&mut calls[0], 1).await, "7200 goes on");
    let (status, body) = common::get_plain(metrics, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("etcd is unreachable"), "{body}");
    drop(calls);
    a.stop().await;
}

/// PEM files in `dir`: a CA, etcd's server certificate for 127.0.0.1 and a node's client
/// certificate from it, and a second CA that signed nothing of this etcd's.
fn etcd_pki(dir: &std::path::Path) -> common::etcd::ServerTls {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, SanType,
    };
    std::fs::create_dir_all(dir).unwrap();
    let ca = |cn: &str| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
    };
    let (ca, rogue) = (ca("etcd test CA"), ca("another CA"));
    let leaf = |cn: &str, usage: ExtendedKeyUsagePurpose, name: &str| {
        let mut p = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        p.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &ca).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}-key.pem")), key.serialize_pem()).unwrap();
    };
    leaf("etcd", ExtendedKeyUsagePurpose::ServerAuth, "server");
    leaf(
        "mswitch-node",
        ExtendedKeyUsagePurpose::ClientAuth,
        "client",
    );
    std::fs::write(dir.join("ca.pem"), ca.as_ref().pem()).unwrap();
    std::fs::write(dir.join("rogue-ca.pem"), rogue.as_ref().pem()).unwrap();
    common::etcd::ServerTls {
        cert: dir.join("server.pem"),
        key: dir.join("server-key.pem"),
        client_ca: dir.join("ca.pem"),
    }
}

/// TLS toward etcd: a switch verifies etcd's certificate against `etcd_ca` and presents
/// its client certificate; another CA's etcd, or no client certificate, gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_over_tls_verifies_etcd_and_presents_the_nodes_certificate() {
    use mswitch::cluster::config::EtcdTls;
    use mswitch::endpoint::SimulatedCall;
    use switch::dtls::DtlsIdentity;
    use switch::testing::Endpoint;
    let dir = std::env::temp_dir().join(format!("mswitch-etcd-pki-{}", std::process::id()));
    let server = etcd_pki(&dir);
    let Some(etcd) = Etcd::start_tls(server) else {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    assert!(etcd.endpoint.starts_with("https://"));
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let client = Some((read("client.pem"), read("client-key.pem")));
    let join = |tls: EtcdTls| {
        let endpoint = etcd.endpoint.clone();
        async move {
            Registry::join(
                &[endpoint],
                Some(&tls),
                "/tls",
                &record("t"),
                Duration::from_secs(30),
                Duration::from_secs(3),
            )
            .await
        }
    };
    let mut r = join(EtcdTls {
        ca_pem: read("ca.pem"),
        identity: client.clone(),
    })
    .await
    .expect("joins over TLS with its client certificate");
    assert!(matches!(r.claim("7300").await.unwrap(), Claim::Won { .. }));
    let rogue = join(EtcdTls {
        ca_pem: read("rogue-ca.pem"),
        identity: client,
    })
    .await;
    assert!(rogue.is_err(), "etcd's certificate is not from that CA");
    let anonymous = join(EtcdTls {
        ca_pem: read("ca.pem"),
        identity: None,
    })
    .await;
    assert!(
        anonymous.is_err(),
        "etcd asks every client for a certificate"
    );

    // A switch configured so: it joins, and a call's meeting is claimed in etcd.
    let conf = format!(
        "[cluster]\netcd = [\"{}\"]\netcd_ca = \"{ca}\"\netcd_cert = \"{cert}\"\netcd_key = \"{key}\"\n\
         node_id = \"tls-node\"\nprefix = \"/tls\"\n",
        etcd.endpoint,
        ca = dir.join("ca.pem").display(),
        cert = dir.join("client.pem").display(),
        key = dir.join("client-key.pem").display(),
    );
    let sw = common::switch_with("cluster-tls", "36600-36649", &conf, 15.0).await;
    let dtls = std::sync::Arc::new(DtlsIdentity::generate().unwrap());
    let call = SimulatedCall::dial(
        Endpoint::new(1, 1),
        &sw.policy,
        sw.sip,
        "7301",
        false,
        &dtls,
    )
    .await
    .expect("served");
    let owner = r.owner("7301").await.unwrap();
    assert!(
        matches!(&owner, Owner::Elsewhere { node, .. } if node == "tls-node"),
        "{owner:?}"
    );
    drop(call);
    sw.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

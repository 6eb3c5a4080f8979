//! Running in production (issue 17), end to end on loopback: the Prometheus scrape parsed
//! with a text-format parser after a meeting of simulated endpoints (forged packets
//! counted by reason), liveness and readiness (readiness false while draining and with
//! every trunk peer down, liveness true), the drain (a newcomer refused with 503 and
//! Retry-After, the meeting going on, BYE at the deadline, the switch's loop ending), a
//! call record for each way a call ends, and signed webhooks to real HTTPS receivers.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::Switch;
use common::https::Https;
use common::webhook::{events_of, receiver, test_pki};
use common::{
    ADMIN, bye_within, run_media, switch_with_accounts, switch_with_accounts_tip, until_established,
};
use mswitch::app::Stop;
use mswitch::endpoint::{self, SimulatedCall};
use switch::dtls::DtlsIdentity;
use switch::testing::Endpoint;
use switch::tip::negotiation::Media;

/// A scrape, parsed.
struct Scrape(prometheus_parse::Scrape);

impl Scrape {
    async fn of(addr: std::net::SocketAddr) -> Self {
        let (status, body) = common::get_plain(addr, "/metrics").await;
        assert_eq!(status, 200, "{body}");
        let lines = body.lines().map(|l| Ok(l.to_owned()));
        Self(prometheus_parse::Scrape::parse(lines).expect("the text format parses"))
    }

    /// The value of `name` with `labels` (all of them must match; 0 when absent).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                prometheus_parse::Value::Histogram(h) => {
                    h.iter().map(|b| b.count).fold(0.0, f64::max)
                }
                prometheus_parse::Value::Summary(_) => 0.0,
            })
            .sum()
    }

    /// Every `reason` label of `mswitch_media_dropped_total` with its value.
    fn drops(&self) -> std::collections::BTreeMap<String, f64> {
        let mut m = std::collections::BTreeMap::new();
        for s in self
            .0
            .samples
            .iter()
            .filter(|s| s.metric == "mswitch_media_dropped_total")
        {
            if let (Some(r), prometheus_parse::Value::Counter(v)) =
                (s.labels.get("reason"), &s.value)
            {
                *m.entry(r.to_owned()).or_default() += v;
            }
        }
        m
    }
}

async fn dial_all(sw: &Switch, eps: Vec<Endpoint>, dtls: &Arc<DtlsIdentity>) -> Vec<SimulatedCall> {
    let mut calls = Vec::new();
    for ep in eps {
        calls.push(
            SimulatedCall::dial(ep, &sw.policy, sw.sip, "4000", false, dtls)
                .await
                .unwrap(),
        );
    }
    calls
}

/// A datagram with the SSRC of `call`'s audio and a tag that cannot verify.
fn forged(call: &SimulatedCall, seq: u16) -> Vec<u8> {
    let audio = call
        .endpoint
        .lines
        .iter()
        .find(|l| l.media == Media::Audio)
        .unwrap();
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1]);
    p.extend_from_slice(&audio.sources[0].1.to_be_bytes());
    p.extend_from_slice(&[0x5a; 40]);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_counts_the_meeting_and_forged_packets_and_readiness_follows_a_drain() {
    let sw = switch_with_accounts(
        "ops-metrics",
        "34000-34199",
        "[[meeting]]\nnumber = \"4000\"\npolicy = \"secure\"\n",
    )
    .await;
    let metrics = sw.metrics.unwrap();
    let dtls = Arc::new(DtlsIdentity::generate().unwrap());
    let mut calls = dial_all(&sw, vec![Endpoint::new(1, 3), Endpoint::new(2, 1)], &dtls).await;
    assert!(until_established(&mut calls, 30).await);
    run_media(&mut calls, 1.5).await;

    let before = Scrape::of(metrics).await;
    for seq in 0..25 {
        calls[0]
            .send_raw(0, &forged(&calls[0], 1000 + seq))
            .await
            .unwrap();
    }
    // The meetings report every second: the drops appear within a few.
    let mut after = Scrape::of(metrics).await;
    for _ in 0..50 {
        let added: f64 = after.drops().values().sum::<f64>() - before.drops().values().sum::<f64>();
        if added >= 25.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = Scrape::of(metrics).await;
    }
    let grown: Vec<(String, f64)> = after
        .drops()
        .into_iter()
        .map(|(r, v)| {
            let b = before.drops().get(&r).copied().unwrap_or(0.0);
            (r, v - b)
        })
        .filter(|(_, d)| *d > 0.0)
        .collect();
    assert_eq!(
        grown.len(),
        1,
        "one reason for the forged packets: {grown:?}"
    );
    assert_eq!(
        grown[0].1, 25.0,
        "each forged packet counted once: {grown:?}"
    );

    let s = &after;
    eprintln!(
        "the scrape after the meeting:\n{}",
        common::get_plain(metrics, "/metrics").await.1
    );
    assert!(s.value("mswitch_calls_started_total", &[("direction", "in")]) >= 2.0);
    assert!(s.value("mswitch_meetings", &[("security", "secure")]) >= 1.0);
    // Two endpoints dialled in: their INVITEs and ACKs in, the 200s out.
    for (method, at_least) in [("INVITE", 2.0), ("ACK", 2.0)] {
        let n = s.value(
            "mswitch_sip_requests_total",
            &[("direction", "in"), ("method", method)],
        );
        assert!(n >= at_least, "{method} in: {n}");
    }
    assert!(
        s.value(
            "mswitch_sip_responses_total",
            &[("direction", "out"), ("code", "200")]
        ) >= 2.0
    );
    assert!(
        s.value(
            "mswitch_sip_responses_total",
            &[("direction", "out"), ("code", "100")]
        ) >= 2.0,
        "100 Trying to each INVITE"
    );
    assert!(s.value("mswitch_participants", &[("security", "secure")]) >= 2.0);
    assert!(s.value("mswitch_dtls_handshakes_total", &[("result", "ok")]) >= 4.0);
    for kind in ["muxctrl", "spimap"] {
        assert!(
            s.value(
                "mswitch_tip_negotiations_total",
                &[("kind", kind), ("result", "ok")]
            ) >= 4.0,
            "{kind}"
        );
    }
    assert!(s.value("mswitch_media_packets_total", &[("direction", "in")]) > 100.0);
    assert!(s.value("mswitch_media_packets_total", &[("direction", "out")]) > 100.0);
    assert!(s.value("mswitch_media_ports", &[("state", "used")]) >= 4.0);
    assert!(s.value("mswitch_worker_recv_calls_total", &[]) > 0.0);
    assert!(s.value("mswitch_worker_send_calls_total", &[]) > 0.0);
    assert!(s.value("mswitch_worker_wakeups_total", &[]) > 0.0);
    assert!(
        s.value("mswitch_join_latency_seconds_count", &[]) >= 2.0,
        "two joins measured"
    );
    assert!(
        s.value(
            "mswitch_certificate_expiry_seconds",
            &[("unit", "sip-identity")]
        ) > 86_400.0 * 700.0
    );
    assert_eq!(s.value("mswitch_draining", &[]), 0.0);

    // Liveness and readiness.
    let (status, body) = common::get_plain(metrics, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = common::get_plain(metrics, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    // The plain listener serves nothing else.
    assert_eq!(common::get_plain(metrics, "/api/v1/status").await.0, 404);

    // A drain through the API: readiness false, liveness true, a newcomer gets 503.
    let api = Https::new(sw.admin.unwrap(), &sw.dir);
    let token = api.token(ADMIN.0, ADMIN.1).await;
    let r = api.call("POST", "/api/v1/drain", &token, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (status, body) = common::get_plain(metrics, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("draining"), "{body}");
    assert_eq!(
        common::get_plain(metrics, "/healthz").await.0,
        200,
        "liveness is not readiness"
    );
    let refused = SimulatedCall::dial(
        Endpoint::new(3, 1),
        &sw.policy,
        sw.sip,
        "4000",
        false,
        &dtls,
    )
    .await;
    let Err(e) = refused else {
        panic!("a draining switch took a new call")
    };
    assert!(e.to_string().contains("503"), "{e}");
    let system = api.get("/api/v1/system", &token).await.json();
    assert_eq!(system["accepting_calls"], false, "{system}");
    assert!(
        system["draining"]["deadline"].as_u64().is_some(),
        "{system}"
    );
    assert_eq!(
        Scrape::of(metrics).await.value("mswitch_draining", &[]),
        1.0
    );
    // The metrics on the admin listener are for a signed-in account.
    assert_eq!(api.send("GET", "/metrics", &[], None).await.status, 401);
    assert_eq!(api.get("/metrics", &token).await.status, 200);
    // A second drain request (a second SIGTERM) ends every call now, long before the
    // hour's deadline.
    sw.stops.send(Stop::Drain).unwrap();
    for call in &mut calls {
        assert!(bye_within(call, 10).await, "BYE at once");
    }
    let Switch { running, dir, .. } = sw;
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the loop ends")
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The end reasons of the call records in `dir`.
fn record_ends(dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("calls.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_lets_the_meeting_run_to_its_deadline_and_every_call_end_is_recorded() {
    let sw = switch_with_accounts_tip(
        "ops-drain",
        "34200-34499",
        "[admin]\nhttps = \"127.0.0.1:0\"\nhttp_redirect = \"\"\nmetrics = \"\"\ndrain_deadline = 4\n\
         [[meeting]]\nnumber = \"4000\"\npolicy = \"secure\"\n",
        2.0,
    )
    .await;
    let api = Https::new(sw.admin.unwrap(), &sw.dir);
    let token = api.token(ADMIN.0, ADMIN.1).await;
    let dtls = Arc::new(DtlsIdentity::generate().unwrap());
    // A and B stay to the drain; C is kicked; G hangs up.
    let mut calls = dial_all(
        &sw,
        vec![
            Endpoint::new(1, 3),
            Endpoint::new(2, 1),
            Endpoint::new(3, 1),
            Endpoint::new(7, 1),
        ],
        &dtls,
    )
    .await;
    assert!(until_established(&mut calls, 30).await);
    run_media(&mut calls, 1.0).await;
    let ids: Vec<String> = calls.iter().map(|c| c.call_id.clone()).collect();

    // G: its own BYE.
    let mut g = calls.pop().unwrap();
    g.hangup("4000").await.unwrap();
    // C: kicked.
    let m = api.get("/api/v1/meetings/4000", &token).await.json();
    let c_id = m["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["call_id"] == ids[2].as_str())
        .unwrap()["id"]
        .as_u64()
        .unwrap();
    let r = api
        .call(
            "DELETE",
            &format!("/api/v1/meetings/4000/participants/{c_id}"),
            &token,
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let mut c = calls.pop().unwrap();
    assert!(bye_within(&mut c, 10).await);
    // E: refused, the meeting locked.
    api.call("POST", "/api/v1/meetings/4000/lock", &token, None)
        .await;
    assert!(
        SimulatedCall::dial(
            Endpoint::new(5, 1),
            &sw.policy,
            sw.sip,
            "4000",
            false,
            &dtls
        )
        .await
        .is_err()
    );
    api.call("POST", "/api/v1/meetings/4000/unlock", &token, None)
        .await;
    // D: starts TIP and never acknowledges the switch's MUXCTRL: ends at the deadline.
    let mut d = Endpoint::new(4, 1);
    d.ignore_muxctrl = true;
    let mut d = SimulatedCall::dial(d, &sw.policy, sw.sip, "4000", false, &dtls)
        .await
        .unwrap();
    assert!(bye_within(&mut d, 20).await, "TIP not finished: BYE");
    let records = api.get("/api/v1/calls?limit=10", &token).await.json();
    assert!(
        records.as_array().is_some_and(|r| r.len() >= 4),
        "{records}"
    );

    // The drain: F refused with 503 and Retry-After; A and B go on, then BYE at the
    // deadline, and the switch's loop ends.
    sw.stops.send(Stop::Drain).unwrap();
    let mut f = endpoint::SipClient::connect(&sw.policy, sw.sip, "mswitch")
        .await
        .unwrap();
    let local = f.local;
    f.send(&endpoint::request(
        "INVITE", local, "4000", "f-call", None, 1, "",
    ))
    .await
    .unwrap();
    let refused = f.final_response().await.unwrap();
    assert!(refused.starts_with("SIP/2.0 503"), "{refused}");
    assert!(refused.contains("Retry-After: "), "{refused}");
    let from_a_before = common::received_from(&calls[1], 1);
    let mut idr = HashSet::new();
    common::run_media_recording(&mut calls, 1.0, &mut idr).await;
    let from_a_after = common::received_from(&calls[1], 1);
    assert!(
        from_a_after > from_a_before,
        "the meeting goes on while draining"
    );
    for call in &mut calls {
        assert!(bye_within(call, 10).await, "BYE at the drain deadline");
    }
    let Switch { running, dir, .. } = sw;
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the loop ends after the drain")
        .unwrap();

    let records = record_ends(&dir);
    let end_of = |call_id: &str| {
        records
            .iter()
            .find(|r| r["call_id"] == call_id)
            .map(|r| r["end"].clone())
            .unwrap_or_default()
    };
    assert_eq!(
        end_of(&ids[0]),
        serde_json::json!({"reason": "drained"}),
        "{records:?}"
    );
    assert_eq!(end_of(&ids[1]), serde_json::json!({"reason": "drained"}));
    assert_eq!(end_of(&ids[2]), serde_json::json!({"reason": "kicked"}));
    assert_eq!(end_of(&ids[3]), serde_json::json!({"reason": "remote_bye"}));
    assert_eq!(
        end_of(&d.call_id),
        serde_json::json!({"reason": "timeout", "detail": "muxctrl"})
    );
    assert_eq!(
        end_of("f-call"),
        serde_json::json!({"reason": "refused", "detail": [503, "the switch is draining"]})
    );
    assert!(
        records.iter().any(|r| r["end"]
            == serde_json::json!({"reason": "refused", "detail": [403, "the meeting is locked"]})),
        "{records:?}"
    );
    let a = records
        .iter()
        .find(|r| r["call_id"] == ids[0].as_str())
        .unwrap();
    eprintln!("A's call record:\n{a}");
    assert_eq!(
        a["security"]["keying"],
        serde_json::json!(["dtls", "dtls"]),
        "{a}"
    );
    assert_eq!(a["security"]["lock_icon"], true, "{a}");
    assert_eq!(a["screens"], 3);
    assert!(a["packets_in"].as_u64() > Some(10), "{a}");
    assert!(a["answer_ms"].as_u64() >= a["start_ms"].as_u64(), "{a}");
    assert!(
        a["caller"].as_str().is_some_and(|c| c.contains("sip:ep@")),
        "{a}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_verified_retried_and_never_hold_up_the_media() {
    const SECRET: &str = "a webhook secret of ours";
    let dir = std::env::temp_dir().join(format!("mswitch-hooks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, cert, key) = test_pki("receiver");
    std::fs::write(dir.join("receiver-ca.pem"), &ca).unwrap();
    let (_, stranger_cert, stranger_key) = test_pki("stranger");
    let good = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let untrusted = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // Down at first: its port is known, nothing listens yet.
    let later_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Takes connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = |port: u16| {
        format!(
            "[[webhook]]\nurl = \"https://127.0.0.1:{port}/hook\"\nsecret = \"{SECRET}\"\ntrust = [\"{}\"]\n",
            dir.join("receiver-ca.pem").display()
        )
    };
    let extra = format!(
        "[[meeting]]\nnumber = \"4000\"\npolicy = \"secure\"\n{}{}{}{}",
        hook(good.local_addr().unwrap().port()),
        hook(untrusted.local_addr().unwrap().port()),
        hook(later_port),
        hook(silent.local_addr().unwrap().port()),
    );
    let got = receiver(good, &cert, &key).await;
    let stranger = receiver(untrusted, &stranger_cert, &stranger_key).await;
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            open.push(s);
        }
    });
    let sw = switch_with_accounts("ops-hooks", "34500-34699", &extra).await;
    let dtls = Arc::new(DtlsIdentity::generate().unwrap());
    let mut calls = dial_all(&sw, vec![Endpoint::new(1, 1), Endpoint::new(2, 1)], &dtls).await;
    assert!(until_established(&mut calls, 30).await);
    // The receiver that was down comes up a moment later: the retries reach it.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let later = receiver(
        std::net::TcpListener::bind(("127.0.0.1", later_port)).unwrap(),
        &cert,
        &key,
    )
    .await;
    // The media is untouched by a receiver that never answers.
    run_media(&mut calls, 1.5).await;
    let from_a = common::received_from(&calls[1], 1);
    assert!(from_a > 20, "B got {from_a} packets from A");
    calls[1].hangup("4000").await.unwrap();
    for _ in 0..100 {
        if events_of(&got, SECRET).contains(&"participant_left".to_owned())
            && events_of(&later, SECRET).len() >= 3
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = events_of(&got, SECRET);
    assert_eq!(
        events,
        [
            "meeting_started",
            "participant_joined",
            "participant_joined",
            "participant_left"
        ],
        "in order, each once"
    );
    let late = events_of(&later, SECRET);
    assert!(
        late.len() >= 3 && late[0] == "meeting_started",
        "retried until it was up: {late:?}"
    );
    assert!(
        stranger.lock().unwrap().is_empty(),
        "an unverified receiver gets nothing"
    );
    held.abort();
    sw.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_turns_false_when_every_trunk_peer_is_down_and_liveness_stays_true() {
    // The only trunk peer's port takes no connection: each OPTIONS keep-alive fails at
    // once, the peer goes down.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("mswitch-peer-down-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let settings = mswitch::config::Config::parse(&format!(
        "[sip]\nudp = \"\"\ntcp = \"\"\ntls = \"127.0.0.1:0\"\noptions_interval = 1\n\
         [[trunk]]\naddress = \"127.0.0.1:{closed}\"\ntransport = \"tls\"\nsubject = \"mswitch-peer\"\n\
         [tls]\ndata_dir = \"{}\"\n[media]\nports = \"34700-34799\"\naddress = \"127.0.0.1\"\nworkers = 1\n\
         [admin]\nhttps = \"\"\nhttp_redirect = \"\"\nmetrics = \"127.0.0.1:0\"\n",
        dir.display()
    ))
    .unwrap();
    let app = mswitch::app::App::start(settings).await.unwrap();
    let metrics = app.metrics_addr().unwrap();
    let (stops, stopped) = tokio::sync::mpsc::unbounded_channel();
    let running = tokio::spawn(app.run_until(stopped));
    let mut ready = (0, String::new());
    for _ in 0..100 {
        ready = common::get_plain(metrics, "/readyz").await;
        if ready.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready.0, 503, "{}", ready.1);
    let body: serde_json::Value = serde_json::from_str(&ready.1).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"ready": false, "reasons": ["no trunk peer answers keep-alives"]})
    );
    let (status, body) = common::get_plain(metrics, "/healthz").await;
    assert_eq!(
        status, 200,
        "a dependency down never fails liveness: {body}"
    );
    // (Only this test's switch has keep-alives on: no other switch of the process sets
    // this gauge, which the process's recorder shares.)
    let scrape = Scrape::of(metrics).await;
    let peer_up: Vec<f64> = scrape
        .0
        .samples
        .iter()
        .filter(|s| s.metric == "mswitch_trunk_peer_up" && s.labels.get("peer") == Some("0"))
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) => v,
            _ => f64::NAN,
        })
        .collect();
    assert_eq!(peer_up, [0.0], "the peer is down");
    let _ = stops.send(Stop::Now);
    let _ = running.await;
    let _ = std::fs::remove_dir_all(&dir);
}

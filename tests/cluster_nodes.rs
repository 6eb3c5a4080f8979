//! Three `mswitch run` processes and a real etcd as one cluster (issue 21), driven as an
//! operator's network would: simulated endpoints dial a meeting through different nodes
//! and follow the 302 to its owner; a full node sends new meetings to the least-loaded
//! one; the owner is killed (SIGKILL: its lease lapses) and paused past its lease
//! (SIGSTOP, then SIGCONT: it finds its lease gone and ends its calls, forwarding nothing
//! more). All along, a sampler asks every node's admin API which meetings run there and
//! checks that no meeting ever runs on two nodes at once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::etcd::Etcd;
use common::https::Https;
use mswitch::endpoint::{EndpointError, SimulatedCall};
use sip::tls::TlsPolicy;
use switch::dtls::DtlsIdentity;
use switch::testing::Endpoint;

/// One node: an `mswitch run` process.
struct Node {
    id: &'static str,
    child: Child,
    dir: PathBuf,
    sip: SocketAddr,
    admin: Https,
    /// The simulated endpoints' TLS identity toward this node (its local CA).
    policy: TlsPolicy,
    token: String,
    log: PathBuf,
}

impl Node {
    async fn start(id: &'static str, etcd: &Etcd, prefix: &str, ports: &str, extra: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mswitch-node-{}-{id}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (user, password) = common::ADMIN;
        mswitch::admin::store::set_password(
            &dir,
            user,
            mswitch::admin::accounts::Role::Admin,
            password,
            ("test", "test", 0),
        )
        .unwrap();
        let (sip, admin) = (common::ports::free_port(), common::ports::free_port());
        let config = format!(
            "[sip]\nudp = \"\"\ntcp = \"\"\ntls = \"127.0.0.1:{sip}\"\noptions_interval = 0\n\
             [tls]\ndata_dir = \"{dir}\"\n\
             [media]\nports = \"{ports}\"\naddress = \"127.0.0.1\"\nworkers = 1\n\
             [admin]\nhttps = \"127.0.0.1:{admin}\"\nhttp_redirect = \"\"\nmetrics = \"\"\n\
             [cluster]\netcd = [\"{etcd}\"]\nnode_id = \"{id}\"\nprefix = \"{prefix}\"\nlease_ttl = 3\n{extra}",
            dir = dir.display(),
            etcd = etcd.endpoint,
        );
        std::fs::write(dir.join("c.toml"), config).unwrap();
        let log = dir.with_extension("log");
        let child = Command::new(env!("CARGO_BIN_EXE_mswitch"))
            .args(["run", "--config", "c.toml"])
            .current_dir(&dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("mswitch runs");
        let sip: SocketAddr = format!("127.0.0.1:{sip}").parse().unwrap();
        let admin_addr: SocketAddr = format!("127.0.0.1:{admin}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(admin_addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "node {id} started: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let admin = Https::new(admin_addr, &dir);
        let token = admin.token(user, password).await;
        let policy = mswitch::endpoint::peer_policy(&dir, "mswitch-peer").unwrap();
        Self {
            id,
            child,
            dir,
            sip,
            admin,
            policy,
            token,
            log,
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([sig, &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(&self.log);
    }
}

/// What the nodes report: node id -> (admin API, bearer token), sampled by [`sample`].
type Reporters = Vec<(&'static str, Https, String)>;

/// The meetings running on one node, from its admin API; `None` when it does not answer
/// in time (killed, or paused).
async fn running_on(admin: &Https, token: &str) -> Option<BTreeSet<String>> {
    let auth = format!("Bearer {token}");
    let reply = tokio::time::timeout(
        Duration::from_millis(400),
        admin.try_send("GET", "/api/v1/meetings", &[("authorization", &auth)], None),
    )
    .await
    .ok()?
    .ok()?;
    if reply.status != 200 {
        return None;
    }
    let meetings = reply.json();
    Some(
        meetings
            .as_array()?
            .iter()
            .filter(|m| !m["conf_id"].is_null())
            .filter_map(|m| m["number"].as_str().map(str::to_owned))
            .collect(),
    )
}

/// Samples every node about ten times a second until `stop`: each round asks all of them
/// at once; a meeting reported by two nodes in one round is recorded as a violation.
fn sample(
    nodes: Arc<Mutex<Reporters>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    tokio::spawn(async move {
        let (mut rounds, mut violations) = (0, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            let asked: Reporters = nodes.lock().unwrap().clone();
            let asking: Vec<_> = asked
                .into_iter()
                .map(|(id, admin, token)| {
                    tokio::spawn(async move { (id, running_on(&admin, &token).await) })
                })
                .collect();
            let mut answers = Vec::new();
            for a in asking {
                answers.extend(a.await.ok());
            }
            let mut seen: BTreeMap<String, &str> = BTreeMap::new();
            for (id, running) in answers {
                for number in running.into_iter().flatten() {
                    if let Some(other) = seen.insert(number.clone(), id) {
                        violations.push(format!("{number} on {other} and {id}"));
                    }
                }
            }
            rounds += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (rounds, violations)
    })
}

/// Dials `number` through `via`, following a 302 to the node it names; returns the call
/// and the node that serves it (an index into `nodes`).
async fn dial(
    nodes: &[&Node],
    via: usize,
    number: &str,
    id: u32,
    dtls: &Arc<DtlsIdentity>,
) -> Result<(SimulatedCall, usize), String> {
    let mut at = via;
    for _ in 0..3 {
        let node = nodes[at];
        match SimulatedCall::dial(
            Endpoint::new(id, 1),
            &node.policy,
            node.sip,
            number,
            false,
            dtls,
        )
        .await
        {
            Ok(call) => return Ok((call, at)),
            Err(EndpointError::Redirected { contact, .. }) => {
                assert!(
                    contact.starts_with(&format!("sip:{number}@")),
                    "the dialled number kept: {contact}"
                );
                at = nodes
                    .iter()
                    .position(|n| contact.contains(&n.sip.to_string()))
                    .ok_or_else(|| format!("302 to an unknown node: {contact}"))?;
            }
            Err(e) => return Err(format!("via {}: {e}", node.id)),
        }
    }
    Err("redirected in a loop".into())
}

/// Redials `number` through `via` until a node serves it; the call, its node and how long
/// it took.
async fn redial_until_served(
    nodes: &[&Node],
    via: usize,
    number: &str,
    id: u32,
    dtls: &Arc<DtlsIdentity>,
) -> (SimulatedCall, usize, Duration) {
    let start = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_secs(2), dial(nodes, via, number, id, dtls)).await
        {
            Ok(Ok((call, at))) => return (call, at, start.elapsed()),
            other => {
                if start.elapsed() > Duration::from_secs(30) {
                    let logs: Vec<String> = nodes
                        .iter()
                        .map(|n| format!("--- {} ---\n{}", n.id, n.log()))
                        .collect();
                    panic!(
                        "{number} served again within 30 s: {other:?}\n{}",
                        logs.join("\n"),
                        other = other.map(|r| r.map(|(_, at)| at))
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_one_owner_per_meeting_through_kill_and_pause() {
    let Some(etcd) = Etcd::start() else { return };
    let prefix = format!("/three-{}", std::process::id());
    // n1 takes one meeting; past that it sends new meetings to the least-loaded node.
    let n1 = Node::start("n1", &etcd, &prefix, "37000-37099", "max_meetings = 1\n").await;
    let n2 = Node::start("n2", &etcd, &prefix, "37100-37199", "").await;
    let n3 = Node::start("n3", &etcd, &prefix, "37200-37299", "").await;
    let reporters: Arc<Mutex<Reporters>> = Arc::new(Mutex::new(
        [&n1, &n2, &n3]
            .iter()
            .map(|n| (n.id, n.admin.clone(), n.token.clone()))
            .collect(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample(reporters.clone(), stop.clone());
    let nodes = [&n1, &n2, &n3];
    let dtls = Arc::new(DtlsIdentity::generate().unwrap());

    // One meeting, dialled through each node: all end up on its owner (the first node
    // dialled), the others' calls after a 302, and everyone sees everyone.
    let mut first = Vec::new();
    for (via, id) in [(0, 1), (1, 2), (2, 3)] {
        let (call, at) = dial(&nodes, via, "7000", id, &dtls).await.unwrap();
        assert_eq!(at, 0, "7000 runs on n1, its first node");
        first.push(call);
    }
    assert!(common::until_established(&mut first, 30).await);
    common::run_media(&mut first, 2.0).await;
    for (i, call) in first.iter().enumerate() {
        for other in (1..=3).filter(|&o| o != i as u32 + 1) {
            assert!(
                common::received_from(call, other) > 0,
                "endpoint {} sees {other}",
                i + 1
            );
        }
    }

    // Placement by load: a second meeting through n2 is n2's; a third through n1 (full:
    // max_meetings = 1) goes to the least-loaded node, n3.
    let (second, at) = dial(&nodes, 1, "7001", 4, &dtls).await.unwrap();
    assert_eq!(at, 1, "7001 is n2's own");
    let (third, at) = dial(&nodes, 0, "7002", 5, &dtls).await.unwrap();
    assert_eq!(at, 2, "n1 is full: 7002 goes to the least-loaded node, n3");
    drop((second, third));

    // The owner is killed: its meetings end with it; the endpoints' redial through n2
    // lands on a live node once n1's lease lapses (TTL 3 s), which takes the meeting with
    // a new key.
    n1.signal("-KILL");
    let killed = Instant::now();
    reporters.lock().unwrap().retain(|(id, ..)| *id != "n1");
    drop(first);
    let (a, owner, waited) = redial_until_served(&nodes, 1, "7000", 6, &dtls).await;
    let after_kill = killed.elapsed();
    assert_ne!(owner, 0, "a live node took 7000");
    eprintln!(
        "owner killed -> meeting served again: {after_kill:?} (the redial that got in waited {waited:?}); new owner {}",
        nodes[owner].id
    );
    let via = 3 - owner; // the other live node (1 <-> 2)
    let (b, at) = dial(&nodes, via, "7000", 7, &dtls).await.unwrap();
    assert_eq!(
        at, owner,
        "the second caller is redirected to the new owner"
    );
    let mut paused_calls = vec![a, b];
    assert!(common::until_established(&mut paused_calls, 30).await);
    common::run_media(&mut paused_calls, 1.0).await;
    assert!(
        common::received_from(&paused_calls[1], 6) > 0,
        "the meeting runs"
    );

    // The new owner is paused past its lease: the other node takes the meeting when the
    // lease lapses. Its endpoints keep sending to the paused node meanwhile.
    let paused = nodes[owner];
    paused.signal("-STOP");
    let stopped = Instant::now();
    reporters
        .lock()
        .unwrap()
        .retain(|(id, ..)| *id != paused.id);
    common::run_media(&mut paused_calls, 0.5).await;
    let (c, taker, _) = redial_until_served(&nodes, via, "7000", 8, &dtls).await;
    let after_pause = stopped.elapsed();
    assert_eq!(taker, via, "the live node took 7000");
    eprintln!("owner paused -> meeting served again: {after_pause:?}");
    // More media to the paused node, then what its endpoints got so far.
    common::run_media(&mut paused_calls, 0.5).await;
    let heard_before = common::received_from(&paused_calls[1], 6);
    // Resumed: it finds its lease gone and ends its calls (BYE), and forwards nothing of
    // what queued while it was stopped.
    paused.signal("-CONT");
    reporters
        .lock()
        .unwrap()
        .push((paused.id, paused.admin.clone(), paused.token.clone()));
    for call in &mut paused_calls {
        assert!(
            common::bye_within(call, 10).await,
            "the resumed node ends its calls: {}",
            paused.log()
        );
    }
    // Whatever it forwarded after the resume would be in the endpoints' sockets now.
    common::run_media(&mut paused_calls, 1.0).await;
    assert_eq!(
        common::received_from(&paused_calls[1], 6),
        heard_before,
        "nothing of the old meeting forwarded after the resume"
    );
    assert!(
        paused
            .log()
            .contains("every call gets BYE, another node may own these meetings now"),
        "{}",
        paused.log()
    );
    // The new owner serves on.
    let mut served = vec![c];
    assert!(common::until_established(&mut served, 20).await);
    drop(served);

    stop.store(true, Ordering::Relaxed);
    let (rounds, violations) = sampler.await.unwrap();
    eprintln!("no-two-owners sampler: {rounds} rounds");
    assert!(rounds > 20, "the sampler ran: {rounds} rounds");
    assert!(
        violations.is_empty(),
        "a meeting on two nodes at once: {violations:?}"
    );
}

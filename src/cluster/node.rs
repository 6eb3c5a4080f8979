//! The driver of a node's place in the cluster: one task owns the [`Registry`], renews
//! the lease on the [`LeaseWatch`]'s schedule, answers typed routing requests with the
//! [`placement`](super::placement) rules, and says when the node must give its meetings
//! up ([`NodeEvent::GaveUp`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use switch::udp::LeaseFence;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{info, warn};

use super::config::ClusterSettings;
use super::lease::{LeaseState, LeaseWatch};
use super::placement::{self, NodeRecord, Owner, Refusal, Route};
use super::reconcile::{self, Step};
use super::registry::{Claim, Registry, RegistryError};

/// How long one etcd call may take before the registry counts as unreachable.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the registry is reconciled with what runs here (and at once when etcd
/// answers again after it did not).
const RECONCILE_EVERY: Duration = Duration::from_secs(5);

/// How long a claim won for a call is left alone by reconciliation: call control may not
/// have started its meeting yet.
const RECENT: Duration = Duration::from_secs(10);

/// Where a call goes, and the meeting's fencing token when it is served here under a
/// claim.
#[derive(Debug, Clone)]
pub struct Routed {
    /// The decision.
    pub route: Route,
    /// The claim's token when served here and registered (`None`: served unregistered,
    /// `etcd_down = "local"`).
    pub token: Option<i64>,
    /// With a token: the fence of the lease the claim lives under, for the media worker.
    pub fence: Option<Arc<LeaseFence>>,
}

/// What the node tells call control.
#[derive(Debug, Clone)]
pub enum NodeEvent {
    /// No renewal got through in time: end every meeting now (another node may own them
    /// once the lease lapses).
    GaveUp {
        /// Why, for the log line.
        reason: String,
    },
    /// The node is registered again (a new lease) after giving up.
    Rejoined {
        /// The new lease's fence.
        fence: Arc<LeaseFence>,
    },
    /// etcd answers (`true`) or does not (`false`): readiness says so.
    Reachable(bool),
    /// The live nodes' records, as the registry lists them now (every reconciliation).
    Nodes(Vec<NodeRecord>),
    /// Reconciliation claimed a meeting that ran here without a claim.
    Claimed {
        /// The meeting.
        number: String,
        /// Its fencing token now.
        token: i64,
        /// The lease's fence.
        fence: Arc<LeaseFence>,
    },
    /// A meeting runs here without a claim, and another node holds it: the registered
    /// one is the meeting; this one must end.
    Conflict {
        /// The meeting.
        number: String,
        /// The node that holds it.
        owner: String,
    },
}

/// What runs here: meeting number -> the token it is served under (`None`: unregistered).
pub type Running = BTreeMap<String, Option<i64>>;

enum Request {
    Route {
        number: String,
        runs_here: bool,
        reply: oneshot::Sender<Routed>,
    },
    Release {
        number: String,
        token: i64,
    },
    Publish(NodeRecord, Running),
    Leave(oneshot::Sender<()>),
}

/// A handle on the node's task.
#[derive(Debug, Clone)]
pub struct ClusterNode {
    requests: mpsc::UnboundedSender<Request>,
}

impl ClusterNode {
    /// Joins the cluster (fails when etcd cannot be reached: the switch does not start as
    /// a member it cannot register) and starts the task; events go to `events`. With the
    /// handle comes the lease's fence: past it, nothing of a claimed meeting is served.
    pub async fn start(
        settings: ClusterSettings,
        record: NodeRecord,
        events: mpsc::UnboundedSender<NodeEvent>,
    ) -> Result<(Self, Arc<LeaseFence>), RegistryError> {
        let lease = Lease::join(&settings, &record).await?;
        let fence = lease.fence.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        info!(node = %record.id, lease_ttl = ?settings.lease_ttl, "joined the cluster");
        let task = Task {
            settings,
            record,
            running: Running::new(),
            lease: Some(lease),
            reachable: true,
            recent: HashMap::new(),
            // At once: the admin API lists the nodes from the start.
            next_reconcile: Instant::now(),
            events,
        };
        tokio::spawn(task.run(rx));
        Ok((Self { requests: tx }, fence))
    }

    /// Where a call for meeting `number` goes (`runs_here`: this node runs it already).
    pub async fn route(&self, number: &str, runs_here: bool) -> Routed {
        let (reply, answer) = oneshot::channel();
        let _ = self.requests.send(Request::Route {
            number: number.to_owned(),
            runs_here,
            reply,
        });
        answer.await.unwrap_or(Routed {
            route: Route::Refuse(Refusal::RegistryUnreachable),
            token: None,
            fence: None,
        })
    }

    /// The meeting ended: its claim goes (only if still held under `token`).
    pub fn release(&self, number: &str, token: i64) {
        let _ = self.requests.send(Request::Release {
            number: number.to_owned(),
            token,
        });
    }

    /// This node's load changed, or what runs here: `running` is what reconciliation
    /// brings the registry back to.
    pub fn publish(&self, record: NodeRecord, running: Running) {
        let _ = self.requests.send(Request::Publish(record, running));
    }

    /// Leaves the cluster now: the lease is revoked, and with it this node's record and
    /// its meetings' claims (else they would wait for the lease to lapse). Returns when
    /// etcd answered or could not be reached.
    pub async fn leave(&self) {
        let (done, left) = oneshot::channel();
        if self.requests.send(Request::Leave(done)).is_ok() {
            let _ = left.await;
        }
    }
}

/// The node's membership: the registry under one lease, the lease's watch and its fence.
struct Lease {
    registry: Registry,
    watch: LeaseWatch,
    fence: Arc<LeaseFence>,
}

impl Lease {
    async fn join(settings: &ClusterSettings, record: &NodeRecord) -> Result<Self, RegistryError> {
        let sent_at = Instant::now();
        let registry = Registry::join(
            &settings.etcd,
            settings.tls.as_ref(),
            &settings.prefix,
            record,
            settings.lease_ttl,
            CALL_TIMEOUT,
        )
        .await?;
        let watch = LeaseWatch::new(registry.ttl(), sent_at.into_std());
        let fence = Arc::new(LeaseFence::new(sent_at.into_std(), watch.deadline()));
        Ok(Self {
            registry,
            watch,
            fence,
        })
    }
}

struct Task {
    settings: ClusterSettings,
    /// This node's latest record (also what a rejoin publishes).
    record: NodeRecord,
    /// What call control last said runs here.
    running: Running,
    /// `None` after giving up, until the node joins again.
    lease: Option<Lease>,
    reachable: bool,
    /// Claims won for calls lately, and when.
    recent: HashMap<String, Instant>,
    next_reconcile: Instant,
    events: mpsc::UnboundedSender<NodeEvent>,
}

impl Task {
    async fn run(mut self, mut requests: mpsc::UnboundedReceiver<Request>) {
        loop {
            let now = Instant::now();
            let wake = match &self.lease {
                Some(l) => {
                    Instant::from_std(l.watch.next_wake(now.into_std())).min(self.next_reconcile)
                }
                // Given up: try to join again every second.
                None => now + Duration::from_secs(1),
            };
            tokio::select! {
                request = requests.recv() => match request {
                    None => {
                        if let Some(l) = self.lease.take() {
                            let _ = tokio::time::timeout(CALL_TIMEOUT, l.registry.leave()).await;
                        }
                        return;
                    }
                    Some(Request::Leave(done)) => {
                        if let Some(l) = self.lease.take() {
                            let _ = tokio::time::timeout(CALL_TIMEOUT, l.registry.leave()).await;
                            info!(node = %self.record.id, "left the cluster");
                        }
                        let _ = done.send(());
                        return;
                    }
                    Some(request) => self.handle(request).await,
                },
                () = tokio::time::sleep_until(wake) => self.tick().await,
            }
        }
    }

    /// Renews, gives up, joins again or reconciles, as time says.
    async fn tick(&mut self) {
        let Some(l) = self.lease.as_mut() else {
            if let Ok(l) = Lease::join(&self.settings, &self.record).await {
                let fence = l.fence.clone();
                self.lease = Some(l);
                info!(node = %self.record.id, "rejoined the cluster with a new lease");
                let _ = self.events.send(NodeEvent::Rejoined { fence });
                self.set_reachable(true);
                self.reconcile().await;
            }
            return;
        };
        match l.watch.poll(Instant::now().into_std()) {
            LeaseState::Healthy => {}
            LeaseState::Renew => {
                let sent_at = Instant::now();
                match tokio::time::timeout(CALL_TIMEOUT, l.registry.renew()).await {
                    Ok(Ok(ttl)) => {
                        l.watch
                            .renewed(sent_at.into_std(), std::time::Instant::now(), ttl);
                        if l.watch.given_up() {
                            return self
                                .give_up("the lease's renewal came back after its deadline");
                        }
                        l.fence.hold_until(l.watch.deadline());
                        self.set_reachable(true);
                    }
                    Ok(Err(RegistryError::LeaseLost)) => {
                        return self.give_up("etcd says the lease is gone");
                    }
                    Ok(Err(e)) => {
                        warn!("cluster: lease renewal failed: {e}");
                        self.set_reachable(false);
                    }
                    Err(_) => {
                        warn!("cluster: lease renewal timed out");
                        self.set_reachable(false);
                    }
                }
            }
            LeaseState::GiveUp => {
                return self.give_up("no lease renewal got through in time");
            }
        }
        if Instant::now() >= self.next_reconcile {
            self.reconcile().await;
        }
    }

    /// Gives the meetings up: the lease's deadline passed (the fence with it), or etcd
    /// says the lease is gone. The lease is revoked if etcd can still be told, so that
    /// the meetings are free at once rather than when it lapses.
    fn give_up(&mut self, why: &str) {
        warn!("cluster: {why}: ending every meeting before another node may own them");
        if let Some(l) = self.lease.take() {
            tokio::spawn(async move {
                let _ = tokio::time::timeout(CALL_TIMEOUT, l.registry.leave()).await;
            });
        }
        let _ = self.events.send(NodeEvent::GaveUp {
            reason: why.to_owned(),
        });
    }

    /// Tells call control when etcd starts or stops answering; once it answers again the
    /// registry is reconciled at the next wake-up.
    fn set_reachable(&mut self, reachable: bool) {
        if reachable == self.reachable {
            return;
        }
        self.reachable = reachable;
        if reachable {
            info!("cluster: etcd answers again; reconciling the registry with what runs here");
            self.next_reconcile = Instant::now();
        } else {
            warn!("cluster: etcd does not answer; running meetings go on");
        }
        let _ = self.events.send(NodeEvent::Reachable(reachable));
    }

    /// Brings the registry back to what runs here ([`reconcile::plan`]).
    async fn reconcile(&mut self) {
        self.next_reconcile = Instant::now() + RECONCILE_EVERY;
        let Some(l) = self.lease.as_mut() else {
            return;
        };
        self.recent.retain(|_, won| won.elapsed() < RECENT);
        let claims = match tokio::time::timeout(CALL_TIMEOUT, l.registry.claims()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                warn!("cluster: reading this node's claims failed: {e}");
                return self.set_reachable(false);
            }
            Err(_) => return self.set_reachable(false),
        };
        if let Ok(Ok(nodes)) = tokio::time::timeout(CALL_TIMEOUT, l.registry.nodes()).await {
            let _ = self.events.send(NodeEvent::Nodes(nodes));
        }
        let recent: BTreeSet<String> = self.recent.keys().cloned().collect();
        for step in reconcile::plan(&self.running, &claims, &recent) {
            match step {
                Step::Release { number, token } => {
                    info!(
                        ?number,
                        "cluster: released the claim of a meeting that does not run here"
                    );
                    let _ = tokio::time::timeout(CALL_TIMEOUT, l.registry.release(&number, token))
                        .await;
                }
                Step::Claim { number } => {
                    let claimed =
                        tokio::time::timeout(CALL_TIMEOUT, l.registry.claim(&number)).await;
                    let event = match claimed {
                        Ok(Ok(Claim::Won { token })) => NodeEvent::Claimed {
                            number: number.clone(),
                            token,
                            fence: l.fence.clone(),
                        },
                        Ok(Ok(Claim::Held { node, token })) if node == self.record.id => {
                            NodeEvent::Claimed {
                                number: number.clone(),
                                token,
                                fence: l.fence.clone(),
                            }
                        }
                        Ok(Ok(Claim::Held { node, .. })) => NodeEvent::Conflict {
                            number: number.clone(),
                            owner: node,
                        },
                        _ => continue,
                    };
                    if let NodeEvent::Claimed { token, .. } = &event {
                        info!(
                            ?number,
                            token, "cluster: claimed a meeting that ran here unregistered"
                        );
                        self.running.insert(number, Some(*token));
                    }
                    let _ = self.events.send(event);
                }
            }
        }
    }

    async fn handle(&mut self, request: Request) {
        match request {
            Request::Route {
                number,
                runs_here,
                reply,
            } => {
                let routed = self.route(&number, runs_here).await;
                if routed.route == (Route::Serve { claim: true }) && routed.token.is_some() {
                    self.recent.insert(number, Instant::now());
                }
                let _ = reply.send(routed);
            }
            Request::Release { number, token } => {
                self.running.remove(&number);
                // Beside the task too; safe in any order: it deletes only under `token`.
                if let Some(l) = self.lease.as_ref() {
                    let mut registry = l.registry.clone();
                    tokio::spawn(async move {
                        let _ =
                            tokio::time::timeout(CALL_TIMEOUT, registry.release(&number, token))
                                .await;
                    });
                }
            }
            Request::Publish(record, running) => {
                let changed = record != self.record;
                self.record = record;
                self.running = running;
                // Beside the task, not in it: a write etcd is slow to make durable must not
                // hold up the next renewal (the lease's deadline does not wait).
                if let Some(l) = self.lease.as_ref().filter(|_| changed) {
                    let (mut registry, record) = (l.registry.clone(), self.record.clone());
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(CALL_TIMEOUT, registry.publish(&record)).await;
                    });
                }
            }
            // Handled by the loop (it ends it).
            Request::Leave(_) => {}
        }
    }

    async fn route(&mut self, number: &str, runs_here: bool) -> Routed {
        let (settings, me) = (&self.settings, &self.record);
        let decide = |owner: Option<&Owner>, nodes: &[NodeRecord]| {
            placement::route(
                me,
                runs_here,
                owner,
                nodes,
                settings.limits,
                settings.etcd_down,
            )
        };
        let unregistered = |route| Routed {
            route,
            token: None,
            fence: None,
        };
        let Some(l) = self.lease.as_mut() else {
            return unregistered(decide(None, &[]));
        };
        let r = &mut l.registry;
        let lookup = async {
            let owner = r.owner(number).await?;
            let nodes = r.nodes().await?;
            Ok::<_, RegistryError>((owner, nodes))
        };
        let Ok(Ok((owner, nodes))) = tokio::time::timeout(CALL_TIMEOUT, lookup).await else {
            let routed = unregistered(decide(None, &[]));
            self.set_reachable(false);
            return routed;
        };
        let registered = |route, token| Routed {
            route,
            token: Some(token),
            fence: Some(l.fence.clone()),
        };
        let routed = match decide(Some(&owner), &nodes) {
            Route::Serve { claim: true } => {
                match tokio::time::timeout(CALL_TIMEOUT, l.registry.claim(number)).await {
                    Ok(Ok(Claim::Won { token })) => registered(Route::Serve { claim: true }, token),
                    Ok(Ok(Claim::Held { node, token })) if node == me.id => {
                        registered(Route::Serve { claim: false }, token)
                    }
                    // Lost the race: the winner serves it.
                    Ok(Ok(Claim::Held { node, token })) => {
                        let owner = Owner::Elsewhere { node, token };
                        unregistered(decide(Some(&owner), &nodes))
                    }
                    _ => unregistered(decide(None, &nodes)),
                }
            }
            route => match owner {
                Owner::Here { token } => registered(route, token),
                _ => unregistered(route),
            },
        };
        self.set_reachable(true);
        routed
    }
}

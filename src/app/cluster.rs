//! The driver's side of the cluster (issue 21): a call for a meeting not running here
//! asks the node's task where it goes ([`ClusterNode::route`], off the loop), and the
//! answer comes back as a [`RoutedCall`]: served here (claimed, under its fencing token),
//! redirected with 302 to the owner, or refused with 503. A node that gave up its lease
//! ends every call. Without `[cluster]` none of this runs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::counter;
use sip::ua::CallHandle;
use switch::udp::{Command as WorkerCommand, LeaseFence};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tracing::{info, warn};

use super::{App, AppError, Invite};
use crate::admin::view::{ClusterView, HeldMeeting};
use crate::cluster::config::ClusterSettings;
use crate::cluster::node::{ClusterNode, NodeEvent, Routed, Running};
use crate::cluster::placement::{EtcdDown, NodeRecord, Refusal as PlacementRefusal, Route};
use crate::control::Refusal;
use crate::ops::cdr::CallEnd;

/// A call waiting for the cluster's answer, and the answer.
pub(super) struct RoutedCall {
    invite: Invite,
    routed: Routed,
}

/// The node, its events, the answers on their way, and the tokens of the meetings held.
pub(super) struct ClusterSide {
    node: ClusterNode,
    record: NodeRecord,
    events: UnboundedReceiver<NodeEvent>,
    answers: UnboundedSender<RoutedCall>,
    routed: UnboundedReceiver<RoutedCall>,
    /// Meeting number -> its fencing token (meetings served unregistered have none).
    tokens: HashMap<String, i64>,
    /// What a new meeting gets while etcd is unreachable (for readiness).
    etcd_down: EtcdDown,
    /// Whether etcd answers.
    reachable: bool,
    /// Whether the node holds a lease (false after giving up, until it joins again).
    registered: bool,
    /// The current lease's fence: call control checks it too, so that a node resumed
    /// past its lease serves and reports nothing of its old meetings.
    fence: Arc<LeaseFence>,
    /// The load is published this often (CPU changes without a meeting starting).
    publish_every: tokio::time::Interval,
    /// The media workers' busy time at the last publication, and when.
    busy_at: (Instant, u64),
    /// The nodes as the registry last listed them (for the admin API).
    nodes: Vec<NodeRecord>,
    lease_ttl: Duration,
}

/// How often the load is published.
const PUBLISH_EVERY: Duration = Duration::from_secs(2);

impl ClusterSide {
    /// Joins the cluster: the switch does not start as a member it cannot register.
    /// `sip_tls`: the SIP/TLS listener's bound address (the default redirect target).
    pub(super) async fn start(
        settings: &ClusterSettings,
        sip_tls: Option<std::net::SocketAddr>,
        admin: String,
    ) -> Result<Self, AppError> {
        let sip_uri = match (&settings.sip_uri, sip_tls) {
            (Some(u), _) => u.clone(),
            (None, Some(a)) => format!("sip:{a};transport=tls"),
            (None, None) => {
                return Err(AppError::Cluster(
                    "no SIP/TLS listener to redirect calls to: set cluster.sip_uri".into(),
                ));
            }
        };
        let record = NodeRecord {
            id: settings.node_id.clone(),
            sip_uri,
            admin,
            meetings: 0,
            segments: 0,
            cpu: 0.0,
            draining: false,
        };
        let (events_tx, events) = unbounded_channel();
        let (node, fence) = ClusterNode::start(settings.clone(), record.clone(), events_tx)
            .await
            .map_err(|e| AppError::Cluster(e.to_string()))?;
        let (answers, routed) = unbounded_channel();
        Ok(Self {
            node,
            record,
            events,
            answers,
            routed,
            tokens: HashMap::new(),
            etcd_down: settings.etcd_down,
            reachable: true,
            registered: true,
            fence,
            publish_every: tokio::time::interval_at(
                tokio::time::Instant::now() + PUBLISH_EVERY,
                PUBLISH_EVERY,
            ),
            busy_at: (Instant::now(), 0),
            nodes: Vec::new(),
            lease_ttl: settings.lease_ttl,
        })
    }
}

/// What the cluster side has for the loop.
pub(super) enum ClusterInput {
    /// The answer for a waiting call.
    Routed(Box<RoutedCall>),
    /// The node's task said something.
    Event(NodeEvent),
    /// Time to publish the load.
    Publish,
}

impl ClusterSide {
    /// The next answer or event.
    pub(super) async fn next(&mut self) -> Option<ClusterInput> {
        tokio::select! {
            Some(r) = self.routed.recv() => Some(ClusterInput::Routed(Box::new(r))),
            Some(e) = self.events.recv() => Some(ClusterInput::Event(e)),
            _ = self.publish_every.tick() => Some(ClusterInput::Publish),
            else => None,
        }
    }
}

impl ClusterSide {
    /// Leaves the cluster (the switch stops): waits, briefly, for the lease's revocation.
    pub(super) async fn leave(self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.node.leave()).await;
    }
}

/// `sip:USER@HOST...` from a node's `sip:HOST...`: the redirected call keeps its number.
fn contact_for(sip_uri: &str, number: &str) -> String {
    let (scheme, rest) = sip_uri.split_once(':').unwrap_or(("sip", sip_uri));
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}:{number}@{host}")
}

impl App {
    /// Whether an INVITE for `number` is routed by the cluster first: there is one, and
    /// the meeting does not run here.
    pub(super) fn routes_in_cluster(&self, number: &str) -> bool {
        self.cluster.is_some() && !self.meetings.contains_key(number)
    }

    /// Asks the cluster where an INVITE goes, off the loop; the answer comes back as a
    /// [`RoutedCall`].
    pub(super) fn route_in_cluster(&mut self, invite: Invite) {
        let Some(c) = &self.cluster else {
            return;
        };
        let (node, answers) = (c.node.clone(), c.answers.clone());
        tokio::spawn(async move {
            let routed = node.route(&invite.number, false).await;
            let _ = answers.send(RoutedCall { invite, routed });
        });
    }

    /// The cluster's answer for a waiting call.
    pub(super) fn routed(&mut self, r: RoutedCall) {
        let RoutedCall { invite, routed } = r;
        let lapsed = routed
            .fence
            .as_ref()
            .is_some_and(|f| f.expired(Instant::now()));
        match routed.route {
            // Claimed under a lease that lapsed before the answer came: not served.
            Route::Serve { .. } if lapsed => {
                self.refuse_invite(
                    &invite,
                    &Refusal::ClusterUnavailable("the lease lapsed while the call was routed"),
                );
            }
            Route::Serve { .. } => {
                let number = invite.number.clone();
                self.incoming_here(invite);
                if let (Some(token), Some(fence)) = (routed.token, routed.fence) {
                    self.registered_here(&number, token, fence);
                }
            }
            Route::Redirect { node, sip_uri } => {
                let Invite {
                    call,
                    number,
                    call_id,
                    via,
                    ..
                } = invite;
                let contact = contact_for(&sip_uri, &number);
                info!(?call_id, ?number, owner = %node, %contact, "call redirected to the meeting's node (302)");
                counter!("mswitch_cluster_redirects_total").increment(1);
                self.record_refusal(
                    &call_id,
                    &number,
                    302,
                    format!("redirected to {node}"),
                    (Some(via.from_uri), Some(via.to_uri)),
                );
                self.trunk.redirect(call, contact);
            }
            Route::Refuse(why) => {
                let reason = match why {
                    PlacementRefusal::RegistryUnreachable => "etcd is unreachable",
                    PlacementRefusal::OwnerGone => "the meeting's node is leaving",
                    PlacementRefusal::NoCapacity => "no node can take a new meeting",
                };
                self.refuse_invite(&invite, &Refusal::ClusterUnavailable(reason));
            }
        }
    }

    /// A meeting claimed under `token`: its media follows the lease's `fence`. A claim
    /// for a meeting that did not start (its call was refused) is given back.
    fn registered_here(&mut self, number: &str, token: i64, fence: Arc<LeaseFence>) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        match self.meetings.get(number) {
            Some(m) => {
                c.tokens.insert(number.to_owned(), token);
                self.pool.send(m.id, WorkerCommand::Fence(m.id, fence));
            }
            None => c.node.release(number, token),
        }
    }

    /// Ends every call: the node lost its lease, or its lease's deadline passed before
    /// the node's task could say so (the switch was paused). Once per lease.
    fn give_up_meetings(&mut self, reason: &str) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if !c.registered {
            return;
        }
        c.registered = false;
        c.tokens.clear();
        warn!(
            calls = self.calls.len(),
            "cluster: {reason}: every call gets BYE, another node may own these meetings now"
        );
        counter!("mswitch_cluster_give_ups_total").increment(1);
        let calls: Vec<CallHandle> = self.calls.keys().copied().collect();
        for call in calls {
            self.hang_up(call, CallEnd::Switch("cluster lease lost".into()));
        }
    }

    /// Call control's own check of the lease, before it acts on anything: a switch
    /// resumed past its lease's deadline ends its meetings before it serves a call or
    /// answers the admin API, whichever of its inputs comes first.
    pub(super) fn enforce_cluster_lease(&mut self) {
        let lapsed = self
            .cluster
            .as_ref()
            .is_some_and(|c| c.registered && c.fence.expired(Instant::now()));
        if lapsed {
            self.give_up_meetings("the lease's deadline passed (the switch was paused or starved)");
        }
    }

    /// The node's task says something.
    pub(super) fn cluster_event(&mut self, e: NodeEvent) {
        match e {
            NodeEvent::GaveUp { reason } => self.give_up_meetings(&reason),
            NodeEvent::Rejoined { fence } => {
                info!("cluster: registered again; new meetings are taken");
                if let Some(c) = self.cluster.as_mut() {
                    c.registered = true;
                    c.fence = fence;
                }
            }
            NodeEvent::Nodes(nodes) => {
                if let Some(c) = self.cluster.as_mut() {
                    c.nodes = nodes;
                }
            }
            NodeEvent::Reachable(reachable) => {
                if let Some(c) = self.cluster.as_mut() {
                    c.reachable = reachable;
                }
            }
            NodeEvent::Claimed {
                number,
                token,
                fence,
            } => self.registered_here(&number, token, fence),
            NodeEvent::Conflict { number, owner } => {
                warn!(
                    ?number,
                    %owner,
                    "cluster: meeting served here while etcd was unreachable is registered to another node: ending it here (its calls' redial reaches the owner)"
                );
                counter!("mswitch_cluster_conflicts_total").increment(1);
                for call in self.calls_in(&number) {
                    self.hang_up(
                        call,
                        CallEnd::Switch(format!("meeting registered to node {owner}")),
                    );
                }
            }
        }
    }

    /// Why new calls should not come here, and what they get, as readiness says it:
    /// (reasons not to send calls, notes).
    pub(super) fn cluster_readiness(&self) -> (Vec<String>, Vec<String>) {
        let (mut reasons, mut notes) = (Vec::new(), Vec::new());
        let Some(c) = &self.cluster else {
            return (reasons, notes);
        };
        let registered = c.registered && c.reachable;
        let unregistered = match c.etcd_down {
            EtcdDown::Refuse => &mut reasons,
            EtcdDown::Local => &mut notes,
        };
        if !c.registered {
            unregistered.push(format!(
                "not registered in the cluster (lease lost): rejoining; new meetings are {}",
                c.etcd_down.what_new_meetings_get()
            ));
        } else if !registered {
            unregistered.push(format!(
                "etcd is unreachable: running meetings go on, new meetings are {}",
                c.etcd_down.what_new_meetings_get()
            ));
        }
        (reasons, notes)
    }

    /// A meeting ended here: its claim goes, and the load is published.
    pub(super) fn cluster_meeting_ended(&mut self, number: &str) {
        if let Some(c) = self.cluster.as_mut()
            && let Some(token) = c.tokens.remove(number)
        {
            c.node.release(number, token);
        }
        self.cluster_publish();
    }

    /// Publishes this node's load (meetings, segments, CPU, draining) and what runs here.
    pub(super) fn cluster_publish(&mut self) {
        let meetings = self.meetings.len() as u32;
        // Segments: each call's screens (1 or 3, from its SDP).
        let segments = self
            .calls
            .values()
            .filter(|c| self.meetings.contains_key(&c.number))
            .map(|c| {
                c.remote_sdp
                    .as_ref()
                    .map_or(1, |d| u32::from(crate::control::lines::screens(d)))
            })
            .sum();
        let busy_ns: u64 = self
            .worker_stats()
            .iter()
            .map(|w| w.busy_ns.load(std::sync::atomic::Ordering::Relaxed))
            .sum();
        let workers = self.worker_stats().len().max(1) as f64;
        let draining = self.ops.drain.is_some();
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        // CPU: the workers' busy share since the last publication, averaged over them.
        let (then, busy_then) = c.busy_at;
        let elapsed = then.elapsed().as_nanos() as f64;
        if elapsed >= 1e9 {
            let share = busy_ns.saturating_sub(busy_then) as f64 / elapsed / workers;
            // In steps of 0.05: an unchanged record is not written again.
            c.record.cpu = ((share.clamp(0.0, 1.0) * 20.0).round() / 20.0) as f32;
            c.busy_at = (Instant::now(), busy_ns);
        }
        c.record.meetings = meetings;
        c.record.segments = segments;
        c.record.draining = draining;
        let running: Running = self
            .meetings
            .keys()
            .map(|n| (n.clone(), c.tokens.get(n).copied()))
            .collect();
        c.node.publish(c.record.clone(), running);
    }

    /// The cluster as this node sees it (`GET /api/v1/system`); `None` alone.
    pub(super) fn cluster_view(&self) -> Option<ClusterView> {
        let c = self.cluster.as_ref()?;
        let mut held: Vec<HeldMeeting> = c
            .tokens
            .iter()
            .map(|(number, &token)| HeldMeeting {
                number: number.clone(),
                token,
            })
            .collect();
        held.sort_by(|a, b| a.number.cmp(&b.number));
        Some(ClusterView {
            node_id: c.record.id.clone(),
            sip_uri: c.record.sip_uri.clone(),
            registered: c.registered,
            etcd_reachable: c.reachable,
            etcd_down: c.etcd_down.name(),
            lease_ttl_s: c.lease_ttl.as_secs(),
            cpu: c.record.cpu,
            held,
            nodes: c.nodes.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::contact_for;

    #[test]
    fn the_redirect_keeps_the_dialled_number() {
        assert_eq!(
            contact_for("sip:10.0.0.2:5061;transport=tls", "7000"),
            "sip:7000@10.0.0.2:5061;transport=tls"
        );
        assert_eq!(contact_for("sips:b.example", "7000"), "sips:7000@b.example");
        assert_eq!(contact_for("sip:x@b.example", "7000"), "sip:7000@b.example");
    }
}

//! Call control's driver: the SIP trunk's calls become participants of meetings on the
//! media workers. Every decision is made by the sans-IO core, [`crate::control`]; this
//! file and [`media`] do what it decides against the trunk, the worker pool and the
//! port allocator, and talk to meetings only through typed [`MeetingCommand`]s.
//!
//! INVITE -> meeting by Request-URI user part -> Device Security mode and meeting policy
//! -> media ports and keying -> SDP answer -> the participant joins on its worker. A
//! delayed offer gets our offer in the 200 and joins when the ACK brings the answer.
//! BYE, CANCEL, timeouts, DTLS failure, TIP or SPIMAP timeout -> the participant leaves,
//! its ports are released, the dialog ends (BYE when we end it). A meeting ends with its
//! last participant.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ekt::kek::EktCipher;
use ekt::{ParameterSet, Spi, SrtpProfile};
use sip::driver::{Trunk, TrunkConfig};
use sip::sdp::Description;
use sip::ua::{AgentConfig, AgentEvent, CallHandle};
use switch::dtls::DtlsIdentity;
use switch::meeting::switching::{Mode, SwitchingConfig};
use switch::meeting::{LegId, Meeting, MeetingCommand, MeetingEvent, ParticipantId};
use switch::ports::PortAllocator;
use switch::tip::negotiation::{GroupParams, Media};
use switch::udp::{Command, MeetingId, WorkerPool};
use tracing::{info, warn};

use crate::admin::request::AdminRequest;
use crate::config::Settings;
use crate::control::{
    self, CallRules, Incoming, IncomingDecision, MediaPlan, MeetingChange, MeetingView, Refusal,
    SeedLine, SetupFailure, session,
};
use crate::join::{self, LineSockets};
use crate::ops::cdr::{CallEnd, CallLog};
use crate::policy::{ConferenceSecurity, Policy};
use metrics::counter;
use sip::ua::EndReason;
use switch::meeting::LineFailure;
use switch::tip::negotiation::Failure as TipFailure;

mod admin;
mod call;
mod certs;
mod cluster;
mod media;
mod ops;
mod reoffer;
mod start;

use call::CallState;
use reoffer::PendingDowngrade;

pub use ops::Stop;

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// TLS material (the message of a key mismatch is the seed's line).
    #[error(transparent)]
    Certs(#[from] crate::certs::CertError),
    /// A listener or worker could not start.
    #[error("start: {0}")]
    Io(#[from] std::io::Error),
    /// `[cluster]` is configured and the node could not join (etcd unreachable).
    #[error("cluster: {0}")]
    Cluster(String),
}

/// A line's sockets, the peer's RTP address and its RTCP address.
type PreparedSockets = (LineSockets, SocketAddr, SocketAddr);

struct MeetingState {
    id: MeetingId,
    security: ConferenceSecurity,
    /// Whether its media plane runs SRTP with EKT (decided by its first admission).
    secure: Option<bool>,
    groups: [GroupParams; 2],
    participants: Vec<ParticipantId>,
    /// An operator locked it: no one new joins.
    locked: bool,
    /// Its switching mode as last set.
    mode: Mode,
    /// Why its security is what it is (its start, or the downgrade that changed it).
    security_reason: Option<String>,
}

/// Where an INVITE came from, as the trunk saw it.
struct Via {
    over_tls: bool,
    user_agent: Option<String>,
    peer: usize,
    from_uri: String,
    to_uri: String,
}

/// An INVITE as the driver holds it while it is decided (in a cluster, while it is
/// routed).
struct Invite {
    call: CallHandle,
    /// The Request-URI's user: the meeting number.
    number: String,
    call_id: String,
    offer: Option<Description>,
    via: Via,
}

/// The running switch.
pub struct App {
    settings: Settings,
    trunk: Trunk,
    pool: WorkerPool,
    events: tokio::sync::mpsc::UnboundedReceiver<(MeetingId, MeetingEvent)>,
    ports: PortAllocator,
    identity: Arc<DtlsIdentity>,
    media_ip: IpAddr,
    /// The SDES names of the configured suites, strongest first.
    sdes_suites: Vec<&'static str>,
    meetings: HashMap<String, MeetingState>,
    calls: HashMap<CallHandle, CallState>,
    next_meeting: MeetingId,
    next_participant: ParticipantId,
    next_leg: LegId,
    /// The admin API's side.
    admin: AdminSide,
    /// Drain and call records.
    ops: OpsSide,
    /// What the TLS policies are made of (configuration and certificate store).
    tls: crate::certs::TlsSources,
    /// The certificates' expiry warnings already given.
    expiry: crate::certs::expiry::ExpiryWatch,
    /// This node's place in a cluster (`[cluster]`; `None`: it runs alone).
    cluster: Option<cluster::ClusterSide>,
}

/// The drain and the call records.
struct OpsSide {
    drain: Option<ops::Drain>,
    calls: CallLog,
    notifier: crate::ops::webhooks::Notifier,
}

/// What the driver keeps for the admin API.
struct AdminSide {
    /// Its requests (`None`: the API is off).
    requests: Option<tokio::sync::mpsc::Receiver<AdminRequest>>,
    /// Its listeners.
    server: Option<crate::admin::http::AdminServer>,
    /// The plain metrics and health listener.
    metrics: Option<SocketAddr>,
    started: std::time::Instant,
    /// Each meeting's latest report.
    reports: HashMap<MeetingId, switch::meeting::report::MeetingReport>,
    /// Trunk peers' states and keep-alives.
    peers: Vec<admin::PeerRecord>,
    /// The certificates shown: (unit, DER).
    certificates: Vec<(String, Vec<u8>)>,
    /// Numbers of the configuration file's meetings (the API does not change them).
    file_meetings: Vec<String>,
    /// The meetings configured through the API.
    api_meetings: Vec<(String, Policy, Mode)>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("meetings", &self.meetings.len())
            .field("calls", &self.calls.len())
            .finish_non_exhaustive()
    }
}

/// How often the meetings report their counters to the admin API.
const REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl App {
    /// Where SIP listens.
    pub fn sip_addr(&self, t: sip::ua::Transport) -> Option<SocketAddr> {
        self.trunk.local_addr(t)
    }

    /// Where the admin API listens (HTTPS), when it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.server.as_ref().map(|s| s.https)
    }

    /// Where `/metrics`, `/healthz` and `/readyz` listen in plain HTTP, when on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.admin.metrics
    }

    /// Where the admin API's plain-HTTP redirect listens, when it is on.
    pub fn admin_redirect_addr(&self) -> Option<SocketAddr> {
        self.admin.server.as_ref().and_then(|s| s.http_redirect)
    }

    /// Calls in progress.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// The media workers' counters, readable while the switch runs.
    pub fn worker_stats(&self) -> Vec<Arc<switch::udp::WorkerStats>> {
        self.pool
            .workers()
            .iter()
            .map(|w| w.shared_stats())
            .collect()
    }

    /// Runs until `shutdown` resolves, then ends every call with BYE.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        self.run_inner(shutdown, None).await;
    }

    /// Runs until a [`Stop`]: [`Stop::Drain`] takes no new call and ends when the last
    /// call ends or at the drain deadline (BYE to the rest); [`Stop::Now`], or a second
    /// `Drain`, ends every call at once.
    pub async fn run_until(self, stops: tokio::sync::mpsc::UnboundedReceiver<Stop>) {
        self.run_inner(std::future::pending(), Some(stops)).await;
    }

    async fn run_inner(
        mut self,
        shutdown: impl Future<Output = ()>,
        mut stops: Option<tokio::sync::mpsc::UnboundedReceiver<Stop>>,
    ) {
        tokio::pin!(shutdown);
        let mut reports = tokio::time::interval(REPORT_INTERVAL);
        // The expiry watch: its first tick is now (at start), then daily.
        let mut expiry_checks = tokio::time::interval(certs::EXPIRY_CHECK_INTERVAL);
        reports.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut requests = self.admin.requests.take();
        let mut drained = false;
        loop {
            if self.ops.drain.is_some() && self.calls.is_empty() {
                info!("drained: every call has ended");
                break;
            }
            let deadline = self.ops.drain.as_ref().map(|d| d.deadline);
            tokio::select! {
                () = &mut shutdown => break,
                Some(stop) = async {
                    match stops.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => match stop {
                    Stop::Drain if self.ops.drain.is_none() => {
                        self.start_drain("SIGTERM");
                    }
                    Stop::Reload(settings) => self.reload_certificates(*settings),
                    Stop::Drain | Stop::Now => {
                        info!("stopping now: every call gets BYE");
                        break;
                    }
                },
                () = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                } => {
                    info!(calls = self.calls.len(), "drain deadline: every call left gets BYE");
                    drained = true;
                    break;
                }
                e = self.trunk.next_event() => match e {
                    Some(e) => {
                        self.enforce_cluster_lease();
                        self.sip_event(e);
                    }
                    None => break,
                },
                Some((meeting, e)) = self.events.recv() => {
                    self.enforce_cluster_lease();
                    self.meeting_event(meeting, e);
                }
                Some(input) = async {
                    match self.cluster.as_mut() {
                        Some(c) => c.next().await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.enforce_cluster_lease();
                    match input {
                        cluster::ClusterInput::Routed(r) => self.routed(*r),
                        cluster::ClusterInput::Event(e) => self.cluster_event(e),
                        cluster::ClusterInput::Publish => self.cluster_publish(),
                    }
                }
                Some(r) = async {
                    match requests.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.enforce_cluster_lease();
                    self.admin_request(r).await;
                }
                _ = reports.tick(), if requests.is_some() => self.request_reports(),
                _ = expiry_checks.tick() => self.check_expiry(),
            }
        }
        if let Some(s) = &self.admin.server {
            s.stop();
        }
        let calls: Vec<CallHandle> = self.calls.keys().copied().collect();
        info!(calls = calls.len(), "shutting down: every call gets BYE");
        let total = |f: fn(&switch::udp::WorkerStats) -> u64| {
            self.worker_stats().iter().map(|w| f(w)).sum::<u64>()
        };
        use std::sync::atomic::Ordering::Relaxed;
        info!(
            packets_in = total(|w| w.packets_in.load(Relaxed)),
            packets_out = total(|w| w.packets_out.load(Relaxed)),
            send_dropped = total(|w| w.send_dropped.load(Relaxed)),
            socket_errors = total(|w| w.socket_errors.load(Relaxed)),
            foreign_source = total(|w| w.foreign_source.load(Relaxed)),
            recv_calls = total(|w| w.recv_calls.load(Relaxed)),
            send_calls = total(|w| w.send_calls.load(Relaxed)),
            wakeups = total(|w| w.wakeups.load(Relaxed)),
            "media totals"
        );
        let why = if drained {
            CallEnd::Drained
        } else {
            CallEnd::Shutdown
        };
        for c in calls {
            self.hang_up(c, why.clone());
        }
        // Give the BYEs a moment on the wire.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        // Out of the cluster at once: the lease is revoked, the meetings' claims with it.
        if let Some(c) = self.cluster.take() {
            c.leave().await;
        }
    }

    async fn admin_request(&mut self, r: AdminRequest) {
        match r {
            AdminRequest::Status(reply) => {
                if reply.send(self.status_view()).is_err() {
                    admin::reply_lost("status");
                }
            }
            AdminRequest::Act(action, reply) => {
                let done = self.admin_action(action).await;
                if reply.send(done).is_err() {
                    admin::reply_lost("action");
                }
            }
            AdminRequest::Metrics(reply) => {
                self.collect_metrics();
                let _ = reply.send(());
            }
            AdminRequest::Health(reply) => {
                let _ = reply.send(self.health());
            }
            AdminRequest::Ready(reply) => {
                let _ = reply.send(self.readiness());
            }
            AdminRequest::Certificates(reply) => {
                let _ = reply.send(self.certificate_units());
            }
            AdminRequest::ChangeCertificates(change, reply) => {
                let done = self.change_certificates(change);
                if reply.send(done).is_err() {
                    admin::reply_lost("certificates");
                }
            }
        }
    }

    fn sip_event(&mut self, e: AgentEvent) {
        match e {
            AgentEvent::Incoming {
                call,
                user,
                call_id,
                offer,
                over_tls,
                user_agent,
                peer,
                from_uri,
                to_uri,
            } => self.incoming(Invite {
                call,
                number: user,
                call_id,
                offer,
                via: Via {
                    over_tls,
                    user_agent,
                    peer,
                    from_uri,
                    to_uri,
                },
            }),
            AgentEvent::Answer { call, answer } => self.answered(call, &answer),
            AgentEvent::Established { call } => {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.answer_ms.get_or_insert_with(ops::unix_ms);
                    info!(call_id = ?c.call_id, number = ?c.number, "call established");
                    if c.needs_downgrade && c.joined {
                        self.downgrade_call(call);
                    }
                }
                self.carry_out_downgrade(call);
            }
            AgentEvent::ReofferAnswered { call, answer } => self.downgrade_answered(call, &answer),
            AgentEvent::ReofferRefused { call, status } => {
                if let Some(c) = self.calls.get(&call).filter(|c| c.downgrading) {
                    warn!(
                        call_id = ?c.call_id, number = ?c.number,
                        "the endpoint refused RTP/AVP ({status}): it cannot stay in the non-secure meeting, BYE"
                    );
                    self.hang_up(
                        call,
                        CallEnd::Switch(format!(
                            "the endpoint refused RTP/AVP ({status}) in a non-secure meeting"
                        )),
                    );
                }
            }
            AgentEvent::Reoffer { call, offer } => self.reoffered(call, offer),
            AgentEvent::Ended { call, reason } => {
                if let Some(c) = self.calls.get_mut(&call) {
                    info!(call_id = ?c.call_id, number = ?c.number, ?reason, "call ended");
                    c.end.get_or_insert(match reason {
                        EndReason::Bye => CallEnd::RemoteBye,
                        EndReason::Cancelled => CallEnd::Cancelled,
                        EndReason::NoAck => CallEnd::Timeout("no_ack".into()),
                        EndReason::Timeout => CallEnd::Timeout("transaction".into()),
                        EndReason::SessionExpired => CallEnd::Timeout("session_expired".into()),
                        EndReason::Refused(status) => {
                            CallEnd::Refused(status, "refused by the trunk peer".into())
                        }
                        EndReason::Local => CallEnd::Switch("ended by the switch".into()),
                    });
                }
                self.leave(call);
            }
            AgentEvent::Peer { peer, state } => {
                info!(peer, ?state, "trunk peer");
                Self::peer_metric(peer, state);
                let address = self.settings.peers.get(peer).map(|p| p.addr.to_string());
                self.event(
                    if state == sip::ua::PeerState::Up {
                        "trunk_peer_up"
                    } else {
                        "trunk_peer_down"
                    },
                    serde_json::json!({ "peer": peer, "address": address }),
                );
                self.peer_heard(peer, Some(state == sip::ua::PeerState::Up), None);
            }
            AgentEvent::KeepAlive { peer, status } => self.peer_heard(peer, None, Some(status)),
            AgentEvent::Log(line) => warn!("{line}"),
        }
    }

    /// The call rules of the configuration, for the call-control core.
    fn rules(&self) -> CallRules<'_> {
        CallRules {
            security: self.settings.security,
            sdes_suites: &self.sdes_suites,
            meetings: &self.settings.meetings,
            on_the_fly: self.settings.on_the_fly,
            max_lines: self.settings.max_lines,
            min_secure_release: self.settings.min_secure_release,
        }
    }

    /// Refuses an INVITE: its status code, Warning and log line come from the refusal.
    fn refuse(
        &mut self,
        call: CallHandle,
        call_id: &str,
        number: &str,
        refusal: &Refusal,
        via: &Via,
    ) {
        self.record_refusal(
            call_id,
            number,
            refusal.status(),
            refusal.to_string(),
            (Some(via.from_uri.clone()), Some(via.to_uri.clone())),
        );
        match refusal.seed_line() {
            Some(line) => warn!("{line}"),
            None => warn!(
                ?call_id,
                ?number,
                status = refusal.status(),
                "call refused: {refusal}"
            ),
        }
        self.trunk.reject(call, refusal.status(), refusal.warning());
    }

    /// Refuses an INVITE before it is decided (draining, the cluster).
    fn refuse_invite(&mut self, invite: &Invite, refusal: &Refusal) {
        let (call, number, call_id) = (invite.call, &invite.number, &invite.call_id);
        self.refuse(call, call_id, number, refusal, &invite.via);
    }

    /// An INVITE: decided by [`control::decide_incoming`], done here.
    fn incoming(&mut self, invite: Invite) {
        // A draining switch takes no new call (503 with Retry-After: Unified CM tries its
        // next trunk destination).
        if self.ops.drain.is_some() {
            return self.refuse_invite(&invite, &Refusal::Draining);
        }
        // In a cluster, a meeting not running here is routed first (its answer comes back
        // to `incoming_here`, or as a 302 or a 503).
        if self.routes_in_cluster(&invite.number) {
            return self.route_in_cluster(invite);
        }
        self.incoming_here(invite);
    }

    /// An INVITE this switch serves (alone, or routed here by the cluster).
    fn incoming_here(&mut self, invite: Invite) {
        let Invite {
            call,
            number,
            call_id,
            offer,
            via,
        } = invite;
        let (over_tls, user_agent) = (via.over_tls, via.user_agent.clone());
        let meeting = self.meetings.get(&number).map(|m| MeetingView {
            security: m.security.clone(),
            secure: m.secure,
            locked: m.locked,
        });
        let decision = control::decide_incoming(
            Incoming {
                number: &number,
                call_id: &call_id,
                offer: offer.as_ref(),
                over_tls,
                user_agent: user_agent.as_deref(),
            },
            &self.rules(),
            meeting.as_ref(),
            self.next_meeting,
        );
        let admitted = match decision {
            IncomingDecision::Reject(refusal) => {
                return self.refuse(call, &call_id, &number, &refusal, &via);
            }
            IncomingDecision::Admit(a) => *a,
        };
        if let Some((policy, mode)) = admitted.start_meeting {
            self.start_meeting(&number, policy, mode);
            self.cluster_publish();
        }
        let Some(state) = self.meetings.get_mut(&number) else {
            return;
        };
        let conf_id = state.id;
        // R38's downgrade of a running secure meeting follows only an established call
        // (issue 14: an INVITE alone, never acknowledged, downgraded every endpoint): until
        // the newcomer's ACK the meeting stays as it is, and the newcomer's plain lines are
        // held.
        let pending_downgrade = if admitted.changes.contains(&MeetingChange::Downgrade) {
            Some(PendingDowngrade {
                security: admitted.security.0,
                log: admitted.log,
            })
        } else {
            state.security = admitted.security.0;
            if state.secure.is_none() {
                state.security_reason = Some(format!(
                    "started {} with call {call_id}",
                    if admitted.meeting_secure {
                        "secure: its first endpoint is secure"
                    } else {
                        "non-secure: its first endpoint is non-secure"
                    }
                ));
            }
            state.secure = Some(admitted.meeting_secure);
            for change in &admitted.changes {
                if *change == MeetingChange::StartNonSecure {
                    self.pool.send(
                        conf_id,
                        Command::Meeting(conf_id, MeetingCommand::SetSecure(false)),
                    );
                }
            }
            if let Some(line) = admitted.log {
                warn!("{line}");
            }
            None
        };
        info!(?call_id, conf_id, ?number, "call joins");
        let participant = self.next_participant;
        self.next_participant += 1;
        let mut state = CallState::new(number.clone(), call_id.clone(), participant);
        counter!("mswitch_calls_started_total", "direction" => "in").increment(1);
        state.from_uri = Some(via.from_uri);
        state.to_uri = Some(via.to_uri);
        state.peer = Some(via.peer);
        state.standard_after = control::lines::standard_detection(
            user_agent.as_deref(),
            &self.settings.standard_user_agents,
            self.settings.standard_after,
        );
        state.needs_downgrade = admitted.needs_downgrade;
        state.pending_downgrade = pending_downgrade;
        self.calls.insert(call, state);
        let result = match (admitted.media, offer) {
            (MediaPlan::Answer(keyings), Some(o)) => {
                self.join(call, &o, &keyings, &[]).map(|answer| {
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.local_sdp = answer.clone();
                    }
                    self.trunk.ring(call);
                    self.trunk.accept(call, answer);
                })
            }
            _ => self
                .offer_for_delayed(call)
                .map(|ours| self.trunk.accept(call, ours)),
        };
        if let Err(e) = result {
            warn!(?call_id, "media set-up failed: {e}");
            let refusal = Refusal::MediaSetup(SetupFailure::from(&e));
            if let Some(c) = self.calls.get_mut(&call) {
                c.end = Some(CallEnd::Refused(refusal.status(), refusal.to_string()));
            }
            self.leave(call);
            self.trunk.reject(call, refusal.status(), refusal.warning());
        }
    }

    /// Starts the meeting for `number` on a worker, with fresh group keys.
    fn start_meeting(&mut self, number: &str, policy: Policy, mode: Mode) {
        let id = self.next_meeting;
        self.next_meeting += 1;
        let groups = [
            join::group_params(Media::Audio),
            join::group_params(Media::Video),
        ];
        let mut meeting = Meeting::new(
            SwitchingConfig {
                mode,
                ..SwitchingConfig::default()
            },
            1024,
        );
        #[cfg(feature = "tools")]
        meeting
            .forwarder_mut()
            .set_sfu_baseline(self.settings.sfu_baseline);
        for g in &groups {
            let params = ParameterSet::new(
                EktCipher::AesEcb128,
                &g.kek,
                SrtpProfile::AesCm128HmacSha1_80,
                &g.salt,
            )
            .expect("16-byte KEK, 14-byte salt");
            let _ = meeting
                .forwarder_mut()
                .registry_mut()
                .insert(Spi(g.spi), params);
        }
        self.pool.add_meeting(id, meeting);
        info!(conf_id = id, ?number, ?policy, ?mode, "meeting starts");
        self.event(
            "meeting_started",
            serde_json::json!({ "number": number, "conf_id": id, "policy": crate::admin::meetings::policy_name(policy) }),
        );
        self.meetings.insert(
            number.to_owned(),
            MeetingState {
                id,
                security: ConferenceSecurity::new(policy, id),
                secure: None,
                groups,
                participants: Vec::new(),
                locked: false,
                mode,
                security_reason: None,
            },
        );
    }

    fn end_meeting_if_empty(&mut self, number: &str) {
        let empty = self
            .meetings
            .get(number)
            .is_some_and(|m| m.participants.is_empty())
            && !self.calls.values().any(|c| c.number == number);
        if empty && let Some(m) = self.meetings.remove(number) {
            self.pool.remove_meeting(m.id);
            self.admin.reports.remove(&m.id);
            info!(conf_id = m.id, ?number, "meeting ends");
            self.event(
                "meeting_ended",
                serde_json::json!({ "number": number, "conf_id": m.id }),
            );
            self.cluster_meeting_ended(number);
        }
    }

    /// The ACK brought the answer to our offer: the participant joins now.
    fn answered(&mut self, call: CallHandle, answer: &Description) {
        let Some((offered, keys)) = self.calls.get_mut(&call).and_then(|c| c.offered.take()) else {
            return;
        };
        let keyings = session::delayed_answer_keyings(
            &offered,
            answer,
            self.settings.security,
            &self.sdes_suites,
        );
        if let Err(e) = self.join(call, answer, &keyings, &keys) {
            warn!("media set-up after the answer failed: {e}");
            return self.hang_up(
                call,
                CallEnd::Switch(format!("media set-up after the answer: {e}")),
            );
        }
        // The meeting went non-secure while our SRTP offer was out: held, then RTP/AVP.
        if self.meeting_is_plain(call) && !session::offered_plain(&offered) {
            self.downgrade_call(call);
        }
    }

    fn meeting_event(&mut self, meeting: MeetingId, e: MeetingEvent) {
        match e {
            MeetingEvent::ParticipantFailed {
                participant,
                reason,
            } => {
                let why = match &reason {
                    LineFailure::Tip { failure, .. } => {
                        let kind = match failure {
                            TipFailure::MediaTimeout => "muxctrl",
                            TipFailure::SpimapTimeout => "spimap",
                        };
                        counter!("mswitch_tip_negotiations_total", "kind" => kind, "result" => "timeout")
                            .increment(1);
                        CallEnd::Timeout(kind.into())
                    }
                    LineFailure::Dtls { failure, .. } => match failure {
                        switch::dtls::DtlsFailure::Timeout => CallEnd::Timeout("dtls".into()),
                        other => CallEnd::MediaFailure(format!("DTLS: {other:?}")),
                    },
                };
                warn!(conf_id = meeting, "{}", SeedLine::from(reason));
                let call = self
                    .calls
                    .iter()
                    .find(|(_, c)| c.participant == participant)
                    .map(|(h, _)| *h);
                if let Some(call) = call {
                    self.hang_up(call, why);
                }
            }
            MeetingEvent::LineEstablished { participant, media } => {
                let secure = self
                    .meetings
                    .values()
                    .find(|m| m.id == meeting)
                    .is_some_and(|m| m.secure == Some(true));
                self.line_established(participant, secure);
                info!(
                    conf_id = meeting,
                    participant,
                    ?media,
                    "TIP and SPIMAP done"
                );
            }
            MeetingEvent::StandardLine { participant, media } => {
                self.line_joined(participant);
                counter!("mswitch_transcrypt_legs_total").increment(1);
                info!(
                    conf_id = meeting,
                    participant,
                    ?media,
                    "no TIP from the endpoint: a standard endpoint, transcrypt leg"
                );
            }
            MeetingEvent::SpeakerChanged(p) => {
                counter!("mswitch_speaker_changes_total").increment(1);
                info!(conf_id = meeting, speaker = ?p, "speaker");
            }
            MeetingEvent::Report(r) => {
                if self.meetings.values().any(|m| m.id == meeting) {
                    self.count_report(meeting, &r);
                    self.admin.reports.insert(meeting, *r);
                }
            }
            MeetingEvent::Downgraded { participants } => {
                let calls: Vec<CallHandle> = self
                    .calls
                    .iter()
                    // A call already on its way to RTP/AVP (the audio-only newcomer that
                    // caused the downgrade) is not asked twice.
                    .filter(|(_, c)| {
                        c.joined && !c.downgrading && participants.contains(&c.participant)
                    })
                    .map(|(h, _)| *h)
                    .collect();
                info!(
                    conf_id = meeting,
                    endpoints = calls.len(),
                    "non-secure now: security icons cleared (TIP NOTIFY), re-INVITE to RTP/AVP"
                );
                for call in calls {
                    self.downgrade_call(call);
                }
            }
        }
    }

    /// A call's participant leaves: legs closed, ports released, meeting ended if empty.
    fn leave(&mut self, call: CallHandle) {
        let Some(c) = self.calls.remove(&call) else {
            return;
        };
        let end = c
            .end
            .clone()
            .unwrap_or_else(|| CallEnd::Switch("ended by the switch".into()));
        if c.joined {
            self.event(
                "participant_left",
                serde_json::json!({ "number": c.number, "call_id": c.call_id, "participant": c.participant, "reason": end.label() }),
            );
        }
        self.record_call(&c, end);
        let Some(m) = self.meetings.get_mut(&c.number) else {
            return;
        };
        let id = m.id;
        m.participants.retain(|p| *p != c.participant);
        if c.joined {
            let p = c.participant;
            self.pool.send(
                id,
                Command::Meeting(id, MeetingCommand::RemoveParticipant(p)),
            );
        }
        for leg in &c.legs {
            self.pool.send(id, Command::RemoveLeg(*leg));
        }
        for l in &c.lines {
            for p in &l.ports {
                self.ports.release(*p);
            }
        }
        self.end_meeting_if_empty(&c.number);
    }
}

/// NTP time now (RFC 5905: seconds since 1900 << 32 | fraction), for TIP timestamps.
fn ntp_now() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() + 2_208_988_800;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

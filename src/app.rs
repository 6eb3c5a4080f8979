//! Call control (issue 5): the SIP trunk's calls become participants of meetings on the
//! media workers.
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
use std::time::Instant;

use ekt::kek::EktCipher;
use ekt::{ParameterSet, Spi, SrtpProfile};
use sip::driver::{Trunk, TrunkConfig};
use sip::sdp::{self, CryptoLine, Description, LocalMedia, MediaKind, Profile, Setup};
use sip::security::{Keying, keying_for_offer};
use sip::ua::{AgentConfig, AgentEvent, CallHandle};
use switch::dtls::DtlsIdentity;
use switch::meeting::switching::{Mode, SwitchingConfig};
use switch::meeting::{LegId, Meeting, MeetingEvent, ParticipantId};
use switch::ports::PortAllocator;
use switch::tip::negotiation::{GroupParams, LineConfig, Media};
use switch::udp::{Command, MeetingId, WorkerPool};
use tracing::{info, warn};

use crate::config::Settings;
use crate::join::{self, LineSockets};
use crate::policy::{Admission, ConferenceSecurity, Policy};

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// TLS material (the message of a key mismatch is the seed's line).
    #[error(transparent)]
    Certs(#[from] crate::certs::CertError),
    /// A listener or worker could not start.
    #[error("start: {0}")]
    Io(#[from] std::io::Error),
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
}

struct CallState {
    number: String,
    call_id: String,
    participant: ParticipantId,
    lines: Vec<LineSockets>,
    legs: Vec<LegId>,
    /// Delayed offer: our offer's SDES keys per line, until the answer comes.
    offered: Option<(Description, Vec<Option<Vec<u8>>>)>,
    /// Our last SDP (answers a re-INVITE).
    local_sdp: Vec<u8>,
    /// The peer's last SDP (a re-offer is compared with it).
    remote_sdp: Option<Description>,
    joined: bool,
    /// Joined with SRTP lines a non-secure meeting holds: re-INVITE it to RTP/AVP once
    /// the call is confirmed.
    needs_downgrade: bool,
    /// Our re-INVITE to RTP/AVP is out: its answer adds the participant again, plain.
    downgrading: bool,
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
    meetings: HashMap<String, MeetingState>,
    calls: HashMap<CallHandle, CallState>,
    next_meeting: MeetingId,
    next_participant: ParticipantId,
    next_leg: LegId,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("meetings", &self.meetings.len())
            .field("calls", &self.calls.len())
            .finish_non_exhaustive()
    }
}

/// The address a socket toward `peer` would use: the SDP address by default.
fn route_to(peer: SocketAddr) -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind(SocketAddr::new(
        if peer.is_ipv4() {
            IpAddr::from([0, 0, 0, 0])
        } else {
            IpAddr::from([0u16; 8])
        },
        0,
    ))
    .ok()?;
    s.connect(peer).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

impl App {
    /// Loads the TLS material, binds the trunk and starts the media workers.
    pub async fn start(settings: Settings) -> Result<Self, AppError> {
        let (policy, origin) = crate::certs::load(&settings.tls_files)?;
        match origin {
            crate::certs::Origin::Generated(dir) => info!(
                "no certificate configured: made a local CA and an ECDSA certificate for {} in {} (upload ca.pem to the trunk peer's trust store)",
                settings.tls_files.subject,
                dir.display()
            ),
            crate::certs::Origin::Reused(dir) => info!(
                "no certificate configured: using the one made earlier in {}",
                dir.display()
            ),
            crate::certs::Origin::Configured => {}
        }
        let trunk = Trunk::start(TrunkConfig {
            udp: settings.udp,
            tcp: settings.tcp,
            tls_listen: settings.tls,
            tls: Some(policy),
            agent: AgentConfig {
                peers: settings.peers.clone(),
                options_interval: settings.options_interval,
                session_expires: settings.session_expires,
                min_se: settings.min_se,
                ..AgentConfig::default()
            },
        })
        .await?;
        let (tx, rx) = std::sync::mpsc::channel();
        let pool = WorkerPool::spawn_with(
            settings.workers,
            tx,
            switch::udp::WorkerOptions {
                batch: settings.batch,
            },
        )?;
        // Meeting events cross from the workers' threads into the runtime.
        let (events_tx, events) = tokio::sync::mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("meeting-events".into())
            .spawn(move || {
                while let Ok(e) = rx.recv() {
                    if events_tx.send(e).is_err() {
                        return;
                    }
                }
            })?;
        let media_ip = settings
            .media_address
            .or_else(|| settings.peers.first().and_then(|p| route_to(p.addr)))
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let identity =
            Arc::new(DtlsIdentity::generate().map_err(|e| std::io::Error::other(e.to_string()))?);
        info!(
            udp = ?settings.udp, tcp = ?settings.tcp, tls = ?settings.tls, media = %media_ip,
            workers = settings.workers, batch = settings.batch, security = ?settings.security,
            "mswitch running"
        );
        if settings.sfu_baseline {
            warn!(
                "media.sfu_baseline is on: every packet is decrypted and re-encrypted per receiver, for comparison only"
            );
        }
        Ok(Self {
            ports: PortAllocator::new(settings.ports.clone()),
            settings,
            trunk,
            pool,
            events,
            identity,
            media_ip,
            meetings: HashMap::new(),
            calls: HashMap::new(),
            next_meeting: 1,
            next_participant: 1,
            next_leg: 1,
        })
    }

    /// Where SIP listens.
    pub fn sip_addr(&self, t: sip::ua::Transport) -> Option<SocketAddr> {
        self.trunk.local_addr(t)
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
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                e = self.trunk.next_event() => match e {
                    Some(e) => self.sip_event(e),
                    None => break,
                },
                Some((meeting, e)) = self.events.recv() => self.meeting_event(meeting, e),
            }
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
            "media totals"
        );
        for c in calls {
            self.trunk.hangup(c);
            self.leave(c);
        }
        // Give the BYEs a moment on the wire.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }

    fn sip_event(&mut self, e: AgentEvent) {
        match e {
            AgentEvent::Incoming {
                call,
                user,
                call_id,
                offer,
                over_tls,
                ..
            } => self.incoming(call, user, call_id, offer, over_tls),
            AgentEvent::Answer { call, answer } => self.answered(call, &answer),
            AgentEvent::Established { call } => {
                if let Some(c) = self.calls.get(&call) {
                    info!(call_id = %c.call_id, conference = %c.number, "call established");
                    if c.needs_downgrade && c.joined {
                        self.downgrade_call(call);
                    }
                }
            }
            AgentEvent::ReofferAnswered { call, answer } => self.downgrade_answered(call, &answer),
            AgentEvent::ReofferRefused { call, status } => {
                if let Some(c) = self.calls.get(&call).filter(|c| c.downgrading) {
                    warn!(
                        call_id = %c.call_id, conference = %c.number,
                        "the endpoint refused RTP/AVP ({status}): it cannot stay in the non-secure meeting, BYE"
                    );
                    self.trunk.hangup(call);
                    self.leave(call);
                }
            }
            AgentEvent::Reoffer { call, offer } => self.reoffered(call, offer),
            AgentEvent::Ended { call, reason } => {
                if let Some(c) = self.calls.get(&call) {
                    info!(call_id = %c.call_id, conference = %c.number, ?reason, "call ended");
                }
                self.leave(call);
            }
            AgentEvent::Peer { peer, state } => info!(peer, ?state, "trunk peer"),
            AgentEvent::Log(line) => warn!("{line}"),
        }
    }

    fn meeting_policy(&self, number: &str) -> Option<(Policy, Mode)> {
        self.settings
            .meetings
            .iter()
            .find(|(n, _, _)| n == number)
            .map(|(_, p, m)| (*p, *m))
            .or(self.settings.on_the_fly)
    }

    fn incoming(
        &mut self,
        call: CallHandle,
        number: String,
        call_id: String,
        offer: Option<Description>,
        over_tls: bool,
    ) {
        let Some((policy, mode)) = self.meeting_policy(&number) else {
            info!(%call_id, %number, "no such meeting: 404");
            return self.trunk.reject(call, 404, None);
        };
        let mode_security = self.settings.security;
        let suites: Vec<&str> = self.settings.suites.iter().map(|s| s.sdes_name()).collect();
        // An endpoint is non-secure when it offers only plain RTP (RTP/AVP): that is the
        // meeting policy's question (T4). A secure offer must fit the Device Security
        // mode (T6), else 488.
        let secure = offer.as_ref().map_or(mode_security.secure_media(), |o| {
            o.media.iter().any(|m| {
                m.kind.is_some() && m.port != 0 && m.profile.is_some_and(|p| p.is_secure())
            })
        });
        let keyings = match &offer {
            Some(o) if secure => match keying_for_offer(mode_security, over_tls, o, &suites) {
                Ok(k) => Some(k),
                Err(e) => {
                    warn!(%call_id, %number, "offer refused: {e}");
                    return self.trunk.reject(call, 488, Some(e.to_string()));
                }
            },
            // A plain offer: RTP/AVP lines, no keys (the policy decides below).
            Some(o) => {
                match keying_for_offer(
                    sip::security::DeviceSecurity::NonSecure,
                    over_tls,
                    o,
                    &suites,
                ) {
                    Ok(k) => Some(k),
                    Err(e) => {
                        warn!(%call_id, %number, "offer refused: {e}");
                        return self.trunk.reject(call, 488, Some(e.to_string()));
                    }
                }
            }
            None => {
                if let Err(e) = mode_security.check_transport(over_tls) {
                    return self.trunk.reject(call, 488, Some(e.to_string()));
                }
                None
            }
        };
        // The meeting, made on first use.
        let conf_id = self.meeting_for(&number, policy, mode);
        let state = self.meetings.get_mut(&number).expect("made above");
        let before = state.security.clone();
        // R38: in a Best-Effort meeting an added audio-only call counts as non-secure (it
        // downgrades a secure meeting); its SRTP is answered, held and re-INVITEd to
        // RTP/AVP like any secure endpoint in a non-secure meeting. A delayed offer shows
        // its lines only in the ACK, too late to decide on.
        let audio_only = offer.as_ref().is_some_and(|o| {
            !o.media
                .iter()
                .any(|m| m.kind == Some(MediaKind::Video) && m.port != 0)
        });
        let counts_secure = secure && !(audio_only && policy == Policy::BestEffort);
        let admission = state.security.admit(counts_secure, &call_id, &number);
        // The media of this endpoint and of the meeting must agree (R33: never mixed).
        let media_secure = match &admission {
            Admission::Admit { state: s, .. } => *s == crate::policy::State::Secure,
            Admission::Reject { .. } => secure,
        };
        let downgrade_existing = matches!(
            admission,
            Admission::Admit {
                downgrade_existing: true,
                ..
            }
        );
        // A plain endpoint never joins a secure meeting's media (R33); a secure one joins a
        // non-secure meeting secure, is held there, and is re-INVITEd to RTP/AVP.
        let refusal = match &admission {
            Admission::Admit { .. } if !secure && media_secure => {
                Some("a plain offer to a secure meeting")
            }
            Admission::Admit { .. }
                if !downgrade_existing && state.secure.is_some_and(|s| s != media_secure) =>
            {
                Some("the meeting's media is of the other kind")
            }
            _ => None,
        };
        if let Some(why) = refusal {
            state.security = before;
            warn!(%call_id, conference = conf_id, "{why}: 488");
            self.end_meeting_if_empty(&number);
            return self.trunk.reject(call, 488, Some(why.into()));
        }
        if downgrade_existing {
            // R38: the meeting goes non-secure now; its Downgraded event names the
            // participants to re-INVITE to RTP/AVP.
            state.secure = Some(false);
            let id = state.id;
            self.pool.send(
                id,
                Command::Run(id, Box::new(|m: &mut Meeting, now| m.downgrade(now))),
            );
        }
        if let Admission::Admit { .. } = admission
            && state.secure.is_none()
        {
            state.secure = Some(media_secure);
            if !media_secure {
                let id = state.id;
                self.pool.send(
                    id,
                    Command::Run(id, Box::new(|m: &mut Meeting, _| m.set_secure(false))),
                );
            }
        }
        match admission {
            Admission::Reject { log } => {
                warn!("{log}");
                self.end_meeting_if_empty(&number);
                return self
                    .trunk
                    .reject(call, 488, Some("security mismatch".into()));
            }
            Admission::Admit { log, .. } => {
                if let Some(l) = log {
                    warn!("{l}");
                }
            }
        }
        info!(%call_id, conference = conf_id, %number, "call joins");
        let participant = self.next_participant;
        self.next_participant += 1;
        self.calls.insert(
            call,
            CallState {
                number: number.clone(),
                call_id: call_id.clone(),
                participant,
                lines: Vec::new(),
                legs: Vec::new(),
                offered: None,
                local_sdp: Vec::new(),
                remote_sdp: None,
                joined: false,
                needs_downgrade: secure && !media_secure,
                downgrading: false,
            },
        );
        let result = match (offer, keyings) {
            (Some(o), Some(k)) => self.join(call, &o, &k, &[]).map(|answer| {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.local_sdp = answer.clone();
                }
                self.trunk.ring(call);
                self.trunk.accept(call, answer);
            }),
            _ => self
                .offer_for_delayed(call)
                .map(|ours| self.trunk.accept(call, ours)),
        };
        if let Err(e) = result {
            warn!(%call_id, "media set-up failed: {e}");
            self.leave(call);
            self.trunk.reject(call, 503, Some(e.to_string()));
        }
    }

    fn meeting_for(&mut self, number: &str, policy: Policy, mode: Mode) -> u64 {
        if let Some(m) = self.meetings.get(number) {
            return m.id;
        }
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
        info!(conference = id, %number, ?policy, ?mode, "meeting starts");
        self.meetings.insert(
            number.to_owned(),
            MeetingState {
                id,
                security: ConferenceSecurity::new(policy, id),
                secure: None,
                groups,
                participants: Vec::new(),
            },
        );
        id
    }

    fn end_meeting_if_empty(&mut self, number: &str) {
        let empty = self
            .meetings
            .get(number)
            .is_some_and(|m| m.participants.is_empty())
            && !self.calls.values().any(|c| c.number == number);
        if empty && let Some(m) = self.meetings.remove(number) {
            self.pool.remove_meeting(m.id);
            info!(conference = m.id, %number, "meeting ends");
        }
    }

    /// Allocates, keys and joins the lines of an offer (or of the answer to our offer);
    /// returns the SDP that answers it.
    fn join(
        &mut self,
        call: CallHandle,
        remote: &Description,
        keyings: &[Option<Keying>],
        our_keys: &[Option<Vec<u8>>],
    ) -> Result<Vec<u8>, join::JoinError> {
        let now = Instant::now();
        let c = self.calls.get(&call).expect("a call");
        let number = c.number.clone();
        let participant = c.participant;
        let existing = !c.lines.is_empty();
        let m = &self.meetings[&number];
        let (meeting_id, groups) = (m.id, m.groups.clone());
        let mut setups = Vec::new();
        let mut locals: Vec<Option<LocalMedia>> = Vec::new();
        let mut sockets: Vec<PreparedSockets> = Vec::new();
        for (i, offer) in remote.media.iter().enumerate() {
            let (Some(kind), Some(k)) = (offer.kind, keyings.get(i).and_then(Option::as_ref))
            else {
                locals.push(None);
                continue;
            };
            let media = join::media_of(kind);
            let s = if existing {
                // Delayed offer: the lines were allocated with our offer.
                let mut lines = std::mem::take(&mut self.calls.get_mut(&call).expect("call").lines);
                let pos = lines.iter().position(|l| l.media == media);
                match pos {
                    Some(p) => {
                        let mut l = lines.remove(p);
                        self.calls.get_mut(&call).expect("call").lines = lines;
                        // We offered both (RFC 5761 §5.1.1); multiplexed, the RTCP port
                        // goes back.
                        if offer.rtcp_mux {
                            l.drop_rtcp(&mut self.ports);
                        }
                        l
                    }
                    None => {
                        self.calls.get_mut(&call).expect("call").lines = lines;
                        locals.push(None);
                        continue;
                    }
                }
            } else {
                join::line_sockets(
                    &mut self.ports,
                    self.media_ip,
                    media,
                    offer.rtcp_mux,
                    &mut self.next_leg,
                )?
            };
            let g = groups[usize::from(media == Media::Video)].clone();
            let mut config =
                LineConfig::new(media, u32::from_be_bytes(join::random()), number.clone());
            config.conf_id = meeting_id;
            // A non-secure meeting's TIP has no SPIMAP (R33).
            config.group = (!matches!(k, Keying::Plain)).then_some(g);
            config.positions = if join::screens(remote) == 3 {
                0b1110
            } else {
                0b10
            };
            config.ntp_at_start = ntp_now();
            config.muxctrl_deadline = self.settings.muxctrl_timeout;
            config.spimap_deadline = self.settings.spimap_timeout;
            let prepared = join::prepare_line(
                now,
                offer,
                k,
                &s,
                &self.identity,
                &self.settings.suites,
                config,
                our_keys.get(i).and_then(|k| k.as_deref()),
            );
            let prepared = match prepared {
                Ok(p) => p,
                Err(e) => {
                    // Nothing of this call reached a worker yet: every port goes back.
                    let prepared_ports = sockets.iter().flat_map(|(l, _, _)| l.ports.iter());
                    for p in s.ports.iter().chain(prepared_ports) {
                        self.ports.release(*p);
                    }
                    return Err(e);
                }
            };
            setups.push(prepared.setup);
            locals.push(Some(prepared.local));
            sockets.push((
                s,
                SocketAddr::new(offer.address, offer.port),
                offer.rtcp_addr(),
            ));
        }
        // The participant first, then its sockets: a datagram that is already waiting
        // (a delayed offer's ClientHello comes right behind the ACK) must find the
        // participant when the worker first reads the leg.
        let mut legs = Vec::new();
        for (s, remote_addr, rtcp_remote) in &sockets {
            legs.push((s.leg.0, s.leg.1.try_clone(), *remote_addr));
            if let Some((rleg, rs)) = &s.rtcp {
                legs.push((*rleg, rs.try_clone(), *rtcp_remote));
            }
        }
        let c = self.calls.get_mut(&call).expect("call");
        c.lines.extend(sockets.into_iter().map(|(s, _, _)| s));
        let screens = join::screens(remote);
        self.pool.send(
            meeting_id,
            Command::Run(
                meeting_id,
                Box::new(move |m: &mut Meeting, now| {
                    m.add_participant(now, participant, screens, setups);
                }),
            ),
        );
        c.joined = true;
        c.remote_sdp = Some(remote.clone());
        if let Some(m) = self.meetings.get_mut(&number)
            && !m.participants.contains(&participant)
        {
            m.participants.push(participant);
        }
        for (leg, socket, remote_addr) in legs {
            let socket = socket.map_err(join::JoinError::Bind)?;
            self.pool.send(
                meeting_id,
                Command::AddLeg {
                    meeting: meeting_id,
                    leg,
                    socket,
                    remote: remote_addr,
                },
            );
            // Joining again (a downgrade) re-adds the same legs: the peer's address may
            // have changed.
            if let Some(c) = self.calls.get_mut(&call)
                && !c.legs.contains(&leg)
            {
                c.legs.push(leg);
            }
        }
        Ok(sdp::answer(
            remote,
            self.media_ip,
            &participant.to_string(),
            1,
            &locals,
        ))
    }

    /// A re-INVITE or UPDATE from the peer. Without SDP, our current SDP is the offer.
    /// Hold and resume are answered with the matching direction, and a moved address
    /// redirects the legs; a re-offer that changes the keying (another fingerprint or
    /// key, SRTP to RTP) or the lines is refused with 488, and the session goes on as it
    /// was (RFC 3261 §14.2).
    fn reoffered(&mut self, call: CallHandle, offer: Option<Description>) {
        let Some(c) = self.calls.get(&call) else {
            return self.trunk.answer_reoffer(call, None);
        };
        let Some(offer) = offer else {
            return self.trunk.answer_reoffer(call, Some(c.local_sdp.clone()));
        };
        let refusal = match &c.remote_sdp {
            Some(before) if keying_changed(before, &offer) => {
                Some("a re-offer that changes the media keying".to_owned())
            }
            _ => None,
        };
        let answer = match refusal {
            Some(why) => Err(why),
            None => sdp::reanswer(&c.local_sdp, &offer).map_err(|e| e.to_string()),
        };
        let answer = match answer {
            Ok(a) => a,
            Err(why) => {
                warn!(call_id = %c.call_id, "re-INVITE refused with 488, the session goes on: {why}");
                return self.trunk.answer_reoffer(call, None);
            }
        };
        // The peer's media may have moved: its legs send to the new address.
        let meeting = self.meetings.get(&c.number).map(|m| m.id);
        let mut moved = Vec::new();
        for (i, o) in offer.media.iter().enumerate() {
            let before = c.remote_sdp.as_ref().and_then(|d| d.media.get(i));
            let (Some(kind), Some(before)) = (o.kind, before) else {
                continue;
            };
            let same = |a: &sdp::MediaOffer| (a.address, a.port, a.rtcp_addr());
            if o.port == 0 || same(o) == same(before) {
                continue;
            }
            let media = join::media_of(kind);
            if let Some(l) = c.lines.iter().find(|l| l.media == media) {
                moved.push((
                    l.leg.0,
                    l.leg.1.try_clone(),
                    SocketAddr::new(o.address, o.port),
                ));
                if let Some((leg, s)) = &l.rtcp {
                    moved.push((*leg, s.try_clone(), o.rtcp_addr()));
                }
            }
        }
        if let Some(id) = meeting {
            for (leg, socket, remote) in moved {
                if let Ok(socket) = socket {
                    self.pool.send(
                        id,
                        Command::AddLeg {
                            meeting: id,
                            leg,
                            socket,
                            remote,
                        },
                    );
                }
            }
        }
        if let Some(c) = self.calls.get_mut(&call) {
            c.local_sdp = answer.clone();
            c.remote_sdp = Some(offer);
        }
        self.trunk.answer_reoffer(call, Some(answer));
    }

    /// Re-INVITEs a call to RTP/AVP: its meeting is non-secure (R38 downgrade, or a secure
    /// endpoint joining a non-secure meeting) and holds its SRTP lines meanwhile.
    fn downgrade_call(&mut self, call: CallHandle) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.needs_downgrade = false;
        match sdp::plain_reoffer(&c.local_sdp) {
            Ok(offer) => {
                info!(call_id = %c.call_id, conference = %c.number, "re-INVITE to RTP/AVP: the meeting is non-secure");
                c.local_sdp = offer.clone();
                c.downgrading = true;
                self.trunk.reoffer(call, offer);
            }
            Err(e) => {
                warn!(call_id = %c.call_id, "our own SDP does not parse ({e}): BYE");
                self.trunk.hangup(call);
                self.leave(call);
            }
        }
    }

    /// The answer to our RTP/AVP re-INVITE: the participant joins again with plain lines
    /// (TIP runs again, non-secure); an answer that keeps SRTP ends the call.
    fn downgrade_answered(&mut self, call: CallHandle, answer: &Description) {
        let Some(c) = self.calls.get_mut(&call).filter(|c| c.downgrading) else {
            return;
        };
        c.downgrading = false;
        let call_id = c.call_id.clone();
        let keyings: Vec<Option<Keying>> = answer
            .media
            .iter()
            .map(|m| (m.port != 0 && m.kind.is_some()).then_some(Keying::Plain))
            .collect();
        let still_secure = answer
            .media
            .iter()
            .any(|m| m.port != 0 && m.profile.is_none_or(|p| p.is_secure()));
        if still_secure {
            warn!(%call_id, "the answer to RTP/AVP keeps SRTP: BYE");
            self.trunk.hangup(call);
            return self.leave(call);
        }
        match self.join(call, answer, &keyings, &[]) {
            Ok(_) => info!(%call_id, "downgraded to non-secure: plain RTP, TIP again"),
            Err(e) => {
                warn!(%call_id, "media set-up after the downgrade failed: {e}");
                self.trunk.hangup(call);
                self.leave(call);
            }
        }
    }

    /// Whether the meeting of `call` runs plain RTP.
    fn meeting_is_plain(&self, call: CallHandle) -> bool {
        self.calls
            .get(&call)
            .and_then(|c| self.meetings.get(&c.number))
            .is_some_and(|m| m.secure == Some(false))
    }

    /// Delayed offer: ports for an audio and a video line, our keys, our offer.
    fn offer_for_delayed(&mut self, call: CallHandle) -> Result<Vec<u8>, join::JoinError> {
        let mode = self.settings.security;
        // A non-secure meeting gets plain RTP offered at once (no downgrade to come).
        let profile = if self.meeting_is_plain(call) {
            Profile::Avp
        } else {
            mode.offer_profile()
        };
        let mut lines = Vec::new();
        let mut keys = Vec::new();
        let mut sockets = Vec::new();
        for (kind, fmt) in [
            (MediaKind::Audio, ("0", "PCMU/8000")),
            (MediaKind::Video, ("112", "H264/90000")),
        ] {
            // RTCP port too: the answer may not multiplex (RFC 5761 §5.1.1: a=rtcp-mux
            // with a fallback a=rtcp).
            let s = join::line_sockets(
                &mut self.ports,
                self.media_ip,
                join::media_of(kind),
                false,
                &mut self.next_leg,
            )?;
            let port = s.leg.1.local_addr().map_err(join::JoinError::Bind)?.port();
            let rtcp_port = s
                .rtcp
                .as_ref()
                .and_then(|(_, r)| r.local_addr().ok())
                .map(|a| a.port());
            let suite = self.settings.suites[0];
            let key = (profile == Profile::Savp).then(|| {
                let r: [u8; 46] = join::random();
                r[..suite.key_len() + suite.salt_len()].to_vec()
            });
            lines.push(LocalMedia {
                kind,
                port,
                rtcp_port,
                profile,
                formats: vec![(fmt.0.into(), Some(fmt.1.into()))],
                rtcp_mux: true,
                dtls: profile
                    .is_secure()
                    .then(|| (Setup::ActPass, self.identity.sdp_fingerprint()))
                    .filter(|_| profile != Profile::Savp),
                crypto: key.as_ref().map(|k| CryptoLine {
                    tag: 1,
                    suite: suite.sdes_name().into(),
                    key_salt: k.clone(),
                    ekt: None,
                }),
                direction: sdp::Direction::SendRecv,
            });
            keys.push(key);
            sockets.push(s);
        }
        let body = sdp::offer(self.media_ip, "1", 1, &lines);
        let offered = sdp::parse(&body).map_err(|_| join::JoinError::Crypto)?;
        let c = self.calls.get_mut(&call).expect("a call");
        c.lines = sockets;
        c.offered = Some((offered, keys));
        c.needs_downgrade = false;
        c.local_sdp = body.clone();
        Ok(body)
    }

    /// The ACK brought the answer to our offer: the participant joins now.
    fn answered(&mut self, call: CallHandle, answer: &Description) {
        let Some((offered, keys)) = self.calls.get_mut(&call).and_then(|c| c.offered.take()) else {
            return;
        };
        let we_offered_plain = offered
            .media
            .iter()
            .all(|m| !m.profile.is_some_and(|p| p.is_secure()));
        let suites: Vec<&str> = self.settings.suites.iter().map(|s| s.sdes_name()).collect();
        let keyings: Vec<Option<Keying>> = answer
            .media
            .iter()
            .map(|m| {
                if m.port == 0 {
                    return None;
                }
                if we_offered_plain {
                    return Some(Keying::Plain);
                }
                self.settings.security.keying(m, &suites).ok()
            })
            .collect();
        if let Err(e) = self.join(call, answer, &keyings, &keys) {
            warn!("media set-up after the answer failed: {e}");
            self.trunk.hangup(call);
            return self.leave(call);
        }
        // The meeting went non-secure while our SRTP offer was out: held, then RTP/AVP.
        if self.meeting_is_plain(call) && !we_offered_plain {
            self.downgrade_call(call);
        }
    }

    fn meeting_event(&mut self, meeting: MeetingId, e: MeetingEvent) {
        match e {
            MeetingEvent::ParticipantFailed {
                participant,
                log_line,
            } => {
                warn!(conference = meeting, "{log_line}");
                let call = self
                    .calls
                    .iter()
                    .find(|(_, c)| c.participant == participant)
                    .map(|(h, _)| *h);
                if let Some(call) = call {
                    self.trunk.hangup(call);
                    self.leave(call);
                }
            }
            MeetingEvent::LineEstablished { participant, media } => {
                info!(
                    conference = meeting,
                    participant,
                    ?media,
                    "TIP and SPIMAP done"
                );
            }
            MeetingEvent::SpeakerChanged(p) => {
                info!(conference = meeting, speaker = ?p, "speaker");
            }
            MeetingEvent::Downgraded { participants } => {
                let calls: Vec<CallHandle> = self
                    .calls
                    .iter()
                    .filter(|(_, c)| c.joined && participants.contains(&c.participant))
                    .map(|(h, _)| *h)
                    .collect();
                info!(
                    conference = meeting,
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
        let Some(m) = self.meetings.get_mut(&c.number) else {
            return;
        };
        let id = m.id;
        m.participants.retain(|p| *p != c.participant);
        if c.joined {
            let p = c.participant;
            self.pool.send(
                id,
                Command::Run(
                    id,
                    Box::new(move |m: &mut Meeting, _| m.remove_participant(p)),
                ),
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

/// Whether a re-offer keys its media differently from the session (per line: SRTP or not,
/// the DTLS fingerprint, the first SDES key): this switch does not re-key a running line.
fn keying_changed(before: &Description, offer: &Description) -> bool {
    offer.media.iter().zip(&before.media).any(|(o, b)| {
        let secure = |m: &sdp::MediaOffer| m.profile.is_some_and(|p| p.is_secure());
        let key = |m: &sdp::MediaOffer| m.crypto.first().map(|c| c.key_salt.clone());
        o.port != 0
            && (secure(o) != secure(b)
                || (o.fingerprint.is_some() && o.fingerprint != b.fingerprint)
                || (key(o).is_some() && key(o) != key(b)))
    })
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

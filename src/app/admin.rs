//! The driver's side of the admin API: what `/api/v1` shows, built from call control's
//! state and the meetings' latest reports, and the operator's actions carried out with the
//! same typed commands as a SIP event's (lock, switching, kick, end, configured meetings,
//! dial-out). The HTTPS side is [`crate::admin::http`].

use std::collections::BTreeMap;

use switch::meeting::MeetingCommand;
use switch::meeting::report::{LineKeying, LineReport, MeetingReport};
use switch::tip::negotiation::{Media, State as TipState};
use switch::udp::Command;
use tracing::{info, warn};

use super::{App, CallState};
use crate::admin::meetings::{self as stored, mode_name, policy_name};
use crate::admin::request::{Action, ActionError, Done};
use crate::admin::view::{
    KeepAliveView, LineView, Listeners, MeetingView, ParticipantView, PeerView, PortsView,
    StatusView, SystemView,
};
use crate::policy::Policy;

/// A trunk peer as the admin API shows it.
#[derive(Debug, Clone, Default)]
pub(super) struct PeerRecord {
    /// `Some(true)`: up.
    pub(super) up: Option<bool>,
    pub(super) since: Option<u64>,
    pub(super) last_keepalive: Option<KeepAliveView>,
}

fn line_view(l: &LineReport) -> LineView {
    let c = &l.counters;
    LineView {
        media: match l.media {
            Media::Audio => "audio",
            Media::Video => "video",
        },
        keying: match l.keying {
            LineKeying::Dtls => "dtls",
            LineKeying::Sdes => "sdes",
            LineKeying::Plain => "none",
        },
        srtp_profile: l.suite.map(|s| s.sdes_name()),
        tip: match l.tip {
            None if l.transcrypted => "none",
            None => "dtls-handshake",
            Some(TipState::ExpectMuxCtrl) => "muxctrl",
            Some(TipState::ExpectSpimapAck) => "spimap",
            Some(TipState::Established) => "established",
            Some(TipState::Failed) => "failed",
        },
        held: l.held,
        transcrypted: l.transcrypted,
        packets_in: c.packets_in,
        bytes_in: c.bytes_in,
        packets_out: c.packets_out,
        bytes_out: c.bytes_out,
        dropped: switch::forward::DropReason::ALL
            .iter()
            .zip(c.dropped)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (r.label(), n))
            .chain((c.held > 0).then_some(("held", c.held)))
            .collect(),
    }
}

/// How a participant's media travels: `transcrypted` when any line is a transcrypt leg.
pub(super) fn media_path(lines: &[LineReport]) -> &'static str {
    if lines.iter().any(|l| l.transcrypted) {
        "transcrypted"
    } else {
        "end-to-end"
    }
}

impl App {
    /// Asks every running meeting for its report (the admin API's counters are at most
    /// this tick old).
    pub(super) fn request_reports(&self) {
        for m in self.meetings.values() {
            self.pool
                .send(m.id, Command::Meeting(m.id, MeetingCommand::Report));
        }
    }

    fn participant_view(&self, c: &CallState, report: Option<&MeetingReport>) -> ParticipantView {
        let p = report.and_then(|r| r.participants.iter().find(|p| p.id == c.participant));
        let lines: Vec<LineView> =
            p.map_or_else(Vec::new, |p| p.lines.iter().map(line_view).collect());
        let secure = report.is_some_and(|r| r.secure);
        ParticipantView {
            id: c.participant,
            call_id: c.call_id.clone(),
            direction: if c.outbound { "out" } else { "in" },
            remote: c
                .remote_sdp
                .as_ref()
                .and_then(|d| d.media.first())
                .map(|m| std::net::SocketAddr::new(m.address, m.port).to_string()),
            joined_at: c.joined_at,
            joined: c.joined,
            screens: p.map(|p| p.screens),
            lock_icon: secure
                && !lines.is_empty()
                && lines.iter().all(|l| {
                    l.keying != "none" && (l.tip == "established" || l.transcrypted) && !l.held
                }),
            media_path: p.map(|p| media_path(&p.lines)),
            lines,
        }
    }

    /// Everything the API shows.
    pub(super) fn status_view(&self) -> StatusView {
        let listeners = Listeners {
            sip_udp: self
                .sip_addr(sip::ua::Transport::Udp)
                .map(|a| a.to_string()),
            sip_tcp: self
                .sip_addr(sip::ua::Transport::Tcp)
                .map(|a| a.to_string()),
            sip_tls: self
                .sip_addr(sip::ua::Transport::Tls)
                .map(|a| a.to_string()),
            admin_https: self.admin.server.as_ref().map(|s| s.https.to_string()),
            admin_http_redirect: self
                .admin
                .server
                .as_ref()
                .and_then(|s| s.http_redirect)
                .map(|a| a.to_string()),
        };
        let range = &self.settings.ports;
        let total = usize::from(*range.end()) - usize::from(*range.start()) + 1;
        let used = self.ports.in_use();
        let now = crate::admin::http::state::unix_now();
        let security_level = crate::admin::levels::levels(&crate::admin::levels::Services {
            admin_https: self.admin.server.is_some(),
            metrics: self.admin.metrics.map(|a| a.ip().is_loopback()),
            sip_tls: listeners.sip_tls.is_some(),
            sip_clear: listeners.sip_udp.is_some() || listeners.sip_tcp.is_some(),
            webhooks: self.settings.webhooks.iter().map(|w| w.verify).collect(),
        });
        let system = SystemView {
            security_level,
            cluster: self.cluster_view(),
            version: env!("CARGO_PKG_VERSION"),
            uptime_s: self.admin.started.elapsed().as_secs(),
            listeners,
            workers: self.settings.workers,
            media_ports: PortsView {
                range: format!("{}-{}", range.start(), range.end()),
                used,
                free: total.saturating_sub(used),
            },
            device_security: self.settings.security.name().into(),
            accepting_calls: self.ops.drain.is_none(),
            draining: self
                .ops
                .drain
                .as_ref()
                .map(|d| crate::admin::view::DrainView {
                    since: d.since,
                    deadline: d.deadline_unix,
                    by: d.by.clone(),
                }),
            certificates: self
                .admin
                .certificates
                .iter()
                .filter_map(|(unit, der)| {
                    crate::admin::certinfo::summarize(unit, der, now.try_into().unwrap_or(i64::MAX))
                })
                .map(|mut c| {
                    c.expiring = c.days_left < self.expiry.warn_days();
                    c
                })
                .collect(),
        };
        let peers = self
            .settings
            .peers
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let r = self.admin.peers.get(i).cloned().unwrap_or_default();
                PeerView {
                    index: i,
                    address: p.addr.to_string(),
                    transport: format!("{:?}", p.transport).to_lowercase(),
                    subject: p.subject.clone(),
                    state: match r.up {
                        Some(true) => "up",
                        Some(false) => "down",
                        None => "unknown",
                    },
                    since: r.since,
                    last_keepalive: r.last_keepalive,
                }
            })
            .collect();
        let mut meetings: Vec<MeetingView> = Vec::new();
        for (number, m) in &self.meetings {
            let report = self.admin.reports.get(&m.id);
            let mut calls: Vec<&CallState> = self
                .calls
                .values()
                .filter(|c| &c.number == number)
                .collect();
            calls.sort_by_key(|c| c.participant);
            meetings.push(MeetingView {
                number: number.clone(),
                conf_id: Some(m.id),
                policy: policy_name(m.security.policy()).into(),
                configured: self.settings.meetings.iter().any(|(n, ..)| n == number),
                security: match m.secure {
                    Some(true) => "secure",
                    Some(false) => "non-secure",
                    None => "none",
                },
                security_reason: m.security_reason.clone(),
                switching: mode_name(m.mode).into(),
                locked: m.locked,
                speaker: report.and_then(|r| r.speaker),
                participants: calls
                    .iter()
                    .map(|c| self.participant_view(c, report))
                    .collect(),
                dropped: report.map_or_else(BTreeMap::new, |r| {
                    r.dropped.iter().filter(|(_, n)| *n > 0).copied().collect()
                }),
            });
        }
        for (number, policy, mode) in &self.settings.meetings {
            if !self.meetings.contains_key(number) {
                meetings.push(MeetingView {
                    number: number.clone(),
                    conf_id: None,
                    policy: policy_name(*policy).into(),
                    configured: true,
                    security: "none",
                    security_reason: None,
                    switching: mode_name(*mode).into(),
                    locked: false,
                    speaker: None,
                    participants: Vec::new(),
                    dropped: BTreeMap::new(),
                });
            }
        }
        meetings.sort_by(|a, b| a.number.cmp(&b.number));
        StatusView {
            system,
            peers,
            meetings,
        }
    }

    /// Carries out an operator's action.
    pub(super) async fn admin_action(&mut self, action: Action) -> Result<Done, ActionError> {
        let done = |result: String| Done {
            result,
            call_id: None,
        };
        match action {
            Action::Lock { number, locked } => {
                let m = self
                    .meetings
                    .get_mut(&number)
                    .ok_or(ActionError::NotRunning(number.clone()))?;
                m.locked = locked;
                info!(
                    conf_id = m.id,
                    ?number,
                    locked,
                    "meeting lock set by the operator"
                );
                Ok(done(if locked { "locked" } else { "unlocked" }.into()))
            }
            Action::SetSwitching { number, mode } => {
                let m = self
                    .meetings
                    .get_mut(&number)
                    .ok_or(ActionError::NotRunning(number.clone()))?;
                m.mode = mode;
                let id = m.id;
                self.pool
                    .send(id, Command::Meeting(id, MeetingCommand::SetSwitching(mode)));
                info!(
                    conf_id = id,
                    ?number,
                    ?mode,
                    "switching set by the operator"
                );
                Ok(done(format!("{} switching", mode_name(mode))))
            }
            Action::Kick {
                number,
                participant,
            } => {
                if !self.meetings.contains_key(&number) {
                    return Err(ActionError::NotRunning(number));
                }
                let (call, call_id) = self
                    .calls
                    .iter()
                    .find(|(_, c)| c.number == number && c.participant == participant)
                    .map(|(h, c)| (*h, c.call_id.clone()))
                    .ok_or(ActionError::NoSuchParticipant(number.clone(), participant))?;
                info!(
                    ?call_id,
                    ?number,
                    participant,
                    "kicked by the operator: BYE"
                );
                self.hang_up(call, crate::ops::cdr::CallEnd::Kicked);
                Ok(Done {
                    result: "BYE sent".into(),
                    call_id: Some(call_id),
                })
            }
            Action::End { number } => {
                if !self.meetings.contains_key(&number) {
                    return Err(ActionError::NotRunning(number));
                }
                let calls = self.calls_in(&number);
                info!(
                    ?number,
                    calls = calls.len(),
                    "meeting ended by the operator: BYE to every call"
                );
                for call in &calls {
                    self.hang_up(*call, crate::ops::cdr::CallEnd::MeetingEnded);
                }
                Ok(done(format!("BYE to {} call(s)", calls.len())))
            }
            Action::PutMeeting {
                number,
                policy,
                mode,
            } => {
                if self.admin.file_meetings.contains(&number) {
                    return Err(ActionError::InConfigFile(number));
                }
                let mut api = self.admin.api_meetings.clone();
                match api.iter_mut().find(|(n, ..)| *n == number) {
                    Some(m) => *m = (number.clone(), policy, mode),
                    None => api.push((number.clone(), policy, mode)),
                }
                self.save_api_meetings(api)?;
                Ok(done(format!(
                    "meeting {number}: {}, {} switching (a running meeting keeps its policy until it ends)",
                    policy_name(policy),
                    mode_name(mode)
                )))
            }
            Action::DeleteMeeting { number } => {
                if self.admin.file_meetings.contains(&number) {
                    return Err(ActionError::InConfigFile(number));
                }
                let mut api = self.admin.api_meetings.clone();
                let before = api.len();
                api.retain(|(n, ..)| *n != number);
                if api.len() == before {
                    return Err(ActionError::NoSuchMeeting(number));
                }
                self.save_api_meetings(api)?;
                Ok(done(format!("meeting {number} removed")))
            }
            Action::DialOut { number, target } => self.dial_out(number, target).await,
            Action::Drain => {
                let d = self.start_drain("the admin API");
                Ok(done(format!(
                    "draining since {}: new calls get 503; every call left gets BYE at {}",
                    d.since, d.deadline
                )))
            }
        }
    }

    /// Keeps the API's meetings in the data directory, then in the call rules.
    fn save_api_meetings(
        &mut self,
        api: Vec<(String, Policy, switch::meeting::switching::Mode)>,
    ) -> Result<(), ActionError> {
        let dir = crate::config::data_dir(&self.settings.tls_files);
        stored::save(&dir, &api).map_err(|e| ActionError::Failed(format!("meetings file: {e}")))?;
        self.settings
            .meetings
            .retain(|(n, ..)| self.admin.file_meetings.contains(n));
        self.settings.meetings.extend(api.iter().cloned());
        self.admin.api_meetings = api;
        Ok(())
    }

    /// The meeting `number` calls `target` through the trunk: our offer in an INVITE to the
    /// first trunk peer that is up, then the next (R2); the answer in the 2xx joins the
    /// call as a delayed-offer call's ACK would. A meeting that does not run starts.
    async fn dial_out(&mut self, number: String, target: String) -> Result<Done, ActionError> {
        if !self.meetings.contains_key(&number) {
            let rules = self.rules();
            let (policy, mode) = rules
                .meeting(&number)
                .ok_or(ActionError::NoSuchMeeting(number.clone()))?;
            self.start_meeting(&number, policy, mode);
            let plain = policy == Policy::NonSecure || !self.settings.security.secure_media();
            if let Some(m) = self.meetings.get_mut(&number) {
                m.secure = Some(!plain);
                m.security_reason = Some(format!(
                    "started {} by the operator's dial-out to {target}",
                    if plain { "non-secure" } else { "secure" }
                ));
                if plain {
                    self.pool.send(
                        m.id,
                        Command::Meeting(m.id, MeetingCommand::SetSecure(false)),
                    );
                }
            }
        }
        let plain = self
            .meetings
            .get(&number)
            .is_some_and(|m| m.secure == Some(false));
        let ours = match self.make_offer(plain) {
            Ok(o) => o,
            Err(e) => {
                self.end_meeting_if_empty(&number);
                return Err(ActionError::Failed(format!("media set-up: {e}")));
            }
        };
        let Some((call, call_id)) = self
            .trunk
            .call_out_with_id(&target, ours.body.clone())
            .await
        else {
            self.release_lines(&ours.lines);
            self.end_meeting_if_empty(&number);
            return Err(ActionError::Failed("the SIP trunk is not running".into()));
        };
        let participant = self.next_participant;
        self.next_participant += 1;
        info!(
            ?number,
            ?target,
            participant,
            "dialling out through the trunk"
        );
        let mut state = CallState::new(number, call_id.clone(), participant);
        metrics::counter!("mswitch_calls_started_total", "direction" => "out").increment(1);
        state.outbound = true;
        // A phone dialled out to answers as a standard endpoint when it speaks no TIP.
        state.standard_after = self.settings.standard_after;
        state.to_uri = Some(format!("<sip:{target}>"));
        state.lines = ours.lines;
        state.offered = Some((ours.offered, ours.keys));
        state.local_sdp = ours.body;
        self.calls.insert(call, state);
        Ok(Done {
            result: format!("calling {target}"),
            call_id: Some(call_id),
        })
    }

    /// A trunk peer's keep-alive outcome or change of state.
    pub(super) fn peer_heard(
        &mut self,
        peer: usize,
        up: Option<bool>,
        status: Option<Option<u16>>,
    ) {
        let now = crate::admin::http::state::unix_now();
        if self.admin.peers.len() <= peer {
            self.admin.peers.resize(peer + 1, PeerRecord::default());
        }
        let r = &mut self.admin.peers[peer];
        if let Some(up) = up
            && r.up != Some(up)
        {
            r.up = Some(up);
            r.since = Some(now);
        }
        if let Some(status) = status {
            r.last_keepalive = Some(KeepAliveView { at: now, status });
        }
    }
}

/// Logs an admin request the loop could not answer (the handler went away).
pub(super) fn reply_lost(what: &str) {
    warn!("admin API: the {what} request's caller went away before its answer");
}

/// Starts the admin API when `[admin] https` is set: the accounts (a first `admin` with a
/// random password, printed once, when there is none), the web identity, the listeners.
/// The meetings configured through the API join the call rules.
pub(super) fn start_admin(
    settings: &mut crate::config::Settings,
    tls: &crate::certs::TlsSources,
) -> Result<super::AdminSide, super::AppError> {
    use crate::admin::{http, store};
    let dir = crate::config::data_dir(&settings.tls_files);
    let file_meetings: Vec<String> = settings.meetings.iter().map(|(n, ..)| n.clone()).collect();
    let api_meetings = stored::load(&dir).map_err(std::io::Error::other)?;
    for m in &api_meetings {
        if file_meetings.contains(&m.0) {
            warn!(number = ?m.0, "meeting configured both in the file and through the API: the file's is used");
        } else {
            settings.meetings.push(m.clone());
        }
    }
    let mut side = super::AdminSide {
        requests: None,
        server: None,
        started: std::time::Instant::now(),
        reports: std::collections::HashMap::new(),
        peers: Vec::new(),
        certificates: super::certs::in_use(tls, settings.admin.identity.as_ref())
            .into_iter()
            .map(|(unit, der, _)| (unit.name().to_owned(), der.to_vec()))
            .collect(),
        metrics: None,
        file_meetings,
        api_meetings,
    };
    let admin = settings.admin.clone();
    // The recorder exists from the start, so that every count is kept.
    let _ = crate::ops::metrics::handle();
    if admin.https.is_none() && admin.metrics.is_none() {
        return Ok(side);
    }
    let other = |e: String| super::AppError::Io(std::io::Error::other(e));
    let mut accounts = store::load_with(&dir, admin.passwords).map_err(|e| other(e.to_string()))?;
    if accounts.is_empty() && admin.https.is_some() {
        let password = first_password().ok_or_else(|| other("the system RNG failed".into()))?;
        store::set_password(
            &dir,
            "admin",
            crate::admin::accounts::Role::Admin,
            &password,
            ("mswitch", "first start", http::state::unix_now()),
        )
        .map_err(|e| other(e.to_string()))?;
        accounts = store::load_with(&dir, admin.passwords).map_err(|e| other(e.to_string()))?;
        // The one time a password is logged (issue 16): the first start's, for the
        // operator to sign in with and then change (`mswitch admin passwd admin`).
        warn!(
            "no admin account existed: made `admin` with the password {password} (shown this once; change it with `mswitch admin passwd admin`)"
        );
    }
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let state = std::sync::Arc::new(http::state::AdminState {
        accounts: std::sync::Mutex::new(http::state::AccountsCache::new(accounts, admin.passwords)),
        sessions: std::sync::Mutex::new(crate::admin::sessions::Sessions::new(admin.sessions)),
        data_dir: dir,
        app: tx,
        node_name: settings.tls_files.subject.clone(),
    });
    side.requests = Some(rx);
    if let Some(addr) = admin.metrics {
        let local = crate::ops::http::start(addr, state.clone())?;
        info!(metrics = %local, "metrics and health for scrapers and supervisors: http://{local}/metrics, /healthz, /readyz");
        side.metrics = Some(local);
    }
    let Some(https) = admin.https else {
        return Ok(side);
    };
    let identity = super::certs::admin_identity(tls, admin.identity.as_ref())?;
    let server_tls =
        sip::tls::https_server_config(identity).map_err(crate::certs::CertError::from)?;
    let server = http::start(https, admin.http_redirect, server_tls, state)?;
    let url = if server.https.ip().is_unspecified() {
        format!(
            "https://127.0.0.1:{0}/ on this machine, https://THIS-HOST:{0}/ from others",
            server.https.port()
        )
    } else {
        format!("https://{}/", server.https)
    };
    info!(
        https = %server.https, http_redirect = ?server.http_redirect,
        "status page and admin API: {url} (sign in with an account of data_dir/accounts.json; the certificate is the switch's, from data_dir/ca.pem)"
    );
    side.server = Some(server);
    Ok(side)
}

/// 20 characters from the system RNG (120 bits), letters and digits only so that it can
/// be copied from a log line.
fn first_password() -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let random = crate::admin::http::state::random64()?;
    Some(
        random
            .iter()
            .take(20)
            .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
            .collect(),
    )
}

//! The driver's side of running in production (issue 17): the drain, liveness and
//! readiness, the metrics call control counts or copies in before a scrape, and the call
//! record written when a call ends.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;

use metrics::{counter, gauge, histogram};
use sip::ua::{CallHandle, PeerState};
use switch::meeting::report::{LineKeying, MeetingReport};
use switch::udp::MeetingId;
use tracing::{info, warn};

use super::{App, CallState};
use crate::admin::http::state::unix_now;
use crate::admin::view::{DrainView, HealthView, ReadyView};
use crate::ops::cdr::{CallEnd, CallRecord, CallSecurity};

/// What stops the switch: the first SIGTERM (or the API) drains, a second one or Ctrl-C
/// ends every call at once.
#[derive(Debug)]
pub enum Stop {
    /// Take no new call; end the rest at the drain deadline.
    Drain,
    /// End every call now.
    Now,
    /// Not a stop: SIGHUP's configuration, read again; its certificate paths apply to new
    /// connections (issue 18).
    Reload(Box<crate::config::Settings>),
}

/// A drain under way.
#[derive(Debug, Clone)]
pub(super) struct Drain {
    pub(super) since: u64,
    pub(super) deadline: tokio::time::Instant,
    pub(super) deadline_unix: u64,
    pub(super) by: String,
}

/// A media worker whose loop has not gone round for this long is stuck.
const WORKER_STUCK_MS: u64 = 2000;

pub(super) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl App {
    /// Starts draining: new INVITEs get 503 with Retry-After, readiness turns false,
    /// running meetings go on until the deadline.
    pub(super) fn start_drain(&mut self, by: &str) -> DrainView {
        if let Some(d) = &self.ops.drain {
            return DrainView {
                since: d.since,
                deadline: d.deadline_unix,
                by: d.by.clone(),
            };
        }
        let after = self.settings.admin.drain_deadline;
        let d = Drain {
            since: unix_now(),
            deadline: tokio::time::Instant::now() + after,
            deadline_unix: unix_now() + after.as_secs(),
            by: by.to_owned(),
        };
        info!(
            by,
            calls = self.calls.len(),
            deadline_s = after.as_secs(),
            "draining: new calls get 503 with Retry-After; running meetings go on until their last call ends or the deadline, then BYE (a second SIGTERM or Ctrl-C ends every call now)"
        );
        gauge!("mswitch_draining").set(1.0);
        let view = DrainView {
            since: d.since,
            deadline: d.deadline_unix,
            by: d.by.clone(),
        };
        self.ops.drain = Some(d);
        view
    }

    /// Liveness: this loop answers (it is answering), and every media worker's loop went
    /// round within [`WORKER_STUCK_MS`].
    pub(super) fn health(&self) -> HealthView {
        let now = unix_ms();
        let ages: Vec<u64> = self
            .worker_stats()
            .iter()
            .map(|w| now.saturating_sub(w.last_loop_ms.load(Relaxed)))
            .collect();
        HealthView {
            status: if ages.iter().all(|a| *a < WORKER_STUCK_MS) {
                "ok"
            } else {
                "stuck"
            },
            workers_ms_since_loop: ages,
        }
    }

    /// Readiness: not draining, a trunk peer up when keep-alives tell (all of them
    /// unknown counts as up: nothing says they are down), media ports left.
    pub(super) fn readiness(&self) -> ReadyView {
        let mut reasons = Vec::new();
        if self.ops.drain.is_some() {
            reasons.push("draining".to_owned());
        }
        let known: Vec<bool> = self.admin.peers.iter().filter_map(|p| p.up).collect();
        if !self.settings.peers.is_empty() && !known.is_empty() && !known.iter().any(|u| *u) {
            reasons.push("no trunk peer answers keep-alives".to_owned());
        }
        let range = &self.settings.ports;
        let total = usize::from(*range.end()) - usize::from(*range.start()) + 1;
        if self.ports.in_use() + crate::config::MIN_MEDIA_PORTS > total {
            reasons.push("no media port left for a call".to_owned());
        }
        let (cluster, notes) = self.cluster_readiness();
        reasons.extend(cluster);
        let ready = reasons.is_empty();
        gauge!("mswitch_ready").set(if ready { 1.0 } else { 0.0 });
        ReadyView {
            ready,
            reasons,
            notes,
        }
    }

    /// Copies the counters kept as atomics (workers, trunk) and the gauges of call
    /// control's state into the recorder, before a scrape.
    pub(super) fn collect_metrics(&self) {
        let mut meetings: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for label in ["secure", "non_secure", "none"] {
            meetings.insert(label, (0, 0));
        }
        for (number, m) in &self.meetings {
            let label = match m.secure {
                Some(true) => "secure",
                Some(false) => "non_secure",
                None => "none",
            };
            let e = meetings.entry(label).or_default();
            e.0 += 1;
            e.1 += self.calls.values().filter(|c| &c.number == number).count() as u64;
        }
        for (label, (n, p)) in meetings {
            gauge!("mswitch_meetings", "security" => label).set(n as f64);
            gauge!("mswitch_participants", "security" => label).set(p as f64);
        }
        let range = &self.settings.ports;
        let total = usize::from(*range.end()) - usize::from(*range.start()) + 1;
        let used = self.ports.in_use();
        gauge!("mswitch_media_ports", "state" => "used").set(used as f64);
        gauge!("mswitch_media_ports", "state" => "free").set(total.saturating_sub(used) as f64);
        let (mut pin, mut bin, mut pout, mut bout, mut foreign, mut send_dropped) =
            (0, 0, 0, 0, 0, 0);
        let mut fenced = 0;
        for (i, w) in self.worker_stats().iter().enumerate() {
            let worker = i.to_string();
            pin += w.packets_in.load(Relaxed);
            bin += w.bytes_in.load(Relaxed);
            pout += w.packets_out.load(Relaxed);
            bout += w.bytes_out.load(Relaxed);
            foreign += w.foreign_source.load(Relaxed);
            send_dropped += w.send_dropped.load(Relaxed);
            fenced += w.fenced_meetings.load(Relaxed);
            counter!("mswitch_worker_busy_milliseconds_total", "worker" => worker.clone())
                .absolute(w.busy_ns.load(Relaxed) / 1_000_000);
            counter!("mswitch_worker_recv_calls_total", "worker" => worker.clone())
                .absolute(w.recv_calls.load(Relaxed));
            counter!("mswitch_worker_send_calls_total", "worker" => worker.clone())
                .absolute(w.send_calls.load(Relaxed));
            counter!("mswitch_worker_wakeups_total", "worker" => worker.clone())
                .absolute(w.wakeups.load(Relaxed));
            counter!("mswitch_worker_datagrams_total", "worker" => worker)
                .absolute(w.packets_in.load(Relaxed));
        }
        counter!("mswitch_media_packets_total", "direction" => "in").absolute(pin);
        counter!("mswitch_media_packets_total", "direction" => "out").absolute(pout);
        counter!("mswitch_media_bytes_total", "direction" => "in").absolute(bin);
        counter!("mswitch_media_bytes_total", "direction" => "out").absolute(bout);
        counter!("mswitch_media_dropped_total", "reason" => "foreign_source").absolute(foreign);
        counter!("mswitch_media_dropped_total", "reason" => "send_dropped").absolute(send_dropped);
        if self.cluster.is_some() {
            counter!("mswitch_cluster_fenced_meetings_total").absolute(fenced);
        }
        let t = self.trunk.stats();
        for (reason, v) in [
            ("not_peer", &t.refused_not_peer),
            ("clear_from_tls_peer", &t.refused_clear),
            ("limit", &t.refused_limit),
        ] {
            counter!("mswitch_sip_connections_refused_total", "reason" => reason)
                .absolute(v.load(Relaxed));
        }
        counter!("mswitch_tls_handshake_failures_total").absolute(t.tls_refused.load(Relaxed));
        for (reason, v) in [
            ("framing", &t.framing_errors),
            ("slow_reader", &t.slow_readers_closed),
            ("idle", &t.idle_closed),
            ("connect_failed", &t.connect_failures),
            ("accept_error", &t.accept_errors),
            ("certificate_expired", &t.certificate_expired_closed),
        ] {
            counter!("mswitch_sip_stream_errors_total", "reason" => reason)
                .absolute(v.load(Relaxed));
        }
        for (direction, way) in [
            ("in", sip::message_counts::Direction::In),
            ("out", sip::message_counts::Direction::Out),
        ] {
            for (method, n) in t.messages.requests(way) {
                counter!("mswitch_sip_requests_total", "direction" => direction, "method" => method)
                    .absolute(n);
            }
            for (code, n) in t.messages.responses(way) {
                counter!("mswitch_sip_responses_total", "direction" => direction, "code" => code.to_string())
                    .absolute(n);
            }
        }
        let now = i64::try_from(unix_now()).unwrap_or(i64::MAX);
        // Per unit, the certificate that expires first (an identity's chain or a trust
        // unit's anchors: the one that needs replacing first is what an alert wants).
        let mut soonest: BTreeMap<&str, i64> = BTreeMap::new();
        for (unit, der) in &self.admin.certificates {
            if let Some(t) = x509_not_after(der) {
                let e = soonest.entry(unit.as_str()).or_insert(i64::MAX);
                *e = (*e).min(t - now);
            }
        }
        for (unit, expiry) in soonest {
            gauge!("mswitch_certificate_expiry_seconds", "unit" => unit.to_owned())
                .set(expiry as f64);
        }
        gauge!("mswitch_draining").set(if self.ops.drain.is_some() { 1.0 } else { 0.0 });
        let _ = self.readiness();
    }

    /// Counts what a meeting's new report adds to its previous one (drops by reason,
    /// DTLS outcomes, keyframe requests).
    pub(super) fn count_report(&self, meeting: MeetingId, new: &MeetingReport) {
        let old = self.admin.reports.get(&meeting);
        for (label, n) in &new.dropped {
            let before = old
                .and_then(|o| o.dropped.iter().find(|(l, _)| l == label))
                .map_or(0, |(_, b)| *b);
            if *n > before {
                counter!("mswitch_media_dropped_total", "reason" => *label).increment(n - before);
            }
        }
        let s = &new.stats;
        let o = old.map(|o| o.stats.clone()).unwrap_or_default();
        for (label, n, before) in [
            ("unknown_leg", s.unknown_leg, o.unknown_leg),
            (
                "ssrc_on_wrong_leg",
                s.ssrc_on_wrong_leg,
                o.ssrc_on_wrong_leg,
            ),
            ("hop_auth_failed", s.hop_auth_failed, o.hop_auth_failed),
            ("wrong_leg_kind", s.wrong_leg_kind, o.wrong_leg_kind),
            ("other_security", s.other_security, o.other_security),
            ("dtls_dropped", s.dtls_dropped, o.dtls_dropped),
        ] {
            if n > before {
                counter!("mswitch_media_dropped_total", "reason" => label).increment(n - before);
            }
        }
        if s.dtls_connected > o.dtls_connected {
            counter!("mswitch_dtls_handshakes_total", "result" => "ok")
                .increment(s.dtls_connected - o.dtls_connected);
        }
        if s.dtls_failed > o.dtls_failed {
            counter!("mswitch_dtls_handshakes_total", "result" => "failed")
                .increment(s.dtls_failed - o.dtls_failed);
        }
        if s.keyframe_requests > o.keyframe_requests {
            counter!("mswitch_keyframe_requests_total")
                .increment(s.keyframe_requests - o.keyframe_requests);
        }
    }

    /// A trunk peer's state for the metrics.
    pub(super) fn peer_metric(peer: usize, state: PeerState) {
        gauge!("mswitch_trunk_peer_up", "peer" => peer.to_string())
            .set(if state == PeerState::Up { 1.0 } else { 0.0 });
    }

    /// A line of `call` finished TIP: once every line did, its join latency.
    pub(super) fn line_established(&mut self, participant: u32, secure: bool) {
        counter!("mswitch_tip_negotiations_total", "kind" => "muxctrl", "result" => "ok")
            .increment(1);
        if secure {
            counter!("mswitch_tip_negotiations_total", "kind" => "spimap", "result" => "ok")
                .increment(1);
        }
        self.line_joined(participant);
    }

    /// A line of `participant` takes media (TIP through, or a transcrypt leg): the join
    /// latency is recorded when its last line does.
    pub(super) fn line_joined(&mut self, participant: u32) {
        let Some(c) = self
            .calls
            .values_mut()
            .find(|c| c.participant == participant)
        else {
            return;
        };
        c.lines_established += 1;
        if !c.latency_recorded && c.lines_established >= c.lines.len().max(1) {
            c.latency_recorded = true;
            histogram!(crate::ops::metrics::JOIN_LATENCY).record(c.invited.elapsed().as_secs_f64());
        }
    }

    /// The record of a call that ends now.
    pub(super) fn record_call(&self, c: &CallState, end: CallEnd) {
        counter!("mswitch_calls_ended_total", "reason" => end.label()).increment(1);
        let report = self
            .meetings
            .get(&c.number)
            .and_then(|m| self.admin.reports.get(&m.id));
        let secure = report.is_some_and(|r| r.secure);
        let p = report.and_then(|r| r.participants.iter().find(|p| p.id == c.participant));
        let lines = p.map_or(&[][..], |p| p.lines.as_slice());
        let mut dropped: BTreeMap<String, u64> = BTreeMap::new();
        for l in lines {
            for (r, n) in switch::forward::DropReason::ALL
                .iter()
                .zip(l.counters.dropped)
            {
                if n > 0 {
                    *dropped.entry(r.label().to_owned()).or_default() += n;
                }
            }
        }
        let end_ms = unix_ms();
        let record = CallRecord {
            call_id: c.call_id.clone(),
            number: c.number.clone(),
            direction: if c.outbound { "out" } else { "in" }.into(),
            caller: c.from_uri.clone(),
            callee: c.to_uri.clone(),
            trunk_peer: c
                .peer
                .and_then(|i| self.settings.peers.get(i))
                .map(|p| p.addr.to_string()),
            start_ms: c.start_ms,
            answer_ms: c.answer_ms,
            end_ms,
            duration_s: end_ms.saturating_sub(c.answer_ms.unwrap_or(c.start_ms)) as f64 / 1000.0,
            end,
            security: CallSecurity {
                keying: lines
                    .iter()
                    .map(|l| {
                        match l.keying {
                            LineKeying::Dtls => "dtls",
                            LineKeying::Sdes => "sdes",
                            LineKeying::Plain => "none",
                        }
                        .to_owned()
                    })
                    .collect(),
                per_hop_suite: lines
                    .iter()
                    .find_map(|l| l.suite)
                    .map(|s| s.sdes_name().to_owned()),
                end_to_end: if secure {
                    "AES_CM_128_HMAC_SHA1_80 with EKT".into()
                } else {
                    "none".into()
                },
                lock_icon: secure
                    && !lines.is_empty()
                    && lines
                        .iter()
                        .all(|l| l.keying != LineKeying::Plain && l.established && !l.held),
                media_path: (!lines.is_empty()).then(|| super::admin::media_path(lines).to_owned()),
            },
            screens: p.map(|p| p.screens),
            packets_in: lines.iter().map(|l| l.counters.packets_in).sum(),
            bytes_in: lines.iter().map(|l| l.counters.bytes_in).sum(),
            packets_out: lines.iter().map(|l| l.counters.packets_out).sum(),
            bytes_out: lines.iter().map(|l| l.counters.bytes_out).sum(),
            dropped,
        };
        if let Err(e) = self.ops.calls.append(&record) {
            warn!(call_id = ?c.call_id, "call record not written: {e}");
        }
    }

    /// The record of an INVITE refused before it became a call.
    pub(super) fn record_refusal(
        &self,
        call_id: &str,
        number: &str,
        status: u16,
        why: String,
        uris: (Option<String>, Option<String>),
    ) {
        counter!("mswitch_calls_refused_total", "status" => status.to_string()).increment(1);
        let mut c = CallState::new(number.to_owned(), call_id.to_owned(), 0);
        c.from_uri = uris.0;
        c.to_uri = uris.1;
        let now = unix_ms();
        let record = CallRecord {
            call_id: call_id.to_owned(),
            number: number.to_owned(),
            direction: "in".into(),
            caller: c.from_uri,
            callee: c.to_uri,
            trunk_peer: None,
            start_ms: now,
            answer_ms: None,
            end_ms: now,
            duration_s: 0.0,
            end: CallEnd::Refused(status, why),
            security: CallSecurity::default(),
            screens: None,
            packets_in: 0,
            bytes_in: 0,
            packets_out: 0,
            bytes_out: 0,
            dropped: BTreeMap::new(),
        };
        counter!("mswitch_calls_ended_total", "reason" => "refused").increment(1);
        if let Err(e) = self.ops.calls.append(&record) {
            warn!(?call_id, "call record not written: {e}");
        }
    }

    /// Ends `call` from our side (BYE, or a 480 while it rings) because of `why`.
    pub(super) fn hang_up(&mut self, call: CallHandle, why: CallEnd) {
        if let Some(c) = self.calls.get_mut(&call) {
            c.end.get_or_insert(why);
        }
        self.trunk.hangup(call);
        self.leave(call);
    }
}

/// Unix time a DER certificate expires.
fn x509_not_after(der: &[u8]) -> Option<i64> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// The webhooks' delivery tasks, their trust loaded now that the generated CA exists:
/// without trust files of their own, the switch's (configuration and store, trunk and
/// other trust).
pub(super) fn start_webhooks(
    settings: &crate::config::Settings,
    tls: &crate::certs::TlsSources,
) -> Result<crate::ops::webhooks::Notifier, super::AppError> {
    let anchors = webhook_anchors(tls);
    let mut hooks = Vec::new();
    for (i, w) in settings.webhooks.iter().enumerate() {
        let hook = w.check(&anchors).map_err(|e| {
            super::AppError::Io(std::io::Error::other(format!(
                "webhook[{i}] {}: {e}",
                w.url
            )))
        })?;
        if !w.verify {
            warn!(url = %w.url, "webhook: the receiver's certificate is NOT verified (verify = false in the configuration)");
        }
        info!(url = %w.url, "webhook: events go there, signed (X-Mswitch-Signature)");
        hooks.push(hook);
    }
    Ok(crate::ops::webhooks::Notifier::start(hooks))
}

/// The anchors a webhook receiver is verified against by default.
pub(super) fn webhook_anchors(
    tls: &crate::certs::TlsSources,
) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    let mut anchors = tls.trunk_anchors().unwrap_or_default();
    anchors.extend(tls.store.trust(crate::certs::store::Unit::OtherTrust));
    anchors
}

impl App {
    /// An event for the external manager (queued, never waited for).
    pub(super) fn event(&self, event: &'static str, data: serde_json::Value) {
        self.ops.notifier.notify(&crate::ops::webhooks::Event {
            event,
            at_ms: unix_ms(),
            data,
        });
    }
}

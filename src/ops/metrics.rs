//! Prometheus metrics (issue 17): the `metrics` facade with the Prometheus exporter's
//! recorder, installed once per process, rendered by the `/metrics` handlers. Every name
//! is `mswitch_*`; labels are bounded sets (reasons, kinds, directions, workers, trunk
//! peers, certificate units), never a call or a participant.
//!
//! Counters kept elsewhere as atomics (media workers, the SIP trunk) are copied in just
//! before a scrape ([`crate::app`] answers `AdminRequest::Metrics`); events (calls, TIP,
//! speaker changes) count where they happen.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Join latency (INVITE to every line through TIP), seconds.
pub const JOIN_LATENCY: &str = "mswitch_join_latency_seconds";

/// Every metric with its type and meaning: the README's table is this list.
pub const DESCRIPTIONS: &[(&str, &str, &str)] = &[
    (
        "mswitch_meetings",
        "gauge",
        "running meetings, by `security` (secure, non_secure, none before the first call)",
    ),
    (
        "mswitch_participants",
        "gauge",
        "participants of running meetings, by the meeting's `security`",
    ),
    (
        "mswitch_calls_started_total",
        "counter",
        "calls admitted, by `direction` (in, out)",
    ),
    (
        "mswitch_calls_ended_total",
        "counter",
        "calls ended, by `reason` (the call record's end reason)",
    ),
    (
        "mswitch_calls_refused_total",
        "counter",
        "INVITEs refused, by SIP `status`",
    ),
    (
        "mswitch_sip_requests_total",
        "counter",
        "SIP requests, by `direction` (in, out) and `method` (INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, PRACK, INFO, REFER, NOTIFY, SUBSCRIBE, MESSAGE, REGISTER, PUBLISH, other)",
    ),
    (
        "mswitch_sip_responses_total",
        "counter",
        "SIP responses, by `direction` (in, out) and status `code`",
    ),
    (
        "mswitch_trunk_peer_up",
        "gauge",
        "1 when a trunk `peer` (its index) answers keep-alives, 0 when it does not; absent before the first answer",
    ),
    (
        "mswitch_sip_connections_refused_total",
        "counter",
        "SIP connections closed at once, by `reason` (not_peer, clear_from_tls_peer, limit)",
    ),
    (
        "mswitch_tls_handshake_failures_total",
        "counter",
        "SIP TLS handshakes refused (certificate or subject)",
    ),
    (
        "mswitch_sip_stream_errors_total",
        "counter",
        "SIP streams closed, by `reason` (framing, slow_reader, idle, connect_failed, accept_error, certificate_expired)",
    ),
    (
        "mswitch_dtls_handshakes_total",
        "counter",
        "DTLS-SRTP handshakes, by `result` (ok, failed)",
    ),
    (
        "mswitch_tip_negotiations_total",
        "counter",
        "TIP negotiations of a line, by `kind` (muxctrl, spimap) and `result` (ok, timeout)",
    ),
    (
        "mswitch_media_packets_total",
        "counter",
        "datagrams through the media workers, by `direction` (in, out)",
    ),
    (
        "mswitch_media_bytes_total",
        "counter",
        "their bytes, by `direction`",
    ),
    (
        "mswitch_media_dropped_total",
        "counter",
        "media dropped, by `reason`: the forwarder's (auth_failed is a verification failure, replayed a replay, ...) and the meeting's and workers' own",
    ),
    (
        "mswitch_keyframe_requests_total",
        "counter",
        "keyframe requests (PLI, FIR, TIP REFRESH) from receivers",
    ),
    (
        "mswitch_speaker_changes_total",
        "counter",
        "site speaker changes",
    ),
    (
        "mswitch_media_ports",
        "gauge",
        "media ports, by `state` (used, free)",
    ),
    (
        "mswitch_worker_busy_milliseconds_total",
        "counter",
        "time a media `worker` spent working (not waiting)",
    ),
    (
        "mswitch_worker_recv_calls_total",
        "counter",
        "recvmmsg calls of a `worker` (datagrams in / calls = the batch achieved)",
    ),
    (
        "mswitch_cluster_redirects_total",
        "counter",
        "calls answered 302 toward the node that owns their meeting (issue 21)",
    ),
    (
        "mswitch_cluster_give_ups_total",
        "counter",
        "times this node could not renew its cluster lease in time and ended every call",
    ),
    (
        "mswitch_cluster_conflicts_total",
        "counter",
        "meetings served here while etcd was unreachable that another node had registered: ended here",
    ),
    (
        "mswitch_cluster_fenced_meetings_total",
        "counter",
        "meetings a media worker dropped because the lease they were claimed under passed its deadline",
    ),
    (
        "mswitch_worker_send_calls_total",
        "counter",
        "sendmmsg calls of a `worker` (with GSO one carries several runs of datagrams)",
    ),
    (
        "mswitch_worker_wakeups_total",
        "counter",
        "wake-ups of a `worker` with a socket ready (datagrams / wake-ups = what one serves)",
    ),
    (
        "mswitch_worker_datagrams_total",
        "counter",
        "datagrams a `worker` received",
    ),
    (
        "mswitch_join_latency_seconds",
        "histogram",
        "from a call's INVITE to TIP done on every line",
    ),
    (
        "mswitch_certificate_expiry_seconds",
        "gauge",
        "seconds until the first certificate of a `unit` (sip-identity, admin-identity, trunk-trust, other-trust) expires (negative: expired)",
    ),
    (
        "mswitch_draining",
        "gauge",
        "1 while draining (new calls refused with 503)",
    ),
    (
        "mswitch_ready",
        "gauge",
        "1 when /readyz says the switch should get new calls",
    ),
    (
        "mswitch_webhook_events_total",
        "counter",
        "webhook deliveries, by `result` (delivered, retried, failed after every attempt, dropped when a queue is full)",
    ),
];

/// The recorder's handle, installed on first use (one per process: tests run several
/// switches in one process and share it).
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(JOIN_LATENCY.into()),
                    &[0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0],
                )
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            for (name, kind, help) in DESCRIPTIONS {
                match *kind {
                    "counter" => metrics::describe_counter!(*name, *help),
                    "gauge" => metrics::describe_gauge!(*name, *help),
                    _ => metrics::describe_histogram!(*name, *help),
                }
            }
            Some(handle)
        })
        .as_ref()
}

/// The text exposition format, after the histograms' upkeep.
pub fn render() -> String {
    handle().map_or_else(String::new, |h| {
        h.run_upkeep();
        h.render()
    })
}

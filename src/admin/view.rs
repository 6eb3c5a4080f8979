//! What the admin API shows (`/api/v1/...`), as JSON values. Built by the application's
//! call-control loop from its own state and its meetings' reports; no key material, no
//! password, nothing a viewer may not read.

use serde::Serialize;

/// `GET /api/v1/system`.
#[derive(Debug, Clone, Serialize)]
pub struct SystemView {
    /// `mswitch` version.
    pub version: &'static str,
    /// Seconds since the start.
    pub uptime_s: u64,
    /// Where it listens.
    pub listeners: Listeners,
    /// Media worker threads.
    pub workers: usize,
    /// Media ports.
    pub media_ports: PortsView,
    /// The Device Security mode (T6).
    pub device_security: String,
    /// New calls are taken (not draining).
    pub accepting_calls: bool,
    /// The drain under way, if any.
    pub draining: Option<DrainView>,
    /// The certificates in use.
    pub certificates: Vec<CertificateView>,
    /// The management security level (seeds 000/001), per service and effective.
    pub security_level: crate::admin::levels::LevelView,
    /// This switch's place in a cluster (`null`: it runs alone).
    pub cluster: Option<ClusterView>,
}

/// A cluster as this node sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    /// This node's id.
    pub node_id: String,
    /// Where other nodes redirect calls for its meetings.
    pub sip_uri: String,
    /// It holds a lease (false after giving its meetings up, until it joins again).
    pub registered: bool,
    /// etcd answers.
    pub etcd_reachable: bool,
    /// What new meetings get while etcd is unreachable (`refuse`, `local`).
    pub etcd_down: &'static str,
    /// The lease's time to live.
    pub lease_ttl_s: u64,
    /// Its media workers' busy share, as last published.
    pub cpu: f32,
    /// The meetings it holds, with their fencing tokens.
    pub held: Vec<HeldMeeting>,
    /// The live nodes, as the registry last listed them (at most 5 s old).
    pub nodes: Vec<crate::cluster::placement::NodeRecord>,
}

/// A meeting held in the registry.
#[derive(Debug, Clone, Serialize)]
pub struct HeldMeeting {
    /// Its number.
    pub number: String,
    /// Its claim's revision: the fencing token.
    pub token: i64,
}

/// Listening addresses (`null`: off).
#[derive(Debug, Clone, Serialize)]
pub struct Listeners {
    /// SIP over UDP.
    pub sip_udp: Option<String>,
    /// SIP over TCP.
    pub sip_tcp: Option<String>,
    /// SIP over TLS.
    pub sip_tls: Option<String>,
    /// This API.
    pub admin_https: Option<String>,
    /// The redirect to it.
    pub admin_http_redirect: Option<String>,
}

/// The media port range.
#[derive(Debug, Clone, Serialize)]
pub struct PortsView {
    /// The configured range.
    pub range: String,
    /// In use.
    pub used: usize,
    /// Free.
    pub free: usize,
}

/// A certificate's summary.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CertificateView {
    /// Its unit in the certificate store (`sip-identity`, `admin-identity`, `trunk-trust`,
    /// `other-trust`).
    pub unit: String,
    /// Where it is used.
    pub used_for: String,
    /// Subject DN.
    pub subject: String,
    /// subjectAltName entries (`DNS:...`, `IP:...`).
    pub sans: Vec<String>,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number (hex bytes).
    pub serial: String,
    /// Key type and size (`RSA 2048`, `ECDSA P-256 256`).
    pub key: String,
    /// Extended key usages.
    pub eku: Vec<String>,
    /// Not valid after (RFC 3339, UTC).
    pub not_after: String,
    /// Days left (negative: expired).
    pub days_left: i64,
    /// SHA-256 of the DER, hex.
    pub sha256: String,
    /// Within the largest `[tls] expiry_warning_days` of its expiry, or expired.
    pub expiring: bool,
}

/// `GET /api/v1/peers`: a trunk peer.
#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    /// Its index (Unified CM1..CM5 order).
    pub index: usize,
    /// ip:port.
    pub address: String,
    /// udp, tcp or tls.
    pub transport: String,
    /// The subject its certificate must carry.
    pub subject: Option<String>,
    /// `up`, `down`, or `unknown` before the first keep-alive (or with keep-alives off).
    pub state: &'static str,
    /// Unix time of the last change of state.
    pub since: Option<u64>,
    /// Unix time of the last OPTIONS outcome, and its status (`null`: no answer).
    pub last_keepalive: Option<KeepAliveView>,
}

/// One keep-alive's outcome.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct KeepAliveView {
    /// Unix time.
    pub at: u64,
    /// The status, if one came.
    pub status: Option<u16>,
}

/// `GET /api/v1/meetings[/N]`: a meeting that runs, or one that is configured.
#[derive(Debug, Clone, Serialize)]
pub struct MeetingView {
    /// The meeting number.
    pub number: String,
    /// The conference id while it runs.
    pub conf_id: Option<u64>,
    /// secure, non-secure, best-effort.
    pub policy: String,
    /// Configured (file or API) rather than made on the fly.
    pub configured: bool,
    /// `secure`, `non-secure`, or `none` before its first call.
    pub security: &'static str,
    /// Why it is in that state (its start, or the downgrade that changed it).
    pub security_reason: Option<String>,
    /// site or segment.
    pub switching: String,
    /// Refuses new callers.
    pub locked: bool,
    /// The current site speaker (participant id).
    pub speaker: Option<u32>,
    /// Its participants.
    pub participants: Vec<ParticipantView>,
    /// The forwarder's drops by reason (the whole meeting).
    pub dropped: std::collections::BTreeMap<&'static str, u64>,
}

/// A participant (one call).
#[derive(Debug, Clone, Serialize)]
pub struct ParticipantView {
    /// Its id in the meeting (what kick takes).
    pub id: u32,
    /// Its SIP Call-ID.
    pub call_id: String,
    /// `in` (it called) or `out` (dialled by the switch).
    pub direction: &'static str,
    /// Its media address (the first line's).
    pub remote: Option<String>,
    /// Unix time of its join.
    pub joined_at: u64,
    /// The call is up and its media joined.
    pub joined: bool,
    /// 1 or 3 screens.
    pub screens: Option<u8>,
    /// Its lock icon (secure media on every line: TIP with EKT, or a transcrypt leg keyed
    /// with SRTP).
    pub lock_icon: bool,
    /// `end-to-end` (TIP with EKT: the switch never decrypts its media), `transcrypted` (a
    /// standard endpoint: the switch decrypts and re-protects), or `null` before its lines
    /// are known.
    pub media_path: Option<&'static str>,
    /// Per media line.
    pub lines: Vec<LineView>,
}

/// A media line.
#[derive(Debug, Clone, Serialize)]
pub struct LineView {
    /// audio or video.
    pub media: &'static str,
    /// dtls, sdes or none.
    pub keying: &'static str,
    /// The per-hop SRTP profile (DTLS-SRTP's negotiated one, or the SDES suite).
    pub srtp_profile: Option<&'static str>,
    /// The TIP state: dtls-handshake, muxctrl, spimap, established, failed, or none (a
    /// transcrypt leg).
    pub tip: &'static str,
    /// Held for its re-INVITE to RTP/AVP (a downgrade).
    pub held: bool,
    /// A transcrypt leg: its endpoint speaks no TIP (`tip` is then `none`).
    pub transcrypted: bool,
    /// Datagrams in.
    pub packets_in: u64,
    /// Bytes in.
    pub bytes_in: u64,
    /// Packets forwarded to it.
    pub packets_out: u64,
    /// Their bytes (as received).
    pub bytes_out: u64,
    /// Its media dropped, by reason (only reasons that happened).
    pub dropped: std::collections::BTreeMap<&'static str, u64>,
}

/// `GET /api/v1/status`: what the status page shows, in one request.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    /// The system.
    pub system: SystemView,
    /// The trunk peers.
    pub peers: Vec<PeerView>,
    /// Running and configured meetings.
    pub meetings: Vec<MeetingView>,
}

/// A drain under way.
#[derive(Debug, Clone, Serialize)]
pub struct DrainView {
    /// Unix time it began.
    pub since: u64,
    /// Unix time every call gets BYE, if any is left.
    pub deadline: u64,
    /// What started it (`SIGTERM`, or the account that asked).
    pub by: String,
}

/// `GET /healthz`.
#[derive(Debug, Clone, Serialize)]
pub struct HealthView {
    /// `ok`, or `stuck`.
    pub status: &'static str,
    /// Per media worker: milliseconds since its loop last went round.
    pub workers_ms_since_loop: Vec<u64>,
}

/// `GET /readyz`.
#[derive(Debug, Clone, Serialize)]
pub struct ReadyView {
    /// Whether to send new calls here.
    pub ready: bool,
    /// Why not (empty when ready).
    pub reasons: Vec<String>,
    /// What an operator should know though calls may come (etcd unreachable with
    /// `etcd_down = "local"`: new meetings are served unregistered).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

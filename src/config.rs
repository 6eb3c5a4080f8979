//! The configuration file (TOML). Every value has a default that works on a fresh machine
//! (a loopback trunk peer, a self-signed certificate made in the data directory), so
//! `mswitch run` with no file runs. Unknown keys and bad values are errors that name the
//! key (exit code 2).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::policy::Policy;

/// The fewest media ports a range may have: one call's audio and video lines (RTCP
/// multiplexed).
pub const MIN_MEDIA_PORTS: usize = 2;

/// The most media worker threads: each is a thread with its own epoll and buffers, and a
/// worker per core is what the media path uses (ARCHITECTURE.md).
pub const MAX_WORKERS: usize = 256;

/// `host:port` with a host name (letters, digits, `-` and `.`, RFC 1123 §2.1).
fn host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let name_chars = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    (!host.is_empty() && host.len() <= 253 && host.chars().all(name_chars))
        .then_some(())
        .and(port.parse().ok().map(|p| (host, p)))
}

/// What a name resolved to, in the order the trunk uses it: IPv4 first, each address once.
pub fn resolved_order(addrs: impl IntoIterator<Item = SocketAddr>) -> Vec<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = addrs.into_iter().collect();
    addrs.sort_by_key(|a| (!a.is_ipv4(), *a));
    addrs.dedup();
    addrs
}

/// The addresses `host` resolves to, in [`resolved_order`] (the system resolver).
pub fn resolve(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    use std::net::ToSocketAddrs;
    let addrs = resolved_order((host, port).to_socket_addrs()?);
    if addrs.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no address",
        ));
    }
    Ok(addrs)
}

/// The part of the media port range that the kernel may also hand out as ephemeral ports
/// (`/proc/sys/net/ipv4/ip_local_port_range`, two numbers): an outgoing connection there
/// can take a media port from the switch.
pub fn ephemeral_overlap(
    media: &std::ops::RangeInclusive<u16>,
    ip_local_port_range: &str,
) -> Option<std::ops::RangeInclusive<u16>> {
    let mut it = ip_local_port_range
        .split_whitespace()
        .map(|n| n.parse::<u16>().ok());
    let (Some(Some(lo)), Some(Some(hi))) = (it.next(), it.next()) else {
        return None;
    };
    let (a, b) = ((*media.start()).max(lo), (*media.end()).min(hi));
    (a <= b).then_some(a..=b)
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// SIP listeners and behaviour.
    pub sip: SipConfig,
    /// Our certificate and the trust store.
    pub tls: TlsConfig,
    /// The trunk peers (Unified CM1..CM5), in order.
    pub trunk: Vec<TrunkPeerConfig>,
    /// Media ports, workers, suites.
    pub media: MediaConfig,
    /// Meeting defaults and the configured meetings.
    pub meetings: MeetingsConfig,
    /// Configured meetings.
    pub meeting: Vec<MeetingConfig>,
    /// TIP negotiation deadlines.
    pub tip: TipConfig,
    /// The HTTPS admin API and status page.
    pub admin: crate::admin::settings::AdminConfig,
    /// How the log is written.
    pub log: crate::logging::LogConfig,
    /// Events to an external manager over HTTPS.
    pub webhook: Vec<crate::ops::webhooks::WebhookConfig>,
    /// Several switches as one (issue 21); absent: this switch runs alone.
    pub cluster: Option<crate::cluster::config::ClusterConfig>,
}

/// `[tip]`: the negotiation deadlines (seeds-switch.md T1 L10, L11).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TipConfig {
    /// MUXCTRL must complete within this many seconds, else `Media Timeout occurred ...`.
    pub muxctrl_timeout: f64,
    /// SPIMAP must be acknowledged within this many seconds, else `SPIMAP timeout ...`.
    pub spimap_timeout: f64,
    /// A line that has heard no TIP packet this many seconds after its TIP started is a
    /// standard SIP endpoint's: it gets a transcrypt leg (issue 19). 0: never; such a
    /// call then ends at the MUXCTRL deadline as a TIP endpoint's would.
    pub standard_after: f64,
    /// Endpoints whose User-Agent contains one of these (case-insensitive) are standard
    /// from the start, without waiting.
    pub standard_user_agents: Vec<String>,
}

impl Default for TipConfig {
    fn default() -> Self {
        Self {
            muxctrl_timeout: 15.0,
            spimap_timeout: 15.0,
            standard_after: 3.0,
            standard_user_agents: Vec::new(),
        }
    }
}

/// `[sip]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// UDP listener (5060); empty disables it. Unset: off in the Encrypted modes (SIP is
    /// taken only over TLS there), 0.0.0.0:5060 in the others.
    pub udp: Option<String>,
    /// TCP listener (5060); empty disables it. Unset: as `udp`.
    pub tcp: Option<String>,
    /// TLS listener (5061); empty disables it.
    pub tls: String,
    /// Device Security mode (T6): `encrypted-with-sdp-keys`, `encrypted-without-sdp-keys`,
    /// `non-secure`, `non-secure-media-encryption`.
    pub security: String,
    /// OPTIONS keep-alive interval toward trunk peers, seconds; 0 disables it.
    pub options_interval: u64,
    /// Session interval asked for and accepted (RFC 4028), seconds.
    pub session_expires: u32,
    /// Smallest session interval accepted (RFC 4028 Min-SE), seconds.
    pub min_se: u32,
    /// Time for a TLS handshake on a SIP connection, seconds.
    pub handshake_timeout: f64,
    /// Time for a SIP message to arrive whole once its first bytes came, seconds.
    pub message_timeout: f64,
    /// Time a SIP connection may stay open without carrying its first message, seconds.
    pub idle_timeout: f64,
    /// SIP connections one address may hold open.
    pub max_connections_per_address: usize,
    /// SIP connections all addresses together may hold open.
    pub max_connections: usize,
    /// How often the peer certificates of open SIP/TLS connections are checked again,
    /// seconds (one whose certificate expired closes once no call uses it).
    pub certificate_recheck: f64,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            udp: None,
            tcp: None,
            tls: "0.0.0.0:5061".into(),
            security: "encrypted-without-sdp-keys".into(),
            options_interval: 30,
            session_expires: 1800,
            min_se: 90,
            handshake_timeout: sip::conn_limits::TLS_HANDSHAKE.as_secs_f64(),
            message_timeout: sip::conn_limits::PARTIAL_MESSAGE.as_secs_f64(),
            idle_timeout: sip::conn_limits::IDLE.as_secs_f64(),
            max_connections_per_address: sip::conn_limits::PER_ADDRESS,
            max_connections: sip::conn_limits::TOTAL,
            certificate_recheck: sip::conn_limits::CERTIFICATE_RECHECK.as_secs_f64(),
        }
    }
}

/// `[tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Our certificate chain (PEM or DER). Empty: a self-signed one in `data_dir`.
    pub certificate: String,
    /// Its private key (PEM or DER).
    pub key: String,
    /// Trust store files (PEM bundles or DER). Empty: the data directory's local CA.
    pub trust: Vec<String>,
    /// Where generated certificates live.
    pub data_dir: String,
    /// The subject (CN and SAN) of a generated certificate: what Unified CM's trunk
    /// profile "X.509 Subject Name" must say (seed 002 l.1575).
    pub subject: String,
    /// Further SANs of a generated certificate: IP addresses or DNS names.
    pub san: Vec<String>,
    /// The key of a generated certificate: `rsa` (2048, the default, R55) or `ecdsa`.
    pub key_type: String,
    /// Days a generated certificate is valid (1-1825, R60; two years by default).
    pub validity_days: u32,
    /// Days before a certificate's expiry at which a warning is logged, flagged on the
    /// status page and sent to the webhooks, once each (issue 18, R59).
    pub expiry_warning_days: Vec<u32>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            certificate: String::new(),
            key: String::new(),
            trust: Vec::new(),
            data_dir: "mswitch-data".into(),
            subject: "mswitch".into(),
            san: Vec::new(),
            key_type: "rsa".into(),
            validity_days: 730,
            expiry_warning_days: vec![30, 7, 1],
        }
    }
}

/// `[[trunk]]`: one call controller.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkPeerConfig {
    /// `host:port` (an IP address).
    pub address: String,
    /// `udp`, `tcp` or `tls`.
    #[serde(default = "default_transport")]
    pub transport: String,
    /// The subject (CN or SAN) its certificate must carry over TLS.
    #[serde(default)]
    pub subject: Option<String>,
}

fn default_transport() -> String {
    "tls".into()
}

/// `[media]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// UDP port range `first-last` (seed 002 l.2813).
    pub ports: String,
    /// Media worker threads; 0 = one per core.
    pub workers: usize,
    /// The address put in SDP (c=); empty: the one used to reach the first trunk peer.
    pub address: String,
    /// SRTP suites of the per-hop keys, strongest first (T3a): what DTLS-SRTP negotiates
    /// and SDES accepts with each endpoint, which protect the switch's TIP control
    /// (SRTCP). The media is keyed end to end by the senders (EKT, AES_CM_128_HMAC_SHA1_80
    /// in TIP) and never by this setting.
    pub srtp_suites: Vec<String>,
    /// Datagrams per recvmmsg/sendmmsg call, 1-32 (1 turns batching off, to measure it).
    pub batch: usize,
    /// Send each receiver's run of equal-sized datagrams as one UDP generic segmentation
    /// offload send where the kernel has it (false: one datagram at a time, to measure it).
    pub gso: bool,
    /// Receive with UDP generic receive offload where the kernel has it: a run of
    /// datagrams from one sender comes up the stack once (false: one at a time).
    pub gro: bool,
    /// The most media lines a call gets (each is a port and a DTLS association); further
    /// lines are answered with port 0. TIP needs audio and video: 4 leaves room for a
    /// presentation and a data line.
    pub max_lines: usize,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            ports: "16384-32768".into(),
            workers: 0,
            address: String::new(),
            srtp_suites: switch::srtp::Suite::ALL
                .iter()
                .map(|s| s.sdes_name().to_owned())
                .collect(),
            batch: switch::udp::BATCH,
            gso: true,
            gro: true,
            max_lines: 4,
        }
    }
}

/// `[meetings]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeetingsConfig {
    /// Policy of meetings made on the fly.
    pub default_policy: Policy,
    /// Switching of meetings made on the fly: `site` or `segment`.
    pub default_switching: String,
    /// What a number with no configured meeting gets: `create` (a meeting on the fly)
    /// or `reject` (404).
    pub unknown_number: String,
    /// The lowest TelePresence release (from the caller's User-Agent) that counts as
    /// secure (R37); "" judges every endpoint on its offer alone.
    pub min_secure_release: String,
}

impl Default for MeetingsConfig {
    fn default() -> Self {
        Self {
            default_policy: Policy::BestEffort,
            default_switching: "site".into(),
            unknown_number: "create".into(),
            min_secure_release: "1.5".into(),
        }
    }
}

/// `[[meeting]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeetingConfig {
    /// The number dialled (the Request-URI user part).
    pub number: String,
    /// Its policy.
    #[serde(default = "default_policy")]
    pub policy: Policy,
    /// `site` or `segment`.
    #[serde(default = "default_switching")]
    pub switching: String,
}

fn default_policy() -> Policy {
    Policy::BestEffort
}

fn default_switching() -> String {
    "site".into()
}

impl Default for Config {
    fn default() -> Self {
        Self {
            sip: SipConfig::default(),
            tls: TlsConfig::default(),
            // A loopback trunk peer: the switch does its job on one machine out of the box.
            trunk: vec![TrunkPeerConfig {
                address: "127.0.0.1:5061".into(),
                transport: "tls".into(),
                subject: Some("mswitch-peer".into()),
            }],
            media: MediaConfig::default(),
            meetings: MeetingsConfig::default(),
            meeting: Vec::new(),
            tip: TipConfig::default(),
            admin: crate::admin::settings::AdminConfig::default(),
            log: crate::logging::LogConfig::default(),
            webhook: Vec::new(),
            cluster: None,
        }
    }
}

/// A configuration error: the key and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {key}: {message}")]
pub struct ConfigError {
    /// The key (`sip.udp`, `trunk[1].address`, ...), or the file.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

fn err(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

/// The checked, typed form the application runs on.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `[cluster]`, checked; `None`: this switch runs alone.
    pub cluster: Option<crate::cluster::config::ClusterSettings>,
    /// Listeners.
    pub udp: Option<SocketAddr>,
    /// Listeners.
    pub tcp: Option<SocketAddr>,
    /// Listeners.
    pub tls: Option<SocketAddr>,
    /// Device Security mode.
    pub security: sip::security::DeviceSecurity,
    /// Trunk peers.
    pub peers: Vec<sip::ua::TrunkPeer>,
    /// Per trunk peer, its host name and port when configured by name (resolved again
    /// while the switch runs).
    pub peer_names: Vec<Option<(String, u16)>>,
    /// Media port range.
    pub ports: std::ops::RangeInclusive<u16>,
    /// Media workers (resolved: at least 1).
    pub workers: usize,
    /// Datagrams per recvmmsg/sendmmsg call.
    pub batch: usize,
    /// UDP generic segmentation offload on the send path, where the kernel has it.
    pub gso: bool,
    /// UDP generic receive offload, where the kernel has it.
    pub gro: bool,
    /// The most media lines a call gets.
    pub max_lines: usize,
    /// The SFU baseline (comparison only): set by `mswitch run --sfu-baseline`, which only
    /// builds with the tools have, for `mswitch load`; never from the configuration file.
    #[cfg(feature = "tools")]
    pub sfu_baseline: bool,
    /// The SDP address, when configured.
    pub media_address: Option<IpAddr>,
    /// SRTP suites, strongest first.
    pub suites: Vec<switch::srtp::Suite>,
    /// Meetings made on the fly: their policy and switching, or `None` for 404.
    pub on_the_fly: Option<(Policy, switch::meeting::switching::Mode)>,
    /// Configured meetings.
    pub meetings: Vec<(String, Policy, switch::meeting::switching::Mode)>,
    /// The raw sections the TLS set-up needs.
    pub tls_files: TlsConfig,
    /// OPTIONS interval (None: off).
    pub options_interval: Option<std::time::Duration>,
    /// RFC 4028.
    pub session_expires: u32,
    /// RFC 4028.
    pub min_se: u32,
    /// Limits on SIP stream connections.
    pub stream_limits: sip::conn_limits::StreamLimits,
    /// The lowest endpoint release that counts as secure.
    pub min_secure_release: Option<crate::control::release::Release>,
    /// TIP MUXCTRL deadline.
    pub muxctrl_timeout: std::time::Duration,
    /// TIP SPIMAP deadline.
    pub spimap_timeout: std::time::Duration,
    /// No TIP for this long: a standard endpoint (`None`: never).
    pub standard_after: Option<std::time::Duration>,
    /// User-Agent marks of standard endpoints (lower case).
    pub standard_user_agents: Vec<String>,
    /// The admin API.
    pub admin: crate::admin::settings::AdminSettings,
    /// Log lines as JSON objects.
    pub log_json: bool,
    /// The webhooks (URLs and secrets checked; their trust is loaded at start, once the
    /// generated CA exists).
    pub webhooks: Vec<crate::ops::webhooks::WebhookConfig>,
}

fn listener(key: &str, v: &str) -> Result<Option<SocketAddr>, ConfigError> {
    if v.is_empty() {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .map_err(|_| err(key, format!("`{v}` is not an address:port")))
}

fn switching(key: &str, v: &str) -> Result<switch::meeting::switching::Mode, ConfigError> {
    use switch::meeting::switching::Mode;
    match v {
        "site" => Ok(Mode::Site),
        "segment" => Ok(Mode::Segment),
        _ => Err(err(key, format!("`{v}`: expected `site` or `segment`"))),
    }
}

impl Config {
    /// Reads and checks a file.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(path.display().to_string(), e.to_string()))?;
        Self::parse(&text)
    }

    /// Parses and checks TOML text.
    pub fn parse(text: &str) -> Result<Settings, ConfigError> {
        let c: Self = toml::from_str(text).map_err(|e| {
            let msg = e.message().to_owned();
            // toml names the offending key in its message ("unknown field `x`") and
            // gives the span; point at the line.
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(0);
            err(format!("line {line}"), msg)
        })?;
        c.check()
    }

    /// Checks every value.
    pub fn check(self) -> Result<Settings, ConfigError> {
        let security = sip::security::DeviceSecurity::parse(&self.sip.security).ok_or_else(|| {
            err(
                "sip.security",
                format!(
                    "`{}`: expected encrypted-with-sdp-keys, encrypted-without-sdp-keys, non-secure or non-secure-media-encryption",
                    self.sip.security
                ),
            )
        })?;
        let tls = listener("sip.tls", &self.sip.tls)?;
        // The clear listeners: off unless configured in the Encrypted modes.
        fn clear(v: &Option<String>, encrypted: bool) -> &str {
            match v {
                Some(v) => v,
                None if encrypted => "",
                None => "0.0.0.0:5060",
            }
        }
        let encrypted = security.requires_tls();
        if security.requires_tls() && tls.is_none() {
            return Err(err(
                "sip.tls",
                format!("`{}` needs a TLS listener", self.sip.security),
            ));
        }
        if self.trunk.len() > sip::driver::MAX_PEERS {
            return Err(err(
                "trunk",
                format!("at most {} trunk peers", sip::driver::MAX_PEERS),
            ));
        }
        let mut peers = Vec::new();
        let mut peer_names = Vec::new();
        for (i, p) in self.trunk.iter().enumerate() {
            let key = format!("trunk[{i}].address");
            // An ip:port, or a host name and port (R2): resolved now, and again while the
            // switch runs.
            let (addrs, name) = match p.address.parse::<SocketAddr>() {
                Ok(a) => (vec![a], None),
                Err(_) => {
                    let (host, port) = host_port(&p.address).ok_or_else(|| {
                        err(
                            key.clone(),
                            format!("`{}` is not an ip:port or a host:port", p.address),
                        )
                    })?;
                    let addrs = resolve(host, port).map_err(|e| {
                        err(
                            key.clone(),
                            format!("`{}` does not resolve: {e}", p.address),
                        )
                    })?;
                    (addrs, Some((host.to_owned(), port)))
                }
            };
            peer_names.push(name);
            let addr = addrs[0];
            let also = addrs[1..].iter().map(SocketAddr::ip).collect();
            let transport = sip::ua::Transport::parse(&p.transport).ok_or_else(|| {
                err(
                    format!("trunk[{i}].transport"),
                    format!("`{}`: expected udp, tcp or tls", p.transport),
                )
            })?;
            // T6, R5, R11: the Encrypted modes take SIP only over mutually authenticated
            // TLS; a clear trunk would carry the calls (and SDES keys) in clear.
            if security.requires_tls() && transport != sip::ua::Transport::Tls {
                return Err(err(
                    format!("trunk[{i}].transport"),
                    format!(
                        "`{}`: the `{}` mode takes SIP only over TLS",
                        p.transport, self.sip.security
                    ),
                ));
            }
            peers.push(sip::ua::TrunkPeer {
                addr,
                transport,
                subject: p.subject.clone(),
                also,
            });
        }
        let ports = {
            let bad = || {
                err(
                    "media.ports",
                    format!(
                        "`{}`: expected first-last, e.g. 16384-32768",
                        self.media.ports
                    ),
                )
            };
            let (a, b) = self.media.ports.split_once('-').ok_or_else(bad)?;
            let (a, b): (u16, u16) = (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            );
            if a == 0 || a > b {
                return Err(bad());
            }
            // The smallest call: an audio and a video line, RTCP multiplexed.
            if usize::from(b - a) + 1 < MIN_MEDIA_PORTS {
                return Err(err(
                    "media.ports",
                    format!(
                        "`{}` is too small for one call (an audio and a video line need {MIN_MEDIA_PORTS} ports)",
                        self.media.ports
                    ),
                ));
            }
            a..=b
        };
        let workers = match self.media.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n if n <= MAX_WORKERS => n,
            n => {
                return Err(err(
                    "media.workers",
                    format!("{n} is more than {MAX_WORKERS} (0: one per core)"),
                ));
            }
        };
        // RFC 4028 §4: Min-SE is at least 90 s and the session interval at least Min-SE.
        if self.sip.min_se < 90 {
            return Err(err(
                "sip.min_se",
                format!("{} s is below RFC 4028's 90 s", self.sip.min_se),
            ));
        }
        if self.sip.session_expires < self.sip.min_se {
            return Err(err(
                "sip.session_expires",
                format!(
                    "{} s is below sip.min_se ({} s)",
                    self.sip.session_expires, self.sip.min_se
                ),
            ));
        }
        if !(2..=16).contains(&self.media.max_lines) {
            return Err(err(
                "media.max_lines",
                format!(
                    "{} is not in 2-16 (a call needs an audio and a video line)",
                    self.media.max_lines
                ),
            ));
        }
        if !(1..=switch::udp::BATCH).contains(&self.media.batch) {
            return Err(err(
                "media.batch",
                format!("{} is not in 1-{}", self.media.batch, switch::udp::BATCH),
            ));
        }
        let media_address = match self.media.address.as_str() {
            "" => None,
            a => Some(
                a.parse()
                    .map_err(|_| err("media.address", format!("`{a}` is not an IP address")))?,
            ),
        };
        let suites = self
            .media
            .srtp_suites
            .iter()
            .map(|s| {
                switch::srtp::Suite::from_sdes_name(s)
                    .ok_or_else(|| err("media.srtp_suites", format!("unknown suite `{s}`")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if suites.is_empty() {
            return Err(err("media.srtp_suites", "at least one suite"));
        }
        let on_the_fly = match self.meetings.unknown_number.as_str() {
            "create" => Some((
                self.meetings.default_policy,
                switching(
                    "meetings.default_switching",
                    &self.meetings.default_switching,
                )?,
            )),
            "reject" => None,
            v => {
                return Err(err(
                    "meetings.unknown_number",
                    format!("`{v}`: expected create or reject"),
                ));
            }
        };
        let mut meetings = Vec::new();
        for (i, m) in self.meeting.iter().enumerate() {
            if m.number.is_empty() || meetings.iter().any(|(n, _, _)| *n == m.number) {
                return Err(err(
                    format!("meeting[{i}].number"),
                    format!("`{}`: empty or used twice", m.number),
                ));
            }
            meetings.push((
                m.number.clone(),
                m.policy,
                switching(&format!("meeting[{i}].switching"), &m.switching)?,
            ));
        }
        let count = |key: &str, v: usize| {
            if (1..=65536).contains(&v) {
                Ok(v)
            } else {
                Err(err(key, format!("{v}: expected 1-65536")))
            }
        };
        let secs = |key: &str, v: f64| {
            if v.is_finite() && v > 0.0 && v <= 3600.0 {
                Ok(std::time::Duration::from_secs_f64(v))
            } else {
                Err(err(key, format!("{v}: expected seconds in (0, 3600]")))
            }
        };
        let min_secure_release = match self.meetings.min_secure_release.as_str() {
            "" => None,
            v => Some(crate::control::release::Release::parse(v).ok_or_else(|| {
                err(
                    "meetings.min_secure_release",
                    format!("`{v}`: expected MAJOR.MINOR, e.g. 1.5"),
                )
            })?),
        };
        if crate::certs::KeyType::parse(&self.tls.key_type).is_none() {
            return Err(err(
                "tls.key_type",
                format!("`{}`: expected rsa or ecdsa", self.tls.key_type),
            ));
        }
        if !(1..=crate::certs::CA_VALIDITY_DAYS).contains(&self.tls.validity_days) {
            return Err(err(
                "tls.validity_days",
                format!(
                    "{}: expected 1-{} (at most five years, R60)",
                    self.tls.validity_days,
                    crate::certs::CA_VALIDITY_DAYS
                ),
            ));
        }
        if self.tls.expiry_warning_days.len() > 8
            || self
                .tls
                .expiry_warning_days
                .iter()
                .any(|d| !(1..=365).contains(d))
        {
            return Err(err(
                "tls.expiry_warning_days",
                format!(
                    "{:?}: expected at most 8 values of 1-365 days",
                    self.tls.expiry_warning_days
                ),
            ));
        }
        let stream_limits = sip::conn_limits::StreamLimits {
            per_address: count(
                "sip.max_connections_per_address",
                self.sip.max_connections_per_address,
            )?,
            total: count("sip.max_connections", self.sip.max_connections)?,
            tls_handshake: secs("sip.handshake_timeout", self.sip.handshake_timeout)?,
            partial_message: secs("sip.message_timeout", self.sip.message_timeout)?,
            idle: secs("sip.idle_timeout", self.sip.idle_timeout)?,
            certificate_recheck: secs("sip.certificate_recheck", self.sip.certificate_recheck)?,
        };
        let muxctrl_timeout = secs("tip.muxctrl_timeout", self.tip.muxctrl_timeout)?;
        let spimap_timeout = secs("tip.spimap_timeout", self.tip.spimap_timeout)?;
        let standard_after = match self.tip.standard_after {
            0.0 => None,
            s if s.is_finite() && s > 0.0 && s <= 3600.0 => {
                Some(std::time::Duration::from_secs_f64(s))
            }
            _ => {
                return Err(err("tip.standard_after", "0 (never) or seconds up to 3600"));
            }
        };
        if self
            .tip
            .standard_user_agents
            .iter()
            .any(|m| m.trim().is_empty())
        {
            return Err(err("tip.standard_user_agents", "empty mark"));
        }
        let admin = self
            .admin
            .check()
            .map_err(|(key, message)| err(key, message))?;
        let log_json = self.log.json().map_err(|m| err("log.format", m))?;
        for (i, w) in self.webhook.iter().enumerate() {
            crate::ops::webhooks::parse_url(&w.url)
                .map_err(|m| err(format!("webhook[{i}].url"), m))?;
            if w.secret.chars().count() < 16 {
                return Err(err(
                    format!("webhook[{i}].secret"),
                    "at least 16 characters",
                ));
            }
        }
        let cluster = self.cluster.as_ref().map(|c| c.check(tls)).transpose()?;
        Ok(Settings {
            cluster,
            admin,
            log_json,
            webhooks: self.webhook.clone(),
            muxctrl_timeout,
            spimap_timeout,
            standard_after,
            standard_user_agents: self
                .tip
                .standard_user_agents
                .iter()
                .map(|m| m.to_lowercase())
                .collect(),
            udp: listener("sip.udp", clear(&self.sip.udp, encrypted))?,
            tcp: listener("sip.tcp", clear(&self.sip.tcp, encrypted))?,
            tls,
            security,
            peers,
            peer_names,
            ports,
            workers,
            batch: self.media.batch,
            gso: self.media.gso,
            gro: self.media.gro,
            max_lines: self.media.max_lines,
            #[cfg(feature = "tools")]
            sfu_baseline: false,
            media_address,
            suites,
            on_the_fly,
            meetings,
            tls_files: self.tls,
            options_interval: (self.sip.options_interval > 0)
                .then(|| std::time::Duration::from_secs(self.sip.options_interval)),
            session_expires: self.sip.session_expires,
            stream_limits,
            min_secure_release,
            min_se: self.sip.min_se,
        })
    }
}

/// The data directory, relative paths resolved against the working directory.
pub fn data_dir(t: &TlsConfig) -> PathBuf {
    PathBuf::from(&t.data_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_usable() {
        let s = Config::parse("").unwrap();
        // The default mode is Encrypted: SIP only over TLS, no clear listener.
        assert_eq!(s.udp, None);
        assert_eq!(s.tcp, None);
        assert_eq!(s.tls, Some("0.0.0.0:5061".parse().unwrap()));
        assert_eq!(s.ports, 16384..=32768);
        assert!(s.workers >= 1);
        assert_eq!(s.suites.len(), 4);
        assert_eq!(s.peers.len(), 1);
        assert_eq!(
            s.security,
            sip::security::DeviceSecurity::EncryptedWithoutSdpKeys
        );
        assert!(matches!(s.on_the_fly, Some((Policy::BestEffort, _))));
    }

    #[test]
    fn a_full_file_parses() {
        let s = Config::parse(
            r#"
            [sip]
            udp = ""
            tcp = "10.0.0.1:5060"
            tls = "10.0.0.1:5061"
            security = "encrypted-with-sdp-keys"
            [tls]
            certificate = "/etc/mswitch/cert.pem"
            key = "/etc/mswitch/key.pem"
            trust = ["/etc/mswitch/cucm.pem"]
            [[trunk]]
            address = "10.0.0.2:5061"
            subject = "cucm1.example.com"
            [[trunk]]
            address = "10.0.0.3:5061"
            subject = "cucm2.example.com"
            [media]
            ports = "20000-20999"
            workers = 2
            address = "10.0.0.1"
            srtp_suites = ["AES_CM_128_HMAC_SHA1_80"]
            [meetings]
            default_policy = "secure"
            unknown_number = "reject"
            [[meeting]]
            number = "4000"
            policy = "non-secure"
            switching = "segment"
            "#,
        )
        .unwrap();
        assert_eq!(s.udp, None);
        assert_eq!(s.peers.len(), 2);
        assert_eq!(s.peers[1].transport, sip::ua::Transport::Tls);
        assert_eq!(s.ports, 20000..=20999);
        assert_eq!(s.on_the_fly, None);
        assert_eq!(s.meetings[0].1, Policy::NonSecure);
    }

    #[test]
    fn resolved_addresses_come_ipv4_first_each_once() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            resolved_order([
                a("[::1]:5061"),
                a("10.0.0.2:5061"),
                a("[::1]:5061"),
                a("10.0.0.1:5061"),
                a("10.0.0.2:5061")
            ]),
            vec![a("10.0.0.1:5061"), a("10.0.0.2:5061"), a("[::1]:5061")]
        );
    }

    #[test]
    fn a_trunk_peer_may_be_named_by_host() {
        // R2 (issue 15: only IP literals were taken).
        let s =
            Config::parse("[[trunk]]\naddress = \"localhost:5061\"\nsubject = \"cucm\"\n").unwrap();
        assert!(s.peers[0].addr.ip().is_loopback(), "{:?}", s.peers[0]);
        assert_eq!(s.peers[0].addr.port(), 5061);
        assert_eq!(s.peer_names, vec![Some(("localhost".to_owned(), 5061))]);
        // (A name that does not resolve is a configuration error too; not tried here:
        // that would ask a DNS server beyond this machine.)
        let e = Config::parse("[[trunk]]\naddress = \"bad_name!:5061\"\n").unwrap_err();
        assert_eq!(e.key, "trunk[0].address");
    }

    #[test]
    fn the_encrypted_modes_take_sip_only_over_tls() {
        for mode in ["encrypted-with-sdp-keys", "encrypted-without-sdp-keys"] {
            let s = Config::parse(&format!("[sip]\nsecurity = \"{mode}\"")).unwrap();
            assert_eq!((s.udp, s.tcp), (None, None), "{mode}: no clear listener");
            let e = Config::parse(&format!(
                "[sip]\nsecurity = \"{mode}\"\n[[trunk]]\naddress = \"10.0.0.2:5060\"\ntransport = \"tcp\""
            ))
            .unwrap_err();
            assert_eq!(e.key, "trunk[0].transport", "{mode}: {e}");
        }
        for mode in ["non-secure", "non-secure-media-encryption"] {
            let s = Config::parse(&format!("[sip]\nsecurity = \"{mode}\"")).unwrap();
            assert_eq!(s.udp, Some("0.0.0.0:5060".parse().unwrap()), "{mode}");
            assert_eq!(s.tcp, Some("0.0.0.0:5060".parse().unwrap()), "{mode}");
        }
        // Opened on purpose, they are opened.
        let s = Config::parse("[sip]\nudp = \"127.0.0.1:5070\"").unwrap();
        assert_eq!(s.udp, Some("127.0.0.1:5070".parse().unwrap()));
    }

    #[test]
    fn the_overlap_with_the_ephemeral_range_is_found() {
        assert_eq!(
            ephemeral_overlap(&(16384..=32768), "32768\t60999\n"),
            Some(32768..=32768)
        );
        assert_eq!(ephemeral_overlap(&(16384..=32767), "32768 60999"), None);
        assert_eq!(
            ephemeral_overlap(&(40000..=50000), "32768 60999"),
            Some(40000..=50000)
        );
        assert_eq!(ephemeral_overlap(&(40000..=50000), "garbage"), None);
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            ("[sip]\nudp = \"nope\"", "sip.udp"),
            ("[sip]\nsecurity = \"paranoid\"", "sip.security"),
            (
                "[sip]\nsecurity = \"encrypted-with-sdp-keys\"\ntls = \"\"",
                "sip.tls",
            ),
            ("[[trunk]]\naddress = \"cucm\"", "trunk[0].address"),
            (
                "[[trunk]]\naddress = \"1.2.3.4:5\"\ntransport = \"sctp\"",
                "trunk[0].transport",
            ),
            ("[media]\nports = \"5-1\"", "media.ports"),
            ("[media]\nports = \"41500-41500\"", "media.ports"),
            ("[media]\nbatch = 0", "media.batch"),
            ("[media]\nworkers = 100000", "media.workers"),
            ("[tls]\nkey_type = \"dsa\"", "tls.key_type"),
            ("[tls]\nvalidity_days = 3650", "tls.validity_days"),
            (
                "[tls]\nexpiry_warning_days = [0]",
                "tls.expiry_warning_days",
            ),
            (
                "[meetings]\nmin_secure_release = \"new\"",
                "meetings.min_secure_release",
            ),
            (
                "[sip]\nsession_expires = 100\nmin_se = 120",
                "sip.session_expires",
            ),
            ("[sip]\nmin_se = 30", "sip.min_se"),
            ("[media]\nmax_lines = 1", "media.max_lines"),
            ("[media]\nmax_lines = 100", "media.max_lines"),
            ("[media]\nbatch = 33", "media.batch"),
            ("[media]\nsrtp_suites = [\"NULL\"]", "media.srtp_suites"),
            ("[media]\naddress = \"x\"", "media.address"),
            ("[tip]\nmuxctrl_timeout = 0", "tip.muxctrl_timeout"),
            ("[tip]\nstandard_after = 4000", "tip.standard_after"),
            ("[tip]\nstandard_after = -1", "tip.standard_after"),
            (
                "[tip]\nstandard_user_agents = [\" \"]",
                "tip.standard_user_agents",
            ),
            (
                "[meetings]\nunknown_number = \"maybe\"",
                "meetings.unknown_number",
            ),
            (
                "[[meeting]]\nnumber = \"1\"\nswitching = \"x\"",
                "meeting[0].switching",
            ),
            (
                "[[meeting]]\nnumber = \"1\"\n[[meeting]]\nnumber = \"1\"",
                "meeting[1].number",
            ),
        ] {
            let e = Config::parse(text).unwrap_err();
            assert_eq!(e.key, key, "{text}: {e}");
        }
        // Unknown keys and wrong types come from the TOML layer, with the key and line.
        let e = Config::parse("[sip]\nudpp = \"x\"").unwrap_err();
        assert!(e.to_string().contains("udpp") && e.key == "line 2", "{e}");
        let e = Config::parse("[media]\nworkers = \"two\"").unwrap_err();
        assert_eq!(e.key, "line 2", "{e}");
        let six = "[[trunk]]\naddress = \"1.2.3.4:5\"\n".repeat(6);
        assert_eq!(Config::parse(&six).unwrap_err().key, "trunk");
    }
}

//! DTLS-SRTP per media line (RFC 5764) over rtc-dtls's sans-IO endpoint.
//!
//! - The switch is passive (DTLS server) by default and active when the peer's SDP says
//!   `a=setup:passive` (RFC 5763 §5).
//! - Its identity is an ECDSA P-256 certificate; SDP carries its SHA-256 fingerprint.
//! - The peer's certificate must match the fingerprint from its SDP (RFC 5763 §5); a
//!   mismatch ends the handshake. DTLS that arrives before the fingerprint is known is
//!   buffered (bounded) and processed once it is.
//! - Protection profiles are offered in a configurable preference order.
//! - The exporter (`EXTRACTOR-dtls_srtp`, RFC 5764 §4.2) gives
//!   client key | server key | client salt | server salt; the client's material protects
//!   what the client sends.
//! - A handshake not done by its deadline fails.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc_dtls::config::{ClientAuthType, ConfigBuilder, ExtendedMasterSecretType, HandshakeConfig};
use rtc_dtls::crypto::Certificate;
use rtc_dtls::crypto_provider::RTCCryptoProvider;
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc_shared::TransportProtocol;

use crate::srtp::{MasterKey, Suite, tags_equal};

#[cfg(test)]
#[path = "dtls_tests.rs"]
mod tests;

/// At most this many datagrams are held while the peer's fingerprint is unknown.
const MAX_BUFFERED: usize = 16;
/// RFC 5764 §4.2.
const EXPORTER_LABEL: &str = "EXTRACTOR-dtls_srtp";

/// Why DTLS could not be set up or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtlsError {
    /// Certificate or configuration could not be built.
    #[error("DTLS setup: {0}")]
    Setup(String),
}

/// The switch's DTLS identity: certificate, key, and SHA-256 fingerprint.
pub struct DtlsIdentity {
    certificate: Certificate,
    fingerprint: [u8; 32],
    provider: Arc<dyn RTCCryptoProvider>,
}

impl std::fmt::Debug for DtlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsIdentity")
            .field("fingerprint", &self.sdp_fingerprint())
            .finish_non_exhaustive()
    }
}

/// SHA-256 of a DER certificate.
pub fn certificate_fingerprint(der: &[u8]) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

/// Parses an SDP `a=fingerprint:sha-256 AB:CD:...` value (RFC 8122 §5).
pub fn parse_sdp_fingerprint(value: &str) -> Option<[u8; 32]> {
    let (hash, hex) = value.trim().split_once(' ')?;
    if !hash.eq_ignore_ascii_case("sha-256") {
        return None;
    }
    let bytes: Vec<u8> = hex
        .trim()
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).ok())
        .collect::<Option<_>>()?;
    bytes.try_into().ok()
}

impl DtlsIdentity {
    /// A fresh self-signed ECDSA P-256 identity.
    pub fn generate() -> Result<Self, DtlsError> {
        let provider = rtc_dtls::crypto_provider::default_provider()
            .map_err(|e| DtlsError::Setup(e.to_string()))?;
        let certificate =
            Certificate::generate_self_signed(vec!["mswitch".to_owned()], provider.crypto())
                .map_err(|e| DtlsError::Setup(e.to_string()))?;
        let fingerprint = certificate_fingerprint(certificate.certificate[0].as_ref());
        Ok(Self {
            certificate,
            fingerprint,
            provider,
        })
    }

    /// The SHA-256 fingerprint.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// The SDP `a=fingerprint` value: `sha-256 AB:CD:...`.
    pub fn sdp_fingerprint(&self) -> String {
        let mut s = String::from("sha-256 ");
        for (i, b) in self.fingerprint.iter().enumerate() {
            let _ = write!(s, "{}{b:02X}", if i == 0 { "" } else { ":" });
        }
        s
    }
}

/// Which side of the handshake the switch takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// DTLS server (`a=setup:passive`), the default.
    Passive,
    /// DTLS client (`a=setup:active`), when the peer is passive.
    Active,
}

/// DTLS settings of the switch.
#[derive(Debug, Clone)]
pub struct DtlsSettings {
    /// Protection profiles, preferred first (seeds-switch.md T3a).
    pub profiles: Vec<Suite>,
    /// Handshake deadline.
    pub handshake_timeout: Duration,
}

impl Default for DtlsSettings {
    fn default() -> Self {
        Self {
            profiles: Suite::ALL.to_vec(),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

fn profile_of(s: Suite) -> SrtpProtectionProfile {
    match s {
        Suite::AesCm128HmacSha1_80 => SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        Suite::AesCm128HmacSha1_32 => SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_32,
        Suite::AeadAes128Gcm => SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
        Suite::AeadAes256Gcm => SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm,
    }
}

fn suite_of(p: SrtpProtectionProfile) -> Option<Suite> {
    match p {
        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 => Some(Suite::AesCm128HmacSha1_80),
        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_32 => Some(Suite::AesCm128HmacSha1_32),
        SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => Some(Suite::AeadAes128Gcm),
        SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm => Some(Suite::AeadAes256Gcm),
        _ => None,
    }
}

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DtlsFailure {
    /// The peer's certificate does not match the SDP fingerprint.
    FingerprintMismatch,
    /// Not done by the deadline.
    Timeout,
    /// No common protection profile, or no profile negotiated.
    NoSrtpProfile,
    /// The established association ended: the peer's authenticated fatal alert or
    /// close_notify (RFC 6347 §4.1.2.7: nothing unauthenticated ends an association).
    Closed,
    /// Any other protocol error (the message, for the log; it carries no key material).
    Protocol(String),
}

/// What became of a datagram handed to [`DtlsSession::handle_datagram`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// The session took it (or buffered it until the peer's fingerprint is known).
    Taken,
    /// It did not parse or authenticate, or came after the session ended: dropped without
    /// effect on the association (RFC 6347 §4.1.2.7), for the caller to count.
    Dropped,
}

/// The per-hop SRTP master keys a completed handshake gives.
#[derive(Debug)]
pub struct HopMasterKeys {
    /// The negotiated suite.
    pub suite: Suite,
    /// Keys what the peer sends (unprotect).
    pub inbound: MasterKey,
    /// Keys what the switch sends (protect).
    pub outbound: MasterKey,
}

/// What a DTLS session reports.
#[derive(Debug)]
pub enum DtlsEvent {
    /// The handshake completed: per-hop keys.
    Connected(HopMasterKeys),
    /// The handshake failed; the line cannot carry media.
    Failed(DtlsFailure),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitingFingerprint,
    Handshaking,
    Connected,
    Failed,
}

/// One DTLS-SRTP association on a media line.
pub struct DtlsSession {
    identity: Arc<DtlsIdentity>,
    settings: DtlsSettings,
    role: Role,
    local: SocketAddr,
    remote: SocketAddr,
    endpoint: Option<Endpoint>,
    mismatch: Arc<AtomicBool>,
    buffered: Vec<BytesMut>,
    deadline: Instant,
    state: State,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<DtlsEvent>,
}

impl std::fmt::Debug for DtlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsSession")
            .field("role", &self.role)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl DtlsSession {
    /// A session between `local` and `remote` starting at `now`. With the peer's SDP
    /// fingerprint known, the handshake starts at once (an active session sends its
    /// ClientHello); otherwise call [`DtlsSession::set_remote_fingerprint`] when it is.
    pub fn new(
        now: Instant,
        identity: Arc<DtlsIdentity>,
        settings: DtlsSettings,
        role: Role,
        local: SocketAddr,
        remote: SocketAddr,
        remote_fingerprint: Option<[u8; 32]>,
    ) -> Self {
        let deadline = now + settings.handshake_timeout;
        let mut me = Self {
            identity,
            settings,
            role,
            local,
            remote,
            endpoint: None,
            mismatch: Arc::new(AtomicBool::new(false)),
            buffered: Vec::new(),
            deadline,
            state: State::AwaitingFingerprint,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        if let Some(fp) = remote_fingerprint {
            me.set_remote_fingerprint(now, fp);
        }
        me
    }

    /// The peer's fingerprint from its SDP: starts the handshake and processes what was
    /// buffered.
    pub fn set_remote_fingerprint(&mut self, now: Instant, fingerprint: [u8; 32]) {
        if self.state != State::AwaitingFingerprint {
            return;
        }
        match self.start(now, fingerprint) {
            Ok(()) => {
                self.state = State::Handshaking;
                for d in std::mem::take(&mut self.buffered) {
                    self.read(now, d);
                }
            }
            Err(e) => self.fail(DtlsFailure::Protocol(e)),
        }
    }

    fn config(&self, fingerprint: [u8; 32], is_client: bool) -> Result<HandshakeConfig, String> {
        let mismatch = self.mismatch.clone();
        let verify: rtc_dtls::config::VerifyPeerCertificateFn =
            Arc::new(move |certs: &[Vec<u8>], _| {
                let ok = certs
                    .first()
                    .is_some_and(|c| tags_equal(&certificate_fingerprint(c), &fingerprint));
                if ok {
                    Ok(())
                } else {
                    mismatch.store(true, Ordering::Relaxed);
                    Err(rtc_shared::error::Error::Other(
                        "certificate does not match the SDP fingerprint".into(),
                    ))
                }
            });
        ConfigBuilder::default()
            .with_crypto_provider(self.identity.provider.clone())
            .with_certificates(vec![self.identity.certificate.clone()])
            .with_srtp_protection_profiles(
                self.settings
                    .profiles
                    .iter()
                    .map(|&s| profile_of(s))
                    .collect(),
            )
            .with_client_auth(ClientAuthType::RequireAnyClientCert)
            .with_extended_master_secret(ExtendedMasterSecretType::Require)
            // Self-signed certificates: the fingerprint check above is the authentication
            // (RFC 5763 §5), not a CA chain.
            .with_insecure_skip_verify(true)
            .with_verify_peer_certificate(Some(verify))
            .build(is_client, Some(self.remote))
            .map_err(|e| e.to_string())
    }

    fn start(&mut self, now: Instant, fingerprint: [u8; 32]) -> Result<(), String> {
        match self.role {
            Role::Passive => {
                let config = self.config(fingerprint, false)?;
                self.endpoint = Some(Endpoint::new(
                    self.local,
                    TransportProtocol::UDP,
                    Some(Arc::new(config)),
                ));
            }
            Role::Active => {
                let config = self.config(fingerprint, true)?;
                let mut endpoint = Endpoint::new(self.local, TransportProtocol::UDP, None);
                endpoint
                    .connect(now, self.remote, Arc::new(config), None)
                    .map_err(|e| e.to_string())?;
                self.endpoint = Some(endpoint);
                self.drain_transmits();
            }
        }
        Ok(())
    }

    fn fail(&mut self, failure: DtlsFailure) {
        if self.state != State::Failed {
            self.state = State::Failed;
            self.endpoint = None;
            self.buffered.clear();
            self.events.push_back(DtlsEvent::Failed(failure));
        }
    }

    fn drain_transmits(&mut self) {
        if let Some(e) = &mut self.endpoint {
            while let Some(t) = e.poll_transmit() {
                self.transmits.push_back(t.message.to_vec());
            }
        }
    }

    /// A DTLS datagram from the peer (RFC 7983 classified it). A datagram that does not
    /// parse or authenticate changes nothing: anyone can send one with the peer's address
    /// (UDP), so only the fingerprint check, the peer's authenticated fatal alert or
    /// close_notify, and the handshake's own deadline end an association.
    pub fn handle_datagram(&mut self, now: Instant, data: &[u8]) -> Received {
        match self.state {
            State::AwaitingFingerprint => {
                if self.buffered.len() < MAX_BUFFERED {
                    self.buffered.push(BytesMut::from(data));
                    return Received::Taken;
                }
                Received::Dropped
            }
            State::Handshaking | State::Connected => self.read(now, BytesMut::from(data)),
            State::Failed => Received::Dropped,
        }
    }

    fn read(&mut self, now: Instant, data: BytesMut) -> Received {
        let Some(endpoint) = &mut self.endpoint else {
            return Received::Dropped;
        };
        let result = endpoint.read(now, self.remote, None, data);
        self.drain_transmits();
        match result {
            Ok(events) => {
                for e in events {
                    match e {
                        EndpointEvent::HandshakeComplete => self.complete(),
                        // The peer's close_notify: authenticated once established.
                        EndpointEvent::PeerClosed if self.state == State::Connected => {
                            self.fail(DtlsFailure::Closed);
                        }
                        _ => {}
                    }
                }
                Received::Taken
            }
            Err(_) if self.mismatch.load(Ordering::Relaxed) => {
                self.fail(DtlsFailure::FingerprintMismatch);
                Received::Taken
            }
            // Once established, only records of the negotiated epoch reach the alert logic
            // (rtc-dtls discards old-epoch records other than the peer's repeated final
            // flight, and records that do not decrypt): a fatal alert here was sent, or
            // answered, under the association's keys.
            Err(rtc_shared::error::Error::ErrAlertFatalOrClose)
                if self.state == State::Connected =>
            {
                self.fail(DtlsFailure::Closed);
                Received::Taken
            }
            // A record that does not parse (RFC 6347 §4.1.2.7), or, during the handshake,
            // anything unauthenticated that the handshake rejects: dropped; the
            // handshake's deadline still bounds a handshake that does not finish.
            Err(_) => Received::Dropped,
        }
    }

    fn complete(&mut self) {
        if self.state != State::Handshaking {
            return;
        }
        let Some(state) = self
            .endpoint
            .as_ref()
            .and_then(|e| e.get_connection_state(self.remote))
        else {
            return self.fail(DtlsFailure::Protocol("no connection state".into()));
        };
        let Some(suite) = suite_of(state.srtp_protection_profile()) else {
            return self.fail(DtlsFailure::NoSrtpProfile);
        };
        let (k, s) = (suite.key_len(), suite.salt_len());
        let material = match state.export_keying_material(EXPORTER_LABEL, &[], 2 * (k + s)) {
            Ok(m) => m,
            Err(e) => return self.fail(DtlsFailure::Protocol(e.to_string())),
        };
        let m = material.as_ref();
        let (client_key, server_key) = (&m[..k], &m[k..2 * k]);
        let (client_salt, server_salt) = (&m[2 * k..2 * k + s], &m[2 * k + s..]);
        let client = MasterKey::new(suite, client_key, client_salt);
        let server = MasterKey::new(suite, server_key, server_salt);
        let (Ok(client), Ok(server)) = (client, server) else {
            return self.fail(DtlsFailure::Protocol("exported key lengths".into()));
        };
        // The client's material protects what the client sends (RFC 5764 §4.2).
        let (inbound, outbound) = match self.role {
            Role::Passive => (client, server),
            Role::Active => (server, client),
        };
        self.state = State::Connected;
        self.events.push_back(DtlsEvent::Connected(HopMasterKeys {
            suite,
            inbound,
            outbound,
        }));
    }

    /// Time passed: retransmit handshake flights, enforce the deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.state, State::AwaitingFingerprint | State::Handshaking)
            && now >= self.deadline
        {
            return self.fail(DtlsFailure::Timeout);
        }
        if let Some(e) = &mut self.endpoint
            && e.poll_timeout(&self.remote).is_some_and(|t| t <= now)
        {
            let r = e.handle_timeout(self.remote, now);
            self.drain_transmits();
            if let Err(e) = r {
                // A timer error while handshaking means the flights went unanswered
                // (rtc-dtls stops retransmitting on its own before our deadline).
                let failure = if self.state == State::Handshaking {
                    DtlsFailure::Timeout
                } else {
                    DtlsFailure::Protocol(e.to_string())
                };
                self.fail(failure);
            }
        }
    }

    /// The next datagram to send to the peer.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<DtlsEvent> {
        self.events.pop_front()
    }

    /// When [`DtlsSession::handle_timeout`] must run next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let handshake = self
            .endpoint
            .as_ref()
            .and_then(|e| e.poll_timeout(&self.remote));
        match self.state {
            State::AwaitingFingerprint => Some(self.deadline),
            State::Handshaking => Some(handshake.map_or(self.deadline, |t| t.min(self.deadline))),
            State::Connected => handshake,
            State::Failed => None,
        }
    }

    /// True once the handshake completed.
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }
}

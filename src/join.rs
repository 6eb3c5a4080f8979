//! A call's media, from its SDP to the meeting's lines (ARCHITECTURE.md "glue"): ports and
//! sockets, per-hop keying (DTLS-SRTP or SDES), the TIP line configuration with the
//! meeting's group parameters, and the SDP that answers (or, for a delayed offer, makes)
//! the offer.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Instant;

use ring::rand::SecureRandom;
use sip::sdp::{self, CryptoLine, LocalMedia, MediaKind, MediaOffer, Setup};
use sip::security::Keying;
use switch::dtls::{DtlsIdentity, DtlsSession, DtlsSettings, Role, parse_sdp_fingerprint};
use switch::meeting::{HopKeying, HopKeys, LegId, LineSetup, RtcpLeg, StandardSetup};
use switch::ports::PortAllocator;
use switch::srtp::{MasterKey, SrtpContext, Suite};
use switch::tip::negotiation::{GroupParams, LineConfig, Media};

/// Random bytes (the system RNG).
pub fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The system RNG does not fail on Linux.
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    b
}

/// One leg of a line: its id, its local address, and its socket until the media worker
/// has it. The worker owns a leg's socket from then on, so a media port costs one
/// descriptor (issue 14: the application kept a second copy of each).
#[derive(Debug)]
pub struct LegSocket {
    /// The leg.
    pub id: LegId,
    /// Where it is bound.
    pub local: SocketAddr,
    /// The socket, until it is handed to the worker.
    pub socket: Option<UdpSocket>,
}

/// One media line's sockets.
#[derive(Debug)]
pub struct LineSockets {
    /// Audio or video.
    pub media: Media,
    /// The RTP (or muxed) leg.
    pub leg: LegSocket,
    /// The RTCP leg when not muxed.
    pub rtcp: Option<LegSocket>,
    /// The ports, to give back.
    pub ports: Vec<u16>,
}

impl LineSockets {
    /// Closes the RTCP socket and gives its port back: the line multiplexes after all.
    pub fn drop_rtcp(&mut self, ports: &mut PortAllocator) {
        if let Some(r) = self.rtcp.take() {
            self.ports.retain(|p| *p != r.local.port());
            ports.release(r.local.port());
        }
    }
}

/// Why a call's media could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// No port left.
    #[error(transparent)]
    Ports(#[from] switch::ports::PortsExhausted),
    /// A socket could not be bound.
    #[error("media socket: {0}")]
    Bind(std::io::Error),
    /// The offer's fingerprint is not SHA-256 or malformed.
    #[error("unusable a=fingerprint")]
    Fingerprint,
    /// The offer's SDES key is not the suite's length, or the suite is not ours.
    #[error("unusable a=crypto")]
    Crypto,
}

/// Binds a port from the allocator on `ip`, trying a few when one is taken by another
/// program.
fn bind(ports: &mut PortAllocator, ip: IpAddr) -> Result<(u16, UdpSocket), JoinError> {
    let mut last = None;
    for _ in 0..16 {
        let p = ports.allocate()?;
        match UdpSocket::bind(SocketAddr::new(ip, p)) {
            Ok(s) => return Ok((p, s)),
            Err(e) => {
                // Another program holds it now, or our own just-closed socket, or we are out
                // of descriptors: it goes back, and the allocator's rotation tries it again
                // only after every other port (issue 14: kept as used, ports were lost).
                ports.release(p);
                last = Some(e);
            }
        }
    }
    Err(JoinError::Bind(last.unwrap_or_else(|| {
        std::io::Error::other("no port could be bound")
    })))
}

/// Gives back every port of `lines` (a call's set-up failed before they reached a worker).
pub fn release_all<'a>(
    ports: &mut PortAllocator,
    lines: impl IntoIterator<Item = &'a LineSockets>,
) {
    for l in lines {
        for p in &l.ports {
            ports.release(*p);
        }
    }
}

/// Allocates and binds one line's ports.
pub fn line_sockets(
    ports: &mut PortAllocator,
    ip: IpAddr,
    media: Media,
    rtcp_mux: bool,
    next_leg: &mut LegId,
) -> Result<LineSockets, JoinError> {
    let (p, s) = bind(ports, ip)?;
    let mut used = vec![p];
    let mut leg_of = |socket: UdpSocket, port: u16| {
        let id = *next_leg;
        *next_leg += 1;
        LegSocket {
            id,
            local: SocketAddr::new(ip, port),
            socket: Some(socket),
        }
    };
    let leg = leg_of(s, p);
    let rtcp = if rtcp_mux {
        None
    } else {
        match bind(ports, ip) {
            Ok((p2, s2)) => {
                used.push(p2);
                Some(leg_of(s2, p2))
            }
            Err(e) => {
                ports.release(p);
                return Err(e);
            }
        }
    };
    Ok(LineSockets {
        media,
        leg,
        rtcp,
        ports: used,
    })
}

/// The meeting's group parameters for one medium: an odd SPI, a salt and a KEK (TIP
/// SPIMAP, ekt-spec.md §5.4). Distinct per meeting.
pub fn group_params(media: Media) -> GroupParams {
    let r: [u8; 2] = random();
    // Odd SPIs (WIRE.md section 5); audio and video differ in the low bits.
    let base = u16::from_be_bytes(r) & 0xfff0;
    let spi = base | if media == Media::Audio { 0x1 } else { 0x3 };
    GroupParams {
        spi,
        salt: random(),
        kek: random(),
    }
}

/// What a transcrypt leg needs from an offered line (issue 19): its formats and the RFC
/// 6464 extension; when to take it as standard is the caller's (configuration).
fn standard_setup(offer: &MediaOffer) -> StandardSetup {
    StandardSetup {
        detect_after: None,
        formats: offer
            .formats
            .iter()
            .filter_map(|f| {
                let pt = f.parse::<u8>().ok().filter(|pt| *pt < 128)?;
                let map = offer
                    .rtpmaps
                    .iter()
                    .find(|(p, _)| p == f)
                    .map(|(_, m)| m.clone());
                Some((pt, map))
            })
            .collect(),
        audio_level_ext: switch::transcrypt::level::extmap_id(&offer.extmap),
    }
}

/// Everything the meeting needs for one line, and what the SDP says about it.
pub struct PreparedLine {
    /// For `Meeting::add_participant`.
    pub setup: LineSetup,
    /// For the SDP.
    pub local: LocalMedia,
}

/// Our side of one accepted line: keyed as the mode decided, with TIP parameters.
#[allow(clippy::too_many_arguments)]
pub fn prepare_line(
    now: Instant,
    offer: &MediaOffer,
    keying: &Keying,
    sockets: &LineSockets,
    identity: &Arc<DtlsIdentity>,
    suites: &[Suite],
    line: LineConfig,
    our_sdes_key: Option<&[u8]>,
) -> Result<PreparedLine, JoinError> {
    let local_addr = sockets.leg.local;
    let remote = SocketAddr::new(offer.address, offer.port);
    let rtcp_remote = offer.rtcp_addr();
    let settings = || DtlsSettings {
        profiles: suites.to_vec(),
        ..DtlsSettings::default()
    };
    let (hop, dtls_sdp, crypto_sdp, rtcp_dtls) = match keying {
        Keying::Dtls {
            peer_fingerprint,
            setup,
        } => {
            let fp = parse_sdp_fingerprint(peer_fingerprint).ok_or(JoinError::Fingerprint)?;
            let role = if *setup == Setup::Active {
                Role::Active
            } else {
                Role::Passive
            };
            let session = |local, remote| {
                Box::new(DtlsSession::new(
                    now,
                    identity.clone(),
                    settings(),
                    role,
                    local,
                    remote,
                    Some(fp),
                ))
            };
            let rtcp_dtls = sockets.rtcp.as_ref().map(|r| session(r.local, rtcp_remote));
            (
                HopKeying::Dtls(session(local_addr, remote)),
                Some((*setup, identity.sdp_fingerprint())),
                None,
                rtcp_dtls,
            )
        }
        Keying::Sdes(theirs) => {
            let suite = Suite::from_sdes_name(&theirs.suite).ok_or(JoinError::Crypto)?;
            let (k, s) = (suite.key_len(), suite.salt_len());
            if theirs.key_salt.len() != k + s {
                return Err(JoinError::Crypto);
            }
            // Ours: the key we already offered (delayed offer), else a fresh one.
            let fresh: [u8; 46] = random();
            let ours = our_sdes_key.unwrap_or(&fresh[..k + s]);
            if ours.len() != k + s {
                return Err(JoinError::Crypto);
            }
            let ctx = |ks: &[u8]| {
                MasterKey::new(suite, &ks[..k], &ks[k..k + s])
                    .map(|m| SrtpContext::new(suite, &m))
                    .map_err(|_| JoinError::Crypto)
            };
            let keys = HopKeys {
                inbound: ctx(&theirs.key_salt)?,
                outbound: ctx(ours)?,
            };
            let line = CryptoLine {
                tag: theirs.tag,
                suite: theirs.suite.clone(),
                key_salt: ours.to_vec(),
                ekt: None,
            };
            (HopKeying::Sdes(Box::new(keys)), None, Some(line), None)
        }
        // A non-secure meeting: plain RTP, TIP over plain RTCP.
        Keying::Plain => (HopKeying::Plain, None, None, None),
    };
    let local = LocalMedia {
        kind: offer.kind.unwrap_or(MediaKind::Audio),
        port: local_addr.port(),
        rtcp_port: sockets.rtcp.as_ref().map(|r| r.local.port()),
        profile: offer.profile.unwrap_or(sdp::Profile::Savp),
        formats: offer
            .formats
            .iter()
            .map(|f| {
                let map = offer
                    .rtpmaps
                    .iter()
                    .find(|(pt, _)| pt == f)
                    .map(|(_, m)| m.clone());
                (f.clone(), map)
            })
            .collect(),
        rtcp_mux: offer.rtcp_mux,
        dtls: dtls_sdp,
        crypto: crypto_sdp,
        direction: offer.direction.answer(),
    };
    let setup = LineSetup {
        leg: sockets.leg.id,
        keying: hop,
        config: line,
        rtcp: sockets.rtcp.as_ref().map(|r| RtcpLeg {
            leg: r.id,
            dtls: rtcp_dtls,
        }),
        standard: standard_setup(offer),
    };
    Ok(PreparedLine { setup, local })
}

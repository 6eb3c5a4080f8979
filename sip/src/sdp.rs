//! SDP offer/answer (RFC 3264) for the switch's audio and video lines, on sdp-types.
//!
//! [`parse`] turns an SDP body into typed [`MediaOffer`]s (what the media plane needs:
//! address, ports, profile, DTLS setup and fingerprint, SDES crypto lines with the early
//! EKT parameter, rtcp-mux, extmap, ssrc). [`answer`] builds the answer from what the media
//! plane allocated; lines it does not take are refused with port 0 (RFC 3264 §6).
//! [`offer`] builds our offer when an INVITE came without one (delayed offer).

use std::net::IpAddr;

use base64::Engine as _;
use sdp_types::{Attribute, Connection, Media, Origin, Session, Time};

/// Why an SDP body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// sdp-types could not parse it.
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// An attribute the switch relies on is malformed.
    #[error("malformed a={0}")]
    Attribute(&'static str),
    /// A media line has no connection address.
    #[error("media line {0} has no connection address")]
    NoConnection(usize),
    /// A re-offer whose media lines are not the session's (adding lines is not supported).
    #[error("the offer has {offered} media lines, the session {ours}")]
    LineCount {
        /// In the offer.
        offered: usize,
        /// In the session.
        ours: usize,
    },
}

/// The kind of a media line the switch takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// m=audio.
    Audio,
    /// m=video.
    Video,
}

/// The transport protocols of RFC 3551, 3711, 4585 and 5764 the switch knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// RTP/AVP: plain RTP.
    Avp,
    /// RTP/AVPF.
    Avpf,
    /// RTP/SAVP: SRTP.
    Savp,
    /// RTP/SAVPF.
    Savpf,
    /// UDP/TLS/RTP/SAVP: SRTP keyed by DTLS.
    UdpTlsSavp,
    /// UDP/TLS/RTP/SAVPF.
    UdpTlsSavpf,
}

impl Profile {
    /// From the m-line's proto field.
    pub fn parse(proto: &str) -> Option<Self> {
        Some(match proto.to_ascii_uppercase().as_str() {
            "RTP/AVP" => Self::Avp,
            "RTP/AVPF" => Self::Avpf,
            "RTP/SAVP" => Self::Savp,
            "RTP/SAVPF" => Self::Savpf,
            "UDP/TLS/RTP/SAVP" => Self::UdpTlsSavp,
            "UDP/TLS/RTP/SAVPF" => Self::UdpTlsSavpf,
            _ => return None,
        })
    }

    /// The proto field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Avp => "RTP/AVP",
            Self::Avpf => "RTP/AVPF",
            Self::Savp => "RTP/SAVP",
            Self::Savpf => "RTP/SAVPF",
            Self::UdpTlsSavp => "UDP/TLS/RTP/SAVP",
            Self::UdpTlsSavpf => "UDP/TLS/RTP/SAVPF",
        }
    }

    /// Whether media is SRTP.
    pub fn is_secure(self) -> bool {
        !matches!(self, Self::Avp | Self::Avpf)
    }
}

/// a=setup (RFC 4145 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// active: opens the connection (DTLS client).
    Active,
    /// passive: waits for it (DTLS server).
    Passive,
    /// actpass: either.
    ActPass,
    /// holdconn.
    HoldConn,
}

impl Setup {
    fn parse(v: &str) -> Option<Self> {
        Some(match v.trim().to_ascii_lowercase().as_str() {
            "active" => Self::Active,
            "passive" => Self::Passive,
            "actpass" => Self::ActPass,
            "holdconn" => Self::HoldConn,
            _ => return None,
        })
    }

    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Passive => "passive",
            Self::ActPass => "actpass",
            Self::HoldConn => "holdconn",
        }
    }
}

/// The early EKT SDES session parameter `EKT=<cipher>|<key>|<SPI>` (ekt-spec.md §3.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EktParam {
    /// `AES_128`, `AESKW_128`, `AESKW_192` or `AESKW_256`.
    pub cipher: String,
    /// The EKT key.
    pub key: Vec<u8>,
    /// The SPI.
    pub spi: u16,
}

/// One a=crypto line (RFC 4568 §9.1).
#[derive(Clone, PartialEq, Eq)]
pub struct CryptoLine {
    /// The tag.
    pub tag: u32,
    /// The suite name (`AES_CM_128_HMAC_SHA1_80`, `AEAD_AES_256_GCM`, ...).
    pub suite: String,
    /// The master key and salt, concatenated, decoded.
    pub key_salt: Vec<u8>,
    /// The early EKT parameter, if any.
    pub ekt: Option<EktParam>,
}

impl std::fmt::Debug for CryptoLine {
    /// Keys are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CryptoLine")
            .field("tag", &self.tag)
            .field("suite", &self.suite)
            .field("key_salt_len", &self.key_salt.len())
            .field("ekt_spi", &self.ekt.as_ref().map(|e| e.spi))
            .finish()
    }
}

impl CryptoLine {
    /// Parses the value of an a=crypto attribute: `tag suite inline:KEY[|lifetime][|mki:len]
    /// [session params]`. Only the first key parameter is used.
    pub fn parse(value: &str) -> Result<Self, SdpError> {
        let bad = SdpError::Attribute("crypto");
        let mut parts = value.split_ascii_whitespace();
        let tag = parts
            .next()
            .and_then(|t| t.parse::<u32>().ok())
            .filter(|t| *t <= 999_999_999)
            .ok_or(bad.clone())?;
        let suite = parts.next().ok_or(bad.clone())?.to_owned();
        let key_params = parts.next().ok_or(bad.clone())?;
        let first = key_params.split(';').next().unwrap_or_default();
        let inline = first
            .strip_prefix("inline:")
            .ok_or(bad.clone())?
            .split('|')
            .next()
            .unwrap_or_default();
        let key_salt = base64::engine::general_purpose::STANDARD
            .decode(inline)
            .map_err(|_| bad.clone())?;
        let mut ekt = None;
        for p in parts {
            if let Some(v) = p.strip_prefix("EKT=") {
                ekt = Some(parse_ekt(v).ok_or(bad.clone())?);
            }
        }
        Ok(Self {
            tag,
            suite,
            key_salt,
            ekt,
        })
    }

    /// The attribute value, with the key inline.
    pub fn to_value(&self) -> String {
        let key = base64::engine::general_purpose::STANDARD.encode(&self.key_salt);
        let mut v = format!("{} {} inline:{key}", self.tag, self.suite);
        if let Some(e) = &self.ekt {
            let k = base64::engine::general_purpose::STANDARD.encode(&e.key);
            v.push_str(&format!(" EKT={}|{k}|{:04X}", e.cipher, e.spi));
        }
        v
    }
}

fn parse_ekt(v: &str) -> Option<EktParam> {
    let mut it = v.split('|');
    let cipher = it.next()?.to_owned();
    if !["AES_128", "AESKW_128", "AESKW_192", "AESKW_256"].contains(&cipher.as_str()) {
        return None;
    }
    let key = base64::engine::general_purpose::STANDARD
        .decode(it.next()?)
        .ok()?;
    let spi_hex = it.next()?;
    if spi_hex.len() != 4 || it.next().is_some() {
        return None;
    }
    let spi = u16::from_str_radix(spi_hex, 16).ok()?;
    Some(EktParam { cipher, key, spi })
}

/// One offered m-line, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaOffer {
    /// Audio or video; `None` for any other media (refused).
    pub kind: Option<MediaKind>,
    /// The m-line's media field as written.
    pub media: String,
    /// The port; 0 means the offerer disabled the line.
    pub port: u16,
    /// The profile; `None` for one the switch does not know (refused).
    pub profile: Option<Profile>,
    /// The proto field as written (a refusal echoes it).
    pub proto: String,
    /// The formats (payload types).
    pub formats: Vec<String>,
    /// a=rtpmap values by payload type.
    pub rtpmaps: Vec<(String, String)>,
    /// The connection address (media level, else session level).
    pub address: IpAddr,
    /// a=rtcp-mux.
    pub rtcp_mux: bool,
    /// a=rtcp (RFC 3605): the RTCP port and address when not port + 1 / the same address.
    pub rtcp: Option<(u16, Option<IpAddr>)>,
    /// a=setup (media level, else session level).
    pub setup: Option<Setup>,
    /// a=fingerprint (media level, else session level), as written: `sha-256 AB:CD:...`.
    pub fingerprint: Option<String>,
    /// a=crypto lines in the offer's order of preference.
    pub crypto: Vec<CryptoLine>,
    /// a=extmap values.
    pub extmap: Vec<String>,
    /// SSRCs from a=ssrc.
    pub ssrcs: Vec<u32>,
    /// sendrecv (default), sendonly, recvonly or inactive.
    pub direction: Direction,
}

impl MediaOffer {
    /// Where the line's RTCP goes when it is not multiplexed: its a=rtcp (RFC 3605), else
    /// the RTP port + 1 at the same address (RFC 3550 §11).
    pub fn rtcp_addr(&self) -> std::net::SocketAddr {
        match self.rtcp {
            Some((port, ip)) => std::net::SocketAddr::new(ip.unwrap_or(self.address), port),
            None => std::net::SocketAddr::new(self.address, self.port.wrapping_add(1)),
        }
    }
}

/// The media direction attribute (RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// sendrecv.
    SendRecv,
    /// sendonly.
    SendOnly,
    /// recvonly.
    RecvOnly,
    /// inactive.
    Inactive,
}

impl Direction {
    /// The direction an answer gives to an offered one (RFC 3264 §6.1).
    pub fn answer(self) -> Self {
        match self {
            Self::SendOnly => Self::RecvOnly,
            Self::RecvOnly => Self::SendOnly,
            d => d,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }
}

/// A parsed offer (or answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// o= session id, for answers to keep their own.
    pub session_id: String,
    /// o= version.
    pub session_version: u64,
    /// The m-lines in order.
    pub media: Vec<MediaOffer>,
}

fn attr<'a>(attrs: &'a [Attribute], name: &str) -> Option<&'a Attribute> {
    attrs
        .iter()
        .find(|a| a.attribute.eq_ignore_ascii_case(name))
}

fn attr_value<'a>(attrs: &'a [Attribute], name: &str) -> Option<&'a str> {
    attr(attrs, name).and_then(|a| a.value.as_deref())
}

fn connection_ip(c: &Connection) -> Option<IpAddr> {
    c.connection_address
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
}

/// Parses an SDP body.
pub fn parse(body: &[u8]) -> Result<Description, SdpError> {
    let s = Session::parse(body).map_err(|e| SdpError::Malformed(e.to_string()))?;
    let session_ip = s.connection.as_ref().and_then(connection_ip);
    let session_setup = attr_value(&s.attributes, "setup").and_then(Setup::parse);
    let session_fp = attr_value(&s.attributes, "fingerprint").map(str::to_owned);
    let mut media = Vec::with_capacity(s.medias.len());
    for (i, m) in s.medias.iter().enumerate() {
        media.push(media_offer(i, m, session_ip, session_setup, &session_fp)?);
    }
    Ok(Description {
        session_id: s.origin.sess_id.clone(),
        session_version: s.origin.sess_version,
        media,
    })
}

fn media_offer(
    i: usize,
    m: &Media,
    session_ip: Option<IpAddr>,
    session_setup: Option<Setup>,
    session_fp: &Option<String>,
) -> Result<MediaOffer, SdpError> {
    let a = &m.attributes;
    let kind = match m.media.to_ascii_lowercase().as_str() {
        "audio" => Some(MediaKind::Audio),
        "video" => Some(MediaKind::Video),
        _ => None,
    };
    let address = m
        .connections
        .first()
        .and_then(connection_ip)
        .or(session_ip)
        .ok_or(SdpError::NoConnection(i))?;
    let setup = match attr_value(a, "setup") {
        Some(v) => Some(Setup::parse(v).ok_or(SdpError::Attribute("setup"))?),
        None => session_setup,
    };
    let rtcp = match attr_value(a, "rtcp") {
        Some(v) => {
            let mut it = v.split_ascii_whitespace();
            let port = it
                .next()
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or(SdpError::Attribute("rtcp"))?;
            let ip = it.nth(2).and_then(|x| x.parse().ok());
            Some((port, ip))
        }
        None => None,
    };
    let crypto = a
        .iter()
        .filter(|x| x.attribute.eq_ignore_ascii_case("crypto"))
        .map(|x| CryptoLine::parse(x.value.as_deref().unwrap_or_default()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ssrcs: Vec<u32> = a
        .iter()
        .filter(|x| x.attribute.eq_ignore_ascii_case("ssrc"))
        .filter_map(|x| {
            x.value
                .as_deref()?
                .split_ascii_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    ssrcs.dedup();
    let direction = [
        ("sendonly", Direction::SendOnly),
        ("recvonly", Direction::RecvOnly),
        ("inactive", Direction::Inactive),
    ]
    .into_iter()
    .find(|(n, _)| attr(a, n).is_some())
    .map_or(Direction::SendRecv, |(_, d)| d);
    Ok(MediaOffer {
        kind,
        media: m.media.clone(),
        port: m.port,
        profile: Profile::parse(&m.proto),
        proto: m.proto.clone(),
        formats: m.fmt.split_ascii_whitespace().map(str::to_owned).collect(),
        rtpmaps: a
            .iter()
            .filter(|x| x.attribute.eq_ignore_ascii_case("rtpmap"))
            .filter_map(|x| {
                let (pt, map) = x.value.as_deref()?.split_once(' ')?;
                Some((pt.to_owned(), map.trim().to_owned()))
            })
            .collect(),
        address,
        rtcp_mux: attr(a, "rtcp-mux").is_some(),
        rtcp,
        setup,
        fingerprint: attr_value(a, "fingerprint")
            .map(str::to_owned)
            .or_else(|| session_fp.clone()),
        crypto,
        extmap: a
            .iter()
            .filter(|x| x.attribute.eq_ignore_ascii_case("extmap"))
            .filter_map(|x| x.value.clone())
            .collect(),
        ssrcs,
        direction,
    })
}

/// Our side of one media line, in an answer or an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Audio or video.
    pub kind: MediaKind,
    /// The RTP port.
    pub port: u16,
    /// The RTCP port when RTCP is not multiplexed (written as a=rtcp).
    pub rtcp_port: Option<u16>,
    /// The profile.
    pub profile: Profile,
    /// Payload types, with their rtpmap values.
    pub formats: Vec<(String, Option<String>)>,
    /// a=rtcp-mux.
    pub rtcp_mux: bool,
    /// a=setup and a=fingerprint (`sha-256 AB:...`) for DTLS keying.
    pub dtls: Option<(Setup, String)>,
    /// a=crypto for SDES keying.
    pub crypto: Option<CryptoLine>,
    /// The direction.
    pub direction: Direction,
}

/// The answer: one entry per offered m-line, `None` refuses it (port 0).
pub fn answer(
    offer: &Description,
    address: IpAddr,
    session_id: &str,
    version: u64,
    lines: &[Option<LocalMedia>],
) -> Vec<u8> {
    let mut s = session(address, session_id, version);
    for (i, o) in offer.media.iter().enumerate() {
        match lines.get(i).and_then(Option::as_ref) {
            Some(l) => s.medias.push(local_media(l)),
            None => {
                // RFC 3264 §6: a refused stream keeps its media, proto and a format.
                let fmt = o.formats.first().cloned().unwrap_or_else(|| "0".into());
                let mut m = Media {
                    media: o.media.clone(),
                    port: 0,
                    num_ports: None,
                    proto: o.proto.clone(),
                    fmt,
                    media_title: None,
                    connections: Vec::new(),
                    bandwidths: Vec::new(),
                    key: None,
                    attributes: Vec::new(),
                };
                m.attributes.push(Attribute::new("inactive"));
                s.medias.push(m);
            }
        }
    }
    write(&s)
}

/// An offer of our own (delayed offer: the INVITE had no SDP).
pub fn offer(address: IpAddr, session_id: &str, version: u64, lines: &[LocalMedia]) -> Vec<u8> {
    let mut s = session(address, session_id, version);
    s.medias.extend(lines.iter().map(local_media));
    write(&s)
}

fn session(address: IpAddr, session_id: &str, version: u64) -> Session {
    Session {
        origin: {
            let mut o = Origin::with_ip_addr(session_id, version, address);
            o.set_username("mswitch");
            o
        },
        session_name: "mswitch".into(),
        session_description: None,
        uri: None,
        emails: Vec::new(),
        phones: Vec::new(),
        connection: Some(Connection::from_ip_addr(address)),
        bandwidths: Vec::new(),
        times: vec![Time::new(0, 0)],
        time_zones: Vec::new(),
        key: None,
        attributes: Vec::new(),
        medias: Vec::new(),
    }
}

fn local_media(l: &LocalMedia) -> Media {
    let fmt: Vec<&str> = l.formats.iter().map(|(pt, _)| pt.as_str()).collect();
    let mut m = Media {
        media: match l.kind {
            MediaKind::Audio => "audio".into(),
            MediaKind::Video => "video".into(),
        },
        port: l.port,
        num_ports: None,
        proto: l.profile.as_str().into(),
        fmt: fmt.join(" "),
        media_title: None,
        connections: Vec::new(),
        bandwidths: Vec::new(),
        key: None,
        attributes: Vec::new(),
    };
    for (pt, map) in &l.formats {
        if let Some(map) = map {
            m.attributes
                .push(Attribute::with_value("rtpmap", format!("{pt} {map}")));
        }
    }
    if l.rtcp_mux {
        m.attributes.push(Attribute::new("rtcp-mux"));
    }
    if let Some(p) = l.rtcp_port {
        m.attributes.push(Attribute::with_value("rtcp", p));
    }
    if let Some((setup, fp)) = &l.dtls {
        m.attributes
            .push(Attribute::with_value("setup", setup.as_str()));
        m.attributes.push(Attribute::with_value("fingerprint", fp));
    }
    if let Some(c) = &l.crypto {
        m.attributes
            .push(Attribute::with_value("crypto", c.to_value()));
    }
    m.attributes.push(Attribute::new(l.direction.as_str()));
    m
}

/// Our next offer after `ours` (our last SDP) with every line moved to plain RTP/AVP: the
/// keying attributes (setup, fingerprint, crypto) go, SAVPF becomes AVPF, ports, formats
/// and the rest stay,
/// and the o= version goes up (RFC 3264 §8). A Best-Effort meeting's downgrade sends it.
pub fn plain_reoffer(ours: &[u8]) -> Result<Vec<u8>, SdpError> {
    let mut s = Session::parse(ours).map_err(|e| SdpError::Malformed(e.to_string()))?;
    s.origin.sess_version += 1;
    s.attributes
        .retain(|a| !matches!(a.attribute.as_str(), "setup" | "fingerprint"));
    for m in &mut s.medias {
        // RTP lines only (an SRTP profile becomes its plain counterpart); a line
        // of another kind keeps its proto.
        match Profile::parse(&m.proto) {
            Some(Profile::Savpf | Profile::UdpTlsSavpf) => m.proto = "RTP/AVPF".into(),
            Some(_) => m.proto = "RTP/AVP".into(),
            None => {}
        }
        m.attributes.retain(|a| {
            !matches!(
                a.attribute.as_str(),
                "setup" | "fingerprint" | "crypto" | "tls-id"
            )
        });
    }
    Ok(write(&s))
}

/// Our answer to a re-offer in the same session (hold, resume, a moved address): our
/// last SDP `ours` with each line's direction answering the offered one (RFC 3264 §6.1),
/// the lines the offer disables at port 0, and the o= version up (§8). The lines must
/// be the session's.
pub fn reanswer(ours: &[u8], offer: &Description) -> Result<Vec<u8>, SdpError> {
    let mut s = Session::parse(ours).map_err(|e| SdpError::Malformed(e.to_string()))?;
    if s.medias.len() != offer.media.len() {
        return Err(SdpError::LineCount {
            offered: offer.media.len(),
            ours: s.medias.len(),
        });
    }
    s.origin.sess_version += 1;
    let directions = ["sendrecv", "sendonly", "recvonly", "inactive"];
    for (m, o) in s.medias.iter_mut().zip(&offer.media) {
        if o.port == 0 {
            m.port = 0;
        }
        m.attributes
            .retain(|a| !directions.contains(&a.attribute.as_str()));
        m.attributes
            .push(Attribute::new(o.direction.answer().as_str()));
    }
    Ok(write(&s))
}

fn write(s: &Session) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = s.write(&mut out);
    out
}

/// Our a=setup for an offered one: passive (the switch is the DTLS server by default,
/// issue 3), active only when the offerer is passive. RFC 5763 §5 recommends an active
/// answerer for latency; passive is kept so a switch never opens DTLS toward an endpoint
/// that has not seen the answer yet.
pub fn answer_setup(offered: Option<Setup>) -> Setup {
    match offered {
        Some(Setup::Passive) => Setup::Active,
        _ => Setup::Passive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of baresip's dtls_srtp offer (peers-baresip.md), with a video line added.
    const BARESIP: &str = "v=0\r\n\
o=- 1234 5678 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
a=setup:actpass\r\n\
a=fingerprint:SHA-256 37:47:AA:BB\r\n\
m=audio 20100 UDP/TLS/RTP/SAVPF 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=rtcp-rsize\r\n\
a=ssrc:111 cname:x\r\n\
a=ssrc:111 msid:y\r\n\
a=ptime:20\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
m=video 20102 UDP/TLS/RTP/SAVPF 112\r\n\
c=IN IP4 127.0.0.2\r\n\
a=rtpmap:112 H264/90000\r\n\
a=rtcp-mux\r\n\
a=setup:active\r\n\
a=sendonly\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";

    #[test]
    fn an_offer_becomes_typed_media() {
        let d = parse(BARESIP.as_bytes()).unwrap();
        assert_eq!((d.session_id.as_str(), d.session_version), ("1234", 5678));
        assert_eq!(d.media.len(), 3);
        let a = &d.media[0];
        assert_eq!(a.kind, Some(MediaKind::Audio));
        assert_eq!(a.port, 20100);
        assert_eq!(a.profile, Some(Profile::UdpTlsSavpf));
        assert_eq!(a.formats, vec!["0", "101"]);
        assert_eq!(a.rtpmaps[0], ("0".into(), "PCMU/8000".into()));
        assert_eq!(a.address, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert!(!a.rtcp_mux);
        // Session-level setup and fingerprint apply to lines that do not override them.
        assert_eq!(a.setup, Some(Setup::ActPass));
        assert_eq!(a.fingerprint.as_deref(), Some("SHA-256 37:47:AA:BB"));
        assert_eq!(a.ssrcs, vec![111]);
        assert_eq!(
            a.extmap,
            vec!["1 urn:ietf:params:rtp-hdrext:ssrc-audio-level"]
        );
        assert_eq!(a.direction, Direction::SendRecv);
        let v = &d.media[1];
        assert_eq!(v.kind, Some(MediaKind::Video));
        assert_eq!(v.address, "127.0.0.2".parse::<IpAddr>().unwrap());
        assert!(v.rtcp_mux);
        assert_eq!(v.setup, Some(Setup::Active));
        assert_eq!(v.direction, Direction::SendOnly);
        assert_eq!(d.media[2].kind, None);
        assert_eq!(d.media[2].profile, None);
    }

    #[test]
    fn sdes_lines_with_the_early_ekt_parameter() {
        let c = CryptoLine::parse(
            "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4 EKT=AES_128|/pwAAAAAAAAAAAAAAAAAAA==|AAE0",
        )
        .unwrap();
        assert_eq!(c.tag, 1);
        assert_eq!(c.suite, "AES_CM_128_HMAC_SHA1_80");
        assert_eq!(c.key_salt.len(), 30);
        let ekt = c.ekt.clone().unwrap();
        assert_eq!(
            (ekt.cipher.as_str(), ekt.spi, ekt.key.len()),
            ("AES_128", 0xaae0, 16)
        );
        assert_eq!(ekt.key[..2], [0xfe, 0x9c]);
        // Written back and parsed again: the same line (the lifetime and MKI are not kept).
        let again = CryptoLine::parse(&c.to_value()).unwrap();
        assert_eq!(again, c);
        assert!(!format!("{c:?}").contains("WVNf"), "keys are never printed");
        for bad in [
            "",
            "x AES_CM_128_HMAC_SHA1_80 inline:AAAA",
            "1 AES_CM_128_HMAC_SHA1_80",
            "1 AES_CM_128_HMAC_SHA1_80 key:AAAA",
            "1 AES_CM_128_HMAC_SHA1_80 inline:!!!!",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA EKT=DES|AAAA|0001",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA EKT=AES_128|AAAA|1",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA EKT=AES_128|AAAA|00011",
        ] {
            assert!(CryptoLine::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_answer_keeps_the_offer_order_and_refuses_with_port_0() {
        let offer = parse(BARESIP.as_bytes()).unwrap();
        let ip: IpAddr = "10.1.1.1".parse().unwrap();
        let audio = LocalMedia {
            kind: MediaKind::Audio,
            port: 16384,
            rtcp_port: Some(16385),
            profile: Profile::UdpTlsSavpf,
            formats: vec![("0".into(), Some("PCMU/8000".into()))],
            rtcp_mux: false,
            dtls: Some((Setup::Passive, "sha-256 01:02".into())),
            crypto: None,
            direction: Direction::SendRecv,
        };
        let body = answer(&offer, ip, "42", 1, &[Some(audio.clone()), None, None]);
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(
            text.contains("m=audio 16384 UDP/TLS/RTP/SAVPF 0\r\n"),
            "{text}"
        );
        assert!(text.contains("a=rtcp:16385\r\n"), "{text}");
        assert!(text.contains("a=setup:passive\r\n"), "{text}");
        assert!(text.contains("a=fingerprint:sha-256 01:02\r\n"), "{text}");
        assert!(
            text.contains("m=video 0 UDP/TLS/RTP/SAVPF 112\r\n"),
            "{text}"
        );
        assert!(
            text.contains("m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\n"),
            "{text}"
        );
        // Our answer parses back to what was allocated.
        let back = parse(&body).unwrap();
        assert_eq!(back.media.len(), 3);
        assert_eq!(back.media[0].port, 16384);
        assert_eq!(back.media[0].rtcp, Some((16385, None)));
        assert_eq!(back.media[0].setup, Some(Setup::Passive));
        assert_eq!(back.media[0].address, ip);
        assert_eq!(back.media[1].port, 0);
        // A delayed offer of our own, with SDES.
        let crypto = CryptoLine {
            tag: 1,
            suite: "AES_CM_128_HMAC_SHA1_80".into(),
            key_salt: vec![7; 30],
            ekt: None,
        };
        let ours = offer_with_crypto(ip, crypto.clone());
        let parsed = parse(&ours).unwrap();
        assert_eq!(parsed.media[0].crypto, vec![crypto]);
        assert!(parsed.media[0].rtcp_mux);
        assert_eq!(parsed.media[0].profile, Some(Profile::Savp));
    }

    fn offer_with_crypto(ip: IpAddr, crypto: CryptoLine) -> Vec<u8> {
        offer(
            ip,
            "7",
            1,
            &[LocalMedia {
                kind: MediaKind::Audio,
                port: 16390,
                rtcp_port: None,
                profile: Profile::Savp,
                formats: vec![("0".into(), Some("PCMU/8000".into()))],
                rtcp_mux: true,
                dtls: None,
                crypto: Some(crypto),
                direction: Direction::SendRecv,
            }],
        )
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(matches!(parse(b"hello"), Err(SdpError::Malformed(_))));
        let no_c = BARESIP.replace("c=IN IP4 127.0.0.1\r\n", "");
        assert_eq!(parse(no_c.as_bytes()), Err(SdpError::NoConnection(0)));
        let bad_setup = BARESIP.replace("a=setup:active", "a=setup:sideways");
        assert_eq!(
            parse(bad_setup.as_bytes()),
            Err(SdpError::Attribute("setup"))
        );
    }

    #[test]
    fn a_plain_reoffer_keeps_the_lines_and_drops_the_keying() {
        let ours = offer(
            "10.0.0.1".parse().unwrap(),
            "7",
            1,
            &[LocalMedia {
                kind: MediaKind::Video,
                port: 16392,
                rtcp_port: Some(16393),
                profile: Profile::UdpTlsSavp,
                formats: vec![("112".into(), Some("H264/90000".into()))],
                rtcp_mux: false,
                dtls: Some((Setup::Passive, "sha-256 AB:CD".into())),
                crypto: None,
                direction: Direction::SendRecv,
            }],
        );
        let plain = plain_reoffer(&ours).unwrap();
        let d = parse(&plain).unwrap();
        assert_eq!((d.session_id.as_str(), d.session_version), ("7", 2));
        let m = &d.media[0];
        assert_eq!(m.profile, Some(Profile::Avp));
        assert_eq!((m.port, m.rtcp), (16392, Some((16393, None))));
        assert_eq!(m.rtpmaps, vec![("112".into(), "H264/90000".into())]);
        assert_eq!((m.setup, m.fingerprint.as_ref()), (None, None));
        // SAVPF becomes AVPF; a line that is not RTP keeps its proto.
        let d = parse(&plain_reoffer(BARESIP.as_bytes()).unwrap()).unwrap();
        assert_eq!(d.media[0].profile, Some(Profile::Avpf));
        assert!(d.media[0].crypto.is_empty() && d.media[1].setup.is_none());
        assert_eq!(d.media[2].proto, "UDP/DTLS/SCTP");
        assert!(matches!(
            plain_reoffer(b"junk"),
            Err(SdpError::Malformed(_))
        ));
    }

    #[test]
    fn a_reanswer_answers_the_direction_and_keeps_the_rest() {
        let ours = plain_reoffer(BARESIP.as_bytes()).unwrap();
        let before = parse(&ours).unwrap();
        let mut hold = before.clone();
        hold.media[0].direction = Direction::SendOnly;
        hold.media[1].direction = Direction::Inactive;
        hold.media[2].port = 0;
        let d = parse(&reanswer(&ours, &hold).unwrap()).unwrap();
        assert_eq!(d.session_version, before.session_version + 1);
        let dirs: Vec<Direction> = d.media.iter().map(|m| m.direction).collect();
        assert_eq!(dirs[..2], [Direction::RecvOnly, Direction::Inactive]);
        assert_eq!(d.media[2].port, 0);
        assert_eq!(d.media[0].port, before.media[0].port);
        assert_eq!(d.media[0].rtpmaps, before.media[0].rtpmaps);
        hold.media.pop();
        assert_eq!(
            reanswer(&ours, &hold),
            Err(SdpError::LineCount {
                offered: 2,
                ours: 3
            })
        );
    }
}

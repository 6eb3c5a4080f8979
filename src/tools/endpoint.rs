//! Simulated TelePresence endpoints that reach the switch the way real ones do: SIP over
//! TLS with their own certificate, DTLS-SRTP on every media line, TIP, EKT-keyed audio
//! (scripted activity) and video (IDR on request and periodically). They wrap the
//! socketless [`switch::testing::Endpoint`] (which decrypts and checks everything it
//! receives) with real sockets. Used by the demo, the end-to-end tests and the load
//! generator.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use sip::framing::{Frame, StreamFramer};
use sip::sdp::{self, Description};
use sip::tls::{self, TlsPolicy};
use switch::dtls::{DtlsIdentity, parse_sdp_fingerprint};
use switch::meeting::LegId;
use switch::testing::Endpoint;
use switch::tip::negotiation::Media;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// How long a simulated endpoint waits before it sends its MUXCTRL again.
const MUXCTRL_RETRY: Duration = Duration::from_millis(500);

/// A failure of a simulated endpoint.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// I/O.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The switch answered something unexpected.
    #[error("{0}")]
    Protocol(String),
    /// TLS material.
    #[error("{0}")]
    Tls(String),
    /// A 3xx: the call goes to `contact` (a switch of the cluster that runs the meeting).
    #[error("{status} (Contact: {contact})")]
    Redirected {
        /// The status line.
        status: String,
        /// The Contact's URI.
        contact: String,
    },
}

/// The TLS identity of simulated endpoints: the loopback trunk peer's certificate the
/// switch made in `data_dir` (`subject` must be [`crate::certs::LOOPBACK_PEER`]: the CA's
/// key is gone, nothing else can be issued), trusting the switch's local CA.
pub fn peer_policy(data_dir: &Path, subject: &str) -> Result<TlsPolicy, EndpointError> {
    if subject != crate::certs::LOOPBACK_PEER {
        return Err(EndpointError::Tls(format!(
            "only the loopback peer `{}` has a certificate in the data directory",
            crate::certs::LOOPBACK_PEER
        )));
    }
    let (cert, key) = crate::certs::loopback_peer_identity(data_dir)
        .map_err(|e| EndpointError::Tls(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in tls::parse_certificates(&std::fs::read(data_dir.join("ca.pem"))?) {
        roots
            .add(c)
            .map_err(|e| EndpointError::Tls(e.to_string()))?;
    }
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes())
        .map_err(|e| EndpointError::Tls(e.to_string()))?;
    let identity = tls::identity(tls::parse_certificates(cert.as_bytes()), key)
        .map_err(|e| EndpointError::Tls(e.to_string()))?;
    Ok(TlsPolicy::new(identity, roots))
}

/// A TLS stream, client or server side.
trait SipStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> SipStream for T {}

/// SIP over TLS with the switch: a connection we opened, or one the switch opened to us
/// (a trunk peer's side of a dial-out).
pub struct SipClient {
    stream: Box<dyn SipStream>,
    framer: StreamFramer,
    /// Our address (Via, Contact).
    pub local: SocketAddr,
}

impl SipClient {
    /// Connects, presenting `policy`'s certificate and checking the switch's (`mswitch`).
    pub async fn connect(
        policy: &TlsPolicy,
        to: SocketAddr,
        switch_subject: &str,
    ) -> Result<Self, EndpointError> {
        let tcp = TcpStream::connect(to).await?;
        let local = tcp.local_addr()?;
        let config = policy
            .client_config(switch_subject)
            .map_err(|e| EndpointError::Tls(e.to_string()))?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(rustls::pki_types::ServerName::from(to.ip()), tcp)
            .await?;
        Ok(Self {
            stream: Box::new(stream),
            framer: StreamFramer::new(65536),
            local,
        })
    }

    /// Takes the switch's connection on `listener` (we are its trunk peer), presenting
    /// `policy`'s certificate and requiring the switch's, for `switch_subject`.
    pub async fn accept(
        policy: &TlsPolicy,
        listener: &TcpListener,
        switch_subject: &str,
    ) -> Result<Self, EndpointError> {
        let (tcp, _) = listener.accept().await?;
        let local = tcp.local_addr()?;
        let config = policy
            .server_config(switch_subject)
            .map_err(|e| EndpointError::Tls(e.to_string()))?;
        let stream = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await?;
        Ok(Self {
            stream: Box::new(stream),
            framer: StreamFramer::new(65536),
            local,
        })
    }

    /// The next request with `method`, answering nothing before it.
    pub async fn request(&mut self, method: &str) -> Result<String, EndpointError> {
        loop {
            let m = self.recv().await?;
            if m.starts_with(&format!("{method} ")) {
                return Ok(m);
            }
        }
    }

    /// Sends a message.
    pub async fn send(&mut self, text: &str) -> Result<(), EndpointError> {
        self.stream.write_all(text.as_bytes()).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// The next message (10 s at most).
    pub async fn recv(&mut self) -> Result<String, EndpointError> {
        loop {
            if let Ok(Some(Frame::Message(m))) = self.framer.next_frame() {
                return Ok(String::from_utf8_lossy(&m).into_owned());
            }
            let mut b = [0u8; 8192];
            let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut b))
                .await
                .map_err(|_| EndpointError::Protocol("no SIP message for 10 s".into()))??;
            if n == 0 {
                return Err(EndpointError::Protocol(
                    "the switch closed the connection".into(),
                ));
            }
            self.framer.push(&b[..n]);
        }
    }

    /// Reads until a final response.
    pub async fn final_response(&mut self) -> Result<String, EndpointError> {
        loop {
            let m = self.recv().await?;
            if m.starts_with("SIP/2.0 ") && !m.starts_with("SIP/2.0 1") {
                return Ok(m);
            }
        }
    }
}

/// A message's body.
pub fn body_of(m: &str) -> &str {
    m.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// A header's value (first occurrence, exact name with colon, e.g. `"To:"`).
pub fn header<'a>(m: &'a str, name: &str) -> &'a str {
    m.lines()
        .find_map(|l| l.strip_prefix(name))
        .map_or("", str::trim)
}

/// A request from a simulated endpoint.
pub fn request(
    method: &str,
    local: SocketAddr,
    number: &str,
    call_id: &str,
    to_tag: Option<&str>,
    cseq: u32,
    body: &str,
) -> String {
    let to = match to_tag {
        Some(t) => format!("<sip:{number}@127.0.0.1>;tag={t}"),
        None => format!("<sip:{number}@127.0.0.1>"),
    };
    let ct = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".into()
    };
    format!(
        "{method} sip:{number}@127.0.0.1;transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bK{call_id}{method}{cseq}\r\n\
         From: <sip:ep@127.0.0.1>;tag=ep-{call_id}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n\
         Contact: <sip:ep@{local};transport=tls>\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Whether a datagram is RTP media (RFC 7983: not DTLS or STUN; RFC 5761: not RTCP).
pub fn is_rtp(d: &[u8]) -> bool {
    d.len() >= 12 && (128..=191).contains(&d[0]) && !(192..=223).contains(&d[1])
}

/// The response of a simulated endpoint at `local` to `request` (its Via, From, To,
/// Call-ID and CSeq), with `status` (`"200 OK"`) and an SDP `body` (may be empty).
pub fn response(request: &str, status: &str, local: SocketAddr, body: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for name in ["Via:", "From:", "To:", "Call-ID:", "CSeq:"] {
        for l in request.lines().filter(|l| l.starts_with(name)) {
            out.push_str(l);
            out.push_str("\r\n");
        }
    }
    let ct = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    out.push_str(&format!(
        "Contact: <sip:ep@{local};transport=tls>\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    out
}

/// INVITE with `offer` (empty: a delayed offer), a 200 expected, ACK with `ack_body`;
/// returns the switch's To tag and SDP.
pub async fn invite(
    sip: &mut SipClient,
    number: &str,
    call_id: &str,
    offer: &str,
    ack_body: &str,
) -> Result<(String, Description), EndpointError> {
    sip.send(&request(
        "INVITE", sip.local, number, call_id, None, 1, offer,
    ))
    .await?;
    let ok = sip.final_response().await?;
    if ok.starts_with("SIP/2.0 3") {
        return Err(EndpointError::Redirected {
            status: ok.lines().next().unwrap_or_default().to_owned(),
            contact: header(&ok, "Contact:")
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned(),
        });
    }
    if !ok.starts_with("SIP/2.0 200") {
        // The status line, and the switch's Warning when it gives one (why it refused).
        let status = ok.lines().next().unwrap_or_default();
        let warning = header(&ok, "Warning:");
        return Err(EndpointError::Protocol(if warning.is_empty() {
            status.to_owned()
        } else {
            format!("{status} (Warning: {warning})")
        }));
    }
    let tag = header(&ok, "To:")
        .split(";tag=")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let switch_sdp = sdp::parse(body_of(&ok).as_bytes())
        .map_err(|e| EndpointError::Protocol(format!("the switch's SDP: {e}")))?;
    sip.send(&request(
        "ACK",
        sip.local,
        number,
        call_id,
        Some(&tag),
        1,
        ack_body,
    ))
    .await?;
    Ok((tag, switch_sdp))
}

/// An endpoint's SDP: its ports, its DTLS fingerprint, `setup:active`, rtcp-mux, an
/// a=ssrc per video source (the switch counts screens from them).
pub fn endpoint_sdp(ep: &Endpoint, ports: &HashMap<LegId, u16>, fingerprint: &str) -> String {
    let mut s = format!(
        "v=0\r\no=- {0} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n",
        ep.id
    );
    for l in &ep.lines {
        let (m, pt, map) = match l.media {
            Media::Audio => ("audio", 96, "AAC-LD/48000"),
            Media::Video => ("video", 112, "H264/90000"),
        };
        let port = ports.get(&l.leg).copied().unwrap_or(0);
        // RTCP multiplexed, or on its own port (RFC 3605 a=rtcp).
        let rtcp = match l.rtcp_leg {
            None => "a=rtcp-mux\r\n".to_owned(),
            Some(leg) => format!("a=rtcp:{}\r\n", ports.get(&leg).copied().unwrap_or(0)),
        };
        if l.plain {
            // Non-secure: plain RTP, no keys.
            s.push_str(&format!(
                "m={m} {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {map}\r\n{rtcp}"
            ));
        } else {
            s.push_str(&format!(
                "m={m} {port} UDP/TLS/RTP/SAVP {pt}\r\na=rtpmap:{pt} {map}\r\n{rtcp}\
                 a=setup:active\r\na=fingerprint:{fingerprint}\r\n"
            ));
        }
        for (_, ssrc, _, _) in &l.sources {
            s.push_str(&format!("a=ssrc:{ssrc} cname:ep{}\r\n", ep.id));
        }
    }
    s
}

/// Per leg of `endpoint`'s lines, a bound loopback socket; and our SDP with their ports.
async fn bind_lines(
    endpoint: &Endpoint,
    dtls_id: &Arc<DtlsIdentity>,
) -> Result<(HashMap<LegId, UdpSocket>, String), EndpointError> {
    let mut ports = HashMap::new();
    let mut local = HashMap::new();
    for l in &endpoint.lines {
        for leg in std::iter::once(l.leg).chain(l.rtcp_leg) {
            let s = UdpSocket::bind("127.0.0.1:0").await?;
            ports.insert(leg, s.local_addr()?.port());
            local.insert(leg, s);
        }
    }
    let sdp = endpoint_sdp(endpoint, &ports, &dtls_id.sdp_fingerprint());
    Ok((local, sdp))
}

/// Each line's sockets with the switch's address from its SDP: without rtcp-mux, RTCP
/// goes to the switch's a=rtcp, else its port + 1.
fn toward_switch(
    endpoint: &Endpoint,
    mut local: HashMap<LegId, UdpSocket>,
    switch_sdp: &Description,
) -> HashMap<LegId, (UdpSocket, SocketAddr)> {
    let mut sockets = HashMap::new();
    for (l, m) in endpoint.lines.iter().zip(&switch_sdp.media) {
        if let Some(s) = local.remove(&l.leg) {
            sockets.insert(l.leg, (s, SocketAddr::new(m.address, m.port)));
        }
        if let Some(s) = l.rtcp_leg.and_then(|leg| local.remove(&leg)) {
            sockets.insert(l.rtcp_leg.unwrap_or(l.leg), (s, m.rtcp_addr()));
        }
    }
    sockets
}

/// One endpoint in a call with the switch.
pub struct SimulatedCall {
    /// The TIP endpoint.
    pub endpoint: Endpoint,
    /// Its SIP connection.
    pub sip: SipClient,
    /// Call-ID.
    pub call_id: String,
    /// The switch's To tag.
    pub tag: String,
    /// The switch's SDP.
    pub switch_sdp: Description,
    /// Per leg: our socket and the switch's address.
    sockets: HashMap<LegId, (UdpSocket, SocketAddr)>,
    /// When our MUXCTRL last went out: sent again until TIP is through, as a TIP
    /// endpoint retransmits an unacknowledged request.
    muxctrl_sent: Option<Instant>,
    /// Send MUXCTRL once DTLS is up (a TIP endpoint does; a plain one would not).
    pub speaks_tip: bool,
    /// Our DTLS certificate's fingerprint, as our SDP gives it.
    fingerprint: String,
}

impl SimulatedCall {
    /// Dials `number` on the switch at `sip_addr`: INVITE (with our offer, or without
    /// one for a delayed offer), 200, ACK (with our answer when delayed), then DTLS.
    pub async fn dial(
        mut endpoint: Endpoint,
        policy: &TlsPolicy,
        sip_addr: SocketAddr,
        number: &str,
        delayed_offer: bool,
        dtls_id: &Arc<DtlsIdentity>,
    ) -> Result<Self, EndpointError> {
        endpoint.expect_test_group = false;
        let (local, our_sdp) = bind_lines(&endpoint, dtls_id).await?;
        let mut sip = SipClient::connect(policy, sip_addr, "mswitch").await?;
        let call_id = format!(
            "ep{}-{}",
            endpoint.id,
            crate::join::random::<4>()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let (offer, ack_body) = if delayed_offer {
            ("", our_sdp.as_str())
        } else {
            (our_sdp.as_str(), "")
        };
        let (tag, switch_sdp) = invite(&mut sip, number, &call_id, offer, ack_body).await?;
        let plain = endpoint.lines.iter().all(|l| l.plain);
        let fp = switch_sdp
            .media
            .first()
            .and_then(|m| m.fingerprint.as_deref())
            .and_then(parse_sdp_fingerprint);
        if fp.is_none() && !plain {
            return Err(EndpointError::Protocol(
                "no fingerprint from the switch".into(),
            ));
        }
        let sockets = toward_switch(&endpoint, local, &switch_sdp);
        if let Some(fp) = fp.filter(|_| !plain) {
            endpoint.start_dtls_toward(Instant::now(), fp, dtls_id);
        }
        Ok(Self {
            endpoint,
            sip,
            call_id,
            tag,
            switch_sdp,
            sockets,
            muxctrl_sent: None,
            speaks_tip: true,
            fingerprint: dtls_id.sdp_fingerprint(),
        })
    }

    /// Answers the switch's INVITE (an operator's dial-out, the switch calling its trunk
    /// peer, which we are) on `listener`: 200 with our SDP as the answer to the switch's
    /// offer, the ACK, then DTLS on every line. In-dialog requests we send later carry
    /// the switch's From tag as our To tag, as [`SimulatedCall::hangup`] expects.
    pub async fn answer(
        mut endpoint: Endpoint,
        policy: &TlsPolicy,
        listener: &TcpListener,
        dtls_id: &Arc<DtlsIdentity>,
    ) -> Result<Self, EndpointError> {
        endpoint.expect_test_group = false;
        let (local, our_sdp) = bind_lines(&endpoint, dtls_id).await?;
        let mut sip = SipClient::accept(policy, listener, "mswitch").await?;
        let invite = sip.request("INVITE").await?;
        let switch_sdp = sdp::parse(body_of(&invite).as_bytes())
            .map_err(|e| EndpointError::Protocol(format!("the switch's offer: {e}")))?;
        let call_id = header(&invite, "Call-ID:").to_owned();
        let tag = header(&invite, "From:")
            .split(";tag=")
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let ok = response(&invite, "200 OK", sip.local, &our_sdp).replacen(
            &format!("To: {}", header(&invite, "To:")),
            &format!("To: {};tag=ep-{call_id}", header(&invite, "To:")),
            1,
        );
        sip.send(&ok).await?;
        sip.request("ACK").await?;
        let fp = switch_sdp
            .media
            .first()
            .and_then(|m| m.fingerprint.as_deref())
            .and_then(parse_sdp_fingerprint)
            .ok_or_else(|| EndpointError::Protocol("no fingerprint from the switch".into()))?;
        let sockets = toward_switch(&endpoint, local, &switch_sdp);
        endpoint.start_dtls_toward(Instant::now(), fp, dtls_id);
        Ok(Self {
            endpoint,
            sip,
            call_id,
            tag,
            switch_sdp,
            sockets,
            muxctrl_sent: None,
            speaks_tip: true,
            fingerprint: dtls_id.sdp_fingerprint(),
        })
    }

    /// Its parts, for a driver of its own (the load generator): the TIP endpoint, the SIP
    /// connection (kept open for the call to last) and, per leg, the socket and the
    /// switch's address.
    pub fn into_parts(self) -> (Endpoint, SipClient, HashMap<LegId, (UdpSocket, SocketAddr)>) {
        (self.endpoint, self.sip, self.sockets)
    }

    /// Our SDP as it stands: the lines, their ports and keying.
    pub fn local_sdp(&self) -> Result<String, EndpointError> {
        let mut ports = HashMap::new();
        for (leg, (s, _)) in &self.sockets {
            ports.insert(*leg, s.local_addr()?.port());
        }
        Ok(endpoint_sdp(&self.endpoint, &ports, &self.fingerprint))
    }

    async fn send_all(&self, datagrams: Vec<(LegId, Vec<u8>)>) {
        for (leg, d) in datagrams {
            if let Some((s, to)) = self.sockets.get(&leg) {
                let _ = s.send_to(&d, to).await;
            }
        }
    }

    /// Whether every line's DTLS is up (a non-secure line has none to wait for).
    pub fn keyed(&self) -> bool {
        self.endpoint
            .lines
            .iter()
            .all(|l| l.plain || l.dtls.as_ref().is_some_and(|d| d.is_connected()))
    }

    /// Whether every line has its SPIMAP.
    pub fn established(&self) -> bool {
        self.endpoint.lines.iter().all(|l| l.established)
    }

    /// One pass: DTLS, MUXCTRL once keyed, everything received answered and checked.
    pub async fn pump(&mut self, now: Instant) {
        self.pump_with(now, false).await;
    }

    /// [`SimulatedCall::pump`]; with `skip_media`, forwarded RTP is dropped unread (the
    /// load generator's media is not the simulator's, and its receivers check it).
    pub async fn pump_with(&mut self, now: Instant, skip_media: bool) {
        self.endpoint.handle_timeout(now);
        let d = self.endpoint.dtls_pump();
        self.send_all(d).await;
        let muxctrl_due = self
            .muxctrl_sent
            .is_none_or(|t| !self.established() && now >= t + MUXCTRL_RETRY);
        if self.speaks_tip && muxctrl_due && self.keyed() {
            self.muxctrl_sent = Some(now);
            let m = self.endpoint.muxctrls();
            self.send_all(m).await;
        }
        let mut buf = [0u8; 2048];
        let mut replies = Vec::new();
        for (leg, (s, _)) in &self.sockets {
            while let Ok((n, _)) = s.try_recv_from(&mut buf) {
                if skip_media && is_rtp(&buf[..n]) {
                    continue;
                }
                replies.extend(self.endpoint.handle_datagram(now, *leg, &buf[..n]));
            }
        }
        self.send_all(replies).await;
    }

    /// One 20 ms media tick at activity `level`, with video when `video`.
    pub async fn media_tick(&mut self, level: u8, video: bool, idr: &mut HashSet<(u32, u16)>) {
        let p = self.endpoint.media_tick(level, video, idr);
        self.send_all(p).await;
    }

    /// Takes the switch's re-INVITE to RTP/AVP (a Best-Effort downgrade, R38): what already
    /// arrived is taken first in the old mode (the NOTIFY clearing the security icon, SRTP
    /// sent before), then it answers 200 with plain lines on the same ports, takes the ACK
    /// and runs TIP again without EKT.
    pub async fn accept_downgrade(&mut self) -> Result<(), EndpointError> {
        let invite = loop {
            let m = self.sip.recv().await?;
            if m.starts_with("INVITE ") {
                break m;
            }
        };
        self.pump(Instant::now()).await;
        let offer = sdp::parse(body_of(&invite).as_bytes())
            .map_err(|e| EndpointError::Protocol(format!("the switch's re-offer: {e}")))?;
        if offer
            .media
            .iter()
            .any(|m| m.port != 0 && m.profile.is_none_or(|p| p.is_secure()))
        {
            return Err(EndpointError::Protocol(
                "the re-offer is not plain RTP".into(),
            ));
        }
        self.endpoint.downgrade();
        let ours = self.local_sdp()?;
        let ok = response(&invite, "200 OK", self.sip.local, &ours);
        self.sip.send(&ok).await?;
        loop {
            let m = self.sip.recv().await?;
            if m.starts_with("ACK ") {
                break;
            }
        }
        for (l, m) in self.endpoint.lines.iter().zip(&offer.media) {
            if let Some((_, to)) = self.sockets.get_mut(&l.leg) {
                *to = SocketAddr::new(m.address, m.port);
            }
            if let Some((_, to)) = l.rtcp_leg.and_then(|leg| self.sockets.get_mut(&leg)) {
                *to = m.rtcp_addr();
            }
        }
        self.switch_sdp = offer;
        self.muxctrl_sent = None;
        Ok(())
    }

    /// Sends a re-INVITE with `sdp` (CSeq `cseq`) in the call to `number`; returns the
    /// switch's final response (the caller ACKs a 2xx).
    pub async fn reinvite(
        &mut self,
        number: &str,
        cseq: u32,
        sdp: &str,
    ) -> Result<String, EndpointError> {
        let invite = request(
            "INVITE",
            self.sip.local,
            number,
            &self.call_id,
            Some(&self.tag),
            cseq,
            sdp,
        );
        self.sip.send(&invite).await?;
        self.sip.final_response().await
    }

    /// Sends `bytes` as they are from line `line`'s socket to the switch: what anyone who
    /// can spoof the endpoint's address can send (the robustness tests' forged datagrams).
    pub async fn send_raw(&self, line: usize, bytes: &[u8]) -> Result<(), EndpointError> {
        let leg = self
            .endpoint
            .lines
            .get(line)
            .map(|l| l.leg)
            .ok_or_else(|| EndpointError::Protocol(format!("no line {line}")))?;
        if let Some((s, to)) = self.sockets.get(&leg) {
            s.send_to(bytes, *to).await?;
        }
        Ok(())
    }

    /// Hangs up: BYE, and its 200.
    pub async fn hangup(&mut self, number: &str) -> Result<(), EndpointError> {
        let bye = request(
            "BYE",
            self.sip.local,
            number,
            &self.call_id,
            Some(&self.tag),
            2,
            "",
        );
        self.sip.send(&bye).await?;
        let r = self.sip.final_response().await?;
        if r.starts_with("SIP/2.0 200") {
            Ok(())
        } else {
            Err(EndpointError::Protocol(
                r.lines().next().unwrap_or_default().to_owned(),
            ))
        }
    }
}

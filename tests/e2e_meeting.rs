//! End to end: `mswitch run`'s application on loopback, and three simulated TIP endpoints
//! (one 3-screen, two 1-screen) that call it over SIP/TLS with their own certificate
//! (issued by the switch's local CA, subject `mswitch-peer`: the default trunk peer), key
//! each media line with DTLS-SRTP, negotiate TIP, take the meeting's group key from
//! SPIMAP, and send EKT-keyed audio and video. Every packet an endpoint receives is
//! decrypted with its sender's key and checked by the simulator; B talks, so A and C must
//! see and hear B. Once with early offer, once with delayed offer (Unified CM's default).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mswitch::app::App;
use mswitch::config::Config;
use rustls::pki_types::pem::PemObject;
use sip::framing::{Frame, StreamFramer};
use sip::sdp;
use sip::tls::{self, TlsPolicy};
use sip::ua::Transport;
use switch::dtls::{DtlsIdentity, parse_sdp_fingerprint};
use switch::meeting::LegId;
use switch::testing::Endpoint;
use switch::tip::negotiation::Media;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::client::TlsStream;

struct SipClient {
    stream: TlsStream<TcpStream>,
    framer: StreamFramer,
    local: SocketAddr,
}

impl SipClient {
    async fn connect(policy: &TlsPolicy, to: SocketAddr) -> Self {
        let tcp = TcpStream::connect(to).await.unwrap();
        let local = tcp.local_addr().unwrap();
        let c = tokio_rustls::TlsConnector::from(policy.client_config("mswitch").unwrap());
        let stream = c
            .connect(
                rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
                tcp,
            )
            .await
            .expect("the switch's certificate from its local CA");
        Self {
            stream,
            framer: StreamFramer::new(65536),
            local,
        }
    }

    async fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    async fn recv(&mut self) -> String {
        loop {
            if let Ok(Some(Frame::Message(m))) = self.framer.next_frame() {
                return String::from_utf8(m).unwrap();
            }
            let mut b = [0u8; 8192];
            let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut b))
                .await
                .expect("a SIP message")
                .unwrap();
            assert!(n > 0, "the switch closed the connection");
            self.framer.push(&b[..n]);
        }
    }

    /// Reads until a final response; returns it.
    async fn final_response(&mut self) -> String {
        loop {
            let m = self.recv().await;
            if m.starts_with("SIP/2.0 ") && !m.starts_with("SIP/2.0 1") {
                return m;
            }
        }
    }
}

fn body_of(m: &str) -> &str {
    m.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

fn header<'a>(m: &'a str, name: &str) -> &'a str {
    m.lines()
        .find_map(|l| l.strip_prefix(name))
        .map_or("", str::trim)
}

/// The endpoint's SDP: its media ports, fingerprint, active setup, rtcp-mux, a=ssrc per
/// video source (the switch counts screens from them).
fn endpoint_sdp(ep: &Endpoint, ports: &HashMap<LegId, u16>, fingerprint: &str) -> String {
    let mut s = format!(
        "v=0\r\no=- {0} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n",
        ep.id
    );
    for l in &ep.lines {
        let (m, pt, map) = match l.media {
            Media::Audio => ("audio", 96, "AAC-LD/48000"),
            Media::Video => ("video", 112, "H264/90000"),
        };
        s.push_str(&format!(
            "m={m} {} UDP/TLS/RTP/SAVP {pt}\r\na=rtpmap:{pt} {map}\r\na=rtcp-mux\r\n\
             a=setup:active\r\na=fingerprint:{fingerprint}\r\n",
            ports[&l.leg]
        ));
        for (_, ssrc, _, _) in &l.sources {
            s.push_str(&format!("a=ssrc:{ssrc} cname:ep{}\r\n", ep.id));
        }
    }
    s
}

fn request(
    method: &str,
    c: &SipClient,
    call_id: &str,
    to_tag: Option<&str>,
    cseq: u32,
    body: &str,
) -> String {
    let to = match to_tag {
        Some(t) => format!("<sip:4000@127.0.0.1>;tag={t}"),
        None => "<sip:4000@127.0.0.1>".into(),
    };
    let ct = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".into()
    };
    format!(
        "{method} sip:4000@127.0.0.1;transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS {};branch=z9hG4bK{call_id}{method}{cseq}\r\n\
         From: <sip:ep@127.0.0.1>;tag=ep-{call_id}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n\
         Contact: <sip:ep@{};transport=tls>\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        c.local,
        c.local,
        body.len()
    )
}

async fn meeting_over_sip(delayed_offer: bool, port_range: &str) {
    let dir = std::env::temp_dir().join(format!(
        "mswitch-e2e-{}-{}",
        std::process::id(),
        u8::from(delayed_offer)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let settings = Config::parse(&format!(
        "[sip]\nudp = \"\"\ntcp = \"\"\ntls = \"127.0.0.1:0\"\noptions_interval = 0\n\
         [tls]\ndata_dir = \"{}\"\n[media]\nports = \"{port_range}\"\naddress = \"127.0.0.1\"\nworkers = 2\n\
         [[meeting]]\nnumber = \"4000\"\npolicy = \"secure\"\n",
        dir.display()
    ))
    .unwrap();
    let app = App::start(settings).await.unwrap();
    let sip_addr = app.sip_addr(Transport::Tls).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));

    // The endpoints' TLS identity: "mswitch-peer" from the switch's local CA.
    let ca = mswitch::certs::local_ca(&dir).unwrap();
    let (cert, key) = mswitch::certs::issue(&ca, "mswitch-peer").unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in tls::parse_certificates(&std::fs::read(dir.join("ca.pem")).unwrap()) {
        roots.add(c).unwrap();
    }
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let policy = TlsPolicy::new(
        tls::identity(tls::parse_certificates(cert.as_bytes()), key).unwrap(),
        roots,
    );

    let endpoint_id = Arc::new(DtlsIdentity::generate().unwrap());
    let mut endpoints = vec![
        Endpoint::new(1, 3),
        Endpoint::new(2, 1),
        Endpoint::new(3, 1),
    ];
    let mut sockets: HashMap<LegId, (UdpSocket, SocketAddr)> = HashMap::new();
    let mut clients = Vec::new();
    for ep in &mut endpoints {
        ep.expect_test_group = false;
        let mut ports = HashMap::new();
        let mut local = HashMap::new();
        for l in &ep.lines {
            let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            ports.insert(l.leg, s.local_addr().unwrap().port());
            local.insert(l.leg, s);
        }
        let our_sdp = endpoint_sdp(ep, &ports, &endpoint_id.sdp_fingerprint());
        let mut c = SipClient::connect(&policy, sip_addr).await;
        let call_id = format!("e2e-{}-{}", ep.id, u8::from(delayed_offer));
        let invite_body = if delayed_offer { "" } else { our_sdp.as_str() };
        c.send(&request("INVITE", &c, &call_id, None, 1, invite_body))
            .await;
        let ok = c.final_response().await;
        assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
        let tag = header(&ok, "To:").split(";tag=").nth(1).unwrap().to_owned();
        let switch_sdp = sdp::parse(body_of(&ok).as_bytes()).expect("an SDP in the 200");
        // The switch is passive (we are active): our answer says active too.
        let ack_body = if delayed_offer { our_sdp.as_str() } else { "" };
        c.send(&request("ACK", &c, &call_id, Some(&tag), 1, ack_body))
            .await;
        let fp = switch_sdp.media[0]
            .fingerprint
            .clone()
            .expect("a fingerprint");
        let switch_fp = parse_sdp_fingerprint(&fp).unwrap();
        for (l, m) in ep.lines.iter().zip(&switch_sdp.media) {
            let to = SocketAddr::new(m.address, m.port);
            sockets.insert(l.leg, (local.remove(&l.leg).unwrap(), to));
        }
        ep.start_dtls_toward(Instant::now(), switch_fp, &endpoint_id);
        clients.push((c, call_id, tag));
    }

    let mut idr = HashSet::new();
    let mut muxctrl_sent = false;
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    let mut next_tick = start;
    let mut tick = 0u32;
    while start.elapsed() < Duration::from_millis(4000) {
        let now = Instant::now();
        for ep in &mut endpoints {
            for (leg, d) in ep.dtls_pump() {
                let (s, to) = &sockets[&leg];
                s.send_to(&d, to).await.unwrap();
            }
        }
        let keyed = endpoints.iter().all(|e| {
            e.lines
                .iter()
                .all(|l| l.dtls.as_ref().is_some_and(|d| d.is_connected()))
        });
        if keyed && !muxctrl_sent {
            muxctrl_sent = true;
            for ep in &mut endpoints {
                for (leg, d) in ep.muxctrls() {
                    let (s, to) = &sockets[&leg];
                    s.send_to(&d, to).await.unwrap();
                }
            }
        }
        for ep in &mut endpoints {
            let legs: Vec<LegId> = ep.lines.iter().map(|l| l.leg).collect();
            for leg in legs {
                while let Ok((n, _)) = sockets[&leg].0.try_recv_from(&mut buf) {
                    for (rleg, r) in ep.handle_datagram(now, leg, &buf[..n]) {
                        let (s, to) = &sockets[&rleg];
                        s.send_to(&r, to).await.unwrap();
                    }
                }
            }
        }
        if now >= next_tick {
            next_tick += Duration::from_millis(20);
            tick += 1;
            for (i, ep) in endpoints.iter_mut().enumerate() {
                let level = if i == 1 { 60 } else { 5 };
                for (leg, p) in ep.media_tick(level, tick.is_multiple_of(2), &mut idr) {
                    let (s, to) = &sockets[&leg];
                    s.send_to(&p, to).await.unwrap();
                }
            }
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }

    for ep in &endpoints {
        for l in &ep.lines {
            assert!(
                l.established,
                "endpoint {} {:?}: SPIMAP received",
                ep.id, l.media
            );
            assert!(l.group.is_some_and(|g| g.0 % 2 == 1), "an odd group SPI");
        }
    }
    for i in [0, 2] {
        for m in [Media::Audio, Media::Video] {
            let from_b = endpoints[i]
                .received
                .iter()
                .filter(|r| r.0 == m && r.1 >> 16 == 2)
                .count();
            assert!(from_b > 20, "endpoint {i}: {from_b} {m:?} packets from B");
        }
    }
    // B hangs up: 200 to its BYE; the others stay.
    let (c, call_id, tag) = &mut clients[1];
    let bye = request("BYE", c, call_id, Some(tag), 2, "");
    c.send(&bye).await;
    let ok = c.final_response().await;
    assert!(
        ok.starts_with("SIP/2.0 200 OK") && ok.contains("CSeq: 2 BYE"),
        "{ok}"
    );

    // Shutdown: the remaining calls get BYE from the switch.
    stop.send(()).unwrap();
    running.await.unwrap();
    for i in [0, 2] {
        let (c, _, _) = &mut clients[i];
        let m = c.recv().await;
        assert!(m.starts_with("BYE "), "{m}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tip_endpoints_meet_over_sip_tls_with_early_offer() {
    meeting_over_sip(false, "31000-31499").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tip_endpoints_meet_over_sip_tls_with_delayed_offer() {
    meeting_over_sip(true, "31500-31999").await;
}

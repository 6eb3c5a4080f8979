//! The trunk over real loopback sockets: a call over UDP with retransmission and the
//! no-ACK timeout; strangers on UDP and TCP get nothing; framing on TCP; mutual TLS with
//! the peer's subject checked (a wrong subject allocates nothing); an outbound call over
//! TLS to a trunk peer that checks our certificate.
//!
//! The trunk peer is 127.0.0.1; the stranger sends from 127.0.0.2 (all of 127/8 is
//! loopback on Linux).

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::Ca;
use rustls::pki_types::ServerName;
use sip::driver::{Trunk, TrunkConfig};
use sip::tls::TlsPolicy;
use sip::transaction::Timers;
use sip::ua::{AgentConfig, AgentEvent, EndReason, Transport, TrunkPeer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::time::timeout;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 20000 UDP/TLS/RTP/SAVP 0\r\na=fingerprint:sha-256 AB:CD\r\na=setup:actpass\r\n";

fn fast_timers() -> Timers {
    Timers {
        t1: Duration::from_millis(50),
        t2: Duration::from_millis(400),
        t4: Duration::from_millis(500),
    }
}

fn invite(transport: &str, via: SocketAddr, branch: &str, body: &str) -> String {
    format!(
        "INVITE sip:4000@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {via};branch={branch}\r\n\
         From: <sip:1001@127.0.0.1>;tag=cm\r\nTo: <sip:4000@127.0.0.1>\r\n\
         Call-ID: {branch}@cm\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\
         Contact: <sip:1001@{via};transport={}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        transport.to_ascii_lowercase(),
        body.len()
    )
}

fn in_dialog(method: &str, via: SocketAddr, call_id: &str, tag: &str, cseq: u32) -> String {
    format!(
        "{method} sip:mswitch@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {via};branch=z9hG4bK{method}{cseq}\r\n\
         From: <sip:1001@127.0.0.1>;tag=cm\r\nTo: <sip:4000@127.0.0.1>;tag={tag}\r\n\
         Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn tag_of(response: &str) -> String {
    let to = response.lines().find(|l| l.starts_with("To:")).unwrap();
    to.split(";tag=").nth(1).unwrap().trim().to_owned()
}

async fn recv(s: &UdpSocket) -> String {
    let mut b = vec![0u8; 65536];
    let (n, _) = timeout(Duration::from_secs(2), s.recv_from(&mut b))
        .await
        .expect("a datagram")
        .unwrap();
    String::from_utf8_lossy(&b[..n]).into_owned()
}

async fn next(trunk: &mut Trunk) -> AgentEvent {
    timeout(Duration::from_secs(5), trunk.next_event())
        .await
        .expect("an event")
        .expect("the driver runs")
}

fn peer(addr: SocketAddr, transport: Transport, subject: Option<&str>) -> TrunkPeer {
    TrunkPeer {
        addr,
        transport,
        subject: subject.map(str::to_owned),
        also: Vec::new(),
    }
}

#[tokio::test]
async fn a_udp_call_retransmits_its_200_and_ends_with_bye_when_never_acked() {
    let cucm = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let cucm_addr = cucm.local_addr().unwrap();
    let mut trunk = Trunk::start(TrunkConfig {
        udp: Some("127.0.0.1:0".parse().unwrap()),
        tcp: None,
        tls_listen: None,
        tls: None,
        agent: AgentConfig {
            peers: vec![peer(cucm_addr, Transport::Udp, None)],
            timers: fast_timers(),
            options_interval: None,
            ..AgentConfig::default()
        },
    })
    .await
    .unwrap();
    let switch = trunk.local_addr(Transport::Udp).unwrap();

    // A stranger gets no answer at all.
    let stranger = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    stranger
        .send_to(
            invite("UDP", stranger.local_addr().unwrap(), "z9hG4bKs", SDP).as_bytes(),
            switch,
        )
        .await
        .unwrap();
    let mut b = [0u8; 100];
    assert!(
        timeout(Duration::from_millis(300), stranger.recv_from(&mut b))
            .await
            .is_err(),
        "no response to a non-trunk source"
    );

    // Call 1: answered, ACKed, ended by BYE.
    cucm.send_to(invite("UDP", cucm_addr, "z9hG4bK1", SDP).as_bytes(), switch)
        .await
        .unwrap();
    assert!(recv(&cucm).await.starts_with("SIP/2.0 100 Trying"));
    let AgentEvent::Incoming {
        call,
        offer,
        over_tls,
        ..
    } = next(&mut trunk).await
    else {
        panic!()
    };
    assert!(!over_tls);
    assert_eq!(offer.unwrap().media[0].port, 20000);
    trunk.accept(call, b"v=0\r\n".to_vec());
    let ok = recv(&cucm).await;
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    // Over UDP the 200 comes again until the ACK.
    assert_eq!(recv(&cucm).await, ok);
    let tag = tag_of(&ok);
    cucm.send_to(
        in_dialog("ACK", cucm_addr, "z9hG4bK1@cm", &tag, 1).as_bytes(),
        switch,
    )
    .await
    .unwrap();
    assert_eq!(next(&mut trunk).await, AgentEvent::Established { call });
    cucm.send_to(
        in_dialog("BYE", cucm_addr, "z9hG4bK1@cm", &tag, 2).as_bytes(),
        switch,
    )
    .await
    .unwrap();
    // (A last 200 retransmission may still be in flight.)
    let mut bye_ok = recv(&cucm).await;
    while !bye_ok.contains("CSeq: 2 BYE") {
        bye_ok = recv(&cucm).await;
    }
    assert!(bye_ok.starts_with("SIP/2.0 200 OK"));
    assert_eq!(
        next(&mut trunk).await,
        AgentEvent::Ended {
            call,
            reason: EndReason::Bye
        }
    );

    // Call 2: never ACKed: after 64*T1 the switch sends BYE and ends it.
    cucm.send_to(invite("UDP", cucm_addr, "z9hG4bK2", SDP).as_bytes(), switch)
        .await
        .unwrap();
    let AgentEvent::Incoming { call, .. } = next(&mut trunk).await else {
        panic!()
    };
    trunk.accept(call, b"v=0\r\n".to_vec());
    assert_eq!(
        next(&mut trunk).await,
        AgentEvent::Ended {
            call,
            reason: EndReason::NoAck
        }
    );
    let mut saw_bye = false;
    for _ in 0..40 {
        if recv(&cucm).await.starts_with("BYE ") {
            saw_bye = true;
            break;
        }
    }
    assert!(saw_bye);
}

#[tokio::test]
async fn tcp_frames_pipelined_and_split_messages_and_strangers_are_closed() {
    let mut trunk = Trunk::start(TrunkConfig {
        udp: None,
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        tls_listen: None,
        tls: None,
        agent: AgentConfig {
            peers: vec![peer(
                "127.0.0.1:5060".parse().unwrap(),
                Transport::Tcp,
                None,
            )],
            options_interval: None,
            ..AgentConfig::default()
        },
    })
    .await
    .unwrap();
    let switch = trunk.local_addr(Transport::Tcp).unwrap();

    // A stranger's connection is closed at once, unanswered.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut s = sock.connect(switch).await.unwrap();
    let _ = s.write_all(b"OPTIONS sip:x SIP/2.0\r\n\r\n").await;
    let mut b = [0u8; 100];
    let n = timeout(Duration::from_secs(2), s.read(&mut b))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "closed without a response");
    assert_eq!(trunk.stats().refused_not_peer.load(Ordering::Relaxed), 1);

    // A peer: two INVITEs in one write, the second split across two.
    let mut c = TcpStream::connect(switch).await.unwrap();
    let me = c.local_addr().unwrap();
    let one = invite("TCP", me, "z9hG4bKa", SDP);
    let two = invite("TCP", me, "z9hG4bKb", SDP);
    let (two_a, two_b) = two.split_at(100);
    c.write_all(format!("{one}{two_a}").as_bytes())
        .await
        .unwrap();
    c.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.write_all(two_b.as_bytes()).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let AgentEvent::Incoming { call_id, .. } = next(&mut trunk).await else {
            panic!()
        };
        ids.push(call_id);
    }
    assert_eq!(ids, vec!["z9hG4bKa@cm", "z9hG4bKb@cm"]);
    // Both 100s came back on the same connection.
    let mut got = String::new();
    while got.matches("SIP/2.0 100 Trying").count() < 2 {
        let mut b = [0u8; 4096];
        let n = timeout(Duration::from_secs(2), c.read(&mut b))
            .await
            .unwrap()
            .unwrap();
        got.push_str(&String::from_utf8_lossy(&b[..n]));
    }
    // A keep-alive ping is answered with a pong.
    c.write_all(b"\r\n\r\n").await.unwrap();
    let mut b = [0u8; 2];
    timeout(Duration::from_secs(2), c.read_exact(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&b, b"\r\n");
}

async fn tls_trunk(ca: &Ca, peer_subject: &str) -> Trunk {
    Trunk::start(TrunkConfig {
        udp: None,
        tcp: None,
        tls_listen: Some("127.0.0.1:0".parse().unwrap()),
        tls: Some(ca.policy("mswitch", &[], false)),
        agent: AgentConfig {
            peers: vec![peer(
                "127.0.0.1:5061".parse().unwrap(),
                Transport::Tls,
                Some(peer_subject),
            )],
            options_interval: None,
            ..AgentConfig::default()
        },
    })
    .await
    .unwrap()
}

async fn tls_connect(
    policy: &TlsPolicy,
    to: SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(to).await?;
    let c = tokio_rustls::TlsConnector::from(policy.client_config("mswitch").unwrap());
    c.connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
}

#[tokio::test]
async fn tls_calls_need_the_configured_subject_and_a_wrong_one_allocates_nothing() {
    let ca = Ca::new("Test CA");
    let mut trunk = tls_trunk(&ca, "cucm1").await;
    let switch = trunk.local_addr(Transport::Tls).unwrap();

    // The wrong subject: the handshake fails (TLS 1.3: at the first read), no call exists.
    let intruder = ca.policy("intruder", &[], false);
    if let Ok(mut s) = tls_connect(&intruder, switch).await {
        let me = s.get_ref().0.local_addr().unwrap();
        let _ = s
            .write_all(invite("TLS", me, "z9hG4bKx", SDP).as_bytes())
            .await;
        let mut b = [0u8; 100];
        let r = timeout(Duration::from_secs(2), s.read(&mut b))
            .await
            .unwrap();
        assert!(matches!(r, Ok(0) | Err(_)), "refused: {r:?}");
    }
    assert!(
        timeout(Duration::from_millis(300), trunk.next_event())
            .await
            .is_err(),
        "no call was offered"
    );
    assert_eq!(trunk.stats().tls_refused.load(Ordering::Relaxed), 1);

    // The right one.
    let cucm = ca.policy("cucm1", &[], false);
    let mut s = tls_connect(&cucm, switch).await.unwrap();
    let me = s.get_ref().0.local_addr().unwrap();
    s.write_all(invite("TLS", me, "z9hG4bKt", SDP).as_bytes())
        .await
        .unwrap();
    let AgentEvent::Incoming { over_tls, call, .. } = next(&mut trunk).await else {
        panic!()
    };
    assert!(over_tls);
    trunk.accept(call, b"v=0\r\n".to_vec());
    let mut got = String::new();
    while !got.contains("SIP/2.0 200 OK") {
        let mut b = [0u8; 4096];
        let n = timeout(Duration::from_secs(2), s.read(&mut b))
            .await
            .unwrap()
            .unwrap();
        got.push_str(&String::from_utf8_lossy(&b[..n]));
    }
    assert!(got.contains(";transport=tls>"), "{got}");
}

#[tokio::test]
async fn an_outbound_call_opens_tls_presenting_our_certificate() {
    let ca = Ca::new("Test CA");
    let cucm = ca.policy("cucm1", &[], false);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cucm_addr = listener.local_addr().unwrap();
    let mut trunk = Trunk::start(TrunkConfig {
        udp: None,
        tcp: None,
        tls_listen: Some("127.0.0.1:0".parse().unwrap()),
        tls: Some(ca.policy("mswitch", &[], false)),
        agent: AgentConfig {
            peers: vec![peer(cucm_addr, Transport::Tls, Some("cucm1"))],
            options_interval: None,
            ..AgentConfig::default()
        },
    })
    .await
    .unwrap();
    // The "Unified CM": requires our certificate with subject mswitch.
    let acceptor = tokio_rustls::TlsAcceptor::from(cucm.server_config("mswitch").unwrap());
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut s = acceptor
            .accept(tcp)
            .await
            .expect("the switch presented its certificate");
        let mut got = String::new();
        while !got.contains("\r\n\r\n") || !got.contains("m=audio") {
            let mut b = [0u8; 4096];
            let n = s.read(&mut b).await.unwrap();
            got.push_str(&String::from_utf8_lossy(&b[..n]));
        }
        let mut ok = String::from("SIP/2.0 200 OK\r\n");
        for l in got.split("\r\n").skip(1).take_while(|l| !l.is_empty()) {
            if l.starts_with("Via:")
                || l.starts_with("From:")
                || l.starts_with("Call-ID:")
                || l.starts_with("CSeq:")
            {
                ok.push_str(&format!("{l}\r\n"));
            } else if l.starts_with("To:") {
                ok.push_str(&format!("{l};tag=cm\r\n"));
            }
        }
        ok.push_str(&format!(
            "Contact: <sip:5000@127.0.0.1;transport=tls>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        ));
        s.write_all(ok.as_bytes()).await.unwrap();
        let mut ack = String::new();
        while !ack.contains("ACK ") {
            let mut b = [0u8; 4096];
            let n = s.read(&mut b).await.unwrap();
            ack.push_str(&String::from_utf8_lossy(&b[..n]));
        }
        got
    });
    let call = trunk
        .call_out("5000", SDP.as_bytes().to_vec())
        .await
        .unwrap();
    let AgentEvent::Answer { call: c, answer } = next(&mut trunk).await else {
        panic!()
    };
    assert_eq!((c, answer.media[0].port), (call, 20000));
    assert_eq!(next(&mut trunk).await, AgentEvent::Established { call });
    let invite = timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
    assert!(invite.starts_with("INVITE sip:5000@"), "{invite}");
}

#[tokio::test]
async fn more_than_five_trunk_peers_or_tls_without_a_certificate_is_a_clear_error() {
    let six = (0..6)
        .map(|i| {
            peer(
                format!("10.0.0.{i}:5060").parse().unwrap(),
                Transport::Udp,
                None,
            )
        })
        .collect();
    let e = Trunk::start(TrunkConfig {
        udp: Some("127.0.0.1:0".parse().unwrap()),
        tcp: None,
        tls_listen: None,
        tls: None,
        agent: AgentConfig {
            peers: six,
            ..AgentConfig::default()
        },
    })
    .await
    .unwrap_err();
    assert!(e.to_string().contains("at most 5 trunk peers"), "{e}");
    let e = Trunk::start(TrunkConfig {
        udp: None,
        tcp: None,
        tls_listen: Some("127.0.0.1:0".parse().unwrap()),
        tls: None,
        agent: AgentConfig::default(),
    })
    .await
    .unwrap_err();
    assert!(e.to_string().contains("needs a certificate"), "{e}");
}

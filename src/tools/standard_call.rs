//! A simulated standard SIP endpoint over real sockets (issue 19): SIP over TLS, an offer
//! of PCMU audio and H.264 video keyed by DTLS-SRTP with rtcp-mux, and no TIP. It wraps the
//! socketless [`switch::testing::StandardEndpoint`], which decrypts and counts what it
//! receives. Used by the load generator (`mswitch load --standard`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use sip::tls::TlsPolicy;
use switch::dtls::{DtlsIdentity, parse_sdp_fingerprint};
use switch::meeting::LegId;
use switch::testing::StandardEndpoint;
use tokio::net::UdpSocket;

use super::endpoint::{EndpointError, SipClient, invite};

/// The SDP of a standard endpoint: audio PCMU and video H.264 on `ports`, DTLS-SRTP
/// (`setup:active`), rtcp-mux; no a=ssrc, nothing of TIP.
pub fn standard_sdp(id: u32, ports: [u16; 2], fingerprint: &str) -> String {
    let mut s =
        format!("v=0\r\no=- {id} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n");
    for (m, port, pt, map) in [
        ("audio", ports[0], 0, "PCMU/8000"),
        ("video", ports[1], 96, "H264/90000"),
    ] {
        s.push_str(&format!(
            "m={m} {port} UDP/TLS/RTP/SAVP {pt}\r\na=rtpmap:{pt} {map}\r\na=rtcp-mux\r\n\
             a=setup:active\r\na=fingerprint:{fingerprint}\r\n"
        ));
    }
    s
}

/// A standard endpoint in a call with the switch.
pub struct StandardCall {
    /// The endpoint.
    pub endpoint: StandardEndpoint,
    /// Its SIP connection (kept open for the call's life).
    pub sip: SipClient,
    /// Per leg: our socket and the switch's address.
    sockets: HashMap<LegId, (UdpSocket, SocketAddr)>,
}

impl StandardCall {
    /// Dials `number`: INVITE with our offer, 200, ACK, then DTLS on both lines.
    pub async fn dial(
        id: u32,
        tone: f64,
        policy: &TlsPolicy,
        sip_addr: SocketAddr,
        number: &str,
        dtls_id: &Arc<DtlsIdentity>,
    ) -> Result<Self, EndpointError> {
        let mut endpoint = StandardEndpoint::new(id, tone);
        endpoint.record = false;
        let legs = endpoint.legs();
        let mut local = Vec::new();
        for _ in &legs {
            local.push(UdpSocket::bind("127.0.0.1:0").await?);
        }
        let ports = [local[0].local_addr()?.port(), local[1].local_addr()?.port()];
        let offer = standard_sdp(id, ports, &dtls_id.sdp_fingerprint());
        let mut sip = SipClient::connect(policy, sip_addr, "mswitch").await?;
        let call_id = format!("std{id}-{}", u32::from_be_bytes(crate::join::random()));
        let (_tag, answer) = invite(&mut sip, number, &call_id, &offer, "").await?;
        let fp = answer
            .media
            .first()
            .and_then(|m| m.fingerprint.as_deref())
            .and_then(parse_sdp_fingerprint)
            .ok_or_else(|| EndpointError::Protocol("no fingerprint from the switch".into()))?;
        if answer.media.len() < 2 || answer.media.iter().any(|m| m.port == 0) {
            return Err(EndpointError::Protocol("a line was refused".into()));
        }
        let sockets = legs
            .into_iter()
            .zip(local)
            .zip(&answer.media)
            .map(|((leg, s), m)| (leg, (s, SocketAddr::new(m.address, m.port))))
            .collect();
        endpoint.start_dtls_toward(Instant::now(), fp, dtls_id);
        Ok(Self {
            endpoint,
            sip,
            sockets,
        })
    }

    /// Sends datagrams to the switch, each on its leg's socket.
    pub async fn send_all(&self, datagrams: Vec<(LegId, Vec<u8>)>) {
        for (leg, d) in datagrams {
            if let Some((s, to)) = self.sockets.get(&leg) {
                let _ = s.send_to(&d, to).await;
            }
        }
    }

    /// One pass: DTLS timers and flights, everything received taken.
    pub async fn pump(&mut self, now: Instant) {
        self.endpoint.handle_timeout(now);
        let d = self.endpoint.dtls_pump();
        self.send_all(d).await;
        let mut buf = [0u8; 2048];
        let mut replies = Vec::new();
        for (leg, (s, _)) in &self.sockets {
            while let Ok((n, _)) = s.try_recv_from(&mut buf) {
                replies.extend(self.endpoint.handle_datagram(now, *leg, &buf[..n]));
            }
        }
        self.send_all(replies).await;
    }

    /// Waits until a datagram arrives on any leg (or `until`).
    pub async fn readable_until(&self, until: tokio::time::Instant) {
        let mut socks = self.sockets.values().map(|(s, _)| s);
        let (Some(a), Some(b)) = (socks.next(), socks.next()) else {
            return tokio::time::sleep_until(until).await;
        };
        tokio::select! {
            _ = a.readable() => {}
            _ = b.readable() => {}
            () = tokio::time::sleep_until(until) => {}
        }
    }
}

//! Entry points for the fuzz targets (`fuzz/`): each takes arbitrary bytes and must not
//! panic; where a property can be checked, it is asserted.
// Test code: it plays the driver.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use crate::framing::{Frame, StreamFramer};
use crate::message::{self, SipMessage};
use crate::ua::{Agent, AgentConfig, Remote, Transport, TrunkPeer};

/// The parser, the §8.1.1 checks and the raw 400 builder; a built 400 must parse.
pub fn sip_message(data: &[u8]) {
    if let Ok(SipMessage::Request(r)) = message::parse(data, 65536) {
        let _ = message::request_keys(&r);
        let _ = message::response_to(&r, 200, Some("t")).to_string();
    }
    if let Some(resp) = message::bad_request_for(data, "Bad Request") {
        assert!(
            message::parse(&resp, 1 << 20).is_ok(),
            "a 400 we build must parse"
        );
    }
}

/// The stream framer, fed in pieces cut where the first byte says: every byte pushed is
/// accounted for as a message, a keep-alive or still buffered, unless the stream failed.
pub fn sip_stream(data: &[u8]) {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let mut f = StreamFramer::new(4096);
    let mut accounted = 0usize;
    let mut failed = false;
    let step = usize::from(cut).max(1);
    for chunk in rest.chunks(step) {
        f.push(chunk);
        loop {
            match f.next_frame() {
                Ok(Some(Frame::Message(m))) => accounted += m.len(),
                Ok(Some(Frame::Ping)) => accounted += 4,
                Ok(Some(Frame::Pong)) => accounted += 2,
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            break;
        }
    }
    if !failed {
        assert_eq!(accounted + f.buffered(), rest.len());
    }
}

/// SDP offers and a=crypto lines.
pub fn sdp(data: &[u8]) {
    if let Ok(d) = crate::sdp::parse(data) {
        for m in &d.media {
            for c in &m.crypto {
                let again = crate::sdp::CryptoLine::parse(&c.to_value());
                assert_eq!(again.as_ref(), Ok(c), "a=crypto round trip");
            }
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = crate::sdp::CryptoLine::parse(s);
    }
}

/// The whole user agent: a message from a trunk peer, then time passing.
pub fn agent(data: &[u8]) {
    let now = Instant::now();
    let peer = "10.0.0.2:5060".parse().expect("address");
    let mut a = Agent::new(
        now,
        AgentConfig {
            peers: vec![TrunkPeer {
                addr: peer,
                transport: Transport::Udp,
                subject: None,
                also: Vec::new(),
            }],
            options_interval: None,
            ..AgentConfig::default()
        },
    );
    let from = Remote {
        transport: Transport::Udp,
        addr: peer,
    };
    for part in data.split(|b| *b == 0xff) {
        a.handle_message(now, from, part);
    }
    while a.poll_transmit(now).is_some() {}
    let mut handles = Vec::new();
    while let Some(e) = a.poll_event(now) {
        if let crate::ua::AgentEvent::Incoming { call, .. } = e {
            handles.push(call);
        }
    }
    for h in handles {
        a.accept(now, h, b"v=0\r\n".to_vec());
    }
    a.handle_timeout(now + Duration::from_secs(40));
    while a.poll_transmit(now).is_some() {}
}

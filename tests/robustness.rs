//! Faults an unlucky operator or an attacker meets (issue 14), against `mswitch run`'s
//! application over SIP/TLS on loopback: media ports are never lost.

mod common;

use common::switch;
use mswitch::endpoint::{self, SipClient};

/// A plain audio+video offer; `mux` puts RTCP on the RTP port (one port a line, else two).
fn offer(mux: bool) -> String {
    let mux = if mux { "a=rtcp-mux\r\n" } else { "" };
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio 40000 RTP/AVP 0\r\n{mux}m=video 40002 RTP/AVP 112\r\n{mux}"
    )
}

async fn invite(c: &mut SipClient, call_id: &str, mux: bool) -> String {
    let req = endpoint::request("INVITE", c.local, "4000", call_id, None, 1, &offer(mux));
    c.send(&req).await.unwrap();
    c.final_response().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_runs_out_of_ports_gives_back_the_ones_it_took() {
    // Two ports: a call without rtcp-mux needs four. Its audio line takes two, its video
    // line finds none: 503, and the audio line's ports must come back.
    let sw = switch("ports-out", "41500-41501", "", 15.0).await;
    let mut c = SipClient::connect(&sw.policy, sw.sip, "mswitch")
        .await
        .unwrap();
    let r = invite(&mut c, "big-1", false).await;
    assert!(r.starts_with("SIP/2.0 503"), "{r}");
    let r = invite(&mut c, "fits-1", true).await;
    assert!(r.starts_with("SIP/2.0 200"), "the ports came back: {r}");
    sw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_that_failed_to_bind_is_tried_again_later() {
    // Another program holds one of the two ports: the call fails, and once that program
    // lets it go, the next call gets both.
    let squatter = std::net::UdpSocket::bind("127.0.0.1:41510").unwrap();
    let sw = switch("ports-bind", "41510-41511", "", 15.0).await;
    let mut c = SipClient::connect(&sw.policy, sw.sip, "mswitch")
        .await
        .unwrap();
    let r = invite(&mut c, "held-1", true).await;
    assert!(r.starts_with("SIP/2.0 503"), "{r}");
    drop(squatter);
    let r = invite(&mut c, "free-1", true).await;
    assert!(r.starts_with("SIP/2.0 200"), "the port was not lost: {r}");
    sw.stop().await;
}

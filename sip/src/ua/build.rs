//! Requests and response headers the agent writes itself (RFC 3261 §8.1.1, §12.2.1.1).

use std::net::SocketAddr;

use ring::rand::SecureRandom;

use super::Transport;

/// Methods we accept (the Allow header).
pub(crate) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, PRACK";
/// Extensions we support (RFC 3262 100rel, RFC 4028 timer).
pub(crate) const SUPPORTED: &str = "100rel, timer";

/// A random token of `n` bytes, hex: tags, branches, Call-IDs.
pub(crate) fn token(n: usize) -> String {
    let mut b = [0u8; 16];
    let n = n.min(16);
    // The system RNG does not fail on Linux; a zero token would still be unique enough
    // for one process lifetime only with the counter below.
    let _ = ring::rand::SystemRandom::new().fill(&mut b[..n]);
    b[..n].iter().map(|x| format!("{x:02x}")).collect()
}

/// A new Via branch (RFC 3261 §8.1.1.7: the magic cookie first).
pub(crate) fn branch() -> String {
    format!("z9hG4bK{}", token(10))
}

/// Where we are, as a Via sent-by and a Contact.
#[derive(Debug, Clone)]
pub(crate) struct Local {
    pub(crate) addr: SocketAddr,
    pub(crate) transport: Transport,
}

impl Local {
    pub(crate) fn via(&self, branch: &str) -> String {
        format!(
            "Via: SIP/2.0/{} {};branch={branch};rport\r\n",
            self.transport.via_name(),
            host_port(self.addr)
        )
    }

    pub(crate) fn contact(&self) -> String {
        format!(
            "Contact: <sip:mswitch@{};transport={}>\r\n",
            host_port(self.addr),
            self.transport.uri_param()
        )
    }
}

/// `host:port`, IPv6 in brackets.
pub(crate) fn host_port(a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(v) => v.to_string(),
        SocketAddr::V6(v) => format!("[{}]:{}", v.ip(), v.port()),
    }
}

/// One in-dialog or out-of-dialog request.
pub(crate) struct RequestSpec<'a> {
    pub(crate) method: &'a str,
    pub(crate) uri: &'a str,
    pub(crate) branch: &'a str,
    pub(crate) from: &'a str,
    pub(crate) to: &'a str,
    pub(crate) call_id: &'a str,
    pub(crate) cseq: u32,
    /// Extra header lines, each CRLF-ended.
    pub(crate) extra: &'a str,
    pub(crate) body: Option<(&'a str, &'a [u8])>,
}

pub(crate) fn request(local: &Local, r: &RequestSpec<'_>) -> Vec<u8> {
    let mut s = format!(
        "{} {} SIP/2.0\r\n{}Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {}\r\n",
        r.method,
        r.uri,
        local.via(r.branch),
        r.from,
        r.to,
        r.call_id,
        r.cseq,
        if r.method == "ACK" { "ACK" } else { r.method },
    );
    if r.method != "ACK" && r.method != "CANCEL" {
        s.push_str(&local.contact());
        s.push_str(&format!("Allow: {ALLOW}\r\nSupported: {SUPPORTED}\r\n"));
    }
    s.push_str("User-Agent: mswitch\r\n");
    s.push_str(r.extra);
    let mut out = s.into_bytes();
    match r.body {
        Some((ct, body)) => {
            out.extend_from_slice(
                format!(
                    "Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            out.extend_from_slice(body);
        }
        None => out.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_back_with_every_mandatory_header() {
        let local = Local {
            addr: "10.0.0.1:5061".parse().unwrap(),
            transport: Transport::Tls,
        };
        let b = request(
            &local,
            &RequestSpec {
                method: "BYE",
                uri: "sip:1001@10.0.0.2:5061;transport=tls",
                branch: &branch(),
                from: "<sip:4000@10.0.0.1>;tag=a",
                to: "<sip:1001@10.0.0.2>;tag=b",
                call_id: "c1",
                cseq: 2,
                extra: "",
                body: Some(("application/sdp", b"v=0\r\n")),
            },
        );
        let crate::message::SipMessage::Request(r) = crate::message::parse(&b, 65536).unwrap()
        else {
            panic!()
        };
        let k = crate::message::request_keys(&r).unwrap();
        assert!(k.branch.starts_with("z9hG4bK"));
        assert_eq!(k.sent_by, "10.0.0.1:5061");
        assert_eq!((k.cseq, k.to_tag.as_deref()), (2, Some("b")));
        assert_eq!(r.body, b"v=0\r\n");
        assert_ne!(token(8), token(8));
        assert_eq!(
            host_port("[::1]:5060".parse().unwrap()),
            "[::1]:5060".to_owned()
        );
    }
}

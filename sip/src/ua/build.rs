//! Requests and response headers the agent writes itself (RFC 3261 §8.1.1, §12.2.1.1).

use std::net::SocketAddr;

use super::Transport;

/// Methods we accept (the Allow header).
pub(crate) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, PRACK";
/// Extensions we support (RFC 3262 100rel, RFC 4028 timer).
pub(crate) const SUPPORTED: &str = "100rel, timer";

/// The agent's source of unguessable tokens: HMAC-SHA-256 over a counter, keyed by the
/// seed its caller drew (a PRF in counter mode, NIST SP 800-108 §4.1), so the sans-IO core
/// draws no randomness of its own and a fixed seed replays a run.
pub(crate) struct Tokens {
    key: ring::hmac::Key,
    counter: u64,
}

impl Tokens {
    pub(crate) fn new(seed: &[u8; 32]) -> Self {
        Self {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, seed),
            counter: 0,
        }
    }

    /// The next `out.len()` bytes (at most 32).
    pub(crate) fn fill(&mut self, out: &mut [u8]) {
        self.counter += 1;
        let block = ring::hmac::sign(&self.key, &self.counter.to_be_bytes());
        let n = out.len().min(block.as_ref().len());
        out[..n].copy_from_slice(&block.as_ref()[..n]);
    }

    /// A token of `n` bytes (at most 16), hex: tags, Call-IDs.
    pub(crate) fn token(&mut self, n: usize) -> String {
        let mut b = [0u8; 16];
        let n = n.min(16);
        self.fill(&mut b[..n]);
        b[..n].iter().map(|x| format!("{x:02x}")).collect()
    }

    /// A new Via branch (RFC 3261 §8.1.1.7: the magic cookie first).
    pub(crate) fn branch(&mut self) -> String {
        format!("z9hG4bK{}", self.token(10))
    }
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens")
    }
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
                branch: &Tokens::new(&[1; 32]).branch(),
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
        let mut t = Tokens::new(&[7; 32]);
        assert_ne!(t.token(8), t.token(8));
        assert_eq!(
            Tokens::new(&[7; 32]).token(8),
            Tokens::new(&[7; 32]).token(8),
            "a seed replays"
        );
        assert_ne!(
            Tokens::new(&[7; 32]).token(8),
            Tokens::new(&[8; 32]).token(8)
        );
        assert_eq!(
            host_port("[::1]:5060".parse().unwrap()),
            "[::1]:5060".to_owned()
        );
    }
}

//! SIP messages on the wire by method and status code, in and out (issue 17's
//! `mswitch_sip_requests_total` and `mswitch_sip_responses_total`): counted from each
//! message's first line (RFC 3261 §7.1 Request-Line, §7.2 Status-Line) as it crosses the
//! driver, with a fixed set of labels so a peer cannot grow the metric's cardinality.

use std::sync::atomic::{AtomicU64, Ordering};

/// The methods counted by name (RFC 3261 §27.4 and the extensions a trunk sees); any
/// other is counted as [`OTHER`].
pub const METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "UPDATE",
    "PRACK",
    "INFO",
    "REFER",
    "NOTIFY",
    "SUBSCRIBE",
    "MESSAGE",
    "REGISTER",
    "PUBLISH",
];
/// The label of a method not in [`METHODS`].
pub const OTHER: &str = "other";

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received from a peer.
    In,
    /// Sent by the switch.
    Out,
}

/// What a first line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstLine {
    /// A request: its index in [`METHODS`], or `METHODS.len()` for another method.
    Request(usize),
    /// A response: its status code (100..=699).
    Response(u16),
}

/// Classifies a message by its first line; `None` for what is neither (the parser
/// counts and drops those).
pub fn classify(bytes: &[u8]) -> Option<FirstLine> {
    let end = bytes
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(bytes.len());
    let line = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut parts = line.splitn(3, ' ');
    let (first, second, third) = (parts.next()?, parts.next()?, parts.next()?);
    if first == "SIP/2.0" {
        let code: u16 = second.parse().ok()?;
        return (second.len() == 3 && (100..=699).contains(&code))
            .then_some(FirstLine::Response(code));
    }
    if third != "SIP/2.0" || first.is_empty() || !first.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    Some(FirstLine::Request(
        METHODS
            .iter()
            .position(|m| *m == first)
            .unwrap_or(METHODS.len()),
    ))
}

const CODES: usize = 600;

/// The counters: requests by method, responses by code, each way.
#[derive(Debug)]
pub struct MessageCounts {
    requests: [[AtomicU64; METHODS.len() + 1]; 2],
    responses: [[AtomicU64; CODES]; 2],
}

impl Default for MessageCounts {
    fn default() -> Self {
        Self {
            requests: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            responses: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }
}

fn way(d: Direction) -> usize {
    match d {
        Direction::In => 0,
        Direction::Out => 1,
    }
}

impl MessageCounts {
    /// Counts one message (nothing when its first line is neither a request nor a
    /// response).
    pub fn count(&self, direction: Direction, bytes: &[u8]) {
        let counter = match classify(bytes) {
            Some(FirstLine::Request(i)) => &self.requests[way(direction)][i],
            Some(FirstLine::Response(code)) => {
                &self.responses[way(direction)][usize::from(code - 100)]
            }
            None => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests by method (every label, zeros included: a scrape shows them all).
    pub fn requests(&self, direction: Direction) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.requests[way(direction)]
            .iter()
            .enumerate()
            .map(|(i, c)| {
                (
                    METHODS.get(i).copied().unwrap_or(OTHER),
                    c.load(Ordering::Relaxed),
                )
            })
    }

    /// Responses by status code, only the codes seen.
    pub fn responses(&self, direction: Direction) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.responses[way(direction)]
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let n = c.load(Ordering::Relaxed);
                (n > 0).then(|| (100 + i as u16, n))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_lines_are_told_apart() {
        assert_eq!(
            classify(b"INVITE sip:4000@10.0.0.1 SIP/2.0\r\nVia: x\r\n\r\n"),
            Some(FirstLine::Request(0))
        );
        assert_eq!(
            classify(b"SIP/2.0 486 Busy Here\r\n"),
            Some(FirstLine::Response(486))
        );
        assert_eq!(classify(b"SIP/2.0 200 OK"), Some(FirstLine::Response(200)));
        assert_eq!(
            classify(b"FOO sip:x SIP/2.0\r\n"),
            Some(FirstLine::Request(METHODS.len()))
        );
        for junk in [
            &b""[..],
            b"\r\n",
            b"SIP/2.0 99 Low\r\n",
            b"SIP/2.0 700 High\r\n",
            b"SIP/2.0 2000 Long\r\n",
            b"invite sip:x SIP/2.0\r\n",
            b"INVITE sip:x HTTP/1.1\r\n",
            b"GET / HTTP/1.1\r\n",
            b"\xff\xfe INVITE\r\n",
        ] {
            assert_eq!(classify(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn each_way_is_counted_apart() {
        let c = MessageCounts::default();
        c.count(Direction::In, b"INVITE sip:4000@h SIP/2.0\r\n");
        c.count(Direction::In, b"INVITE sip:4000@h SIP/2.0\r\n");
        c.count(Direction::In, b"garbage");
        c.count(Direction::Out, b"SIP/2.0 100 Trying\r\n");
        c.count(Direction::Out, b"SIP/2.0 699 Last\r\n");
        c.count(Direction::Out, b"BYE sip:a@h SIP/2.0\r\n");
        let requests_in: Vec<_> = c.requests(Direction::In).filter(|r| r.1 > 0).collect();
        assert_eq!(requests_in, [("INVITE", 2)]);
        assert_eq!(c.requests(Direction::In).count(), METHODS.len() + 1);
        let out: Vec<_> = c.responses(Direction::Out).collect();
        assert_eq!(out, [(100, 1), (699, 1)]);
        assert_eq!(c.responses(Direction::In).count(), 0);
        assert!(c.requests(Direction::Out).any(|r| r == ("BYE", 1)));
    }
}

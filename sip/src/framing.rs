//! Message framing on stream transports (TCP, TLS), sans-IO.
//!
//! RFC 3261 §18.3: on a stream the Content-Length header is what ends a message; §7.5:
//! CRLFs before a start line are ignored; RFC 5626 §3.5.1: a double CRLF is a keep-alive
//! ping, answered with a single CRLF (the pong).
//!
//! rsipstack's `SipCodec` frames the same way but parses inside its decoder, so a malformed
//! message cannot be told from a broken stream, and its size limit is fixed. Here framing
//! only cuts the stream: the caller parses each frame and can still answer 400 to a frame
//! that does not parse, and the stream survives it.

use bytes::{Buf, BytesMut};

/// The default largest message accepted (RFC 3261 §18.1.1 allows any size on streams;
/// a trunk's INVITE with SDP is a few kilobytes).
pub const DEFAULT_MAX_MESSAGE: usize = 64 * 1024;

/// What a stream yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One whole message: start line, headers and exactly Content-Length body bytes.
    Message(Vec<u8>),
    /// A keep-alive ping (double CRLF): answer with [`PONG`].
    Ping,
    /// A keep-alive pong (single CRLF).
    Pong,
}

/// The keep-alive answer (RFC 5626 §3.5.1).
pub const PONG: &[u8] = b"\r\n";

/// The stream cannot be framed any further: the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// A message is larger than the limit.
    #[error("SIP message larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Content-Length is not a number, or appears twice with different values.
    #[error("invalid Content-Length")]
    BadContentLength,
}

/// Cuts a byte stream into SIP messages.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    max: usize,
    failed: Option<FramingError>,
    /// How far the search for the end of the head got: a head arriving a byte at a time
    /// is scanned once, not once per byte.
    scanned: usize,
}

impl StreamFramer {
    /// A framer that refuses messages over `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            max,
            failed: None,
            scanned: 0,
        }
    }

    /// Bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// The next frame, if a whole one has arrived. After an error every call returns it.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramingError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.cut();
        if let Err(e) = &r {
            self.failed = Some(e.clone());
            self.buf = BytesMut::new();
        }
        r
    }

    /// Bytes held waiting for the rest of a message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn cut(&mut self) -> Result<Option<Frame>, FramingError> {
        if self.buf.starts_with(b"\r\n\r\n") {
            self.buf.advance(4);
            self.scanned = 0;
            return Ok(Some(Frame::Ping));
        }
        if self.buf.starts_with(b"\r\n") && self.buf.get(2) != Some(&b'\r') {
            self.buf.advance(2);
            self.scanned = 0;
            return Ok(Some(Frame::Pong));
        }
        let from = self.scanned.saturating_sub(3);
        let Some(head_end) = find(&self.buf[from..], b"\r\n\r\n").map(|i| i + from) else {
            self.scanned = self.buf.len();
            return if self.buf.len() > self.max {
                Err(FramingError::TooLarge { limit: self.max })
            } else {
                Ok(None)
            };
        };
        let head = &self.buf[..head_end + 2];
        let body_len = content_length(head)?.unwrap_or(0);
        let total = (head_end + 4)
            .checked_add(body_len)
            .filter(|t| *t <= self.max)
            .ok_or(FramingError::TooLarge { limit: self.max })?;
        if self.buf.len() < total {
            return Ok(None);
        }
        self.scanned = 0;
        Ok(Some(Frame::Message(self.buf.split_to(total).to_vec())))
    }
}

/// The Content-Length of a message head (start line and header lines, CRLF-ended): long
/// or compact name (`l`, RFC 3261 §7.3.3), any case, whitespace around the colon.
/// `None` when absent; a stream message without it has no body.
pub fn content_length(head: &[u8]) -> Result<Option<usize>, FramingError> {
    let mut found = None;
    for line in head.split(|b| *b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = std::str::from_utf8(line[colon + 1..].trim_ascii())
            .ok()
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<usize>().ok())
            .ok_or(FramingError::BadContentLength)?;
        if found.is_some_and(|f| f != value) {
            return Err(FramingError::BadContentLength);
        }
        found = Some(value);
    }
    Ok(found)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BYE: &[u8] =
        b"BYE sip:a@b SIP/2.0\r\nv: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 3\r\n\r\nabc";

    #[test]
    fn cuts_messages_split_and_pipelined_anywhere() {
        let two = [BYE, BYE].concat();
        for cut in 0..two.len() {
            let mut f = StreamFramer::new(DEFAULT_MAX_MESSAGE);
            let mut got = Vec::new();
            for part in [&two[..cut], &two[cut..]] {
                f.push(part);
                while let Some(fr) = f.next_frame().unwrap() {
                    got.push(fr);
                }
            }
            assert_eq!(
                got,
                vec![Frame::Message(BYE.to_vec()), Frame::Message(BYE.to_vec())],
                "cut at {cut}"
            );
            assert_eq!(f.buffered(), 0);
        }
    }

    #[test]
    fn keepalives_and_leading_crlf() {
        let mut f = StreamFramer::new(DEFAULT_MAX_MESSAGE);
        f.push(b"\r\n\r\n\r\n");
        f.push(BYE);
        assert_eq!(f.next_frame(), Ok(Some(Frame::Ping)));
        assert_eq!(f.next_frame(), Ok(Some(Frame::Pong)));
        assert_eq!(f.next_frame(), Ok(Some(Frame::Message(BYE.to_vec()))));
        assert_eq!(f.next_frame(), Ok(None));
    }

    #[test]
    fn content_length_forms() {
        let cl = |h: &str| content_length(h.as_bytes());
        assert_eq!(cl("X\r\nContent-Length: 12\r\n"), Ok(Some(12)));
        assert_eq!(cl("X\r\ncontent-length :7\r\n"), Ok(Some(7)));
        assert_eq!(cl("X\r\nL: 0\r\n"), Ok(Some(0)));
        assert_eq!(cl("X\r\nTo: <sip:l@x>\r\n"), Ok(None));
        assert_eq!(cl("X\r\nl: 3\r\nContent-Length: 3\r\n"), Ok(Some(3)));
        for bad in [
            "X\r\nl: 3\r\nContent-Length: 4\r\n",
            "X\r\nl: -1\r\n",
            "X\r\nl: \r\n",
            "X\r\nl: 99999999999999999999999\r\n",
            "X\r\nl: 1 2\r\n",
        ] {
            assert_eq!(cl(bad), Err(FramingError::BadContentLength), "{bad:?}");
        }
    }

    #[test]
    fn oversized_and_broken_streams_fail_for_good() {
        let mut f = StreamFramer::new(100);
        f.push(&[b'A'; 101]);
        assert_eq!(f.next_frame(), Err(FramingError::TooLarge { limit: 100 }));
        f.push(BYE);
        assert_eq!(f.next_frame(), Err(FramingError::TooLarge { limit: 100 }));
        assert_eq!(f.buffered(), 0, "nothing kept after the failure");

        // A body announced beyond the limit fails at once, before it is buffered.
        let mut f = StreamFramer::new(100);
        f.push(b"BYE sip:a@b SIP/2.0\r\nl: 1000\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FramingError::TooLarge { limit: 100 }));
        let mut f = StreamFramer::new(100);
        f.push(b"BYE sip:a@b SIP/2.0\r\nl: x\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FramingError::BadContentLength));
    }
}

//! SIP messages: the rsip model (as maintained in rsipstack: compact header forms), with the
//! checks RFC 3261 §8.2 asks of a request before it is acted on, the keys transactions
//! and dialogs are found by, and responses built from a request.

use rsipstack::sip::prelude::ToTypedHeader;
pub use rsipstack::sip::{self as rsip, Header, Method, Request, Response, SipMessage, StatusCode};

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Larger than the limit.
    #[error("SIP message larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The parser refused it.
    #[error("malformed SIP message: {0}")]
    Malformed(String),
    /// A header RFC 3261 §8.1.1 requires is missing or unreadable.
    #[error("missing or malformed {0} header")]
    Header(&'static str),
    /// CSeq's method is not the request's (RFC 3261 §8.1.1.5).
    #[error("CSeq method does not match the request method")]
    CseqMethod,
    /// The body is not Content-Length bytes long (RFC 3261 §18.3).
    #[error("body length does not match Content-Length")]
    BodyLength,
}

/// Parses one datagram or one stream frame.
pub fn parse(bytes: &[u8], max: usize) -> Result<SipMessage, MessageError> {
    if bytes.len() > max {
        return Err(MessageError::TooLarge { limit: max });
    }
    if let Some(head_end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let declared = crate::framing::content_length(&bytes[..head_end + 2])
            .map_err(|_| MessageError::Header("Content-Length"))?;
        // A datagram with more bytes than Content-Length: the rest is ignored (§18.3);
        // fewer: the message is refused.
        if let Some(n) = declared {
            let body = bytes.len() - head_end - 4;
            if body < n {
                return Err(MessageError::BodyLength);
            }
            return SipMessage::try_from(&bytes[..head_end + 4 + n])
                .map_err(|e| MessageError::Malformed(e.to_string()));
        }
    }
    SipMessage::try_from(bytes).map_err(|e| MessageError::Malformed(e.to_string()))
}

/// What identifies a message for transactions (RFC 3261 §17.2.3) and dialogs (§12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// The top Via's branch.
    pub branch: String,
    /// The top Via's sent-by (`host[:port]`).
    pub sent_by: String,
    /// Call-ID.
    pub call_id: String,
    /// From tag.
    pub from_tag: String,
    /// To tag, if any.
    pub to_tag: Option<String>,
    /// CSeq number.
    pub cseq: u32,
    /// CSeq method.
    pub cseq_method: Method,
}

/// The keys of a request after the checks of RFC 3261 §8.1.1: Via with a branch, From with
/// a tag, To, Call-ID, CSeq whose method is the request's, Max-Forwards.
pub fn request_keys(r: &Request) -> Result<Keys, MessageError> {
    let keys = keys_of(&r.headers)?;
    // ACK and CANCEL name the INVITE's CSeq number with their own method.
    if keys.cseq_method != r.method {
        return Err(MessageError::CseqMethod);
    }
    if !r
        .headers
        .iter()
        .any(|h| matches!(h, Header::MaxForwards(_)))
    {
        return Err(MessageError::Header("Max-Forwards"));
    }
    Ok(keys)
}

/// The keys of a response.
pub fn response_keys(r: &Response) -> Result<Keys, MessageError> {
    keys_of(&r.headers)
}

fn keys_of(h: &rsip::Headers) -> Result<Keys, MessageError> {
    let via = h
        .iter()
        .find_map(|x| match x {
            Header::Via(v) => Some(v),
            _ => None,
        })
        .and_then(|v| v.typed().ok())
        .ok_or(MessageError::Header("Via"))?;
    let branch = via
        .branch()
        .map(|b| b.to_string())
        .ok_or(MessageError::Header("Via"))?;
    let from = h
        .iter()
        .find_map(|x| match x {
            Header::From(v) => Some(v),
            _ => None,
        })
        .and_then(|v| v.typed().ok())
        .ok_or(MessageError::Header("From"))?;
    let from_tag = from
        .tag()
        .map(|t| t.to_string())
        .ok_or(MessageError::Header("From"))?;
    let to = h
        .iter()
        .find_map(|x| match x {
            Header::To(v) => Some(v),
            _ => None,
        })
        .and_then(|v| v.typed().ok())
        .ok_or(MessageError::Header("To"))?;
    let call_id = h
        .iter()
        .find_map(|x| match x {
            Header::CallId(v) => Some(v.value().trim().to_owned()),
            _ => None,
        })
        .filter(|c| !c.is_empty())
        .ok_or(MessageError::Header("Call-ID"))?;
    let cseq = h
        .iter()
        .find_map(|x| match x {
            Header::CSeq(v) => Some(v),
            _ => None,
        })
        .and_then(|v| v.typed().ok())
        .ok_or(MessageError::Header("CSeq"))?;
    Ok(Keys {
        branch,
        sent_by: via.sent_by().to_string(),
        call_id,
        from_tag,
        to_tag: to.tag().map(|t| t.to_string()),
        cseq: cseq.seq,
        cseq_method: cseq.method,
    })
}

/// A response to `req` (RFC 3261 §8.2.6.2): its Vias, From, To (with `to_tag` added when
/// the To has none and the status is above 100), Call-ID and CSeq; no body.
pub fn response_to(req: &Request, status: u16, to_tag: Option<&str>) -> Response {
    let mut headers = rsip::Headers::default();
    for h in req.headers.iter() {
        match h {
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
                headers.push(h.clone());
            }
            Header::To(to) => {
                let tagged = (status > 100)
                    .then_some(to_tag)
                    .flatten()
                    .filter(|_| !to.value().contains(";tag="))
                    .map(|t| Header::To(rsip::To::new(format!("{};tag={t}", to.value()))));
                headers.push(tagged.unwrap_or_else(|| h.clone()));
            }
            // RFC 3262 §3: a reliable provisional response echoes nothing else here.
            _ => {}
        }
    }
    headers.push(Header::ContentLength(rsip::ContentLength::new("0")));
    Response {
        status_code: StatusCode::from(status),
        wire_reason: None,
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// Replaces a message's body and its Content-Type and Content-Length.
pub fn set_body(headers: &mut rsip::Headers, body: &mut Vec<u8>, content_type: &str, new: Vec<u8>) {
    headers.retain(|h| !matches!(h, Header::ContentLength(_) | Header::ContentType(_)));
    if !new.is_empty() {
        headers.push(Header::ContentType(rsip::ContentType::new(content_type)));
    }
    headers.push(Header::ContentLength(rsip::ContentLength::new(
        new.len().to_string(),
    )));
    *body = new;
}

/// Methods the rsip model parses; a request with any other method is one we do not
/// implement (RFC 3261 §21.5.2: 501), not a malformed one.
const KNOWN_METHODS: &[&str] = &[
    "ACK",
    "BYE",
    "CANCEL",
    "INFO",
    "INVITE",
    "MESSAGE",
    "NOTIFY",
    "OPTIONS",
    "PRACK",
    "PUBLISH",
    "REFER",
    "REGISTER",
    "SUBSCRIBE",
    "UPDATE",
];

/// Whether `raw` is a request whose method is a well-formed token that is not one the
/// stack knows (RFC 3261 §25.1 token).
pub fn unknown_method(raw: &[u8]) -> bool {
    let Some(start) = std::str::from_utf8(raw)
        .ok()
        .and_then(|t| t.split("\r\n").next())
    else {
        return false;
    };
    let mut parts = start.split(' ');
    let (Some(method), Some(_uri), Some("SIP/2.0"), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let token = |c: char| c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c);
    !method.is_empty() && method.chars().all(token) && !KNOWN_METHODS.contains(&method)
}

/// A 400 Bad Request for bytes that did not parse as a request, built from their raw
/// Via, From, To, Call-ID and CSeq lines (long or compact names).
/// `None` when no response is possible: a response, or a request without a Via.
pub fn bad_request_for(raw: &[u8], reason: &str) -> Option<Vec<u8>> {
    error_response_for(raw, 400, reason)
}

/// A `status` response for bytes that did not parse as a request, built from their raw
/// Via, From, To, Call-ID and CSeq lines; those that are missing are left out (RFC 3261
/// §8.2.6.2 copies what is there; the Vias route it back). `None` for a response, or a
/// request without a Via.
pub fn error_response_for(raw: &[u8], status: u16, reason: &str) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(raw).ok()?;
    let head = text.split("\r\n\r\n").next()?;
    let mut lines = head.split("\r\n");
    let start = lines.next()?;
    if start.starts_with("SIP/") || !start.ends_with("SIP/2.0") {
        return None;
    }
    let mut vias = Vec::new();
    let mut copied: [(&str, Option<&str>); 4] = [
        ("From", None),
        ("To", None),
        ("Call-ID", None),
        ("CSeq", None),
    ];
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if value.chars().any(|c| c.is_control()) {
            return None;
        }
        let slot = match name.trim().to_ascii_lowercase().as_str() {
            "via" | "v" => {
                vias.push(value);
                continue;
            }
            "from" | "f" => 0,
            "to" | "t" => 1,
            "call-id" | "i" => 2,
            "cseq" => 3,
            _ => continue,
        };
        copied[slot].1.get_or_insert(value);
    }
    if vias.is_empty() {
        return None;
    }
    let reason: String = reason.chars().filter(|c| !c.is_control()).collect();
    let mut out = format!("SIP/2.0 {status} {reason}\r\n");
    for v in vias {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    for (name, value) in copied {
        if let Some(v) = value {
            out.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

/// The value of the first header named `name` (long or compact form), for headers rsip
/// keeps untyped (Session-Expires, Require, RSeq, ...).
pub fn header_value<'a>(headers: &'a rsip::Headers, name: &str) -> Option<&'a str> {
    headers.iter().find_map(|h| {
        let (n, v) = header_name_value(h)?;
        n.eq_ignore_ascii_case(name).then_some(v)
    })
}

fn header_name_value(h: &Header) -> Option<(&str, &str)> {
    Some(match h {
        Header::Other(n, v) => (n.as_str(), v.as_str()),
        Header::Require(v) => ("Require", v.value()),
        Header::Supported(v) => ("Supported", v.value()),
        Header::SessionExpires(v) => ("Session-Expires", v.value()),
        Header::MinSE(v) => ("Min-SE", v.value()),
        Header::RSeq(v) => ("RSeq", v.value()),
        Header::RAck(v) => ("RAck", v.value()),
        Header::ContentType(v) => ("Content-Type", v.value()),
        Header::Contact(v) => ("Contact", v.value()),
        Header::Allow(v) => ("Allow", v.value()),
        Header::UserAgent(v) => ("User-Agent", v.value()),
        Header::Server(v) => ("Server", v.value()),
        _ => return None,
    })
}

/// Whether a comma-separated option-tag header (Require, Supported) lists `tag`.
pub fn lists_option(headers: &rsip::Headers, name: &str, tag: &str) -> bool {
    headers.iter().any(|h| {
        header_name_value(h).is_some_and(|(n, v)| {
            n.eq_ignore_ascii_case(name) && v.split(',').any(|t| t.trim().eq_ignore_ascii_case(tag))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const INVITE: &str = "INVITE sip:4000@10.0.0.1:5061;transport=tls;transport=tls SIP/2.0\r\n\
        v: SIP/2.0/TLS 10.0.0.2:5071;branch=z9hG4bK-1;rport\r\n\
        f: \"CUCM\" <sip:1001@10.0.0.2>;tag=abc\r\n\
        t: <sip:4000@10.0.0.1>\r\n\
        i: 1@x\r\n\
        CSeq: 7 INVITE\r\n\
        m: <sip:1001@10.0.0.2:5071;transport=tls>\r\n\
        Max-Forwards: 70\r\n\
        c: application/sdp\r\n\
        l: 4\r\n\r\nv=0\n";

    fn request(s: &str) -> Request {
        match parse(s.as_bytes(), 65536).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => panic!("a request"),
        }
    }

    #[test]
    fn compact_forms_and_duplicate_uri_params_parse() {
        let r = request(INVITE);
        let k = request_keys(&r).unwrap();
        assert_eq!(
            k,
            Keys {
                branch: "z9hG4bK-1".into(),
                sent_by: "10.0.0.2:5071".into(),
                call_id: "1@x".into(),
                from_tag: "abc".into(),
                to_tag: None,
                cseq: 7,
                cseq_method: Method::Invite,
            }
        );
        assert_eq!(r.body, b"v=0\n");
        assert_eq!(r.uri.auth.as_ref().unwrap().user, "4000");
    }

    #[test]
    fn requests_missing_what_8_1_1_requires_are_refused() {
        for (drop, err) in [
            ("v: ", MessageError::Header("Via")),
            ("f: ", MessageError::Header("From")),
            ("t: ", MessageError::Header("To")),
            ("i: ", MessageError::Header("Call-ID")),
            ("CSeq: ", MessageError::Header("CSeq")),
            ("Max-Forwards: ", MessageError::Header("Max-Forwards")),
        ] {
            let text: String = INVITE
                .split_inclusive("\r\n")
                .filter(|l| !l.starts_with(drop))
                .collect();
            assert_eq!(request_keys(&request(&text)), Err(err), "without {drop}");
        }
        let wrong = INVITE.replace("CSeq: 7 INVITE", "CSeq: 7 BYE");
        assert_eq!(
            request_keys(&request(&wrong)),
            Err(MessageError::CseqMethod)
        );
        let no_tag = INVITE.replace(";tag=abc", "");
        assert_eq!(
            request_keys(&request(&no_tag)),
            Err(MessageError::Header("From"))
        );
    }

    #[test]
    fn body_shorter_than_content_length_is_refused_and_extra_bytes_ignored() {
        let short = INVITE.replace("l: 4", "l: 40");
        assert_eq!(
            parse(short.as_bytes(), 65536).unwrap_err(),
            MessageError::BodyLength
        );
        let long = format!("{INVITE}garbage");
        let SipMessage::Request(r) = parse(long.as_bytes(), 65536).unwrap() else {
            panic!()
        };
        assert_eq!(r.body, b"v=0\n");
        assert_eq!(
            parse(INVITE.as_bytes(), 100).unwrap_err(),
            MessageError::TooLarge { limit: 100 }
        );
    }

    #[test]
    fn responses_copy_the_dialog_headers_and_tag_the_to() {
        let r = request(INVITE);
        let ok = response_to(&r, 200, Some("sw1"));
        let text = ok.to_string();
        assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}");
        assert!(text.contains("Via: SIP/2.0/TLS 10.0.0.2:5071;branch=z9hG4bK-1;rport\r\n"));
        assert!(
            text.contains("To: <sip:4000@10.0.0.1>;tag=sw1\r\n"),
            "{text}"
        );
        assert!(
            text.contains("Call-ID: 1@x\r\nCSeq: 7 INVITE\r\n"),
            "{text}"
        );
        // 100 Trying carries no tag (RFC 3261 §8.2.6.2).
        assert!(
            response_to(&r, 100, Some("sw1"))
                .to_string()
                .contains("To: <sip:4000@10.0.0.1>\r\n")
        );
        let keys = response_keys(&ok).unwrap();
        assert_eq!(keys.to_tag.as_deref(), Some("sw1"));
    }

    #[test]
    fn a_400_is_built_from_raw_lines_when_possible() {
        let broken = INVITE.replace("SIP/2.0\r\nv:", "SIP/2.0\r\nContent-Type\r\nv:");
        let resp = bad_request_for(broken.as_bytes(), "Bad Request").unwrap();
        let resp = String::from_utf8(resp).unwrap();
        assert!(resp.starts_with("SIP/2.0 400 Bad Request\r\nVia: SIP/2.0/TLS"));
        assert!(resp.contains("Call-ID: 1@x\r\nCSeq: 7 INVITE\r\n"));
        let SipMessage::Response(p) = parse(resp.as_bytes(), 65536).unwrap() else {
            panic!()
        };
        assert_eq!(p.status_code.code(), 400);
        // A response, or a request without a Via, gets nothing.
        assert_eq!(bad_request_for(b"SIP/2.0 200 OK\r\n\r\n", "x"), None);
        let no_via: String = INVITE
            .split_inclusive("\r\n")
            .filter(|l| !l.starts_with("v: "))
            .collect();
        assert_eq!(bad_request_for(no_via.as_bytes(), "x"), None);
    }

    #[test]
    fn a_request_missing_from_to_call_id_or_cseq_still_gets_a_400() {
        // Issue 14: such an INVITE with a usable Via was dropped.
        for gone in ["f: ", "t: ", "i: ", "CSeq: "] {
            let broken: String = INVITE
                .split_inclusive("\r\n")
                .filter(|l| !l.starts_with(gone))
                .collect();
            let resp = bad_request_for(broken.as_bytes(), "Bad Request").expect(gone);
            let resp = String::from_utf8(resp).unwrap();
            assert!(
                resp.starts_with("SIP/2.0 400 Bad Request\r\nVia: "),
                "{resp}"
            );
        }
    }

    #[test]
    fn an_unknown_method_is_told_apart_from_a_malformed_request() {
        assert!(unknown_method(
            b"FROBNICATE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n"
        ));
        assert!(!unknown_method(b"INVITE sip:a@b SIP/2.0\r\n\r\n"));
        assert!(
            !unknown_method(b"FRO(B sip:a@b SIP/2.0\r\n\r\n"),
            "not a token"
        );
        assert!(!unknown_method(b"SIP/2.0 200 OK\r\n\r\n"));
        assert!(!unknown_method(b"FROB sip:a@b SIP/3.0\r\n\r\n"));
    }

    #[test]
    fn option_tags() {
        let r = request(&INVITE.replace(
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nRequire: 100rel, timer\r\nSession-Expires: 1800;refresher=uac\r\n",
        ));
        assert!(lists_option(&r.headers, "require", "100rel"));
        assert!(lists_option(&r.headers, "Require", "timer"));
        assert!(!lists_option(&r.headers, "Supported", "timer"));
        assert_eq!(
            header_value(&r.headers, "session-expires"),
            Some("1800;refresher=uac")
        );
    }
}

//! The user agent as server of a call: INVITE (early and delayed offer), provisional
//! and final responses, ACK, CANCEL and its race, BYE, PRACK (RFC 3261 §13-15, RFC 3262).

use super::*;

/// The Retry-After of our 503s, seconds.
pub(super) const RETRY_AFTER_503_S: u32 = 60;

impl Agent {
    pub(super) fn handle_invite(
        &mut self,
        now: Instant,
        from: Remote,
        peer: usize,
        r: Request,
        key: TransactionKey,
        k: Keys,
    ) {
        let local_tag = self.tokens.token(6);
        // RFC 3261 §8.2.2.3: option tags we do not know.
        let unsupported: Vec<String> = header_value(&r.headers, "Require")
            .map(|v| {
                v.split(',')
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty() && t != "100rel" && t != "timer")
                    .collect()
            })
            .unwrap_or_default();
        if !unsupported.is_empty() {
            let extra = format!("Unsupported: {}\r\n", unsupported.join(", "));
            let b = self.response_bytes(&r, 420, Some(&local_tag), &extra, None);
            return self.respond(now, &key, 420, b);
        }
        // RFC 4028 §8: too small a session interval gets 422 with our Min-SE.
        let session = call::SessionRequest::from_request(&r.headers);
        if session.is_some_and(|s| s.interval < self.config.min_se) {
            let extra = format!("Min-SE: {}\r\n", self.config.min_se);
            let b = self.response_bytes(&r, 422, Some(&local_tag), &extra, None);
            return self.respond(now, &key, 422, b);
        }
        let offer = match offer_in(&r) {
            Ok(o) => o,
            Err(e) => {
                let extra = format!("Warning: 399 mswitch \"{e}\"\r\n");
                let b = self.response_bytes(&r, 400, Some(&local_tag), &extra, None);
                return self.respond(now, &key, 400, b);
            }
        };
        let trying = self.response_bytes(&r, 100, None, "", None);
        self.respond(now, &key, 100, trying);
        let handle = self.next_call;
        self.next_call += 1;
        let user = r
            .uri
            .auth
            .as_ref()
            .map(|a| a.user.clone())
            .unwrap_or_default();
        let remote_target = r
            .headers
            .iter()
            .find_map(|h| match h {
                message::Header::Contact(c) => Some(c.value().to_owned()),
                _ => None,
            })
            .and_then(|c| call::uri_in_brackets(&c))
            .unwrap_or_else(|| r.uri.to_string());
        let from_value = header_of(&r, |h| match h {
            message::Header::From(v) => Some(v.value().to_owned()),
            _ => None,
        });
        let to_value = header_of(&r, |h| match h {
            message::Header::To(v) => Some(v.value().to_owned()),
            _ => None,
        });
        let reliable_provisional = lists_option(&r.headers, "Require", "100rel");
        let peer_supports_timer = lists_option(&r.headers, "Supported", "timer")
            || lists_option(&r.headers, "Require", "timer");
        let peer_allows_update = header_value(&r.headers, "Allow").is_some_and(|a| {
            a.split(',')
                .any(|m| m.trim().eq_ignore_ascii_case("UPDATE"))
        });
        let uris = (from_value.clone(), to_value.clone());
        let call = Call {
            role: Role::Uas,
            state: CallState::Early,
            call_id: k.call_id.clone(),
            local_tag,
            remote_tag: Some(k.from_tag.clone()),
            // From our side, the INVITE's To is our URI and its From the remote one.
            local_uri: to_value,
            remote_uri: from_value,
            remote_target,
            remote: from,
            peer,
            local_cseq: 1,
            remote_cseq: k.cseq,
            invite: Some((key, r.clone())),
            delayed_offer: offer.is_none(),
            reliable_provisional,
            rseq: 0,
            reliable_1xx: None,
            final_2xx: None,
            session_request: session,
            peer_supports_timer,
            peer_allows_update,
            session: None,
            local_sdp: Vec::new(),
            pending_reoffer: None,
            pending_invite_ack: None,
            outbound: None,
            answer_by: Some(now + self.config.answer_timeout),
            our_offer: None,
            reinvite_in_flight: false,
        };
        self.calls.insert(handle, call);
        let user_agent = header_value(&r.headers, "User-Agent").map(str::to_owned);
        self.events.push_back(AgentEvent::Incoming {
            call: handle,
            user,
            call_id: k.call_id,
            offer,
            over_tls: from.transport == Transport::Tls,
            peer,
            user_agent,
            from_uri: uris.0,
            to_uri: uris.1,
        });
    }

    /// The INVITE of an incoming call still waiting for its final response.
    pub(super) fn early_invite(&self, call: CallHandle) -> Option<(TransactionKey, Request)> {
        let c = self.calls.get(&call)?;
        (c.state == CallState::Early)
            .then(|| c.invite.clone())
            .flatten()
    }

    /// Sends 180 Ringing for an incoming call (reliably, RFC 3262, when the INVITE
    /// required 100rel).
    pub fn ring(&mut self, now: Instant, call: CallHandle) {
        let Some((key, req)) = self.early_invite(call) else {
            return;
        };
        let c = &self.calls[&call];
        let mut extra = local_for(&self.config, c.remote.transport).contact();
        let reliable = c.reliable_provisional;
        let rseq = c.rseq + 1;
        if reliable {
            extra.push_str(&format!("Require: 100rel\r\nRSeq: {rseq}\r\n"));
        }
        let tag = c.local_tag.clone();
        let b = self.response_bytes(&req, 180, Some(&tag), &extra, None);
        self.respond(now, &key, 180, b.clone());
        if reliable && let Some(c) = self.calls.get_mut(&call) {
            c.rseq = rseq;
            c.reliable_1xx = Some(call::Retransmit::new(now, b, self.config.timers));
        }
    }

    /// Answers an incoming call with 200 OK carrying `sdp`: our answer, or for a delayed
    /// offer our offer (its answer comes in the ACK).
    pub fn accept(&mut self, now: Instant, call: CallHandle, sdp: Vec<u8>) {
        let min_se = self.config.min_se;
        let wanted = self.config.session_expires;
        let timers = self.config.timers;
        let Some((key, req)) = self.early_invite(call) else {
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let mut extra = String::new();
        // RFC 4028 §9: the session interval and who refreshes.
        if let Some(s) = c.negotiate_session(wanted, min_se) {
            extra.push_str(&format!(
                "Session-Expires: {};refresher={}\r\n",
                s.interval.as_secs(),
                if s.we_refresh { "uas" } else { "uac" }
            ));
            if c.peer_supports_timer {
                extra.push_str("Require: timer\r\n");
            }
            c.session = Some(s.start(now));
        }
        extra.push_str(&format!(
            "Allow: {}\r\nSupported: {}\r\n",
            build::ALLOW,
            build::SUPPORTED
        ));
        c.local_sdp = sdp.clone();
        c.state = CallState::WaitingAck;
        let transport = c.remote.transport;
        let tag = c.local_tag.clone();
        let contact = local_for(&self.config, transport).contact();
        let b = self.response_bytes(
            &req,
            200,
            Some(&tag),
            &format!("{contact}{extra}"),
            Some(&sdp),
        );
        self.respond(now, &key, 200, b.clone());
        if let Some(c) = self.calls.get_mut(&call) {
            // RFC 3261 §13.3.1.4: the UAS core retransmits the 2xx until the ACK.
            c.final_2xx = Some(call::Retransmit::new(now, b, timers));
            c.reliable_1xx = None;
        }
    }

    /// Refuses an incoming call (a final status from 300 to 699), or ends an early one.
    pub fn reject(&mut self, now: Instant, call: CallHandle, status: u16, warning: Option<&str>) {
        let Some((key, req)) = self.early_invite(call) else {
            return;
        };
        let c = &self.calls[&call];
        let mut extra = warning.map_or_else(String::new, |w| {
            format!("Warning: 399 mswitch \"{}\"\r\n", w.replace('"', "'"))
        });
        // RFC 3261 §21.5.4: a 503 says when to try again; Unified CM meanwhile routes to
        // its next trunk destination.
        if status == 503 {
            extra.push_str(&format!("Retry-After: {RETRY_AFTER_503_S}\r\n"));
        }
        let tag = c.local_tag.clone();
        let b = self.response_bytes(&req, status.clamp(300, 699), Some(&tag), &extra, None);
        self.respond(now, &key, status.clamp(300, 699), b);
        self.end(call, EndReason::Local);
    }

    /// Answers an early INVITE with `302 Moved Temporarily` and `contact`, the SIP URI
    /// where the call belongs (RFC 3261 §8.3.3, §21.3.3): the cluster node that owns the
    /// meeting (issue 21). Unified CM reroutes a trunk call on a 3xx. A URI that could
    /// break the header (CR, LF, angle brackets) is refused with 500 instead.
    pub fn redirect(&mut self, now: Instant, call: CallHandle, contact: &str) {
        if contact.is_empty() || contact.contains(['\r', '\n', '<', '>']) {
            return self.reject(now, call, 500, Some("no usable redirect target"));
        }
        let Some((key, req)) = self.early_invite(call) else {
            return;
        };
        let tag = self.calls[&call].local_tag.clone();
        let extra = format!("Contact: <{contact}>\r\n");
        let b = self.response_bytes(&req, 302, Some(&tag), &extra, None);
        self.respond(now, &key, 302, b);
        self.end(call, EndReason::Local);
    }

    pub(super) fn end(&mut self, call: CallHandle, reason: EndReason) {
        if self.calls.remove(&call).is_some() {
            self.events.push_back(AgentEvent::Ended { call, reason });
        }
    }

    pub(super) fn handle_ack(&mut self, now: Instant, r: &Request, k: &Keys) {
        let Some(handle) = self.find_call(k) else {
            return;
        };
        let Some(c) = self.calls.get_mut(&handle) else {
            return;
        };
        if c.pending_invite_ack
            .as_ref()
            .is_some_and(|cseq| *cseq == k.cseq)
        {
            // The ACK of a 2xx to a re-INVITE.
            c.pending_invite_ack = None;
            c.final_2xx = None;
            return;
        }
        if c.state != CallState::WaitingAck || k.cseq != c.remote_cseq {
            return;
        }
        c.state = CallState::Confirmed;
        c.final_2xx = None;
        let delayed = c.delayed_offer;
        let _ = now;
        if delayed && !r.body.is_empty() {
            match sdp::parse(&r.body) {
                Ok(answer) => self.events.push_back(AgentEvent::Answer {
                    call: handle,
                    answer,
                }),
                Err(_) => {
                    // An unusable answer in an ACK: the only way out is BYE (RFC 3261 §13.3.1.4).
                    self.events
                        .push_back(AgentEvent::Established { call: handle });
                    return self.hangup(now, handle);
                }
            }
        }
        self.events
            .push_back(AgentEvent::Established { call: handle });
    }

    pub(super) fn handle_cancel(
        &mut self,
        now: Instant,
        r: &Request,
        key: &TransactionKey,
        k: &Keys,
    ) {
        let invite_key = TransactionKey::server(&k.branch, &k.sent_by, &Method::Invite);
        let call = self
            .calls
            .iter()
            .find(|(_, c)| c.invite.as_ref().is_some_and(|(ik, _)| *ik == invite_key))
            .map(|(h, c)| (*h, c.state));
        let tag = self.tokens.token(6);
        match call {
            Some((handle, CallState::Early)) => {
                let ok = self.response_bytes(r, 200, Some(&tag), "", None);
                self.respond(now, key, 200, ok);
                // RFC 3261 §9.2: the INVITE gets 487.
                let (ltag, req) = {
                    let c = &self.calls[&handle];
                    (
                        c.local_tag.clone(),
                        c.invite.as_ref().map(|(_, r)| r.clone()),
                    )
                };
                if let Some(req) = req {
                    let b = self.response_bytes(&req, 487, Some(&ltag), "", None);
                    self.respond(now, &invite_key, 487, b);
                }
                self.end(handle, EndReason::Cancelled);
            }
            Some(_) => {
                // Too late: the INVITE has its final response; CANCEL has no effect.
                let ok = self.response_bytes(r, 200, Some(&tag), "", None);
                self.respond(now, key, 200, ok);
            }
            None => {
                let b = self.response_bytes(r, 481, Some(&tag), "", None);
                self.respond(now, key, 481, b);
            }
        }
    }

    pub(super) fn handle_bye(&mut self, now: Instant, r: &Request, key: &TransactionKey, k: &Keys) {
        match self.find_call(k) {
            Some(handle) => {
                let b = self.response_bytes(r, 200, None, "", None);
                self.respond(now, key, 200, b);
                // A BYE before our 2xx was acknowledged still ends the call.
                self.end(handle, EndReason::Bye);
            }
            None => {
                let tag = self.tokens.token(6);
                let b = self.response_bytes(r, 481, Some(&tag), "", None);
                self.respond(now, key, 481, b);
            }
        }
    }

    pub(super) fn handle_prack(
        &mut self,
        now: Instant,
        r: &Request,
        key: &TransactionKey,
        k: &Keys,
    ) {
        let rack = header_value(&r.headers, "RAck").map(str::to_owned);
        let status = match self.find_call(k).and_then(|h| self.calls.get_mut(&h)) {
            Some(c) => {
                let acked = rack
                    .as_deref()
                    .and_then(|v| v.split_ascii_whitespace().next())
                    .and_then(|n| n.parse::<u32>().ok());
                if acked == Some(c.rseq) {
                    c.reliable_1xx = None;
                    200
                } else {
                    481
                }
            }
            None => 481,
        };
        let b = self.response_bytes(r, status, None, "", None);
        self.respond(now, key, status, b);
    }
}

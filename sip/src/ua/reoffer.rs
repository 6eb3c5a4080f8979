//! Offers within a dialog: the peer's re-INVITE or UPDATE and our answer, and our own
//! re-INVITE offer with glare handling (RFC 3261 §14, RFC 3311).

use super::*;

impl Agent {
    pub(super) fn handle_reoffer(
        &mut self,
        now: Instant,
        r: Request,
        key: TransactionKey,
        k: Keys,
    ) {
        let Some(handle) = self.find_call(&k) else {
            let b = self.response_bytes(&r, 481, None, "", None);
            return self.respond(now, &key, 481, b);
        };
        let c = self.calls.get_mut(&handle).expect("found");
        // RFC 3261 §12.2.2: a lower CSeq is out of order.
        if k.cseq <= c.remote_cseq {
            let b = self.response_bytes(&r, 500, None, "Retry-After: 1\r\n", None);
            return self.respond(now, &key, 500, b);
        }
        // RFC 3261 §14.2: one re-offer at a time, and not while ours is out (glare).
        let ours_out = c.our_offer.as_ref().is_some_and(|o| o.cseq.is_some());
        if c.pending_reoffer.is_some() || (r.method == Method::Invite && ours_out) {
            let b = self.response_bytes(&r, 491, None, "", None);
            return self.respond(now, &key, 491, b);
        }
        c.remote_cseq = k.cseq;
        // Any re-INVITE or UPDATE from the peer refreshes the session (RFC 4028 §10).
        if let Some(s) = &mut c.session {
            s.refreshed(now);
        }
        if r.method == Method::Update && r.body.is_empty() {
            let extra = c.session_header();
            let b = self.response_bytes(&r, 200, None, &extra, None);
            return self.respond(now, &key, 200, b);
        }
        let Ok(offer) = offer_in(&r) else {
            let b = self.response_bytes(&r, 488, None, "", None);
            return self.respond(now, &key, 488, b);
        };
        if r.method == Method::Invite {
            let trying = self.response_bytes(&r, 100, None, "", None);
            self.respond(now, &key, 100, trying);
        }
        let c = self.calls.get_mut(&handle).expect("found");
        c.pending_reoffer = Some((key, r));
        self.events.push_back(AgentEvent::Reoffer {
            call: handle,
            offer,
        });
    }

    /// Answers a pending re-INVITE or UPDATE with `sdp` (200), or refuses it with 488
    /// when `sdp` is `None`.
    pub fn answer_reoffer(&mut self, now: Instant, call: CallHandle, sdp: Option<Vec<u8>>) {
        let timers = self.config.timers;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some((key, req)) = c.pending_reoffer.take() else {
            return;
        };
        let transport = c.remote.transport;
        let session = c.session_header();
        let is_invite = req.method == Method::Invite;
        match sdp {
            Some(body) => {
                c.local_sdp = body.clone();
                let contact = local_for(&self.config, transport).contact();
                let b = self.response_bytes(
                    &req,
                    200,
                    None,
                    &format!("{contact}{session}"),
                    Some(&body),
                );
                self.respond(now, &key, 200, b.clone());
                if is_invite && let Some(c) = self.calls.get_mut(&call) {
                    c.pending_invite_ack = Some(c.remote_cseq);
                    c.final_2xx = Some(call::Retransmit::new(now, b, timers));
                }
            }
            None => {
                let b = self.response_bytes(&req, 488, None, "", None);
                self.respond(now, &key, 488, b);
            }
        }
    }

    /// Offers `sdp` to the peer in a re-INVITE (RFC 3261 §14.1), e.g. to move the media
    /// to RTP/AVP; it becomes our SDP (refreshes re-send it). The answer comes as
    /// [`AgentEvent::ReofferAnswered`], a refusal as [`AgentEvent::ReofferRefused`]. It
    /// waits while the dialog is not confirmed or has another offer/answer exchange open,
    /// and is sent again after a 491 (§14.1: after 0 to 2 s, the Call-ID being the peer's).
    pub fn reoffer(&mut self, now: Instant, call: CallHandle, sdp: Vec<u8>) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.local_sdp = sdp;
        c.our_offer = Some(call::OurOffer {
            cseq: None,
            send_at: Some(now),
        });
        self.send_our_offer(now, call);
    }

    /// Sends our pending offer when the dialog is free for it, else waits a little.
    pub(super) fn send_our_offer(&mut self, now: Instant, call: CallHandle) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let busy = c.state != CallState::Confirmed
            || c.pending_reoffer.is_some()
            || c.pending_invite_ack.is_some()
            || c.reinvite_in_flight;
        let Some(offer) = c.our_offer.as_mut().filter(|o| o.cseq.is_none()) else {
            return;
        };
        if busy {
            offer.send_at = Some(now + OFFER_RETRY);
            return;
        }
        offer.send_at = None;
        offer.cseq = Some(c.local_cseq + 1);
        c.reinvite_in_flight = true;
        let extra = c.session_header();
        let sdp = c.local_sdp.clone();
        self.send_in_dialog(now, call, Method::Invite, &extra, Some(sdp));
    }

    /// The final response to a re-INVITE of ours: an offer's answer or refusal.
    pub(super) fn our_reinvite_done(&mut self, now: Instant, h: CallHandle, r: &Response) {
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        c.reinvite_in_flight = false;
        let cseq = message::response_keys(r).map(|k| k.cseq).ok();
        let Some(offer) = c
            .our_offer
            .as_mut()
            .filter(|o| o.cseq.is_some() && o.cseq == cseq)
        else {
            return;
        };
        let status = r.status_code.code();
        if status == 491 {
            // Glare (§14.1): both sides offered; ours goes again after 0 to 2 s.
            let mut b = [0u8; 2];
            self.tokens.fill(&mut b);
            let wait = Duration::from_millis(u64::from(u16::from_be_bytes(b)) % 2001);
            offer.cseq = None;
            offer.send_at = Some(now + wait);
            return;
        }
        c.our_offer = None;
        let answer = (200..300)
            .contains(&status)
            .then(|| sdp::parse(&r.body).ok())
            .flatten();
        self.events.push_back(match answer {
            Some(answer) => AgentEvent::ReofferAnswered { call: h, answer },
            None => AgentEvent::ReofferRefused { call: h, status },
        });
    }
}

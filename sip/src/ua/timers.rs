//! Time: transaction timers, 2xx and reliable-provisional retransmission, RFC 4028
//! session refresh, OPTIONS keep-alive toward the trunk peers, finished transactions.

use super::*;

impl Agent {
    /// Time passed: transactions, 2xx and reliable 1xx retransmission, session timers,
    /// OPTIONS keep-alives.
    pub fn handle_timeout(&mut self, now: Instant) {
        for s in self.servers.values_mut() {
            if s.tx.poll_timeout().is_some_and(|t| t <= now) {
                s.tx.handle_timeout(now);
            }
        }
        for c in self.clients.values_mut() {
            if c.tx.poll_timeout().is_some_and(|t| t <= now) {
                c.tx.handle_timeout(now);
            }
        }
        let unanswered: Vec<CallHandle> = self
            .calls
            .iter()
            .filter(|(_, c)| c.state == CallState::Early && c.answer_by.is_some_and(|t| t <= now))
            .map(|(h, _)| *h)
            .collect();
        for h in unanswered {
            self.reject(now, h, 480, Some("not answered in time"));
        }
        let mut no_ack = Vec::new();
        let mut expired = Vec::new();
        let mut refresh = Vec::new();
        let mut resend = Vec::new();
        let mut unpracked = Vec::new();
        for (h, c) in &mut self.calls {
            for r in [&mut c.final_2xx, &mut c.reliable_1xx] {
                let Some(rt) = r else { continue };
                match rt.poll(now) {
                    call::RetransmitAction::Send(b) => resend.push((c.remote, b)),
                    call::RetransmitAction::GiveUp => {
                        *r = None;
                        match c.state {
                            CallState::WaitingAck => no_ack.push(*h),
                            // RFC 3262 §3: a reliable provisional never PRACKed within
                            // 64*T1: the INVITE is refused with a 5xx.
                            CallState::Early => unpracked.push(*h),
                            CallState::Confirmed => {}
                        }
                    }
                    call::RetransmitAction::Wait => {}
                }
            }
            if let Some(s) = &mut c.session {
                match s.poll(now) {
                    call::SessionAction::Refresh => refresh.push(*h),
                    call::SessionAction::Expired => expired.push(*h),
                    call::SessionAction::Wait => {}
                }
            }
        }
        for (to, b) in resend {
            self.send(to, b);
        }
        for h in unpracked {
            self.reject(
                now,
                h,
                504,
                Some("no PRACK for the reliable provisional response"),
            );
        }
        for h in no_ack {
            self.send_in_dialog(now, h, Method::Bye, "", None);
            self.end(h, EndReason::NoAck);
        }
        for h in expired {
            self.send_in_dialog(now, h, Method::Bye, "", None);
            self.end(h, EndReason::SessionExpired);
        }
        for h in refresh {
            self.refresh_session(now, h);
        }
        let offers: Vec<CallHandle> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                c.our_offer
                    .as_ref()
                    .and_then(|o| o.send_at)
                    .is_some_and(|t| t <= now)
            })
            .map(|(h, _)| *h)
            .collect();
        for h in offers {
            self.send_our_offer(now, h);
        }
        self.keepalive(now);
        self.collect(now);
    }

    /// We are the refresher (RFC 4028 §7.4): UPDATE without SDP when the peer allows it,
    /// else a re-INVITE with our current SDP.
    pub(super) fn refresh_session(&mut self, now: Instant, h: CallHandle) {
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        let extra = c.session_header();
        if c.peer_allows_update {
            self.send_in_dialog(now, h, Method::Update, &extra, None);
        } else if c.reinvite_in_flight {
            // The re-INVITE that is out refreshes the session when it is answered.
        } else {
            c.reinvite_in_flight = true;
            let sdp = c.local_sdp.clone();
            self.send_in_dialog(now, h, Method::Invite, &extra, Some(sdp));
        }
    }

    pub(super) fn keepalive(&mut self, now: Instant) {
        let Some(interval) = self.config.options_interval else {
            return;
        };
        for i in 0..self.peers.len() {
            if !self.peers[i].options_due(now, interval) {
                continue;
            }
            let p = self.config.peers[i].clone();
            let local = local_for(&self.config, p.transport);
            let branch = self.tokens.branch();
            let uri = format!(
                "sip:{};transport={}",
                build::host_port(p.addr),
                p.transport.uri_param()
            );
            let bytes = build::request(
                &local,
                &RequestSpec {
                    method: "OPTIONS",
                    uri: &uri,
                    branch: &branch,
                    from: &format!(
                        "<sip:mswitch@{}>;tag={}",
                        build::host_port(local.addr),
                        self.tokens.token(6)
                    ),
                    to: &format!("<{uri}>"),
                    call_id: &format!("{}@mswitch", self.tokens.token(12)),
                    cseq: 1,
                    extra: "Accept: application/sdp\r\n",
                    body: None,
                },
            );
            let to = Remote {
                transport: p.transport,
                addr: p.addr,
            };
            let tx = Transaction::client(
                now,
                &Method::Options,
                bytes,
                p.transport.is_reliable(),
                self.config.timers,
            );
            self.clients.insert(
                TransactionKey::client(&branch, &Method::Options),
                Client {
                    tx,
                    to,
                    purpose: ClientPurpose::Options(i),
                },
            );
        }
    }

    /// Moves transaction output to the transmit queue, handles their events, drops the
    /// finished ones.
    pub(super) fn collect(&mut self, now: Instant) {
        let mut out = Vec::new();
        for s in self.servers.values_mut() {
            while let Some(b) = s.tx.poll_transmit() {
                out.push((s.to, b));
            }
            while let Some(e) = s.tx.poll_event() {
                if e == TransactionEvent::TimedOut {
                    // Timer H: our non-2xx was never ACKed; nothing more to do.
                }
            }
        }
        let mut results = Vec::new();
        for c in self.clients.values_mut() {
            while let Some(b) = c.tx.poll_transmit() {
                out.push((c.to, b));
            }
            while let Some(e) = c.tx.poll_event() {
                let p = match &c.purpose {
                    ClientPurpose::Options(i) => ClientPurpose::Options(*i),
                    ClientPurpose::InDialog(h, m) => ClientPurpose::InDialog(*h, *m),
                    ClientPurpose::Invite(h) => ClientPurpose::Invite(*h),
                };
                results.push((p, e));
            }
        }
        for (to, b) in out {
            self.send(to, b);
        }
        self.servers.retain(|_, s| !s.tx.is_terminated());
        self.clients.retain(|_, c| !c.tx.is_terminated());
        for (purpose, e) in results {
            self.client_result(now, purpose, e);
        }
    }

    pub(super) fn client_result(
        &mut self,
        now: Instant,
        purpose: ClientPurpose,
        e: TransactionEvent,
    ) {
        let code = match &e {
            TransactionEvent::Response(r) => Some(r.status_code.code()),
            _ => None,
        };
        match purpose {
            ClientPurpose::Options(i) => {
                // Alive and willing: a 2xx, or a refusal of OPTIONS itself (RFC 3261
                // §11.2). A 401/403/407 is the peer refusing this switch (seeds-switch.md
                // R6: the trunk's X.509 subject): not up, and said in the log.
                let up = code
                    .is_some_and(|c| (200..300).contains(&c) || matches!(c, 405 | 480 | 486 | 501));
                let refused = code.is_some_and(|c| matches!(c, 401 | 403 | 407));
                if let (true, Some(c)) = (refused, code) {
                    let peer = self.config.peers[i].addr;
                    self.events.push_back(AgentEvent::Log(format!(
                        "Trunk peer {peer} answered OPTIONS with {c}: it refuses this switch. Check SIP trunk config."
                    )));
                }
                self.events.push_back(AgentEvent::KeepAlive {
                    peer: i,
                    status: code,
                });
                let down = e == TransactionEvent::TimedOut || refused;
                if (up || down)
                    && let Some(state) = self.peers[i].answered(now, up)
                {
                    self.events.push_back(AgentEvent::Peer { peer: i, state });
                }
            }
            ClientPurpose::InDialog(h, method) => match (method, code) {
                // A refresh refused with 481/408 or timed out ends the call (RFC 4028 §10).
                (Method::Update | Method::Invite, Some(481 | 408) | None)
                    if self.calls.contains_key(&h) =>
                {
                    self.send_in_dialog(now, h, Method::Bye, "", None);
                    self.end(h, EndReason::Timeout);
                }
                (Method::Invite, Some(200..=299)) => {
                    // ACK our re-INVITE's 2xx (RFC 3261 §13.2.2.4).
                    let branch = self.tokens.branch();
                    if let (TransactionEvent::Response(r), Some(c)) = (&e, self.calls.get(&h)) {
                        let local = local_for(&self.config, c.remote.transport);
                        let ack = c.ack_for_2xx(&local, &branch, r);
                        let to = c.remote;
                        self.send(to, ack);
                        self.our_reinvite_done(now, h, r);
                    }
                    if let Some(s) = self.calls.get_mut(&h).and_then(|c| c.session.as_mut()) {
                        s.refreshed(now);
                    }
                }
                (Method::Invite, Some(300..)) => {
                    if let TransactionEvent::Response(r) = &e {
                        self.our_reinvite_done(now, h, r);
                    }
                }
                (Method::Update, Some(200..=299)) => {
                    if let Some(s) = self.calls.get_mut(&h).and_then(|c| c.session.as_mut()) {
                        s.refreshed(now);
                    }
                }
                _ => {}
            },
            ClientPurpose::Invite(h) => self.invite_result(now, h, e),
        }
    }
}

//! The user agent as client: outbound INVITE with failover across the trunk peers and the
//! seed's lines for Unified CM's refusals, requests within a dialog, hang-up.

use super::*;

impl Agent {
    /// Calls `user` through the trunk with our offer `sdp`: the first peer that is up,
    /// then the next ones in order when one does not answer or is unavailable (503).
    /// Refusals are logged with the seed's lines (T1 L5, L6, L7, L12).
    pub fn call_out(&mut self, now: Instant, user: &str, sdp: Vec<u8>) -> CallHandle {
        let handle = self.next_call;
        self.next_call += 1;
        let first = (0..self.config.peers.len())
            .find(|i| self.peers[*i].state == PeerState::Up)
            .unwrap_or(0);
        self.invite_peer(now, handle, user, sdp, first);
        handle
    }

    /// The SIP Call-ID of `call`, while it lasts.
    pub fn call_id(&self, call: CallHandle) -> Option<&str> {
        self.calls.get(&call).map(|c| c.call_id.as_str())
    }

    pub(super) fn invite_peer(
        &mut self,
        now: Instant,
        handle: CallHandle,
        user: &str,
        sdp: Vec<u8>,
        peer: usize,
    ) {
        let Some(p) = self.config.peers.get(peer).cloned() else {
            // T1 L5 (seed 002 l.2497): the seed's line, the peers tried, and its hint.
            let tried: Vec<String> = self
                .config
                .peers
                .iter()
                .map(|p| format!("{} over {:?}", p.addr, p.transport))
                .collect();
            self.events.push_back(AgentEvent::Log(format!(
                "{LOG_NO_CM} (tried {}): check that the port numbers match the trunk's on Unified CM",
                tried.join(", ")
            )));
            self.calls.remove(&handle);
            self.events.push_back(AgentEvent::Ended {
                call: handle,
                reason: EndReason::Timeout,
            });
            return;
        };
        let local = local_for(&self.config, p.transport);
        let uri = format!(
            "sip:{user}@{};transport={}",
            build::host_port(p.addr),
            p.transport.uri_param()
        );
        let local_uri = format!("<sip:mswitch@{}>", build::host_port(local.addr));
        let call = Call {
            role: Role::Uac,
            state: CallState::Early,
            call_id: format!("{}@mswitch", self.tokens.token(12)),
            local_tag: self.tokens.token(6),
            remote_tag: None,
            local_uri,
            remote_uri: format!("<{uri}>"),
            remote_target: uri,
            remote: Remote {
                transport: p.transport,
                addr: p.addr,
            },
            peer,
            local_cseq: 0,
            remote_cseq: 0,
            invite: None,
            delayed_offer: false,
            reliable_provisional: false,
            rseq: 0,
            reliable_1xx: None,
            final_2xx: None,
            session_request: None,
            peer_supports_timer: false,
            peer_allows_update: false,
            session: None,
            local_sdp: sdp.clone(),
            pending_reoffer: None,
            pending_invite_ack: None,
            outbound: Some((user.to_owned(), sdp.clone())),
            answer_by: None,
            our_offer: None,
            reinvite_in_flight: false,
        };
        self.calls.insert(handle, call);
        let expires = format!("Session-Expires: {}\r\n", self.config.session_expires);
        self.send_in_dialog(now, handle, Method::Invite, &expires, Some(sdp));
        // send_in_dialog files it as an in-dialog request: re-file it as our INVITE.
        for c in self.clients.values_mut() {
            if matches!(c.purpose, ClientPurpose::InDialog(h, Method::Invite) if h == handle) {
                c.purpose = ClientPurpose::Invite(handle);
            }
        }
    }

    /// The outcome of our INVITE.
    pub(super) fn invite_result(&mut self, now: Instant, h: CallHandle, e: TransactionEvent) {
        let Some(c) = self.calls.get(&h) else { return };
        let (user, sdp) = c.outbound.clone().unwrap_or_default();
        let peer = c.peer;
        // No answer (timer B): the next trunk peer.
        let TransactionEvent::Response(r) = e else {
            return self.invite_peer(now, h, &user, sdp, peer + 1);
        };
        let code = r.status_code.code();
        match code {
            100..=199 => {}
            200..=299 => {
                let branch = self.tokens.branch();
                let Some(c) = self.calls.get_mut(&h) else {
                    return;
                };
                if let Ok(k) = message::response_keys(&r) {
                    c.remote_tag = k.to_tag;
                }
                if let Some(t) = r.headers.iter().find_map(|x| match x {
                    message::Header::Contact(v) => uri_of(v.value()),
                    _ => None,
                }) {
                    c.remote_target = t;
                }
                let first = c.state == CallState::Early;
                c.state = CallState::Confirmed;
                let local = local_for(&self.config, c.remote.transport);
                let ack = c.ack_for_2xx(&local, &branch, &r);
                let to = c.remote;
                self.send(to, ack);
                if first {
                    if let Ok(answer) = sdp::parse(&r.body) {
                        self.events
                            .push_back(AgentEvent::Answer { call: h, answer });
                    }
                    self.events.push_back(AgentEvent::Established { call: h });
                }
            }
            503 => self.invite_peer(now, h, &user, sdp, peer + 1),
            _ => {
                let line = match code {
                    403 => Some(format!(
                        "Dialing {user} received 403 Forbidden from Cisco Unified CM. Check SIP trunk config."
                    )),
                    488 => Some(format!(
                        "Dialing {user} received 488 Not Acceptable Here from Cisco Unified CM. Check SIP trunk config"
                    )),
                    606 => Some(format!(
                        "Dialing {user} received \"606 Not acceptable\" from Cisco Unified CM: with Unified CM 6.1, select \"Encrypted without SDP keys\""
                    )),
                    _ => None,
                };
                if let Some(l) = line {
                    self.events.push_back(AgentEvent::Log(l));
                }
                self.end(h, EndReason::Refused(code));
            }
        }
    }

    /// A stream to `remote` could not be opened or broke: its pending requests fail at
    /// once (our INVITE moves to the next trunk peer).
    pub fn transport_failed(&mut self, now: Instant, remote: Remote) {
        let failed: Vec<TransactionKey> = self
            .clients
            .iter()
            .filter(|(_, c)| c.to == remote)
            .map(|(k, _)| k.clone())
            .collect();
        for k in failed {
            if let Some(c) = self.clients.remove(&k) {
                self.client_result(now, c.purpose, TransactionEvent::TimedOut);
            }
        }
    }

    /// Ends a call: BYE when it is up, a 480 when it is still ringing.
    pub fn hangup(&mut self, now: Instant, call: CallHandle) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        match (c.role, c.state) {
            (Role::Uas, CallState::Early) => self.reject(now, call, 480, None),
            // Our INVITE is still pending: the transaction runs out on its own; the call
            // is gone for the application (a CANCEL would be the courtesy, RFC 3261 §9.1).
            (Role::Uac, CallState::Early) => self.end(call, EndReason::Local),
            _ => {
                self.send_in_dialog(now, call, Method::Bye, "", None);
                self.end(call, EndReason::Local);
            }
        }
    }

    /// Sends an in-dialog request (BYE, UPDATE, re-INVITE) in a client transaction.
    pub(super) fn send_in_dialog(
        &mut self,
        now: Instant,
        call: CallHandle,
        method: Method,
        extra: &str,
        body: Option<Vec<u8>>,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.local_cseq += 1;
        let branch = self.tokens.branch();
        let local = local_for(&self.config, c.remote.transport);
        let method_name = method.to_string();
        let bytes = build::request(
            &local,
            &RequestSpec {
                method: &method_name,
                uri: &c.remote_target,
                branch: &branch,
                from: &format!("{};tag={}", strip_tag(&c.local_uri), c.local_tag),
                to: &match &c.remote_tag {
                    Some(t) => format!("{};tag={t}", strip_tag(&c.remote_uri)),
                    None => strip_tag(&c.remote_uri).to_owned(),
                },
                call_id: &c.call_id,
                cseq: c.local_cseq,
                extra,
                body: body.as_deref().map(|b| ("application/sdp", b)),
            },
        );
        let to = c.remote;
        let tx = Transaction::client(
            now,
            &method,
            bytes,
            to.transport.is_reliable(),
            self.config.timers,
        );
        self.clients.insert(
            TransactionKey::client(&branch, &method),
            Client {
                tx,
                to,
                purpose: ClientPurpose::InDialog(call, method),
            },
        );
    }
}

//! Offers after the call is set up: the peer's re-INVITE or UPDATE (a moved line's legs
//! redirected), and a meeting's downgrade to non-secure (R38, T1 L3): the call that causes
//! it is established, then every SRTP participant is re-INVITEd to RTP/AVP and joins again
//! with plain lines.

use sip::sdp::{self, Description};
use sip::ua::CallHandle;
use switch::meeting::MeetingCommand;
use switch::udp::Command;
use tracing::{info, warn};

use super::App;
use crate::control::{self, ReofferDecision, SeedLine, session};
use crate::ops::cdr::CallEnd;
use crate::policy::ConferenceSecurity;

/// A meeting's downgrade waiting for the call that causes it to be established.
pub(super) struct PendingDowngrade {
    /// The meeting's security once it is done.
    pub(super) security: ConferenceSecurity,
    /// The seed's line (T1 L3).
    pub(super) log: Option<SeedLine>,
}

impl App {
    /// A re-INVITE or UPDATE from the peer: decided by [`control::decide_reoffer`]; a moved
    /// line's legs are redirected here.
    pub(super) fn reoffered(&mut self, call: CallHandle, offer: Option<Description>) {
        let Some(c) = self.calls.get(&call) else {
            return self.trunk.answer_reoffer(call, None);
        };
        let (sdp, moved) = match control::decide_reoffer(
            &c.local_sdp,
            c.remote_sdp.as_ref(),
            offer.as_ref(),
        ) {
            ReofferDecision::OfferCurrent => {
                return self.trunk.answer_reoffer(call, Some(c.local_sdp.clone()));
            }
            ReofferDecision::Refuse(why) => {
                warn!(call_id = ?c.call_id, "re-INVITE refused with {}, the session goes on: {why}", why.status());
                return self.trunk.answer_reoffer(call, None);
            }
            ReofferDecision::Answer { sdp, moved } => (sdp, moved),
        };
        if let Some(id) = self.meetings.get(&c.number).map(|m| m.id) {
            for m in &moved {
                for (leg, remote) in c.redirected_legs(m) {
                    self.pool.send(id, Command::Redirect { leg, remote });
                }
            }
        }
        if let Some(c) = self.calls.get_mut(&call) {
            c.local_sdp = sdp.clone();
            c.remote_sdp = offer;
        }
        self.trunk.answer_reoffer(call, Some(sdp));
    }

    /// The call that downgrades its meeting is established: the meeting goes non-secure
    /// (R38, T1 L3); its Downgraded event names the participants to re-INVITE to RTP/AVP.
    pub(super) fn carry_out_downgrade(&mut self, call: CallHandle) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(pending) = c.pending_downgrade.take() else {
            return;
        };
        let Some(m) = self.meetings.get_mut(&c.number) else {
            return;
        };
        if m.secure == Some(false) {
            // Another newcomer's downgrade came first.
            return;
        }
        m.security = pending.security;
        m.secure = Some(false);
        m.security_reason = Some(format!(
            "downgraded to non-secure: call {} joined non-secure (Best-Effort, R38)",
            c.call_id
        ));
        let event = serde_json::json!({ "number": c.number, "conf_id": m.id, "secure": false, "reason": m.security_reason });
        if let Some(line) = pending.log {
            warn!("{line}");
        }
        let id = m.id;
        self.pool
            .send(id, Command::Meeting(id, MeetingCommand::Downgrade));
        self.event("security_changed", event);
    }

    /// Re-INVITEs a call to RTP/AVP: its meeting is non-secure (R38 downgrade, or a secure
    /// endpoint joining a non-secure meeting) and holds its SRTP lines meanwhile.
    pub(super) fn downgrade_call(&mut self, call: CallHandle) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.needs_downgrade = false;
        match sdp::plain_reoffer(&c.local_sdp) {
            Ok(offer) => {
                info!(call_id = ?c.call_id, number = ?c.number, "re-INVITE to RTP/AVP: the meeting is non-secure");
                c.local_sdp = offer.clone();
                c.downgrading = true;
                self.trunk.reoffer(call, offer);
            }
            Err(e) => {
                warn!(call_id = ?c.call_id, "our own SDP does not parse ({e}): BYE");
                self.hang_up(
                    call,
                    CallEnd::Switch(format!("our own SDP does not parse: {e}")),
                );
            }
        }
    }

    /// The answer to our RTP/AVP re-INVITE: the participant joins again with plain lines
    /// (TIP runs again, non-secure); an answer that keeps SRTP ends the call.
    pub(super) fn downgrade_answered(&mut self, call: CallHandle, answer: &Description) {
        let Some(c) = self.calls.get_mut(&call).filter(|c| c.downgrading) else {
            return;
        };
        c.downgrading = false;
        let call_id = c.call_id.clone();
        let keyings = match session::downgrade_answer_keyings(answer) {
            Ok(k) => k,
            Err(why) => {
                warn!(?call_id, "{why}: BYE");
                return self.hang_up(call, CallEnd::Switch(why.to_string()));
            }
        };
        match self.join(call, answer, &keyings, &[]) {
            Ok(_) => info!(?call_id, "downgraded to non-secure: plain RTP, TIP again"),
            Err(e) => {
                warn!(?call_id, "media set-up after the downgrade failed: {e}");
                self.hang_up(
                    call,
                    CallEnd::Switch(format!("media set-up after the downgrade: {e}")),
                );
            }
        }
    }

    /// Whether the meeting of `call` runs plain RTP.
    pub(super) fn meeting_is_plain(&self, call: CallHandle) -> bool {
        self.calls
            .get(&call)
            .and_then(|c| self.meetings.get(&c.number))
            .is_some_and(|m| m.secure == Some(false))
    }
}

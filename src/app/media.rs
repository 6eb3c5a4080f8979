//! The driver's media work for a call: ports and sockets, each line's keying and TIP
//! parameters (decided by [`crate::control::lines`]), the SDP that answers an offer or
//! makes ours for a delayed offer, and the participant added on its worker.

use std::net::SocketAddr;
use std::time::Instant;

use sip::sdp::{self, CryptoLine, Description, LocalMedia, MediaKind, Profile, Setup};
use sip::security::Keying;
use sip::ua::CallHandle;
use switch::meeting::{LegId, MeetingCommand};
use switch::udp::Command;

use super::{App, CallState, PreparedSockets, ntp_now};
use crate::control::lines::{self, CallLines};
use crate::control::session::{self, MovedLine};
use crate::join;

impl CallState {
    /// The legs of the call's line that `moved` names, with the addresses they now send to.
    pub(super) fn redirected_legs(&self, moved: &MovedLine) -> Vec<(LegId, SocketAddr)> {
        let mut legs = Vec::new();
        if let Some(l) = self.lines.iter().find(|l| l.media == moved.media) {
            legs.push((l.leg.id, moved.rtp));
            if let Some(r) = &l.rtcp {
                legs.push((r.id, moved.rtcp));
            }
        }
        legs
    }
}

impl App {
    /// Allocates, keys and joins the lines of an offer (or of the answer to our offer);
    /// returns the SDP that answers it.
    pub(super) fn join(
        &mut self,
        call: CallHandle,
        remote: &Description,
        keyings: &[Option<Keying>],
        our_keys: &[Option<Vec<u8>>],
    ) -> Result<Vec<u8>, join::JoinError> {
        let now = Instant::now();
        let c = self.calls.get(&call).expect("a call");
        let number = c.number.clone();
        let participant = c.participant;
        let existing = !c.lines.is_empty();
        let detect_after = c.standard_after;
        let m = &self.meetings[&number];
        let (meeting_id, groups) = (m.id, m.groups.clone());
        let screens = lines::screens(remote);
        let lines = CallLines {
            number: &number,
            conf_id: meeting_id,
            groups: &groups,
            screens,
            muxctrl_deadline: self.settings.muxctrl_timeout,
            spimap_deadline: self.settings.spimap_timeout,
            ntp_at_start: ntp_now(),
        };
        let mut setups = Vec::new();
        let mut locals: Vec<Option<LocalMedia>> = Vec::new();
        let mut sockets: Vec<PreparedSockets> = Vec::new();
        for (i, offer) in remote.media.iter().enumerate() {
            let (Some(kind), Some(k)) = (offer.kind, keyings.get(i).and_then(Option::as_ref))
            else {
                locals.push(None);
                continue;
            };
            let media = session::media_of(kind);
            let s = if existing {
                // Delayed offer: the lines were allocated with our offer.
                let mut lines = std::mem::take(&mut self.calls.get_mut(&call).expect("call").lines);
                let pos = lines.iter().position(|l| l.media == media);
                match pos {
                    Some(p) => {
                        let mut l = lines.remove(p);
                        self.calls.get_mut(&call).expect("call").lines = lines;
                        // We offered both (RFC 5761 §5.1.1); multiplexed, the RTCP port
                        // goes back.
                        if offer.rtcp_mux {
                            l.drop_rtcp(&mut self.ports);
                        }
                        l
                    }
                    None => {
                        self.calls.get_mut(&call).expect("call").lines = lines;
                        locals.push(None);
                        continue;
                    }
                }
            } else {
                let s = join::line_sockets(
                    &mut self.ports,
                    self.media_ip,
                    media,
                    offer.rtcp_mux,
                    &mut self.next_leg,
                );
                match s {
                    Ok(s) => s,
                    Err(e) => {
                        // Nothing of this call reached a worker yet: every port goes back.
                        join::release_all(&mut self.ports, sockets.iter().map(|(l, _, _)| l));
                        return Err(e);
                    }
                }
            };
            let config = lines.config(media, k, u32::from_be_bytes(join::random()));
            let prepared = join::prepare_line(
                now,
                offer,
                k,
                &s,
                &self.identity,
                &self.settings.suites,
                config,
                our_keys.get(i).and_then(|k| k.as_deref()),
            );
            let mut prepared = match prepared {
                Ok(p) => p,
                Err(e) => {
                    // Nothing of this call reached a worker yet: every port goes back.
                    let prepared = sockets.iter().map(|(l, _, _)| l);
                    join::release_all(&mut self.ports, std::iter::once(&s).chain(prepared));
                    return Err(e);
                }
            };
            prepared.setup.standard.detect_after = detect_after;
            setups.push(prepared.setup);
            locals.push(Some(prepared.local));
            sockets.push((
                s,
                SocketAddr::new(offer.address, offer.port),
                offer.rtcp_addr(),
            ));
        }
        // The participant first, then its sockets: a datagram that is already waiting
        // (a delayed offer's ClientHello comes right behind the ACK) must find the
        // participant when the worker first reads the leg.
        let mut legs = Vec::new();
        for (s, remote_addr, rtcp_remote) in &mut sockets {
            legs.push((s.leg.id, s.leg.socket.take(), *remote_addr));
            if let Some(r) = &mut s.rtcp {
                legs.push((r.id, r.socket.take(), *rtcp_remote));
            }
        }
        let c = self.calls.get_mut(&call).expect("call");
        c.lines.extend(sockets.into_iter().map(|(s, _, _)| s));
        self.pool.send(
            meeting_id,
            Command::Meeting(
                meeting_id,
                MeetingCommand::AddParticipant {
                    participant,
                    screens,
                    lines: setups,
                },
            ),
        );
        let first_join = !c.joined;
        c.joined = true;
        c.remote_sdp = Some(remote.clone());
        if first_join {
            let data = serde_json::json!({ "number": number, "call_id": c.call_id, "participant": participant });
            self.event("participant_joined", data);
        }
        if let Some(m) = self.meetings.get_mut(&number)
            && !m.participants.contains(&participant)
        {
            m.participants.push(participant);
        }
        for (leg, socket, remote_addr) in legs {
            // The worker takes the socket (one descriptor per port); joining again (a
            // downgrade) finds it there, and the peer's address may have changed.
            let command = match socket {
                Some(socket) => Command::AddLeg {
                    meeting: meeting_id,
                    leg,
                    socket,
                    remote: remote_addr,
                },
                None => Command::Redirect {
                    leg,
                    remote: remote_addr,
                },
            };
            self.pool.send(meeting_id, command);
            if let Some(c) = self.calls.get_mut(&call)
                && !c.legs.contains(&leg)
            {
                c.legs.push(leg);
            }
        }
        Ok(sdp::answer(
            remote,
            self.media_ip,
            &participant.to_string(),
            1,
            &locals,
        ))
    }

    /// Delayed offer: ports for an audio and a video line, our keys, our offer.
    pub(super) fn offer_for_delayed(
        &mut self,
        call: CallHandle,
    ) -> Result<Vec<u8>, join::JoinError> {
        let ours = self.make_offer(self.meeting_is_plain(call))?;
        let c = self.calls.get_mut(&call).expect("a call");
        c.lines = ours.lines;
        c.offered = Some((ours.offered, ours.keys));
        c.needs_downgrade = false;
        c.local_sdp = ours.body.clone();
        Ok(ours.body)
    }

    /// Our offer (a delayed-offer call's 200, or a call the switch places): an audio and a
    /// video line on fresh ports, keyed as the Device Security mode wants (`plain`: the
    /// meeting runs RTP). On failure the ports taken so far are given back.
    pub(super) fn make_offer(&mut self, plain: bool) -> Result<OurOffer, join::JoinError> {
        let profile = session::delayed_offer_profile(self.settings.security, plain);
        let mut lines = Vec::new();
        let mut keys = Vec::new();
        let mut sockets = Vec::new();
        for (kind, fmt) in [
            (MediaKind::Audio, ("0", "PCMU/8000")),
            (MediaKind::Video, ("112", "H264/90000")),
        ] {
            // RTCP port too: the answer may not multiplex (RFC 5761 §5.1.1: a=rtcp-mux
            // with a fallback a=rtcp). Each line is the call's as soon as it is bound, so
            // that a failure later gives its ports back with the call's (`leave`).
            let s = join::line_sockets(
                &mut self.ports,
                self.media_ip,
                session::media_of(kind),
                false,
                &mut self.next_leg,
            );
            let s = match s {
                Ok(s) => s,
                Err(e) => {
                    self.release_lines(&sockets);
                    return Err(e);
                }
            };
            let port = s.leg.local.port();
            let rtcp_port = s.rtcp.as_ref().map(|r| r.local.port());
            let suite = self.settings.suites[0];
            let key = (profile == Profile::Savp).then(|| {
                let r: [u8; 46] = join::random();
                r[..suite.key_len() + suite.salt_len()].to_vec()
            });
            lines.push(LocalMedia {
                kind,
                port,
                rtcp_port,
                profile,
                formats: vec![(fmt.0.into(), Some(fmt.1.into()))],
                rtcp_mux: true,
                dtls: profile
                    .is_secure()
                    .then(|| (Setup::ActPass, self.identity.sdp_fingerprint()))
                    .filter(|_| profile != Profile::Savp),
                crypto: key.as_ref().map(|k| CryptoLine {
                    tag: 1,
                    suite: suite.sdes_name().into(),
                    key_salt: k.clone(),
                    ekt: None,
                }),
                direction: sdp::Direction::SendRecv,
            });
            keys.push(key);
            sockets.push(s);
        }
        let body = sdp::offer(self.media_ip, "1", 1, &lines);
        let Ok(offered) = sdp::parse(&body) else {
            self.release_lines(&sockets);
            return Err(join::JoinError::Crypto);
        };
        Ok(OurOffer {
            body,
            offered,
            keys,
            lines: sockets,
        })
    }

    /// Gives the ports of `lines` back.
    pub(super) fn release_lines(&mut self, lines: &[join::LineSockets]) {
        for l in lines {
            for p in &l.ports {
                self.ports.release(*p);
            }
        }
    }
}

/// Our SDP offer and what answering it needs.
pub(super) struct OurOffer {
    /// The SDP.
    pub(super) body: Vec<u8>,
    /// It, parsed (the answer is read against it).
    pub(super) offered: Description,
    /// Our SDES keys per line (`None`: DTLS or plain).
    pub(super) keys: Vec<Option<Vec<u8>>>,
    /// The lines' sockets.
    pub(super) lines: Vec<join::LineSockets>,
}

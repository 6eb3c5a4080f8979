//! A new call (an INVITE): which meeting, whether the Device Security mode (T6) and the
//! meeting's policy (T4) take it, how each line is keyed, and what the meeting must be told.
//! Decided here without a socket; the driver ([`crate::app`]) does what the decision says.

use sip::sdp::{Description, MediaKind, Profile};
use sip::security::{DeviceSecurity, Keying, keying_for_offer};
use switch::meeting::switching::Mode;

use super::release::{Release, endpoint_release};
use super::{Refusal, SeedLine, SetupFailure};
use crate::policy::{Admission, ConferenceSecurity, Policy, State};
use switch::dtls::parse_sdp_fingerprint;
use switch::srtp::Suite;

/// An INVITE as call control sees it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The Request-URI user part: the meeting number.
    pub number: &'a str,
    /// The SIP Call-ID (for the seed lines).
    pub call_id: &'a str,
    /// The offer; `None` for a delayed offer (we offer in the 200).
    pub offer: Option<&'a Description>,
    /// Whether the INVITE came over TLS.
    pub over_tls: bool,
    /// The caller's User-Agent (its software release, R37).
    pub user_agent: Option<&'a str>,
}

/// The switch's rules for calls (from the configuration).
#[derive(Debug, Clone, Copy)]
pub struct CallRules<'a> {
    /// The Device Security mode.
    pub security: DeviceSecurity,
    /// SDES suite names we accept, strongest first.
    pub sdes_suites: &'a [&'a str],
    /// Configured meetings: number, policy, switching.
    pub meetings: &'a [(String, Policy, Mode)],
    /// Meetings made on the fly for any other number; `None` refuses them with 404.
    pub on_the_fly: Option<(Policy, Mode)>,
    /// The most media lines a call gets; the offer's further lines are refused with port
    /// 0 (RFC 3264 §6): each line is a port and a DTLS association.
    pub max_lines: usize,
    /// The lowest TelePresence release that counts as secure (R37: 1.5); `None` judges
    /// every endpoint on its offer alone.
    pub min_secure_release: Option<Release>,
}

impl CallRules<'_> {
    /// The policy and switching of the meeting `number`, or `None`: no such meeting.
    pub fn meeting(&self, number: &str) -> Option<(Policy, Mode)> {
        self.meetings
            .iter()
            .find(|(n, _, _)| n == number)
            .map(|(_, p, m)| (*p, *m))
            .or(self.on_the_fly)
    }
}

/// The meeting a call is for, as call control holds it.
#[derive(Debug, Clone)]
pub struct MeetingView {
    /// Its security policy's state (it carries the conference id).
    pub security: ConferenceSecurity,
    /// Whether its media runs SRTP with EKT; `None` until its first admission.
    pub secure: Option<bool>,
    /// An operator locked it: no one new joins (R31's in-meeting controls).
    pub locked: bool,
}

/// What a meeting must be told because of an admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeetingChange {
    /// Its media is plain RTP from the start (`MeetingCommand::SetSecure(false)`).
    StartNonSecure,
    /// Best-Effort downgrade of the running meeting (`MeetingCommand::Downgrade`, R38).
    Downgrade,
}

/// How the call's media is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaPlan {
    /// Answer the offer: these lines (by m-line index; `None` is refused with port 0).
    Answer(Vec<Option<Keying>>),
    /// A delayed offer: our offer goes in the 200, the ACK brings the answer.
    OfferOurs,
}

/// A call admitted to its meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// The meeting starts with this call: its policy and switching.
    pub start_meeting: Option<(Policy, Mode)>,
    /// The meeting's security after this admission (the driver keeps it).
    pub security: ConferenceSecurityState,
    /// Whether the meeting's media runs SRTP after this admission.
    pub meeting_secure: bool,
    /// What the meeting must be told, in order.
    pub changes: Vec<MeetingChange>,
    /// The seed's line for this admission, if any.
    pub log: Option<SeedLine>,
    /// How the media is set up.
    pub media: MediaPlan,
    /// The call joins secure into a non-secure meeting: its lines are held, and it is
    /// re-INVITEd to RTP/AVP once confirmed (R38, T4 last row).
    pub needs_downgrade: bool,
}

/// [`ConferenceSecurity`] compared by what it decides (it has no `PartialEq` of its own).
#[derive(Debug, Clone)]
pub struct ConferenceSecurityState(pub ConferenceSecurity);

impl PartialEq for ConferenceSecurityState {
    fn eq(&self, other: &Self) -> bool {
        self.0.policy() == other.0.policy() && self.0.state() == other.0.state()
    }
}
impl Eq for ConferenceSecurityState {}

/// What to do with an INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncomingDecision {
    /// Refuse it.
    Reject(Refusal),
    /// Admit it.
    Admit(Box<Admitted>),
}

/// Why a line's keying cannot be used, if it cannot: the fingerprint is not a SHA-256 one
/// (RFC 8122 §5), or the SDES key is not the length of a suite we support (RFC 4568
/// §6.1).
fn unusable(k: &Keying) -> Option<SetupFailure> {
    match k {
        Keying::Dtls {
            peer_fingerprint, ..
        } => parse_sdp_fingerprint(peer_fingerprint)
            .is_none()
            .then_some(SetupFailure::Fingerprint),
        Keying::Sdes(line) => {
            let fits = Suite::from_sdes_name(&line.suite)
                .is_some_and(|s| line.key_salt.len() == s.key_len() + s.salt_len());
            (!fits).then_some(SetupFailure::Crypto)
        }
        Keying::Plain => None,
    }
}

/// Whether an offer is a secure endpoint's: any usable line on RTP/SAVP(F) or
/// UDP/TLS/RTP/SAVP(F). A delayed offer is what the mode offers.
fn offers_secure_media(offer: Option<&Description>, mode: DeviceSecurity) -> bool {
    offer.map_or(mode.secure_media(), |o| {
        o.media
            .iter()
            .any(|m| m.kind.is_some() && m.port != 0 && m.profile.is_some_and(Profile::is_secure))
    })
}

/// Whether an offer has no usable video line (R38: "an added audio-only call"). A delayed
/// offer shows its lines only in the ACK, too late to decide on: it is not.
fn audio_only(offer: Option<&Description>) -> bool {
    offer.is_some_and(|o| {
        !o.media
            .iter()
            .any(|m| m.kind == Some(MediaKind::Video) && m.port != 0)
    })
}

/// Decides an INVITE. `meeting` is the running meeting for the number, if any;
/// `next_conf_id` the id a new one would get.
pub fn decide_incoming(
    call: Incoming<'_>,
    rules: &CallRules<'_>,
    meeting: Option<&MeetingView>,
    next_conf_id: u64,
) -> IncomingDecision {
    let reject = IncomingDecision::Reject;
    let Some((policy, mode)) = rules.meeting(call.number) else {
        return reject(Refusal::NoSuchMeeting);
    };
    if meeting.is_some_and(|m| m.locked) {
        return reject(Refusal::Locked);
    }
    // An endpoint is non-secure when it offers only plain RTP (RTP/AVP): that is the
    // meeting policy's question (T4). A secure offer must fit the Device Security mode
    // (T6), a plain one is taken as Non-Secure would, else 488.
    let secure = offers_secure_media(call.offer, rules.security);
    let media = match call.offer {
        Some(o) => {
            let mode = if secure {
                rules.security
            } else {
                DeviceSecurity::NonSecure
            };
            let mut keyings = match keying_for_offer(mode, call.over_tls, o, rules.sdes_suites) {
                Ok(k) => k,
                Err(e) => return reject(Refusal::NotAcceptable(e)),
            };
            // Every keyed line must be usable before anything is made for the call: a bad
            // a=fingerprint or a=crypto is the offer's fault (488), not an outage (503).
            if let Some(f) = keyings.iter().flatten().find_map(unusable) {
                return reject(Refusal::UnusableOffer(f));
            }
            for k in keyings
                .iter_mut()
                .filter(|k| k.is_some())
                .skip(rules.max_lines)
            {
                *k = None;
            }
            MediaPlan::Answer(keyings)
        }
        None => match rules.security.check_transport(call.over_tls) {
            Ok(()) => MediaPlan::OfferOurs,
            Err(e) => return reject(Refusal::NotAcceptable(e)),
        },
    };
    let (mut security, meeting_secure) = match meeting {
        Some(m) => (m.security.clone(), m.secure),
        None => (ConferenceSecurity::new(policy, next_conf_id), None),
    };
    // R37/R38: an endpoint below the secure release is non-secure even when it offers
    // SRTP: a Secure meeting refuses it with L2, a Best-Effort one is downgraded by it.
    let old_release = rules
        .min_secure_release
        .zip(call.user_agent.and_then(endpoint_release))
        .is_some_and(|(min, release)| release < min);
    if old_release && policy == Policy::Secure {
        return reject(Refusal::ReleaseTooOld(SeedLine::ReleaseTooOld {
            conf_id: security.conf_id(),
            endpoint: call.call_id.to_owned(),
        }));
    }
    // R38: in a Best-Effort meeting an added audio-only call counts as non-secure (it
    // downgrades a secure meeting); its SRTP is answered, held and re-INVITEd to RTP/AVP
    // like any secure endpoint in a non-secure meeting.
    let counts_secure =
        secure && !old_release && !(audio_only(call.offer) && policy == Policy::BestEffort);
    let (state, downgrade_existing, log) =
        match security.admit(counts_secure, call.call_id, call.number) {
            Admission::Reject { log } => return reject(Refusal::SecurityMismatch(log)),
            Admission::Admit {
                state,
                downgrade_existing,
                log,
            } => (state, downgrade_existing, log),
        };
    // The media of this endpoint and of the meeting must agree (R33: never mixed): a plain
    // endpoint never joins a secure meeting's media; a secure one joins a non-secure
    // meeting secure, is held there, and is re-INVITEd to RTP/AVP.
    let media_secure = state == State::Secure;
    if !secure && media_secure {
        return reject(Refusal::PlainOfferToSecureMeeting);
    }
    if !downgrade_existing && meeting_secure.is_some_and(|s| s != media_secure) {
        return reject(Refusal::OtherKindOfMedia);
    }
    let mut changes = Vec::new();
    if downgrade_existing {
        changes.push(MeetingChange::Downgrade);
    } else if meeting_secure.is_none() && !media_secure {
        changes.push(MeetingChange::StartNonSecure);
    }
    IncomingDecision::Admit(Box::new(Admitted {
        start_meeting: meeting.is_none().then_some((policy, mode)),
        security: ConferenceSecurityState(security),
        meeting_secure: media_secure,
        changes,
        log,
        media,
        needs_downgrade: secure && !media_secure,
    }))
}

//! Call control without a socket: every T4 row, every Device Security mode (T6), delayed
//! offer, re-INVITE (hold, move, refused change), downgrade, unknown numbers, port
//! exhaustion, and the refusal and seed-line tables.

use std::net::SocketAddr;
use std::time::Duration;

use sip::sdp::{self, Description, Direction, Profile};
use sip::security::{DeviceSecurity, Keying, NotAcceptable};
use switch::dtls::DtlsFailure;
use switch::meeting::LineFailure;
use switch::meeting::switching::Mode;
use switch::tip::negotiation::{Failure as TipFailure, GroupParams, Media};

use super::lines::{self, CallLines};
use super::release::Release;
use super::seed;
use super::session::{self, MovedLine};
use super::*;
use crate::policy::{ConferenceSecurity, Policy, State};

const SUITES: &[&str] = &[
    "AEAD_AES_256_GCM",
    "AEAD_AES_128_GCM",
    "AES_CM_128_HMAC_SHA1_80",
    "AES_CM_128_HMAC_SHA1_32",
];
const FP: &str = "a=fingerprint:sha-256 AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB\r\na=setup:actpass\r\n";
const FP2: &str = "a=fingerprint:sha-256 01:01:01:01:01:01:01:01:01:01:01:01:01:01:01:01:01:01:01:01:01:01:01:01:01:01:01:01:01:01:01:01\r\na=setup:actpass\r\n";
const CRYPTO: &str =
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";

fn sdp_with(lines: &[(&str, u16, &str, &str)]) -> Description {
    let mut body =
        String::from("v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n");
    for (kind, port, proto, extra) in lines {
        let fmt = if *kind == "audio" { "0" } else { "112" };
        body.push_str(&format!(
            "m={kind} {port} {proto} {fmt}\r\na=rtcp-mux\r\n{extra}"
        ));
    }
    sdp::parse(body.as_bytes()).unwrap()
}

/// A DTLS-SRTP endpoint with audio and video.
fn dtls_offer() -> Description {
    sdp_with(&[
        ("audio", 20000, "UDP/TLS/RTP/SAVP", FP),
        ("video", 20002, "UDP/TLS/RTP/SAVP", FP),
    ])
}

/// An SDES endpoint with audio and video.
fn sdes_offer() -> Description {
    sdp_with(&[
        ("audio", 20000, "RTP/SAVP", CRYPTO),
        ("video", 20002, "RTP/SAVP", CRYPTO),
    ])
}

/// A plain RTP endpoint with audio and video.
fn plain_offer() -> Description {
    sdp_with(&[
        ("audio", 20000, "RTP/AVP", ""),
        ("video", 20002, "RTP/AVP", ""),
    ])
}

/// An audio-only DTLS-SRTP call.
fn audio_only_offer() -> Description {
    sdp_with(&[("audio", 20000, "UDP/TLS/RTP/SAVP", FP)])
}

struct Rules {
    security: DeviceSecurity,
    meetings: Vec<(String, Policy, Mode)>,
    on_the_fly: Option<(Policy, Mode)>,
}

impl Rules {
    fn new(security: DeviceSecurity, policy: Policy) -> Self {
        Self {
            security,
            meetings: Vec::new(),
            on_the_fly: Some((policy, Mode::Site)),
        }
    }

    fn rules(&self) -> CallRules<'_> {
        CallRules {
            security: self.security,
            sdes_suites: SUITES,
            meetings: &self.meetings,
            on_the_fly: self.on_the_fly,
            max_lines: 4,
            min_secure_release: Release::parse("1.5"),
        }
    }
}

/// A meeting as call control holds it, run through `decide_incoming` as the driver does.
struct Conference {
    view: Option<MeetingView>,
    /// The next caller's User-Agent.
    user_agent: Option<&'static str>,
}

impl Conference {
    fn new() -> Self {
        Self {
            view: None,
            user_agent: None,
        }
    }

    /// One INVITE; an admission is committed as the driver commits it.
    fn call(
        &mut self,
        rules: &Rules,
        offer: Option<&Description>,
        over_tls: bool,
    ) -> IncomingDecision {
        let d = decide_incoming(
            Incoming {
                number: "4000",
                call_id: "c1@cm",
                offer,
                over_tls,
                user_agent: self.user_agent,
            },
            &rules.rules(),
            self.view.as_ref(),
            7,
        );
        if let IncomingDecision::Admit(a) = &d {
            self.view = Some(MeetingView {
                security: a.security.0.clone(),
                secure: Some(a.meeting_secure),
                locked: false,
            });
        }
        d
    }
}

fn admitted(d: IncomingDecision) -> Admitted {
    match d {
        IncomingDecision::Admit(a) => *a,
        IncomingDecision::Reject(r) => panic!("refused: {r}"),
    }
}

fn refused(d: IncomingDecision) -> Refusal {
    match d {
        IncomingDecision::Reject(r) => r,
        IncomingDecision::Admit(a) => panic!("admitted: {a:?}"),
    }
}

fn encrypted() -> Rules {
    Rules::new(DeviceSecurity::EncryptedWithoutSdpKeys, Policy::BestEffort)
}

fn with_policy(policy: Policy) -> Rules {
    Rules::new(DeviceSecurity::EncryptedWithoutSdpKeys, policy)
}

// T4: Secure.

#[test]
fn secure_meeting_admits_a_secure_endpoint_and_stays_secure() {
    let mut c = Conference::new();
    let a = admitted(c.call(&with_policy(Policy::Secure), Some(&dtls_offer()), true));
    assert_eq!(a.start_meeting, Some((Policy::Secure, Mode::Site)));
    assert!(a.meeting_secure);
    assert!(a.changes.is_empty());
    assert_eq!(a.log, None);
    assert!(!a.needs_downgrade);
    assert!(
        matches!(&a.media, MediaPlan::Answer(k) if k.iter().all(|k| matches!(k, Some(Keying::Dtls { .. }))))
    );
}

#[test]
fn secure_meeting_refuses_a_plain_endpoint_with_488_and_the_seed_line() {
    let mut c = Conference::new();
    admitted(c.call(&with_policy(Policy::Secure), Some(&dtls_offer()), true));
    let r = refused(c.call(&with_policy(Policy::Secure), Some(&plain_offer()), true));
    assert_eq!(r.status(), 488);
    assert_eq!(r.warning().as_deref(), Some("security mismatch"));
    assert_eq!(
        r.seed_line().unwrap().to_string(),
        "Call in state=Connected, call id=c1@cm, conference id = 7 received error from Confmgr with error='security mismatch' during verification of security policy. Num=4000"
    );
    assert_eq!(
        c.view.unwrap().security.state(),
        Some(State::Secure),
        "the meeting stays secure"
    );
}

#[test]
fn secure_meeting_refuses_a_plain_first_endpoint_without_starting() {
    let mut c = Conference::new();
    let r = refused(c.call(&with_policy(Policy::Secure), Some(&plain_offer()), true));
    assert!(matches!(r, Refusal::SecurityMismatch(_)));
    assert!(c.view.is_none(), "no meeting for a refused call");
}

#[test]
fn secure_meeting_admits_an_audio_only_secure_call() {
    // R38's audio-only rule is Best-Effort's: a Secure meeting takes it secure.
    let mut c = Conference::new();
    let a = admitted(c.call(
        &with_policy(Policy::Secure),
        Some(&audio_only_offer()),
        true,
    ));
    assert!(a.meeting_secure && a.changes.is_empty());
}

// T4: Non-Secure.

#[test]
fn non_secure_meeting_admits_a_plain_endpoint_plain() {
    let mut c = Conference::new();
    let a = admitted(c.call(&with_policy(Policy::NonSecure), Some(&plain_offer()), true));
    assert!(!a.meeting_secure);
    assert_eq!(a.changes, vec![MeetingChange::StartNonSecure]);
    assert_eq!(a.log, None);
    assert!(!a.needs_downgrade);
    assert!(
        matches!(&a.media, MediaPlan::Answer(k) if k.iter().all(|k| *k == Some(Keying::Plain)))
    );
}

#[test]
fn non_secure_meeting_holds_a_secure_endpoint_for_a_downgrade() {
    let mut c = Conference::new();
    let a = admitted(c.call(&with_policy(Policy::NonSecure), Some(&dtls_offer()), true));
    assert!(!a.meeting_secure);
    assert!(
        a.needs_downgrade,
        "answered secure, held, re-INVITEd to RTP/AVP"
    );
    assert!(matches!(&a.media, MediaPlan::Answer(k) if matches!(k[0], Some(Keying::Dtls { .. }))));
}

// T4: Best-Effort.

#[test]
fn best_effort_first_secure_endpoint_starts_secure() {
    let mut c = Conference::new();
    let a = admitted(c.call(&encrypted(), Some(&dtls_offer()), true));
    assert!(a.meeting_secure && a.changes.is_empty() && a.log.is_none());
}

#[test]
fn best_effort_first_plain_endpoint_starts_non_secure_with_l4() {
    let mut c = Conference::new();
    let a = admitted(c.call(&encrypted(), Some(&plain_offer()), true));
    assert!(!a.meeting_secure);
    assert_eq!(a.changes, vec![MeetingChange::StartNonSecure]);
    assert_eq!(
        a.log.unwrap().to_string(),
        "Conf Id 7: will start as non-secure"
    );
}

#[test]
fn best_effort_plain_endpoint_downgrades_a_secure_meeting_with_l3() {
    let mut c = Conference::new();
    admitted(c.call(&encrypted(), Some(&dtls_offer()), true));
    let a = admitted(c.call(&encrypted(), Some(&plain_offer()), true));
    assert_eq!(a.start_meeting, None, "the running meeting");
    assert!(!a.meeting_secure);
    assert_eq!(a.changes, vec![MeetingChange::Downgrade]);
    assert_eq!(
        a.log.unwrap().to_string(),
        "Conference Manager Conf Id 7: will downgrade security from secure to non-secure. All existing endpoints will be downgraded to non-secure."
    );
    assert!(!a.needs_downgrade, "the newcomer is plain already");
}

#[test]
fn best_effort_audio_only_call_downgrades_a_secure_meeting() {
    // R38: "an added audio-only call".
    let mut c = Conference::new();
    admitted(c.call(&encrypted(), Some(&dtls_offer()), true));
    let a = admitted(c.call(&encrypted(), Some(&audio_only_offer()), true));
    assert_eq!(a.changes, vec![MeetingChange::Downgrade]);
    assert!(
        a.needs_downgrade,
        "its SRTP is held and re-INVITEd to RTP/AVP"
    );
}

#[test]
fn best_effort_audio_only_first_call_starts_non_secure() {
    let mut c = Conference::new();
    let a = admitted(c.call(&encrypted(), Some(&audio_only_offer()), true));
    assert!(!a.meeting_secure);
    assert_eq!(a.changes, vec![MeetingChange::StartNonSecure]);
    assert!(a.needs_downgrade);
}

#[test]
fn best_effort_never_upgrades_a_non_secure_meeting() {
    let mut c = Conference::new();
    admitted(c.call(&encrypted(), Some(&plain_offer()), true));
    let a = admitted(c.call(&encrypted(), Some(&dtls_offer()), true));
    assert!(!a.meeting_secure);
    assert!(a.changes.is_empty(), "already non-secure");
    assert!(a.needs_downgrade, "admitted as non-secure");
    assert_eq!(a.log, None);
}

#[test]
fn a_meeting_whose_media_runs_the_other_kind_refuses_the_call() {
    // A guard for state that disagrees with the policy's (never mixed, R33).
    let view = MeetingView {
        security: ConferenceSecurity::new(Policy::NonSecure, 3),
        secure: Some(true),
        locked: false,
    };
    let rules = with_policy(Policy::NonSecure);
    let d = decide_incoming(
        Incoming {
            number: "4000",
            call_id: "x",
            offer: Some(&plain_offer()),
            over_tls: true,
            user_agent: None,
        },
        &rules.rules(),
        Some(&view),
        9,
    );
    assert_eq!(refused(d), Refusal::OtherKindOfMedia);
}

#[test]
fn a_locked_meeting_refuses_a_new_caller_with_403() {
    let rules = with_policy(Policy::BestEffort);
    let decide = |locked| {
        let view = MeetingView {
            security: ConferenceSecurity::new(Policy::BestEffort, 3),
            secure: Some(true),
            locked,
        };
        decide_incoming(
            Incoming {
                number: "4000",
                call_id: "x",
                offer: Some(&dtls_offer()),
                over_tls: true,
                user_agent: None,
            },
            &rules.rules(),
            Some(&view),
            9,
        )
    };
    let refusal = refused(decide(true));
    assert_eq!(refusal, Refusal::Locked);
    assert_eq!(refusal.status(), 403);
    assert_eq!(refusal.warning().as_deref(), Some("the meeting is locked"));
    admitted(decide(false));
}

// T6: the Device Security modes.

fn first_keying(rules: &Rules, offer: &Description, over_tls: bool) -> Result<Keying, Refusal> {
    match Conference::new().call(rules, Some(offer), over_tls) {
        IncomingDecision::Admit(a) => match a.media {
            MediaPlan::Answer(k) => Ok(k[0].clone().unwrap()),
            MediaPlan::OfferOurs => panic!("an offer was made"),
        },
        IncomingDecision::Reject(r) => Err(r),
    }
}

#[test]
fn encrypted_without_sdp_keys_takes_dtls_over_tls_only() {
    let rules = encrypted();
    assert!(matches!(
        first_keying(&rules, &dtls_offer(), true),
        Ok(Keying::Dtls { .. })
    ));
    let r = first_keying(&rules, &dtls_offer(), false).unwrap_err();
    assert_eq!(r, Refusal::NotAcceptable(NotAcceptable::NeedsTls));
    assert_eq!(r.status(), 488);
    let r = first_keying(&rules, &sdes_offer(), true).unwrap_err();
    assert_eq!(r, Refusal::NotAcceptable(NotAcceptable::NoFingerprint));
}

#[test]
fn encrypted_with_sdp_keys_takes_sdes_and_refuses_dtls_only() {
    let rules = Rules::new(DeviceSecurity::EncryptedWithSdpKeys, Policy::BestEffort);
    assert!(matches!(
        first_keying(&rules, &sdes_offer(), true),
        Ok(Keying::Sdes(_))
    ));
    assert_eq!(
        first_keying(&rules, &dtls_offer(), true).unwrap_err(),
        Refusal::NotAcceptable(NotAcceptable::NoCrypto)
    );
}

#[test]
fn non_secure_mode_refuses_srtp_and_takes_plain_rtp_over_tcp() {
    let rules = Rules::new(DeviceSecurity::NonSecure, Policy::BestEffort);
    assert_eq!(
        first_keying(&rules, &dtls_offer(), false).unwrap_err(),
        Refusal::NotAcceptable(NotAcceptable::SecureOffered)
    );
    assert_eq!(
        first_keying(&rules, &plain_offer(), false),
        Ok(Keying::Plain)
    );
}

#[test]
fn non_secure_media_encryption_takes_dtls_over_clear_sip_never_sdes() {
    let rules = Rules::new(DeviceSecurity::NonSecureMediaEncryption, Policy::BestEffort);
    assert!(matches!(
        first_keying(&rules, &dtls_offer(), false),
        Ok(Keying::Dtls { .. })
    ));
    // Keys never go in clear SDP (seed 004 l.137).
    assert!(first_keying(&rules, &sdes_offer(), false).is_err());
}

// Delayed offer.

#[test]
fn a_delayed_offer_is_answered_with_ours_in_the_mode_profile() {
    let rules = encrypted();
    let a = admitted(Conference::new().call(&rules, None, true));
    assert_eq!(a.media, MediaPlan::OfferOurs);
    assert!(a.meeting_secure, "the mode's secure media counts");
    assert_eq!(
        session::delayed_offer_profile(rules.security, false),
        Profile::UdpTlsSavp
    );
}

#[test]
fn a_delayed_offer_over_tcp_is_refused_in_an_encrypted_mode() {
    let r = refused(Conference::new().call(&encrypted(), None, false));
    assert_eq!(r, Refusal::NotAcceptable(NotAcceptable::NeedsTls));
    assert_eq!(r.status(), 488);
}

#[test]
fn a_delayed_offer_to_a_non_secure_meeting_offers_plain_rtp() {
    assert_eq!(
        session::delayed_offer_profile(DeviceSecurity::EncryptedWithoutSdpKeys, true),
        Profile::Avp
    );
}

#[test]
fn the_answer_to_a_plain_delayed_offer_is_plain_and_a_refused_line_is_none() {
    let ours = plain_offer();
    let mut answer = plain_offer();
    answer.media[1].port = 0;
    let k = session::delayed_answer_keyings(&ours, &answer, DeviceSecurity::NonSecure, SUITES);
    assert_eq!(k, vec![Some(Keying::Plain), None]);
    assert!(session::offered_plain(&ours));
}

#[test]
fn the_answer_to_a_secure_delayed_offer_is_keyed_by_the_mode() {
    let ours = dtls_offer();
    let answer = dtls_offer();
    let k = session::delayed_answer_keyings(
        &ours,
        &answer,
        DeviceSecurity::EncryptedWithoutSdpKeys,
        SUITES,
    );
    assert!(k.iter().all(|k| matches!(k, Some(Keying::Dtls { .. }))));
    assert!(!session::offered_plain(&ours));
}

// re-INVITE.

/// Our answer to `dtls_offer()`.
fn our_sdp() -> Vec<u8> {
    b"v=0\r\no=- 5 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
m=audio 30000 UDP/TLS/RTP/SAVP 0\r\na=rtcp-mux\r\na=sendrecv\r\n\
m=video 30002 UDP/TLS/RTP/SAVP 112\r\na=rtcp-mux\r\na=sendrecv\r\n"
        .to_vec()
}

#[test]
fn a_reinvite_without_sdp_gets_our_current_sdp_as_the_offer() {
    assert_eq!(
        decide_reoffer(&our_sdp(), Some(&dtls_offer()), None),
        ReofferDecision::OfferCurrent
    );
}

#[test]
fn hold_is_answered_recvonly_and_moves_nothing() {
    let mut hold = dtls_offer();
    hold.media[0].direction = Direction::SendOnly;
    let ReofferDecision::Answer { sdp, moved } =
        decide_reoffer(&our_sdp(), Some(&dtls_offer()), Some(&hold))
    else {
        panic!("not answered")
    };
    assert!(moved.is_empty());
    let answer = sdp::parse(&sdp).unwrap();
    assert_eq!(answer.media[0].direction, Direction::RecvOnly);
    assert_eq!(answer.media[1].direction, Direction::SendRecv);
    assert_eq!(answer.session_version, 2, "o= version up (RFC 3264 §8)");
}

#[test]
fn a_moved_address_redirects_that_line() {
    let mut moved_offer = dtls_offer();
    moved_offer.media[1].port = 21000;
    let ReofferDecision::Answer { moved, .. } =
        decide_reoffer(&our_sdp(), Some(&dtls_offer()), Some(&moved_offer))
    else {
        panic!("not answered")
    };
    let to = |p| SocketAddr::from(([10, 0, 0, 9], p));
    assert_eq!(
        moved,
        vec![MovedLine {
            media: Media::Video,
            rtp: to(21000),
            rtcp: to(21001),
        }]
    );
}

#[test]
fn a_reinvite_with_another_fingerprint_is_refused_and_the_session_goes_on() {
    let rekey = sdp_with(&[
        ("audio", 20000, "UDP/TLS/RTP/SAVP", FP2),
        ("video", 20002, "UDP/TLS/RTP/SAVP", FP),
    ]);
    let d = decide_reoffer(&our_sdp(), Some(&dtls_offer()), Some(&rekey));
    assert_eq!(d, ReofferDecision::Refuse(Refusal::KeyingChanged));
    assert_eq!(Refusal::KeyingChanged.status(), 488);
}

#[test]
fn a_reinvite_from_srtp_to_rtp_is_refused() {
    let d = decide_reoffer(&our_sdp(), Some(&dtls_offer()), Some(&plain_offer()));
    assert_eq!(d, ReofferDecision::Refuse(Refusal::KeyingChanged));
}

#[test]
fn a_reinvite_with_other_lines_is_refused() {
    let one_line = sdp_with(&[("audio", 20000, "UDP/TLS/RTP/SAVP", FP)]);
    let d = decide_reoffer(&our_sdp(), Some(&dtls_offer()), Some(&one_line));
    assert!(matches!(
        d,
        ReofferDecision::Refuse(Refusal::Unanswerable(_))
    ));
}

// Downgrade.

#[test]
fn a_downgrade_answered_with_rtp_avp_joins_plain() {
    let mut answer = plain_offer();
    answer.media[1].port = 0;
    assert_eq!(
        session::downgrade_answer_keyings(&answer),
        Ok(vec![Some(Keying::Plain), None])
    );
}

#[test]
fn a_downgrade_answered_with_srtp_ends_the_call() {
    let mut answer = plain_offer();
    answer.media[1] = dtls_offer().media[1].clone();
    assert_eq!(
        session::downgrade_answer_keyings(&answer),
        Err(Refusal::StillSecure)
    );
}

// Unknown numbers.

#[test]
fn an_unknown_number_makes_a_meeting_on_the_fly_when_configured_to() {
    let a = admitted(Conference::new().call(&encrypted(), Some(&dtls_offer()), true));
    assert_eq!(a.start_meeting, Some((Policy::BestEffort, Mode::Site)));
}

#[test]
fn an_unknown_number_is_refused_with_404_when_configured_to() {
    let mut rules = encrypted();
    rules.on_the_fly = None;
    rules
        .meetings
        .push(("5000".into(), Policy::Secure, Mode::Segment));
    let r = refused(Conference::new().call(&rules, Some(&dtls_offer()), true));
    assert_eq!(r, Refusal::NoSuchMeeting);
    assert_eq!((r.status(), r.warning()), (404, None));
}

#[test]
fn a_configured_number_gets_its_own_policy_and_switching() {
    let mut rules = encrypted();
    rules
        .meetings
        .push(("4000".into(), Policy::Secure, Mode::Segment));
    assert_eq!(
        rules.rules().meeting("4000"),
        Some((Policy::Secure, Mode::Segment))
    );
    assert_eq!(
        rules.rules().meeting("4001"),
        Some((Policy::BestEffort, Mode::Site))
    );
}

// Port exhaustion and the refusal table.

#[test]
fn port_exhaustion_refuses_the_call_with_503() {
    let mut ports = switch::ports::PortAllocator::new(40000..=40000);
    ports.allocate().unwrap();
    let e = crate::join::JoinError::Ports(ports.allocate().unwrap_err());
    let r = Refusal::MediaSetup(SetupFailure::from(&e));
    assert_eq!(r, Refusal::MediaSetup(SetupFailure::PortsExhausted));
    assert_eq!(r.status(), 503);
    assert_eq!(r.warning().as_deref(), Some("no media port left"));
    assert_eq!(r.seed_line(), None);
}

#[test]
fn every_refusal_has_its_status_code() {
    let table = [
        (Refusal::NoSuchMeeting, 404),
        (Refusal::NotAcceptable(NotAcceptable::NeedsTls), 488),
        (Refusal::PlainOfferToSecureMeeting, 488),
        (Refusal::OtherKindOfMedia, 488),
        (
            Refusal::SecurityMismatch(SeedLine::StartNonSecure { conf_id: 1 }),
            488,
        ),
        (Refusal::MediaSetup(SetupFailure::Bind), 503),
        (Refusal::KeyingChanged, 488),
        (Refusal::Unanswerable("x".into()), 488),
        (Refusal::StillSecure, 488),
    ];
    for (r, status) in table {
        assert_eq!(r.status(), status, "{r}");
    }
}

// Seed lines.

#[test]
fn a_line_failure_becomes_its_seed_line() {
    let tip = |failure| {
        SeedLine::from(LineFailure::Tip {
            failure,
            called_num: "4002".into(),
        })
        .to_string()
    };
    assert_eq!(
        tip(TipFailure::MediaTimeout),
        "Media Timeout occurred for call : called num = 4002"
    );
    assert_eq!(
        tip(TipFailure::SpimapTimeout),
        "SPIMAP timeout, Dropping the call"
    );
    let dtls = SeedLine::from(LineFailure::Dtls {
        failure: DtlsFailure::Timeout,
        called_num: "4100".into(),
    });
    assert!(
        dtls.to_string()
            .starts_with("DTLS-SRTP failed for call : called num = 4100"),
        "{dtls}"
    );
}

// Line parameters.

#[test]
fn a_keyed_line_carries_its_mediums_group_key_and_a_plain_one_none() {
    let group = |spi| GroupParams {
        spi,
        salt: [1; 14],
        kek: [2; 16],
    };
    let groups = [group(0x11), group(0x13)];
    let lines = CallLines {
        number: "4000",
        conf_id: 5,
        groups: &groups,
        screens: 3,
        muxctrl_deadline: Duration::from_secs(3),
        spimap_deadline: Duration::from_secs(4),
        ntp_at_start: 99,
    };
    let dtls = Keying::Dtls {
        peer_fingerprint: "sha-256 AB".into(),
        setup: sdp::Setup::Passive,
    };
    let video = lines.config(Media::Video, &dtls, 42);
    assert_eq!(video.group.as_ref().map(|g| g.spi), Some(0x13));
    assert_eq!(
        video.positions, 0b1110,
        "three screens: left, center, right"
    );
    assert_eq!((video.conf_id, video.control_ssrc), (5, 42));
    assert_eq!(video.called_num, "4000");
    assert_eq!(video.muxctrl_deadline, Duration::from_secs(3));
    assert_eq!(video.spimap_deadline, Duration::from_secs(4));
    let audio = lines.config(Media::Audio, &Keying::Plain, 1);
    assert!(
        audio.group.is_none(),
        "no SPIMAP in a non-secure meeting (R33)"
    );
}

#[test]
fn screens_are_three_when_the_video_line_announces_three_sources() {
    let mut offer = dtls_offer();
    assert_eq!(lines::screens(&offer), 1);
    offer.media[1].ssrcs = vec![1, 2, 3];
    assert_eq!(lines::screens(&offer), 3);
}

// Issue 14: a bad offer is refused before anything is made; lines are capped.

#[test]
fn a_malformed_fingerprint_is_refused_with_488_before_anything_is_made() {
    for fp in [
        "a=fingerprint:sha-256 ZZ:ZZ\r\na=setup:actpass\r\n".to_owned(),
        "a=fingerprint:md5 AB:CD\r\na=setup:actpass\r\n".to_owned(),
        format!(
            "a=fingerprint:sha-256 {}\r\na=setup:actpass\r\n",
            "AB:".repeat(5000)
        ),
    ] {
        let offer = sdp_with(&[("audio", 20000, "UDP/TLS/RTP/SAVP", &fp)]);
        let mut c = Conference::new();
        let r = refused(c.call(&encrypted(), Some(&offer), true));
        assert_eq!(
            r,
            Refusal::UnusableOffer(SetupFailure::Fingerprint),
            "{fp:.60}"
        );
        assert_eq!(r.status(), 488);
        assert!(c.view.is_none(), "no meeting was made");
    }
}

#[test]
fn an_sdes_key_of_the_wrong_length_is_refused_with_488() {
    let rules = Rules::new(DeviceSecurity::EncryptedWithSdpKeys, Policy::BestEffort);
    let short = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA=\r\n";
    let offer = sdp_with(&[("audio", 20000, "RTP/SAVP", short)]);
    let r = refused(Conference::new().call(&rules, Some(&offer), true));
    assert_eq!(r, Refusal::UnusableOffer(SetupFailure::Crypto));
    assert_eq!(r.status(), 488);
}

#[test]
fn lines_past_the_cap_are_refused_with_port_0() {
    let many: Vec<(&str, u16, &str, &str)> = (0..100)
        .map(|i| ("audio", 20000 + 2 * i, "UDP/TLS/RTP/SAVP", FP))
        .collect();
    let a = admitted(Conference::new().call(&encrypted(), Some(&sdp_with(&many)), true));
    let MediaPlan::Answer(k) = a.media else {
        panic!("an answer")
    };
    assert_eq!(k.len(), 100, "every m-line is answered");
    assert_eq!(
        k.iter().filter(|k| k.is_some()).count(),
        4,
        "four get a port"
    );
}

#[test]
fn a_media_setup_failure_is_488_for_the_offers_fault_and_503_for_ours() {
    assert_eq!(Refusal::MediaSetup(SetupFailure::Fingerprint).status(), 488);
    assert_eq!(Refusal::MediaSetup(SetupFailure::Crypto).status(), 488);
    assert_eq!(Refusal::MediaSetup(SetupFailure::Bind).status(), 503);
}

#[test]
fn what_a_peer_wrote_reaches_the_log_escaped_and_bounded() {
    let line = SeedLine::SecurityMismatch {
        call_id: "x\u{1b}[31m\nfake=1".into(),
        conf_id: 3,
        number: "4000".into(),
    }
    .to_string();
    assert!(!line.chars().any(char::is_control), "{line}");
    assert!(line.contains("call id=x\\u{1b}[31m\\nfake=1,"), "{line}");
    let long = Untrusted(&"9".repeat(1000)).to_string();
    assert_eq!(long.len(), seed::UNTRUSTED_MAX + 3);
    assert_eq!(Untrusted("4000@cm.example").to_string(), "4000@cm.example");
}

// R37 / T1 L2: a TelePresence endpoint below release 1.5 is non-secure.

#[test]
fn a_secure_meeting_refuses_an_old_release_with_l2_even_when_it_offers_srtp() {
    let mut c = Conference::new();
    admitted(c.call(&with_policy(Policy::Secure), Some(&dtls_offer()), true));
    c.user_agent = Some("Cisco-TelePresence-CTS/1.4.2(35)");
    let r = refused(c.call(&with_policy(Policy::Secure), Some(&dtls_offer()), true));
    assert_eq!(r.status(), 488);
    assert_eq!(
        r.seed_line().unwrap().to_string(),
        "The security property of conference 7 does not allow endpoint c1@cm to join"
    );
    // 1.5 and later are secure; an unknown User-Agent is judged on its offer.
    c.user_agent = Some("CTS/1.5.0");
    admitted(c.call(&with_policy(Policy::Secure), Some(&dtls_offer()), true));
    c.user_agent = Some("baresip v1.0.0");
    admitted(c.call(&with_policy(Policy::Secure), Some(&dtls_offer()), true));
}

#[test]
fn an_old_release_downgrades_a_secure_best_effort_meeting() {
    let mut c = Conference::new();
    admitted(c.call(&encrypted(), Some(&dtls_offer()), true));
    c.user_agent = Some("CTS 1.4");
    let a = admitted(c.call(&encrypted(), Some(&dtls_offer()), true));
    assert_eq!(a.changes, vec![MeetingChange::Downgrade]);
    assert!(
        a.needs_downgrade,
        "its SRTP is held and re-INVITEd to RTP/AVP"
    );
}

#[test]
fn the_release_rule_can_be_turned_off() {
    let rules = with_policy(Policy::Secure);
    let d = decide_incoming(
        Incoming {
            number: "4000",
            call_id: "x",
            offer: Some(&dtls_offer()),
            over_tls: true,
            user_agent: Some("CTS/1.0"),
        },
        &CallRules {
            min_secure_release: None,
            ..rules.rules()
        },
        None,
        1,
    );
    admitted(d);
}

#[test]
fn a_standard_endpoint_is_known_by_its_user_agent_or_by_waiting() {
    use crate::control::lines::standard_detection;
    let marks = vec!["baresip".to_owned(), "linphone".to_owned()];
    let wait = Some(Duration::from_secs(3));
    assert_eq!(
        standard_detection(Some("baresip v1.0.0 (x86_64/linux)"), &marks, wait),
        Some(Duration::ZERO)
    );
    assert_eq!(
        standard_detection(Some("Linphone/5.2 (belle-sip)"), &marks, wait),
        Some(Duration::ZERO)
    );
    assert_eq!(
        standard_detection(Some("TANDBERG/529 (TC7.3.6)"), &marks, wait),
        wait
    );
    assert_eq!(standard_detection(None, &marks, wait), wait);
    assert_eq!(standard_detection(Some("baresip"), &[], None), None);
}

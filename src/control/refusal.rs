//! Why call control refuses a call or a re-offer, and the one table from a refusal to its
//! SIP status code, its Warning text and its seed line (style-anchors.md 13: one place maps
//! errors to the wire).

use sip::security::NotAcceptable;

use super::SeedLine;

/// Why a call's media could not be set up (the driver's socket and keying work failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SetupFailure {
    /// No media port left in the configured range.
    #[error("no media port left")]
    PortsExhausted,
    /// A media socket could not be bound.
    #[error("a media socket could not be bound")]
    Bind,
    /// The offer's fingerprint is not SHA-256 or malformed.
    #[error("unusable a=fingerprint")]
    Fingerprint,
    /// The offer's SDES key is not the suite's length, or the suite is not ours.
    #[error("unusable a=crypto")]
    Crypto,
}

impl From<&crate::join::JoinError> for SetupFailure {
    fn from(e: &crate::join::JoinError) -> Self {
        use crate::join::JoinError;
        match e {
            JoinError::Ports(_) => Self::PortsExhausted,
            JoinError::Bind(_) => Self::Bind,
            JoinError::Fingerprint => Self::Fingerprint,
            JoinError::Crypto => Self::Crypto,
        }
    }
}

/// Why a call (an INVITE) or a re-offer (re-INVITE, UPDATE) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The dialled number is no meeting, and meetings are not made on the fly.
    #[error("no such meeting")]
    NoSuchMeeting,
    /// An operator locked the meeting (R31's in-meeting controls).
    #[error("the meeting is locked")]
    Locked,
    /// The switch is draining: no new call (issue 17; RFC 3261 §21.5.4, with Retry-After).
    #[error("the switch is draining")]
    Draining,
    /// The cluster cannot place the meeting now (etcd unreachable, its owner's record
    /// lapsing, no node with room): 503 with Retry-After (issue 21).
    #[error("the cluster cannot place the meeting now: {0}")]
    ClusterUnavailable(&'static str),
    /// The Device Security mode cannot take the offer (T6), or its transport.
    #[error("offer refused: {0}")]
    NotAcceptable(NotAcceptable),
    /// Plain RTP offered to a meeting whose media is secure (R33: never mixed).
    #[error("a plain offer to a secure meeting")]
    PlainOfferToSecureMeeting,
    /// The meeting's media already runs the other kind of security.
    #[error("the meeting's media is of the other kind")]
    OtherKindOfMedia,
    /// A non-secure endpoint calls a Secure meeting (R36, T1 L1).
    #[error("security mismatch")]
    SecurityMismatch(SeedLine),
    /// The offer's keying cannot be used (a malformed a=fingerprint or a=crypto).
    #[error("unusable offer: {0}")]
    UnusableOffer(SetupFailure),
    /// An endpoint below the secure release calls a Secure meeting (R37, T1 L2).
    #[error("the endpoint's release is below the secure one")]
    ReleaseTooOld(SeedLine),
    /// The media could not be set up.
    #[error("media set-up failed: {0}")]
    MediaSetup(SetupFailure),
    /// A re-offer changes the keying of a running line (another fingerprint or key, SRTP
    /// to RTP): this switch does not re-key a line (RFC 3261 §14.2: the session goes on).
    #[error("a re-offer that changes the media keying")]
    KeyingChanged,
    /// A re-offer that cannot be answered from our SDP (other lines).
    #[error("a re-offer that cannot be answered: {0}")]
    Unanswerable(String),
    /// The answer to our RTP/AVP re-INVITE keeps SRTP: the endpoint cannot stay in the
    /// non-secure meeting.
    #[error("the answer to RTP/AVP keeps SRTP")]
    StillSecure,
}

impl Refusal {
    /// The SIP status code.
    pub fn status(&self) -> u16 {
        match self {
            Self::NoSuchMeeting => 404,
            // RFC 3261 §21.4.4: understood, and refused; not worth repeating.
            Self::Locked => 403,
            Self::Draining | Self::ClusterUnavailable(_) => 503,
            Self::NotAcceptable(_)
            | Self::PlainOfferToSecureMeeting
            | Self::OtherKindOfMedia
            | Self::SecurityMismatch(_)
            | Self::ReleaseTooOld(_)
            | Self::KeyingChanged
            | Self::Unanswerable(_)
            | Self::StillSecure
            | Self::UnusableOffer(_) => 488,
            // The offer's keying turned out unusable while its lines were made.
            Self::MediaSetup(SetupFailure::Fingerprint | SetupFailure::Crypto) => 488,
            Self::MediaSetup(SetupFailure::PortsExhausted | SetupFailure::Bind) => 503,
        }
    }

    /// The text of the response's Warning header, if it gets one.
    pub fn warning(&self) -> Option<String> {
        match self {
            Self::NoSuchMeeting => None,
            Self::NotAcceptable(e) => Some(e.to_string()),
            Self::MediaSetup(f) | Self::UnusableOffer(f) => Some(f.to_string()),
            other => Some(other.to_string()),
        }
    }

    /// The seed's log line for this refusal, where the seed has one.
    pub fn seed_line(&self) -> Option<&SeedLine> {
        match self {
            Self::SecurityMismatch(line) | Self::ReleaseTooOld(line) => Some(line),
            Self::Locked | Self::Draining => None,
            _ => None,
        }
    }
}

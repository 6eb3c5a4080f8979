//! What the admin API asks of the running switch: typed requests from the HTTPS handlers
//! to the call-control loop, each with its reply channel. The loop owns every meeting and
//! call, so reads and actions happen in its order with the SIP and meeting events.

use tokio::sync::oneshot;

use super::certificates::{CertChange, CertChangeError, UnitView};
use super::view::{HealthView, ReadyView, StatusView};
use crate::policy::Policy;
use switch::meeting::switching::Mode;

/// A request from an admin handler.
#[derive(Debug)]
pub enum AdminRequest {
    /// Everything the API shows.
    Status(oneshot::Sender<StatusView>),
    /// An action of an `admin` account (already authenticated and authorised).
    Act(Action, oneshot::Sender<Result<Done, ActionError>>),
    /// Copy the counters kept as atomics into the metrics recorder; answered when done
    /// (the handler renders then).
    Metrics(oneshot::Sender<()>),
    /// Liveness: the call-control loop answers, and the media workers' loops go round.
    Health(oneshot::Sender<HealthView>),
    /// Readiness: whether the switch should get new calls.
    Ready(oneshot::Sender<ReadyView>),
    /// The certificate store's units.
    Certificates(oneshot::Sender<Vec<UnitView>>),
    /// A change to the store by an `admin` account: checked, written, applied to new
    /// connections at once; the units after it.
    ChangeCertificates(
        CertChange,
        oneshot::Sender<Result<Vec<UnitView>, CertChangeError>>,
    ),
}

/// An operator's action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Lock (`true`) or unlock a running meeting: a locked one refuses new callers (403).
    Lock {
        /// The meeting number.
        number: String,
        /// Lock or unlock.
        locked: bool,
    },
    /// Site or segment switching for a running meeting.
    SetSwitching {
        /// The meeting number.
        number: String,
        /// The mode.
        mode: Mode,
    },
    /// End one participant's call (BYE).
    Kick {
        /// The meeting number.
        number: String,
        /// The participant's id.
        participant: u32,
    },
    /// End every call of a running meeting (BYE to all).
    End {
        /// The meeting number.
        number: String,
    },
    /// Create or change a configured meeting (persisted in the data directory).
    PutMeeting {
        /// The meeting number.
        number: String,
        /// Its policy.
        policy: Policy,
        /// Its switching.
        mode: Mode,
    },
    /// Remove a configured meeting (one made through the API).
    DeleteMeeting {
        /// The meeting number.
        number: String,
    },
    /// Stop taking new calls (503); running meetings go on until the drain deadline.
    Drain,
    /// The meeting calls `target` through the trunk (outbound INVITE with our offer).
    DialOut {
        /// The meeting number.
        number: String,
        /// The number dialled (Request-URI user part).
        target: String,
    },
}

impl std::fmt::Display for Action {
    /// The audit log's `action` field.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Lock { number, locked } => {
                write!(f, "{} {number}", if *locked { "lock" } else { "unlock" })
            }
            Self::SetSwitching { number, mode } => write!(f, "switching {number} {mode:?}"),
            Self::Kick {
                number,
                participant,
            } => write!(f, "kick {number}/{participant}"),
            Self::End { number } => write!(f, "end {number}"),
            Self::PutMeeting {
                number,
                policy,
                mode,
            } => write!(f, "put meeting {number} {policy:?} {mode:?}"),
            Self::DeleteMeeting { number } => write!(f, "delete meeting {number}"),
            Self::DialOut { number, target } => write!(f, "dial {target} into {number}"),
            Self::Drain => f.write_str("drain"),
        }
    }
}

/// What an action did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Done {
    /// In words.
    pub result: String,
    /// The SIP Call-ID of a dial-out, or of a kicked call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
}

/// Why an action was not done: each has a stable code for the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// No meeting runs under that number.
    #[error("no meeting {0} is running")]
    NotRunning(String),
    /// The number is no meeting (neither configured nor made on the fly).
    #[error("{0} is no meeting")]
    NoSuchMeeting(String),
    /// No participant with that id in the meeting.
    #[error("meeting {0} has no participant {1}")]
    NoSuchParticipant(String, u32),
    /// The meeting is in the configuration file: change it there.
    #[error("meeting {0} is in the configuration file: change it there")]
    InConfigFile(String),
    /// A meeting number or dialled number that is not 1-32 digits, letters, `.`, `-`, `_`, `+` or `*`.
    #[error("`{0}` is not a valid number")]
    BadNumber(String),
    /// The switch could not do it (ports, trunk, data directory).
    #[error("{0}")]
    Failed(String),
}

impl ActionError {
    /// The API's stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotRunning(_) => "meeting_not_running",
            Self::NoSuchMeeting(_) => "no_such_meeting",
            Self::NoSuchParticipant(..) => "no_such_participant",
            Self::InConfigFile(_) => "in_config_file",
            Self::BadNumber(_) => "bad_number",
            Self::Failed(_) => "failed",
        }
    }

    /// Its HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotRunning(_) | Self::NoSuchMeeting(_) | Self::NoSuchParticipant(..) => 404,
            Self::InConfigFile(_) => 409,
            Self::BadNumber(_) => 400,
            Self::Failed(_) => 500,
        }
    }
}

/// Whether `s` can be a meeting number or a dialled number: the user part of a SIP URI
/// we write (no characters that would need escaping, RFC 3261 §25.1 `unreserved`).
pub fn valid_number(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+' | '*'))
}

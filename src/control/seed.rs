//! The log lines call control writes for an operator, as values: the seed's exact lines
//! (seeds-switch.md T1) and our own for failures the seeds do not name. Their text is in
//! one table, [`SeedLine`]'s `Display`; nothing else formats them.

use switch::dtls::DtlsFailure;
use switch::meeting::LineFailure;
use switch::tip::negotiation::Failure as TipFailure;

/// A line for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedLine {
    /// T1 L1 (seed 002 l.2493): a non-secure endpoint calls a Secure meeting.
    SecurityMismatch {
        /// The call's SIP Call-ID.
        call_id: String,
        /// The meeting's conference id.
        conf_id: u64,
        /// The called number.
        number: String,
    },
    /// T1 L2 (seed 002 l.2494): an endpoint below the secure release calls a Secure
    /// meeting.
    ReleaseTooOld {
        /// The meeting's conference id.
        conf_id: u64,
        /// The endpoint (its call's Call-ID).
        endpoint: String,
    },
    /// T1 L4 (seed 002 l.2496): a Best-Effort meeting's first endpoint is non-secure.
    StartNonSecure {
        /// The meeting's conference id.
        conf_id: u64,
    },
    /// T1 L3 (seed 002 l.2495): a secure Best-Effort meeting is downgraded.
    Downgrade {
        /// The meeting's conference id.
        conf_id: u64,
    },
    /// A line's TIP negotiation missed a deadline: the seed's lines (seed 002 l.2506-2507).
    Tip {
        /// Which deadline.
        failure: TipFailure,
        /// The called number.
        number: String,
    },
    /// A line's DTLS-SRTP association failed (our line: the seeds have none).
    DtlsFailed {
        /// Why.
        failure: DtlsFailure,
        /// The called number.
        number: String,
    },
}

impl From<LineFailure> for SeedLine {
    fn from(f: LineFailure) -> Self {
        match f {
            LineFailure::Tip {
                failure,
                called_num,
            } => Self::Tip {
                failure,
                number: called_num,
            },
            LineFailure::Dtls {
                failure,
                called_num,
            } => Self::DtlsFailed {
                failure,
                number: called_num,
            },
        }
    }
}

/// What a peer wrote (a Call-ID, a dialled number), fit for one log line: control
/// characters and quotes escaped (issue 14: escape sequences and fake fields reached the
/// log), at most [`UNTRUSTED_MAX`] characters.
#[derive(Debug, Clone, Copy)]
pub struct Untrusted<'a>(pub &'a str);

/// The most characters of an untrusted value a log line carries.
pub const UNTRUSTED_MAX: usize = 128;

impl std::fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut chars = self.0.chars();
        for c in chars.by_ref().take(UNTRUSTED_MAX) {
            write!(f, "{}", c.escape_debug())?;
        }
        if chars.next().is_some() {
            f.write_str("...")?;
        }
        Ok(())
    }
}

impl std::fmt::Display for SeedLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SecurityMismatch {
                call_id,
                conf_id,
                number,
            } => {
                let (call_id, number) = (Untrusted(call_id), Untrusted(number));
                write!(
                    f,
                    "Call in state=Connected, call id={call_id}, conference id = {conf_id} received error from Confmgr with error='security mismatch' during verification of security policy. Num={number}"
                )
            }
            Self::ReleaseTooOld { conf_id, endpoint } => {
                let endpoint = Untrusted(endpoint);
                write!(
                    f,
                    "The security property of conference {conf_id} does not allow endpoint {endpoint} to join"
                )
            }
            Self::StartNonSecure { conf_id } => {
                write!(f, "Conf Id {conf_id}: will start as non-secure")
            }
            Self::Downgrade { conf_id } => write!(
                f,
                "Conference Manager Conf Id {conf_id}: will downgrade security from secure to non-secure. All existing endpoints will be downgraded to non-secure."
            ),
            // The TIP lines are the negotiation's own (switch::tip, tested there).
            Self::Tip { failure, number } => {
                f.write_str(&failure.log_line(&Untrusted(number).to_string()))
            }
            Self::DtlsFailed { failure, number } => {
                let number = Untrusted(number);
                write!(
                    f,
                    "DTLS-SRTP failed for call : called num = {number}: {failure:?}"
                )
            }
        }
    }
}

//! Meeting security policy (seeds-switch.md R35-R41, T4), with the seed's exact log lines
//! (T1 L1, L3, L4). Sans-IO: call control asks [`ConferenceSecurity::admit`] for every
//! endpoint that joins and does what the answer says.

pub use crate::control::SeedLine;

/// A meeting's security policy (R35).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Every endpoint must be secure; a non-secure one is refused (R36).
    Secure,
    /// Plain RTP for everyone.
    NonSecure,
    /// Secure while every endpoint is; the first non-secure one downgrades all (R38, R39).
    BestEffort,
}

/// Where a conference's security stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Every leg is SRTP with EKT.
    Secure,
    /// Every leg is plain RTP (R33: never mixed).
    NonSecure,
}

/// What to do with an endpoint that joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Admit it; its media runs as the conference's state says.
    Admit {
        /// The conference's state after it joined.
        state: State,
        /// Every existing endpoint must be downgraded to non-secure (and told by NOTIFY
        /// that the lock icon is gone, R40).
        downgrade_existing: bool,
        /// A line for the log, if the seed has one for this.
        log: Option<SeedLine>,
    },
    /// Refuse it with 488 Not Acceptable Here and this log line.
    Reject {
        /// The seed's line.
        log: SeedLine,
    },
}

/// The security of one conference.
#[derive(Debug, Clone)]
pub struct ConferenceSecurity {
    policy: Policy,
    conf_id: u64,
    state: Option<State>,
}

impl ConferenceSecurity {
    /// A conference with no endpoint yet.
    pub fn new(policy: Policy, conf_id: u64) -> Self {
        Self {
            policy,
            conf_id,
            state: None,
        }
    }

    /// The state; `None` before the first endpoint.
    pub fn state(&self) -> Option<State> {
        self.state
    }

    /// The policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The conference id its log lines carry.
    pub fn conf_id(&self) -> u64 {
        self.conf_id
    }

    /// An endpoint joins: `secure` says whether it offered secure media (and, when the
    /// signalling says so, runs a release that supports it). `call_id` and `num` (the
    /// called number) go into the log lines.
    pub fn admit(&mut self, secure: bool, call_id: &str, num: &str) -> Admission {
        let conf = self.conf_id;
        match (self.policy, secure, self.state) {
            (Policy::Secure, true, _) => self.set(State::Secure, false, None),
            // R36, T1 L1.
            (Policy::Secure, false, _) => Admission::Reject {
                log: SeedLine::SecurityMismatch {
                    call_id: call_id.to_owned(),
                    conf_id: conf,
                    number: num.to_owned(),
                },
            },
            (Policy::NonSecure, _, _) => self.set(State::NonSecure, false, None),
            // R39, T1 L4: a non-secure first endpoint starts the meeting non-secure.
            (Policy::BestEffort, false, None) => self.set(
                State::NonSecure,
                false,
                Some(SeedLine::StartNonSecure { conf_id: conf }),
            ),
            (Policy::BestEffort, true, None | Some(State::Secure)) => {
                self.set(State::Secure, false, None)
            }
            // R38, T1 L3: a non-secure endpoint joining a secure meeting downgrades all.
            (Policy::BestEffort, false, Some(State::Secure)) => self.set(
                State::NonSecure,
                true,
                Some(SeedLine::Downgrade { conf_id: conf }),
            ),
            // T4: no upgrade path once non-secure.
            (Policy::BestEffort, _, Some(State::NonSecure)) => {
                self.set(State::NonSecure, false, None)
            }
        }
    }

    fn set(&mut self, state: State, downgrade_existing: bool, log: Option<SeedLine>) -> Admission {
        self.state = Some(state);
        Admission::Admit {
            state,
            downgrade_existing,
            log,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An admission as text: the seed lines are compared verbatim.
    fn text(a: Admission) -> (Option<State>, bool, Option<String>) {
        match a {
            Admission::Admit {
                state,
                downgrade_existing,
                log,
            } => (Some(state), downgrade_existing, log.map(|l| l.to_string())),
            Admission::Reject { log } => (None, false, Some(log.to_string())),
        }
    }

    fn admit(
        state: State,
        downgrade: bool,
        log: Option<&str>,
    ) -> (Option<State>, bool, Option<String>) {
        (Some(state), downgrade, log.map(str::to_owned))
    }

    #[test]
    fn secure_refuses_a_non_secure_endpoint_with_the_security_mismatch_line() {
        let mut c = ConferenceSecurity::new(Policy::Secure, 42);
        assert_eq!(
            text(c.admit(true, "a@cm", "4000")),
            admit(State::Secure, false, None)
        );
        assert_eq!(
            text(c.admit(false, "b@cm", "4000")),
            (None, false, Some("Call in state=Connected, call id=b@cm, conference id = 42 received error from Confmgr with error='security mismatch' during verification of security policy. Num=4000".into()))
        );
        assert_eq!(c.state(), Some(State::Secure), "the meeting stays secure");
    }

    #[test]
    fn best_effort_starts_non_secure_or_downgrades_everyone_and_never_upgrades() {
        let mut c = ConferenceSecurity::new(Policy::BestEffort, 7);
        assert_eq!(
            text(c.admit(false, "a", "4000")),
            admit(
                State::NonSecure,
                false,
                Some("Conf Id 7: will start as non-secure")
            )
        );
        assert_eq!(
            text(c.admit(true, "b", "4000")),
            admit(State::NonSecure, false, None)
        );

        let mut c = ConferenceSecurity::new(Policy::BestEffort, 8);
        assert_eq!(
            text(c.admit(true, "a", "4000")),
            admit(State::Secure, false, None)
        );
        assert_eq!(
            text(c.admit(true, "b", "4000")),
            admit(State::Secure, false, None)
        );
        assert_eq!(
            text(c.admit(false, "c", "4000")),
            admit(
                State::NonSecure,
                true,
                Some(
                    "Conference Manager Conf Id 8: will downgrade security from secure to non-secure. All existing endpoints will be downgraded to non-secure."
                )
            )
        );
        assert_eq!(
            text(c.admit(true, "d", "4000")),
            admit(State::NonSecure, false, None)
        );
    }

    #[test]
    fn non_secure_admits_everyone_as_non_secure() {
        let mut c = ConferenceSecurity::new(Policy::NonSecure, 9);
        assert_eq!(
            text(c.admit(true, "a", "1")),
            admit(State::NonSecure, false, None)
        );
        assert_eq!(
            text(c.admit(false, "b", "1")),
            admit(State::NonSecure, false, None)
        );
    }
}

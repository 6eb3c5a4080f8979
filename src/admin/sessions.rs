//! Sign-in sessions of the admin API (sans-IO: the caller gives the time and the
//! randomness). A login gets a token, which the page keeps in a `Secure; HttpOnly;
//! SameSite=Strict` cookie and an API client sends as `Authorization: Bearer`, and a CSRF
//! token that a cookie-authenticated change must echo in `X-CSRF-Token`. Only SHA-256 of a
//! token is kept, so the table is no list of live credentials, and a lookup by its hash
//! leaks nothing about the token through timing.

use std::collections::HashMap;

use base64::Engine;
use subtle::ConstantTimeEq;

use super::accounts::Role;

/// How long sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Unused this long (seconds), a session ends.
    pub idle_secs: u64,
    /// A session ends this long (seconds) after its login, used or not.
    pub max_secs: u64,
    /// The most sessions at once; a new one ends the oldest.
    pub max_sessions: usize,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle_secs: 30 * 60,
            max_secs: 12 * 3600,
            max_sessions: 256,
        }
    }
}

/// A live session.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// The account.
    pub user: String,
    /// Its role at login.
    pub role: Role,
    /// The account's credential at login ([`Accounts::credential`](super::accounts::Accounts::credential)).
    pub credential: [u8; 32],
    csrf: [u8; 32],
    created: u64,
    last_used: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The CSRF token is a secret of the signed-in page: never printed.
        f.debug_struct("Session")
            .field("user", &self.user)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        decode(presented).is_some_and(|p| bool::from(p.ct_eq(&self.csrf)))
    }

    /// The CSRF token, for the signed-in page.
    pub fn csrf_token(&self) -> String {
        encode(&self.csrf)
    }
}

/// What a login hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The session token (cookie value or bearer token).
    pub token: String,
    /// The CSRF token.
    pub csrf: String,
}

/// Every live session.
#[derive(Debug, Default)]
pub struct Sessions {
    by_hash: HashMap<[u8; 32], Session>,
    policy: SessionPolicy,
}

fn encode(b: &[u8; 32]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn decode(s: &str) -> Option<[u8; 32]> {
    let v = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.as_bytes())
        .ok()?;
    v.try_into().ok()
}

fn digest(token: &[u8; 32]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl Sessions {
    /// No session yet.
    pub fn new(policy: SessionPolicy) -> Self {
        Self {
            by_hash: HashMap::new(),
            policy,
        }
    }

    /// A session for `user` (signed in as `role` under `credential`) at Unix time `now`,
    /// its token and CSRF token made of `random`.
    pub fn issue(
        &mut self,
        (user, role, credential): (&str, Role, [u8; 32]),
        now: u64,
        random: [u8; 64],
    ) -> Issued {
        self.expire(now);
        while self.by_hash.len() >= self.policy.max_sessions.max(1) {
            let oldest = self
                .by_hash
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(h, _)| *h);
            match oldest {
                Some(h) => self.by_hash.remove(&h),
                None => break,
            };
        }
        let mut token = [0u8; 32];
        let mut csrf = [0u8; 32];
        token.copy_from_slice(&random[..32]);
        csrf.copy_from_slice(&random[32..]);
        self.by_hash.insert(
            digest(&token),
            Session {
                user: user.to_owned(),
                role,
                credential,
                csrf,
                created: now,
                last_used: now,
            },
        );
        Issued {
            token: encode(&token),
            csrf: encode(&csrf),
        }
    }

    /// The session of `token` at `now`, if it lives (its idle time starts again).
    pub fn check(&mut self, token: &str, now: u64) -> Option<Session> {
        let hash = digest(&decode(token)?);
        let policy = self.policy;
        let alive = self.by_hash.get(&hash).is_some_and(|s| {
            now.saturating_sub(s.last_used) < policy.idle_secs
                && now.saturating_sub(s.created) < policy.max_secs
        });
        if !alive {
            self.by_hash.remove(&hash);
            return None;
        }
        let s = self.by_hash.get_mut(&hash)?;
        s.last_used = now;
        Some(s.clone())
    }

    /// Ends the session of `token` (logout).
    pub fn revoke(&mut self, token: &str) {
        if let Some(t) = decode(token) {
            self.by_hash.remove(&digest(&t));
        }
    }

    /// Ends every session of `user` (its password or role changed).
    pub fn revoke_user(&mut self, user: &str) {
        self.by_hash.retain(|_, s| s.user != user);
    }

    /// The rules.
    pub fn policy(&self) -> SessionPolicy {
        self.policy
    }

    /// Live sessions.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// No live session.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    fn expire(&mut self, now: u64) {
        let p = self.policy;
        self.by_hash.retain(|_, s| {
            now.saturating_sub(s.last_used) < p.idle_secs
                && now.saturating_sub(s.created) < p.max_secs
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(n: u8) -> [u8; 64] {
        let mut r = [0u8; 64];
        for (i, b) in r.iter_mut().enumerate() {
            *b = n.wrapping_add(i as u8);
        }
        r
    }

    #[test]
    fn a_token_opens_its_session_until_it_idles_out_or_is_revoked() {
        let mut s = Sessions::new(SessionPolicy {
            idle_secs: 10,
            max_secs: 100,
            max_sessions: 8,
        });
        let issued = s.issue(("ops", Role::Admin, [0; 32]), 1000, random(1));
        let session = s.check(&issued.token, 1005).unwrap();
        assert_eq!((session.user.as_str(), session.role), ("ops", Role::Admin));
        assert!(session.csrf_matches(&issued.csrf));
        assert!(
            !session.csrf_matches(&issued.token),
            "the session token is no CSRF token"
        );
        assert!(!session.csrf_matches(""));
        assert!(
            s.check(&issued.token, 1014).is_some(),
            "use resets the idle time"
        );
        assert!(s.check(&issued.token, 1025).is_none(), "idle 11 s > 10 s");
        assert!(s.check(&issued.token, 1015).is_none(), "gone for good");

        let issued = s.issue(("ops", Role::Admin, [0; 32]), 2000, random(2));
        s.revoke(&issued.token);
        assert!(s.check(&issued.token, 2001).is_none());

        let a = s.issue(("ops", Role::Admin, [0; 32]), 3000, random(3));
        let b = s.issue(("view", Role::Viewer, [0; 32]), 3000, random(4));
        s.revoke_user("ops");
        assert!(s.check(&a.token, 3001).is_none());
        assert!(s.check(&b.token, 3001).is_some());
        assert!(s.check("not base64 !", 3001).is_none());
        assert!(s.check(&encode(&[0; 32]), 3001).is_none());
    }

    #[test]
    fn a_session_ends_at_its_maximum_age_however_used() {
        let mut s = Sessions::new(SessionPolicy {
            idle_secs: 10,
            max_secs: 30,
            max_sessions: 8,
        });
        let issued = s.issue(("ops", Role::Admin, [0; 32]), 0, random(1));
        for t in [9, 18, 27] {
            assert!(s.check(&issued.token, t).is_some());
        }
        assert!(s.check(&issued.token, 30).is_none());
    }

    #[test]
    fn the_table_is_bounded_and_keeps_no_token() {
        let mut s = Sessions::new(SessionPolicy {
            idle_secs: 100,
            max_secs: 100,
            max_sessions: 2,
        });
        let first = s.issue(("a", Role::Viewer, [0; 32]), 1, random(1));
        let _ = s.issue(("b", Role::Viewer, [0; 32]), 2, random(2));
        let third = s.issue(("c", Role::Viewer, [0; 32]), 3, random(3));
        assert_eq!(s.len(), 2);
        assert!(s.check(&first.token, 4).is_none(), "the oldest made room");
        assert!(s.check(&third.token, 4).is_some());
        let dump = format!("{s:?}");
        assert!(!dump.contains(&third.token), "only hashes are kept");
    }
}

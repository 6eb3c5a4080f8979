//! Local accounts (seeds-mgmt.md, R67/R68 "Level 3/4"): a user, a role, an argon2id
//! password hash (PHC string), failed logins and a lockout. Sans-IO: the caller reads and
//! writes the file (`accounts.json` in the data directory), gives the time (Unix seconds)
//! and the salt's randomness.

use std::collections::BTreeMap;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May read and act.
    Admin,
    /// May read.
    Viewer,
}

/// The password policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// The fewest characters a password has.
    pub min_len: usize,
    /// Failed logins in a row that lock an account.
    pub max_failures: u32,
    /// How long a locked account stays locked, seconds.
    pub lockout_secs: u64,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_len: 12,
            max_failures: 5,
            lockout_secs: 300,
        }
    }
}

/// One account as the file keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Account {
    /// What it may do.
    pub role: Role,
    /// argon2id PHC string.
    pub hash: String,
    /// Failed logins in a row.
    #[serde(default)]
    pub failures: u32,
    /// Locked until this Unix time.
    #[serde(default)]
    pub locked_until: Option<u64>,
}

/// Why an account could not be changed or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountsError {
    /// The password is shorter than the policy's minimum.
    #[error("a password needs at least {0} characters")]
    TooShort(usize),
    /// A user name must be 1-64 letters, digits, `.`, `_` or `-`.
    #[error("a user name is 1-64 letters, digits, '.', '_' or '-'")]
    BadUser,
    /// The file does not parse.
    #[error("accounts file: {0}")]
    File(String),
    /// Hashing failed.
    #[error("password hashing: {0}")]
    Hash(String),
}

/// Why a login failed. The caller answers all of them the same way (no user enumeration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// Wrong user or password.
    #[error("wrong user or password")]
    Wrong,
    /// Locked until the given Unix time (too many failures).
    #[error("locked until {0}")]
    Locked(u64),
}

/// Every account, by user name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounts {
    accounts: BTreeMap<String, Account>,
    policy: PasswordPolicy,
}

fn valid_user(user: &str) -> bool {
    (1..=64).contains(&user.len())
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl Accounts {
    /// No account yet, with `policy`.
    pub fn new(policy: PasswordPolicy) -> Self {
        Self {
            accounts: BTreeMap::new(),
            policy,
        }
    }

    /// From the file's JSON.
    pub fn from_json(json: &str, policy: PasswordPolicy) -> Result<Self, AccountsError> {
        let accounts: BTreeMap<String, Account> =
            serde_json::from_str(json).map_err(|e| AccountsError::File(e.to_string()))?;
        if let Some(bad) = accounts.keys().find(|u| !valid_user(u)) {
            return Err(AccountsError::File(format!("bad user name {bad:?}")));
        }
        Ok(Self { accounts, policy })
    }

    /// The file's JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.accounts).unwrap_or_else(|_| "{}".into())
    }

    /// Whether there is no account (the first start makes an admin).
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// An account's role.
    pub fn role(&self, user: &str) -> Option<Role> {
        self.accounts.get(user).map(|a| a.role)
    }

    /// What a session of `user` was signed in under: a digest of its role and password
    /// hash. A session whose account's credential changed since (a new password, another
    /// role, the account gone) ends.
    pub fn credential(&self, user: &str) -> Option<[u8; 32]> {
        let a = self.accounts.get(user)?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&[a.role as u8]);
        ctx.update(a.hash.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        Some(out)
    }

    /// Sets `user`'s password and role (creating the account), hashed with argon2id and
    /// `salt` (16 random bytes from the caller). The failures and the lockout are reset.
    pub fn set_password(
        &mut self,
        user: &str,
        role: Role,
        password: &str,
        salt: [u8; 16],
    ) -> Result<(), AccountsError> {
        if !valid_user(user) {
            return Err(AccountsError::BadUser);
        }
        if password.chars().count() < self.policy.min_len {
            return Err(AccountsError::TooShort(self.policy.min_len));
        }
        let salt = SaltString::encode_b64(&salt).map_err(|e| AccountsError::Hash(e.to_string()))?;
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| AccountsError::Hash(e.to_string()))?
            .to_string();
        self.accounts.insert(
            user.to_owned(),
            Account {
                role,
                hash,
                failures: 0,
                locked_until: None,
            },
        );
        Ok(())
    }

    /// A login at Unix time `now`: the role, or why not. A wrong password counts a
    /// failure; the policy's count of them locks the account for its lockout time; a
    /// success resets the count. An unknown user costs a hash too (no timing oracle).
    pub fn login(&mut self, user: &str, password: &str, now: u64) -> Result<Role, LoginError> {
        let Some(a) = self.accounts.get_mut(user) else {
            // The same work as a real check, against a fixed hash.
            let _ = verify(DUMMY_HASH, password);
            return Err(LoginError::Wrong);
        };
        if let Some(until) = a.locked_until {
            if now < until {
                return Err(LoginError::Locked(until));
            }
            a.locked_until = None;
            a.failures = 0;
        }
        if verify(&a.hash, password) {
            a.failures = 0;
            return Ok(a.role);
        }
        a.failures += 1;
        if a.failures >= self.policy.max_failures {
            let until = now + self.policy.lockout_secs;
            a.locked_until = Some(until);
            return Err(LoginError::Locked(until));
        }
        Err(LoginError::Wrong)
    }
}

/// A valid argon2id hash of nothing anyone knows, for unknown users.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$Vt3ZCJw7qtMGRMq6s1XdqdxXSMk9ewQ7CjYHnLVA2cQ";

/// argon2's own verification (its tag comparison is constant-time).
fn verify(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &str = "correct horse battery";

    #[test]
    fn a_password_is_kept_as_an_argon2id_hash_and_checked() {
        let mut a = Accounts::new(PasswordPolicy::default());
        a.set_password("ops", Role::Admin, PASSWORD, [7; 16])
            .unwrap();
        let json = a.to_json();
        assert!(json.contains("$argon2id$"), "{json}");
        assert!(!json.contains(PASSWORD), "never the password itself");
        let mut a = Accounts::from_json(&json, PasswordPolicy::default()).unwrap();
        assert_eq!(a.login("ops", PASSWORD, 1000), Ok(Role::Admin));
        assert_eq!(
            a.login("ops", "wrong password!", 1000),
            Err(LoginError::Wrong)
        );
        assert_eq!(a.login("nobody", PASSWORD, 1000), Err(LoginError::Wrong));
    }

    #[test]
    fn the_policy_refuses_short_passwords_and_bad_names() {
        let mut a = Accounts::new(PasswordPolicy::default());
        assert_eq!(
            a.set_password("ops", Role::Viewer, "short", [1; 16]),
            Err(AccountsError::TooShort(12))
        );
        assert_eq!(
            a.set_password("o ps", Role::Viewer, PASSWORD, [1; 16]),
            Err(AccountsError::BadUser)
        );
        assert!(a.is_empty());
        assert!(Accounts::from_json("not json", PasswordPolicy::default()).is_err());
    }

    #[test]
    fn failures_lock_an_account_for_the_lockout_and_a_success_resets_them() {
        let policy = PasswordPolicy {
            max_failures: 3,
            lockout_secs: 60,
            ..PasswordPolicy::default()
        };
        let mut a = Accounts::new(policy);
        a.set_password("ops", Role::Viewer, PASSWORD, [2; 16])
            .unwrap();
        assert_eq!(
            a.login("ops", "bad password 1", 100),
            Err(LoginError::Wrong)
        );
        assert_eq!(a.login("ops", PASSWORD, 101), Ok(Role::Viewer), "reset");
        for t in 0..2 {
            assert_eq!(
                a.login("ops", "bad password 2", 102 + t),
                Err(LoginError::Wrong)
            );
        }
        assert_eq!(
            a.login("ops", "bad password 3", 104),
            Err(LoginError::Locked(164))
        );
        assert_eq!(
            a.login("ops", PASSWORD, 150),
            Err(LoginError::Locked(164)),
            "even the right password while locked"
        );
        assert_eq!(
            a.login("ops", PASSWORD, 164),
            Ok(Role::Viewer),
            "after the lockout"
        );
    }

    #[test]
    fn the_dummy_hash_parses() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(!verify(DUMMY_HASH, PASSWORD));
    }
}

//! The accounts file and the audit log in the data directory: the effects around
//! [`super::accounts`] (which decides) for the CLI now and the HTTPS API later.

use std::path::{Path, PathBuf};

use super::accounts::{Accounts, AccountsError, PasswordPolicy, Role};
use super::audit::{self, AuditEntry};

/// The accounts file in the data directory.
pub const ACCOUNTS: &str = "accounts.json";
/// The audit log in the data directory.
pub const AUDIT: &str = "audit.log";

/// Why a change to the accounts failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The accounts refused it (policy, name, file content).
    #[error(transparent)]
    Accounts(#[from] AccountsError),
    /// The data directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The accounts of `data_dir` (none when the file does not exist yet).
pub fn load(data_dir: &Path) -> Result<Accounts, StoreError> {
    load_with(data_dir, PasswordPolicy::default())
}

/// [`load`] with `policy`.
pub fn load_with(data_dir: &Path, policy: PasswordPolicy) -> Result<Accounts, StoreError> {
    let path = data_dir.join(ACCOUNTS);
    match std::fs::read_to_string(&path) {
        Ok(json) => Ok(Accounts::from_json(&json, policy)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Accounts::new(policy)),
        Err(e) => Err(io(&path)(e)),
    }
}

/// Writes the accounts (mode 0600, through a temporary file and a rename: never half
/// written).
pub fn save(data_dir: &Path, accounts: &Accounts) -> Result<(), StoreError> {
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    let path = data_dir.join(ACCOUNTS);
    let tmp = data_dir.join(format!("{ACCOUNTS}.tmp"));
    std::fs::write(&tmp, accounts.to_json()).map_err(io(&tmp))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(io(&path))
}

/// Sets `user`'s password and role in `data_dir` at Unix time `now`, with the audit
/// entry (`by` whom, `from` where) written whatever the result.
pub fn set_password(
    data_dir: &Path,
    user: &str,
    role: Role,
    password: &str,
    (by, from, now): (&str, &str, u64),
) -> Result<(), StoreError> {
    let result = (|| {
        let mut accounts = load(data_dir)?;
        let mut salt = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
            .map_err(|_| AccountsError::Hash("the system RNG failed".into()))?;
        accounts.set_password(user, role, password, salt)?;
        save(data_dir, &accounts)
    })();
    let entry = AuditEntry {
        at: now,
        user: by.to_owned(),
        from: from.to_owned(),
        action: format!("passwd {user} ({role:?})"),
        result: match &result {
            Ok(()) => "ok".into(),
            Err(e) => e.to_string(),
        },
    };
    let audit_path = data_dir.join(AUDIT);
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    audit::append(&audit_path, &entry).map_err(io(&audit_path))?;
    result
}

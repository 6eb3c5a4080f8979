//! What every admin handler shares: the accounts, the sessions, the data directory (for
//! the accounts file and the audit log) and the way to the call-control loop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;

use tokio::sync::mpsc;

use crate::admin::accounts::{Accounts, PasswordPolicy};
use crate::admin::audit::{self, AuditEntry};
use crate::admin::request::AdminRequest;
use crate::admin::sessions::Sessions;
use crate::admin::store;

/// The accounts as last read from `accounts.json`: `mswitch admin passwd` changes the file
/// while the switch runs, and the file is what counts (read again when it changed, looked
/// at no more than once a second).
#[derive(Debug)]
pub struct AccountsCache {
    accounts: Accounts,
    policy: PasswordPolicy,
    modified: Option<std::time::SystemTime>,
    looked: Option<std::time::Instant>,
}

impl AccountsCache {
    /// As loaded at start.
    pub fn new(accounts: Accounts, policy: PasswordPolicy) -> Self {
        Self {
            accounts,
            policy,
            modified: None,
            looked: None,
        }
    }
}

/// The shared state.
#[derive(Debug)]
pub struct AdminState {
    /// The accounts (their failure counts change at every login).
    pub accounts: Mutex<AccountsCache>,
    /// Live sessions.
    pub sessions: Mutex<Sessions>,
    /// accounts.json and audit.log live here.
    pub data_dir: PathBuf,
    /// The call-control loop.
    pub app: mpsc::Sender<AdminRequest>,
    /// The node's name (`[tls] subject`): a certificate request's default CN.
    pub node_name: String,
}

/// Unix time now, seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// 64 bytes from the system RNG.
pub fn random64() -> Option<[u8; 64]> {
    let mut r = [0u8; 64];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut r).ok()?;
    Some(r)
}

impl AdminState {
    /// Appends an audit entry; a failure to write it is logged (the action stands: it
    /// already happened).
    pub fn audit(&self, user: &str, from: SocketAddr, action: &str, result: &str) {
        let entry = AuditEntry {
            at: unix_now(),
            user: user.to_owned(),
            from: from.to_string(),
            action: action.to_owned(),
            result: result.to_owned(),
        };
        let path = self.data_dir.join(store::AUDIT);
        if let Err(e) = audit::append(&path, &entry) {
            tracing::error!("audit log {}: {e}", path.display());
        }
    }

    /// Runs `f` on the accounts as the file now has them; with `save`, writes them back
    /// after (a login changes failure counts and lockouts). `None` if the lock is poisoned.
    pub fn with_accounts<R>(&self, save: bool, f: impl FnOnce(&mut Accounts) -> R) -> Option<R> {
        let mut cache = self.accounts.lock().ok()?;
        let path = self.data_dir.join(store::ACCOUNTS);
        let stale = cache
            .looked
            .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1));
        if stale || save {
            cache.looked = Some(std::time::Instant::now());
            let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            if modified != cache.modified {
                match store::load_with(&self.data_dir, cache.policy) {
                    Ok(a) => {
                        cache.accounts = a;
                        cache.modified = modified;
                    }
                    Err(e) => tracing::error!("accounts file: {e} (the accounts read before stay)"),
                }
            }
        }
        let r = f(&mut cache.accounts);
        if save {
            if let Err(e) = store::save(&self.data_dir, &cache.accounts) {
                tracing::error!("accounts file: {e}");
            }
            cache.modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        }
        Some(r)
    }
}

//! What every admin handler shares: the accounts, the sessions, the data directory (for
//! the accounts file and the audit log) and the way to the call-control loop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;

use tokio::sync::mpsc;

use crate::admin::accounts::Accounts;
use crate::admin::audit::{self, AuditEntry};
use crate::admin::request::AdminRequest;
use crate::admin::sessions::Sessions;
use crate::admin::store;

/// The shared state.
#[derive(Debug)]
pub struct AdminState {
    /// The accounts (their failure counts change at every login).
    pub accounts: Mutex<Accounts>,
    /// Live sessions.
    pub sessions: Mutex<Sessions>,
    /// accounts.json and audit.log live here.
    pub data_dir: PathBuf,
    /// The call-control loop.
    pub app: mpsc::Sender<AdminRequest>,
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

    /// Writes the accounts file after a login changed failure counts or a lockout.
    pub fn save_accounts(&self, accounts: &Accounts) {
        if let Err(e) = store::save(&self.data_dir, accounts) {
            tracing::error!("accounts file: {e}");
        }
    }
}

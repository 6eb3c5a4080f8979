//! Limits on stream connections (TCP and TLS): how many one trunk peer's address and all
//! of them together may hold open, and how long a connection may take to handshake, sit
//! idle or hold a half-sent message (issue 14: 500 half-sent ClientHellos were held 60 s,
//! idle and half-open connections were never closed).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Connections one address may hold open (Unified CM opens one per direction and node).
pub const PER_ADDRESS: usize = 16;
/// Connections all addresses together may hold open.
pub const TOTAL: usize = 256;
/// Time for a TLS handshake (a real peer on a LAN needs milliseconds).
pub const TLS_HANDSHAKE: Duration = Duration::from_secs(10);
/// Time a message may take to arrive whole once its first bytes came.
pub const PARTIAL_MESSAGE: Duration = Duration::from_secs(30);
/// Time a connection may stay open without carrying its first SIP message (keep-alives do
/// not count): a connection that never carries one is no trunk's. One that has carried a
/// message stays while its peer keeps it, within the caps.
pub const IDLE: Duration = Duration::from_secs(120);

/// How often the peer certificates of open TLS connections are checked again (seed 004:
/// long-lived connections are re-checked; one whose peer certificate expired closes once
/// no call uses it).
pub const CERTIFICATE_RECHECK: Duration = Duration::from_secs(60);

/// The limits of one trunk's stream connections (the constants above by default; tests
/// shorten them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Connections one address may hold open.
    pub per_address: usize,
    /// Connections all addresses together may hold open.
    pub total: usize,
    /// Time for a TLS handshake.
    pub tls_handshake: Duration,
    /// Time for a message to arrive whole once its first bytes came.
    pub partial_message: Duration,
    /// Time a connection may stay open without carrying its first message.
    pub idle: Duration,
    /// How often open TLS connections' peer certificates are checked again.
    pub certificate_recheck: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            per_address: PER_ADDRESS,
            total: TOTAL,
            tls_handshake: TLS_HANDSHAKE,
            partial_message: PARTIAL_MESSAGE,
            idle: IDLE,
            certificate_recheck: CERTIFICATE_RECHECK,
        }
    }
}

/// Why a connection was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitHit {
    /// The address holds as many connections as it may.
    #[error("this address already holds as many SIP connections as it may")]
    PerAddress,
    /// As many connections as the switch takes are open.
    #[error("as many SIP connections as the switch takes are open")]
    Total,
}

/// Open connections by address, shared by the accept loop and the connections' tasks.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    per_address: usize,
    total: usize,
}

/// One open connection; dropping it (the connection's task ends) frees its place.
#[derive(Debug)]
pub struct ConnectionSlot {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl ConnectionLimits {
    /// Counts against `limits`.
    pub fn new(limits: &StreamLimits) -> Self {
        Self {
            open: Arc::default(),
            per_address: limits.per_address,
            total: limits.total,
        }
    }

    /// A place for a connection from `ip`, if the limits allow one.
    pub fn try_open(&self, ip: IpAddr) -> Result<ConnectionSlot, LimitHit> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if open.values().sum::<usize>() >= self.total {
            return Err(LimitHit::Total);
        }
        let n = open.entry(ip).or_insert(0);
        if *n >= self.per_address {
            return Err(LimitHit::PerAddress);
        }
        *n += 1;
        Ok(ConnectionSlot {
            open: self.open.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .sum()
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_and_the_whole_switch_have_their_limits_and_places_come_back() {
        let limits = ConnectionLimits::new(&StreamLimits::default());
        let a: IpAddr = [10, 0, 0, 2].into();
        let held: Vec<_> = (0..PER_ADDRESS)
            .map(|_| limits.try_open(a).unwrap())
            .collect();
        assert_eq!(limits.try_open(a).unwrap_err(), LimitHit::PerAddress);
        drop(held);
        assert_eq!(limits.open(), 0);
        let many: Vec<_> = (0..TOTAL)
            .map(|i| {
                limits
                    .try_open([10, 1, (i / 200) as u8, (i % 200) as u8].into())
                    .unwrap()
            })
            .collect();
        assert_eq!(limits.try_open(a).unwrap_err(), LimitHit::Total);
        drop(many);
        assert!(limits.try_open(a).is_ok());
    }
}

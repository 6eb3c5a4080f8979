//! A meeting's media stops by itself when the cluster lease it was claimed under can no
//! longer be trusted (issue 21). A node that cannot renew its lease must stop serving its
//! meetings before etcd lets another node claim them. Call control ends the calls, but a
//! node that was paused (SIGSTOP, a stalled VM) resumes with every thread at once: its
//! workers would forward what queued in the sockets before call control's BYEs got out.
//! So a fenced meeting carries its lease's deadline into the worker, which drops the
//! meeting, legs and all, the first time it wakes past it, before reading a socket.
//!
//! Sans-IO like the rest of this crate: the driver that renews the lease says until when
//! it holds; the worker asks with its own clock's `now`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Until when the meetings claimed under one lease may be served. One per lease: a node
/// that joins again gets a new fence, and the old one stays expired.
#[derive(Debug)]
pub struct LeaseFence {
    base: Instant,
    /// Nanoseconds after `base`.
    until_ns: AtomicU64,
}

impl LeaseFence {
    /// A fence holding until `until`; `base` is any earlier instant (times are kept as
    /// nanoseconds after it).
    pub fn new(base: Instant, until: Instant) -> Self {
        let fence = Self {
            base,
            until_ns: AtomicU64::new(0),
        };
        fence.hold_until(until);
        fence
    }

    /// The lease was renewed: the fence holds until `until` now (also earlier than
    /// before: the lease may have come back shorter).
    pub fn hold_until(&self, until: Instant) {
        let ns = until.saturating_duration_since(self.base).as_nanos();
        self.until_ns
            .store(u64::try_from(ns).unwrap_or(u64::MAX), Ordering::Release);
    }

    /// Whether the meetings under this fence must stop at `now`.
    pub fn expired(&self, now: Instant) -> bool {
        let ns = now.saturating_duration_since(self.base).as_nanos();
        u64::try_from(ns).unwrap_or(u64::MAX) >= self.until_ns.load(Ordering::Acquire)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // the test plays the driver: it reads the clock
mod tests {
    use std::time::Duration;

    use super::LeaseFence;

    #[test]
    fn a_fence_holds_until_its_deadline_and_moves_with_renewals() {
        let base = std::time::Instant::now() - Duration::from_secs(10);
        let t = |s: u64| base + Duration::from_secs(s);
        let f = LeaseFence::new(base, t(5));
        assert!(!f.expired(t(4)));
        assert!(f.expired(t(5)), "at the deadline it no longer holds");
        f.hold_until(t(8));
        assert!(!f.expired(t(7)));
        assert!(f.expired(t(9)));
        // A deadline before the base: expired from the start.
        let early = LeaseFence::new(t(3), t(1));
        assert!(early.expired(t(3)));
    }
}

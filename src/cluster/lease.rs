//! When a node must give its meetings up: the rule that keeps two nodes from serving one
//! meeting (issue 21). etcd expires a lease `ttl` after the last renewal it saw; another
//! node can claim the meeting only then. So a node that has not renewed ends its meetings
//! (BYE to every call) before that moment: `ttl` after it *sent* its last successful
//! renewal (etcd saw it later, never earlier), less a margin for the BYEs and for clocks.
//! Pure: times in, a [`LeaseState`] out; the driver renews and acts.

use std::time::{Duration, Instant};

/// What the driver does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// Nothing until [`LeaseWatch::next_wake`].
    Healthy,
    /// Time to renew (a third of the TTL since the last renewal went out).
    Renew,
    /// No renewal got through in time: end every meeting now, before the lease can lapse
    /// and another node claim them.
    GiveUp,
}

/// A node's lease, as the node knows it.
#[derive(Debug, Clone, Copy)]
pub struct LeaseWatch {
    ttl: Duration,
    /// When the last renewal that etcd acknowledged was sent.
    renewed_at: Instant,
    given_up: bool,
}

impl LeaseWatch {
    /// A lease of `ttl` granted by a request sent at `sent_at`.
    pub fn new(ttl: Duration, sent_at: Instant) -> Self {
        Self {
            ttl,
            renewed_at: sent_at,
            given_up: false,
        }
    }

    /// The margin kept before the lease could lapse: a fifth of the TTL, at least 500 ms
    /// (the BYEs go out, and the two clocks may run at slightly different rates).
    pub fn margin(&self) -> Duration {
        (self.ttl / 5)
            .max(Duration::from_millis(500))
            .min(self.ttl / 2)
    }

    /// The moment the meetings must have ended by.
    pub fn deadline(&self) -> Instant {
        self.renewed_at + self.ttl - self.margin()
    }

    /// A renewal sent at `sent_at` was acknowledged at `acked_at` with `ttl` (etcd may say
    /// less than was asked). After a give-up the meetings are gone; a renewal does not
    /// bring them back. Nor does one acknowledged past the deadline: by then the media
    /// workers may have dropped the meetings (their fence is the same deadline), so the
    /// node gives up and joins again rather than serve half a meeting.
    pub fn renewed(&mut self, sent_at: Instant, acked_at: Instant, ttl: Duration) {
        if acked_at >= self.deadline() {
            self.given_up = true;
            return;
        }
        if sent_at > self.renewed_at {
            self.renewed_at = sent_at;
            self.ttl = ttl;
        }
    }

    /// Whether the node gave its meetings up (it must join again, with a new lease).
    pub fn given_up(&self) -> bool {
        self.given_up
    }

    /// What to do at `now`.
    pub fn poll(&mut self, now: Instant) -> LeaseState {
        if self.given_up || now >= self.deadline() {
            self.given_up = true;
            return LeaseState::GiveUp;
        }
        if now >= self.renewed_at + self.ttl / 3 {
            LeaseState::Renew
        } else {
            LeaseState::Healthy
        }
    }

    /// When to look again (the next renewal, or the deadline while renewals fail).
    pub fn next_wake(&self, now: Instant) -> Instant {
        let renew = self.renewed_at + self.ttl / 3;
        if renew > now {
            renew
        } else {
            // Renewing: retry soon, but never sleep past the deadline.
            (now + Duration::from_millis(250)).min(self.deadline())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewals_keep_the_meetings_and_a_silent_etcd_ends_them_before_the_lease_lapses() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(5);
        let mut w = LeaseWatch::new(ttl, t0);
        assert_eq!(w.poll(t0 + Duration::from_secs(1)), LeaseState::Healthy);
        assert_eq!(w.poll(t0 + Duration::from_millis(1700)), LeaseState::Renew);
        // Renewed (the request went out at 1.7 s): healthy again.
        w.renewed(
            t0 + Duration::from_millis(1700),
            t0 + Duration::from_millis(1710),
            ttl,
        );
        assert_eq!(w.poll(t0 + Duration::from_secs(2)), LeaseState::Healthy);
        // etcd answers no more: renew, renew, then give up 1 s (a fifth) before the lease
        // could lapse at 6.7 s.
        assert_eq!(w.poll(t0 + Duration::from_secs(4)), LeaseState::Renew);
        assert_eq!(w.deadline(), t0 + Duration::from_millis(5700));
        assert!(w.next_wake(t0 + Duration::from_millis(5600)) <= w.deadline());
        assert_eq!(w.poll(t0 + Duration::from_millis(5699)), LeaseState::Renew);
        assert_eq!(w.poll(t0 + Duration::from_millis(5700)), LeaseState::GiveUp);
        // A late acknowledgement does not bring the meetings back.
        w.renewed(
            t0 + Duration::from_millis(5650),
            t0 + Duration::from_millis(5800),
            ttl,
        );
        assert_eq!(w.poll(t0 + Duration::from_secs(6)), LeaseState::GiveUp);
        assert!(w.given_up());
    }

    #[test]
    fn an_old_acknowledgement_never_moves_the_deadline_back_and_short_ttls_keep_a_margin() {
        let t0 = Instant::now();
        let mut w = LeaseWatch::new(Duration::from_secs(5), t0);
        let at = |s| t0 + Duration::from_secs(s);
        w.renewed(at(2), at(2), Duration::from_secs(5));
        w.renewed(at(1), at(3), Duration::from_secs(5));
        assert_eq!(w.deadline(), t0 + Duration::from_secs(6));
        let short = LeaseWatch::new(Duration::from_secs(1), t0);
        assert_eq!(short.margin(), Duration::from_millis(500));
        assert_eq!(short.deadline(), t0 + Duration::from_millis(500));
        // etcd granted less than asked: the deadline follows what it granted.
        w.renewed(at(3), at(3), Duration::from_secs(2));
        assert_eq!(w.deadline(), t0 + Duration::from_millis(4500));
    }

    #[test]
    fn a_renewal_acknowledged_past_the_deadline_gives_up() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(5);
        let mut w = LeaseWatch::new(ttl, t0);
        // Sent before the deadline (4 s), acknowledged after it: the media workers' fence
        // may have fired meanwhile; the meetings are given up, not extended.
        w.renewed(
            t0 + Duration::from_millis(3900),
            t0 + Duration::from_secs(4),
            ttl,
        );
        assert!(w.given_up());
        assert_eq!(w.poll(t0 + Duration::from_millis(4100)), LeaseState::GiveUp);
    }
}

//! One log line per interval for a warning that a peer can repeat at will (a stranger's
//! connections, refused connections), carrying how many were not logged since: the log
//! says what happens without letting anyone flood it (issue 14).

use std::time::{Duration, Instant};

/// At most one line per [`Throttle::INTERVAL`].
#[derive(Debug, Default)]
pub struct Throttle {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// One line a second at most.
    pub const INTERVAL: Duration = Duration::from_secs(1);

    /// Whether to log now; `Some(n)` with the occurrences not logged before this one.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < Self::INTERVAL)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
// Test code: it plays the driver and reads the clock.
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_one_line_a_second_with_its_count() {
        let t0 = Instant::now();
        let mut t = Throttle::default();
        assert_eq!(t.allow(t0), Some(0));
        for i in 0..1000 {
            assert_eq!(t.allow(t0 + Duration::from_micros(i)), None);
        }
        assert_eq!(t.allow(t0 + Throttle::INTERVAL), Some(1000));
        assert_eq!(t.allow(t0 + Throttle::INTERVAL), None);
    }
}

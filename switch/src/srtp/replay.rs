//! Replay protection with a sliding window (RFC 3711 §3.3.2). The window is 128 packets,
//! above the 64 RFC 3711 §3.3.2 requires as a minimum.

/// Window size in packets.
pub const WINDOW: u64 = 128;

/// Why an index was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// Already received.
    Duplicate,
    /// Older than the window.
    TooOld,
}

/// A sliding replay window over packet indices (SRTP 48-bit, SRTCP 31-bit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    highest: Option<u64>,
    /// Bit i set: `highest - i` was received.
    seen: u128,
}

impl ReplayWindow {
    /// An empty window.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks `index` without recording it: call before authenticating, and
    /// [`ReplayWindow::accept`] after.
    pub fn check(&self, index: u64) -> Result<(), ReplayError> {
        let Some(h) = self.highest else { return Ok(()) };
        if index > h {
            return Ok(());
        }
        let delta = h - index;
        if delta >= WINDOW {
            Err(ReplayError::TooOld)
        } else if self.seen >> delta & 1 == 1 {
            Err(ReplayError::Duplicate)
        } else {
            Ok(())
        }
    }

    /// Records an authenticated index.
    pub fn accept(&mut self, index: u64) {
        match self.highest {
            None => {
                self.highest = Some(index);
                self.seen = 1;
            }
            Some(h) if index > h => {
                let shift = index - h;
                self.seen = if shift >= WINDOW {
                    0
                } else {
                    self.seen << shift
                };
                self.seen |= 1;
                self.highest = Some(index);
            }
            Some(h) => {
                let delta = h - index;
                if delta < WINDOW {
                    self.seen |= 1 << delta;
                }
            }
        }
    }

    /// The highest index recorded.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn duplicates_and_old_packets_are_refused() {
        let mut w = ReplayWindow::new();
        w.accept(1000);
        assert_eq!(w.check(1000), Err(ReplayError::Duplicate));
        assert_eq!(w.check(999), Ok(()));
        w.accept(999);
        assert_eq!(w.check(999), Err(ReplayError::Duplicate));
        assert_eq!(w.check(1000 - WINDOW), Err(ReplayError::TooOld));
        assert_eq!(w.check(1000 - WINDOW + 1), Ok(()));
        w.accept(5000);
        assert_eq!(w.check(1000), Err(ReplayError::TooOld));
        assert_eq!(w.check(4999), Ok(()));
    }

    proptest! {
        /// Against a model (a set of accepted indices): the window accepts exactly the
        /// indices within 128 of the highest that were not seen before.
        #[test]
        fn window_matches_model(ops in proptest::collection::vec(0u64..600, 1..400)) {
            let mut w = ReplayWindow::new();
            let mut seen = std::collections::BTreeSet::new();
            for i in ops {
                let highest = seen.iter().next_back().copied();
                let expect_ok = match highest {
                    None => true,
                    Some(h) => i > h || (h - i < WINDOW && !seen.contains(&i)),
                };
                prop_assert_eq!(w.check(i).is_ok(), expect_ok, "index {}", i);
                if expect_ok {
                    w.accept(i);
                    seen.insert(i);
                }
            }
        }
    }
}

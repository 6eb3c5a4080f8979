//! SRTP packet index estimation (RFC 3711 §3.3.1 and Appendix A).

/// The 48-bit SRTP packet index: ROC * 2^16 + SEQ.
pub type PacketIndex = u64;

/// Builds an index from a rollover counter and a sequence number.
pub fn index_of(roc: u32, seq: u16) -> PacketIndex {
    (u64::from(roc) << 16) | u64::from(seq)
}

/// The rollover counter of an index.
pub fn roc_of(index: PacketIndex) -> u32 {
    (index >> 16) as u32
}

/// Tracks the highest index seen on one SSRC and estimates the index of the next packet.
///
/// The ROC can be set (EKT carries it, ekt-spec.md §3.6 step 7) but is never lowered once
/// packets were seen: a context's highest index never decreases (WIRE.md section 7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexTracker {
    /// Highest index accepted, `None` before the first packet.
    highest: Option<PacketIndex>,
    /// ROC to assume before the first packet.
    initial_roc: u32,
}

impl IndexTracker {
    /// A tracker that has seen nothing, starting at ROC 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The highest index accepted.
    pub fn highest(&self) -> Option<PacketIndex> {
        self.highest
    }

    /// The current rollover counter.
    pub fn roc(&self) -> u32 {
        self.highest.map_or(self.initial_roc, roc_of)
    }

    /// Sets the ROC. Before any packet it sets the starting ROC; afterwards it only raises
    /// the highest index (ROC * 2^16 + its SEQ), never lowers it.
    pub fn set_roc(&mut self, roc: u32) {
        match self.highest {
            None => self.initial_roc = roc,
            Some(h) => {
                let raised = index_of(roc, h as u16);
                if raised > h {
                    self.highest = Some(raised);
                }
            }
        }
    }

    /// RFC 3711 Appendix A: the index of a packet with sequence number `seq`. `None` when
    /// the guess would need a ROC below 0 or above 2^32-1 (such a packet cannot be valid).
    pub fn estimate(&self, seq: u16) -> Option<PacketIndex> {
        let Some(h) = self.highest else {
            return Some(index_of(self.initial_roc, seq));
        };
        let (roc, s_l) = (roc_of(h), h as u16);
        let v = if s_l < 0x8000 {
            if u32::from(seq) > u32::from(s_l) + 0x8000 {
                roc.checked_sub(1)?
            } else {
                roc
            }
        } else if u32::from(s_l) - 0x8000 > u32::from(seq) {
            roc.checked_add(1)?
        } else {
            roc
        };
        Some(index_of(v, seq))
    }

    /// Records an authenticated packet's index.
    pub fn accept(&mut self, index: PacketIndex) {
        if self.highest.is_none_or(|h| index > h) {
            self.highest = Some(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wraps_forward_and_tolerates_late_packets() {
        let mut t = IndexTracker::new();
        t.accept(index_of(0, 65534));
        assert_eq!(t.estimate(65535), Some(index_of(0, 65535)));
        assert_eq!(t.estimate(1), Some(index_of(1, 1)));
        t.accept(index_of(1, 1));
        // A late packet from before the wrap keeps ROC 0.
        assert_eq!(t.estimate(65530), Some(index_of(0, 65530)));
        assert_eq!(t.roc(), 1);
    }

    #[test]
    fn roc_is_never_lowered() {
        let mut t = IndexTracker::new();
        t.set_roc(5);
        assert_eq!(t.estimate(7), Some(index_of(5, 7)));
        t.accept(index_of(5, 7));
        t.set_roc(3);
        assert_eq!(t.roc(), 5);
        t.set_roc(6);
        assert_eq!(t.highest(), Some(index_of(6, 7)));
    }

    #[test]
    fn impossible_guesses_are_none() {
        let mut t = IndexTracker::new();
        t.accept(index_of(0, 10));
        assert_eq!(t.estimate(40000), None);
        let mut t = IndexTracker::new();
        t.accept(index_of(u32::MAX, 60000));
        assert_eq!(t.estimate(5), None);
    }

    proptest! {
        /// A sender's stream, delivered with bounded reordering, is always estimated exactly.
        #[test]
        fn estimate_is_exact_within_half_the_sequence_space(
            start in 0u64..(1u64 << 40),
            steps in proptest::collection::vec((1u64..3000, 0u64..3000), 1..200),
        ) {
            let mut t = IndexTracker::new();
            t.set_roc(roc_of(start));
            t.accept(start);
            let mut sent = start;
            for (advance, back) in steps {
                sent += advance;
                let late = sent.saturating_sub(back).max(start);
                for i in [late, sent] {
                    prop_assert_eq!(t.estimate(i as u16), Some(i));
                    t.accept(i);
                }
            }
            prop_assert_eq!(t.highest(), Some(sent));
        }
    }
}

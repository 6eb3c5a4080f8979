//! One continuous outgoing RTP stream made of switched sources (issue 19): a standard
//! endpoint knows one SSRC per m-line, so each source's sequence numbers and timestamps
//! are mapped onto the stream's own. At a switch the new source continues the sequence
//! where the last one stopped (no gap, no jump) and its timestamps continue from the last
//! one by the wall-clock time that passed (monotonic, RFC 3550 §5.1). Within one source,
//! its own gaps (loss) are kept so the receiver sees them.

use std::time::Instant;

/// Where a source's numbers land in the stream.
#[derive(Debug, Clone, Copy)]
struct Mapping {
    source: u32,
    seq_offset: u16,
    ts_offset: u32,
}

/// The stream's state.
#[derive(Debug)]
pub struct Restamper {
    ssrc: u32,
    clock_rate: u32,
    current: Option<Mapping>,
    /// The next sequence number after the highest sent.
    next_seq: u16,
    /// The highest timestamp sent and when.
    last_ts: u32,
    last_at: Option<Instant>,
    /// RFC 3550 §6.4.1 sender's packet and octet counts.
    packets: u32,
    octets: u32,
}

/// Signed distance from `b` to `a` on a wrapping counter.
fn ahead16(a: u16, b: u16) -> i16 {
    a.wrapping_sub(b) as i16
}

fn ahead32(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

impl Restamper {
    /// A stream with `ssrc` at `clock_rate` Hz, starting at `first_seq` and `first_ts`
    /// (random values, RFC 3550 §5.1).
    pub fn new(ssrc: u32, clock_rate: u32, first_seq: u16, first_ts: u32) -> Self {
        Self {
            ssrc,
            clock_rate,
            current: None,
            next_seq: first_seq,
            last_ts: first_ts.wrapping_sub(1),
            last_at: None,
            packets: 0,
            octets: 0,
        }
    }

    /// The stream's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The source being sent, if any.
    pub fn source(&self) -> Option<u32> {
        self.current.map(|m| m.source)
    }

    /// The stream's sequence number and timestamp for a packet of `source` with `seq` and
    /// `ts` sent at `now`; `None` for a late packet from before a switch or too far back
    /// (it would go backwards in the stream).
    pub fn map(&mut self, now: Instant, source: u32, seq: u16, ts: u32) -> Option<(u16, u32)> {
        let m = match self.current {
            Some(m) if m.source == source => m,
            _ => {
                // A switch: continue right after the last packet, and the clock by the
                // time that passed (at least one tick).
                let elapsed = self.last_at.map_or(0, |t| {
                    let us = now.saturating_duration_since(t).as_micros();
                    (us * u128::from(self.clock_rate) / 1_000_000) as u32
                });
                let base_ts = self.last_ts.wrapping_add(elapsed.max(1));
                let m = Mapping {
                    source,
                    seq_offset: self.next_seq.wrapping_sub(seq),
                    ts_offset: base_ts.wrapping_sub(ts),
                };
                self.current = Some(m);
                m
            }
        };
        let out_seq = seq.wrapping_add(m.seq_offset);
        let out_ts = ts.wrapping_add(m.ts_offset);
        let behind = ahead16(out_seq, self.next_seq);
        if behind < -64 {
            return None;
        }
        if behind >= 0 {
            self.next_seq = out_seq.wrapping_add(1);
        }
        if ahead32(out_ts, self.last_ts) > 0 {
            self.last_ts = out_ts;
            self.last_at = Some(now);
        }
        Some((out_seq, out_ts))
    }

    /// Counts a packet of `payload_len` bytes sent (for the sender report).
    pub fn count(&mut self, payload_len: usize) {
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload_len as u32);
    }

    /// What a sender report at `now` says: the RTP timestamp that corresponds to `now`,
    /// and the packet and octet counts; `None` before the first packet.
    pub fn report(&self, now: Instant) -> Option<(u32, u32, u32)> {
        let at = self.last_at?;
        let us = now.saturating_duration_since(at).as_micros();
        let ts = self
            .last_ts
            .wrapping_add((us * u128::from(self.clock_rate) / 1_000_000) as u32);
        Some((ts, self.packets, self.octets))
    }
}

#[cfg(test)]
// Test code: it plays the driver and reads the clock.
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn switches_continue_the_sequence_and_the_clock() {
        let t0 = Instant::now();
        let mut r = Restamper::new(7, 90_000, 1000, 50_000);
        assert_eq!(r.map(t0, 1, 40, 9_000), Some((1000, 50_000)));
        assert_eq!(r.map(t0, 1, 41, 9_000), Some((1001, 50_000)));
        // Loss within a source stays visible.
        assert_eq!(r.map(t0, 1, 43, 12_000), Some((1003, 53_000)));
        // A switch 100 ms later to a source with unrelated numbers.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(r.map(t1, 2, 65_530, 4_000_000_000), Some((1004, 62_000)));
        assert_eq!(r.map(t1, 2, 65_535, 4_000_000_000), Some((1009, 62_000)));
        assert_eq!(r.map(t1, 2, 0, 4_000_003_000), Some((1010, 65_000)));
        assert_eq!(r.source(), Some(2));
        // Back to the first, at once: still forward.
        let (seq, ts) = r.map(t1, 1, 44, 12_000).unwrap();
        assert_eq!(seq, 1011);
        assert_eq!(ts, 65_001);
    }

    #[test]
    fn late_packets_from_long_ago_are_refused() {
        let t0 = Instant::now();
        let mut r = Restamper::new(7, 8000, 0, 0);
        for s in 0..200u16 {
            r.map(t0, 1, s, u32::from(s) * 160).unwrap();
        }
        assert!(r.map(t0, 1, 100, 16_000).is_none());
        // Slightly late is kept (reordering).
        assert_eq!(r.map(t0, 1, 190, 190 * 160), Some((190, 190 * 160)));
    }

    #[test]
    fn the_report_extrapolates_the_clock() {
        let t0 = Instant::now();
        let mut r = Restamper::new(7, 8000, 0, 1000);
        assert!(r.report(t0).is_none());
        r.map(t0, 1, 5, 0).unwrap();
        r.count(160);
        let (ts, packets, octets) = r.report(t0 + Duration::from_millis(500)).unwrap();
        assert_eq!((ts, packets, octets), (5000, 1, 160));
    }
}

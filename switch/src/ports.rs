//! Media port allocation over a configurable range (seed 002 l.2813: UDP 16384-32768),
//! one port per media line, plus one for RTCP when the offer has no rtcp-mux. Sans-IO: the
//! driver binds the port it gets and gives back the ones that failed to bind.

/// The default range (seed 002 l.2813).
pub const DEFAULT_RANGE: std::ops::RangeInclusive<u16> = 16384..=32768;

/// No free port is left in the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("media ports exhausted: all {0} ports of the range are in use")]
pub struct PortsExhausted(pub usize);

/// Hands out ports from a range; a port is reused only after it is released.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    first: u16,
    in_use: Vec<bool>,
    used: usize,
    /// Next index to try: allocation rotates through the range so that a port just
    /// released is not handed out again at once (late packets of the old call).
    cursor: usize,
}

impl PortAllocator {
    /// An allocator over `range` (inclusive). An empty range allocates nothing.
    pub fn new(range: std::ops::RangeInclusive<u16>) -> Self {
        let (first, last) = (*range.start(), *range.end());
        let n = if last >= first {
            usize::from(last - first) + 1
        } else {
            0
        };
        Self {
            first,
            in_use: vec![false; n],
            used: 0,
            cursor: 0,
        }
    }

    /// A free port.
    pub fn allocate(&mut self) -> Result<u16, PortsExhausted> {
        let n = self.in_use.len();
        if self.used == n {
            return Err(PortsExhausted(n));
        }
        for step in 0..n {
            let i = (self.cursor + step) % n;
            if !self.in_use[i] {
                self.in_use[i] = true;
                self.used += 1;
                self.cursor = (i + 1) % n;
                return Ok(self.first + i as u16);
            }
        }
        Err(PortsExhausted(n))
    }

    /// Gives a port back; ports outside the range or not in use are ignored.
    pub fn release(&mut self, port: u16) {
        let Some(i) = port.checked_sub(self.first).map(usize::from) else {
            return;
        };
        if let Some(slot) = self.in_use.get_mut(i).filter(|s| **s) {
            *slot = false;
            self.used -= 1;
        }
    }

    /// Ports in use.
    pub fn in_use(&self) -> usize {
        self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_rotates_and_reports_exhaustion() {
        let mut a = PortAllocator::new(20000..=20002);
        assert_eq!(
            (a.allocate(), a.allocate(), a.allocate()),
            (Ok(20000), Ok(20001), Ok(20002))
        );
        assert_eq!(a.allocate(), Err(PortsExhausted(3)));
        a.release(20001);
        a.release(20001); // twice: ignored
        a.release(9); // outside: ignored
        assert_eq!(a.in_use(), 2);
        assert_eq!(a.allocate(), Ok(20001));
        a.release(20000);
        a.release(20002);
        // The rotation does not hand back the port released first before the others.
        assert_eq!(a.allocate(), Ok(20002));
        assert_eq!(a.allocate(), Ok(20000));
        // A misconfigured (empty) range allocates nothing and does not panic.
        let (lo, hi) = (5, 4);
        assert_eq!(
            PortAllocator::new(lo..=hi).allocate(),
            Err(PortsExhausted(0))
        );
        assert_eq!(PortAllocator::new(DEFAULT_RANGE).in_use.len(), 16385);
    }
}

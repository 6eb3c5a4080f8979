//! The RFC 8870 epoch rule (RFC 8870 §4.2.2): a receiver rejects a FullEKTField whose epoch
//! is not above the last one seen for that SPI and SSRC.

use crate::Spi;

/// The last epoch accepted per (SPI, SSRC).
#[derive(Debug, Default, Clone)]
pub struct EpochTracker {
    seen: Vec<(Spi, u32, u16)>,
}

/// An epoch that does not advance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("EKT epoch {got} is not above {last} for this SPI and SSRC")]
pub struct StaleEpoch {
    /// The epoch received.
    pub got: u16,
    /// The last epoch accepted.
    pub last: u16,
}

impl EpochTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks `epoch` without recording it (call [`EpochTracker::accept`] once the key
    /// behind it verified). The first epoch seen for a pair is always fresh.
    pub fn check(&self, spi: Spi, ssrc: u32, epoch: u16) -> Result<(), StaleEpoch> {
        match self.seen.iter().find(|(s, x, _)| *s == spi && *x == ssrc) {
            Some(&(_, _, last)) if epoch <= last => Err(StaleEpoch { got: epoch, last }),
            _ => Ok(()),
        }
    }

    /// Records `epoch` as the last accepted for the pair.
    pub fn accept(&mut self, spi: Spi, ssrc: u32, epoch: u16) -> Result<(), StaleEpoch> {
        self.check(spi, ssrc, epoch)?;
        match self
            .seen
            .iter_mut()
            .find(|(s, x, _)| *s == spi && *x == ssrc)
        {
            Some(e) => e.2 = epoch,
            None => self.seen.push((spi, ssrc, epoch)),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_must_increase_per_spi_and_ssrc() {
        let mut t = EpochTracker::new();
        t.accept(Spi(1), 7, 0).unwrap();
        assert_eq!(t.check(Spi(1), 7, 0), Err(StaleEpoch { got: 0, last: 0 }));
        t.accept(Spi(1), 7, 1).unwrap();
        assert!(t.accept(Spi(1), 7, 1).is_err());
        // Independent per SSRC and per SPI.
        t.accept(Spi(1), 8, 0).unwrap();
        t.accept(Spi(2), 7, 0).unwrap();
    }
}

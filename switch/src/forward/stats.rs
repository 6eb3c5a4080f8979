//! Counters of the forwarding path: what was verified, forwarded and dropped, by reason.

/// Why a packet was dropped. Every drop is counted; none reaches a receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not a parseable RTP/SRTCP packet, or a malformed EKT field.
    Malformed,
    /// Larger than an output slot.
    TooLarge,
    /// No key for the SSRC yet (a short tag before any full tag, or an unknown plain source).
    UnknownSsrc,
    /// A full EKT tag with an SPI that no parameter set has.
    UnknownSpi,
    /// The EMK could not be decrypted (wrong length, key-wrap integrity failure).
    KeyUnwrapFailed,
    /// The authentication tag did not verify.
    AuthFailed,
    /// Already received.
    Replayed,
    /// Older than the replay window.
    TooOld,
    /// The packet index cannot be estimated.
    IndexOutOfRange,
    /// The output batch was full.
    OutputFull,
    /// The source table is full.
    TooManySources,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [Self; 11] = [
        Self::Malformed,
        Self::TooLarge,
        Self::UnknownSsrc,
        Self::UnknownSpi,
        Self::KeyUnwrapFailed,
        Self::AuthFailed,
        Self::Replayed,
        Self::TooOld,
        Self::IndexOutOfRange,
        Self::OutputFull,
        Self::TooManySources,
    ];

    /// A stable metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
            Self::UnknownSsrc => "unknown_ssrc",
            Self::UnknownSpi => "unknown_spi",
            Self::KeyUnwrapFailed => "key_unwrap_failed",
            Self::AuthFailed => "auth_failed",
            Self::Replayed => "replayed",
            Self::TooOld => "too_old",
            Self::IndexOutOfRange => "index_out_of_range",
            Self::OutputFull => "output_full",
            Self::TooManySources => "too_many_sources",
        }
    }
}

/// Forwarding counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardStats {
    /// Packets whose tag verified.
    pub verified: u64,
    /// Datagrams produced for receivers.
    pub forwarded: u64,
    /// Tags computed for outputs (one per distinct output header).
    pub resigned: u64,
    /// Sender keys learned or changed from full EKT tags.
    pub keys_learned: u64,
    dropped: [u64; DropReason::ALL.len()],
}

impl ForwardStats {
    /// Drops counted for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize]
    }

    /// All drops.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    pub(crate) fn drop(&mut self, reason: DropReason) {
        self.dropped[reason as usize] += 1;
    }
}

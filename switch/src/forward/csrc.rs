//! CSRC rewriting for TIP screen positions (seed 002 l.1781; WIRE.md sections 5 and 7).
//!
//! TIP CSRC: bits 31..12 clock ID, 11..8 output position, 7..4 source position, 3..0 sink
//! position. The switch keeps the clock ID and the source position and writes the
//! receiver's screen into output and sink. SSRC never changes.

/// What a receiver's copy of a packet gets in its first CSRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrcRewrite {
    /// Forward the CSRC as received.
    Keep,
    /// Show on this screen position (1 center, 2 left, 3 right, 4/5 aux).
    TipScreen(u8),
}

impl CsrcRewrite {
    /// The CSRC to send for a received `csrc`.
    #[inline]
    pub fn apply(self, csrc: u32) -> u32 {
        match self {
            Self::Keep => csrc,
            Self::TipScreen(pos) => {
                let pos = u32::from(pos & 0x0f);
                (csrc & 0xffff_f0f0) | (pos << 8) | pos
            }
        }
    }
}

/// Fields of a TIP CSRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TipCsrc {
    /// 20-bit clock ID.
    pub clock_id: u32,
    /// Output (display/speaker) position.
    pub output: u8,
    /// Source (camera/microphone) position.
    pub source: u8,
    /// Sink position.
    pub sink: u8,
}

impl TipCsrc {
    /// Splits a CSRC into its TIP fields.
    pub fn from_u32(v: u32) -> Self {
        Self {
            clock_id: v >> 12,
            output: ((v >> 8) & 0xf) as u8,
            source: ((v >> 4) & 0xf) as u8,
            sink: (v & 0xf) as u8,
        }
    }

    /// Packs the fields.
    pub fn to_u32(self) -> u32 {
        (self.clock_id << 12)
            | (u32::from(self.output & 0xf) << 8)
            | (u32::from(self.source & 0xf) << 4)
            | u32::from(self.sink & 0xf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_vector_screen_three() {
        // WIRE.md section 3: 0x12345121 shown on screen 3 becomes 0x12345323.
        assert_eq!(CsrcRewrite::TipScreen(3).apply(0x1234_5121), 0x1234_5323);
        assert_eq!(CsrcRewrite::Keep.apply(0x1234_5121), 0x1234_5121);
        let f = TipCsrc::from_u32(0x1234_5121);
        assert_eq!((f.clock_id, f.output, f.source, f.sink), (0x12345, 1, 2, 1));
        assert_eq!(f.to_u32(), 0x1234_5121);
    }
}

//! G.711 (ITU-T G.711): PCMU (µ-law, RTP payload type 0) and PCMA (A-law, payload type 8),
//! 8 kHz, one byte per sample (RFC 3551 §4.5.14). The segment arithmetic of the
//! recommendation's reference encoders, written out: no table, no allocation.

/// A G.711 law.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// µ-law, PCMU.
    Mu,
    /// A-law, PCMA.
    A,
}

impl Law {
    /// The law of a static RTP payload type (RFC 3551 table 4), or of an `a=rtpmap`
    /// encoding name.
    pub fn from_payload_type(pt: u8, rtpmap: Option<&str>) -> Option<Self> {
        let name = rtpmap.and_then(|m| m.split('/').next());
        match (pt, name) {
            (_, Some(n)) if n.eq_ignore_ascii_case("PCMU") => Some(Self::Mu),
            (_, Some(n)) if n.eq_ignore_ascii_case("PCMA") => Some(Self::A),
            (0, None) => Some(Self::Mu),
            (8, None) => Some(Self::A),
            _ => None,
        }
    }

    /// The static payload type.
    pub fn payload_type(self) -> u8 {
        match self {
            Self::Mu => 0,
            Self::A => 8,
        }
    }

    /// One sample to its code.
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Self::Mu => ulaw_encode(sample),
            Self::A => alaw_encode(sample),
        }
    }

    /// One code to its sample.
    pub fn decode(self, code: u8) -> i16 {
        match self {
            Self::Mu => ulaw_decode(code),
            Self::A => alaw_decode(code),
        }
    }
}

/// µ-law bias (G.711 §3: the segment ends are offset by 33, in 14-bit units 132).
const MU_BIAS: i32 = 0x84;
/// Largest magnitude µ-law encodes without overflowing its top segment.
const MU_CLIP: i32 = 32635;

fn ulaw_encode(sample: i16) -> u8 {
    let mut x = i32::from(sample);
    let sign = if x < 0 {
        x = -x;
        0x80
    } else {
        0
    };
    x = x.min(MU_CLIP) + MU_BIAS;
    // x is in 0x84..=0x7fff: its top bit is bit 7 (segment 0) to bit 14 (segment 7).
    let segment = (31 - (x as u32).leading_zeros()) as i32 - 7;
    let mantissa = (x >> (segment + 3)) & 0x0f;
    !(sign | (segment << 4) as u8 | mantissa as u8)
}

fn ulaw_decode(code: u8) -> i16 {
    let u = !code;
    let segment = i32::from((u >> 4) & 0x07);
    let mantissa = i32::from(u & 0x0f);
    let x = (((mantissa << 3) + MU_BIAS) << segment) - MU_BIAS;
    if u & 0x80 != 0 { -x as i16 } else { x as i16 }
}

/// Upper ends of the A-law segments, on the 13-bit scale.
const A_SEGMENT_ENDS: [i32; 8] = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff];

fn alaw_encode(sample: i16) -> u8 {
    let mut x = i32::from(sample) >> 3;
    // Even bits are inverted on the line (G.711 §2: the 0x55 mask); the sign bit is set
    // for positive values.
    let mask = if x >= 0 {
        0xd5
    } else {
        x = -x - 1;
        0x55
    };
    let Some(segment) = A_SEGMENT_ENDS.iter().position(|&end| x <= end) else {
        return 0x7f ^ mask;
    };
    let shift = if segment < 2 { 1 } else { segment };
    let code = ((segment as i32) << 4) | ((x >> shift) & 0x0f);
    code as u8 ^ mask
}

fn alaw_decode(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = i32::from(a & 0x0f) << 4;
    match (a & 0x70) >> 4 {
        0 => t += 8,
        1 => t += 0x108,
        segment => {
            t += 0x108;
            t <<= segment - 1;
        }
    }
    if a & 0x80 != 0 { t as i16 } else { -t as i16 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recommendations_end_points() {
        // G.711 table 2 (µ-law) and table 1 (A-law): zero, the extremes.
        assert_eq!(Law::Mu.encode(0), 0xff);
        assert_eq!(Law::Mu.decode(0xff), 0);
        assert_eq!(Law::Mu.decode(0x80), 32124);
        assert_eq!(Law::Mu.decode(0x00), -32124);
        assert_eq!(Law::Mu.encode(i16::MAX), 0x80);
        assert_eq!(Law::Mu.encode(i16::MIN), 0x00);
        assert_eq!(Law::A.encode(0), 0xd5);
        assert_eq!(Law::A.decode(0xd5), 8);
        assert_eq!(Law::A.decode(0x55), -8);
        assert_eq!(Law::A.decode(0xaa), 32256);
        assert_eq!(Law::A.decode(0x2a), -32256);
        assert_eq!(Law::A.encode(i16::MAX), 0xaa);
    }

    #[test]
    fn every_code_survives_a_round_trip() {
        for law in [Law::Mu, Law::A] {
            for code in 0..=255u8 {
                let s = law.decode(code);
                let again = law.decode(law.encode(s));
                assert_eq!(again, s, "{law:?} code {code:#04x}");
            }
        }
    }

    #[test]
    fn the_error_stays_within_the_segment_step() {
        for law in [Law::Mu, Law::A] {
            for s in (-32000i32..32000).step_by(7) {
                let back = i32::from(law.decode(law.encode(s as i16)));
                // The coarsest step is 1024 (µ-law) / 1024 (A-law) at the top segment.
                assert!((back - s).abs() <= 1024, "{law:?} {s} -> {back}");
                if s.abs() < 64 {
                    assert!((back - s).abs() <= 16, "{law:?} small {s} -> {back}");
                }
            }
        }
    }

    #[test]
    fn payload_types_and_names() {
        assert_eq!(Law::from_payload_type(0, None), Some(Law::Mu));
        assert_eq!(Law::from_payload_type(8, None), Some(Law::A));
        assert_eq!(Law::from_payload_type(96, Some("PCMA/8000")), Some(Law::A));
        assert_eq!(Law::from_payload_type(96, Some("opus/48000/2")), None);
        assert_eq!(Law::from_payload_type(0, Some("opus/48000/2")), None);
        assert_eq!(Law::from_payload_type(9, None), None);
    }
}

//! Telling DTLS, RTP, RTCP and STUN apart on one media port by the first byte
//! (RFC 7983 §7, which updates RFC 5764 §5.1.2; RTCP vs RTP by RFC 5761 §4).

/// What a datagram on a media port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// 0-3: STUN.
    Stun,
    /// 16-19: ZRTP (not supported; dropped).
    Zrtp,
    /// 20-63: DTLS.
    Dtls,
    /// 64-79: TURN channel (not supported; dropped).
    TurnChannel,
    /// 128-191 with an RTP payload type.
    Rtp,
    /// 128-191 with an RTCP packet type (192-223).
    Rtcp,
    /// Anything else.
    Unknown,
}

/// Classifies a datagram (RFC 7983 §7).
pub fn classify(datagram: &[u8]) -> PacketKind {
    match datagram.first() {
        Some(0..=3) => PacketKind::Stun,
        Some(16..=19) => PacketKind::Zrtp,
        Some(20..=63) => PacketKind::Dtls,
        Some(64..=79) => PacketKind::TurnChannel,
        Some(128..=191) if crate::rtp::is_rtcp(datagram) => PacketKind::Rtcp,
        Some(128..=191) if datagram.len() >= 2 => PacketKind::Rtp,
        _ => PacketKind::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7983_ranges() {
        let cases: [(&[u8], PacketKind); 10] = [
            (&[0, 1], PacketKind::Stun),
            (&[3], PacketKind::Stun),
            (&[16], PacketKind::Zrtp),
            (&[22, 0xfe, 0xfd], PacketKind::Dtls), // DTLS 1.2 handshake
            (&[63], PacketKind::Dtls),
            (&[64], PacketKind::TurnChannel),
            (&[0x80, 0x70], PacketKind::Rtp),
            (&[0x81, 200], PacketKind::Rtcp),
            (&[0x80, 204], PacketKind::Rtcp), // TIP APP
            (&[], PacketKind::Unknown),
        ];
        for (bytes, kind) in cases {
            assert_eq!(classify(bytes), kind, "{bytes:?}");
        }
        assert_eq!(classify(&[4]), PacketKind::Unknown);
        assert_eq!(classify(&[80]), PacketKind::Unknown);
        assert_eq!(classify(&[192, 0]), PacketKind::Unknown);
        assert_eq!(classify(&[0x80]), PacketKind::Unknown);
    }
}

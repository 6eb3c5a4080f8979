//! Audio level: from the RFC 6464 header extension when the endpoint sends it, else from
//! decoded samples; and the TIP activity metric made from it (WIRE.md section 3: the
//! audio appended byte, higher is louder, 99 reserved for presentation audio).

use crate::rtp::{RTP_FIXED_HEADER_LEN, RtpHeader};

/// RFC 6464 §3: levels are 0 (0 dBov, loudest) to 127 (-127 dBov, silence).
pub const SILENT: u8 = 127;

/// The level of a frame of samples in -dBov (RFC 6464 §3: the RMS relative to the
/// overload point), 0..=127.
pub fn level_of(samples: &[i16]) -> u8 {
    let energy: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    level_of_energy(energy, samples.len())
}

/// The level of `count` samples whose squares sum to `energy`.
pub fn level_of_energy(energy: f64, count: usize) -> u8 {
    if count == 0 {
        return SILENT;
    }
    let rms = (energy / count as f64).sqrt() / 32768.0;
    if rms <= 0.0 {
        return SILENT;
    }
    let dbov = -20.0 * rms.log10();
    dbov.clamp(0.0, f64::from(SILENT)) as u8
}

/// The TIP activity metric of a level (-dBov): 0 for silence, growing by one per dB
/// above -90 dBov, capped below the presentation value (99).
pub fn activity_of(level: u8) -> u8 {
    90u8.saturating_sub(level).min(98)
}

/// The audio level of an RTP packet's RFC 6464 element with extension `id` (RFC 8285
/// one-byte header form, profile 0xBEDE), if it has one.
pub fn extension_level(rtp: &[u8], id: u8) -> Option<u8> {
    let h = RtpHeader::parse(rtp).ok()?;
    if rtp[0] & 0x10 == 0 {
        return None;
    }
    let start = RTP_FIXED_HEADER_LEN + 4 * usize::from(h.csrc_count);
    if rtp.get(start..start + 2)? != [0xbe, 0xde] {
        return None;
    }
    let elements = rtp.get(start + 4..h.len)?;
    let mut i = 0;
    while i < elements.len() {
        let b = elements[i];
        if b == 0 {
            i += 1; // padding (RFC 8285 §4.2)
            continue;
        }
        let (eid, len) = (b >> 4, usize::from(b & 0x0f) + 1);
        if eid == 15 {
            return None; // reserved: stop (RFC 8285 §4.2)
        }
        let data = elements.get(i + 1..i + 1 + len)?;
        if eid == id {
            return Some(data[0] & 0x7f);
        }
        i += 1 + len;
    }
    None
}

/// The RFC 6464 extension id an SDP `a=extmap` list gives the audio level, if any.
pub fn extmap_id(extmap: &[String]) -> Option<u8> {
    extmap.iter().find_map(|e| {
        let mut parts = e.split_whitespace();
        let id = parts.next()?.split('/').next()?.parse::<u8>().ok()?;
        let uri = parts.next()?;
        (uri == "urn:ietf:params:rtp-hdrext:ssrc-audio-level" && (1..=14).contains(&id))
            .then_some(id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(amplitude: f64) -> Vec<i16> {
        (0..160)
            .map(|i| (amplitude * (f64::from(i) * 0.3).sin()) as i16)
            .collect()
    }

    #[test]
    fn levels_follow_the_rms() {
        assert_eq!(level_of(&[0; 160]), SILENT);
        assert_eq!(level_of(&[]), SILENT);
        // A full-scale square wave is 0 dBov; a full-scale sine about 3.
        assert_eq!(level_of(&[i16::MIN; 160]), 0);
        assert!((2..=4).contains(&level_of(&sine(32767.0))));
        // 20 dB quieter.
        let l = level_of(&sine(3276.7));
        assert!((22..=24).contains(&l), "{l}");
        assert!(activity_of(l) > activity_of(level_of(&sine(100.0))));
        assert_eq!(activity_of(SILENT), 0);
        assert_eq!(activity_of(0), 90);
    }

    #[test]
    fn the_rfc_6464_element_is_found() {
        // V=2, X=1, CC=0; extension 0xBEDE, 1 word: id 1 len 0 (one byte) = V|level 0x85,
        // then padding.
        let mut p = vec![0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        p.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0x85, 0, 0, 0xaa]);
        assert_eq!(extension_level(&p, 1), Some(5));
        assert_eq!(extension_level(&p, 2), None);
        // Without the extension bit.
        p[0] = 0x80;
        assert_eq!(extension_level(&p, 1), None);
        // A two-byte-header extension is not the one-byte form.
        p[0] = 0x90;
        p[12] = 0x10;
        assert_eq!(extension_level(&p, 1), None);
        // Truncated: no panic.
        for n in 0..p.len() {
            let _ = extension_level(&p[..n], 1);
        }
    }

    #[test]
    fn extmap_lines() {
        let l = |s: &str| vec![s.to_owned()];
        assert_eq!(
            extmap_id(&l("1 urn:ietf:params:rtp-hdrext:ssrc-audio-level")),
            Some(1)
        );
        assert_eq!(
            extmap_id(&l(
                "3/sendonly urn:ietf:params:rtp-hdrext:ssrc-audio-level vad=on"
            )),
            Some(3)
        );
        assert_eq!(extmap_id(&l("2 urn:ietf:params:rtp-hdrext:toffset")), None);
        assert_eq!(extmap_id(&l("x y")), None);
    }
}

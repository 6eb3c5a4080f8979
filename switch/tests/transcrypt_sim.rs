//! Standard SIP endpoints in a meeting, in virtual time (issue 19): simulated TIP endpoints
//! and simulated standard endpoints (SDES, PCMU audio, H.264-shaped video, no TIP).
//! Asserts what each side sees: TIP endpoints decrypt the standard endpoint's media with
//! the key it announced in EKT and see it switched in by voice; a standard endpoint gets one
//! continuous stream per m-line across switches, each new source from an IDR, and hears
//! the others' voices mixed, never its own; forgeries on a transcrypt leg reach no one.
// Test code: it plays the driver and reads the clock.
#![allow(clippy::disallowed_methods)]

use std::collections::HashSet;
use std::time::Duration;

use switch::meeting::switching::Mode;
use switch::meeting::{MeetingCommand, MeetingEvent};
use switch::testing::{Sim, StandardEndpoint, goertzel, payload};
use switch::tip::negotiation::Media;
use switch::transcrypt::g711::Law;

const DETECT: Duration = Duration::from_secs(1);

/// Which simulated TIP video source (ssrc, seq) sent a payload.
fn identify(sim: &Sim, p: &[u8]) -> Option<(u32, u16)> {
    let ssrcs: Vec<u32> = sim
        .endpoints
        .iter()
        .flat_map(|e| e.lines.iter().filter(|l| l.media == Media::Video))
        .flat_map(|l| l.sources.iter().map(|s| s.1))
        .collect();
    let seq = u16::from_be_bytes([*p.first()?, *p.get(1)?]);
    ssrcs
        .into_iter()
        .find(|&ssrc| payload(ssrc, seq, Media::Video) == p)
        .map(|ssrc| (ssrc, seq))
}

fn standard_lines(sim: &Sim, participant: u32) -> usize {
    sim.events
        .iter()
        .filter(
            |e| matches!(e, MeetingEvent::StandardLine { participant: p, .. } if *p == participant),
        )
        .count()
}

#[test]
fn tip_endpoints_see_a_standard_endpoint_as_one_more_site() {
    one_more_site(false);
}

#[test]
fn tip_endpoints_see_a_dtls_keyed_standard_endpoint_as_one_more_site() {
    one_more_site(true);
}

fn one_more_site(dtls: bool) {
    let mut sim = Sim::new(Mode::Site, &[(1, 1), (2, 1)]);
    assert_eq!(sim.negotiate(), 4);
    if dtls {
        sim.add_standard_dtls(StandardEndpoint::new(5, 440.0), DETECT);
    } else {
        sim.add_standard(StandardEndpoint::new(5, 440.0), DETECT);
    }
    // Before the wait is over it is not a transcrypt leg yet: its media reaches no one.
    sim.mixed_tick(&[20, 20], &[8000.0], true);
    assert_eq!(standard_lines(&sim, 5), 0);
    for _ in 0..60 {
        sim.mixed_tick(&[20, 20], &[8000.0], true);
    }
    assert_eq!(standard_lines(&sim, 5), 2, "{:?}", sim.events);
    // The loud standard endpoint takes the floor after the hold time.
    for _ in 0..150 {
        sim.mixed_tick(&[20, 20], &[8000.0], true);
    }
    assert!(
        sim.events.contains(&MeetingEvent::SpeakerChanged(Some(5))),
        "{:?}",
        sim.events
    );
    let audio_ssrc = sim.standard[0].ssrc(Media::Audio);
    let video_ssrc = sim.standard[0].ssrc(Media::Video);
    for ep in &sim.endpoints {
        let audio: Vec<_> = ep.foreign.iter().filter(|f| f.1 == audio_ssrc).collect();
        let video: Vec<_> = ep.foreign.iter().filter(|f| f.1 == video_ssrc).collect();
        assert!(
            audio.len() > 100,
            "endpoint {} hears it: {}",
            ep.id,
            audio.len()
        );
        assert!(
            video.len() > 50,
            "endpoint {} sees it: {}",
            ep.id,
            video.len()
        );
        // What it sent, decrypted with the key the switch announced in EKT.
        assert!(audio.iter().all(|a| a.3.len() == 160));
        assert!(
            video
                .iter()
                .all(|v| [0x67, 0x65, 0x41].contains(&v.3[0]) && v.3.len() >= 4)
        );
        // The tone survives the trip: decoded, it is 440 Hz.
        let samples: Vec<i16> = audio[50].3.iter().map(|&c| Law::Mu.decode(c)).collect();
        assert!(goertzel(&samples, 440.0) > 100.0 * goertzel(&samples, 1000.0));
        assert_eq!(
            ep.unknown_key, 0,
            "every packet of it had a key to decrypt with"
        );
    }
    // It receives its two streams over its per-hop keys: the mix (silence here: TIP audio
    // is not G.711) and the video of whoever it is shown.
    assert_eq!(sim.standard[0].decrypt_failures, 0);
    let heard = &sim.standard[0].heard;
    assert!(heard.iter().filter(|h| h.media == Media::Audio).count() > 100);
    assert!(heard.iter().filter(|h| h.media == Media::Video).count() > 100);
    // The switch's report says which participant is transcrypted.
    sim.meeting.handle_command(sim.now, MeetingCommand::Report);
    let report = std::iter::from_fn(|| sim.meeting.poll_event())
        .find_map(|e| match e {
            MeetingEvent::Report(r) => Some(r),
            _ => None,
        })
        .unwrap();
    for p in &report.participants {
        assert_eq!(
            p.lines.iter().all(|l| l.transcrypted),
            p.id == 5,
            "participant {}",
            p.id
        );
    }
}

#[test]
fn a_standard_endpoint_gets_one_continuous_stream_switched_at_idrs() {
    let mut sim = Sim::new(Mode::Site, &[(1, 1), (2, 1)]);
    assert_eq!(sim.negotiate(), 4);
    sim.add_standard(StandardEndpoint::new(5, 440.0), DETECT);
    // Endpoint 1 speaks, then endpoint 2.
    for _ in 0..200 {
        sim.mixed_tick(&[60, 20], &[0.0], true);
    }
    for _ in 0..200 {
        sim.mixed_tick(&[20, 60], &[0.0], true);
    }
    let video: Vec<_> = sim.standard[0]
        .heard
        .iter()
        .filter(|h| h.media == Media::Video)
        .cloned()
        .collect();
    assert!(video.len() > 300, "{}", video.len());
    assert_eq!(sim.standard[0].decrypt_failures, 0);
    assert_eq!(sim.standard[0].video_lost, 0);
    let ssrcs: HashSet<u32> = video.iter().map(|h| h.ssrc).collect();
    assert_eq!(ssrcs.len(), 1, "one SSRC on the m-line");
    for w in video.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "no gap, no jump");
        assert!(
            w[1].ts.wrapping_sub(w[0].ts) < 1 << 31,
            "timestamps monotonic"
        );
        assert_eq!(w[1].pt, 96, "its own payload type");
    }
    // Which source each packet came from; each run of a source starts at an IDR.
    let sources: Vec<(u32, u16)> = video
        .iter()
        .map(|h| identify(&sim, &h.payload).expect("a TIP source's payload, decrypted"))
        .collect();
    let mut runs = 0;
    for (i, s) in sources.iter().enumerate() {
        if i == 0 || sources[i - 1].0 != s.0 {
            runs += 1;
            assert!(sim.idr.contains(s), "run {runs} starts at an IDR: {s:?}");
        }
    }
    assert!(
        runs >= 2,
        "switched from 1 to 2: {runs} runs, first {:?} last {:?}, {:?}",
        sources.first(),
        sources.last(),
        sim.events
            .iter()
            .filter(|e| matches!(e, MeetingEvent::SpeakerChanged(_)))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        sources.last().unwrap().0 >> 16,
        2,
        "endpoint 2 shown at the end"
    );
    // Sender reports for its stream, about once a second.
    let srs = sim.standard[0]
        .rtcp
        .iter()
        .filter(|r| r[1] == 200 && u32::from_be_bytes([r[4], r[5], r[6], r[7]]) == video[0].ssrc)
        .count();
    assert!((5..=9).contains(&srs), "{srs} sender reports in 8 s");

    // Its PLI becomes a REFRESH to the source it is shown.
    let before = sim.meeting.stats().keyframe_requests;
    let (leg, pli) = sim.standard[0].pli(video[0].ssrc);
    sim.send(leg, &pli);
    assert_eq!(sim.meeting.stats().keyframe_requests, before + 1);
    let shown = sources.last().unwrap().0;
    let refreshed = sim.endpoints[1]
        .lines
        .iter()
        .any(|l| l.refresh.contains_key(&shown));
    assert!(refreshed, "the shown source was asked for a refresh");
}

#[test]
fn standard_endpoints_hear_the_others_mixed_and_never_themselves() {
    let mut sim = Sim::new(Mode::Site, &[(1, 1)]);
    assert_eq!(sim.negotiate(), 2);
    sim.add_standard(StandardEndpoint::new(5, 440.0), DETECT);
    sim.add_standard(StandardEndpoint::new(6, 1000.0), DETECT);
    sim.add_standard(StandardEndpoint::new(7, 1800.0), DETECT);
    for _ in 0..200 {
        sim.mixed_tick(&[20], &[6000.0, 6000.0, 6000.0], false);
    }
    let tones = [440.0, 1000.0, 1800.0];
    for (i, s) in sim.standard.iter().enumerate() {
        assert_eq!(s.decrypt_failures, 0);
        let audio: Vec<_> = s.heard.iter().filter(|h| h.media == Media::Audio).collect();
        assert!(audio.len() > 100, "{}", audio.len());
        assert!(audio.iter().all(|h| h.pt == 0 && h.payload.len() == 160));
        for w in audio.windows(2) {
            assert_eq!(w[1].seq, w[0].seq.wrapping_add(1));
            assert_eq!(w[1].ts, w[0].ts.wrapping_add(160));
        }
        let samples: Vec<i16> = audio[audio.len() - 50..]
            .iter()
            .flat_map(|h| h.payload.iter().map(|&c| Law::Mu.decode(c)))
            .collect();
        let power: Vec<f64> = tones.iter().map(|&hz| goertzel(&samples, hz)).collect();
        // Its own tone only as the leakage of the others' (Goertzel over a window that is
        // not a whole number of their periods): thousands of times weaker.
        let others = (0..3).filter(|&j| j != i).map(|j| power[j]);
        let weakest_other = others.fold(f64::MAX, f64::min);
        assert!(
            weakest_other > 1e5,
            "endpoint {} hears the others: {power:?}",
            s.id
        );
        assert!(
            power[i] < weakest_other / 1000.0,
            "endpoint {} hears itself: {power:?}",
            s.id
        );
    }
}

#[test]
fn a_forged_packet_on_a_transcrypt_leg_reaches_no_one() {
    let mut sim = Sim::new(Mode::Site, &[(1, 1)]);
    assert_eq!(sim.negotiate(), 2);
    sim.add_standard(StandardEndpoint::new(5, 440.0), DETECT);
    sim.add_standard(StandardEndpoint::new(6, 1000.0), DETECT);
    for _ in 0..100 {
        sim.mixed_tick(&[20], &[6000.0, 6000.0], true);
    }
    let heard_before: usize = sim.endpoints[0].foreign.len();
    let mut forged = sim.standard[0].media_tick(6000.0, true);
    for (_, p) in &mut forged {
        let n = p.len();
        p[n / 2] ^= 1;
    }
    let before = sim.meeting.stats().transcrypt_dropped;
    for (leg, p) in &forged {
        sim.send(*leg, p);
    }
    assert_eq!(
        sim.meeting.stats().transcrypt_dropped,
        before + forged.len() as u64
    );
    assert_eq!(sim.endpoints[0].foreign.len(), heard_before);
    // Replayed (a genuine packet twice) is dropped too.
    let genuine = sim.standard[0].media_tick(6000.0, false);
    for (leg, p) in &genuine {
        sim.send(*leg, p);
        sim.send(*leg, p);
    }
    assert_eq!(
        sim.meeting.stats().transcrypt_dropped,
        before + forged.len() as u64 + genuine.len() as u64
    );
}

#[test]
fn a_codec_the_switch_cannot_mix_is_passed_through_to_the_same_codec() {
    let mut sim = Sim::new(Mode::Site, &[(1, 1), (2, 1)]);
    assert_eq!(sim.negotiate(), 4);
    // A standard endpoint that offers only what the TIP endpoints send (AAC-LD).
    let mut aac = StandardEndpoint::new(5, 440.0);
    aac.audio_format = (101, "AAC-LD/48000".to_owned());
    sim.add_standard(aac, DETECT);
    for _ in 0..150 {
        sim.mixed_tick(&[60, 20], &[0.0], false);
    }
    for _ in 0..150 {
        sim.mixed_tick(&[20, 60], &[0.0], false);
    }
    let s = &sim.standard[0];
    assert_eq!(s.decrypt_failures, 0);
    let audio: Vec<_> = s.heard.iter().filter(|h| h.media == Media::Audio).collect();
    assert!(audio.len() > 200, "{}", audio.len());
    assert_eq!(
        audio.iter().map(|h| h.ssrc).collect::<HashSet<_>>().len(),
        1
    );
    assert!(audio.iter().all(|h| h.pt == 101), "its own payload type");
    for w in audio.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "no gap at the switch");
        assert!(w[1].ts.wrapping_sub(w[0].ts) < 1 << 31);
    }
    // The loudest source's payload as sent, first endpoint 1's, then 2's.
    let from: Vec<u32> = audio
        .iter()
        .map(|h| {
            let seq = u16::from_be_bytes([h.payload[0], h.payload[1]]);
            let ssrc = (u32::from(h.payload[2]) << 16) | 1;
            assert_eq!(
                h.payload,
                payload(ssrc, seq, Media::Audio),
                "passed through intact"
            );
            ssrc >> 16
        })
        .collect();
    assert_eq!(from.first(), Some(&1));
    assert_eq!(from.last(), Some(&2));
}

/// A plain RTP standard endpoint in a non-secure meeting (T4: a non-secure endpoint): no
/// keys anywhere, the same routing; its media reaches the TIP endpoints with the appended
/// byte stripped, and it hears the mix.
#[test]
fn a_plain_standard_endpoint_in_a_non_secure_meeting() {
    let mut sim = Sim::non_secure(Mode::Site, &[(1, 1), (2, 1)]);
    assert_eq!(sim.negotiate(), 4);
    let mut plain = StandardEndpoint::new(5, 440.0);
    plain.plain = true;
    sim.add_standard(plain, DETECT);
    let mut other = StandardEndpoint::new(6, 1000.0);
    other.plain = true;
    sim.add_standard(other, DETECT);
    for _ in 0..200 {
        sim.mixed_tick(&[20, 20], &[8000.0, 3000.0], true);
    }
    let video_ssrc = sim.standard[0].ssrc(Media::Video);
    for ep in &sim.endpoints {
        let video: Vec<_> = ep.foreign.iter().filter(|f| f.1 == video_ssrc).collect();
        assert!(
            video.len() > 50,
            "endpoint {} sees it: {}",
            ep.id,
            video.len()
        );
        assert!(video.iter().all(|v| [0x67, 0x65, 0x41].contains(&v.3[0])));
    }
    for s in &sim.standard {
        assert_eq!(s.decrypt_failures, 0);
        let audio: Vec<_> = s.heard.iter().filter(|h| h.media == Media::Audio).collect();
        assert!(audio.len() > 100);
        let samples: Vec<i16> = audio[audio.len() - 50..]
            .iter()
            .flat_map(|h| h.payload.iter().map(|&c| Law::Mu.decode(c)))
            .collect();
        let (own, other) = if s.id == 5 {
            (440.0, 1000.0)
        } else {
            (1000.0, 440.0)
        };
        assert!(goertzel(&samples, other) > 1000.0 * goertzel(&samples, own).max(1e-3));
    }
}

//! Voice-activated switching rules in virtual time.
// Test code: it plays the driver and reads the clock.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use super::super::{CENTER, LEFT, RIGHT, SourceId};
use super::*;

fn src(p: u32, pos: u8) -> SourceId {
    SourceId {
        participant: p,
        position: pos,
    }
}

/// Feeds `level` for `source` as 50 packets/s for `ms` milliseconds, updating the floor.
fn talk(s: &mut Switching, t: &mut Instant, sources: &[(SourceId, u8)], ms: u64) {
    for _ in 0..ms / 20 {
        for &(source, level) in sources {
            s.audio_level(*t, source, level);
        }
        *t += Duration::from_millis(20);
        s.update(*t);
    }
}

fn meeting(mode: Mode) -> Switching {
    let mut s = Switching::new(SwitchingConfig {
        mode,
        ..SwitchingConfig::default()
    });
    s.add_participant(1, 3);
    s.add_participant(2, 1);
    s.add_participant(3, 1);
    s
}

#[test]
fn first_speaker_at_once_then_a_new_one_only_after_the_hold_time() {
    let mut s = meeting(Mode::Site);
    let mut t = Instant::now();
    talk(&mut s, &mut t, &[(src(2, CENTER), 60)], 200);
    assert_eq!(s.speaker(), Some(2));
    // 3 gets louder: still 2 after 1.5 s, 3 once it held the floor for 2 s.
    talk(
        &mut s,
        &mut t,
        &[(src(2, CENTER), 20), (src(3, CENTER), 80)],
        1500,
    );
    assert_eq!(s.speaker(), Some(2));
    talk(
        &mut s,
        &mut t,
        &[(src(2, CENTER), 20), (src(3, CENTER), 80)],
        800,
    );
    assert_eq!(s.speaker(), Some(3));
    // The current speaker sees the previous one; the others see the speaker.
    assert_eq!(s.layout(3), vec![(CENTER, src(2, CENTER))]);
    assert_eq!(s.layout(2), vec![(CENTER, src(3, CENTER))]);
}

#[test]
fn a_short_burst_does_not_flap_the_picture() {
    let mut s = meeting(Mode::Site);
    let mut t = Instant::now();
    talk(&mut s, &mut t, &[(src(2, CENTER), 60)], 500);
    talk(
        &mut s,
        &mut t,
        &[(src(2, CENTER), 60), (src(3, CENTER), 95)],
        600,
    );
    talk(&mut s, &mut t, &[(src(2, CENTER), 60)], 3000);
    assert_eq!(s.speaker(), Some(2));
}

#[test]
fn silence_and_presentation_audio_never_take_the_floor() {
    let mut s = meeting(Mode::Site);
    let mut t = Instant::now();
    talk(&mut s, &mut t, &[(src(2, CENTER), 5)], 3000);
    assert_eq!(s.speaker(), None);
    talk(&mut s, &mut t, &[(src(3, CENTER), 99)], 3000);
    assert_eq!(s.speaker(), None);
    // Presentation audio is always heard.
    assert_eq!(s.loudest_audio(t).first(), Some(&src(3, CENTER)));
}

#[test]
fn a_three_screen_site_fills_three_screens_or_puts_its_active_segment_on_center() {
    let mut s = meeting(Mode::Site);
    s.add_participant(4, 3);
    let mut t = Instant::now();
    talk(
        &mut s,
        &mut t,
        &[(src(1, RIGHT), 70), (src(1, CENTER), 10)],
        400,
    );
    assert_eq!(s.speaker(), Some(1));
    assert_eq!(
        s.layout(2),
        vec![(CENTER, src(1, RIGHT))],
        "right camera on a 1-screen center"
    );
    assert_eq!(
        s.layout(4),
        vec![
            (CENTER, src(1, CENTER)),
            (LEFT, src(1, LEFT)),
            (RIGHT, src(1, RIGHT))
        ]
    );
    // The speaker's active segment moves within the site without a hold.
    talk(
        &mut s,
        &mut t,
        &[(src(1, LEFT), 90), (src(1, RIGHT), 10)],
        400,
    );
    assert_eq!(s.layout(2), vec![(CENTER, src(1, LEFT))]);
    // No one sees themselves: the speaker has no previous speaker yet.
    assert_eq!(s.layout(1), vec![]);
}

#[test]
fn segment_mode_switches_each_position_on_its_own() {
    let mut s = meeting(Mode::Segment);
    s.add_participant(4, 3);
    let mut t = Instant::now();
    talk(
        &mut s,
        &mut t,
        &[
            (src(1, LEFT), 70),
            (src(4, RIGHT), 60),
            (src(2, CENTER), 50),
        ],
        400,
    );
    let l3 = s.layout(3);
    assert!(
        !l3.contains(&(LEFT, src(1, LEFT))),
        "1-screen receivers see one screen"
    );
    assert_eq!(l3, vec![(CENTER, src(1, LEFT))], "the loudest segment");
    let l4 = s.layout(4);
    assert!(l4.contains(&(CENTER, src(2, CENTER))));
    assert!(l4.contains(&(LEFT, src(1, LEFT))));
    assert!(
        !l4.iter().any(|(_, x)| x.participant == 4),
        "not its own right camera"
    );
}

#[test]
fn the_loudest_three_are_heard_and_leavers_are_dropped() {
    let mut s = meeting(Mode::Site);
    s.add_participant(4, 1);
    let mut t = Instant::now();
    talk(
        &mut s,
        &mut t,
        &[
            (src(1, CENTER), 30),
            (src(2, CENTER), 60),
            (src(3, CENTER), 50),
            (src(4, CENTER), 40),
        ],
        400,
    );
    assert_eq!(
        s.loudest_audio(t),
        vec![src(2, CENTER), src(3, CENTER), src(4, CENTER)]
    );
    s.remove_participant(2);
    assert_eq!(
        s.loudest_audio(t),
        vec![src(3, CENTER), src(4, CENTER), src(1, CENTER)]
    );
    assert_ne!(s.speaker(), Some(2));
    // Sources that stopped sending are no longer heard.
    assert_eq!(s.loudest_audio(t + Duration::from_secs(1)), vec![]);
    s.audio_level(t, src(99, CENTER), 90); // unknown participant: ignored
    s.audio_level(t, src(3, 7), 90); // no such position: ignored
}

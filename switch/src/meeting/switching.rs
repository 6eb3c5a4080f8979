//! Voice-activated switching (seeds-switch.md R27; ARCHITECTURE.md "Meetings and
//! switching").
//!
//! Every audio packet's activity metric (the appended byte, higher is louder) updates a
//! smoothed level for its source. The loudest source over a silence threshold is the
//! candidate; a candidate takes the floor only after staying the loudest for the whole hold
//! time (default 2 s), so a cough does not flap the picture.
//!
//! - **Site mode**: the floor belongs to a participant; receivers see all of the speaker's
//!   screens (a 3-screen speaker on a 1-screen receiver: its loudest segment on center).
//! - **Segment mode**: each position (left, center, right) switches on its own to the
//!   loudest source at that position; a 1-screen participant competes for center.
//! - The current speaker sees the previous one. The loudest N audio sources (default 3)
//!   are heard by everyone but their sender.

use std::time::{Duration, Instant};

use super::{CENTER, LEFT, ParticipantId, RIGHT, SourceId, positions};

#[cfg(test)]
#[path = "switching_tests.rs"]
mod tests;

/// Switching mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Whole sites switch.
    Site,
    /// Each screen position switches on its own.
    Segment,
}

/// Switching parameters.
#[derive(Debug, Clone, Copy)]
pub struct SwitchingConfig {
    /// Site or segment switching.
    pub mode: Mode,
    /// How long a new speaker must stay the loudest before it is shown.
    pub hold: Duration,
    /// How many audio sources are mixed in (forwarded to everyone else).
    pub loudest_audio: usize,
    /// Smoothed levels below this are silence and never take the floor.
    pub silence: u8,
}

impl Default for SwitchingConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Site,
            hold: Duration::from_secs(2),
            loudest_audio: 3,
            silence: 10,
        }
    }
}

/// Presentation audio carries activity 99 (WIRE.md section 3); it is heard, never shown.
pub const PRESENTATION_LEVEL: u8 = 99;
/// A source with no audio packet for this long is silent (DTX, muted, gone).
const STALE_AFTER: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, Default)]
struct Audio {
    /// Smoothed level x16.
    level: u16,
    last_packet: Option<Instant>,
    /// The last packet said 99: presentation audio.
    presenting: bool,
}

#[derive(Debug, Clone)]
struct Participant {
    id: ParticipantId,
    screens: u8,
    /// Per audio position (index = position - 1).
    audio: [Audio; 3],
}

#[derive(Debug, Clone, Copy, Default)]
struct Floor {
    current: Option<SourceId>,
    previous: Option<SourceId>,
    candidate: Option<(SourceId, Instant)>,
}

impl Floor {
    /// Moves the floor to `loudest` once it held for `hold`; true when it changed.
    fn update(
        &mut self,
        now: Instant,
        loudest: Option<SourceId>,
        hold: Duration,
        same: impl Fn(SourceId, SourceId) -> bool,
    ) -> bool {
        let Some(l) = loudest else {
            self.candidate = None;
            return false;
        };
        if self.current.is_some_and(|c| same(c, l)) {
            self.candidate = None;
            return false;
        }
        // The first speaker of a silent meeting takes the floor at once.
        if self.current.is_none() {
            self.current = Some(l);
            return true;
        }
        match self.candidate {
            Some((c, since)) if same(c, l) => {
                if now.saturating_duration_since(since) >= hold {
                    self.previous = self.current;
                    self.current = Some(l);
                    self.candidate = None;
                    return true;
                }
                false
            }
            _ => {
                self.candidate = Some((l, now));
                false
            }
        }
    }
}

/// The switching state of one meeting.
#[derive(Debug, Clone)]
pub struct Switching {
    config: SwitchingConfig,
    participants: Vec<Participant>,
    /// Site mode: the floor (position = the speaker's loudest segment).
    site: Floor,
    /// Segment mode: one floor per position (index = position - 1).
    segments: [Floor; 3],
}

impl Switching {
    /// An empty meeting.
    pub fn new(config: SwitchingConfig) -> Self {
        Self {
            config,
            participants: Vec::new(),
            site: Floor::default(),
            segments: [Floor::default(); 3],
        }
    }

    /// Site or segment switching.
    pub fn mode(&self) -> Mode {
        self.config.mode
    }

    /// Switches by site or by segment from now on (an operator's choice while the meeting
    /// runs): the floors start again from the current audio levels.
    pub fn set_mode(&mut self, mode: Mode) {
        if self.config.mode != mode {
            self.config.mode = mode;
            self.site = Floor::default();
            self.segments = [Floor::default(); 3];
        }
    }

    /// Adds a participant with 1 or 3 screens.
    pub fn add_participant(&mut self, id: ParticipantId, screens: u8) {
        self.remove_participant(id);
        self.participants.push(Participant {
            id,
            screens: if screens >= 3 { 3 } else { 1 },
            audio: [Audio::default(); 3],
        });
    }

    /// Corrects a participant's screen count (TIP MUXCTRL tells it after the join).
    pub fn set_screens(&mut self, id: ParticipantId, screens: u8) {
        if let Some(p) = self.participants.iter_mut().find(|p| p.id == id) {
            p.screens = if screens >= 3 { 3 } else { 1 };
        }
    }

    /// Removes a participant; it is no longer shown or heard.
    pub fn remove_participant(&mut self, id: ParticipantId) {
        self.participants.retain(|p| p.id != id);
        for f in std::iter::once(&mut self.site).chain(self.segments.iter_mut()) {
            if f.current.is_some_and(|s| s.participant == id) {
                f.current = f.previous.take();
            }
            if f.previous.is_some_and(|s| s.participant == id) {
                f.previous = None;
            }
            if f.candidate.is_some_and(|(s, _)| s.participant == id) {
                f.candidate = None;
            }
        }
    }

    /// One audio packet's activity metric at `now`. Unknown participants and positions are
    /// ignored.
    pub fn audio_level(&mut self, now: Instant, source: SourceId, level: u8) {
        let Some(p) = self
            .participants
            .iter_mut()
            .find(|p| p.id == source.participant)
        else {
            return;
        };
        let Some(a) = p
            .audio
            .get_mut(usize::from(source.position).wrapping_sub(1))
        else {
            return;
        };
        if a.last_packet
            .is_none_or(|t| now.saturating_duration_since(t) > STALE_AFTER)
        {
            a.level = 0; // back from silence: start from nothing, not from an old level
        }
        // EMA with weight 1/8: at 50 packets/s, a time constant of about 160 ms.
        let sample = u16::from(level.min(PRESENTATION_LEVEL)) * 16;
        a.level = a.level - a.level / 8 + sample / 8;
        a.last_packet = Some(now);
        a.presenting = level >= PRESENTATION_LEVEL;
    }

    fn audio(&self, s: SourceId) -> Audio {
        self.participants
            .iter()
            .find(|p| p.id == s.participant)
            .and_then(|p| {
                p.audio
                    .get(usize::from(s.position).wrapping_sub(1))
                    .copied()
            })
            .unwrap_or_default()
    }

    /// Audio sources that sent recently, loudest first (ties by participant and position,
    /// for determinism).
    fn ranked(&self, now: Instant) -> Vec<(SourceId, Audio)> {
        let mut all: Vec<(SourceId, Audio)> = self
            .participants
            .iter()
            .flat_map(|p| {
                positions(p.screens).iter().map(move |&pos| SourceId {
                    participant: p.id,
                    position: pos,
                })
            })
            .map(|s| (s, self.audio(s)))
            .filter(|(_, a)| {
                a.last_packet
                    .is_some_and(|t| now.saturating_duration_since(t) <= STALE_AFTER)
            })
            .collect();
        all.sort_by(|a, b| b.1.level.cmp(&a.1.level).then(a.0.cmp(&b.0)));
        all
    }

    /// May take the floor: audible, and not presentation audio.
    fn loud(&self, a: &Audio) -> bool {
        !a.presenting && a.level >= u16::from(self.config.silence) * 16
    }

    /// Re-evaluates the floors at `now`; true when anything shown changed.
    pub fn update(&mut self, now: Instant) -> bool {
        let hold = self.config.hold;
        match self.config.mode {
            Mode::Site => {
                let loudest = self
                    .ranked(now)
                    .into_iter()
                    .find(|s| self.loud(&s.1))
                    .map(|s| s.0);
                let mut changed = self
                    .site
                    .update(now, loudest, hold, |a, b| a.participant == b.participant);
                // Same site, another segment got louder: follow it without a hold.
                if let (Some(cur), Some(l)) = (self.site.current, loudest)
                    && cur.participant == l.participant
                    && cur.position != l.position
                {
                    self.site.current = Some(l);
                    changed = true;
                }
                changed
            }
            Mode::Segment => {
                let mut changed = false;
                for pos in [CENTER, LEFT, RIGHT] {
                    let screens_of = |id| {
                        self.participants
                            .iter()
                            .find(|p| p.id == id)
                            .map_or(1, |p| p.screens)
                    };
                    // 1-screen sources compete for center; 3-screen segments for their own.
                    let loudest = self
                        .ranked(now)
                        .into_iter()
                        .filter(|s| self.loud(&s.1))
                        .find(|(s, _)| {
                            if screens_of(s.participant) == 1 {
                                pos == CENTER
                            } else {
                                s.position == pos
                            }
                        })
                        .map(|s| s.0);
                    changed |=
                        self.segments[usize::from(pos) - 1]
                            .update(now, loudest, hold, |a, b| a == b);
                }
                changed
            }
        }
    }

    /// The current site speaker (site mode).
    pub fn speaker(&self) -> Option<ParticipantId> {
        match self.config.mode {
            Mode::Site => self.site.current.map(|s| s.participant),
            Mode::Segment => self.segments[usize::from(CENTER) - 1]
                .current
                .map(|s| s.participant),
        }
    }

    /// What `receiver` should see on each of its screens: `(screen position, source)`.
    /// Never the receiver's own media.
    pub fn layout(&self, receiver: ParticipantId) -> Vec<(u8, SourceId)> {
        let Some(rx) = self.participants.iter().find(|p| p.id == receiver) else {
            return Vec::new();
        };
        let not_me = |s: &Option<SourceId>| s.filter(|s| s.participant != receiver);
        match self.config.mode {
            Mode::Site => {
                // The speaker sees the previous speaker.
                let Some(shown) = not_me(&self.site.current).or(not_me(&self.site.previous)) else {
                    return Vec::new();
                };
                let src_screens = self
                    .participants
                    .iter()
                    .find(|p| p.id == shown.participant)
                    .map_or(1, |p| p.screens);
                match (rx.screens, src_screens) {
                    (3, 3) => positions(3)
                        .iter()
                        .map(|&pos| {
                            (
                                pos,
                                SourceId {
                                    position: pos,
                                    ..shown
                                },
                            )
                        })
                        .collect(),
                    // A 3-screen source on a 1-screen receiver: its active segment on center.
                    (_, 3) => vec![(CENTER, shown)],
                    // A 1-screen source: on center.
                    _ => vec![(
                        CENTER,
                        SourceId {
                            position: CENTER,
                            ..shown
                        },
                    )],
                }
            }
            Mode::Segment => {
                if rx.screens == 3 {
                    [CENTER, LEFT, RIGHT]
                        .into_iter()
                        .filter_map(|pos| {
                            let f = &self.segments[usize::from(pos) - 1];
                            not_me(&f.current).or(not_me(&f.previous)).map(|s| (pos, s))
                        })
                        .collect()
                } else {
                    // A 1-screen receiver sees the loudest segment shown anywhere.
                    let mut shown: Vec<SourceId> = self
                        .segments
                        .iter()
                        .filter_map(|f| not_me(&f.current))
                        .collect();
                    shown.sort_by_key(|&s| std::cmp::Reverse(self.audio(s).level));
                    shown
                        .first()
                        .map(|&s| vec![(CENTER, s)])
                        .unwrap_or_default()
                }
            }
        }
    }

    /// The audio sources mixed in at `now`: presentation audio always, then the loudest,
    /// N in all; each is heard by everyone but its sender.
    pub fn loudest_audio(&self, now: Instant) -> Vec<SourceId> {
        let ranked = self.ranked(now);
        let mut out: Vec<SourceId> = ranked
            .iter()
            .filter(|s| s.1.presenting)
            .map(|s| s.0)
            .collect();
        let room = self.config.loudest_audio.saturating_sub(out.len());
        out.extend(
            ranked
                .iter()
                .filter(|s| !s.1.presenting && s.1.level > 0)
                .map(|s| s.0)
                .take(room),
        );
        out
    }
}

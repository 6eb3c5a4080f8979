//! Receiver screens switch only at a refresh point (seeds-switch.md R27; WIRE.md section 3:
//! video X = 1 on the first packet of an IDR). When a screen should show a new source, the
//! switch asks that source for a refresh (REFRESH) and keeps forwarding the old source
//! until the new one's first packet flagged IDR; from that packet on, the new source is
//! forwarded and the old one no longer.
//!
//! A receiver that cannot receive yet (its video line's TIP is not through) switches
//! nothing: an IDR it would miss must not move its screen. When it becomes ready, its
//! waiting sources are asked for a refresh again, so that its first picture starts at an
//! IDR (issue 15: a late joiner started mid-stream).

use super::{ParticipantId, SourceId};

#[derive(Debug, Clone, Copy)]
struct Screen {
    receiver: ParticipantId,
    position: u8,
    shown: Option<SourceId>,
    pending: Option<SourceId>,
}

/// Every receiver screen of a meeting.
#[derive(Debug, Clone, Default)]
pub struct Displays {
    screens: Vec<Screen>,
    /// Receivers whose screens may not switch yet.
    not_ready: Vec<ParticipantId>,
}

impl Displays {
    /// No screens.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets what `receiver` should see, `(screen position, source)`. Sources that become
    /// wanted on a screen that does not show them yet are pushed to `refresh` (each once):
    /// the caller sends them a REFRESH. Screens left out of `layout` go blank.
    pub fn set_layout(
        &mut self,
        receiver: ParticipantId,
        layout: &[(u8, SourceId)],
        refresh: &mut Vec<SourceId>,
    ) {
        for s in self.screens.iter_mut().filter(|s| s.receiver == receiver) {
            if !layout.iter().any(|(pos, _)| *pos == s.position) {
                s.shown = None;
                s.pending = None;
            }
        }
        for &(position, source) in layout {
            let i = match self
                .screens
                .iter()
                .position(|s| s.receiver == receiver && s.position == position)
            {
                Some(i) => i,
                None => {
                    self.screens.push(Screen {
                        receiver,
                        position,
                        shown: None,
                        pending: None,
                    });
                    self.screens.len() - 1
                }
            };
            let s = &mut self.screens[i];
            if s.shown == Some(source) {
                s.pending = None;
            } else if s.pending != Some(source) {
                s.pending = Some(source);
                if !refresh.contains(&source) {
                    refresh.push(source);
                }
            }
        }
    }

    /// Whether `receiver` can take video: a receiver that cannot switches no screen. On
    /// becoming ready, the sources its screens wait for are pushed to `refresh` (each
    /// once) for the caller to ask again: the IDRs they sent are gone.
    pub fn set_ready(&mut self, receiver: ParticipantId, ready: bool, refresh: &mut Vec<SourceId>) {
        let was_ready = !self.not_ready.contains(&receiver);
        if !ready {
            if was_ready {
                self.not_ready.push(receiver);
            }
            return;
        }
        if was_ready {
            return;
        }
        self.not_ready.retain(|r| *r != receiver);
        for s in self.screens.iter().filter(|s| s.receiver == receiver) {
            if let Some(source) = s.pending
                && !refresh.contains(&source)
            {
                refresh.push(source);
            }
        }
    }

    /// Whether `receiver`'s screens may switch.
    pub fn is_ready(&self, receiver: ParticipantId) -> bool {
        !self.not_ready.contains(&receiver)
    }

    /// Forgets a participant: its screens, and it as a source.
    pub fn remove_participant(&mut self, id: ParticipantId) {
        self.not_ready.retain(|r| *r != id);
        self.screens.retain(|s| s.receiver != id);
        for s in &mut self.screens {
            if s.shown.is_some_and(|x| x.participant == id) {
                s.shown = None;
            }
            if s.pending.is_some_and(|x| x.participant == id) {
                s.pending = None;
            }
        }
    }

    /// Routes one video packet of `source`: calls `deliver(receiver, screen position)` for
    /// every screen that shows it. `idr` marks the first packet of an IDR, where waiting
    /// screens switch to it.
    pub fn route_video(
        &mut self,
        source: SourceId,
        idr: bool,
        mut deliver: impl FnMut(ParticipantId, u8),
    ) {
        for s in &mut self.screens {
            if idr && s.pending == Some(source) && !self.not_ready.contains(&s.receiver) {
                s.shown = s.pending.take();
            }
            if s.shown == Some(source) && s.receiver != source.participant {
                deliver(s.receiver, s.position);
            }
        }
    }

    /// The source `receiver` currently sees on `position`: where its keyframe requests
    /// (REFRESH, FIR, PLI) go.
    pub fn shown(&self, receiver: ParticipantId, position: u8) -> Option<SourceId> {
        self.screens
            .iter()
            .find(|s| s.receiver == receiver && s.position == position)
            .and_then(|s| s.shown)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{CENTER, LEFT};
    use super::*;

    fn src(p: u32) -> SourceId {
        SourceId {
            participant: p,
            position: CENTER,
        }
    }

    fn routed(d: &mut Displays, s: SourceId, idr: bool) -> Vec<(u32, u8)> {
        let mut v = Vec::new();
        d.route_video(s, idr, |r, pos| v.push((r, pos)));
        v
    }

    #[test]
    fn switch_waits_for_the_refresh_point() {
        let mut d = Displays::new();
        let mut refresh = Vec::new();
        d.set_layout(9, &[(CENTER, src(1))], &mut refresh);
        assert_eq!(refresh, vec![src(1)]);
        assert_eq!(routed(&mut d, src(1), false), vec![], "not before its IDR");
        assert_eq!(routed(&mut d, src(1), true), vec![(9, CENTER)]);
        assert_eq!(routed(&mut d, src(1), false), vec![(9, CENTER)]);

        refresh.clear();
        d.set_layout(9, &[(CENTER, src(2))], &mut refresh);
        d.set_layout(9, &[(CENTER, src(2))], &mut refresh);
        assert_eq!(refresh, vec![src(2)], "one REFRESH per newly wanted source");
        // The old source stays on screen until the new one's IDR.
        assert_eq!(routed(&mut d, src(1), false), vec![(9, CENTER)]);
        assert_eq!(routed(&mut d, src(2), false), vec![]);
        assert_eq!(d.shown(9, CENTER), Some(src(1)));
        assert_eq!(routed(&mut d, src(2), true), vec![(9, CENTER)]);
        assert_eq!(routed(&mut d, src(1), false), vec![]);
        assert_eq!(d.shown(9, CENTER), Some(src(2)));
    }

    #[test]
    fn switching_back_before_the_idr_cancels_the_wait() {
        let mut d = Displays::new();
        let mut refresh = Vec::new();
        d.set_layout(9, &[(CENTER, src(1))], &mut refresh);
        routed(&mut d, src(1), true);
        d.set_layout(9, &[(CENTER, src(2))], &mut refresh);
        d.set_layout(9, &[(CENTER, src(1))], &mut refresh);
        assert_eq!(routed(&mut d, src(2), true), vec![]);
        assert_eq!(routed(&mut d, src(1), false), vec![(9, CENTER)]);
    }

    #[test]
    fn a_receiver_not_ready_switches_nothing_and_asks_again_when_ready() {
        let mut d = Displays::new();
        let mut refresh = Vec::new();
        d.set_ready(9, false, &mut refresh);
        d.set_layout(9, &[(CENTER, src(1))], &mut refresh);
        assert_eq!(refresh, vec![src(1)]);
        assert_eq!(
            routed(&mut d, src(1), true),
            vec![],
            "an IDR it cannot take"
        );
        assert_eq!(d.shown(9, CENTER), None, "the screen did not move");
        refresh.clear();
        d.set_ready(9, true, &mut refresh);
        assert_eq!(refresh, vec![src(1)], "asked again");
        assert_eq!(routed(&mut d, src(1), false), vec![], "not mid-stream");
        assert_eq!(routed(&mut d, src(1), true), vec![(9, CENTER)]);
        refresh.clear();
        d.set_ready(9, true, &mut refresh);
        assert!(refresh.is_empty(), "ready once");
    }

    #[test]
    fn no_one_receives_their_own_media_and_leavers_vanish() {
        let mut d = Displays::new();
        let mut refresh = Vec::new();
        d.set_layout(1, &[(CENTER, src(1)), (LEFT, src(2))], &mut refresh);
        assert_eq!(routed(&mut d, src(1), true), vec![]);
        assert_eq!(routed(&mut d, src(2), true), vec![(1, LEFT)]);
        d.remove_participant(2);
        assert_eq!(d.shown(1, LEFT), None);
        d.remove_participant(1);
        assert_eq!(d.shown(1, CENTER), None);
        // Screens left out of a new layout go blank.
        d.set_layout(5, &[(CENTER, src(3)), (LEFT, src(4))], &mut refresh);
        routed(&mut d, src(4), true);
        d.set_layout(5, &[(CENTER, src(3))], &mut refresh);
        assert_eq!(routed(&mut d, src(4), false), vec![]);
    }
}

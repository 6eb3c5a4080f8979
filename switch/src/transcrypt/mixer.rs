//! The audio mix for standard endpoints (issue 19): every source that can be decoded
//! (G.711) fills a small buffer with its samples as they arrive; every 20 ms the mixer
//! takes one frame from each, ranks them by level, and each receiver gets the sum of the
//! loudest three that are not its own voice. Memory is reserved when a source first
//! appears; a frame allocates nothing.

/// Samples per 20 ms frame at 8 kHz (RFC 3551 §4.5: the default G.711 packet time).
pub const FRAME: usize = 160;
/// How many sources a receiver hears.
pub const MIXED: usize = 3;
/// A source's buffer holds this much: 200 ms. Older samples are dropped first (the source's
/// clock runs ahead of ours).
const CAPACITY: usize = 10 * FRAME;
/// A source starts playing once this much is buffered (40 ms of jitter absorbed).
const PRIME: usize = 2 * FRAME;

/// Whose voice a source is: its owner never hears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MixKey<K> {
    /// The participant.
    pub owner: u32,
    /// The source within the meeting.
    pub source: K,
}

struct Source<K> {
    key: MixKey<K>,
    ring: Box<[i16; CAPACITY]>,
    start: usize,
    len: usize,
    primed: bool,
    frame: [i16; FRAME],
    /// Energy of the current frame (sum of squares), 0 when it had no samples.
    energy: u64,
    /// Frames since a sample last arrived: a silent source leaves after a second.
    idle: u32,
}

impl<K> Source<K> {
    fn push(&mut self, s: i16) {
        if self.len == CAPACITY {
            self.start = (self.start + 1) % CAPACITY;
            self.len -= 1;
        }
        self.ring[(self.start + self.len) % CAPACITY] = s;
        self.len += 1;
    }

    fn take_frame(&mut self) {
        self.primed |= self.len >= PRIME;
        if !self.primed || self.len == 0 {
            self.frame = [0; FRAME];
            self.energy = 0;
            self.primed = false;
            self.idle += 1;
            return;
        }
        let n = self.len.min(FRAME);
        let mut energy = 0u64;
        for (i, out) in self.frame.iter_mut().enumerate() {
            *out = if i < n {
                self.ring[(self.start + i) % CAPACITY]
            } else {
                0
            };
            energy += (i64::from(*out) * i64::from(*out)) as u64;
        }
        self.start = (self.start + n) % CAPACITY;
        self.len -= n;
        self.energy = energy.max(1);
        self.idle = 0;
    }
}

/// The meeting's mixer.
pub struct Mixer<K> {
    sources: Vec<Source<K>>,
    /// Indices of the sources ranked by this frame's energy, loudest first.
    ranked: Vec<usize>,
}

impl<K> std::fmt::Debug for Mixer<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mixer")
            .field("sources", &self.sources.len())
            .finish()
    }
}

impl<K: Copy + Eq> Default for Mixer<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Copy + Eq> Mixer<K> {
    /// An empty mixer.
    pub fn new() -> Self {
        Self {
            sources: Vec::new(),
            ranked: Vec::new(),
        }
    }

    /// Decoded samples from `key`, in arrival order.
    pub fn push(&mut self, key: MixKey<K>, samples: impl IntoIterator<Item = i16>) {
        let i = match self.sources.iter().position(|s| s.key == key) {
            Some(i) => i,
            None => {
                self.sources.push(Source {
                    key,
                    ring: Box::new([0; CAPACITY]),
                    start: 0,
                    len: 0,
                    primed: false,
                    frame: [0; FRAME],
                    energy: 0,
                    idle: 0,
                });
                self.sources.len() - 1
            }
        };
        let s = &mut self.sources[i];
        for x in samples {
            s.push(x);
        }
    }

    /// Forgets a participant's sources (it left).
    pub fn remove_owner(&mut self, owner: u32) {
        self.sources.retain(|s| s.key.owner != owner);
    }

    /// The next 20 ms: takes a frame from every source and ranks them.
    pub fn tick(&mut self) {
        for s in &mut self.sources {
            s.take_frame();
        }
        self.sources.retain(|s| s.idle < 50);
        self.ranked.clear();
        self.ranked
            .extend((0..self.sources.len()).filter(|&i| self.sources[i].energy > 0));
        let sources = &self.sources;
        self.ranked
            .sort_by(|&a, &b| sources[b].energy.cmp(&sources[a].energy));
    }

    /// The frame `receiver` hears: the loudest [`MIXED`] sources that are not its own,
    /// summed with saturation; false (and silence) when nobody else speaks.
    pub fn mix_for(&self, receiver: u32, out: &mut [i16; FRAME]) -> bool {
        let mut acc = [0i32; FRAME];
        let mut any = false;
        for &i in self
            .ranked
            .iter()
            .filter(|&&i| self.sources[i].key.owner != receiver)
            .take(MIXED)
        {
            any = true;
            for (a, s) in acc.iter_mut().zip(&self.sources[i].frame) {
                *a += i32::from(*s);
            }
        }
        for (o, a) in out.iter_mut().zip(acc) {
            *o = a.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
        }
        any
    }

    /// The sources in this frame's mix for `receiver`, loudest first.
    pub fn heard_by(&self, receiver: u32) -> impl Iterator<Item = MixKey<K>> + '_ {
        self.ranked
            .iter()
            .map(|&i| self.sources[i].key)
            .filter(move |k| k.owner != receiver)
            .take(MIXED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(owner: u32) -> MixKey<u8> {
        MixKey { owner, source: 1 }
    }

    fn feed(m: &mut Mixer<u8>, owner: u32, value: i16, frames: usize) {
        m.push(key(owner), std::iter::repeat_n(value, frames * FRAME));
    }

    #[test]
    fn the_loudest_three_others_are_summed_and_never_ones_own() {
        let mut m = Mixer::new();
        for (owner, v) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1600)] {
            feed(&mut m, owner, v, 3);
        }
        m.tick();
        let mut out = [0; FRAME];
        // 5 hears 4, 3, 2.
        assert!(m.mix_for(5, &mut out));
        assert_eq!(out[0], 800 + 400 + 200);
        // 1 hears 5, 4, 3.
        m.mix_for(1, &mut out);
        assert_eq!(out[7], 1600 + 800 + 400);
        assert_eq!(
            m.heard_by(4).map(|k| k.owner).collect::<Vec<_>>(),
            vec![5, 3, 2]
        );
    }

    #[test]
    fn a_lone_speaker_hears_silence_and_the_sum_saturates() {
        let mut m = Mixer::new();
        feed(&mut m, 1, 30_000, 3);
        m.tick();
        let mut out = [1; FRAME];
        assert!(!m.mix_for(1, &mut out));
        assert_eq!(out, [0; FRAME]);
        feed(&mut m, 2, 30_000, 3);
        feed(&mut m, 3, 30_000, 3);
        m.tick();
        m.mix_for(4, &mut out);
        assert_eq!(out[0], i16::MAX);
    }

    #[test]
    fn a_source_waits_for_its_prime_and_then_drains_in_order() {
        let mut m = Mixer::new();
        m.push(key(1), (0..FRAME as i16).map(|i| i + 1));
        m.tick();
        let mut out = [0; FRAME];
        assert!(!m.mix_for(2, &mut out), "one frame is not enough to start");
        m.push(key(1), (0..FRAME as i16).map(|i| -i - 1));
        m.tick();
        assert!(m.mix_for(2, &mut out));
        assert_eq!(out[0], 1);
        assert_eq!(out[FRAME - 1], FRAME as i16);
        m.tick();
        m.mix_for(2, &mut out);
        assert_eq!(out[0], -1);
        // Dry: silence, and it must prime again.
        m.tick();
        assert!(!m.mix_for(2, &mut out));
    }

    #[test]
    fn a_source_running_ahead_loses_its_oldest_samples() {
        let mut m = Mixer::new();
        m.push(
            key(1),
            (0..(CAPACITY + 10) as i32).map(|i| (i % 30_000) as i16),
        );
        m.tick();
        let mut out = [0; FRAME];
        m.mix_for(2, &mut out);
        assert_eq!(out[0], 10);
        m.remove_owner(1);
        m.tick();
        assert!(!m.mix_for(2, &mut out));
    }
}

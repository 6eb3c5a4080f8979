//! The TIP parameters of a call's lines (LineConfig): the meeting's group key per medium,
//! the endpoint's positions and the TIP deadlines. Pure; the driver adds the sockets and
//! the per-hop keying.

use std::time::Duration;

use sip::sdp::{Description, MediaKind};
use sip::security::Keying;
use switch::tip::negotiation::{GroupParams, LineConfig, Media};

/// Screens of an endpoint: 3 when its video line announces three or more sources
/// (a=ssrc), else 1: the meeting's first guess at the join; the video line's TIP MUXCTRL
/// (the streams the endpoint receives) corrects it.
pub fn screens(offer: &Description) -> u8 {
    let video = offer
        .media
        .iter()
        .find(|m| m.kind == Some(MediaKind::Video));
    if video.is_some_and(|v| v.ssrcs.len() >= 3) {
        3
    } else {
        1
    }
}

/// When a call's lines are taken as a standard endpoint's (issue 19): at once when its
/// User-Agent contains one of `marks` (lower case), else after `after` without TIP
/// (`None`: never).
pub fn standard_detection(
    user_agent: Option<&str>,
    marks: &[String],
    after: Option<Duration>,
) -> Option<Duration> {
    let marked = user_agent.is_some_and(|ua| {
        let ua = ua.to_lowercase();
        marks.iter().any(|m| ua.contains(m.as_str()))
    });
    if marked { Some(Duration::ZERO) } else { after }
}

/// What every line of one call shares.
#[derive(Debug, Clone)]
pub struct CallLines<'a> {
    /// The called number (the TIP seed lines carry it).
    pub number: &'a str,
    /// The meeting's conference id.
    pub conf_id: u64,
    /// The meeting's group parameters: audio, video.
    pub groups: &'a [GroupParams; 2],
    /// The endpoint's screens (1 or 3).
    pub screens: u8,
    /// TIP MUXCTRL deadline.
    pub muxctrl_deadline: Duration,
    /// TIP SPIMAP deadline.
    pub spimap_deadline: Duration,
    /// NTP time at the start (TIP timestamps).
    pub ntp_at_start: u64,
}

impl CallLines<'_> {
    /// One line's TIP configuration: keyed lines carry the meeting's group key for their
    /// medium in SPIMAP; a plain line has none (a non-secure meeting's TIP has no SPIMAP,
    /// R33). A 3-screen endpoint takes positions left, center and right.
    pub fn config(&self, media: Media, keying: &Keying, control_ssrc: u32) -> LineConfig {
        let mut config = LineConfig::new(media, control_ssrc, self.number);
        config.conf_id = self.conf_id;
        config.group = (!matches!(keying, Keying::Plain))
            .then(|| self.groups[usize::from(media == Media::Video)].clone());
        config.positions = if self.screens == 3 { 0b1110 } else { 0b10 };
        config.ntp_at_start = self.ntp_at_start;
        config.muxctrl_deadline = self.muxctrl_deadline;
        config.spimap_deadline = self.spimap_deadline;
        config
    }
}

//! Offer/answer after the call is admitted: a peer's re-INVITE or UPDATE (hold, resume, a
//! moved address, a refused change of keying), the answer to our delayed offer, and the
//! answer to our RTP/AVP re-INVITE of a downgrade. Pure: the driver redirects legs,
//! joins and answers as decided.

use std::net::SocketAddr;

use sip::sdp::{self, Description, MediaOffer, Profile};
use sip::security::{DeviceSecurity, Keying};
use switch::tip::negotiation::Media;

use super::Refusal;

/// A line the peer moved in a re-offer: its legs must send to the new addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MovedLine {
    /// Which of the call's lines.
    pub media: Media,
    /// Its new RTP (or multiplexed) address.
    pub rtp: SocketAddr,
    /// Its new RTCP address (used when the line has its own RTCP leg).
    pub rtcp: SocketAddr,
}

/// What to do with a re-offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReofferDecision {
    /// A re-INVITE without SDP: our current SDP is the offer.
    OfferCurrent,
    /// Answer with this SDP; these lines moved.
    Answer {
        /// Our answer (RFC 3264 §6.1 directions, §8 version).
        sdp: Vec<u8>,
        /// The lines whose peer address changed.
        moved: Vec<MovedLine>,
    },
    /// Refused with 488; the session goes on as it was (RFC 3261 §14.2).
    Refuse(Refusal),
}

/// The media kind of an m-line as the meeting knows it.
pub fn media_of(kind: sdp::MediaKind) -> Media {
    match kind {
        sdp::MediaKind::Audio => Media::Audio,
        sdp::MediaKind::Video => Media::Video,
    }
}

fn secure(m: &MediaOffer) -> bool {
    m.profile.is_some_and(Profile::is_secure)
}

/// Whether a re-offer keys its media differently from the session (per line: SRTP or not,
/// the DTLS fingerprint, the first SDES key): this switch does not re-key a running line.
pub fn keying_changed(before: &Description, offer: &Description) -> bool {
    offer.media.iter().zip(&before.media).any(|(o, b)| {
        let key = |m: &MediaOffer| m.crypto.first().map(|c| c.key_salt.clone());
        o.port != 0
            && (secure(o) != secure(b)
                || (o.fingerprint.is_some() && o.fingerprint != b.fingerprint)
                || (key(o).is_some() && key(o) != key(b)))
    })
}

/// A re-INVITE or UPDATE from the peer of a call whose last SDPs are `ours` and
/// `theirs`. Hold and resume are answered with the matching direction and a moved
/// address redirects the line; a change of keying or of lines is refused.
pub fn decide_reoffer(
    ours: &[u8],
    theirs: Option<&Description>,
    offer: Option<&Description>,
) -> ReofferDecision {
    let Some(offer) = offer else {
        return ReofferDecision::OfferCurrent;
    };
    if theirs.is_some_and(|before| keying_changed(before, offer)) {
        return ReofferDecision::Refuse(Refusal::KeyingChanged);
    }
    let sdp = match sdp::reanswer(ours, offer) {
        Ok(a) => a,
        Err(e) => return ReofferDecision::Refuse(Refusal::Unanswerable(e.to_string())),
    };
    let place = |m: &MediaOffer| (m.address, m.port, m.rtcp_addr());
    let moved = offer
        .media
        .iter()
        .enumerate()
        .filter_map(|(i, o)| {
            let before = theirs.and_then(|d| d.media.get(i))?;
            let kind = o.kind?;
            (o.port != 0 && place(o) != place(before)).then(|| MovedLine {
                media: media_of(kind),
                rtp: SocketAddr::new(o.address, o.port),
                rtcp: o.rtcp_addr(),
            })
        })
        .collect();
    ReofferDecision::Answer { sdp, moved }
}

/// The keying of each line of the answer to our delayed offer (`offered`): plain when we
/// offered plain RTP, else what the mode makes of the answered line; `None` for a line
/// the answer refused (port 0) or one that does not fit.
pub fn delayed_answer_keyings(
    offered: &Description,
    answer: &Description,
    mode: DeviceSecurity,
    sdes_suites: &[&str],
) -> Vec<Option<Keying>> {
    let we_offered_plain = offered_plain(offered);
    answer
        .media
        .iter()
        .map(|m| {
            if m.port == 0 {
                None
            } else if we_offered_plain {
                Some(Keying::Plain)
            } else {
                mode.keying(m, sdes_suites).ok()
            }
        })
        .collect()
}

/// Whether our offer was plain RTP on every line.
pub fn offered_plain(offered: &Description) -> bool {
    offered.media.iter().all(|m| !secure(m))
}

/// The profile of our delayed offer: plain RTP to a meeting that already is non-secure (no
/// downgrade to come), else the mode's.
pub fn delayed_offer_profile(mode: DeviceSecurity, meeting_is_plain: bool) -> Profile {
    if meeting_is_plain {
        Profile::Avp
    } else {
        mode.offer_profile()
    }
}

/// The answer to our RTP/AVP re-INVITE of a downgrade: each usable line plain, or a
/// refusal when the answer keeps SRTP on any line.
pub fn downgrade_answer_keyings(answer: &Description) -> Result<Vec<Option<Keying>>, Refusal> {
    let still_secure = answer
        .media
        .iter()
        .any(|m| m.port != 0 && m.profile.is_none_or(Profile::is_secure));
    if still_secure {
        return Err(Refusal::StillSecure);
    }
    Ok(answer
        .media
        .iter()
        .map(|m| (m.port != 0 && m.kind.is_some()).then_some(Keying::Plain))
        .collect())
}

//! Any TIP packet, decoded by subtype.

use super::header::{APP_NAME, RTCP_APP_PT};
use super::mediaopts::{self, MediaOpts};
use super::muxctrl::{self, MuxCtrl};
use super::simple::{ACK_FLAG, NOTIFY, Notify, REFRESH, REQTOSEND, Refresh, ReqToSend};
use super::spimap::{self, Spimap};
use super::{AppHeader, TipError};

/// A decoded TIP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TipPacket {
    /// Multiplexer negotiation.
    MuxCtrl(MuxCtrl),
    /// Media options.
    MediaOpts(MediaOpts),
    /// EKT group parameters.
    Spimap(Box<Spimap>),
    /// Refresh request.
    Refresh(Refresh),
    /// Notification (security icon).
    Notify(Notify),
    /// Request to send.
    ReqToSend(ReqToSend),
    /// An ACK of the request with `subtype` and `ntp`.
    Ack {
        /// Acknowledged request's subtype (without the ACK flag).
        subtype: u8,
        /// Sender SSRC.
        ssrc: u32,
        /// The acknowledged request's NTP timestamp.
        ntp: u64,
    },
    /// A request this implementation does not act on (TIPECHO, flow control, ...): it is
    /// still acknowledged.
    Other(AppHeader),
}

impl TipPacket {
    /// True when `buf` is an RTCP APP packet named "xcts".
    pub fn is_tip(buf: &[u8]) -> bool {
        buf.len() >= 12 && buf[0] >> 6 == 2 && buf[1] == RTCP_APP_PT && buf[8..12] == APP_NAME
    }

    /// Decodes one TIP packet.
    pub fn decode(buf: &[u8]) -> Result<Self, TipError> {
        if !Self::is_tip(buf) {
            return Err(TipError::NotTip);
        }
        match buf[0] & 0x1f {
            muxctrl::SUBTYPE => MuxCtrl::decode(buf).map(Self::MuxCtrl),
            mediaopts::SUBTYPE => MediaOpts::decode(buf).map(Self::MediaOpts),
            spimap::SUBTYPE => Spimap::decode(buf).map(|s| Self::Spimap(Box::new(s))),
            REFRESH => Refresh::decode(buf).map(Self::Refresh),
            NOTIFY => Notify::decode(buf).map(Self::Notify),
            REQTOSEND => ReqToSend::decode(buf).map(Self::ReqToSend),
            s if s & ACK_FLAG != 0 => {
                let (h, _) = AppHeader::decode(buf)?;
                Ok(Self::Ack {
                    subtype: s & !ACK_FLAG,
                    ssrc: h.ssrc,
                    ntp: h.ntp,
                })
            }
            _ => AppHeader::decode(buf).map(|(h, _)| Self::Other(h)),
        }
    }

    /// For a request: its subtype, sender and NTP timestamp (what its ACK carries).
    pub fn request_id(&self) -> Option<(u8, u32, u64)> {
        let h = |h: &AppHeader| Some((h.subtype, h.ssrc, h.ntp));
        match self {
            Self::MuxCtrl(m) => Some((muxctrl::SUBTYPE, m.ssrc, m.ntp)),
            Self::MediaOpts(m) => h(&m.header),
            Self::Spimap(s) => h(&s.header),
            Self::Refresh(r) => h(&r.header),
            Self::Notify(n) => h(&n.header),
            Self::ReqToSend(r) => h(&r.header),
            Self::Other(o) => h(o),
            Self::Ack { .. } => None,
        }
    }
}

//! A TIP EKT sender: one source's SRTP context and its master key encrypted under the
//! meeting's KEK, writing full or short EKT tags (WIRE.md section 2; the endpoint side of
//! seed 002 l.1773). Used by the endpoint simulator, tests, benches and fuzzers.

use ekt::{ParameterSet, Spi, SrtpProfile};

use super::{MasterKey, SrtpContext, SrtpError, Suite, TipTrailer};

/// Longest EMK: AES-KW of a 32-byte key.
const MAX_EMK_LEN: usize = 40;

fn trailer(emk: &[u8], isn: u16, spi: Spi, full: bool) -> TipTrailer<'_> {
    if full {
        TipTrailer::Full { emk, isn, spi }
    } else {
        TipTrailer::Short
    }
}

/// A source that announces its own master key in TIP EKT tags.
pub struct TipEktSender {
    ctx: SrtpContext,
    emk: [u8; MAX_EMK_LEN],
    emk_len: usize,
    spi: Spi,
    isn: u16,
}

impl std::fmt::Debug for TipEktSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TipEktSender")
            .field("spi", &self.spi)
            .field("isn", &self.isn)
            .finish_non_exhaustive()
    }
}

impl TipEktSender {
    /// A sender with `master_key`, under the parameter set `params` bound to `spi`: the
    /// set's salt keys the SRTP context and its KEK encrypts the key into the EMK.
    pub fn new(master_key: &[u8], params: &ParameterSet, spi: Spi) -> Result<Self, SrtpError> {
        if params.profile() != SrtpProfile::AesCm128HmacSha1_80 {
            return Err(SrtpError::UnsupportedSuite);
        }
        let suite = Suite::AesCm128HmacSha1_80;
        let master = MasterKey::new(suite, master_key, params.master_salt())?;
        let mut emk = [0u8; MAX_EMK_LEN];
        let emk_len = params
            .kek()
            .wrap(master_key, &mut emk)
            .map_err(|_| SrtpError::BadKeyLength)?;
        Ok(Self {
            ctx: SrtpContext::new(suite, &master),
            emk,
            emk_len,
            spi,
            isn: 0,
        })
    }

    /// Sets the ISN carried in full tags: the first sequence number under this key, or 0
    /// once the sequence number wrapped since (WIRE.md section 7).
    pub fn set_isn(&mut self, isn: u16) {
        self.isn = isn;
    }

    /// The SRTP context (ROC, etc.).
    pub fn context_mut(&mut self) -> &mut SrtpContext {
        &mut self.ctx
    }

    /// Protects the RTP packet in `buf[..len]` with a full or short EKT tag, and the
    /// appended byte if the line negotiated it.
    pub fn protect_rtp(
        &mut self,
        buf: &mut [u8],
        len: usize,
        appended: Option<u8>,
        full: bool,
    ) -> Result<usize, SrtpError> {
        let trailer = trailer(&self.emk[..self.emk_len], self.isn, self.spi, full);
        self.ctx.protect_rtp_tip(buf, len, appended, trailer)
    }

    /// Protects an RTCP packet (the EKT SDES packet) with a full or short EKT tag.
    pub fn protect_rtcp(
        &mut self,
        buf: &mut [u8],
        len: usize,
        full: bool,
    ) -> Result<usize, SrtpError> {
        let trailer = trailer(&self.emk[..self.emk_len], self.isn, self.spi, full);
        self.ctx.protect_rtcp_tip(buf, len, trailer)
    }
}

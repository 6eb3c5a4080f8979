//! Per-sender state on the forwarding path: the sender's keys (learned from EKT or
//! configured), its packet index and its replay windows.

use ekt::{ParameterSet, Spi};
use zeroize::Zeroize;

use super::gcm::{GcmAuth, GhashEngine};
use super::stats::DropReason;
use crate::srtp::{IndexTracker, MasterKey, ReplayWindow, SrtpContext, Suite, Transform};

/// Hashing for the SSRC -> source table: a folded 64x64 multiply of the SSRC with two
/// per-table random keys (the foldhash construction). SipHash measured ~25 ns per packet on
/// the fast path; this is a few. Sources are created only by packets that verified, and the
/// random keys keep collisions unpredictable even to a participant.
#[derive(Clone)]
pub(crate) struct SsrcHashBuilder {
    k0: u64,
    k1: u64,
}

impl SsrcHashBuilder {
    pub(crate) fn new() -> Self {
        use std::hash::BuildHasher;
        let rs = std::collections::hash_map::RandomState::new();
        Self {
            k0: rs.hash_one(0u8),
            k1: rs.hash_one(1u8) | 1,
        }
    }
}

impl std::hash::BuildHasher for SsrcHashBuilder {
    type Hasher = SsrcHasher;
    fn build_hasher(&self) -> SsrcHasher {
        SsrcHasher {
            k0: self.k0,
            k1: self.k1,
            h: 0,
        }
    }
}

pub(crate) struct SsrcHasher {
    k0: u64,
    k1: u64,
    h: u64,
}

impl SsrcHasher {
    #[inline]
    fn mix(&mut self, x: u64) {
        let m = u128::from(x ^ self.h ^ self.k0) * u128::from(self.k1);
        self.h = (m as u64) ^ ((m >> 64) as u64);
    }
}

impl std::hash::Hasher for SsrcHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(b));
        }
    }
    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.mix(u64::from(n));
    }
    fn finish(&self) -> u64 {
        self.h
    }
}

/// Longest EMK kept for comparison (AES-KW of a 32-byte key).
const MAX_EMK_LEN: usize = 40;

/// How a source's key is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keying {
    /// Learned from full TIP EKT tags (the CTMS mode).
    TipEkt,
    /// Configured; plain SRTP tags.
    Plain,
}

/// One master key of a source, with everything derived from it.
pub(crate) struct SourceKey {
    pub(crate) ctx: SrtpContext,
    /// For TIP EKT keys: the SPI and EMK that announced the key, to recognise it again
    /// without decrypting (ekt-spec.md §3.6 step 9).
    spi: Spi,
    emk: [u8; MAX_EMK_LEN],
    emk_len: usize,
    /// AEAD suites: GHASH authenticators for SRTP and SRTCP.
    pub(crate) gcm_rtp: Option<Box<GcmAuth>>,
    pub(crate) gcm_rtcp: Option<Box<GcmAuth>>,
    /// Bumped on every key change of the source, so that a verdict is only ever re-signed
    /// with the key that verified it.
    pub(crate) generation: u64,
}

impl SourceKey {
    pub(crate) fn new(
        ghash: GhashEngine,
        suite: Suite,
        master: &MasterKey,
        generation: u64,
    ) -> Self {
        let ctx = SrtpContext::new(suite, master);
        let gcm = |t: &Transform| match t {
            Transform::Gcm128 { key, salt, .. } => Some(Box::new(GcmAuth::new(ghash, key, salt))),
            Transform::Gcm256 { key, salt, .. } => Some(Box::new(GcmAuth::new(ghash, key, salt))),
            Transform::AesCm { .. } => None,
        };
        Self {
            gcm_rtp: gcm(ctx.rtp_transform()),
            gcm_rtcp: gcm(ctx.rtcp_transform()),
            ctx,
            spi: Spi(0),
            emk: [0; MAX_EMK_LEN],
            emk_len: 0,
            generation,
        }
    }

    /// A provisional key from a full TIP EKT tag: EMK decrypted under the SPI's KEK, with
    /// the SPI's master salt (ekt-spec.md §3.6 step 4). It has no effect until installed.
    pub(crate) fn from_emk(
        ghash: GhashEngine,
        params: &ParameterSet,
        spi: Spi,
        emk: &[u8],
        generation: u64,
    ) -> Result<Self, DropReason> {
        let suite = Suite::from_profile(params.profile());
        if emk.len() > MAX_EMK_LEN {
            return Err(DropReason::KeyUnwrapFailed);
        }
        let mut mk = [0u8; 64];
        let unwrapped = params.kek().unwrap(emk, &mut mk);
        let master = match unwrapped {
            Ok(n) => MasterKey::new(suite, &mk[..n], params.master_salt())
                .map_err(|_| DropReason::KeyUnwrapFailed),
            Err(_) => Err(DropReason::KeyUnwrapFailed),
        };
        mk.zeroize();
        let mut key = Self::new(ghash, suite, &master?, generation);
        key.spi = spi;
        key.emk[..emk.len()].copy_from_slice(emk);
        key.emk_len = emk.len();
        Ok(key)
    }

    /// True when this key was announced by exactly this SPI and EMK. The EMK is
    /// ciphertext, not a secret, so a plain comparison is fine.
    pub(crate) fn announced_by(&self, spi: Spi, emk: &[u8]) -> bool {
        self.emk_len != 0 && self.spi == spi && &self.emk[..self.emk_len] == emk
    }
}

/// A sending SSRC.
pub(crate) struct Source {
    pub(crate) keying: Keying,
    pub(crate) current: Option<SourceKey>,
    /// The key before the last change, kept for packets sent before the new key's ISN.
    pub(crate) previous: Option<SourceKey>,
    /// First index under `current` (from a non-zero ISN).
    pub(crate) start_index: Option<u64>,
    pub(crate) index: IndexTracker,
    pub(crate) replay: ReplayWindow,
    pub(crate) rtcp_replay: ReplayWindow,
}

impl Source {
    pub(crate) fn new(keying: Keying) -> Self {
        Self {
            keying,
            current: None,
            previous: None,
            start_index: None,
            index: IndexTracker::new(),
            replay: ReplayWindow::new(),
            rtcp_replay: ReplayWindow::new(),
        }
    }

    /// Installs a verified key (ekt-spec.md §3.6 steps 7-9).
    pub(crate) fn install(&mut self, key: SourceKey, start_index: Option<u64>) {
        self.previous = self.current.replace(key);
        self.start_index = start_index;
    }

    /// The current or previous key, if `spi` and `emk` announced it: a known key needs no
    /// decryption, and a late packet of the previous key must not reinstall it.
    pub(crate) fn key_announced_by(&self, spi: Spi, emk: &[u8]) -> Option<&SourceKey> {
        [self.current.as_ref(), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| k.announced_by(spi, emk))
    }

    /// The key a packet of `index` is checked with: the previous key before the current
    /// one's first index (its ISN), else the current one.
    pub(crate) fn key_for_index(&self, index: u64) -> Option<&SourceKey> {
        if self.start_index.is_some_and(|start| index < start) {
            self.previous.as_ref()
        } else {
            self.current.as_ref()
        }
    }

    /// The key with `generation`, current or previous.
    pub(crate) fn key(&self, generation: u64) -> Option<&SourceKey> {
        [self.current.as_ref(), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| k.generation == generation)
    }
}

//! One simulated endpoint under load: it dials the switch (SIP/TLS, DTLS-SRTP, TIP, EKT
//! through [`SimulatedCall`]), then sends realistic media and checks every packet it
//! receives.
//!
//! - Audio: every source 50 packets/s, 160-byte payloads (about 190 bytes on the wire),
//!   its activity level in the appended byte: high while it is its meeting's speaker.
//! - Video: every source (segment) 30 frames/s of 15 packets of about 1090 bytes (about
//!   3.9 Mb/s); an IDR every 10 s and a few frames after the switch asks for one.
//! - Each payload starts with the send time, so a receiver measures the latency the
//!   switch added; every received packet is counted and its sequence followed for loss,
//!   and one in `--verify-every` (default 1: all) is verified and decrypted with its
//!   sender's key (the EKT end-to-end path) and its payload compared.
//! - The generator must cost less than the switch it measures (issue 20): each line's
//!   packets of one tick are protected into one arena and sent as the switch sends (one
//!   GSO send per source's run), its sockets receive coalesced runs (GRO) in recvmmsg
//!   batches, the plaintext is a template with only the send time, source and sequence
//!   written per packet (the protection itself cannot be prepared: the keystream and the
//!   tag depend on the packet index, RFC 3711 section 4), and nothing is allocated per
//!   packet.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use sip::tls::TlsPolicy;
use std::os::fd::AsRawFd;
use switch::dtls::DtlsIdentity;
use switch::meeting::LegId;
use switch::srtp::{MasterKey, SrtpContext};
use switch::testing::{Endpoint, HOP, SALT, is_simulated_source, key_from_full_tag, sender_key};
use switch::tip::negotiation::Media;

use switch::udp::RecvBatch;
use tokio::net::UdpSocket;

use crate::tools::endpoint::SimulatedCall;

/// Audio packet interval.
const AUDIO_INTERVAL: Duration = Duration::from_millis(20);
/// Video frame interval (30 frames/s).
const FRAME_INTERVAL: Duration = Duration::from_nanos(33_333_333);
/// Packets per video frame (about 4 Mb/s per segment at 30 frames/s).
const PACKETS_PER_FRAME: usize = 15;
/// Payload bytes of an audio and of a video packet.
const AUDIO_PAYLOAD: usize = 160;
const VIDEO_PAYLOAD: usize = 1060;
/// An IDR every 10 s anyway.
const IDR_EVERY_FRAMES: u64 = 300;
/// A gap in a received stream up to this many packets is loss; a longer one is the
/// switch showing someone else for a while (voice-activated switching).
pub const LOSS_GAP: u16 = 64;
/// A send more than this late means the generator could not keep up.
const LATE: Duration = Duration::from_millis(20);

/// State shared by the generator's calls and its driver.
#[derive(Debug)]
pub struct Shared {
    /// Where time is counted from (send timestamps, the window).
    pub base: Instant,
    /// `base` in Unix time, nanoseconds (the kernel stamps arrivals in Unix time).
    pub base_unix_ns: u64,
    /// The measurement window, in ns since `base` (0: not open yet / not closed yet).
    pub window_start: AtomicU64,
    /// End of the window.
    pub window_end: AtomicU64,
    /// Every call stops.
    pub stop: AtomicBool,
    /// Calls whose TIP negotiation is through.
    pub joined: AtomicUsize,
    /// Calls that failed to join.
    pub failed: AtomicUsize,
    /// How long each meeting's speaker talks before the next one does.
    pub speaker_period: Duration,
    /// One received media packet in this many is verified and decrypted (1: every one);
    /// every one is counted and followed for loss.
    pub verify_every: u64,
}

impl Shared {
    /// Whether `now` is inside the measurement window.
    pub(super) fn in_window(&self, now: Instant) -> bool {
        let t = (now - self.base).as_nanos() as u64;
        let start = self.window_start.load(Ordering::Relaxed);
        let end = self.window_end.load(Ordering::Relaxed);
        start != 0 && t >= start && (end == 0 || t < end)
    }
}

/// What one call measured inside the window.
#[derive(Debug, Default, Clone)]
pub struct CallStats {
    /// Media packets it sent.
    pub sent_packets: u64,
    /// Their bytes.
    pub sent_bytes: u64,
    /// Media packets it received (verified or not).
    pub received_packets: u64,
    /// Their bytes.
    pub received_bytes: u64,
    /// Received video packets (the switch forwarded them).
    pub received_video: u64,
    /// Packets whose tag or payload did not check.
    pub verify_failures: u64,
    /// Video packets missing inside a received stream (gaps up to [`LOSS_GAP`]): a shown
    /// picture is forwarded whole, so a gap is loss.
    pub lost: u64,
    /// Audio packets missing inside a received stream: the loudest-N mix changes as
    /// levels move, so a gap is usually a source leaving the mix for a moment, not loss.
    pub audio_gaps: u64,
    /// Switch latency samples, microseconds.
    pub latency_us: Vec<u32>,
    /// INVITE to the first media received.
    pub join_time: Option<Duration>,
    /// Sends more than [`LATE`] behind schedule (the generator saturated).
    pub late_sends: u64,
    /// Packets the generator could not send (its socket's buffer was full).
    pub unsent: u64,
    /// Received packets fully verified and decrypted (one in `verify_every`).
    pub verified: u64,
    /// Receive errors other than an empty socket.
    pub socket_errors: u64,
    /// Why it failed to join.
    pub error: Option<String>,
    /// A standard SIP endpoint (`--standard`), not a TIP one.
    pub standard: bool,
}

/// Who a call is.
#[derive(Debug, Clone)]
pub struct CallPlan {
    /// The endpoint id (unique across the run).
    pub id: u32,
    /// 1 or 3.
    pub screens: u8,
    /// The meeting number it dials.
    pub number: String,
    /// Its place in the meeting (the speaker rotates in this order).
    pub index: usize,
    /// Endpoints in its meeting.
    pub meeting_size: usize,
}

/// Dials, waits for TIP, then runs media until the driver says stop.
pub async fn run_call(
    plan: CallPlan,
    policy: TlsPolicy,
    sip: SocketAddr,
    dtls: Arc<DtlsIdentity>,
    shared: Arc<Shared>,
) -> CallStats {
    let mut stats = CallStats::default();
    let dialled = Instant::now();
    let ep = Endpoint::new(plan.id, plan.screens);
    let mut call = match SimulatedCall::dial(ep, &policy, sip, &plan.number, false, &dtls).await {
        Ok(c) => c,
        Err(e) => {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            stats.error = Some(e.to_string());
            return stats;
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !call.established() {
        if Instant::now() > deadline || shared.stop.load(Ordering::Relaxed) {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            stats.error = Some("TIP not established within 30 s".into());
            return stats;
        }
        call.pump_with(Instant::now(), true).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    shared.joined.fetch_add(1, Ordering::Relaxed);
    let (endpoint, _sip_kept_open, sockets) = call.into_parts();
    match MediaLoop::new(endpoint, sockets, plan, shared, dialled) {
        Ok(mut media) => media.run(&mut stats).await,
        Err(e) => stats.error = Some(format!("media sockets: {e}")),
    }
    stats
}

/// A line's socket, connected to the switch's address for it. It is not registered with
/// the runtime: the media loop reads it on its own ticks (the kernel stamps each arrival),
/// so packets arriving do not wake the generator one by one.
struct LineSocket {
    leg: LegId,
    socket: std::net::UdpSocket,
}

impl LineSocket {
    /// Connects the socket to the switch (sends need no address, and GSO sends want a
    /// connected socket), asks for coalesced receives (GRO), arrival times and larger
    /// buffers.
    fn new(leg: LegId, socket: UdpSocket, to: SocketAddr) -> std::io::Result<Self> {
        let socket = socket.into_std()?;
        socket.set_nonblocking(true)?;
        socket.connect(to)?;
        let fd = socket.as_raw_fd();
        switch::udp::enable_timestamps(fd)?;
        // Without these the generator still works, one datagram at a time.
        let _ = switch::udp::enable_gro(fd);
        let _ = switch::udp::set_buffers(fd, 1 << 20);
        Ok(Self { leg, socket })
    }
}

/// Room for one packet in the send arena (the largest is 16 + 1060 + 1 + 10 + 4 + 10).
const STRIDE: usize = 1280;

thread_local! {
    /// The receive buffers of this generator thread's calls, shared: a call reads its
    /// sockets to the end and checks what came before the next call runs, so one set
    /// (2 MiB, as large as GRO needs) serves them all.
    static RECEIVE: std::cell::RefCell<RecvBatch> = std::cell::RefCell::new(RecvBatch::with_gro());
}

/// The media loop of one endpoint.
struct MediaLoop {
    endpoint: Endpoint,
    audio: LineSocket,
    video: LineSocket,
    plan: CallPlan,
    shared: Arc<Shared>,
    dialled: Instant,
    frames: u64,
    /// Per received SSRC: the last sequence number.
    last_seq: HashMap<u32, u16>,
    /// The packets of one send, one per [`STRIDE`], and their lengths.
    arena: Vec<u8>,
    lengths: Vec<usize>,
    /// A received packet being verified (decrypted in place).
    scratch: Vec<u8>,
    /// Received media packets; every `verify_every`-th is verified and decrypted.
    received: u64,
    /// Sends use GSO (until the kernel refuses it).
    gso: bool,
}

impl MediaLoop {
    fn new(
        endpoint: Endpoint,
        mut sockets: HashMap<LegId, (UdpSocket, SocketAddr)>,
        plan: CallPlan,
        shared: Arc<Shared>,
        dialled: Instant,
    ) -> std::io::Result<Self> {
        let mut line = |media: Media| {
            let l = endpoint
                .lines
                .iter()
                .find(|l| l.media == media)
                .expect("audio and video lines");
            let (socket, to) = sockets.remove(&l.leg).expect("a socket per line");
            LineSocket::new(l.leg, socket, to)
        };
        let (audio, video) = (line(Media::Audio)?, line(Media::Video)?);
        let most = 3 * PACKETS_PER_FRAME;
        Ok(Self {
            endpoint,
            audio,
            video,
            plan,
            shared,
            dialled,
            frames: 0,
            last_seq: HashMap::new(),
            arena: vec![0u8; most * STRIDE],
            lengths: Vec::with_capacity(most),
            scratch: vec![0u8; STRIDE],
            received: 0,
            gso: switch::udp::gso_supported(),
        })
    }

    async fn run(&mut self, stats: &mut CallStats) {
        let start = Instant::now();
        let mut next_audio = start;
        let mut next_frame = start;
        let mut replies = Vec::new();
        while !self.shared.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if self.due(now, &mut next_audio, stats) {
                let level = self.level(now);
                self.send_line(Media::Audio, now, level, 1, stats);
                next_audio += AUDIO_INTERVAL;
                // What came since the last audio tick, a recvmmsg batch at a time (GRO: a
                // run of datagrams per message); the kernel's arrival stamps time them.
                self.drain(Media::Audio, stats, &mut replies);
                self.drain(Media::Video, stats, &mut replies);
                // DTLS and per-hop TIP answers (rare once the call is up).
                for (leg, reply) in replies.drain(..) {
                    let s = if leg == self.audio.leg {
                        &self.audio
                    } else {
                        &self.video
                    };
                    let _ = s.socket.send(&reply);
                }
            }
            if self.due(now, &mut next_frame, stats) {
                self.frames += 1;
                self.send_line(Media::Video, now, 0, PACKETS_PER_FRAME, stats);
                next_frame += FRAME_INTERVAL;
            }
            tokio::time::sleep_until(tokio::time::Instant::from_std(next_audio.min(next_frame)))
                .await;
        }
    }

    /// Reads `media`'s socket until it is empty, checking every datagram.
    fn drain(&mut self, media: Media, stats: &mut CallStats, replies: &mut Vec<(LegId, Vec<u8>)>) {
        let fd = if media == Media::Audio {
            self.audio.socket.as_raw_fd()
        } else {
            self.video.socket.as_raw_fd()
        };
        RECEIVE.with_borrow_mut(|batch| {
            loop {
                let n = batch.recv(fd, switch::udp::BATCH);
                let now = Instant::now();
                // After the window the switch under test stops first: its closed ports
                // then answer with errors that do not count.
                let Ok(n) = n else {
                    stats.socket_errors += u64::from(self.shared.in_window(now));
                    return;
                };
                for i in 0..n {
                    let Some(message) = batch.get(i) else {
                        continue;
                    };
                    for data in message.datagrams() {
                        self.received(media, now, message.arrived_ns, data, stats, replies);
                    }
                }
                if n < switch::udp::BATCH {
                    return;
                }
            }
        });
    }

    /// Whether a send scheduled at `next` is due; one more than [`LATE`] behind is counted
    /// (the generator fell behind) and the schedule restarts from now.
    fn due(&self, now: Instant, next: &mut Instant, stats: &mut CallStats) -> bool {
        if now < *next {
            return false;
        }
        if now - *next > LATE {
            stats.late_sends += u64::from(self.shared.in_window(now));
            *next = now;
        }
        true
    }

    /// The speaker's level (high) or a listener's.
    fn level(&self, now: Instant) -> u8 {
        let period = self.shared.speaker_period.as_millis().max(1);
        let turn = ((now - self.shared.base).as_millis() / period) as usize;
        if turn % self.plan.meeting_size.max(1) == self.plan.index {
            60
        } else {
            5
        }
    }

    /// `count` packets from every source of the `media` line, protected into the arena and
    /// sent in one go: each source's run of equal-sized packets as one GSO send where the
    /// kernel has it, as the switch sends.
    fn send_line(
        &mut self,
        media: Media,
        now: Instant,
        level: u8,
        count: usize,
        stats: &mut CallStats,
    ) {
        let in_window = self.shared.in_window(now);
        let Some(line) = self.endpoint.lines.iter_mut().find(|l| l.media == media) else {
            return;
        };
        let frame = self.frames;
        let sent_at = (now - self.shared.base).as_nanos() as u64;
        let payload = if media == Media::Audio {
            AUDIO_PAYLOAD
        } else {
            VIDEO_PAYLOAD
        };
        self.lengths.clear();
        for (pos, ssrc, tx, seq) in &mut line.sources {
            // An IDR at the first frame, every 10 s, and a few frames after a REFRESH.
            let refresh = match line.refresh.get_mut(ssrc) {
                Some(0) => line.refresh.remove(ssrc).is_some(),
                Some(n) => {
                    *n -= 1;
                    false
                }
                None => false,
            };
            let idr = frame == 1 || frame.is_multiple_of(IDR_EVERY_FRAMES) || refresh;
            let csrc = switch::forward::TipCsrc {
                clock_id: 0x777,
                output: *pos,
                source: *pos,
                sink: *pos,
            }
            .to_u32();
            for k in 0..count {
                let at = self.lengths.len() * STRIDE;
                let Some(b) = self.arena.get_mut(at..at + STRIDE) else {
                    break;
                };
                *seq = seq.wrapping_add(1);
                b[0] = 0x81;
                b[1] = if media == Media::Audio { 96 } else { 112 };
                b[2..4].copy_from_slice(&seq.to_be_bytes());
                b[4..8].copy_from_slice(&(frame as u32).to_be_bytes());
                b[8..12].copy_from_slice(&ssrc.to_be_bytes());
                b[12..16].copy_from_slice(&csrc.to_be_bytes());
                fill_payload(&mut b[16..16 + payload], sent_at, *ssrc, *seq);
                let (x, full) = match media {
                    Media::Audio => (level + *pos, *seq % 3 == 1),
                    Media::Video => (u8::from(k == 0 && idr), k == 0),
                };
                if let Ok(n) = tx.protect_rtp(b, 16 + payload, Some(x), full) {
                    self.lengths.push(n);
                }
            }
        }
        let fd = if media == Media::Audio {
            self.audio.socket.as_raw_fd()
        } else {
            self.video.socket.as_raw_fd()
        };
        let packets = self
            .lengths
            .iter()
            .enumerate()
            .map(|(i, &n)| &self.arena[i * STRIDE..i * STRIDE + n]);
        let sent = switch::udp::send_segmented(fd, packets, switch::udp::BATCH, &mut self.gso)
            .map(|(sent, _)| sent);
        if in_window {
            let sent = sent.unwrap_or(switch::udp::Sent {
                unsent: self.lengths.len(),
                ..Default::default()
            });
            stats.sent_packets += sent.datagrams as u64;
            stats.sent_bytes += sent.bytes as u64;
            stats.unsent += sent.unsent as u64;
        }
    }

    /// A datagram from the switch: media is counted, followed for loss and, one in
    /// `verify_every`, verified and decrypted with its sender's key and its payload
    /// compared; DTLS and per-hop TIP go to the endpoint, whose replies are queued.
    fn received(
        &mut self,
        media: Media,
        now: Instant,
        arrived_ns: Option<u64>,
        data: &[u8],
        stats: &mut CallStats,
        replies: &mut Vec<(LegId, Vec<u8>)>,
    ) {
        let leg = if media == Media::Audio {
            self.audio.leg
        } else {
            self.video.leg
        };
        if !crate::tools::endpoint::is_rtp(data) {
            replies.extend(self.endpoint.handle_datagram(now, leg, data));
            return;
        }
        if stats.join_time.is_none() {
            stats.join_time = Some(now - self.dialled);
        }
        if !self.shared.in_window(now) {
            return;
        }
        stats.received_packets += 1;
        stats.received_bytes += data.len() as u64;
        stats.received_video += u64::from(media == Media::Video);
        let ssrc = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        let seq = u16::from_be_bytes([data[2], data[3]]);
        if let Some(last) = self.last_seq.insert(ssrc, seq) {
            let gap = seq.wrapping_sub(last).wrapping_sub(1);
            if gap > 0 && gap <= LOSS_GAP {
                match media {
                    Media::Video => stats.lost += u64::from(gap),
                    Media::Audio => stats.audio_gaps += u64::from(gap),
                }
            }
        }
        let Some(line) = self.endpoint.lines.iter().find(|l| l.media == media) else {
            return;
        };
        let salt = line.group.map_or(SALT, |g| g.1);
        // A standard endpoint's media, re-protected by the switch under a key it announces
        // in EKT: learned from the first full tag, as a TIP receiver does; its payload is
        // not the generator's, so only its tag and sequence are checked.
        let simulated = is_simulated_source(ssrc);
        let rx = match self.endpoint.rx.entry(ssrc) {
            std::collections::hash_map::Entry::Occupied(e) => {
                // Sampled: one in `verify_every` (every packet with 1).
                self.received += 1;
                if !self.received.is_multiple_of(self.shared.verify_every) {
                    return;
                }
                e.into_mut()
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                let key = if simulated {
                    Some(sender_key(ssrc))
                } else {
                    key_from_full_tag(line, data)
                };
                // A short tag before the first full one: not decryptable yet.
                let Some(key) = key else {
                    return;
                };
                e.insert(SrtpContext::new(
                    HOP,
                    &MasterKey::new(HOP, &key, &salt).expect("key sizes"),
                ))
            }
        };
        stats.verified += 1;
        let Some(b) = self.scratch.get_mut(..data.len()) else {
            stats.verify_failures += 1;
            return;
        };
        b.copy_from_slice(data);
        match rx.unprotect_rtp_tip(b, false) {
            Ok(_) if !simulated => {}
            Ok((len, None)) if len >= 16 + 8 => {
                let sent_at = u64::from_be_bytes(b[16..24].try_into().expect("8 bytes"));
                if !payload_is(&b[16..len], sent_at, ssrc, seq) {
                    stats.verify_failures += 1;
                    return;
                }
                // Arrival in ns since the base: the kernel's stamp, else the read time.
                let arrived = arrived_ns.map_or_else(
                    || (now - self.shared.base).as_nanos() as u64,
                    |t| t.saturating_sub(self.shared.base_unix_ns),
                );
                let us = arrived.saturating_sub(sent_at) / 1000;
                stats.latency_us.push(u32::try_from(us).unwrap_or(u32::MAX));
            }
            _ => stats.verify_failures += 1,
        }
    }
}

/// Now in Unix time, nanoseconds.
pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The part of every payload after its first 14 bytes: the same bytes each time, copied
/// (a template), not computed per packet.
static PAYLOAD_TEMPLATE: std::sync::LazyLock<[u8; VIDEO_PAYLOAD]> =
    std::sync::LazyLock::new(|| std::array::from_fn(|i| (i as u8).wrapping_mul(151) ^ 0x5a));

/// A payload: the send time (ns since the run's base), the source and sequence number,
/// then the template's bytes.
fn fill_payload(p: &mut [u8], sent_at: u64, ssrc: u32, seq: u16) {
    p[..8].copy_from_slice(&sent_at.to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p[12..14].copy_from_slice(&seq.to_be_bytes());
    let rest = p.len() - 14;
    p[14..].copy_from_slice(&PAYLOAD_TEMPLATE[14..14 + rest]);
}

fn payload_is(p: &[u8], sent_at: u64, ssrc: u32, seq: u16) -> bool {
    p.len() >= 14
        && p.len() <= VIDEO_PAYLOAD
        && p[..8] == sent_at.to_be_bytes()
        && p[8..12] == ssrc.to_be_bytes()
        && p[12..14] == seq.to_be_bytes()
        && p[14..] == PAYLOAD_TEMPLATE[14..p.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_checks_only_as_sent() {
        let mut p = [0u8; 100];
        fill_payload(&mut p, 123_456, 0x0102_0304, 9);
        assert!(payload_is(&p, 123_456, 0x0102_0304, 9));
        assert!(!payload_is(&p, 123_456, 0x0102_0304, 10));
        p[50] ^= 1;
        assert!(!payload_is(&p, 123_456, 0x0102_0304, 9));
    }
}

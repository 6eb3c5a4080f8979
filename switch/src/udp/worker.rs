//! One media worker thread.
// The media worker is the meeting's driver: it owns the clock (clippy.toml bans it in the
// cores).
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::MeetingId;
use super::fence::LeaseFence;
use super::legs::{Leg, Legs, WAKE_TOKEN};
use super::sys::{self, RecvBatch};
use crate::meeting::{LegId, Meeting, MeetingCommand, MeetingEvent};
use crate::tx::TxBatch;

/// The longest a worker sleeps without a timer: it re-checks its command channel.
const MAX_SLEEP: Duration = Duration::from_millis(100);

/// A change to what a worker runs.
pub enum Command {
    /// Run this meeting.
    AddMeeting(MeetingId, Box<Meeting>),
    /// Stop running a meeting (its legs go with it).
    RemoveMeeting(MeetingId),
    /// A media line's socket (bound, any port) and its peer's address from the SDP.
    AddLeg {
        /// The meeting it belongs to.
        meeting: MeetingId,
        /// Its leg in the meeting.
        leg: LegId,
        /// The socket.
        socket: UdpSocket,
        /// Only datagrams from this address are taken; outputs go there.
        remote: SocketAddr,
    },
    /// A leg's peer moved (re-INVITE, or the line joined again): its socket is connected
    /// to `remote` from now on.
    Redirect {
        /// The leg.
        leg: LegId,
        /// Only datagrams from this address are taken; outputs go there.
        remote: SocketAddr,
    },
    /// Close a leg's socket.
    RemoveLeg(LegId),
    /// The meeting was claimed in a cluster under a lease: the worker drops it, legs and
    /// all, the first time it wakes past the lease's deadline ([`LeaseFence`]).
    Fence(MeetingId, Arc<LeaseFence>),
    /// A typed command to a meeting (add or remove a participant, downgrade, ...), handled
    /// on the worker's thread with the worker's clock.
    Meeting(MeetingId, MeetingCommand),
}

/// A worker's counters (read from any thread).
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Datagrams received.
    pub packets_in: AtomicU64,
    /// Bytes received.
    pub bytes_in: AtomicU64,
    /// Datagrams sent.
    pub packets_out: AtomicU64,
    /// Bytes sent.
    pub bytes_out: AtomicU64,
    /// Datagrams from an address that is not the leg's peer (dropped).
    pub foreign_source: AtomicU64,
    /// Sends that refused segmentation offload (the worker then sends without it).
    pub gso_refused: AtomicU64,
    /// Datagrams that did not fit the send queue or the socket (dropped).
    pub send_dropped: AtomicU64,
    /// Socket errors other than would-block.
    pub socket_errors: AtomicU64,
    /// Meetings dropped because their cluster lease's deadline passed ([`Command::Fence`]).
    pub fenced_meetings: AtomicU64,
    /// recvmmsg calls (datagrams in / calls = the batch size achieved).
    pub recv_calls: AtomicU64,
    /// sendmmsg calls (with GSO, one carries several runs of datagrams).
    pub send_calls: AtomicU64,
    /// Wake-ups with a socket ready (datagrams in / wake-ups = what one wake-up serves).
    pub wakeups: AtomicU64,
    /// Nanoseconds spent working (from a wake-up to the next wait), for the operator's
    /// busy-time metric.
    pub busy_ns: AtomicU64,
    /// Unix time in milliseconds when the loop last went round (it does at least every
    /// 100 ms): liveness, read by the health check.
    pub last_loop_ms: AtomicU64,
}

/// A running worker.
pub struct MediaWorker {
    commands: Sender<Command>,
    wake: UdpSocket,
    wake_addr: SocketAddr,
    stats: Arc<WorkerStats>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MediaWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaWorker")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

struct State {
    meetings: HashMap<MeetingId, Box<Meeting>>,
    legs: Legs,
    stats: Arc<WorkerStats>,
    events: Sender<(MeetingId, MeetingEvent)>,
    out: Outbox,
    rx: RecvBatch,
    /// The fenced meetings and their leases' fences (few: checked at every wake-up).
    fences: Vec<(MeetingId, Arc<LeaseFence>)>,
}

/// What the meetings queued to send, and how it goes.
struct Outbox {
    tx: TxBatch,
    /// The legs a flush sends to (reused: no allocation per flush).
    order: Vec<LegId>,
    /// Datagrams per recvmmsg/sendmmsg call (1: batching off, to measure it).
    batch: usize,
    /// Runs of equal-sized datagrams to one leg go as one UDP_SEGMENT send (GSO); off
    /// when asked, when the kernel lacks it, or once a send refused it.
    gso: bool,
}

/// How a worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerOptions {
    /// Datagrams per recvmmsg/sendmmsg call, 1 to [`BATCH`] (1 turns batching off).
    pub batch: usize,
    /// Send runs of equal-sized datagrams with UDP generic segmentation offload where the
    /// kernel has it (probed at start).
    pub gso: bool,
    /// Receive with UDP generic receive offload where the kernel has it: datagrams of one
    /// flow may arrive coalesced, one trip up the stack for a run of them.
    pub gro: bool,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            batch: sys::BATCH,
            gso: true,
            gro: true,
        }
    }
}

impl MediaWorker {
    /// Starts a worker thread named `name`; meeting events go to `events`.
    pub fn spawn(name: &str, events: Sender<(MeetingId, MeetingEvent)>) -> io::Result<Self> {
        Self::spawn_with(name, events, WorkerOptions::default())
    }

    /// [`MediaWorker::spawn`] with `options`.
    pub fn spawn_with(
        name: &str,
        events: Sender<(MeetingId, MeetingEvent)>,
        options: WorkerOptions,
    ) -> io::Result<Self> {
        let wake_rx = UdpSocket::bind("127.0.0.1:0")?;
        wake_rx.set_nonblocking(true)?;
        let wake_addr = wake_rx.local_addr()?;
        let wake = UdpSocket::bind("127.0.0.1:0")?;
        let (commands, rx) = channel();
        let stats = Arc::new(WorkerStats::default());
        // A worker that has not gone round yet is as alive as one that just did: without
        // this, liveness read "stuck" for the first wait after start.
        stats.last_loop_ms.store(unix_ms(), Ordering::Relaxed);
        let state = State {
            meetings: HashMap::new(),
            legs: Legs::new(&wake_rx, options.gro)?,
            stats: stats.clone(),
            events,
            out: Outbox {
                tx: TxBatch::new(1024, 4096),
                order: Vec::with_capacity(256),
                batch: options.batch,
                gso: options.gso && sys::gso_supported(),
            },
            // With GRO, slots large enough for a coalesced message (2 MiB per worker).
            rx: if options.gro {
                RecvBatch::with_gro()
            } else {
                RecvBatch::new()
            },
            fences: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || run(state, rx, wake_rx))?;
        Ok(Self {
            commands,
            wake,
            wake_addr,
            stats,
            thread: Some(thread),
        })
    }

    /// Sends a command and wakes the worker.
    pub fn send(&self, command: Command) {
        if self.commands.send(command).is_ok() {
            let _ = self.wake.send_to(&[1], self.wake_addr);
        }
    }

    /// The counters.
    pub fn stats(&self) -> &WorkerStats {
        &self.stats
    }

    /// The counters, shared (to read them from elsewhere while the worker runs).
    pub fn shared_stats(&self) -> Arc<WorkerStats> {
        self.stats.clone()
    }
}

impl Drop for MediaWorker {
    /// Stops the thread: closing the channel ends its loop.
    fn drop(&mut self) {
        let (dead, _) = channel();
        self.commands = dead;
        let _ = self.wake.send_to(&[0], self.wake_addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Unix time in milliseconds, for [`WorkerStats::last_loop_ms`].
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn run(mut s: State, commands: Receiver<Command>, wake: UdpSocket) {
    loop {
        loop {
            match commands.try_recv() {
                Ok(c) => s.apply(c),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        let now = Instant::now();
        let next = s.meetings.values().filter_map(|m| m.poll_timeout()).min();
        let sleep = next.map_or(MAX_SLEEP, |t| {
            t.saturating_duration_since(now).min(MAX_SLEEP)
        });
        // Round up so a timer 0.4 ms away is not busy-polled at 0 ms.
        let timeout_ms = i32::try_from(sleep.as_micros().div_ceil(1000)).unwrap_or(100);
        let ready = s.legs.wait(timeout_ms).unwrap_or_else(|_| {
            s.stats.socket_errors.fetch_add(1, Ordering::Relaxed);
            0
        });
        let woke = Instant::now();
        s.stats.last_loop_ms.store(unix_ms(), Ordering::Relaxed);
        // Before any socket is read: a node paused past its lease forwards nothing more.
        if !s.fences.is_empty() {
            s.drop_fenced(woke);
        }
        s.stats
            .wakeups
            .fetch_add(u64::from(ready > 0), Ordering::Relaxed);
        for i in 0..ready {
            match s.legs.ready(i) {
                Some(WAKE_TOKEN) => {
                    let mut b = [0u8; 16];
                    while wake.recv(&mut b).is_ok() {}
                }
                Some(token) => s.read_leg(token as LegId),
                None => {}
            }
        }
        let now = Instant::now();
        for m in s.meetings.values_mut() {
            if m.poll_timeout().is_some_and(|t| t <= now) {
                m.handle_timeout(now, &mut s.out.tx);
            }
        }
        s.flush_tx();
        s.forward_events();
        let busy = u64::try_from(woke.elapsed().as_nanos()).unwrap_or(u64::MAX);
        s.stats.busy_ns.fetch_add(busy, Ordering::Relaxed);
    }
}

impl State {
    fn apply(&mut self, c: Command) {
        match c {
            Command::AddMeeting(id, m) => {
                self.meetings.insert(id, m);
            }
            Command::RemoveMeeting(id) => {
                self.meetings.remove(&id);
                self.legs.remove_meeting(id);
                self.fences.retain(|(m, _)| *m != id);
            }
            Command::Fence(id, fence) => {
                if !self.meetings.contains_key(&id) {
                    return;
                }
                // Every call of a meeting comes with its claim's fence: one per meeting.
                match self.fences.iter_mut().find(|(m, _)| *m == id) {
                    Some(entry) => entry.1 = fence,
                    None => self.fences.push((id, fence)),
                }
            }
            Command::AddLeg {
                meeting,
                leg,
                socket,
                remote,
            } => {
                // Its meeting was dropped meanwhile (fenced): the socket closes here.
                if !self.meetings.contains_key(&meeting) {
                    return;
                }
                let added = self.legs.add(Leg {
                    meeting,
                    id: leg,
                    socket,
                    remote,
                });
                if added.is_err() {
                    self.stats.socket_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            Command::Redirect { leg, remote } => {
                if self.legs.redirect(leg, remote).is_err() {
                    self.stats.socket_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            Command::RemoveLeg(leg) => self.legs.remove(leg),
            Command::Meeting(id, command) => {
                if let Some(m) = self.meetings.get_mut(&id) {
                    let now = Instant::now();
                    m.handle_command(now, command);
                    // What the command made due now (a downgrade's TIP NOTIFYs) leaves
                    // before its events reach call control, which acts on them in SIP.
                    if m.poll_timeout().is_some_and(|t| t <= now) {
                        m.handle_timeout(now, &mut self.out.tx);
                    }
                    self.flush_tx();
                    self.forward_events();
                }
            }
        }
    }

    /// Drops every meeting whose lease's deadline passed at `now`, with its legs.
    fn drop_fenced(&mut self, now: Instant) {
        let (meetings, legs, stats) = (&mut self.meetings, &mut self.legs, &self.stats);
        self.fences.retain(|(id, fence)| {
            if !fence.expired(now) {
                return true;
            }
            meetings.remove(id);
            legs.remove_meeting(*id);
            stats.fenced_meetings.fetch_add(1, Ordering::Relaxed);
            false
        });
    }

    /// Sends everything queued.
    fn flush_tx(&mut self) {
        self.out.send(&self.legs, &self.stats);
    }

    /// Drains a readable socket, a batch at a time.
    fn read_leg(&mut self, id: LegId) {
        let Some((fd, remote, leg, meeting)) = self
            .legs
            .get(id)
            .map(|l| (l.socket.as_raw_fd(), l.remote, l.id, l.meeting))
        else {
            return;
        };
        loop {
            let n = match self.rx.recv(fd, self.out.batch) {
                Ok(0) => return,
                Ok(n) => n,
                Err(_) => {
                    self.stats.socket_errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            self.stats.recv_calls.fetch_add(1, Ordering::Relaxed);
            let now = Instant::now();
            let Some(m) = self.meetings.get_mut(&meeting) else {
                return;
            };
            // Up to BATCH datagrams go to the meeting at once: their tags are verified and
            // their outputs signed together (`Meeting::handle_datagrams`), then sent. With
            // GRO one message may hold many datagrams: they are cut back by their segment
            // size and taken BATCH at a time. The queue is sent after each batch, so it has
            // room for the next one's outputs. (Sending once per wake-up instead, and
            // edge-triggered epoll, were measured and gained nothing beyond the noise:
            // BENCHMARKS.md, issue 20.)
            let mut batch: [&[u8]; sys::BATCH] = [&[]; sys::BATCH];
            let mut taken = 0;
            for k in 0..n {
                let Some(received) = self.rx.get(k) else {
                    continue;
                };
                let foreign = received.from != remote;
                for data in received.datagrams() {
                    self.stats.packets_in.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .bytes_in
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                    if foreign {
                        self.stats.foreign_source.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    batch[taken] = data;
                    taken += 1;
                    if taken == sys::BATCH {
                        m.handle_datagrams(now, leg, &batch, &mut self.out.tx);
                        self.out.send(&self.legs, &self.stats);
                        taken = 0;
                    }
                }
            }
            if taken > 0 {
                m.handle_datagrams(now, leg, &batch[..taken], &mut self.out.tx);
            }
            self.flush_tx();
            if n < self.out.batch {
                return;
            }
        }
    }

    fn forward_events(&mut self) {
        for (id, m) in &mut self.meetings {
            while let Some(e) = m.poll_event() {
                let _ = self.events.send((*id, e));
            }
        }
    }
}

impl Outbox {
    /// Sends everything queued, one sendmmsg run per leg that has datagrams, in queue
    /// order; with GSO, each leg's runs of equal-sized datagrams as single
    /// segmentation-offload sends, in order.
    fn send(&mut self, legs: &Legs, stats: &WorkerStats) {
        let Self {
            tx,
            order,
            batch,
            gso,
        } = self;
        let batch = *batch;
        if tx.is_empty() {
            return;
        }
        order.clear();
        for (r, _) in tx.iter() {
            if !order.contains(&r) {
                order.push(r);
            }
        }
        for &id in order.iter() {
            let queued = || tx.iter().filter(|(r, _)| *r == id);
            let Some(l) = legs.get(id) else {
                // The leg went away with datagrams queued for it.
                stats
                    .send_dropped
                    .fetch_add(queued().count() as u64, Ordering::Relaxed);
                continue;
            };
            let fd = l.socket.as_raw_fd();
            let result = sys::send_segmented(fd, queued().map(|(_, b)| b), batch, gso).map(
                |(sent, refused)| {
                    // The device cannot segment: the rest went datagram by datagram, and so
                    // does every later flush.
                    if refused {
                        stats.gso_refused.fetch_add(1, Ordering::Relaxed);
                    }
                    sent
                },
            );
            match result {
                Ok(sent) => {
                    stats
                        .send_calls
                        .fetch_add(sent.calls as u64, Ordering::Relaxed);
                    stats
                        .packets_out
                        .fetch_add(sent.datagrams as u64, Ordering::Relaxed);
                    stats
                        .bytes_out
                        .fetch_add(sent.bytes as u64, Ordering::Relaxed);
                    stats
                        .send_dropped
                        .fetch_add(sent.unsent as u64, Ordering::Relaxed);
                }
                Err(_) => {
                    stats.socket_errors.fetch_add(1, Ordering::Relaxed);
                    stats
                        .send_dropped
                        .fetch_add(queued().count() as u64, Ordering::Relaxed);
                }
            }
        }
        tx.clear();
    }
}

//! The media worker: the thin driver of the sans-IO [`Meeting`](crate::meeting::Meeting).
//!
//! A worker is one thread that owns its meetings and their sockets (one UDP socket per
//! media line, the leg), so the per-packet path takes no lock (ARCHITECTURE.md: each
//! meeting lives on one worker). It waits with epoll(7) on its sockets and a wake socket,
//! reads each readable socket in recvmmsg batches, hands every datagram to its meeting,
//! runs the meetings' timers, and sends each leg's output with sendmmsg. Each leg's socket
//! is connected to its negotiated peer: the kernel drops datagrams from anywhere else (any
//! that slip through are dropped and counted), and sends reuse the route. Commands (add a meeting,
//! a leg, a typed [`MeetingCommand`](crate::meeting::MeetingCommand) to a meeting) arrive over a channel; meeting events go out over
//! another.

mod fence;
mod legs;
mod pool;
mod sys;
mod worker;

pub use fence::LeaseFence;
pub use pool::WorkerPool;
// The batched I/O is public for the load generator (`mswitch load`), which sends and
// receives as the switch does.
pub use sys::{
    BATCH, GRO_BUFFER, GsoSent, MAX_DATAGRAM, Received, RecvBatch, Sent, enable_gro,
    enable_timestamps, gso_supported, raise_open_files_limit, send_batch, send_gso_batch,
    send_segmented, set_buffers, split_segments,
};
pub use worker::{Command, MediaWorker, WorkerOptions, WorkerStats};

/// Identifies a meeting within the switch.
pub type MeetingId = u64;

//! The send queue of one SIP stream connection (TCP or TLS), bounded in bytes.
//!
//! A peer that sends and never reads must not grow the switch's memory (issue 14: keep-alive
//! pings from a slow reader grew it by gigabytes): what waits for the socket is counted, a
//! pong is queued only when none is waiting already (RFC 5626 §4.4.1 keep-alives need one
//! answer, not one per ping), the connection's reader stops reading while the queue is above
//! its high-water mark, and a connection whose queue stays there is closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::{Notify, mpsc};

/// Bytes a connection may have waiting for its socket; past this, a send closes it.
pub const MAX_QUEUED: usize = 1 << 20;
/// The reader stops reading while more than this waits (a quarter of the limit: room for
/// the answers to what was already read).
pub const HIGH_WATER: usize = MAX_QUEUED / 4;

/// What the connection's tasks share.
#[derive(Debug, Default)]
struct Shared {
    queued: AtomicUsize,
    pong_waiting: AtomicBool,
    closed: AtomicBool,
    /// Closed by the driver on purpose (not for a full queue).
    retired: AtomicBool,
    drained: Notify,
}

/// One queued item: bytes, and whether it is the coalesced pong.
#[derive(Debug)]
pub struct Item {
    /// What to write.
    pub bytes: Vec<u8>,
    pong: bool,
}

/// The sending side (the driver and the connection's reader hold clones).
#[derive(Debug, Clone)]
pub struct StreamSender {
    tx: mpsc::UnboundedSender<Item>,
    shared: Arc<Shared>,
}

/// Why a send was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The queue is over [`MAX_QUEUED`]: the connection is being closed.
    #[error("the connection's send queue is full: closing it")]
    Full,
    /// The connection is gone.
    #[error("the connection is closed")]
    Closed,
}

/// The writing side, owned by the connection's writer task.
#[derive(Debug)]
pub struct StreamReceiver {
    rx: mpsc::UnboundedReceiver<Item>,
    shared: Arc<Shared>,
}

/// A new queue.
pub fn stream_queue() -> (StreamSender, StreamReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared::default());
    (
        StreamSender {
            tx,
            shared: shared.clone(),
        },
        StreamReceiver { rx, shared },
    )
}

impl StreamSender {
    /// Queues `bytes`; a queue that would pass [`MAX_QUEUED`] closes the connection.
    pub fn send(&self, bytes: Vec<u8>) -> Result<(), SendError> {
        self.push(Item { bytes, pong: false })
    }

    /// Queues a keep-alive pong unless one is waiting already.
    pub fn pong(&self, pong: &[u8]) -> Result<(), SendError> {
        if self.shared.pong_waiting.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.push(Item {
            bytes: pong.to_vec(),
            pong: true,
        })
    }

    fn push(&self, item: Item) -> Result<(), SendError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        let len = item.bytes.len();
        let before = self.shared.queued.fetch_add(len, Ordering::AcqRel);
        if before + len > MAX_QUEUED {
            self.shared.queued.fetch_sub(len, Ordering::AcqRel);
            self.close();
            return Err(SendError::Full);
        }
        self.tx.send(item).map_err(|_| {
            self.shared.queued.fetch_sub(len, Ordering::AcqRel);
            SendError::Closed
        })
    }

    /// Bytes waiting for the socket.
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }

    /// Whether the connection was closed (by a full queue or by its tasks).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Closes the connection on purpose (the driver's decision, logged by it).
    pub fn retire(&self) {
        self.shared.retired.store(true, Ordering::Release);
        self.close();
    }

    /// Whether [`StreamSender::retire`] closed it.
    pub fn is_retired(&self) -> bool {
        self.shared.retired.load(Ordering::Acquire)
    }

    /// Marks the connection closed and wakes its reader.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.drained.notify_waiters();
    }

    /// Waits until the connection is closed.
    pub async fn closed(&self) {
        loop {
            let woken = self.shared.drained.notified();
            if self.is_closed() {
                return;
            }
            woken.await;
        }
    }

    /// Waits until the queue is at or below [`HIGH_WATER`] or the connection closed.
    pub async fn below_high_water(&self) {
        loop {
            let drained = self.shared.drained.notified();
            if self.queued() <= HIGH_WATER || self.is_closed() {
                return;
            }
            drained.await;
        }
    }
}

impl StreamReceiver {
    /// The next item to write; `None` when every sender is gone or the connection closed.
    pub async fn next(&mut self) -> Option<Item> {
        if self.shared.closed.load(Ordering::Acquire) {
            return None;
        }
        self.rx.recv().await
    }

    /// `item` was written: its bytes leave the queue.
    pub fn written(&self, item: &Item) {
        if item.pong {
            self.shared.pong_waiting.store(false, Ordering::Release);
        }
        self.shared
            .queued
            .fetch_sub(item.bytes.len(), Ordering::AcqRel);
        self.shared.drained.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pongs_are_coalesced_until_written() {
        let (tx, mut rx) = stream_queue();
        for _ in 0..1000 {
            tx.pong(b"\r\n").unwrap();
        }
        assert_eq!(tx.queued(), 2, "one pong waits, not a thousand");
        let item = rx.rx.try_recv().unwrap();
        assert!(rx.rx.try_recv().is_err());
        rx.written(&item);
        assert_eq!(tx.queued(), 0);
        tx.pong(b"\r\n").unwrap();
        assert_eq!(tx.queued(), 2, "the next ping gets its pong");
    }

    #[test]
    fn a_queue_past_its_limit_closes_the_connection() {
        let (tx, _rx) = stream_queue();
        let chunk = vec![0u8; 64 * 1024];
        let mut sent = 0;
        while tx.send(chunk.clone()).is_ok() {
            sent += chunk.len();
        }
        assert!(sent <= MAX_QUEUED, "{sent}");
        assert!(tx.queued() <= MAX_QUEUED);
        assert!(tx.is_closed());
        assert_eq!(tx.send(vec![1]), Err(SendError::Closed));
    }
}

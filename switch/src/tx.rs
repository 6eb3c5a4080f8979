//! The output batch: preallocated packet slots and (receiver, slot) entries, shaped for
//! sendmmsg. Receivers that get the same bytes share one slot, so a fan-out copies and
//! signs each distinct output once.

/// Largest packet a slot holds (Ethernet MTU payload). Larger inputs are dropped.
pub const SLOT_SIZE: usize = 1500;

/// Who gets a packet: an opaque handle the driver maps to a socket address.
pub type ReceiverId = u32;

/// One datagram to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxEntry {
    /// Destination.
    pub receiver: ReceiverId,
    slot: u32,
}

/// A batch of outgoing datagrams in caller-owned, preallocated memory. Filling it never
/// allocates.
pub struct TxBatch {
    bytes: Box<[u8]>,
    slot_lens: Box<[u16]>,
    slots_used: usize,
    entries: Vec<TxEntry>,
}

impl std::fmt::Debug for TxBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxBatch")
            .field("slots_used", &self.slots_used)
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl TxBatch {
    /// A batch of at most `max_packets` distinct packets and `max_entries` datagrams.
    pub fn new(max_packets: usize, max_entries: usize) -> Self {
        Self {
            bytes: vec![0; max_packets * SLOT_SIZE].into_boxed_slice(),
            slot_lens: vec![0; max_packets].into_boxed_slice(),
            slots_used: 0,
            entries: Vec::with_capacity(max_entries),
        }
    }

    /// Empties the batch, keeping its memory.
    pub fn clear(&mut self) {
        self.slots_used = 0;
        self.entries.clear();
    }

    /// Number of datagrams.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of distinct packets (slots) filled.
    pub fn distinct_packets(&self) -> usize {
        self.slots_used
    }

    /// The datagrams: receiver and bytes.
    pub fn iter(&self) -> impl Iterator<Item = (ReceiverId, &[u8])> + Clone + '_ {
        self.entries
            .iter()
            .map(|e| (e.receiver, self.slot(e.slot as usize)))
    }

    fn slot(&self, i: usize) -> &[u8] {
        &self.bytes[i * SLOT_SIZE..i * SLOT_SIZE + usize::from(self.slot_lens[i])]
    }

    /// A committed slot's bytes.
    pub(crate) fn slot_bytes(&self, slot: u32) -> &[u8] {
        self.slot(slot as usize)
    }

    /// A committed slot's bytes, to finish (a deferred signature).
    pub(crate) fn slot_bytes_mut(&mut self, slot: u32) -> &mut [u8] {
        let i = slot as usize;
        &mut self.bytes[i * SLOT_SIZE..i * SLOT_SIZE + usize::from(self.slot_lens[i])]
    }

    /// Room for one more packet and `entries` more datagrams.
    pub(crate) fn has_room(&self, entries: usize) -> bool {
        self.slots_used < self.slot_lens.len()
            && self.entries.len() + entries <= self.entries.capacity()
    }

    /// The next free slot, to be committed with [`TxBatch::commit_slot`].
    pub(crate) fn next_slot(&mut self) -> &mut [u8; SLOT_SIZE] {
        let i = self.slots_used;
        (&mut self.bytes[i * SLOT_SIZE..(i + 1) * SLOT_SIZE])
            .try_into()
            .expect("slot is SLOT_SIZE bytes")
    }

    /// Commits the next slot with `len` bytes; returns its index.
    pub(crate) fn commit_slot(&mut self, len: usize) -> u32 {
        let i = self.slots_used;
        self.slot_lens[i] = len as u16;
        self.slots_used += 1;
        i as u32
    }

    /// Sends slot `slot` to `receiver`. The caller checked [`TxBatch::has_room`].
    pub(crate) fn push(&mut self, receiver: ReceiverId, slot: u32) {
        debug_assert!(self.entries.len() < self.entries.capacity());
        self.entries.push(TxEntry { receiver, slot });
    }
}

//! The forwarding path allocates nothing per packet: a counting global allocator watches
//! verify + emit over full- and short-tagged packets, across a ROC wrap and a rekey, for
//! the TIP EKT path, and for keyed HMAC and AEAD sources.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ekt::Spi;
use switch::forward::{CsrcRewrite, Forwarder, Inbound, Receiver, TxBatch};
use switch::srtp::{MasterKey, SrtpContext, Suite, TipEktSender};
use switch::testing::params;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The group parameter set of `switch::testing` (KEK and salt there).
const SPI: Spi = Spi(switch::testing::AUDIO_SPI);

fn tip_packets(mk: &[u8; 16], ssrc: u32, first_seq: u16, count: usize, isn: u16) -> Vec<Vec<u8>> {
    let mut tx = TipEktSender::new(mk, &params(SPI.0), SPI).unwrap();
    tx.set_isn(isn);
    (0..count)
        .map(|i| {
            let seq = first_seq.wrapping_add(i as u16);
            let mut buf = vec![0u8; 1500];
            buf[..16].copy_from_slice(&[
                0x81, 0x70, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x51, 0x21,
            ]);
            buf[2..4].copy_from_slice(&seq.to_be_bytes());
            buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
            let n = tx
                .protect_rtp(&mut buf, 1100, Some((i % 2) as u8), i % 3 == 0)
                .unwrap();
            buf.truncate(n);
            buf
        })
        .collect()
}

fn keyed_packets(suite: Suite, ssrc: u32, count: usize) -> Vec<Vec<u8>> {
    let master =
        MasterKey::new(suite, &vec![1; suite.key_len()], &vec![2; suite.salt_len()]).unwrap();
    let mut ctx = SrtpContext::new(suite, &master);
    (0..count)
        .map(|i| {
            let mut buf = vec![0u8; 1500];
            buf[..16].copy_from_slice(&[
                0x81, 0x70, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x51, 0x21,
            ]);
            buf[2..4].copy_from_slice(&(65500u16.wrapping_add(i as u16)).to_be_bytes());
            buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
            let n = ctx.protect_rtp(&mut buf, 1000).unwrap();
            buf.truncate(n);
            buf
        })
        .collect()
}

#[test]
fn forwarding_allocates_nothing_per_packet() {
    let mut f = Forwarder::new(8);
    f.registry_mut().insert(SPI, params(SPI.0)).unwrap();
    for (i, suite) in [Suite::AesCm128HmacSha1_32, Suite::AeadAes128Gcm]
        .into_iter()
        .enumerate()
    {
        let master =
            MasterKey::new(suite, &vec![1; suite.key_len()], &vec![2; suite.salt_len()]).unwrap();
        f.add_keyed_source(0x100 + i as u32, suite, &master)
            .unwrap();
    }
    // Sender A across a sequence wrap; sender B rekeys half way (a new EMK with an ISN).
    let a = tip_packets(&[1; 16], 0xa, 65400, 300, 0);
    let mut b = tip_packets(&[2; 16], 0xb, 1, 150, 0);
    b.extend(tip_packets(&[3; 16], 0xb, 151, 150, 151));
    let c = keyed_packets(Suite::AesCm128HmacSha1_32, 0x100, 200);
    let d = keyed_packets(Suite::AeadAes128Gcm, 0x101, 200);
    let receivers: Vec<Receiver> = (0..6)
        .map(|i| Receiver {
            id: i,
            csrc: CsrcRewrite::TipScreen(1 + (i % 3) as u8),
        })
        .collect();
    let mut out = TxBatch::new(64, 256);
    // Warm up: the first full tag of each TIP sender creates its source (allowed to allocate).
    for p in [&a[0], &b[0]] {
        f.forward_batch(
            &[Inbound {
                data: p,
                appended_byte: true,
                receivers: &receivers,
            }],
            &mut out,
        );
        out.clear();
    }
    let mut batches: Vec<Vec<Inbound<'_>>> = Vec::new();
    for i in 1..300 {
        let mut batch = vec![
            Inbound {
                data: &a[i],
                appended_byte: true,
                receivers: &receivers,
            },
            Inbound {
                data: &b[i],
                appended_byte: true,
                receivers: &receivers,
            },
        ];
        if i < 200 {
            batch.push(Inbound {
                data: &c[i],
                appended_byte: false,
                receivers: &receivers,
            });
            batch.push(Inbound {
                data: &d[i],
                appended_byte: false,
                receivers: &receivers,
            });
        }
        batches.push(batch);
    }
    COUNTING.store(true, Ordering::SeqCst);
    let mut sent = 0;
    for batch in &batches {
        sent += f.forward_batch(batch, &mut out);
        out.clear();
    }
    COUNTING.store(false, Ordering::SeqCst);
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(f.stats().dropped_total(), 0, "{:?}", f.stats());
    assert_eq!(sent, (299 * 2 + 199 * 2) * receivers.len());
    assert_eq!(f.stats().keys_learned, 3, "A, B and B's new key");
    assert_eq!(
        allocations, 0,
        "heap allocations while forwarding {sent} datagrams"
    );
    // The counter does count: the assertion above could fail.
    COUNTING.store(true, Ordering::SeqCst);
    let probe = std::hint::black_box(Box::new(sent));
    COUNTING.store(false, Ordering::SeqCst);
    drop(probe);
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst), 1);
}

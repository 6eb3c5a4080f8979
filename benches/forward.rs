//! The forwarding fast path beside its baselines, in one run (issue 2; ids are stable so
//! results can be compared over time). Each bench walks a set of distinct, pre-protected
//! packets small enough to stay in L2 (as a recvmmsg batch would); replay protection means
//! a packet is forwarded once, so the forwarder is rebuilt, outside the timed region, after
//! each pass over the set.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use ekt::Spi;
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use switch::forward::{CsrcRewrite, Forwarder, GhashEngine, Inbound, Receiver, TxBatch};
use switch::meeting::switching::Mode;
use switch::srtp::batch::{Engine, HmacJob, HmacPads, hmac_sha1_batch};
use switch::srtp::{HmacSha1Key, MasterKey, SrtpContext, Suite, TipEktSender};
use switch::testing::Sim;
use switch::testing::{SALT, params};
use switch::transcrypt::g711::Law;
use switch::transcrypt::mixer::{FRAME, MixKey, Mixer};
use switch::transcrypt::restamp::Restamper;

/// The group parameter set of `switch::testing` (KEK and salt there).
const SPI: Spi = Spi(switch::testing::AUDIO_SPI);
const SENDER_KEY: [u8; 16] = [0x42; 16];
const SSRC: u32 = 0x0bad_cafe;
/// Packets per pass: 256 x 1200 B = 300 KB, L2-resident.
const PASS: usize = 256;
/// RTP header with one TIP CSRC.
const HEADER: [u8; 16] = [
    0x81, 0x70, 0, 0, 0, 0, 0, 0, 0x0b, 0xad, 0xca, 0xfe, 0x12, 0x34, 0x51, 0x21,
];

fn receivers(screens: &[u8]) -> Vec<Receiver> {
    screens
        .iter()
        .enumerate()
        .map(|(i, &s)| Receiver {
            id: i as u32,
            csrc: CsrcRewrite::TipScreen(s),
        })
        .collect()
}

/// TIP EKT packets of `wire_len` bytes: the first of each ten with a full tag, the rest
/// short, each with the appended byte.
fn tip_packets(wire_len: usize) -> Vec<Vec<u8>> {
    tip_packets_sized(|_| wire_len)
}

/// TIP EKT packets of mixed lengths 100..1300 (mean about 700).
fn tip_packets_mixed() -> Vec<Vec<u8>> {
    tip_packets_sized(|i| 100 + (i as u64 * 2_654_435_761 % 1200) as usize)
}

fn tip_packets_sized(wire_len: impl Fn(usize) -> usize) -> Vec<Vec<u8>> {
    let mut tx = TipEktSender::new(&SENDER_KEY, &params(SPI.0), SPI).unwrap();
    (0..=PASS)
        .map(|i| {
            let full = i % 10 == 0;
            let wire_len = wire_len(i);
            let rtp_len = wire_len - 1 - if full { 34 } else { 11 };
            let mut buf = vec![0u8; 1500];
            buf[..16].copy_from_slice(&HEADER);
            buf[2..4].copy_from_slice(&(i as u16).to_be_bytes());
            let n = tx.protect_rtp(&mut buf, rtp_len, Some(1), full).unwrap();
            buf.truncate(n);
            buf
        })
        .collect()
}

fn tip_forwarder(first: &[u8]) -> Forwarder {
    let mut f = Forwarder::new(4);
    f.registry_mut().insert(SPI, params(SPI.0)).unwrap();
    f.verify(first, true).unwrap();
    f
}

/// Runs `per_packet` over packets 1..=PASS, rebuilding state with `fresh` between passes;
/// only the per-packet work is timed.
fn timed<S>(
    iters: u64,
    packets: &[Vec<u8>],
    mut fresh: impl FnMut() -> S,
    mut per_packet: impl FnMut(&mut S, &[u8]),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters as usize;
    while left > 0 {
        let mut state = fresh();
        let n = left.min(PASS);
        let start = Instant::now();
        for p in &packets[1..=n] {
            per_packet(&mut state, p);
        }
        total += start.elapsed();
        left -= n;
    }
    total
}

/// `wire_len` 0: mixed lengths.
fn bench_tip(c: &mut Criterion, id: &str, wire_len: usize, screens: &[u8]) {
    let packets = if wire_len == 0 {
        tip_packets_mixed()
    } else {
        tip_packets(wire_len)
    };
    let rx = receivers(screens);
    let mut out = TxBatch::new(8, 8);
    c.bench_function(id, |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                &packets,
                || tip_forwarder(&packets[0]),
                |f, p| {
                    let v = f.verify(black_box(p), true).unwrap();
                    f.emit(p, &v, &rx, &mut out).unwrap();
                    black_box(out.len());
                    out.clear();
                },
            )
        })
    });
}

/// The forwarder's batch path: 64 packets per `forward_batch`, their short tags verified
/// together by `engine`; one receiver each. Criterion's time is per packet.
fn bench_tip_batch(c: &mut Criterion, id: &str, packets: &[Vec<u8>], engine: Engine) {
    let rx = receivers(&[1]);
    let mut out = TxBatch::new(128, 128);
    c.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let mut f = tip_forwarder(&packets[0]);
                f.set_hmac_engine(engine);
                let n = left.min(PASS);
                let batch: Vec<Inbound<'_>> = packets[1..=n]
                    .iter()
                    .map(|p| Inbound {
                        data: p,
                        appended_byte: true,
                        receivers: &rx,
                    })
                    .collect();
                let start = Instant::now();
                for chunk in batch.chunks(64) {
                    black_box(f.forward_batch(black_box(chunk), &mut out));
                    out.clear();
                }
                total += start.elapsed();
                left -= n;
            }
            total
        })
    });
}

fn forward(c: &mut Criterion) {
    let best = Engine::detect();
    let equal = tip_packets(1200);
    let mixed = tip_packets_mixed();
    bench_tip_batch(c, "forward/hmac80_1200_batch64", &equal, best);
    bench_tip_batch(c, "forward/hmac80_mixed_batch64", &mixed, best);
    bench_tip_batch(
        c,
        "forward/hmac80_1200_batch64_scalar",
        &equal,
        Engine::Scalar,
    );
    bench_tip(c, "forward/hmac80_mixed", 0, &[1]);
    bench_tip(c, "forward/hmac80_1200", 1200, &[1]);
    bench_tip(c, "forward/hmac80_200", 200, &[1]);
    bench_tip(c, "forward/hmac80_1200_fanout4", 1200, &[1, 1, 1, 1]);
    bench_tip(c, "forward/hmac80_1200_fanout4_2hdr", 1200, &[1, 1, 2, 2]);

    // The floor: two HMAC-SHA1 computations over the same 1200 bytes (+ ROC).
    let k = HmacSha1Key::new(&[7; 20]);
    let data = vec![0x33u8; 1200];
    c.bench_function("floor/2x_hmac_sha1_1200", |b| {
        b.iter(|| {
            let roc = [0u8; 4];
            black_box(k.mac(&[black_box(&data), &roc]));
            black_box(k.mac(&[black_box(&data), &roc]));
        })
    });
}

/// Plain SRTP AES_CM_128_HMAC_SHA1_80 packets of 1200 bytes from the sender.
fn srtp_packets(suite: Suite, key: &[u8], salt: &[u8], wire_len: usize) -> Vec<Vec<u8>> {
    let mut ctx = SrtpContext::new(suite, &MasterKey::new(suite, key, salt).unwrap());
    (0..=PASS)
        .map(|i| {
            let mut buf = vec![0u8; 1500];
            buf[..16].copy_from_slice(&HEADER);
            buf[2..4].copy_from_slice(&(i as u16).to_be_bytes());
            let n = ctx
                .protect_rtp(&mut buf, wire_len - suite.srtp_tag_len())
                .unwrap();
            buf.truncate(n);
            buf
        })
        .collect()
}

fn sfu_baselines(c: &mut Criterion) {
    let suite = Suite::AesCm128HmacSha1_80;
    let packets = srtp_packets(suite, &SENDER_KEY, &SALT, 1200);
    let receiver_keys: Vec<[u8; 16]> = (1..=4).map(|i| [i as u8; 16]).collect();
    // What an SFU does: decrypt once with the sender's per-hop key, then encrypt and sign
    // for each receiver with that receiver's per-hop key. Our own transform, pre-keyed,
    // in place.
    let mut scratch = vec![0u8; 1500];
    let mut outs = vec![vec![0u8; 1500]; 4];
    c.bench_function("baseline/sfu_inplace_1200_fanout4", |b| {
        b.iter_custom(|iters| {
            let fresh = || {
                let ctx =
                    |k: &[u8]| SrtpContext::new(suite, &MasterKey::new(suite, k, &SALT).unwrap());
                (
                    ctx(&SENDER_KEY),
                    receiver_keys.iter().map(|k| ctx(k)).collect::<Vec<_>>(),
                )
            };
            timed(iters, &packets, fresh, |(rx, txs), p| {
                scratch[..p.len()].copy_from_slice(p);
                let n = rx.unprotect_rtp(&mut scratch[..p.len()]).unwrap();
                scratch[12..16].copy_from_slice(&0x1234_5323u32.to_be_bytes());
                for (tx, out) in txs.iter_mut().zip(outs.iter_mut()) {
                    out[..n].copy_from_slice(&scratch[..n]);
                    black_box(tx.protect_rtp(out, n).unwrap());
                }
            })
        })
    });
    let profile = webrtc_srtp::protection_profile::ProtectionProfile::Aes128CmHmacSha1_80;
    let webrtc =
        |k: &[u8]| webrtc_srtp::context::Context::new(k, &SALT, profile, None, None).unwrap();
    c.bench_function("baseline/sfu_webrtc_srtp_1200_fanout4", |b| {
        b.iter_custom(|iters| {
            let fresh = || {
                (
                    webrtc(&SENDER_KEY),
                    receiver_keys.iter().map(|k| webrtc(k)).collect::<Vec<_>>(),
                )
            };
            timed(iters, &packets, fresh, |(rx, txs), p| {
                let mut plain = rx.decrypt_rtp(p).unwrap().to_vec();
                plain[12..16].copy_from_slice(&0x1234_5323u32.to_be_bytes());
                for tx in txs.iter_mut() {
                    black_box(tx.encrypt_rtp(&plain).unwrap());
                }
            })
        })
    });
}

fn gcm(c: &mut Criterion) {
    let suite = Suite::AeadAes128Gcm;
    let (key, salt) = ([0x21u8; 16], [0x22u8; 12]);
    let packets = srtp_packets(suite, &key, &salt, 1200);
    let rx = receivers(&[3]);
    let mut out = TxBatch::new(8, 8);
    // The GHASH engine this CPU picks (PCLMULQDQ where it has it), then the portable one
    // (the `ghash` crate) for comparison.
    for (name, engine) in [
        ("forward/gcm128_1200", GhashEngine::detect()),
        ("forward/gcm128_1200_portable", GhashEngine::Portable),
    ] {
        c.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let fresh = || {
                    let mut f = Forwarder::new(4);
                    f.set_ghash_engine(engine);
                    f.add_keyed_source(SSRC, suite, &MasterKey::new(suite, &key, &salt).unwrap())
                        .unwrap();
                    f
                };
                timed(iters, &packets, fresh, |f, p| {
                    let v = f.verify(black_box(p), false).unwrap();
                    f.emit(p, &v, &rx, &mut out).unwrap();
                    black_box(out.len());
                    out.clear();
                })
            })
        });
    }
    // ring's AES-128-GCM, the fastest GCM in the tree: open with the sender's key, seal
    // with the receiver's.
    let open_key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[1; 16]).unwrap());
    let seal_key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[2; 16]).unwrap());
    let mut sealed = vec![0u8; 1200];
    sealed[..16].copy_from_slice(&HEADER);
    let nonce = [9u8; 12];
    let (head, body) = sealed.split_at_mut(16);
    let tag = open_key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&*head),
            &mut body[..1168],
        )
        .unwrap();
    body[1168..].copy_from_slice(tag.as_ref());
    let mut buf = sealed.clone();
    c.bench_function("baseline/gcm128_ring_decrypt_encrypt_1200", |b| {
        b.iter(|| {
            buf.copy_from_slice(&sealed);
            let (head, body) = buf.split_at_mut(16);
            let plain = open_key
                .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(&*head), body)
                .unwrap();
            let n = plain.len();
            let tag = seal_key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(&*head),
                    &mut body[..n],
                )
                .unwrap();
            let _ = black_box(tag);
        })
    });
}

/// The meeting core's per-packet cost: a 10-participant meeting (1-screen endpoints,
/// negotiated over TIP, keys learned from EKT) where participant 1 speaks; each of its
/// 1200-byte video packets is looked up, verified, routed to the 9 others (one shared
/// output header) and re-signed. Time advances 200 us per packet (about 5,000 packets/s in
/// the meeting), so the 20 ms switching tick runs at its real rate and is included.
fn meeting(c: &mut Criterion) {
    let endpoints: Vec<(u32, u8)> = (1..=10).map(|i| (i, 1)).collect();
    let mut sim = Sim::new(Mode::Site, &endpoints);
    assert_eq!(sim.negotiate(), 20);
    let mut levels = [5u8; 10];
    levels[0] = 70;
    for _ in 0..60 {
        sim.media_tick(&levels, true);
    }
    let mut out = TxBatch::new(64, 1024);
    let mut now = sim.now;
    c.bench_function("meeting/handle_packet_10p", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let n = left.min(PASS);
                let packets = sim.video_packets(0, 1, n, 1200);
                let start = Instant::now();
                for (leg, p) in &packets {
                    now += Duration::from_micros(200);
                    sim.meeting
                        .handle_datagram(now, *leg, black_box(p), &mut out);
                    black_box(out.len());
                    out.clear();
                }
                total += start.elapsed();
                left -= n;
            }
            total
        })
    });
    let s = sim.meeting.forwarder().stats();
    assert_eq!(s.dropped_total(), 0, "{s:?}");
    assert!(s.forwarded > 0);
}

/// Issue 19, beside `forward/hmac80_1200` (the same packets, the fast path to one TIP
/// receiver): the transcrypt path to one standard receiver: verify, open with the sender's
/// key, restamp into the receiver's stream, protect with its per-hop key. And one 20 ms
/// G.711 mix of three sources for one receiver (decode 3 x 160, rank, sum, encode), beside
/// three `forward/hmac80_200` (the three audio packets a TIP receiver would get instead).
fn transcrypt(c: &mut Criterion) {
    let packets = tip_packets(1200);
    let suite = Suite::AesCm128HmacSha1_80;
    let hop = MasterKey::new(suite, &[9; 16], &[8; 14]).unwrap();
    let mut slot = vec![0u8; 1500];
    let mut plain = vec![0u8; 1500];
    let t0 = Instant::now();
    c.bench_function("transcrypt/video_1200_one_receiver", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                &packets,
                || {
                    (
                        tip_forwarder(&packets[0]),
                        Restamper::new(7, 90_000, 0, 0),
                        SrtpContext::new(suite, &hop),
                    )
                },
                |(f, restamp, ctx), p| {
                    let v = f.verify(black_box(p), true).unwrap();
                    let n = f.open(p, &v, &mut plain).unwrap();
                    let seq = u16::from_be_bytes([plain[2], plain[3]]);
                    let (seq, ts) = restamp.map(t0, v.ssrc(), seq, 0).unwrap();
                    slot[..12].copy_from_slice(&plain[..12]);
                    slot[0] = 0x80;
                    slot[2..4].copy_from_slice(&seq.to_be_bytes());
                    slot[4..8].copy_from_slice(&ts.to_be_bytes());
                    slot[8..12].copy_from_slice(&7u32.to_be_bytes());
                    slot[12..n - 4].copy_from_slice(&plain[16..n]);
                    black_box(ctx.protect_rtp(&mut slot, n - 4).unwrap());
                },
            )
        })
    });

    let law = Law::Mu;
    let frames: Vec<Vec<u8>> = (0..3)
        .map(|s| {
            (0..160)
                .map(|i| law.encode((i * 97 + s * 1000) as i16))
                .collect()
        })
        .collect();
    let mut mixer: Mixer<u8> = Mixer::new();
    let mut frame = [0i16; FRAME];
    let mut encoded = [0u8; FRAME];
    // Primed: every source has a frame buffered ahead.
    for (s, f) in frames.iter().enumerate() {
        let key = MixKey {
            owner: s as u32,
            source: s as u8,
        };
        mixer.push(key, f.iter().map(|&c| law.decode(c)));
        mixer.push(key, f.iter().map(|&c| law.decode(c)));
    }
    c.bench_function("transcrypt/mix_g711_3src_20ms", |b| {
        b.iter(|| {
            for (s, f) in frames.iter().enumerate() {
                let key = MixKey {
                    owner: s as u32,
                    source: s as u8,
                };
                mixer.push(key, black_box(f).iter().map(|&c| law.decode(c)));
            }
            mixer.tick();
            mixer.mix_for(99, &mut frame);
            for (e, x) in encoded.iter_mut().zip(frame) {
                *e = law.encode(x);
            }
            black_box(&encoded);
        })
    });
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

/// Batch HMAC-SHA1 engines (issue 7), 64 jobs per batch: equal 1204-byte messages (a
/// 1200-byte packet and its ROC), and mixed lengths 100..1300 (mean about 700). Criterion
/// times the batch; divide by 64 for one HMAC (`floor/2x_hmac_sha1_1200` is two).
fn batch_hmac(c: &mut Criterion) {
    let pads = HmacPads::new(&[7; 20]);
    let equal: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 1204]).collect();
    let mixed: Vec<Vec<u8>> = (0..64u32)
        .map(|i| vec![i as u8; 100 + ((i * 2654435761) % 1200) as usize])
        .collect();
    let mut engines = vec![Engine::Scalar];
    engines.extend((1..=4).map(Engine::ShaNi).filter(|e| e.available()));
    engines.extend([Engine::Avx2].into_iter().filter(|e| e.available()));
    for engine in engines {
        let name = match engine {
            Engine::Scalar => "scalar".to_owned(),
            Engine::ShaNi(n) => format!("shani_x{n}"),
            Engine::Avx2 => "avx2_x8".to_owned(),
        };
        for (set, messages) in [("1204", &equal), ("mixed", &mixed)] {
            c.bench_function(&format!("hmac/batch64_{set}/{name}"), |b| {
                b.iter(|| {
                    let mut jobs: Vec<HmacJob<'_>> = messages
                        .iter()
                        .map(|m| HmacJob::new(&pads, black_box(m), &[]))
                        .collect();
                    hmac_sha1_batch(engine, &mut jobs).unwrap();
                    black_box(jobs[63].tag);
                })
            });
        }
    }
}

criterion_group! { name = benches; config = config(); targets = forward, sfu_baselines, gcm, meeting, batch_hmac, transcrypt }
criterion_main!(benches);

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

use super::*;

/// A deterministic byte stream (xorshift) for the randomized inputs.
struct Bytes(u64);

impl Bytes {
    fn next(&mut self) -> u8 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 as u8
    }

    fn vec(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next()).collect()
    }
}

fn reference(key: &[u8], parts: [&[u8]; 2]) -> [u8; 20] {
    let mut m = Hmac::<Sha1>::new_from_slice(key).unwrap();
    m.update(parts[0]);
    m.update(parts[1]);
    m.finalize().into_bytes().into()
}

/// Every engine this CPU runs, the forced fallback included; SHA-NI ones are skipped
/// (and say so) on a CPU without the SHA extensions.
fn engines() -> Vec<Engine> {
    let all = [
        Engine::Scalar,
        Engine::ShaNi(1),
        Engine::ShaNi(2),
        Engine::ShaNi(3),
        Engine::ShaNi(4),
        Engine::Avx2,
    ];
    let (run, skip): (Vec<Engine>, Vec<Engine>) = all.into_iter().partition(|e| e.available());
    if !skip.is_empty() {
        eprintln!("not on this CPU, not tested here: {skip:?}");
    }
    run
}

#[test]
fn every_engine_equals_the_hmac_crate_at_every_length_0_to_1500() {
    let mut r = Bytes(0x1234_5678_9abc_def1);
    let keys: Vec<Vec<u8>> = [0, 20, 64, 65, 100].iter().map(|&n| r.vec(n)).collect();
    let pads: Vec<HmacPads> = keys.iter().map(|k| HmacPads::new(k)).collect();
    let messages: Vec<Vec<u8>> = (0..=1500).map(|n| r.vec(n)).collect();
    let roc = r.vec(4);
    for engine in engines() {
        // In batches of 17 consecutive lengths: streams finish at different blocks.
        for (c, group) in messages.chunks(17).enumerate() {
            let mut jobs: Vec<HmacJob<'_>> = group
                .iter()
                .enumerate()
                .map(|(i, m)| HmacJob::new(&pads[(c + i) % pads.len()], m, &roc))
                .collect();
            hmac_sha1_batch(engine, &mut jobs).unwrap();
            for (i, (job, m)) in jobs.iter().zip(group).enumerate() {
                let key = &keys[(c + i) % keys.len()];
                assert_eq!(
                    job.tag,
                    reference(key, [m, &roc]),
                    "{engine:?}, {} bytes",
                    m.len()
                );
            }
        }
    }
}

#[test]
fn mixed_batches_of_every_size_and_split_parts_agree() {
    let mut r = Bytes(42);
    let key = r.vec(20);
    let pads = HmacPads::new(&key);
    for engine in engines() {
        for size in [1, 3, 7, 16, 17, 64, 300] {
            let messages: Vec<Vec<u8>> = (0..size)
                .map(|_| {
                    let n = usize::from(r.next()) * 6 % 1500;
                    r.vec(n)
                })
                .collect();
            let mut jobs: Vec<HmacJob<'_>> = messages
                .iter()
                .map(|m| {
                    let cut = m.len() / 3;
                    HmacJob::new(&pads, &m[..cut], &m[cut..])
                })
                .collect();
            hmac_sha1_batch(engine, &mut jobs).unwrap();
            for (job, m) in jobs.iter().zip(&messages) {
                assert_eq!(
                    job.tag,
                    reference(&key, [m, &[]]),
                    "{engine:?}, batch {size}"
                );
            }
        }
    }
}

#[test]
fn rfc2202_case_2_and_the_limits() {
    let pads = HmacPads::new(b"Jefe");
    let mut jobs = [HmacJob::new(&pads, b"what do ya want ", b"for nothing?")];
    for engine in engines() {
        hmac_sha1_batch(engine, &mut jobs).unwrap();
        assert_eq!(
            jobs[0].tag,
            <[u8; 20]>::try_from(
                &b"\xef\xfc\xdf\x6a\xe5\xeb\x2f\xa2\xd2\x74\x16\xd5\xf1\x84\xdf\x9c\x25\x9a\x7c\x79"[..]
            )
            .unwrap()
        );
    }
    let long = vec![0u8; MAX_MESSAGE + 1];
    let mut too_long = [HmacJob::new(&pads, &long, &[])];
    assert_eq!(
        hmac_sha1_batch(Engine::Scalar, &mut too_long),
        Err(BatchError::TooLong)
    );
    assert_eq!(
        hmac_sha1_batch(Engine::ShaNi(5), &mut jobs),
        Err(BatchError::Unavailable)
    );
    assert_eq!(format!("{pads:?}"), "HmacPads");
    hmac_sha1_batch(Engine::detect(), &mut []).unwrap();
}

#[test]
fn small_batches_take_fewer_streams() {
    assert_eq!(Engine::ShaNi(4).for_batch(1), Engine::ShaNi(1));
    assert_eq!(Engine::ShaNi(4).for_batch(3), Engine::ShaNi(3));
    assert_eq!(Engine::ShaNi(4).for_batch(64), Engine::ShaNi(4));
    assert_eq!(Engine::ShaNi(4).for_batch(0), Engine::ShaNi(1));
    assert_eq!(Engine::Avx2.for_batch(6), Engine::Scalar);
    assert_eq!(Engine::Avx2.for_batch(7), Engine::Avx2);
    assert_eq!(Engine::Scalar.for_batch(64), Engine::Scalar);
}

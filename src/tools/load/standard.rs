//! A standard SIP endpoint under load (`mswitch load --standard`, issue 19): one per
//! meeting, beside the TIP endpoints. It dials like a SIP phone (DTLS-SRTP, PCMU and
//! H.264, no TIP), waits for its keys, then sends 20 ms of its tone (loud during its turn
//! as the meeting's speaker) and a two-packet video frame every 20 ms, and counts what it
//! receives: the mix and the switched video, each one stream decrypted with the switch's
//! per-hop key.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sip::tls::TlsPolicy;
use switch::dtls::DtlsIdentity;

use super::traffic::{CallPlan, CallStats, Shared};
use crate::tools::standard_call::StandardCall;

const TICK: Duration = Duration::from_millis(20);

/// Dials, waits for DTLS, then runs media until the driver says stop.
pub async fn run_standard_call(
    plan: CallPlan,
    policy: TlsPolicy,
    sip: SocketAddr,
    dtls: Arc<DtlsIdentity>,
    shared: Arc<Shared>,
) -> CallStats {
    let mut stats = CallStats {
        standard: true,
        ..CallStats::default()
    };
    let dialled = Instant::now();
    let tone = 300.0 + 100.0 * f64::from(plan.id % 20);
    let mut call = match StandardCall::dial(plan.id, tone, &policy, sip, &plan.number, &dtls).await
    {
        Ok(c) => c,
        Err(e) => {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            stats.error = Some(e.to_string());
            return stats;
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !call.endpoint.keyed() {
        if Instant::now() > deadline || shared.stop.load(Ordering::Relaxed) {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            stats.error = Some("DTLS not through within 30 s".into());
            return stats;
        }
        call.pump(Instant::now()).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    shared.joined.fetch_add(1, Ordering::Relaxed);
    let mut next = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= next {
            if now - next > Duration::from_millis(20) {
                stats.late_sends += u64::from(shared.in_window(now));
                next = now;
            }
            next += TICK;
            let period = shared.speaker_period.as_millis().max(1);
            let turn = ((now - shared.base).as_millis() / period) as usize;
            let speaking = turn % plan.meeting_size.max(1) == plan.index;
            let packets = call
                .endpoint
                .media_tick(if speaking { 8000.0 } else { 300.0 }, true);
            if shared.in_window(now) {
                stats.sent_packets += packets.len() as u64;
                stats.sent_bytes += packets.iter().map(|p| p.1.len() as u64).sum::<u64>();
            }
            call.send_all(packets).await;
        }
        call.readable_until(tokio::time::Instant::from_std(next))
            .await;
        let before = (
            call.endpoint.received,
            call.endpoint.video_lost,
            call.endpoint.decrypt_failures,
        );
        call.pump(Instant::now()).await;
        let e = &call.endpoint;
        if stats.join_time.is_none() && e.received.iter().sum::<u64>() > 0 {
            stats.join_time = Some(Instant::now() - dialled);
        }
        if shared.in_window(Instant::now()) {
            let audio = e.received[0] - before.0[0];
            let video = e.received[1] - before.0[1];
            stats.received_packets += audio + video;
            stats.received_video += video;
            stats.lost += e.video_lost - before.1;
            stats.verify_failures += e.decrypt_failures - before.2;
        }
    }
    stats
}

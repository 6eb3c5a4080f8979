//! `mswitch load` (issue 6): meetings of simulated TelePresence endpoints against a switch
//! running as a process of its own, and what it costs the switch.
//!
//! Each point of a run: the switch starts (or `--target` names a running one); N meetings
//! of M endpoints (the first 3-screen, the others 1-screen) dial it over SIP/TLS, key their
//! lines with DTLS-SRTP, negotiate TIP and take the group key; they send realistic audio
//! and video ([`traffic`]) while the speaker rotates; after every endpoint joined and one
//! second more, a window of the set duration measures: packets and bytes each way, loss,
//! the latency the switch adds, verification failures at the receivers, the switch's CPU
//! time per forwarded packet (/proc) and its peak memory, join times. The same load then
//! runs against the SFU baseline (`mswitch run --sfu-baseline`, tools builds only), and the report gives the ratio.
//! With `--standard`, each meeting also has a standard SIP endpoint ([`standard`]): its
//! lines are transcrypt legs, so the point measures what they cost.

pub mod args;

/// `mswitch run`'s flag (tools builds only) that makes the switch under test forward as
/// an SFU does, for the comparison.
pub const SFU_BASELINE_FLAG: &str = "--sfu-baseline";

pub mod child;
pub mod measure;
pub mod report;
pub mod standard;
pub mod threads;
pub mod traffic;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use switch::dtls::DtlsIdentity;

use child::{SwitchMode, SwitchProcess};
use threads::{Dial, Generator};
use traffic::{CallPlan, CallStats, Shared};

/// Why a load run failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// I/O (files, sockets, the child process).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The switch under test.
    #[error("switch: {0}")]
    Switch(String),
    /// The endpoints' TLS identity.
    #[error("endpoints: {0}")]
    Endpoint(#[from] crate::tools::endpoint::EndpointError),
}

/// A switch started by someone else.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its SIP/TLS address.
    pub sip: SocketAddr,
    /// Its process id (for its CPU time and memory).
    pub pid: u32,
    /// Its data directory (its local CA issues the endpoints' certificates).
    pub data_dir: PathBuf,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Meetings.
    pub meetings: usize,
    /// Endpoints per meeting: the first has 3 screens, the others 1.
    pub endpoints: usize,
    /// The measurement window.
    pub duration: Duration,
    /// How long each speaker talks.
    pub speaker_period: Duration,
    /// The switch's media workers (when the generator starts it).
    pub workers: usize,
    /// Also measure the SFU baseline, and the switch with batching off.
    pub baseline: bool,
    /// Also measure with recvmmsg/sendmmsg batching off.
    pub batching_off: bool,
    /// Also measure with UDP segmentation offload off (`[media] gso = false`).
    pub gso_off: bool,
    /// Also measure with UDP receive offload off (`[media] gro = false`).
    pub gro_off: bool,
    /// Also measure the switch's path before issue 20: no GSO, no GRO.
    pub old_path: bool,
    /// One received media packet in this many is verified and decrypted (1: all).
    pub verify_every: u64,
    /// Threads the simulated endpoints run on (0: the cores the switch's workers leave).
    pub generator_threads: usize,
    /// One standard SIP endpoint per meeting too (a transcrypt leg, issue 19).
    pub standard: bool,
    /// A running switch instead of one started per point.
    pub target: Option<Target>,
    /// Segment counts to sweep (the meetings follow); empty: one point.
    pub sweep: Vec<usize>,
    /// Where the report, the JSON, the chart and the switch's logs go.
    pub out: PathBuf,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            meetings: 2,
            endpoints: 4,
            duration: Duration::from_secs(10),
            speaker_period: Duration::from_secs(3),
            workers: 1,
            baseline: true,
            batching_off: false,
            gso_off: false,
            gro_off: false,
            old_path: false,
            verify_every: 1,
            generator_threads: 0,
            standard: false,
            target: None,
            sweep: Vec::new(),
            out: PathBuf::from("mswitch-load"),
        }
    }
}

/// Segments (screens) of `meetings` meetings of `endpoints` endpoints.
pub fn segments(meetings: usize, endpoints: usize) -> usize {
    meetings * (if endpoints == 0 { 0 } else { 3 + endpoints - 1 })
}

/// One measured point.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Point {
    /// `fast`, `sfu-baseline` or `fast, batching off`.
    pub switch: String,
    /// Meetings.
    pub meetings: usize,
    /// Endpoints per meeting.
    pub endpoints: usize,
    /// Segments (screens) in all.
    pub segments: usize,
    /// Endpoints that joined.
    pub joined: usize,
    /// Endpoints that failed to join.
    pub failed: usize,
    /// The window, seconds.
    pub seconds: f64,
    /// Media packets/s the endpoints sent.
    pub sent_pps: f64,
    /// Media bits/s the endpoints sent.
    pub sent_bps: f64,
    /// Media packets/s the endpoints received (what the switch forwarded).
    pub received_pps: f64,
    /// Media bits/s the endpoints received.
    pub received_bps: f64,
    /// Video packets missing in received streams.
    pub lost: u64,
    /// Their share of the video that should have arrived.
    pub loss_ratio: f64,
    /// Audio packets missing in received streams (mostly the loudest-N mix changing).
    pub audio_gaps: u64,
    /// Datagrams the switch could not send (its own count for the whole run, from its
    /// log; `None` for a `--target`).
    pub switch_send_dropped: Option<u64>,
    /// The switch's datagrams received per wake-up with a socket ready (its whole run).
    pub switch_in_per_wakeup: Option<f64>,
    /// Its datagrams received per recvmmsg call (with GRO a message may hold several).
    pub switch_in_per_recv_call: Option<f64>,
    /// Its datagrams sent per sendmmsg call (with GSO a message holds a run).
    pub switch_out_per_send_call: Option<f64>,
    /// UDP datagrams the kernel dropped during the window (system-wide).
    pub kernel_drops: u64,
    /// Received packets whose tag or payload did not check (must be 0).
    pub verify_failures: u64,
    /// Latency the switch added, microseconds: p50, p99, p99.9, max.
    pub latency_us: [u32; 4],
    /// The switch's CPU time in the window.
    pub switch_cpu_seconds: f64,
    /// The switch's CPU time per forwarded (received) packet, nanoseconds.
    pub switch_cpu_ns_per_packet: f64,
    /// The switch's CPU use, in cores.
    pub switch_cores: f64,
    /// The generator's CPU use, in cores.
    pub generator_cores: f64,
    /// The generator's CPU time per forwarded (received) packet, nanoseconds: it must stay
    /// below the switch's for the point to measure the switch.
    pub generator_cpu_ns_per_packet: f64,
    /// Packets the generator could not send (its sockets' buffers were full).
    pub generator_unsent: u64,
    /// Receive errors at the generator's sockets (other than an empty socket).
    pub generator_socket_errors: u64,
    /// Received packets verified and decrypted (all, or one in `--verify-every`).
    pub verified: u64,
    /// The switch's peak resident memory, bytes.
    pub switch_peak_rss: u64,
    /// INVITE to first media, milliseconds: median and maximum.
    pub join_ms: [f64; 2],
    /// Sends the generator made more than 20 ms late (it saturated).
    pub late_sends: u64,
    /// Why this point is saturated, if it is (the switch or the generator).
    pub saturated: Option<String>,
    /// The switch itself saturated (loss, drops, unsent datagrams, failed joins, more than
    /// 0.95 of a core): a sweep stops here. A generator that fell behind is reported but
    /// does not stop it (issue 20: the sweep measures the switch's limit).
    pub switch_saturated: bool,
    /// Standard SIP endpoints (`--standard`) that joined.
    pub standard_joined: usize,
    /// Media packets/s they received (the mix and the switched video), transcrypted.
    pub standard_received_pps: f64,
    /// Media packets/s they sent (re-protected end to end by the switch).
    pub standard_sent_pps: f64,
    /// The latency samples' distribution (for the chart): microseconds at each percent.
    #[serde(skip)]
    pub latency_cdf: Vec<u32>,
}

/// Runs one point against `target` or a switch started in `mode`; the simulated endpoints
/// run on the generator's threads ([`threads`]).
pub async fn run_point(
    opts: &LoadOptions,
    meetings: usize,
    mode: SwitchMode,
    label: &str,
) -> Result<Point, LoadError> {
    let dir = opts.out.join(format!(
        "{}-{}",
        label.replace([' ', ','], ""),
        segments(meetings, opts.endpoints)
    ));
    let mut started: Option<SwitchProcess> = None;
    let (sip, pid, data_dir) = match &opts.target {
        Some(t) => (t.sip, t.pid, t.data_dir.clone()),
        None => {
            let p = SwitchProcess::start(&dir, mode)?;
            let r = (p.sip, p.pid, p.data_dir.clone());
            started = Some(p);
            r
        }
    };
    let policy = crate::tools::endpoint::peer_policy(&data_dir, "mswitch-peer")?;
    let dtls = Arc::new(
        DtlsIdentity::generate().map_err(|e| LoadError::Switch(format!("DTLS identity: {e}")))?,
    );
    let shared = Arc::new(Shared {
        base: Instant::now(),
        base_unix_ns: traffic::unix_ns(),
        window_start: 0.into(),
        window_end: 0.into(),
        stop: false.into(),
        joined: 0.into(),
        failed: 0.into(),
        speaker_period: opts.speaker_period,
        verify_every: opts.verify_every.max(1),
    });
    let standard = usize::from(opts.standard);
    let per_meeting = opts.endpoints + standard;
    let total = meetings * per_meeting;
    let threads = if opts.generator_threads > 0 {
        opts.generator_threads
    } else {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        cores.saturating_sub(opts.workers).max(1)
    };
    let mut generator = Generator::start(threads, policy, sip, dtls, shared.clone())?;
    for m in 0..meetings {
        for i in 0..opts.endpoints {
            generator.dial(Dial::Tip(CallPlan {
                id: (m * opts.endpoints + i + 1) as u32,
                screens: if i == 0 { 3 } else { 1 },
                number: format!("{}", 7000 + m),
                index: i,
                meeting_size: per_meeting,
            }));
            // A ramp, not a burst: one INVITE every 20 ms.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if opts.standard {
            generator.dial(Dial::Standard(CallPlan {
                id: (50_000 + m) as u32,
                screens: 1,
                number: format!("{}", 7000 + m),
                index: opts.endpoints,
                meeting_size: per_meeting,
            }));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let ramp_deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (j, f) = (
            shared.joined.load(Ordering::Relaxed),
            shared.failed.load(Ordering::Relaxed),
        );
        progress(label, j, f, total);
        if j + f >= total || Instant::now() > ramp_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let me = std::process::id();
    let (cpu0, gen0, drops0) = (
        measure::cpu_time(pid).unwrap_or_default(),
        measure::cpu_time(me).unwrap_or_default(),
        measure::UdpDrops::read(),
    );
    let t0 = Instant::now();
    shared
        .window_start
        .store((t0 - shared.base).as_nanos() as u64, Ordering::Relaxed);
    tokio::time::sleep(opts.duration).await;
    let t1 = Instant::now();
    shared
        .window_end
        .store((t1 - shared.base).as_nanos() as u64, Ordering::Relaxed);
    let (cpu1, gen1, drops1) = (
        measure::cpu_time(pid).unwrap_or_default(),
        measure::cpu_time(me).unwrap_or_default(),
        measure::UdpDrops::read(),
    );
    let rss = measure::peak_rss(pid).unwrap_or(0);
    // The switch stops first, while every endpoint still listens: its count of datagrams
    // it could not send covers the run, not the endpoints going away.
    if let Some(p) = started.as_mut() {
        p.stop();
    }
    let total = |name: &str| started.as_ref().and_then(|p| p.media_totals(name));
    shared.stop.store(true, Ordering::Relaxed);
    let calls = generator.finish().await;
    let seconds = (t1 - t0).as_secs_f64();
    let mut point = summarize(
        label,
        meetings,
        opts.endpoints,
        &calls,
        seconds,
        (cpu1.saturating_sub(cpu0), gen1.saturating_sub(gen0)),
        drops1.since(drops0),
        rss,
    );
    point.switch_send_dropped = total("send_dropped");
    // The switch's trips through the kernel, over its whole run (join included).
    let per = |a: Option<u64>, b: Option<u64>| {
        a.zip(b.filter(|&b| b > 0))
            .map(|(a, b)| a as f64 / b as f64)
    };
    let (packets_in, packets_out) = (total("packets_in"), total("packets_out"));
    point.switch_in_per_wakeup = per(packets_in, total("wakeups"));
    point.switch_in_per_recv_call = per(packets_in, total("recv_calls"));
    point.switch_out_per_send_call = per(packets_out, total("send_calls"));
    (point.saturated, point.switch_saturated) = saturation(&point);
    Ok(point)
}

fn progress(label: &str, joined: usize, failed: usize, total: usize) {
    let width = 30;
    let done = (joined + failed) * width / total.max(1);
    eprint!(
        "\r  {label}: joining [{}{}] {joined}/{total}{}",
        "#".repeat(done),
        " ".repeat(width - done),
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    );
}

#[allow(clippy::too_many_arguments)]
fn summarize(
    label: &str,
    meetings: usize,
    endpoints: usize,
    calls: &[CallStats],
    seconds: f64,
    (switch_cpu, generator_cpu): (Duration, Duration),
    kernel_drops: u64,
    rss: u64,
) -> Point {
    let sum = |f: fn(&CallStats) -> u64| calls.iter().map(f).sum::<u64>();
    let received = sum(|c| c.received_packets);
    let lost = sum(|c| c.lost);
    let mut latencies: Vec<u32> = calls
        .iter()
        .flat_map(|c| c.latency_us.iter().copied())
        .collect();
    let latency = measure::percentiles(&mut latencies);
    let latency_cdf = (0..=100)
        .map(|q| {
            if latencies.is_empty() {
                0
            } else {
                latencies[((latencies.len() - 1) * q) / 100]
            }
        })
        .collect();
    let mut joins: Vec<f64> = calls
        .iter()
        .filter_map(|c| c.join_time.map(|d| d.as_secs_f64() * 1e3))
        .collect();
    joins.sort_by(f64::total_cmp);
    let join_ms = if joins.is_empty() {
        [0.0; 2]
    } else {
        [joins[joins.len() / 2], joins[joins.len() - 1]]
    };
    let failed = calls.iter().filter(|c| c.error.is_some()).count();
    let late_sends = sum(|c| c.late_sends);
    let mut p = Point {
        switch: label.to_owned(),
        meetings,
        endpoints,
        segments: segments(meetings, endpoints),
        joined: calls.len() - failed,
        failed,
        seconds,
        sent_pps: sum(|c| c.sent_packets) as f64 / seconds,
        sent_bps: sum(|c| c.sent_bytes) as f64 * 8.0 / seconds,
        received_pps: received as f64 / seconds,
        received_bps: sum(|c| c.received_bytes) as f64 * 8.0 / seconds,
        lost,
        loss_ratio: lost as f64 / (sum(|c| c.received_video) + lost).max(1) as f64,
        audio_gaps: sum(|c| c.audio_gaps),
        switch_send_dropped: None,
        switch_in_per_wakeup: None,
        switch_in_per_recv_call: None,
        switch_out_per_send_call: None,
        kernel_drops,
        verify_failures: sum(|c| c.verify_failures),
        latency_us: latency,
        switch_cpu_seconds: switch_cpu.as_secs_f64(),
        switch_cpu_ns_per_packet: switch_cpu.as_nanos() as f64 / received.max(1) as f64,
        switch_cores: switch_cpu.as_secs_f64() / seconds,
        generator_cores: generator_cpu.as_secs_f64() / seconds,
        generator_cpu_ns_per_packet: generator_cpu.as_nanos() as f64 / received.max(1) as f64,
        generator_unsent: sum(|c| c.unsent),
        generator_socket_errors: sum(|c| c.socket_errors),
        verified: sum(|c| c.verified),
        switch_peak_rss: rss,
        join_ms,
        late_sends,
        saturated: None,
        switch_saturated: false,
        latency_cdf,
        standard_joined: calls
            .iter()
            .filter(|c| c.standard && c.error.is_none())
            .count(),
        standard_received_pps: calls
            .iter()
            .filter(|c| c.standard)
            .map(|c| c.received_packets)
            .sum::<u64>() as f64
            / seconds,
        standard_sent_pps: calls
            .iter()
            .filter(|c| c.standard)
            .map(|c| c.sent_packets)
            .sum::<u64>() as f64
            / seconds,
    };
    (p.saturated, p.switch_saturated) = saturation(&p);
    p
}

/// Why a point is past saturation, if it is: loss, sends the generator made late, a core
/// used up, endpoints that could not join; and whether the switch is (not only the
/// generator).
fn saturation(p: &Point) -> (Option<String>, bool) {
    let mut why = Vec::new();
    if p.failed > 0 {
        why.push(format!("{} endpoints could not join", p.failed));
    }
    let send_dropped = p.switch_send_dropped.unwrap_or(0);
    if p.loss_ratio > 0.001 || p.kernel_drops > 0 || send_dropped > 0 {
        why.push(format!(
            "video loss {:.3} %, {} kernel drops, {send_dropped} unsent by the switch",
            p.loss_ratio * 100.0,
            p.kernel_drops
        ));
    }
    if p.switch_cores > 0.95 {
        why.push(format!("the switch used {:.2} cores", p.switch_cores));
    }
    let switch = !why.is_empty();
    if p.late_sends > 0 || p.generator_unsent > 0 || p.generator_socket_errors > 0 {
        why.push(format!(
            "the generator fell behind ({:.2} cores, {} late sends, {} unsent, {} socket errors)",
            p.generator_cores, p.late_sends, p.generator_unsent, p.generator_socket_errors
        ));
    }
    ((!why.is_empty()).then(|| why.join("; ")), switch)
}

/// Runs what `opts` asks: one point or a sweep, each against the fast path and (when
/// asked) the SFU baseline and batching off; writes the report, JSON and chart into
/// `opts.out`; returns the report text.
pub async fn run(opts: &LoadOptions) -> Result<String, LoadError> {
    std::fs::create_dir_all(&opts.out)?;
    let per_meeting = segments(1, opts.endpoints).max(1);
    let points: Vec<usize> = if opts.sweep.is_empty() {
        vec![opts.meetings]
    } else {
        opts.sweep
            .iter()
            .map(|s| (s / per_meeting).max(1))
            .collect()
    };
    let fast = SwitchMode {
        workers: opts.workers,
        batch: switch::udp::BATCH,
        sfu_baseline: false,
        gso: true,
        gro: true,
    };
    let mut results = Vec::new();
    for (i, &meetings) in points.iter().enumerate() {
        let p = run_point(opts, meetings, fast, "fast").await?;
        let saturated = p.switch_saturated;
        results.push(p);
        if opts.baseline && opts.target.is_none() {
            let mode = SwitchMode {
                sfu_baseline: true,
                ..fast
            };
            results.push(run_point(opts, meetings, mode, "sfu-baseline").await?);
        }
        if opts.batching_off && opts.target.is_none() {
            let mode = SwitchMode { batch: 1, ..fast };
            results.push(run_point(opts, meetings, mode, "fast, batching off").await?);
        }
        if opts.gso_off && opts.target.is_none() {
            let mode = SwitchMode { gso: false, ..fast };
            results.push(run_point(opts, meetings, mode, "fast, GSO off").await?);
        }
        if opts.gro_off && opts.target.is_none() {
            let mode = SwitchMode { gro: false, ..fast };
            results.push(run_point(opts, meetings, mode, "fast, GRO off").await?);
        }
        if opts.old_path && opts.target.is_none() {
            let mode = SwitchMode {
                gso: false,
                gro: false,
                ..fast
            };
            results.push(run_point(opts, meetings, mode, "fast, old path").await?);
        }
        if saturated && i + 1 < points.len() {
            eprintln!("  the switch saturated: the sweep stops here");
            break;
        }
    }
    let text = report::text(&results);
    std::fs::write(opts.out.join("load.txt"), &text)?;
    std::fs::write(
        opts.out.join("load.json"),
        serde_json::to_string_pretty(&results).map_err(std::io::Error::other)?,
    )?;
    std::fs::write(opts.out.join("load.svg"), report::svg(&results))?;
    Ok(text)
}

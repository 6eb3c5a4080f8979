//! `mswitch demo`: the switch and three simulated TelePresence endpoints on loopback, on
//! embedded defaults. A (3 screens), B and C (1 screen) call a secure meeting over SIP/TLS,
//! key every media line with DTLS-SRTP, negotiate TIP, take the group key from SPIMAP and
//! send EKT-keyed media; A, then B, then C talk. The timeline says what happened, and the
//! demo exits 0 only if every check held: every line negotiated, every receiver decrypted
//! everything with the sender's own key (the simulator checks each packet), each speaker
//! was shown to the others, and the switch dropped nothing it should have sent.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use switch::dtls::DtlsIdentity;
use switch::forward::TipCsrc;
use switch::testing::Endpoint;
use switch::tip::negotiation::Media;

use crate::app::App;
use crate::config::Config;
use crate::tools::endpoint::SimulatedCall;

const NAMES: [&str; 3] = ["A", "B", "C"];
/// Each speaker talks this long (longer than the 2 s hold time).
const TURN: Duration = Duration::from_secs(4);

/// Runs the demo; `Ok(timeline)` when every check held, `Err(timeline)` otherwise.
pub async fn run() -> Result<String, String> {
    let mut out = String::new();
    let dir = std::env::temp_dir().join(format!("mswitch-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let settings = Config::parse(&format!(
        "[sip]\nudp = \"\"\ntcp = \"\"\ntls = \"127.0.0.1:0\"\noptions_interval = 0\n\
         [tls]\ndata_dir = \"{}\"\n[media]\naddress = \"127.0.0.1\"\n\
         [admin]\nhttps = \"\"\nhttp_redirect = \"\"\nmetrics = \"127.0.0.1:0\"\n\
         [[meeting]]\nnumber = \"4000\"\npolicy = \"secure\"\n",
        dir.display()
    ))
    .map_err(|e| e.to_string())?;
    let app = App::start(settings).await.map_err(|e| e.to_string())?;
    let sip = app
        .sip_addr(sip::ua::Transport::Tls)
        .ok_or("no TLS listener")?;
    let stats = app.worker_stats();
    let metrics = app.metrics_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    let start = Instant::now();
    let t = |out: &mut String, line: &str| {
        let _ = writeln!(out, "{:6.2}s  {line}", start.elapsed().as_secs_f64());
    };
    let _ = writeln!(
        out,
        "mswitch demo: secure meeting 4000 on loopback (SIP/TLS {sip}), three TIP endpoints\n"
    );
    let policy =
        crate::tools::endpoint::peer_policy(&dir, "mswitch-peer").map_err(|e| e.to_string())?;
    let dtls = Arc::new(DtlsIdentity::generate().map_err(|e| e.to_string())?);
    let mut calls = Vec::new();
    for (i, screens) in [3u8, 1, 1].into_iter().enumerate() {
        let ep = Endpoint::new(i as u32 + 1, screens);
        let c = SimulatedCall::dial(ep, &policy, sip, "4000", false, &dtls)
            .await
            .map_err(|e| format!("{out}{} could not join: {e}", NAMES[i]))?;
        t(
            &mut out,
            &format!(
                "{} ({screens} screen{}) joined: 200 OK over mutual TLS, call {}",
                NAMES[i],
                if screens == 3 { "s" } else { "" },
                c.call_id
            ),
        );
        calls.push(c);
    }
    let mut keyed = HashSet::new();
    let mut negotiated = HashSet::new();
    let mut learned = HashSet::new();
    let mut idr = HashSet::new();
    let mut failures = Vec::new();
    let mut next_tick = Instant::now();
    let mut tick = 0u32;
    let mut turn_start: Option<Instant> = None;
    let mut speaker = 0usize;
    let total_ticks_before_media = Instant::now() + Duration::from_secs(10);
    loop {
        let now = Instant::now();
        for c in &mut calls {
            c.pump(now).await;
        }
        // Timeline: DTLS, SPIMAP, keys learned from EKT.
        for (i, c) in calls.iter().enumerate() {
            for l in &c.endpoint.lines {
                if let Some(s) = l.dtls_suite
                    && keyed.insert((i, l.media))
                {
                    t(
                        &mut out,
                        &format!(
                            "{} {:?}: DTLS-SRTP done, per-hop TIP control under {} (media: end to end, EKT)",
                            NAMES[i],
                            l.media,
                            s.sdes_name()
                        ),
                    );
                }
                if l.established && negotiated.insert((i, l.media)) {
                    let spi = l.group.map_or(0, |g| g.0);
                    t(
                        &mut out,
                        &format!(
                            "{} {:?}: TIP done, SPIMAP acknowledged (group SPI {spi:#06x})",
                            NAMES[i], l.media
                        ),
                    );
                }
            }
            for r in &c.endpoint.received {
                let from = endpoint_index(r.1);
                if learned.insert((i, from)) {
                    t(
                        &mut out,
                        &format!(
                            "{} decrypts {}'s media with the key {} announced in EKT",
                            name(i),
                            name(from),
                            name(from)
                        ),
                    );
                }
            }
        }
        let all_up = calls.iter().all(SimulatedCall::established);
        if !all_up {
            if now > total_ticks_before_media {
                failures.push("not every line finished TIP within 10 s".to_owned());
                break;
            }
        } else if turn_start.is_none() {
            turn_start = Some(now);
            t(&mut out, &format!("speaker: {} talks", NAMES[speaker]));
        }
        if let Some(ts) = turn_start
            && now >= ts + TURN
        {
            // Who each receiver shows, from the last half second of video it received.
            let mut line = format!("after {}'s turn:", NAMES[speaker]);
            for (i, c) in calls.iter().enumerate() {
                let shown = shown(&c.endpoint, now - Duration::from_millis(500));
                let mut screens: Vec<(u8, String)> = shown
                    .iter()
                    .map(|(screen, (who, camera))| {
                        let text = format!(
                            "{} screen: {}'s {} camera",
                            place(*screen),
                            name(*who),
                            place(*camera)
                        );
                        (*screen, text)
                    })
                    .collect();
                screens.sort();
                let screens: Vec<String> = screens.into_iter().map(|(_, s)| s).collect();
                let _ = write!(
                    line,
                    "\n          {} {}",
                    NAMES[i],
                    if screens.is_empty() {
                        "shows nobody".into()
                    } else {
                        screens.join(", ")
                    }
                );
                if i != speaker && !shown.values().any(|(w, _)| *w == speaker) {
                    failures.push(format!(
                        "{} did not show {} after its turn",
                        NAMES[i], NAMES[speaker]
                    ));
                }
            }
            t(&mut out, &line);
            speaker += 1;
            if speaker == calls.len() {
                break;
            }
            turn_start = Some(now);
            t(&mut out, &format!("speaker: {} talks", NAMES[speaker]));
        }
        if now >= next_tick {
            next_tick += Duration::from_millis(20);
            tick += 1;
            for (i, c) in calls.iter_mut().enumerate() {
                if c.established() {
                    let level = if turn_start.is_some() && i == speaker {
                        70
                    } else {
                        4
                    };
                    c.media_tick(level, tick.is_multiple_of(2), &mut idr).await;
                }
            }
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    for (i, c) in calls.iter_mut().enumerate() {
        if let Err(e) = c.hangup("4000").await {
            failures.push(format!("{} hang-up: {e}", NAMES[i]));
        }
    }
    t(&mut out, "everyone hung up (BYE, 200 OK)");
    if let Some(addr) = metrics {
        match scrape(addr).await {
            Ok(text) => {
                let _ = writeln!(
                    out,
                    "\nmetrics after the demo (GET http://{addr}/metrics, a few families, non-zero):"
                );
                for line in shown_metrics(&text) {
                    let _ = writeln!(out, "  {line}");
                }
            }
            Err(e) => failures.push(format!("the metrics scrape failed: {e}")),
        }
    }
    let received: usize = calls.iter().map(|c| c.endpoint.received.len()).sum();
    let (pin, pout, dropped) = stats.iter().fold((0, 0, 0), |(a, b, c), s| {
        (
            a + s.packets_in.load(Ordering::Relaxed),
            b + s.packets_out.load(Ordering::Relaxed),
            c + s.send_dropped.load(Ordering::Relaxed) + s.socket_errors.load(Ordering::Relaxed),
        )
    });
    let _ = writeln!(
        out,
        "\npackets: switch received {pin}, sent {pout}, dropped {dropped}; endpoints received and verified {received} (each decrypted with its sender's key, payload checked)"
    );
    if dropped > 0 {
        failures.push(format!(
            "the switch dropped {dropped} datagrams it should have sent"
        ));
    }
    if received == 0 {
        failures.push("no media arrived".into());
    }
    let _ = stop.send(());
    let _ = running.await;
    let _ = std::fs::remove_dir_all(&dir);
    if failures.is_empty() {
        let _ = writeln!(out, "all checks held");
        Ok(out)
    } else {
        let _ = writeln!(out, "FAILED:\n  {}", failures.join("\n  "));
        Err(out)
    }
}

/// The metric families the demo shows (the README's Operations section lists them all).
const SHOWN: [&str; 8] = [
    "mswitch_calls_started_total",
    "mswitch_calls_ended_total",
    "mswitch_sip_requests_total",
    "mswitch_dtls_handshakes_total",
    "mswitch_tip_negotiations_total",
    "mswitch_media_packets_total",
    "mswitch_join_latency_seconds_count",
    "mswitch_speaker_changes_total",
];

/// The samples of [`SHOWN`] whose value is not zero.
fn shown_metrics(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| SHOWN.iter().any(|f| l.starts_with(f)))
        .filter(|l| l.rsplit(' ').next().is_some_and(|v| v != "0"))
        .collect()
}

/// `GET /metrics` over plain HTTP on the switch's loopback metrics listener.
async fn scrape(addr: std::net::SocketAddr) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut answer))
        .await
        .map_err(|_| std::io::Error::other("no answer within 5 s"))??;
    match answer.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_owned()),
        _ => Err(std::io::Error::other(
            answer.lines().next().unwrap_or("no answer").to_owned(),
        )),
    }
}

/// Per screen (the TIP CSRC output position the switch wrote), the endpoint and camera
/// (its SSRC's position) whose video arrived last since `since`.
fn shown(ep: &Endpoint, since: Instant) -> HashMap<u8, (usize, u8)> {
    let mut m = HashMap::new();
    for r in ep
        .received
        .iter()
        .filter(|r| r.0 == Media::Video && r.4 >= since)
    {
        let screen = TipCsrc::from_u32(r.3).output;
        m.insert(screen, (endpoint_index(r.1), r.1 as u8));
    }
    m
}

/// The demo endpoint (0 = A) a simulated source SSRC belongs to (`id << 16 | ...`, ids
/// from 1); anything else maps past the names and shows as `?`.
fn endpoint_index(ssrc: u32) -> usize {
    ((ssrc >> 16) as usize).wrapping_sub(1).min(NAMES.len())
}

/// A name for the timeline.
fn name(i: usize) -> &'static str {
    NAMES.get(i).copied().unwrap_or("?")
}

/// TIP positions (WIRE.md section 5).
fn place(position: u8) -> &'static str {
    match position {
        switch::meeting::LEFT => "left",
        switch::meeting::RIGHT => "right",
        _ => "center",
    }
}

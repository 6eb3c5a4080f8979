//! The media worker over real loopback UDP sockets: three simulated TIP endpoints (one with
//! 3 screens, two with 1), one socket per media line on each side. TIP runs over per-hop
//! SRTCP, keys travel in EKT, audio and video flow through the worker's recvmmsg/sendmmsg
//! loop into the meeting and out again. Every packet an endpoint receives is decrypted
//! with its sender's key and its payload checked (the simulator asserts it); no one gets
//! their own media; a datagram from a foreign address is dropped. Once with per-hop keys
//! from SDES, once from DTLS-SRTP handshakes over the same sockets, and once without
//! rtcp-mux: a second socket per line for RTCP, with its own DTLS association.
// Test code: it plays the driver and reads the clock.
#![allow(clippy::disallowed_methods)]

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use ekt::Spi;
use switch::dtls::DtlsIdentity;
use switch::meeting::switching::SwitchingConfig;
use switch::meeting::{LegId, Meeting, MeetingEvent};
use switch::testing::{AUDIO_SPI, Endpoint, VIDEO_SPI, params};
use switch::tip::negotiation::Media;
use switch::udp::{Command, LeaseFence, MediaWorker};

#[test]
fn three_endpoints_over_real_udp_sockets_keyed_by_sdes() {
    run_over_udp(false, true);
}

#[test]
fn three_endpoints_over_real_udp_sockets_keyed_by_dtls_srtp() {
    run_over_udp(true, true);
}

#[test]
fn three_endpoints_without_rtcp_mux_over_a_second_socket_per_line() {
    run_over_udp(true, false);
}

fn run_over_udp(dtls: bool, rtcp_mux: bool) {
    let (events_tx, events) = channel();
    let worker = MediaWorker::spawn("media-test", events_tx).unwrap();

    let now = Instant::now();
    let mut meeting = Meeting::new(SwitchingConfig::default(), 64);
    meeting
        .forwarder_mut()
        .registry_mut()
        .insert(Spi(AUDIO_SPI), params(AUDIO_SPI))
        .unwrap();
    meeting
        .forwarder_mut()
        .registry_mut()
        .insert(Spi(VIDEO_SPI), params(VIDEO_SPI))
        .unwrap();
    let mut endpoints: Vec<Endpoint> = [(1, 3), (2, 1), (3, 1)]
        .into_iter()
        .map(|(id, screens)| {
            let ep = Endpoint::new(id, screens);
            if rtcp_mux { ep } else { ep.without_rtcp_mux() }
        })
        .collect();
    let identities = dtls.then(|| {
        let id = || Arc::new(DtlsIdentity::generate().unwrap());
        (id(), id())
    });
    // Per leg: the endpoint's socket and the switch's address.
    let mut sockets: HashMap<LegId, (UdpSocket, SocketAddr)> = HashMap::new();
    let mut legs = Vec::new();
    for ep in &endpoints {
        let setup = ep.setup_with("4000", identities.as_ref().map(|(s, e)| (s, e)), now);
        meeting.add_participant(now, ep.id, ep.lines[0].sources.len() as u8, setup);
        for leg in ep
            .lines
            .iter()
            .flat_map(|l| [Some(l.leg), l.rtcp_leg])
            .flatten()
        {
            let switch_side = UdpSocket::bind("127.0.0.1:0").unwrap();
            let endpoint_side = UdpSocket::bind("127.0.0.1:0").unwrap();
            endpoint_side.set_nonblocking(true).unwrap();
            let switch_addr = switch_side.local_addr().unwrap();
            legs.push((leg, switch_side, endpoint_side.local_addr().unwrap()));
            sockets.insert(leg, (endpoint_side, switch_addr));
        }
    }
    worker.send(Command::AddMeeting(1, Box::new(meeting)));
    // Claimed under a cluster lease that holds for now (the end of the test lets it lapse).
    let fence = Arc::new(LeaseFence::new(now, now + Duration::from_secs(3600)));
    worker.send(Command::Fence(1, fence.clone()));
    for (leg, socket, remote) in legs {
        worker.send(Command::AddLeg {
            meeting: 1,
            leg,
            socket,
            remote,
        });
    }

    let send = |sockets: &HashMap<LegId, (UdpSocket, SocketAddr)>,
                datagrams: Vec<(LegId, Vec<u8>)>| {
        for (leg, d) in datagrams {
            let (s, to) = &sockets[&leg];
            s.send_to(&d, to).unwrap();
        }
    };
    let mut muxctrl_sent = false;
    if let Some((switch_id, endpoint_id)) = &identities {
        for ep in &mut endpoints {
            ep.start_dtls(now, switch_id, endpoint_id);
        }
    }
    let mut idr = HashSet::new();
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    let mut next_tick = start;
    let mut tick = 0u32;
    while start.elapsed() < Duration::from_millis(2500) {
        let now = Instant::now();
        for ep in &mut endpoints {
            let d = ep.dtls_pump();
            send(&sockets, d);
        }
        // TIP starts once the per-hop keys exist (at once with SDES).
        let keyed = endpoints.iter().all(|e| {
            e.lines.iter().all(|l| {
                [&l.dtls, &l.rtcp_dtls]
                    .iter()
                    .all(|d| d.as_ref().is_none_or(|d| d.is_connected()))
            })
        });
        if keyed && !muxctrl_sent {
            muxctrl_sent = true;
            for ep in &mut endpoints {
                let m = ep.muxctrls();
                send(&sockets, m);
            }
        }
        for ep in &mut endpoints {
            let legs: Vec<LegId> = ep
                .lines
                .iter()
                .flat_map(|l| [Some(l.leg), l.rtcp_leg])
                .flatten()
                .collect();
            for leg in legs {
                while let Ok((n, _)) = sockets[&leg].0.recv_from(&mut buf) {
                    let replies = ep.handle_datagram(now, leg, &buf[..n]);
                    send(&sockets, replies);
                }
            }
        }
        if now >= next_tick {
            next_tick += Duration::from_millis(20);
            tick += 1;
            // B (2) talks; video every other tick.
            for (i, ep) in endpoints.iter_mut().enumerate() {
                let level = if i == 1 { 60 } else { 5 };
                let packets = ep.media_tick(level, tick.is_multiple_of(2), &mut idr);
                send(&sockets, packets);
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }

    assert!(
        endpoints
            .iter()
            .all(|e| e.lines.iter().all(|l| l.established)),
        "TIP and SPIMAP on every line"
    );
    let established = events
        .try_iter()
        .filter(|(_, e)| matches!(e, MeetingEvent::LineEstablished { .. }))
        .count();
    assert_eq!(established, 6);
    // A and C see and hear B; B hears... nobody loud, and sees the previous speaker (none).
    for i in [0, 2] {
        let from_b = |m| {
            endpoints[i]
                .received
                .iter()
                .filter(|r| r.0 == m && r.1 >> 16 == 2)
                .count()
        };
        assert!(
            from_b(Media::Video) > 20,
            "endpoint {i}: {} video packets from B",
            from_b(Media::Video)
        );
        assert!(
            from_b(Media::Audio) > 20,
            "endpoint {i}: {} audio packets from B",
            from_b(Media::Audio)
        );
    }
    // A stranger's datagram to a media port never reaches the worker: the leg's socket is
    // connected to its peer, so the kernel drops it.
    let stats = worker.stats();
    std::thread::sleep(Duration::from_millis(100));
    let before = stats.packets_in.load(Ordering::Relaxed);
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (_, switch_addr) = &sockets[&10];
    stranger
        .send_to(&[0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2], switch_addr)
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(stats.packets_in.load(Ordering::Relaxed), before);
    assert_eq!(stats.foreign_source.load(Ordering::Relaxed), 0);
    assert_eq!(stats.send_dropped.load(Ordering::Relaxed), 0);
    assert_eq!(stats.socket_errors.load(Ordering::Relaxed), 0);
    let (pin, pout) = (
        stats.packets_in.load(Ordering::Relaxed),
        stats.packets_out.load(Ordering::Relaxed),
    );
    assert!(pin > 300 && pout > 300, "in {pin}, out {pout}");
    // Without rtcp-mux the simulator asserted that every RTCP datagram came on an RTCP
    // leg and every RTP one on an RTP leg; TIP ran over the RTCP legs' own DTLS keys.

    // The cluster lease the meeting was claimed under lapses (a node paused past its
    // TTL): the worker drops the meeting before it reads another datagram, and forwards
    // nothing more, though the endpoints go on sending.
    assert_eq!(stats.fenced_meetings.load(Ordering::Relaxed), 0);
    fence.hold_until(Instant::now());
    let out_before = stats.packets_out.load(Ordering::Relaxed);
    for _ in 0..10 {
        for ep in &mut endpoints {
            let packets = ep.media_tick(60, true, &mut idr);
            send(&sockets, packets);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(stats.fenced_meetings.load(Ordering::Relaxed), 1);
    assert_eq!(
        stats.packets_out.load(Ordering::Relaxed),
        out_before,
        "nothing forwarded past the lease's deadline"
    );
}

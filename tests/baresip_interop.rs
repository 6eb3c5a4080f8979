//! Interop with a real SIP user agent: baresip (Debian baresip-core, recipes in
//! shared/reference/peers-baresip.md) calls the switch's trunk over mutually
//! authenticated TLS, once keyed by DTLS-SRTP and once by SDES, and gets a valid 200 OK.
//! A test answerer stands in for the media plane (issue 5 joins them):
//! - DTLS-SRTP: the answer carries our real certificate fingerprint and `setup:passive`;
//!   baresip must then open DTLS (a ClientHello) toward the port we answered with;
//! - SDES: the answer carries our key; baresip's first SRTP packet to our port must
//!   decrypt with the key baresip offered (our `switch::srtp`, an independent SRTP).
//!
//! Then real standard endpoints in a meeting of the switch (issue 19): baresip processes
//! playing tones hear each other through the switch's transcrypt legs and mix.
//!
//! baresip presents its certificate as a TLS client (CN baresip-client), which the trunk
//! checks like any trunk peer's. Without baresip installed the test says so and passes,
//! unless `MSWITCH_REQUIRE_BARESIP=1` (CI sets it after installing it).

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SanType,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use sip::driver::{Trunk, TrunkConfig};
use sip::sdp::{self, LocalMedia, MediaKind};
use sip::security::{DeviceSecurity, Keying};
use sip::ua::{AgentConfig, AgentEvent, Transport, TrunkPeer};
use switch::dtls::DtlsIdentity;
use switch::srtp::{MasterKey, SrtpContext, Suite};
use switch::testing::goertzel;
use tokio::net::UdpSocket;
use tokio::time::timeout;

fn baresip_available() -> bool {
    common::tool_available(
        "baresip",
        "-h",
        "MSWITCH_REQUIRE_BARESIP",
        "interop test not run (apt-get install baresip-core)",
    )
}

struct Pki {
    ca_pem: String,
    client_pem: String,
    switch_policy: sip::tls::TlsPolicy,
}

fn pki() -> Pki {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "interop CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
    let leaf = |cn: &str| {
        let mut p = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        p.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &ca).unwrap();
        (cert, key)
    };
    let (client, client_key) = leaf("baresip-client");
    let (switch_cert, switch_key) = leaf("mswitch");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.as_ref().der().clone()).unwrap();
    let identity = sip::tls::identity(
        vec![switch_cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(switch_key.serialize_der())),
    )
    .unwrap();
    Pki {
        ca_pem: ca.as_ref().pem(),
        client_pem: format!("{}{}", client.pem(), client_key.serialize_pem()),
        switch_policy: sip::tls::TlsPolicy::new(identity, roots),
    }
}

/// A port for baresip's `sip_listen`: baresip binds UDP and TCP on it and TLS on the next
/// one, so both must be free.
fn free_sip_port() -> u16 {
    common::ports::free_ports(2)
}

fn write_config(dir: &Path, ca_pem: &str, client_pem: &str, sip_port: u16, rtp: u16, menc: &str) {
    write_config_with(dir, ca_pem, client_pem, sip_port, rtp, menc, 1000.0);
}

/// baresip's configuration: plays a `tone_hz` sine and records what it hears
/// (`dump-*-dec.wav` in `dir`, the sndfile module).
fn write_config_with(
    dir: &Path,
    ca_pem: &str,
    client_pem: &str,
    sip_port: u16,
    rtp: u16,
    menc: &str,
    tone_hz: f64,
) {
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    std::fs::write(dir.join("certs/ca.pem"), ca_pem).unwrap();
    std::fs::write(dir.join("certs/client.pem"), client_pem).unwrap();
    let config = format!(
        "poll_method epoll\n\
         sip_listen 127.0.0.1:{sip_port}\n\
         sip_certificate {certs}/client.pem\n\
         sip_cafile {certs}/ca.pem\n\
         audio_source aufile,{tone}\n\
         audio_player alsa,null\n\
         audio_alert alsa,null\n\
         rtp_ports {rtp}-{}\n\
         rtcp_mux no\n\
         rtp_timeout 0\n\
         net_interface 127.0.0.1\n\
         snd_path {dir}\n\
         module_path /usr/lib/baresip/modules\n\
         module g711.so\nmodule alsa.so\nmodule aufile.so\nmodule sndfile.so\nmodule srtp.so\n\
         module dtls_srtp.so\nmodule_tmp uuid.so\nmodule_tmp account.so\nmodule_app menu.so\n",
        rtp + 49,
        certs = dir.join("certs").display(),
        tone = dir.join("tone.wav").display(),
        dir = dir.display(),
    );
    std::fs::write(dir.join("tone.wav"), tone_wav(tone_hz, 30)).unwrap();
    std::fs::write(dir.join("config"), config).unwrap();
    std::fs::write(
        dir.join("accounts"),
        format!(
            "<sip:caller@127.0.0.1;transport=tls>;regint=0;answermode=manual;mediaenc={menc};audio_codecs=PCMU\n"
        ),
    )
    .unwrap();
}

/// A WAV file: `secs` of a sine at `hz`, 8 kHz mono S16LE (what PCMU encodes from).
fn tone_wav(hz: f64, secs: u32) -> Vec<u8> {
    let samples = 8000 * secs;
    let data_len = samples * 2;
    let mut w = Vec::with_capacity(44 + data_len as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&16000u32.to_le_bytes()); // byte rate
    w.extend_from_slice(&2u16.to_le_bytes()); // block align
    w.extend_from_slice(&16u16.to_le_bytes()); // bits
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let v = (f64::from(i) * hz * std::f64::consts::TAU / 8000.0).sin() * 12000.0;
        w.extend_from_slice(&(v as i16).to_le_bytes());
    }
    w
}

/// baresip with its configuration in `dir`, dialling `uri` at once and quitting (with a
/// BYE) after `secs` seconds; its output is kept for the test to read.
fn spawn_baresip(dir: &Path, secs: u32, uri: &str) -> tokio::process::Child {
    tokio::process::Command::new("baresip")
        .args(["-4", "-s", "-v", "-f"])
        .arg(dir)
        .args(["-t", &secs.to_string(), "-e"])
        .arg(format!("/dial {uri}"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("baresip starts")
}

async fn next(trunk: &mut Trunk) -> AgentEvent {
    timeout(Duration::from_secs(15), trunk.next_event())
        .await
        .expect("an event from the trunk")
        .expect("the driver runs")
}

/// One call from baresip with `menc`; returns baresip's log.
async fn call_from_baresip(menc: &str, mode: DeviceSecurity) -> String {
    let pki = pki();
    let sip_port = free_sip_port();
    let rtp =
        41000 + (std::process::id() % 50) as u16 * 100 + if menc == "dtls_srtp" { 0 } else { 50 };
    let dir = std::env::temp_dir().join(format!("mswitch-baresip-{}-{menc}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    write_config(&dir, &pki.ca_pem, &pki.client_pem, sip_port, rtp, menc);

    let mut trunk = Trunk::start(TrunkConfig {
        udp: None,
        tcp: None,
        tls_listen: Some("127.0.0.1:0".parse().unwrap()),
        tls: Some(pki.switch_policy),
        agent: AgentConfig {
            peers: vec![TrunkPeer {
                addr: format!("127.0.0.1:{}", sip_port + 1).parse().unwrap(),
                transport: Transport::Tls,
                subject: Some("baresip-client".into()),
                also: Vec::new(),
            }],
            options_interval: None,
            ..AgentConfig::default()
        },
    })
    .await
    .unwrap();
    let tls_port = trunk.local_addr(Transport::Tls).unwrap().port();
    let child = spawn_baresip(&dir, 6, &format!("sip:4000@127.0.0.1:{tls_port}"));

    let incoming = timeout(Duration::from_secs(15), trunk.next_event()).await;
    let Ok(Some(AgentEvent::Incoming {
        call,
        user,
        offer,
        over_tls,
        ..
    })) = incoming
    else {
        let mut child = child;
        let _ = child.start_kill();
        let out = child.wait_with_output().await.unwrap();
        panic!(
            "no INVITE from baresip ({incoming:?}); its log:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    assert_eq!(user, "4000");
    assert!(over_tls);
    let offer = offer.expect("baresip sends an early offer");
    let audio = &offer.media[0];
    assert_eq!(audio.kind, Some(MediaKind::Audio));
    let keying = mode
        .keying(audio, &Suite::ALL.map(Suite::sdes_name))
        .expect("the offer fits the mode");
    let media = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rtcp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = media.local_addr().unwrap().port();
    let identity = DtlsIdentity::generate().unwrap();
    let (dtls, crypto, offered_key) = match &keying {
        Keying::Dtls { setup, .. } => (Some((*setup, identity.sdp_fingerprint())), None, None),
        Keying::Sdes(c) => {
            let ours = sdp::CryptoLine {
                tag: c.tag,
                suite: c.suite.clone(),
                key_salt: vec![0x5a; c.key_salt.len()],
                ekt: None,
            };
            (None, Some(ours), Some(c.clone()))
        }
        Keying::Plain => panic!("a secure mode"),
    };
    let answer = sdp::answer(
        &offer,
        "127.0.0.1".parse().unwrap(),
        "1",
        1,
        &[Some(LocalMedia {
            kind: MediaKind::Audio,
            port,
            rtcp_port: Some(rtcp.local_addr().unwrap().port()),
            profile: audio.profile.unwrap(),
            formats: vec![("0".into(), Some("PCMU/8000".into()))],
            rtcp_mux: false,
            dtls,
            crypto,
            direction: sdp::Direction::SendRecv,
        })],
    );
    trunk.ring(call);
    trunk.accept(call, answer);
    assert_eq!(next(&mut trunk).await, AgentEvent::Established { call });

    // What baresip sends to the port we answered with.
    let mut buf = vec![0u8; 2048];
    let Ok(Ok((n, _))) = timeout(Duration::from_secs(5), media.recv_from(&mut buf)).await else {
        let out = child.wait_with_output().await.unwrap();
        panic!(
            "baresip sent nothing to our media port; its log:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    match offered_key {
        None => assert!(
            (20..=63).contains(&buf[0]) && buf[13] == 1,
            "a DTLS ClientHello (baresip is the DTLS client: we answered passive)"
        ),
        Some(c) => {
            let suite = Suite::from_sdes_name(&c.suite).expect("a suite we know");
            let (key, salt) = c.key_salt.split_at(suite.key_len());
            let mut rx = SrtpContext::new(suite, &MasterKey::new(suite, key, salt).unwrap());
            let mut pkt = buf[..n].to_vec();
            let len = rx
                .unprotect_rtp(&mut pkt)
                .expect("baresip's SRTP decrypts with the key it offered");
            assert_eq!(pkt[1] & 0x7f, 0, "PCMU");
            assert!(len > 12);
        }
    }
    // baresip quits after -t seconds and hangs up.
    let ended = next(&mut trunk).await;
    assert!(
        matches!(ended, AgentEvent::Ended { call: c, .. } if c == call),
        "{ended:?}"
    );
    let out = timeout(Duration::from_secs(15), child.wait_with_output())
        .await
        .expect("baresip exits")
        .unwrap();
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_calls_over_tls_with_dtls_srtp_and_gets_a_valid_answer() {
    if !baresip_available() {
        return;
    }
    let log = call_from_baresip("dtls_srtp", DeviceSecurity::EncryptedWithoutSdpKeys).await;
    assert!(log.contains("Call established"), "{log}");
    assert!(log.contains("SIP/2.0 200 OK"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_calls_over_tls_with_sdes_and_its_srtp_decrypts() {
    if !baresip_available() {
        return;
    }
    let log = call_from_baresip("srtp-mand", DeviceSecurity::EncryptedWithSdpKeys).await;
    assert!(log.contains("Call established"), "{log}");
    assert!(log.contains("SRTP is Enabled"), "{log}");
}

/// Real standard SIP endpoints in one meeting of `mswitch run` (issue 19): baresip
/// processes, audio only in PCMU, each playing a tone of its own from a file and
/// recording what it hears (the sndfile module's decoded dump), call a secure meeting over
/// mutually authenticated SIP/TLS, keyed by `menc` (DTLS-SRTP or SDES), without
/// rtcp-mux. Each recording holds the others' tones and not its own (Goertzel), and every
/// call ends cleanly with baresip's BYE.
async fn baresips_hear_each_other(
    name: &str,
    ports: &str,
    security: &str,
    menc: &str,
    tones: &[f64],
    rtp_base: u16,
) {
    let sw = common::switch_with(
        name,
        ports,
        &format!(
            "[sip]\nsecurity = \"{security}\"\n[[meeting]]\nnumber = \"4100\"\npolicy = \"secure\"\n"
        ),
        15.0,
    )
    .await;
    let (cert, key) = mswitch::certs::loopback_peer_identity(&sw.dir).unwrap();
    let ca_pem = std::fs::read_to_string(sw.dir.join("ca.pem")).unwrap();
    let mut children = Vec::new();
    let mut dirs = Vec::new();
    for (i, &hz) in tones.iter().enumerate() {
        let dir =
            std::env::temp_dir().join(format!("mswitch-baresip-{}-{name}-{i}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        write_config_with(
            &dir,
            &ca_pem,
            &format!("{cert}{key}"),
            free_sip_port(),
            rtp_base + 100 * i as u16,
            menc,
            hz,
        );
        let child = spawn_baresip(&dir, 12, &format!("sip:4100@127.0.0.1:{}", sw.sip.port()));
        children.push(child);
        dirs.push(dir);
    }
    let mut logs = Vec::new();
    for child in children {
        let out = timeout(Duration::from_secs(40), child.wait_with_output())
            .await
            .expect("baresip exits")
            .unwrap();
        let log = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        logs.push(log.replace('\r', "\n"));
    }
    assert!(
        common::logged_within("no TIP from the endpoint: a standard endpoint", 1).await,
        "the switch took them as standard endpoints"
    );
    for (i, (log, dir)) in logs.iter().zip(&dirs).enumerate() {
        assert!(log.contains("Call established"), "{log}");
        if menc == "dtls_srtp" {
            assert!(log.contains("DTLS-SRTP complete"), "{log}");
        }
        // baresip hung up (its -t timer) and the switch answered the BYE.
        assert!(log.contains("terminated (duration"), "{log}");
        let heard = recorded(dir).unwrap_or_else(|| panic!("a recording in {dir:?}: {log}"));
        let power: Vec<f64> = tones.iter().map(|&hz| goertzel(&heard, hz)).collect();
        let others = (0..tones.len()).filter(|&j| j != i).map(|j| power[j]);
        let weakest_other = others.fold(f64::MAX, f64::min);
        eprintln!(
            "baresip {i} ({} Hz) heard {} samples; power per tone {power:?}",
            tones[i],
            heard.len()
        );
        assert!(
            weakest_other > 100.0 * power[i] && weakest_other > 1e3,
            "baresip {i} ({} Hz) hears the others and not itself: {power:?} over {} samples",
            tones[i],
            heard.len()
        );
    }
    sw.stop().await;
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_baresips_with_dtls_srtp_hear_each_other_mixed() {
    if !baresip_available() {
        return;
    }
    baresips_hear_each_other(
        "baresip-dtls",
        "36000-36099",
        "encrypted-without-sdp-keys",
        "dtls_srtp",
        &[500.0, 1200.0, 2100.0],
        46000,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_baresips_with_sdes_hear_each_other() {
    if !baresip_available() {
        return;
    }
    baresips_hear_each_other(
        "baresip-sdes",
        "36100-36199",
        "encrypted-with-sdp-keys",
        "srtp-mand",
        &[700.0, 1600.0],
        46500,
    )
    .await;
}

/// The decoded audio baresip recorded (sndfile's `dump-*-dec.wav`), as mono samples.
fn recorded(dir: &Path) -> Option<Vec<i16>> {
    let file = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("dump-") && n.ends_with("-dec.wav"))
        })?;
    let wav = std::fs::read(file).ok()?;
    // RIFF chunks: find "fmt " (channels) and "data".
    let mut i = 12;
    let mut channels = 1usize;
    while i + 8 <= wav.len() {
        let id = &wav[i..i + 4];
        let len = u32::from_le_bytes(wav[i + 4..i + 8].try_into().ok()?) as usize;
        let body = &wav[i + 8..(i + 8 + len).min(wav.len())];
        if id == b"fmt " && body.len() >= 4 {
            channels = usize::from(u16::from_le_bytes([body[2], body[3]])).max(1);
        }
        if id == b"data" {
            return Some(
                body.chunks_exact(2 * channels)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            );
        }
        i += 8 + len + (len & 1);
    }
    None
}

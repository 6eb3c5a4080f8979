//! `mswitch load` end to end: the binary starts the switch as a process of its own (once
//! per switch kind), three simulated endpoints join over SIP/TLS with DTLS-SRTP and TIP,
//! send media for two seconds (the generator on two threads, verifying one packet in two),
//! and the reports come out with every check in them.

use std::process::Command;

#[test]
fn a_small_load_run_measures_every_switch_kind_and_writes_its_reports() {
    let out = std::env::temp_dir().join(format!("mswitch-load-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(env!("CARGO_BIN_EXE_mswitch"))
        .args([
            "load",
            "--meetings",
            "1",
            "--endpoints",
            "3",
            "--duration",
            "2",
        ])
        .args([
            "--batching-off",
            "--old-path",
            "--threads",
            "2",
            "--verify-every",
            "2",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .expect("mswitch runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("CPU per forwarded packet"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("load.json")).unwrap()).unwrap();
    let points = json.as_array().expect("a list of points");
    let kinds: Vec<&str> = points
        .iter()
        .map(|p| p["switch"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "fast",
            "sfu-baseline",
            "fast, batching off",
            "fast, old path"
        ]
    );
    for p in points {
        let n = |k: &str| p[k].as_f64().unwrap_or_else(|| panic!("{k} in {p}"));
        assert_eq!(n("segments"), 5.0, "3 + 1 + 1 screens");
        assert_eq!(n("joined"), 3.0, "{p}");
        assert_eq!(n("verify_failures"), 0.0, "{p}");
        // One in two verified (sampled), every one counted.
        let (verified, received) = (n("verified"), n("received_pps") * n("seconds"));
        assert!(
            verified > received * 0.4 && verified < received * 0.6,
            "{verified} of {received}: {p}"
        );
        assert_eq!(
            n("generator_unsent") + n("generator_socket_errors"),
            0.0,
            "{p}"
        );
        assert!(n("generator_cpu_ns_per_packet") > 0.0, "{p}");
        // Audio and video of 5 sources: about 5 * 50 + 5 * 450 packets/s.
        assert!(n("sent_pps") > 1500.0, "{p}");
        assert!(n("received_pps") > 500.0, "the switch forwarded: {p}");
        assert!(n("switch_cpu_ns_per_packet") > 0.0, "{p}");
        assert!(n("switch_peak_rss") > 1e6, "{p}");
        assert!(p["latency_us"][0].as_u64().unwrap() > 0, "{p}");
        assert!(p["join_ms"][0].as_f64().unwrap() > 0.0, "{p}");
        assert_eq!(p["switch_send_dropped"].as_u64(), Some(0), "{p}");
    }
    let svg = std::fs::read_to_string(out.join("load.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
    let _ = std::fs::remove_dir_all(&out);
}

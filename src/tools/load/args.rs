//! `mswitch load`'s command line.

use std::path::PathBuf;
use std::time::Duration;

use super::{LoadOptions, Target};

/// The usage text.
pub const USAGE: &str = "\
mswitch load [OPTIONS]   simulated TelePresence meetings against the switch, measured

OPTIONS:
    --meetings N        meetings (default 2)
    --endpoints M       endpoints per meeting, the first with 3 screens (default 4: 6 segments)
    --duration SECS     the measurement window (default 10)
    --speaker SECS      how long each speaker talks (default 3)
    --sweep S1,S2,...   segment counts to sweep (meetings follow), stopping at saturation
    --workers W         the switch's media workers (default 1; the generator needs a core)
    --standard          add one standard SIP endpoint per meeting (no TIP: a transcrypt leg)
    --no-baseline       skip the SFU baseline (decrypt + re-encrypt per receiver)
    --batching-off      also measure with recvmmsg/sendmmsg batching off
    --gso-off           also measure with UDP segmentation offload off
    --gro-off           also measure with UDP receive offload off
    --old-path          also measure the switch's path before issue 20 (no GSO, no GRO)
    --verify-every N    verify and decrypt one received packet in N (default 1: all; every
                        packet is still counted and followed for loss)
    --threads T         generator threads (default: the cores the switch's workers leave)
    --target ADDR --pid PID --data-dir DIR
                        a switch already running (SIP/TLS address, process id, data directory)
    --out DIR           report, load.json, load.svg and the switch's logs (default mswitch-load)";

impl LoadOptions {
    /// From the arguments after `load`.
    pub fn from_args(args: &[String]) -> Result<Self, String> {
        let mut o = Self::default();
        let (mut target, mut pid, mut data_dir) = (None, None, None);
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            let number = |v: String| {
                v.parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{flag}: `{v}` is not a positive number"))
            };
            let seconds = |v: String| {
                v.parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| format!("{flag}: `{v}` is not a positive number of seconds"))
            };
            match flag.as_str() {
                "--meetings" => o.meetings = number(value()?)?,
                "--endpoints" => o.endpoints = number(value()?)?,
                "--duration" => o.duration = seconds(value()?)?,
                "--speaker" => o.speaker_period = seconds(value()?)?,
                "--workers" => o.workers = number(value()?)?,
                "--sweep" => {
                    o.sweep = value()?
                        .split(',')
                        .map(|s| number(s.trim().to_owned()))
                        .collect::<Result<_, _>>()?;
                }
                "--no-baseline" => o.baseline = false,
                "--standard" => o.standard = true,
                "--batching-off" => o.batching_off = true,
                "--gso-off" => o.gso_off = true,
                "--gro-off" => o.gro_off = true,
                "--old-path" => o.old_path = true,
                "--verify-every" => o.verify_every = number(value()?)? as u64,
                "--threads" => o.generator_threads = number(value()?)?,
                "--target" => {
                    let v = value()?;
                    target = Some(
                        v.parse()
                            .map_err(|_| format!("--target: `{v}` is not an address"))?,
                    );
                }
                "--pid" => pid = Some(number(value()?)? as u32),
                "--data-dir" => data_dir = Some(PathBuf::from(value()?)),
                "--out" => o.out = PathBuf::from(value()?),
                other => return Err(format!("unknown option `{other}`")),
            }
        }
        o.target = match (target, pid, data_dir) {
            (None, None, None) => None,
            (Some(sip), Some(pid), Some(data_dir)) => Some(Target { sip, pid, data_dir }),
            _ => return Err("--target needs --pid and --data-dir too".into()),
        };
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn options_parse_and_bad_ones_say_which() {
        let o = LoadOptions::from_args(&args(
            "--meetings 3 --endpoints 2 --duration 1.5 --sweep 6,12 --no-baseline --out x \
             --verify-every 8 --threads 2 --old-path",
        ))
        .unwrap();
        assert_eq!((o.verify_every, o.generator_threads), (8, 2));
        assert!(o.old_path && !o.gro_off);
        assert_eq!((o.meetings, o.endpoints), (3, 2));
        assert_eq!(o.duration, Duration::from_millis(1500));
        assert_eq!(o.sweep, vec![6, 12]);
        assert!(!o.baseline && o.target.is_none());
        assert_eq!(o.out, PathBuf::from("x"));
        let t = LoadOptions::from_args(&args("--target 127.0.0.1:5061 --pid 42 --data-dir /tmp/d"))
            .unwrap()
            .target
            .unwrap();
        assert_eq!((t.sip.port(), t.pid), (5061, 42));
        for (bad, says) in [
            ("--meetings 0", "--meetings"),
            ("--verify-every 0", "--verify-every"),
            ("--duration -1", "--duration"),
            ("--sweep 6,x", "--sweep"),
            ("--target 127.0.0.1:5061", "--pid"),
            ("--frobnicate", "frobnicate"),
            ("--out", "needs a value"),
        ] {
            let e = LoadOptions::from_args(&args(bad)).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}

//! What the load generator reads from the system: a process's CPU time and peak memory
//! (/proc/PID), the kernel's UDP drop counters (/proc/net/snmp), and latency percentiles.

use std::time::Duration;

/// CPU time a process has used: the sum over its threads of the nanoseconds on a CPU
/// (`/proc/PID/task/*/schedstat`, first field), which is exact where `/proc/PID/stat` counts
/// in clock ticks. `None` when the process is gone.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut ns: u64 = 0;
    for t in tasks.flatten() {
        let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) else {
            // A thread that ended meanwhile.
            continue;
        };
        ns += s
            .split_ascii_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(Duration::from_nanos(ns))
}

/// A process's peak resident memory in bytes (`VmHWM` in `/proc/PID/status`).
pub fn peak_rss(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// The kernel's UDP counters that mean a datagram was lost: receive errors, full receive
/// buffers, full send buffers (`/proc/net/snmp`, the `Udp:` lines; system-wide).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpDrops {
    /// InErrors.
    pub in_errors: u64,
    /// RcvbufErrors.
    pub rcvbuf_errors: u64,
    /// SndbufErrors.
    pub sndbuf_errors: u64,
}

impl UdpDrops {
    /// Reads them now; zeros where the kernel does not say.
    pub fn read() -> Self {
        std::fs::read_to_string("/proc/net/snmp")
            .map(|s| Self::parse(&s))
            .unwrap_or_default()
    }

    /// From the text of `/proc/net/snmp`: the `Udp:` header line names the columns of the
    /// `Udp:` value line after it.
    pub fn parse(snmp: &str) -> Self {
        let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
        let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
            return Self::default();
        };
        let get = |name: &str| {
            names
                .split_ascii_whitespace()
                .zip(values.split_ascii_whitespace())
                .find(|(n, _)| *n == name)
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0)
        };
        Self {
            in_errors: get("InErrors"),
            rcvbuf_errors: get("RcvbufErrors"),
            sndbuf_errors: get("SndbufErrors"),
        }
    }

    /// The drops between `earlier` and now.
    pub fn since(self, earlier: Self) -> u64 {
        // RcvbufErrors are counted in InErrors as well.
        self.in_errors.saturating_sub(earlier.in_errors)
            + self.sndbuf_errors.saturating_sub(earlier.sndbuf_errors)
    }
}

/// Latency percentiles of `samples` (microseconds), sorted in place: p50, p99, p99.9 and
/// the maximum; zeros without samples.
pub fn percentiles(samples: &mut [u32]) -> [u32; 4] {
    if samples.is_empty() {
        return [0; 4];
    }
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i]
    };
    [at(0.50), at(0.99), at(0.999), samples[samples.len() - 1]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_drops_come_from_the_udp_lines() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors\n\
                    Udp: 100 2 7 90 5 3 0\n\
                    UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors\n\
                    UdpLite: 0 0 0 0 0 0 0\n";
        let d = UdpDrops::parse(snmp);
        assert_eq!(
            d,
            UdpDrops {
                in_errors: 7,
                rcvbuf_errors: 5,
                sndbuf_errors: 3
            }
        );
        assert_eq!(d.since(UdpDrops::default()), 10);
        assert_eq!(UdpDrops::parse("junk"), UdpDrops::default());
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let mut s: Vec<u32> = (1..=1000).rev().collect();
        assert_eq!(percentiles(&mut s), [500, 990, 999, 1000]);
        assert_eq!(percentiles(&mut []), [0; 4]);
        assert_eq!(percentiles(&mut [7]), [7; 4]);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let me = std::process::id();
        let spin: u64 = (0..2_000_000u64).fold(0, |a, b| a ^ b.wrapping_mul(31));
        assert!(spin != 1);
        assert!(cpu_time(me).is_some_and(|t| t > Duration::ZERO));
        assert!(peak_rss(me).is_some_and(|b| b > 1024 * 1024));
        assert_eq!(cpu_time(u32::MAX), None);
    }
}

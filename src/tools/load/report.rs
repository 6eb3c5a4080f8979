//! The load report: a table for people, and an SVG chart (the latency distribution, and
//! the switch's CPU per forwarded packet against the number of segments).

use std::fmt::Write as _;

use super::Point;

/// The human summary: one row per point, then the fast path against the SFU baseline.
pub fn text(points: &[Point]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<20} {:>4} {:>5} {:>9} {:>9} {:>9} {:>7} {:>6} {:>17} {:>9} {:>6} {:>6} {:>7} {:>7} {:>9}",
        "switch",
        "segs",
        "eps",
        "in pps",
        "out pps",
        "out Mb/s",
        "loss",
        "fails",
        "latency p50/99/99.9",
        "ns/pkt",
        "cores",
        "gen",
        "gen/sw",
        "RSS MB",
        "join ms"
    );
    for p in points {
        let _ = writeln!(
            s,
            "{:<20} {:>4} {:>5} {:>9.0} {:>9.0} {:>9.1} {:>6.3}% {:>6} {:>5}/{:>5}/{:>5} us {:>9.0} {:>6.2} {:>6.2} {:>7.2} {:>7.1} {:>4.0}/{:<4.0}",
            p.switch,
            p.segments,
            p.joined,
            p.sent_pps,
            p.received_pps,
            p.received_bps / 1e6,
            p.loss_ratio * 100.0,
            p.verify_failures,
            p.latency_us[0],
            p.latency_us[1],
            p.latency_us[2],
            p.switch_cpu_ns_per_packet,
            p.switch_cores,
            p.generator_cores,
            p.generator_cpu_ns_per_packet / p.switch_cpu_ns_per_packet.max(1.0),
            p.switch_peak_rss as f64 / 1e6,
            p.join_ms[0],
            p.join_ms[1],
        );
        if p.standard_joined > 0 {
            let _ = writeln!(
                s,
                "{:<20} of which {} standard endpoints (transcrypt legs): in {:.0} pps, out {:.0} pps",
                "", p.standard_joined, p.standard_sent_pps, p.standard_received_pps
            );
        }
        if let (Some(w), Some(r), Some(o)) = (
            p.switch_in_per_wakeup,
            p.switch_in_per_recv_call,
            p.switch_out_per_send_call,
        ) {
            let _ = writeln!(
                s,
                "{:<20} kernel trips: {w:.1} datagrams in per wake-up, {r:.1} per recvmmsg, {o:.1} out per sendmmsg",
                ""
            );
        }
        if let Some(why) = &p.saturated {
            let _ = writeln!(s, "{:<20} saturated: {why}", "");
        }
    }
    // Every other kind against the fast path at the same load.
    let pairs: Vec<(&Point, &Point)> = points
        .iter()
        .filter(|p| p.switch != "fast")
        .filter_map(|o| {
            points
                .iter()
                .find(|f| f.switch == "fast" && f.segments == o.segments)
                .map(|f| (f, o))
        })
        .collect();
    if !pairs.is_empty() {
        let _ = writeln!(
            s,
            "\nCPU per forwarded packet against the fast path (same load):"
        );
        for (f, o) in pairs {
            let _ = writeln!(
                s,
                "  {:>3} segments: {}: {:.0} ns, fast: {:.0} ns: {}/fast {:.2}x",
                f.segments,
                o.switch,
                o.switch_cpu_ns_per_packet,
                f.switch_cpu_ns_per_packet,
                o.switch,
                o.switch_cpu_ns_per_packet / f.switch_cpu_ns_per_packet.max(1.0)
            );
        }
    }
    s
}

const W: f64 = 900.0;
const H: f64 = 360.0;
const PANEL_W: f64 = 400.0;
const PANEL_H: f64 = 260.0;
const COLORS: [&str; 3] = ["#1f77b4", "#d62728", "#2ca02c"];

/// Two panels: the switch's added latency at each percentile (the largest unsaturated
/// point of each switch kind), and CPU per forwarded packet against segments.
pub fn svg(points: &[Point]) -> String {
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let kinds = kinds(points);
    // Panel 1: latency quantiles.
    let series: Vec<(&str, &Point)> = kinds
        .iter()
        .filter_map(|k| {
            let of_kind = points.iter().filter(|p| p.switch == *k);
            of_kind
                .clone()
                .filter(|p| p.saturated.is_none())
                .max_by_key(|p| p.segments)
                .or_else(|| of_kind.min_by_key(|p| p.segments))
                .map(|p| (*k, p))
        })
        .collect();
    let y_max = series
        .iter()
        .flat_map(|(_, p)| p.latency_cdf.iter().take(100))
        .copied()
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let (x0, y0) = (60.0, 40.0);
    axes(
        &mut s,
        x0,
        y0,
        "latency added by the switch (us) by percentile",
        "percentile",
        (0.0, 99.0),
        (0.0, y_max),
    );
    for (i, (k, p)) in series.iter().enumerate() {
        let pts: Vec<(f64, f64)> = p
            .latency_cdf
            .iter()
            .take(100)
            .enumerate()
            .map(|(q, v)| (q as f64, f64::from(*v)))
            .collect();
        polyline(
            &mut s,
            x0,
            y0,
            &pts,
            (0.0, 99.0),
            (0.0, y_max),
            COLORS[i % 3],
        );
        legend(
            &mut s,
            x0 + 10.0,
            y0 + 15.0 + 15.0 * i as f64,
            COLORS[i % 3],
            &format!("{k}, {} segments", p.segments),
        );
    }
    // Panel 2: CPU per forwarded packet against segments.
    let (x0, y0) = (x0 + PANEL_W + 60.0, y0);
    let seg_max = points.iter().map(|p| p.segments).max().unwrap_or(1).max(1) as f64;
    let ns_max = points
        .iter()
        .map(|p| p.switch_cpu_ns_per_packet)
        .fold(1.0, f64::max);
    axes(
        &mut s,
        x0,
        y0,
        "switch CPU per forwarded packet (ns)",
        "segments",
        (0.0, seg_max),
        (0.0, ns_max),
    );
    for (i, k) in kinds.iter().enumerate() {
        let mut pts: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p.switch == *k)
            .map(|p| (p.segments as f64, p.switch_cpu_ns_per_packet))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        polyline(
            &mut s,
            x0,
            y0,
            &pts,
            (0.0, seg_max),
            (0.0, ns_max),
            COLORS[i % 3],
        );
        for (x, y) in &pts {
            let (px, py) = place(x0, y0, *x, *y, (0.0, seg_max), (0.0, ns_max));
            let _ = writeln!(
                s,
                "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"3\" fill=\"{}\"/>",
                COLORS[i % 3]
            );
        }
        legend(
            &mut s,
            x0 + 10.0,
            y0 + 15.0 + 15.0 * i as f64,
            COLORS[i % 3],
            k,
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The switch kinds in the order they first appear.
fn kinds(points: &[Point]) -> Vec<&str> {
    let mut k: Vec<&str> = Vec::new();
    for p in points {
        if !k.contains(&p.switch.as_str()) {
            k.push(&p.switch);
        }
    }
    k
}

fn place(x0: f64, y0: f64, x: f64, y: f64, xr: (f64, f64), yr: (f64, f64)) -> (f64, f64) {
    let px = x0 + (x - xr.0) / (xr.1 - xr.0).max(1e-9) * PANEL_W;
    let py = y0 + PANEL_H - (y - yr.0) / (yr.1 - yr.0).max(1e-9) * PANEL_H;
    (px, py)
}

fn axes(
    s: &mut String,
    x0: f64,
    y0: f64,
    title: &str,
    x_label: &str,
    xr: (f64, f64),
    yr: (f64, f64),
) {
    let (x1, y1) = (x0 + PANEL_W, y0 + PANEL_H);
    let _ = writeln!(
        s,
        "<text x=\"{x0}\" y=\"{}\" font-weight=\"bold\">{title}</text>\n\
         <line x1=\"{x0}\" y1=\"{y1}\" x2=\"{x1}\" y2=\"{y1}\" stroke=\"black\"/>\n\
         <line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{y1}\" stroke=\"black\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{x_label}</text>",
        y0 - 12.0,
        x0 + PANEL_W / 2.0,
        y1 + 32.0
    );
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let (xv, yv) = (xr.0 + f * (xr.1 - xr.0), yr.0 + f * (yr.1 - yr.0));
        let (px, _) = place(x0, y0, xv, yr.0, xr, yr);
        let (_, py) = place(x0, y0, xr.0, yv, xr, yr);
        let _ = writeln!(
            s,
            "<text x=\"{px:.1}\" y=\"{}\" text-anchor=\"middle\">{xv:.0}</text>\n\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{yv:.0}</text>\n\
             <line x1=\"{x0}\" y1=\"{py:.1}\" x2=\"{x1}\" y2=\"{py:.1}\" stroke=\"#ddd\"/>",
            y1 + 15.0,
            x0 - 5.0,
            py + 4.0
        );
    }
}

fn polyline(
    s: &mut String,
    x0: f64,
    y0: f64,
    pts: &[(f64, f64)],
    xr: (f64, f64),
    yr: (f64, f64),
    color: &str,
) {
    let coords: Vec<String> = pts
        .iter()
        .map(|(x, y)| {
            let (px, py) = place(x0, y0, *x, *y, xr, yr);
            format!("{px:.1},{py:.1}")
        })
        .collect();
    let _ = writeln!(
        s,
        "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
        coords.join(" ")
    );
}

fn legend(s: &mut String, x: f64, y: f64, color: &str, label: &str) {
    let _ = writeln!(
        s,
        "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"4\" fill=\"{color}\"/>\
         <text x=\"{}\" y=\"{y}\">{label}</text>",
        y - 4.0,
        x + 16.0
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(switch: &str, segments: usize, ns: f64) -> Point {
        Point {
            switch: switch.into(),
            segments,
            switch_cpu_ns_per_packet: ns,
            latency_cdf: (0..=100).collect(),
            ..Point::default()
        }
    }

    #[test]
    fn the_report_pairs_every_other_kind_with_the_fast_path() {
        let points = [
            point("fast", 12, 2000.0),
            point("sfu-baseline", 12, 5000.0),
            point("fast", 24, 2100.0),
            point("fast, old path", 24, 3150.0),
        ];
        let t = text(&points);
        assert!(
            t.contains(
                " 12 segments: sfu-baseline: 5000 ns, fast: 2000 ns: sfu-baseline/fast 2.50x"
            ),
            "{t}"
        );
        assert!(
            t.contains(
                " 24 segments: fast, old path: 3150 ns, fast: 2100 ns: fast, old path/fast 1.50x"
            ),
            "{t}"
        );
        assert!(!t.contains(" 24 segments: sfu"), "no baseline at 24: {t}");
        let svg = svg(&points);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(
            svg.matches("<polyline").count(),
            6,
            "3 latency + 3 CPU series"
        );
        assert!(svg.contains("fast, 24 segments"));
    }
}

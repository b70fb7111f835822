//! Where a report goes: the table on stdout, JSON to a file (or stdout), the SVG chart.

use std::io::Write;
use std::path::Path;

use crate::report::Report;
use crate::svg::{self, Charts, Series};

/// Writes `value` as one JSON object (and a newline) to `path`, `-` meaning stdout.
///
/// # Errors
///
/// The file cannot be written.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    if path == Path::new("-") {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{text}")
    } else {
        std::fs::write(path, format!("{text}\n"))
    }
}

/// The chart of one report: p50/p90/p99/max per second, the percentile curve, msgs/s.
pub fn charts_of(report: &Report) -> (String, Vec<Series>, Vec<Series>, Vec<Series>) {
    let title = format!(
        "{} {} c={} {}",
        report.mode,
        report.url,
        report.connect.connections,
        report.label.as_deref().unwrap_or("")
    );
    let pick = |name: &str, f: fn(&crate::report::Second) -> f64| Series {
        name: name.to_owned(),
        points: report.series.iter().map(|s| (s.t, f(s))).collect(),
    };
    let over_time = vec![
        pick("p50", |s| s.p50),
        pick("p90", |s| s.p90),
        pick("p99", |s| s.p99),
        pick("max", |s| s.max),
    ];
    let percentiles = vec![Series {
        name: report
            .label
            .clone()
            .unwrap_or_else(|| report.mode.to_owned()),
        points: report
            .percentiles
            .iter()
            .map(|p| (p.percentile, p.us))
            .collect(),
    }];
    let throughput = vec![pick("msgs/s", |s| s.count as f64)];
    (title, over_time, percentiles, throughput)
}

/// Writes the SVG chart of one report to `path`.
///
/// # Errors
///
/// The file cannot be written.
pub fn write_svg(path: &Path, report: &Report) -> std::io::Result<()> {
    let (title, over_time, percentiles, throughput) = charts_of(report);
    let doc = svg::render(&Charts {
        title: &title,
        over_time: &over_time,
        percentiles: &percentiles,
        throughput: &throughput,
    });
    std::fs::write(path, doc)
}

/// Writes one SVG chart of a comparison: every target's percentile curve and its p99 per
/// second, from its median round by p99 (named in the legend).
///
/// # Errors
///
/// The file cannot be written.
pub fn write_compare_svg(path: &Path, c: &crate::compare::Comparison) -> std::io::Result<()> {
    let mut percentiles = Vec::new();
    let mut over_time = Vec::new();
    for (i, t) in c.targets.iter().enumerate() {
        // The target's median round by p99 (msgs/s is often the same for all at a fixed rate).
        let mut runs: Vec<(usize, &Report)> = c
            .runs
            .iter()
            .enumerate()
            .filter_map(|(round, r)| r.get(i).map(|r| (round, r)))
            .collect();
        let p99 = |r: &Report| r.latency_us.as_ref().map_or(f64::INFINITY, |l| l.p99);
        runs.sort_by(|a, b| p99(a.1).total_cmp(&p99(b.1)));
        let Some(&(round, r)) = runs.get(runs.len() / 2) else {
            continue;
        };
        percentiles.push(Series {
            name: format!("{} (round {})", t.name, round + 1),
            points: r.percentiles.iter().map(|p| (p.percentile, p.us)).collect(),
        });
        over_time.push(Series {
            name: format!("{} p99", t.name),
            points: r.series.iter().map(|s| (s.t, s.p99)).collect(),
        });
    }
    let title = format!("compare: {}", c.scenario.join(" "));
    let doc = svg::render(&Charts {
        title: &title,
        over_time: &over_time,
        percentiles: &percentiles,
        throughput: &[],
    });
    std::fs::write(path, doc)
}

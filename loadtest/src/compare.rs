//! `compare`: one scenario against several servers, in rounds whose order rotates (round r
//! starts with target r mod n), so that a machine's drift and noise fall on every target
//! alike; then each target's median over the rounds and its ratio to the first target, with
//! the min–max of the per-round ratios. Memory per connection is left out: the servers are
//! reused across rounds, so their RSS does not grow again (use `idle` on a fresh server).

use clap::Parser;
use serde::Serialize;

use crate::cli::{Cli, Command, CompareArgs};
use crate::driver::RunError;
use crate::report::Report;

/// One target: a name, its URL, optionally its pid.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// Its name in the tables.
    pub name: String,
    /// ws://…
    pub url: String,
    /// The server's pid, for its CPU per message.
    pub pid: Option<u32>,
}

/// Parses `NAME=URL` or `NAME=URL,pid=PID`.
///
/// # Errors
///
/// Another shape.
pub fn parse_target(s: &str) -> Result<Target, String> {
    let (name, rest) = s
        .split_once('=')
        .ok_or_else(|| format!("target `{s}`: expected NAME=URL[,pid=PID]"))?;
    let mut parts = rest.split(',');
    let url = parts.next().unwrap_or("").to_owned();
    if name.is_empty() || url.is_empty() {
        return Err(format!("target `{s}`: expected NAME=URL[,pid=PID]"));
    }
    let mut pid = None;
    for p in parts {
        match p.split_once('=') {
            Some(("pid", v)) => {
                pid = Some(
                    v.parse()
                        .map_err(|_| format!("target `{s}`: bad pid `{v}`"))?,
                )
            }
            _ => return Err(format!("target `{s}`: unknown part `{p}`")),
        }
    }
    Ok(Target {
        name: name.to_owned(),
        url,
        pid,
    })
}

/// One figure compared across targets.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What it is.
    pub metric: String,
    /// Whether smaller is better.
    pub lower_is_better: bool,
    /// Per target: (name, median over rounds, ratio of medians to the first target,
    /// min and max of the per-round ratios).
    pub targets: Vec<(String, f64, f64, f64, f64)>,
}

/// The result of a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The targets, in the order given.
    pub targets: Vec<Target>,
    /// The scenario's arguments.
    pub scenario: Vec<String>,
    /// Rounds run.
    pub rounds: usize,
    /// Every run: `runs[round][target]`.
    pub runs: Vec<Vec<Report>>,
    /// The figures compared.
    pub rows: Vec<Row>,
}

/// Runs the comparison.
///
/// # Errors
///
/// A target or the scenario cannot be parsed, or a run cannot start.
pub fn run(args: &CompareArgs) -> Result<Comparison, RunError> {
    let targets = args
        .targets
        .iter()
        .map(|t| parse_target(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(RunError::Usage)?;
    if targets.len() < 2 {
        return Err(RunError::Usage(
            "compare needs at least two --target".into(),
        ));
    }
    let mut argv = vec!["wsx-loadtest".to_owned()];
    argv.extend(args.scenario.iter().cloned());
    let scenario = Cli::try_parse_from(&argv)
        .map_err(|e| RunError::Usage(format!("the scenario: {e}")))?
        .command;
    if matches!(scenario, Command::Compare(_)) || scenario.common().is_some_and(|c| c.url.is_some())
    {
        return Err(RunError::Usage(
            "the scenario is a mode and its flags, without --url (the targets give it)".into(),
        ));
    }
    let n = targets.len();
    let mut runs: Vec<Vec<Option<Report>>> = vec![vec![None; n]; args.rounds.max(1)];
    for (round, row) in runs.iter_mut().enumerate() {
        for k in 0..n {
            let i = (round + k) % n;
            let t = &targets[i];
            let mut cmd = scenario.clone();
            if let Some(c) = cmd.common_mut() {
                c.url = Some(t.url.clone());
                c.server_pid = t.pid;
                c.label = Some(t.name.clone());
                c.json = None;
                c.svg = None;
                c.quiet = true;
            }
            eprintln!(
                "compare: round {} of {}: {}",
                round + 1,
                args.rounds.max(1),
                t.name
            );
            let report = crate::run(&cmd)?;
            row[i] = Some(report);
        }
    }
    let runs: Vec<Vec<Report>> = runs
        .into_iter()
        .map(|r| r.into_iter().flatten().collect())
        .collect();
    let rows = rows(&targets, &runs);
    Ok(Comparison {
        targets,
        scenario: args.scenario.clone(),
        rounds: runs.len(),
        runs,
        rows,
    })
}

type Metric = (&'static str, bool, fn(&Report) -> Option<f64>);

const METRICS: &[Metric] = &[
    ("msgs/s", false, |r| Some(r.msgs_per_s)),
    ("p50 µs", true, |r| r.latency_us.as_ref().map(|l| l.p50)),
    ("p99 µs", true, |r| r.latency_us.as_ref().map(|l| l.p99)),
    ("p99.9 µs", true, |r| r.latency_us.as_ref().map(|l| l.p999)),
    ("reach p99 µs", true, |r| {
        r.broadcast
            .as_ref()
            .and_then(|b| b.reach_us.as_ref())
            .map(|l| l.p99)
    }),
    ("server µs/msg", true, |r| {
        r.server.as_ref().and_then(|s| s.cpu_per_msg_us)
    }),
    ("errors", true, |r| Some(r.errors.total as f64)),
];

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn rows(targets: &[Target], runs: &[Vec<Report>]) -> Vec<Row> {
    let mut out = Vec::new();
    for &(metric, lower, f) in METRICS {
        let per_target: Vec<Vec<f64>> = (0..targets.len())
            .map(|i| runs.iter().filter_map(|r| r.get(i).and_then(f)).collect())
            .collect();
        if per_target[0].is_empty() {
            continue;
        }
        let base = median(per_target[0].clone());
        let mut row = Row {
            metric: metric.to_owned(),
            lower_is_better: lower,
            targets: Vec::new(),
        };
        for (i, t) in targets.iter().enumerate() {
            let med = median(per_target[i].clone());
            let ratios: Vec<f64> = runs
                .iter()
                .filter_map(|r| Some(f(r.get(i)?)? / f(r.first()?)?))
                .filter(|x| x.is_finite())
                .collect();
            let (lo, hi) = ratios
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                    (a.min(x), b.max(x))
                });
            row.targets.push((t.name.clone(), med, med / base, lo, hi));
        }
        out.push(row);
    }
    out
}

impl Comparison {
    /// The table: per figure, each target's median, its ratio to the first target and the
    /// range of the per-round ratios.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "compare: {} over {} rounds (ratios to {}; per-round min-max)",
            self.scenario.join(" "),
            self.rounds,
            self.targets[0].name
        );
        for row in &self.rows {
            let _ = writeln!(
                out,
                "  {:<16}{}",
                row.metric,
                if row.lower_is_better {
                    " (lower is better)"
                } else {
                    ""
                }
            );
            for (name, med, ratio, lo, hi) in &row.targets {
                if ratio.is_finite() && lo.is_finite() && hi.is_finite() {
                    let _ = writeln!(
                        out,
                        "    {name:<20} {med:>14.3}   {ratio:>6.2}x   ({lo:.2}-{hi:.2})"
                    );
                } else {
                    // A zero base (no errors, say): a ratio means nothing.
                    let _ = writeln!(out, "    {name:<20} {med:>14.3}");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let t = parse_target("wsx=ws://127.0.0.1:9001/,pid=42").unwrap();
        assert_eq!(
            (t.name.as_str(), t.url.as_str(), t.pid),
            ("wsx", "ws://127.0.0.1:9001/", Some(42))
        );
        assert!(parse_target("nourl").is_err());
        assert!(parse_target("a=ws://x/,port=1").is_err());
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }
}

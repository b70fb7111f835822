//! wsx-loadtest: a load generator for any WebSocket server, built on wsx's engine client (one
//! worker per thread, no allocation per message).
//!
//! Modes: `echo` (closed loop or fixed rate, every reply checked), `broadcast` (per-delivery
//! latency and reach), `connect` (connection storms over many source addresses) and `idle`
//! (held connections, pings, the server's memory per connection); `compare` runs one of them
//! against several servers in alternating rounds. Latency comes from HDR histograms and, at a
//! fixed rate, from each message's intended send time (coordinated omission corrected).
//! See loadtest/README.md.

pub mod broadcast;
pub mod cli;
pub mod clock;
pub mod compare;
pub mod driver;
pub mod echo;
pub mod fleet;
pub mod hold;
pub mod output;
pub mod payload;
pub mod procstat;
pub mod progress;
pub mod record;
pub mod report;
pub mod schedule;
pub mod sink;
pub mod sources;
pub mod svg;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use cli::{Command, Common};
use driver::{drive, Outcome, Plan, RunError};
use report::{
    BroadcastStats, ClientCpu, ConnectStats, Errors, KernelStats, Latency, Report, Second,
    ServerStats,
};

/// Runs one scenario (not `compare`) and returns its report.
///
/// # Errors
///
/// The flags do not describe a run, or the load generator cannot start. Errors met during
/// the run (refused connections, wrong replies, closes) are in the report instead.
pub fn run(command: &Command) -> Result<Report, RunError> {
    if command.common().and_then(|c| c.url.as_deref()) == Some(sink::INPROC) {
        let sink = sink::InProcess::start().map_err(RunError::Start)?;
        let mut command = command.clone();
        if let Some(c) = command.common_mut() {
            c.url = Some(sink.url());
        }
        let mut report = run_mode(&command)?;
        report.url = sink::INPROC.to_owned();
        drop(sink);
        return Ok(report);
    }
    run_mode(command)
}

fn run_mode(command: &Command) -> Result<Report, RunError> {
    match command {
        Command::Echo(a) => {
            if a.in_flight == 0 {
                return Err(RunError::Usage("-d must be at least 1".into()));
            }
            if let Some(r) = a.rate {
                if !(r.is_finite() && r > 0.0) {
                    return Err(RunError::Usage("--rate must be above 0".into()));
                }
            }
            let plan = Arc::new(echo::EchoPlan {
                in_flight: a.in_flight,
                binary: a.binary,
                rate: a.rate,
                payloads: payload::Payloads::new(a.size),
            });
            let outcome = drive(&a.common, Plan::load(), move |w, shared| {
                echo::EchoWorker::new(w, shared, plan.clone())
            })?;
            let params = serde_json::json!({
                "connections": a.common.connections, "in_flight": a.in_flight, "size": a.size,
                "binary": a.binary, "rate": a.rate, "deflate": a.common.deflate,
            });
            let mut report = build("echo", &a.common, params, &outcome);
            if a.rate.is_none() {
                report.latency_uncorrected_us = None;
            }
            let handled = report.received_measured;
            finish_cpu(&mut report, &outcome, handled, a.common.server_pid);
            Ok(report)
        }
        Command::Broadcast(a) => {
            if a.size < 32 {
                return Err(RunError::Usage(
                    "-s must be at least 32 for broadcast".into(),
                ));
            }
            if !(a.rate.is_finite() && a.rate > 0.0) {
                return Err(RunError::Usage("--rate must be above 0".into()));
            }
            let plan = Arc::new(broadcast::BroadcastPlan {
                size: a.size,
                rate: a.rate,
                prefix: a.prefix.clone(),
                timeout_ns: clock::nanos(a.timeout),
            });
            let outcome = drive(&a.common, Plan::load(), move |w, shared| {
                broadcast::BroadcastWorker::new(w, shared, plan.clone())
            })?;
            let params = serde_json::json!({
                "connections": a.common.connections, "size": a.size, "rate": a.rate,
                "prefix": a.prefix, "deflate": a.common.deflate,
            });
            let mut report = build("broadcast", &a.common, params, &outcome);
            report.latency_uncorrected_us = None;
            let subscribers = outcome.shared.opened.load(Ordering::Acquire);
            if let Some(timeline) = outcome.shared.timeline() {
                let r = broadcast::reach(&outcome.per_worker, subscribers, a.rate, timeline);
                report.broadcast = Some(BroadcastStats {
                    publishes: r.publishes,
                    subscribers,
                    deliveries: r.deliveries,
                    expected_deliveries: r.expected,
                    lost: r.expected.saturating_sub(r.deliveries),
                    deliveries_per_s: per_s(r.deliveries, report.measured_s),
                    reach_us: r.histogram.as_ref().and_then(Latency::of),
                });
                // Deliveries that came after --timeout are errors already (and not counted as
                // delivered): the rest of the missing ones never came.
                let late = report
                    .errors
                    .by_kind
                    .get("delivery: later than --timeout")
                    .copied()
                    .unwrap_or(0);
                let missing = r.expected.saturating_sub(r.deliveries).saturating_sub(late);
                if missing > 0 {
                    report
                        .errors
                        .by_kind
                        .insert("delivery: lost".into(), missing);
                    report.errors.total += missing;
                }
            }
            let handled = report.broadcast.as_ref().map_or(0, |b| b.deliveries);
            finish_cpu(&mut report, &outcome, handled, a.common.server_pid);
            Ok(report)
        }
        Command::Connect(a) => {
            let mut common = a.common.clone();
            common.duration = a.hold;
            let outcome = drive(&common, Plan::hold(None), |w, shared| {
                hold::HoldWorker::new(w, shared, None)
            })?;
            let params = serde_json::json!({
                "connections": common.connections, "concurrency": common.concurrency,
                "sources": common.sources, "hold_s": a.hold.as_secs_f64(),
            });
            let mut report = build("connect", &common, params, &outcome);
            report.latency_us = None;
            report.latency_uncorrected_us = None;
            report.percentiles = report::percentile_curve(&outcome.merged.handshake);
            finish_cpu(&mut report, &outcome, 0, common.server_pid);
            Ok(report)
        }
        Command::Idle(a) => {
            let outcome = drive(
                &a.common,
                Plan::hold(a.ping.map(|p| p * 4 + std::time::Duration::from_secs(10))),
                {
                    let ping = a.ping;
                    move |w, shared| hold::HoldWorker::new(w, shared, ping)
                },
            )?;
            let params = serde_json::json!({
                "connections": a.common.connections, "ping_s": a.ping.map(|p| p.as_secs_f64()),
                "hold_s": a.common.duration.as_secs_f64(),
            });
            let mut report = build("idle", &a.common, params, &outcome);
            report.latency_uncorrected_us = None;
            report.pongs = a.ping.map(|_| outcome.merged.pongs);
            finish_cpu(&mut report, &outcome, 0, a.common.server_pid);
            Ok(report)
        }
        Command::Compare(_) => Err(RunError::Usage(
            "compare runs scenarios; use compare::run".into(),
        )),
    }
}

impl Plan {
    /// Messages flow: warm-up, window, drain.
    pub fn load() -> Plan {
        Plan {
            load: true,
            idle_timeout: None,
        }
    }

    /// Connections are held, with an idle timeout when pings keep them alive.
    pub fn hold(idle_timeout: Option<std::time::Duration>) -> Plan {
        Plan {
            load: false,
            idle_timeout,
        }
    }
}

fn per_s(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// The parts of a report every mode has.
fn build(mode: &'static str, common: &Common, params: serde_json::Value, o: &Outcome) -> Report {
    let m = &o.merged;
    let c = &m.counters;
    let opened = o.shared.opened.load(Ordering::Acquire);
    let failed = o.shared.failed.load(Ordering::Acquire);
    let series = {
        let s = o.shared.series.lock().unwrap_or_else(|e| e.into_inner());
        let counts = o
            .shared
            .series_counts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Whole seconds of the window (a window of 8 s measures 7.999… s).
        let whole = (o.measured + 0.05).floor() as usize;
        s.iter()
            .enumerate()
            .take(whole.max(1))
            .map(|(i, h)| Second {
                t: (i + 1) as f64,
                count: counts.get(i).copied().unwrap_or(0),
                p50: h.value_at_quantile(0.5) as f64 / 1000.0,
                p90: h.value_at_quantile(0.9) as f64 / 1000.0,
                p99: h.value_at_quantile(0.99) as f64 / 1000.0,
                max: h.max() as f64 / 1000.0,
            })
            .collect()
    };
    let errors = Errors {
        total: m.errors.total(),
        by_kind: m.errors.counts.clone(),
        samples: m.errors.samples.clone(),
    };
    let kernel = o.kernel.as_ref().map(|(before, after)| {
        let d = after.delta(before);
        let tcp = d.tcp_mem_bytes;
        let slab = d.bytes_total().saturating_sub(tcp);
        KernelStats {
            tcp_mem_bytes: tcp,
            slab_bytes: slab,
            per_conn: if opened > 0 {
                (tcp + slab) as f64 / opened as f64
            } else {
                0.0
            },
            tcp_inuse: (before.tcp_inuse, after.tcp_inuse),
        }
    });
    Report {
        tool: "wsx-loadtest",
        version: env!("CARGO_PKG_VERSION"),
        mode,
        url: common.url.clone().unwrap_or_default(),
        label: common.label.clone(),
        params,
        threads: o.threads,
        warmup_s: if mode == "echo" || mode == "broadcast" {
            common.warmup.as_secs_f64()
        } else {
            0.0
        },
        duration_s: common.duration.as_secs_f64(),
        measured_s: o.measured,
        ended_early: o.ended_early.clone(),
        connect: ConnectStats {
            connections: common.connections,
            opened,
            failed,
            time_to_open_s: o.connect_time,
            handshakes_per_s: per_s(opened, o.connect_time),
            handshake_us: Latency::of(&m.handshake),
        },
        sent: c.sent,
        received: c.received,
        sent_measured: c.sent_measured,
        received_measured: c.received_measured,
        msgs_per_s: per_s(c.received_measured, o.measured),
        bytes_sent: c.bytes_sent,
        bytes_received: c.bytes_received,
        latency_us: Latency::of(&m.latency),
        latency_uncorrected_us: Latency::of(&m.uncorrected),
        schedule_lag_us: Latency::of(&m.schedule_lag),
        percentiles: report::percentile_curve(&m.latency),
        series,
        broadcast: None,
        pongs: None,
        errors,
        client: ClientCpu::default(),
        server: None,
        kernel,
        warnings: Vec::new(),
    }
}

/// CPU figures, per message `handled` in the window, and the bottleneck warning.
fn finish_cpu(report: &mut Report, o: &Outcome, handled: u64, pid: Option<u32>) {
    let window = o.measured;
    let cpu = o.own_cpu.as_secs_f64();
    let msgs = report.sent_measured + handled;
    report.client = ClientCpu {
        cpu_s: cpu,
        cores_used: if window > 0.0 { cpu / window } else { 0.0 },
        busiest_thread: if window > 0.0 {
            o.busiest_thread_cpu.as_secs_f64() / window
        } else {
            0.0
        },
        cpu_per_msg_us: (msgs > 0).then(|| cpu * 1e6 / msgs as f64),
    };
    if window > 1.0 && report.client.busiest_thread > 0.9 {
        report.warnings.push(format!(
            "a load generator thread was {:.0} % busy: these figures may measure the load \
             generator, not the server (more --threads, or more cores, would tell)",
            report.client.busiest_thread * 100.0
        ));
    }
    if let Some(lag) = report.schedule_lag_us.as_ref().filter(|l| l.p99 > 5000.0) {
        report.warnings.push(format!(
            "the load generator sent 1 % of its scheduled messages more than {:.1} ms late: \
             it could not keep the schedule (more --threads, or a lower --rate)",
            lag.p99 / 1000.0
        ));
    }
    if let Some(pid) = pid {
        let opened = report.connect.opened;
        report.server = Some(ServerStats {
            pid,
            cpu_s: o.server_cpu.map(|d| d.as_secs_f64()),
            cores_used: o
                .server_cpu
                .filter(|_| window > 0.0)
                .map(|d| d.as_secs_f64() / window),
            cpu_per_msg_us: o
                .server_cpu
                .filter(|_| handled > 0)
                .map(|d| d.as_secs_f64() * 1e6 / handled as f64),
            rss_before: o.server_rss.map(|r| r.0),
            rss_after: o.server_rss.map(|r| r.1),
            rss_per_conn: o
                .server_rss
                .filter(|_| opened > 0)
                .map(|(b, a)| (a as f64 - b as f64) / opened as f64),
        });
    }
}

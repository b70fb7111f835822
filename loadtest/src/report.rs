//! The report of one run: a summary table for people, one JSON object for machines (the field
//! names are stable; docs in loadtest/README.md), and what the SVG chart draws.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency figures in microseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Smallest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// 99.99th percentile.
    pub p9999: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    /// The figures of a histogram in nanoseconds (`None` when it is empty).
    pub fn of(h: &Histogram<u64>) -> Option<Latency> {
        if h.is_empty() {
            return None;
        }
        let us = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
        Some(Latency {
            count: h.len(),
            min: us(h.min()),
            mean: (h.mean() / 100.0).round() / 10.0,
            p50: us(h.value_at_quantile(0.5)),
            p90: us(h.value_at_quantile(0.9)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            p9999: us(h.value_at_quantile(0.9999)),
            max: us(h.max()),
        })
    }
}

/// One second of the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct Second {
    /// Seconds since the window began (this second ends then).
    pub t: f64,
    /// Replies (or deliveries, or pongs) recorded in it.
    pub count: u64,
    /// Median latency, µs.
    pub p50: f64,
    /// 90th percentile, µs.
    pub p90: f64,
    /// 99th percentile, µs.
    pub p99: f64,
    /// Largest, µs.
    pub max: f64,
}

/// A point of the percentile curve.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// Percentile (e.g. 99.9).
    pub percentile: f64,
    /// Latency at it, µs.
    pub us: f64,
}

/// The percentile curve of a histogram, at the points the chart draws.
pub fn percentile_curve(h: &Histogram<u64>) -> Vec<Point> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    // 0 .. 99.9999 %, denser towards the tail (equal steps of log10(1/(1-q))).
    for i in 0..=60 {
        let q = 1.0 - 10f64.powf(-(i as f64) / 10.0);
        out.push(Point {
            percentile: (q * 100.0 * 1e6).round() / 1e6,
            us: h.value_at_quantile(q) as f64 / 1000.0,
        });
    }
    out
}

/// The load generator's own CPU use.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClientCpu {
    /// CPU seconds over the measured window, all threads.
    pub cpu_s: f64,
    /// Cores' worth of CPU it used (cpu_s / window).
    pub cores_used: f64,
    /// The busiest thread's share of one core over the window (1.0: saturated).
    pub busiest_thread: f64,
    /// Microseconds of its CPU per message (sent + received).
    pub cpu_per_msg_us: Option<f64>,
}

/// The server's CPU and memory, when its pid was given.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerStats {
    /// Its pid.
    pub pid: u32,
    /// CPU seconds over the measured window.
    pub cpu_s: Option<f64>,
    /// Cores' worth it used.
    pub cores_used: Option<f64>,
    /// Microseconds of server CPU per message it handled (echo: per message echoed; broadcast:
    /// per delivery).
    pub cpu_per_msg_us: Option<f64>,
    /// RSS before the connections opened, bytes.
    pub rss_before: Option<u64>,
    /// RSS once every connection had opened, bytes.
    pub rss_after: Option<u64>,
    /// (rss_after - rss_before) / connections opened.
    pub rss_per_conn: Option<f64>,
}

/// Kernel memory growth while the connections opened (both ends of each connection when the
/// server runs on this machine).
#[derive(Debug, Clone, Default, Serialize)]
pub struct KernelStats {
    /// Growth of TCP buffer memory (/proc/net/sockstat `mem`), bytes.
    pub tcp_mem_bytes: u64,
    /// Growth of the slab caches that hold sockets, bytes.
    pub slab_bytes: u64,
    /// Both, per connection opened.
    pub per_conn: f64,
    /// Sockets in use before and after.
    pub tcp_inuse: (u64, u64),
}

/// Connecting.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConnectStats {
    /// Connections asked for.
    pub connections: usize,
    /// Connections that opened.
    pub opened: u64,
    /// Connections that failed before opening.
    pub failed: u64,
    /// Seconds from the first connect to the last open.
    pub time_to_open_s: f64,
    /// Opened connections per second over that time.
    pub handshakes_per_s: f64,
    /// Time from connect to open, per connection.
    pub handshake_us: Option<Latency>,
}

/// Broadcast figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BroadcastStats {
    /// Publishes made that were due in the measured window.
    pub publishes: u64,
    /// Subscribers (connections that opened, the publisher included).
    pub subscribers: u64,
    /// Deliveries of those publishes.
    pub deliveries: u64,
    /// publishes × subscribers.
    pub expected_deliveries: u64,
    /// Deliveries missing (expected - delivered), those later than `--timeout` included (the
    /// errors count them as `delivery: later than --timeout`, the others as `delivery: lost`).
    pub lost: u64,
    /// Deliveries per second over the window.
    pub deliveries_per_s: f64,
    /// Time from a publish's due time to its last delivery (publishes every subscriber got).
    pub reach_us: Option<Latency>,
}

/// Errors.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Errors {
    /// All of them.
    pub total: u64,
    /// Per kind.
    pub by_kind: std::collections::BTreeMap<String, u64>,
    /// The first few, with detail.
    pub samples: Vec<String>,
}

/// The report of one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// `wsx-loadtest`.
    pub tool: &'static str,
    /// Its version.
    pub version: &'static str,
    /// echo, broadcast, connect or idle.
    pub mode: &'static str,
    /// The server.
    pub url: String,
    /// `--label`.
    pub label: Option<String>,
    /// The scenario's parameters (mode-specific, as given).
    pub params: serde_json::Value,
    /// Worker threads of the load generator.
    pub threads: usize,
    /// Warm-up, seconds.
    pub warmup_s: f64,
    /// Measured window asked for, seconds.
    pub duration_s: f64,
    /// Measured window actually run, seconds.
    pub measured_s: f64,
    /// Why the run ended early, if it did.
    pub ended_early: Option<String>,
    /// Connecting.
    pub connect: ConnectStats,
    /// Messages sent (all phases; pings in idle mode, publishes in broadcast).
    pub sent: u64,
    /// Messages received (all phases).
    pub received: u64,
    /// Sent in the measured window.
    pub sent_measured: u64,
    /// Replies/deliveries/pongs recorded in the window (right ones only).
    pub received_measured: u64,
    /// received_measured / measured_s.
    pub msgs_per_s: f64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Latency from each message's intended send time (fixed rate: the schedule's; closed
    /// loop: the actual send).
    pub latency_us: Option<Latency>,
    /// Fixed rate only: latency from the actual send time, what a tool that ignores
    /// coordinated omission reports.
    pub latency_uncorrected_us: Option<Latency>,
    /// Fixed-rate and scheduled sends (echo `--rate`, publishes, pings): how late this tool
    /// sent what was due while nothing held it back (its tick is 1 ms). Not counted in
    /// `latency_us`; a large figure means the load generator could not keep its schedule.
    pub schedule_lag_us: Option<Latency>,
    /// The percentile curve of `latency_us`.
    pub percentiles: Vec<Point>,
    /// Latency per second of the window.
    pub series: Vec<Second>,
    /// Broadcast figures.
    pub broadcast: Option<BroadcastStats>,
    /// Pongs received (idle with pings).
    pub pongs: Option<u64>,
    /// Errors.
    pub errors: Errors,
    /// The load generator's CPU.
    pub client: ClientCpu,
    /// The server's CPU and memory.
    pub server: Option<ServerStats>,
    /// Kernel memory.
    pub kernel: Option<KernelStats>,
    /// Things the reader must know (e.g. the load generator was the bottleneck).
    pub warnings: Vec<String>,
}

fn fmt_us(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{us:.1} µs")
    }
}

fn fmt_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn latency_row(out: &mut String, name: &str, l: &Latency) {
    let _ = writeln!(
        out,
        "  {name:<14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}  (n={})",
        fmt_us(l.p50),
        fmt_us(l.p90),
        fmt_us(l.p99),
        fmt_us(l.p999),
        fmt_us(l.max),
        fmt_us(l.mean),
        l.count
    );
}

impl Report {
    /// The summary table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "wsx-loadtest {} {}  ({} threads, {:.1} s measured after {:.1} s warm-up)",
            self.mode, self.url, self.threads, self.measured_s, self.warmup_s
        );
        let c = &self.connect;
        let _ = writeln!(
            out,
            "  connections    {} opened of {}, {} failed; all open in {:.2} s ({}/s)",
            c.opened,
            c.connections,
            c.failed,
            c.time_to_open_s,
            fmt_rate(c.handshakes_per_s)
        );
        let _ = writeln!(
            out,
            "  messages       {} sent, {} received; in the window {} sent, {} right -> {} msgs/s",
            self.sent,
            self.received,
            self.sent_measured,
            self.received_measured,
            fmt_rate(self.msgs_per_s)
        );
        if let Some(b) = &self.broadcast {
            let _ = writeln!(
                out,
                "  broadcast      {} publishes x {} subscribers: {} of {} delivered, {} lost ({}/s)",
                b.publishes,
                b.subscribers,
                b.deliveries,
                b.expected_deliveries,
                b.lost,
                fmt_rate(b.deliveries_per_s)
            );
        }
        if let Some(p) = self.pongs {
            let _ = writeln!(out, "  pongs          {p}");
        }
        let _ = writeln!(
            out,
            "  {:<14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "latency", "p50", "p90", "p99", "p99.9", "max", "mean"
        );
        if let Some(l) = &self.latency_us {
            let name = if self.latency_uncorrected_us.is_some() {
                "corrected"
            } else if self.mode == "broadcast" {
                "delivery"
            } else if self.mode == "idle" {
                "ping-pong"
            } else {
                "reply"
            };
            latency_row(&mut out, name, l);
        }
        if let Some(l) = &self.latency_uncorrected_us {
            latency_row(&mut out, "uncorrected", l);
        }
        if let Some(l) = self.broadcast.as_ref().and_then(|b| b.reach_us.as_ref()) {
            latency_row(&mut out, "reach", l);
        }
        if let Some(l) = &c.handshake_us {
            latency_row(&mut out, "handshake", l);
        }
        if let Some(l) = &self.schedule_lag_us {
            latency_row(&mut out, "schedule lag", l);
        }
        let _ = write!(
            out,
            "  client cpu     {:.2} cores, busiest thread {:.0} %",
            self.client.cores_used,
            self.client.busiest_thread * 100.0
        );
        if let Some(u) = self.client.cpu_per_msg_us {
            let _ = write!(out, ", {u:.2} µs/msg");
        }
        out.push('\n');
        if let Some(s) = &self.server {
            let _ = write!(out, "  server pid {}", s.pid);
            if let Some(cores) = s.cores_used {
                let _ = write!(out, "  cpu {cores:.2} cores");
            }
            if let Some(u) = s.cpu_per_msg_us {
                let _ = write!(out, ", {u:.3} µs/msg");
            }
            if let Some(r) = s.rss_after {
                let _ = write!(out, ", rss {:.1} MiB", r as f64 / (1 << 20) as f64);
            }
            if let Some(p) = s.rss_per_conn {
                let _ = write!(out, " ({p:.0} B/conn)");
            }
            out.push('\n');
        }
        if let Some(k) = &self.kernel {
            let _ = writeln!(
                out,
                "  kernel         +{} B tcp buffers, +{} B socket slabs: {:.0} B per connection",
                k.tcp_mem_bytes, k.slab_bytes, k.per_conn
            );
        }
        let _ = writeln!(out, "  errors         {}", self.errors.total);
        for (kind, n) in &self.errors.by_kind {
            let _ = writeln!(out, "    {n:>10}  {kind}");
        }
        for s in self.errors.samples.iter().take(4) {
            let _ = writeln!(out, "    e.g. {s}");
        }
        if let Some(e) = &self.ended_early {
            let _ = writeln!(out, "  ENDED EARLY: {e}");
        }
        for w in &self.warnings {
            let _ = writeln!(out, "  WARNING: {w}");
        }
        out
    }
}

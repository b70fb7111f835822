//! What the workers record: latency histograms, counters and errors, each worker its own, and
//! the few things they share with the main thread (the timeline, live counters for the
//! progress line, the per-second series).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;

use crate::cli::Ending;
use crate::clock::Clock;

/// Largest latency a histogram holds: one hour, in nanoseconds (larger values are clamped).
pub const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

/// Error samples kept per worker (the counts are always complete).
const MAX_SAMPLES: usize = 8;

/// A latency histogram in nanoseconds, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid histogram bounds")
}

/// A coarser histogram for one second of the series, 2 significant digits.
pub fn interval_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 2).expect("valid histogram bounds")
}

/// Records `ns` (at least 1, at most [`MAX_LATENCY_NS`]).
pub fn record(h: &mut Histogram<u64>, ns: u64) {
    h.saturating_record(ns.clamp(1, MAX_LATENCY_NS));
}

/// Errors by kind, with the first few messages as samples.
#[derive(Debug, Default, Clone)]
pub struct ErrorLog {
    /// Count per kind.
    pub counts: BTreeMap<String, u64>,
    /// The first messages seen, for the report.
    pub samples: Vec<String>,
}

impl ErrorLog {
    /// Counts one error of `kind`, keeping `detail` as a sample while there is room.
    pub fn add(&mut self, kind: &str, detail: impl FnOnce() -> String) {
        match self.counts.get_mut(kind) {
            Some(n) => *n += 1,
            None => {
                self.counts.insert(kind.to_owned(), 1);
            }
        }
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(detail());
        }
    }

    /// Counts `n` errors of `kind` at once.
    pub fn add_n(&mut self, kind: &str, n: u64) {
        if n > 0 {
            *self.counts.entry(kind.to_owned()).or_insert(0) += n;
        }
    }

    /// All errors.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Adds another log's counts and samples.
    pub fn merge(&mut self, other: &ErrorLog) {
        for (k, v) in &other.counts {
            *self.counts.entry(k.clone()).or_insert(0) += v;
        }
        for s in &other.samples {
            if self.samples.len() < MAX_SAMPLES * 2 {
                self.samples.push(s.clone());
            }
        }
    }
}

/// Counters of one worker for one run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    /// Messages sent (all phases).
    pub sent: u64,
    /// Messages received (all phases).
    pub received: u64,
    /// Messages sent whose intended send time fell in the measured window.
    pub sent_measured: u64,
    /// Replies or deliveries recorded in the latency histogram (sent in the measured window,
    /// checked and found right).
    pub received_measured: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Messages sent that never got their reply (the connection closed, or the run ended).
    pub unanswered: u64,
}

impl Counters {
    /// Adds another worker's counters.
    pub fn merge(&mut self, o: &Counters) {
        self.sent += o.sent;
        self.received += o.received;
        self.sent_measured += o.sent_measured;
        self.received_measured += o.received_measured;
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.unanswered += o.unanswered;
    }
}

/// What one worker hands over when it ends.
#[derive(Debug, Clone)]
pub struct WorkerResult {
    /// Latency of every measured reply, from its intended send time.
    pub latency: Histogram<u64>,
    /// Latency from the actual send time (differs from `latency` only in fixed-rate runs).
    pub uncorrected: Histogram<u64>,
    /// Time from `connect` to the connection's `on_open`.
    pub handshake: Histogram<u64>,
    /// Fixed rate: how late this tool sent messages that were due while their connection
    /// had room (its own tick granularity and load, not the server's).
    pub schedule_lag: Histogram<u64>,
    /// Broadcast: when each publish was actually sent, ns, indexed by sequence number.
    pub published_at: Vec<u64>,
    /// Counters.
    pub counters: Counters,
    /// Errors.
    pub errors: ErrorLog,
    /// Broadcast: per publish, (deliveries seen, last arrival ns), indexed by sequence number.
    pub deliveries: Vec<(u32, u64)>,
    /// Pongs received (idle mode with pings).
    pub pongs: u64,
}

impl Default for WorkerResult {
    fn default() -> Self {
        WorkerResult {
            latency: histogram(),
            uncorrected: histogram(),
            handshake: histogram(),
            schedule_lag: histogram(),
            published_at: Vec::new(),
            counters: Counters::default(),
            errors: ErrorLog::default(),
            deliveries: Vec::new(),
            pongs: 0,
        }
    }
}

/// A worker's live counters, read by the progress line; padded so workers never share a line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Live {
    /// Messages sent.
    pub sent: AtomicU64,
    /// Messages received.
    pub received: AtomicU64,
    /// Errors counted.
    pub errors: AtomicU64,
    /// Replies still expected (sent and neither answered nor written off).
    pub in_flight: AtomicU64,
}

/// A worker's own copy of its live counters, counted without atomics on the message path and
/// stored into its [`Live`] on every tick (1 ms) and when the worker ends.
#[derive(Debug, Default, Clone, Copy)]
pub struct LiveLocal {
    /// Messages sent.
    pub sent: u64,
    /// Messages received.
    pub received: u64,
    /// Replies expected minus replies seen (may be negative on one worker: broadcast).
    pub in_flight: i64,
}

impl LiveLocal {
    /// Publishes the counts for the progress line and the drain.
    pub fn store(&self, live: &Live) {
        live.sent.store(self.sent, Ordering::Relaxed);
        live.received.store(self.received, Ordering::Relaxed);
        live.in_flight
            .store(self.in_flight as u64, Ordering::Relaxed);
    }
}

/// Unset timeline instants.
pub const UNSET: u64 = u64::MAX;

/// What the main thread and the workers share during a run.
#[derive(Debug)]
pub struct Shared {
    /// The run's time base.
    pub clock: Clock,
    /// Connections the run opens.
    pub connections: usize,
    /// When load begins (warm-up included), ns; [`UNSET`] while connecting.
    pub load_start: AtomicU64,
    /// When the measured window begins, ns.
    pub measure_start: AtomicU64,
    /// When the measured window ends (no new messages after it), ns.
    pub measure_end: AtomicU64,
    /// Set when the workers are to end their connections (as `ending` says).
    pub closing: AtomicBool,
    /// How they end them.
    pub ending: Ending,
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections that opened (ever).
    pub opened: AtomicU64,
    /// Connections that failed before opening.
    pub failed: AtomicU64,
    /// When each connection's `connect` was called, ns, by tag.
    pub connect_started: Vec<AtomicU64>,
    /// Time of the last `on_open`, ns.
    pub last_open: AtomicU64,
    /// Per worker live counters.
    pub live: Vec<Live>,
    /// One histogram per measured second (all workers merged).
    pub series: Mutex<Vec<Histogram<u64>>>,
    /// Messages received per measured second.
    pub series_counts: Mutex<Vec<u64>>,
    /// Results of workers that ended.
    pub results: Mutex<Vec<WorkerResult>>,
}

impl Shared {
    /// Shared state for `connections` connections on `workers` workers, ended as `ending`
    /// says.
    pub fn new(clock: Clock, connections: usize, workers: usize, ending: Ending) -> Self {
        Shared {
            ending,
            clock,
            connections,
            load_start: AtomicU64::new(UNSET),
            measure_start: AtomicU64::new(UNSET),
            measure_end: AtomicU64::new(UNSET),
            closing: AtomicBool::new(false),
            open: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            connect_started: (0..connections).map(|_| AtomicU64::new(0)).collect(),
            last_open: AtomicU64::new(0),
            live: (0..workers).map(|_| Live::default()).collect(),
            series: Mutex::new(Vec::new()),
            series_counts: Mutex::new(Vec::new()),
            results: Mutex::new(Vec::new()),
        }
    }

    /// The timeline, once set: (load start, measure start, measure end).
    pub fn timeline(&self) -> Option<(u64, u64, u64)> {
        let load = self.load_start.load(Ordering::Acquire);
        (load != UNSET).then(|| {
            (
                load,
                self.measure_start.load(Ordering::Acquire),
                self.measure_end.load(Ordering::Acquire),
            )
        })
    }

    /// Sums the live counters: (sent, received, errors, in flight). A worker's `in_flight`
    /// may go below zero where replies arrive on another worker than their sends (broadcast),
    /// so it wraps, and the sum is read as signed (never below 0).
    pub fn live_totals(&self) -> (u64, u64, u64, u64) {
        let (s, r, e, f) = self.live.iter().fold((0u64, 0u64, 0u64, 0u64), |a, l| {
            (
                a.0.wrapping_add(l.sent.load(Ordering::Relaxed)),
                a.1.wrapping_add(l.received.load(Ordering::Relaxed)),
                a.2.wrapping_add(l.errors.load(Ordering::Relaxed)),
                a.3.wrapping_add(l.in_flight.load(Ordering::Relaxed)),
            )
        });
        (s, r, e, (f as i64).max(0) as u64)
    }
}

/// A worker's per-second latency series: the histogram of the current second, handed to
/// [`Shared::series`] when the second is over.
#[derive(Debug)]
pub struct Interval {
    current: Histogram<u64>,
    count: u64,
    second: u64,
}

impl Default for Interval {
    fn default() -> Self {
        Interval {
            current: interval_histogram(),
            count: 0,
            second: 0,
        }
    }
}

impl Interval {
    /// Records a latency measured at `now` (ns) into the second it falls in.
    pub fn record(&mut self, shared: &Shared, measure_start: u64, now: u64, ns: u64) {
        let second = now.saturating_sub(measure_start) / 1_000_000_000;
        if second != self.second {
            self.flush(shared);
            self.second = second;
        }
        record(&mut self.current, ns);
        self.count += 1;
    }

    /// Hands the current second over if `now` is past it (called on every tick, so a quiet
    /// worker's last second is not held back).
    pub fn rotate(&mut self, shared: &Shared, measure_start: u64, now: u64) {
        let second = now.saturating_sub(measure_start) / 1_000_000_000;
        if second != self.second {
            self.flush(shared);
            self.second = second;
        }
    }

    /// Hands what this second holds to the shared series.
    pub fn flush(&mut self, shared: &Shared) {
        if self.count == 0 {
            return;
        }
        let i = self.second as usize;
        {
            let mut series = shared.series.lock().unwrap_or_else(|e| e.into_inner());
            while series.len() <= i {
                series.push(interval_histogram());
            }
            let _ = series[i].add(&self.current);
        }
        {
            let mut counts = shared
                .series_counts
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if counts.len() <= i {
                counts.resize(i + 1, 0);
            }
            counts[i] += self.count;
        }
        self.current.reset();
        self.count = 0;
    }
}

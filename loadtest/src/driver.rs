//! One run's life, the same for every mode: start the engine client, open the connections
//! (at most `--concurrency` at once), set the timeline (warm-up, measured window), wait for
//! it to pass or for every connection to be gone, give the replies in flight `--drain` to
//! arrive, close every connection with 1000, and gather what the workers recorded.
//!
//! Every wait here has a bound: a server that never answers, refuses or closes mid-run ends
//! the run early with what was measured so far, never a hang.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsx::client::ClientOptions;
use wsx::protocol::deflate::DeflateOptions;
use wsx::{Client, Handler, ServerHandle};

use crate::cli::Common;
use crate::clock::{nanos, Clock};
use crate::procstat;
use crate::progress::Progress;
use crate::record::{Shared, WorkerResult};
use crate::sources::Sources;

/// The workers' tick: how often they look at the clock when no message arrives.
pub const TICK: Duration = Duration::from_millis(1);

/// Why a run could not be made at all (a run that starts and then meets errors reports them
/// instead).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The flags do not describe a run.
    #[error("{0}")]
    Usage(String),
    /// The engine client could not start.
    #[error("cannot start the load generator: {0}")]
    Start(std::io::Error),
}

/// What the phases of a run need to know besides the common flags.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Whether messages flow after the connections open (echo, broadcast); `false` holds the
    /// connections for `--duration` without warm-up or drain (connect, idle).
    pub load: bool,
    /// The idle timeout of the connections (`None`: never; idle with pings sets it).
    pub idle_timeout: Option<Duration>,
}

/// What a run measured, before the mode turns it into a report.
#[derive(Debug)]
pub struct Outcome {
    /// The state the workers shared.
    pub shared: Arc<Shared>,
    /// Every worker's result, merged.
    pub merged: WorkerResult,
    /// Each worker's result (broadcast merges deliveries itself).
    pub per_worker: Vec<WorkerResult>,
    /// Worker threads used.
    pub threads: usize,
    /// Seconds from the first `connect` to the last `on_open`.
    pub connect_time: f64,
    /// Length of the measured window actually run, seconds (shorter when the run ended early).
    pub measured: f64,
    /// Why the run ended before its time, if it did.
    pub ended_early: Option<String>,
    /// The load generator's CPU time over the measured window.
    pub own_cpu: Duration,
    /// The busiest worker thread's CPU time over the window.
    pub busiest_thread_cpu: Duration,
    /// The server's CPU time over the window, if its pid was given and readable.
    pub server_cpu: Option<Duration>,
    /// The server's RSS before connecting and after all connections opened.
    pub server_rss: Option<(u64, u64)>,
    /// Kernel socket memory before connecting and after all connections opened.
    pub kernel: Option<(procstat::KernelMem, procstat::KernelMem)>,
}

/// Default worker threads: half the cores, at least one.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// Runs the life of one run with handlers from `factory(worker, shared)`.
///
/// # Errors
///
/// The flags are unusable or the engine cannot start.
pub fn drive<H, F>(common: &Common, plan: Plan, factory: F) -> Result<Outcome, RunError>
where
    H: Handler,
    F: Fn(usize, Arc<Shared>) -> H + Send + Sync + 'static,
{
    let url = common
        .url
        .clone()
        .ok_or_else(|| RunError::Usage("--url is required (ws://HOST:PORT/PATH)".into()))?;
    if common.connections == 0 {
        return Err(RunError::Usage("-c must be at least 1".into()));
    }
    let sources = match &common.sources {
        Some(spec) => {
            let target = target_ip(&url).ok_or_else(|| {
                RunError::Usage(format!("--sources: cannot resolve the host of {url}"))
            })?;
            Sources::parse(spec, target, common.connections)
                .map_err(|e| RunError::Usage(format!("--sources: {e}")))?
        }
        None => Sources::none(),
    };
    let nofile = procstat::raise_nofile();
    if (common.connections as u64) + 64 > nofile {
        eprintln!(
            "wsx-loadtest: warning: {} connections need as many descriptors, the limit is {nofile}",
            common.connections
        );
    }
    let threads = common.threads.unwrap_or_else(default_threads).max(1);
    let clock = Clock::start();
    let shared = Arc::new(Shared::new(
        clock,
        common.connections,
        threads,
        common.close,
    ));
    let mut options = ClientOptions::new().handshake_timeout(common.connect_timeout);
    if common.deflate {
        options = options.deflate(DeflateOptions::default());
    }
    if let Some(ca) = &common.tls_ca {
        let tls = wsx::tls::ClientTls::with_ca_pem_file(ca)
            .map_err(|e| RunError::Usage(format!("--tls-ca: {e}")))?;
        options = options.tls(tls);
    } else if common.insecure {
        options = options.tls(wsx::tls::ClientTls::dangerous_accept_any_certificate());
    }
    // The load generator's CPU is that of the threads started from here on (its workers):
    // not this thread's, which only waits, nor an in-process sink's.
    let others: std::collections::HashSet<u64> =
        procstat::own_threads().into_iter().map(|t| t.0).collect();
    let for_workers = shared.clone();
    let mut builder = Client::builder();
    if let Some(backend) = common.backend {
        builder = builder.backend(backend);
    }
    let engine = builder
        .threads(threads)
        .pin_threads(common.pin)
        .idle_timeout(plan.idle_timeout)
        .auto_ping(plan.idle_timeout.is_some())
        .close_timeout(Duration::from_secs(2))
        .tick(TICK)
        .start(move |worker| factory(worker, for_workers.clone()))
        .map_err(RunError::Start)?;

    let server_rss_before = common
        .server_pid
        .and_then(|p| procstat::process_rss(p).ok());
    let kernel_before = procstat::kernel_mem().ok();
    let progress = Progress::start(shared.clone(), common.quiet);

    // Open the connections, at most `concurrency` in progress at once.
    let connect_deadline = Instant::now()
        + common.connect_timeout
        + Duration::from_secs_f64(
            common.connections as f64 / 1000.0 * common.connect_timeout.as_secs_f64().min(1.0),
        )
        + Duration::from_secs(5);
    let first_connect = clock.now();
    let mut ended_early = None;
    for tag in 0..common.connections {
        loop {
            let done =
                shared.opened.load(Ordering::Acquire) + shared.failed.load(Ordering::Acquire);
            if (tag as u64).saturating_sub(done) < common.concurrency.max(1) as u64 {
                break;
            }
            if Instant::now() > connect_deadline {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        if Instant::now() > connect_deadline {
            ended_early = Some(format!(
                "{} of {} connections not attempted: opening took too long",
                common.connections - tag,
                common.connections
            ));
            shared
                .failed
                .fetch_add((common.connections - tag) as u64, Ordering::AcqRel);
            break;
        }
        let mut o = options.clone();
        if let Some(ip) = sources.for_connection(tag) {
            o = o.local_addr(ip);
        }
        shared.connect_started[tag].store(clock.now(), Ordering::Release);
        if let Err(e) = engine.connect(&url, o, tag as u64) {
            // The URL itself is refused: every connection would be.
            shutdown(&engine);
            progress.finish();
            return Err(RunError::Usage(format!("cannot connect to {url}: {e}")));
        }
    }
    // Wait for every connection to open or fail (each has its own handshake timeout).
    while shared.opened.load(Ordering::Acquire) + shared.failed.load(Ordering::Acquire)
        < common.connections as u64
        && Instant::now() < connect_deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    let connect_time = shared
        .last_open
        .load(Ordering::Acquire)
        .saturating_sub(first_connect) as f64
        / 1e9;
    let server_rss_after = common
        .server_pid
        .and_then(|p| procstat::process_rss(p).ok());
    let kernel_after = procstat::kernel_mem().ok();

    let mut measured = 0.0;
    let (mut own_cpu, mut busiest, mut server_cpu) = (Duration::ZERO, Duration::ZERO, None);
    if shared.open.load(Ordering::Acquire) == 0 {
        let opened = shared.opened.load(Ordering::Acquire);
        ended_early.get_or_insert_with(|| {
            if opened == 0 {
                "no connection opened".to_owned()
            } else {
                format!("every connection closed before the load began ({opened} had opened)")
            }
        });
    } else {
        // The timeline: load from now, measured after the warm-up (none without load).
        let warmup = if plan.load {
            common.warmup
        } else {
            Duration::ZERO
        };
        let load_start = clock.now() + nanos(Duration::from_millis(5));
        let measure_start = load_start + nanos(warmup);
        let measure_end = measure_start + nanos(common.duration);
        shared.measure_start.store(measure_start, Ordering::Release);
        shared.measure_end.store(measure_end, Ordering::Release);
        shared.load_start.store(load_start, Ordering::Release);
        // Sleep to the window's start, then sample the CPU times around it.
        let gone_in_warmup = wait_until(&shared, measure_start);
        let threads0 = own_threads(&others);
        let server0 = common
            .server_pid
            .and_then(|p| procstat::process_cpu(p).ok());
        let t0 = clock.now();
        let all_gone = wait_until(&shared, measure_end);
        let t1 = clock.now();
        measured = (t1 - t0) as f64 / 1e9;
        let threads1 = own_threads(&others);
        own_cpu = threads1
            .iter()
            .map(|t| t.1.saturating_sub(cpu_of(&threads0, t.0)))
            .sum();
        busiest = threads1
            .iter()
            .map(|t| t.1.saturating_sub(cpu_of(&threads0, t.0)))
            .max()
            .unwrap_or(Duration::ZERO);
        server_cpu = common
            .server_pid
            .and_then(|p| procstat::process_cpu(p).ok())
            .zip(server0)
            .map(|(a, b)| a.saturating_sub(b));
        if gone_in_warmup {
            ended_early
                .get_or_insert_with(|| "every connection closed during the warm-up".to_owned());
        } else if all_gone {
            ended_early.get_or_insert_with(|| {
                format!(
                    "every connection closed {:.1} s into the measured window",
                    measured
                )
            });
        }
        if plan.load && !all_gone {
            // Replies still in flight get `--drain` to arrive.
            let deadline = Instant::now() + common.drain;
            while shared.live_totals().3 > 0
                && shared.open.load(Ordering::Acquire) > 0
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    // End every connection from its worker (close 1000, or a reset), wait for the ends
    // (bounded).
    shared.closing.store(true, Ordering::Release);
    let deadline = Instant::now() + Duration::from_secs(3);
    while shared.open.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    shutdown(&engine);
    progress.finish();

    let per_worker = std::mem::take(&mut *shared.results.lock().unwrap_or_else(|e| e.into_inner()));
    let mut merged = WorkerResult::default();
    for r in &per_worker {
        let _ = merged.latency.add(&r.latency);
        let _ = merged.uncorrected.add(&r.uncorrected);
        let _ = merged.handshake.add(&r.handshake);
        let _ = merged.schedule_lag.add(&r.schedule_lag);
        merged.counters.merge(&r.counters);
        merged.errors.merge(&r.errors);
        merged.pongs += r.pongs;
    }
    let failed = shared.failed.load(Ordering::Acquire);
    let reported: u64 = merged
        .errors
        .counts
        .iter()
        .filter(|(k, _)| k.starts_with("connect"))
        .map(|(_, v)| v)
        .sum();
    merged
        .errors
        .add_n("connect: not attempted", failed.saturating_sub(reported));
    Ok(Outcome {
        shared,
        merged,
        per_worker,
        threads,
        connect_time,
        measured,
        ended_early,
        own_cpu,
        busiest_thread_cpu: busiest,
        server_cpu,
        server_rss: server_rss_before.zip(server_rss_after),
        kernel: kernel_before.zip(kernel_after),
    })
}

/// Stops the engine and waits for its workers (their handlers hand their results over as
/// they are dropped).
fn shutdown(engine: &ServerHandle) {
    engine.shutdown(Duration::from_millis(500));
    engine.wait();
}

/// Sleeps until `at` (ns on the run's clock); returns early, with `true`, once no connection is
/// open.
fn wait_until(shared: &Shared, at: u64) -> bool {
    loop {
        let now = shared.clock.now();
        if now >= at {
            return false;
        }
        if shared.open.load(Ordering::Acquire) == 0 {
            return true;
        }
        std::thread::sleep(Duration::from_nanos(at - now).min(Duration::from_millis(5)));
    }
}

/// This process's threads but `others`: (tid, CPU time).
fn own_threads(others: &std::collections::HashSet<u64>) -> Vec<(u64, Duration)> {
    procstat::own_threads()
        .into_iter()
        .filter(|t| !others.contains(&t.0))
        .map(|(tid, _, cpu)| (tid, cpu))
        .collect()
}

/// The CPU time of thread `tid` in `sample` (zero if it was not there yet).
fn cpu_of(sample: &[(u64, Duration)], tid: u64) -> Duration {
    sample
        .iter()
        .find(|t| t.0 == tid)
        .map_or(Duration::ZERO, |t| t.1)
}

/// The host part of a ws:// URL (without brackets for IPv6).
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    }
}

/// The address the URL's host names (the first one it resolves to).
fn target_ip(url: &str) -> Option<std::net::IpAddr> {
    use std::net::ToSocketAddrs;
    let host = url_host(url);
    if let Ok(ip) = host.parse() {
        return Some(ip);
    }
    (host, 0).to_socket_addrs().ok()?.next().map(|a| a.ip())
}

/// Whether the URL's host is a loopback address or `localhost`.
pub fn is_loopback_url(url: &str) -> bool {
    let host = url_host(url);
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls() {
        assert!(is_loopback_url("ws://127.0.0.1:9001/"));
        assert!(is_loopback_url("ws://127.9.0.1/x"));
        assert!(is_loopback_url("ws://localhost:1"));
        assert!(is_loopback_url("ws://[::1]:80/"));
        assert!(!is_loopback_url("ws://10.0.0.1:80/"));
        assert!(!is_loopback_url("ws://example.com/"));
    }
}

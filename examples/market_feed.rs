//! A market-data feed on wsx's pub/sub, and a client that measures it.
//!
//! ```sh
//! # the feed: N symbols, one topic per symbol, ticks at a total rate, conflation on
//! cargo run --release --example market_feed -- feed --port 9002 --symbols 100 --rate 20000
//! # the client: M connections on the engine client, each subscribed to K symbols,
//! # latency percentiles from the timestamp in each tick
//! cargo run --release --example market_feed -- client --url ws://127.0.0.1:9002/ \
//!     --connections 1000 --per-connection 10 --duration 10
//! ```
//!
//! A client subscribes by sending `sub SYM1,SYM2,…`. Each tick is a JSON text message
//! `{"s":"SYM","seq":N,"bid":…,"ask":…,"ts":NANOS}` published to topic `ticks.SYM`, keyed by
//! symbol. Topics under `ticks.` conflate: a subscriber whose unwritten bytes pass 64 KiB
//! gets only the newest tick of each symbol once its socket drains, instead of a growing
//! queue (the counters say how many were replaced: `feed` prints them every second).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use wsx::broadcast::{PublishOptions, TopicPolicy};
use wsx::client::ClientOptions;
use wsx::{Client, Conn, Handler, Message, Server};

#[derive(Parser)]
#[command(about = "A market-data feed on wsx pub/sub, and a client that measures it")]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Serve ticks for `symbols` symbols at `rate` ticks per second in total.
    Feed {
        #[arg(long, default_value_t = 9002)]
        port: u16,
        #[arg(long, default_value_t = 100)]
        symbols: usize,
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        /// Worker threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// Stop after this many seconds (default: run until killed).
        #[arg(long)]
        duration: Option<u64>,
    },
    /// Open `connections` subscriptions and report tick latency.
    Client {
        #[arg(long, default_value = "ws://127.0.0.1:9002/")]
        url: String,
        #[arg(long, default_value_t = 100)]
        connections: u64,
        /// Symbols per connection (connection i takes symbols i, i+1, …, modulo `symbols`).
        #[arg(long, default_value_t = 10)]
        per_connection: usize,
        /// Symbols the feed serves.
        #[arg(long, default_value_t = 100)]
        symbols: usize,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
}

fn symbol(i: usize) -> String {
    format!("S{i:04}")
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The feed's handler: `sub A,B,C` subscribes to those symbols' topics.
struct Feed;

impl Handler for Feed {
    type State = ();

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        if let Message::Text(text) = message {
            if let Some(list) = text.strip_prefix("sub ") {
                for sym in list.split(',').filter(|s| !s.is_empty()).take(10_000) {
                    conn.subscribe(&format!("ticks.{sym}"));
                }
                let _ = conn.send_text("subscribed");
            }
        }
    }
}

fn feed(
    port: u16,
    symbols: usize,
    rate: u64,
    threads: Option<usize>,
    duration: Option<u64>,
) -> std::io::Result<()> {
    let mut builder = Server::builder()
        .port(port)
        .topic_policy_for("ticks.", TopicPolicy::conflate_at(64 << 10));
    if let Some(t) = threads {
        builder = builder.threads(t);
    }
    let server = builder.start(|_| Feed)?;
    eprintln!(
        "market_feed: {} symbols, {} ticks/s, on ws://{}/",
        symbols,
        rate,
        server.local_addr()
    );
    let names: Vec<String> = (0..symbols).map(symbol).collect();
    let topics: Vec<String> = names.iter().map(|s| format!("ticks.{s}")).collect();
    let start = Instant::now();
    let mut sent = 0u64;
    let mut next_report = Duration::from_secs(1);
    let mut payload = String::with_capacity(128);
    loop {
        let elapsed = start.elapsed();
        if duration.is_some_and(|d| elapsed >= Duration::from_secs(d)) {
            break;
        }
        // Publish what the rate owes by now, then sleep a little (1 ms granularity).
        let due = (elapsed.as_secs_f64() * rate as f64) as u64;
        while sent < due {
            let i = (sent % symbols as u64) as usize;
            payload.clear();
            use std::fmt::Write as _;
            let _ = write!(
                payload,
                "{{\"s\":\"{}\",\"seq\":{},\"bid\":{:.2},\"ask\":{:.2},\"ts\":{}}}",
                names[i],
                sent,
                100.0 + (sent % 97) as f64 / 100.0,
                100.02 + (sent % 97) as f64 / 100.0,
                now_nanos()
            );
            let options = PublishOptions {
                key: Some(&names[i]),
                ..PublishOptions::default()
            };
            if server
                .publish_with(&topics[i], Message::Text(&payload), &options)
                .is_err()
            {
                return Ok(());
            }
            sent += 1;
        }
        if elapsed >= next_report {
            next_report += Duration::from_secs(1);
            let s = server.stats();
            eprintln!(
                "published {sent}, delivered {}, conflated {}, dropped {}, connections {}",
                s.delivered, s.conflated, s.delivery_dropped, s.connections
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    server.shutdown(Duration::from_secs(1));
    server.wait();
    Ok(())
}

/// Latencies in microseconds, kept by every worker of the client.
#[derive(Default)]
struct Samples {
    lat_us: Vec<u32>,
}

struct Subscriber {
    per_connection: usize,
    symbols: usize,
    samples: Arc<Mutex<Samples>>,
    local: Vec<u32>,
    received: Arc<AtomicU64>,
    measuring: Arc<AtomicBool>,
}

impl Handler for Subscriber {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        let first = conn.tag() as usize;
        let list: Vec<String> = (0..self.per_connection)
            .map(|k| symbol((first + k) % self.symbols))
            .collect();
        let _ = conn.send_text(&format!("sub {}", list.join(",")));
    }

    fn on_message(&mut self, _conn: &mut Conn<'_, ()>, message: Message<'_>) {
        let Message::Text(text) = message else {
            return;
        };
        let Some(ts) = text
            .rsplit_once("\"ts\":")
            .and_then(|(_, t)| t.trim_end_matches('}').parse::<u64>().ok())
        else {
            return;
        };
        if !self.measuring.load(Ordering::Relaxed) {
            return;
        }
        self.received.fetch_add(1, Ordering::Relaxed);
        let us = now_nanos().saturating_sub(ts) / 1000;
        self.local.push(us.min(u64::from(u32::MAX)) as u32);
        if self.local.len() >= 4096 {
            let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
            s.lat_us.append(&mut self.local);
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        s.lat_us.append(&mut self.local);
    }
}

fn client(
    url: &str,
    connections: u64,
    per_connection: usize,
    symbols: usize,
    duration: u64,
    threads: usize,
) -> std::io::Result<()> {
    let samples = Arc::new(Mutex::new(Samples::default()));
    let received = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let (s, r, m) = (samples.clone(), received.clone(), measuring.clone());
    let engine = Client::builder()
        .threads(threads)
        .idle_timeout(None)
        .start(move |_| Subscriber {
            per_connection,
            symbols,
            samples: s.clone(),
            local: Vec::new(),
            received: r.clone(),
            measuring: m.clone(),
        })?;
    for i in 0..connections {
        if let Err(e) = engine.connect(url, ClientOptions::default(), i) {
            eprintln!("market_feed client: {e}");
            std::process::exit(2);
        }
    }
    // Let the connections open and subscribe, then measure.
    std::thread::sleep(Duration::from_secs(2));
    let open = engine.stats().connections;
    measuring.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(duration));
    measuring.store(false, Ordering::Relaxed);
    engine.shutdown(Duration::from_secs(1));
    engine.wait();
    let mut lat = std::mem::take(&mut samples.lock().unwrap_or_else(|e| e.into_inner()).lat_us);
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let n = received.load(Ordering::Relaxed);
    println!(
        "{open} connections, {n} ticks in {duration} s ({:.0}/s); latency µs p50 {} p90 {} p99 {} p99.9 {} max {}",
        n as f64 / duration as f64,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
        lat.last().copied().unwrap_or(0)
    );
    Ok(())
}

fn main() -> std::io::Result<()> {
    match Args::parse().mode {
        Mode::Feed {
            port,
            symbols,
            rate,
            threads,
            duration,
        } => feed(port, symbols.max(1), rate, threads, duration),
        Mode::Client {
            url,
            connections,
            per_connection,
            symbols,
            duration,
            threads,
        } => client(
            &url,
            connections,
            per_connection,
            symbols.max(1),
            duration,
            threads,
        ),
    }
}

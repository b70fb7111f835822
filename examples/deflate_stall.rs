//! How much one connection echoing huge compressible messages stalls a worker's other
//! connections, with the deflate pool and without it.
//!
//! One server worker (`threads(1)`) serves 100 small connections (`--small`) (32-byte text echoes, one in
//! flight each, closed loop, driven by one engine-client thread) and one large connection (a
//! blocking client echoing 16 MiB of JSON-like text back to back: it sends uncompressed, the
//! server compresses the echo). Three modes, run in turn `--rounds` times:
//!
//! - `capped`: today's defaults without a pool: 16 MiB is over `max_compress_size` (4 MiB), so
//!   the echo goes out uncompressed;
//! - `inline`: `max_compress_size` raised to 64 MiB, no pool: the worker compresses the echo;
//! - `pooled`: the deflate pool (1 thread) compresses it.
//!
//! ```sh
//! cargo run --release --example deflate_stall -- --rounds 3 --seconds 4
//! ```
//!
//! Prints p50 / p99 / max of the small echoes' round trips and the large connection's echo
//! throughput (MiB/s of message, each way) per run, then the medians per mode.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wsx::blocking::Message as BMessage;
use wsx::client::ClientOptions;
use wsx::protocol::deflate::DeflateOptions;
use wsx::{Client, Conn, Handler, Message, Server};

const SMALL: &str = "0123456789abcdef0123456789abcdef";
const BIG: usize = 16 << 20;

struct Echo;

impl Handler for Echo {
    type State = ();
    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        let _ = conn.send(message);
    }
}

/// Shared by the small-connection driver and the main thread.
struct Probe {
    /// Round trips in microseconds, while `recording`.
    samples: Mutex<Vec<u32>>,
    recording: AtomicBool,
    stop: AtomicBool,
    open: AtomicU64,
}

/// Drives the small connections: each sends the next 32 bytes when the echo of the last comes.
struct Small(Arc<Probe>);

impl Handler for Small {
    type State = Option<Instant>;

    fn on_open(&mut self, conn: &mut Conn<'_, Self::State>) {
        self.0.open.fetch_add(1, Ordering::AcqRel);
        *conn.state_mut() = Some(Instant::now());
        let _ = conn.send_text(SMALL);
    }

    fn on_message(&mut self, conn: &mut Conn<'_, Self::State>, _message: Message<'_>) {
        if let Some(sent) = conn.state_mut().take() {
            if self.0.recording.load(Ordering::Acquire) {
                let us = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                self.0
                    .samples
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(us);
            }
        }
        if self.0.stop.load(Ordering::Acquire) {
            let _ = conn.close(wsx::CloseCode::NORMAL, "");
            return;
        }
        *conn.state_mut() = Some(Instant::now());
        let _ = conn.send_text(SMALL);
    }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Capped,
    Inline,
    Pooled,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    p50: u32,
    p99: u32,
    max: u32,
    samples: usize,
    mib_s: f64,
}

fn json(len: usize) -> String {
    let mut s = String::with_capacity(len + 64);
    let mut i = 0u64;
    while s.len() < len {
        s.push_str(&format!(
            "{{\"id\":{i},\"sym\":\"S{}\",\"px\":{}.{:02},\"qty\":{},\"side\":\"{}\"}},",
            i % 500,
            100 + i % 37,
            i % 100,
            1 + i % 13,
            if i % 2 == 0 { "bid" } else { "ask" }
        ));
        i += 1;
    }
    s.truncate(len);
    s
}

fn run(mode: Mode, seconds: u64, small: usize, big: &Arc<String>) -> Run {
    let mut builder = Server::builder()
        .host("127.0.0.1")
        .port(0)
        .threads(1)
        .pin_threads(false);
    builder = match mode {
        Mode::Capped => builder
            .deflate_threads(0)
            .deflate(DeflateOptions::default()),
        Mode::Inline => builder.deflate_threads(0).deflate(DeflateOptions {
            max_compress_size: 64 << 20,
            ..DeflateOptions::default()
        }),
        Mode::Pooled => builder
            .deflate_threads(1)
            .deflate(DeflateOptions::default()),
    };
    let server = builder.start(|_| Echo).expect("server starts");
    let url = format!("ws://{}/", server.local_addr());

    // The large connection: echoes until told to stop.
    let stop_big = Arc::new(AtomicBool::new(false));
    let echoed = Arc::new(AtomicU64::new(0));
    let big_thread = {
        let (url, big, stop, echoed) = (url.clone(), big.clone(), stop_big.clone(), echoed.clone());
        std::thread::spawn(move || {
            let options = ClientOptions::new()
                .no_proxy()
                .deflate(DeflateOptions::default());
            let mut ws = wsx::blocking::connect_with(&url, &options).expect("big connects");
            ws.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            while !stop.load(Ordering::Acquire) {
                ws.send_text(&big).expect("big sends");
                match ws.recv() {
                    Ok(BMessage::Text(t)) => assert_eq!(t.len(), big.len()),
                    other => panic!("big echo: {other:?}"),
                }
                echoed.fetch_add(1, Ordering::AcqRel);
            }
            let _ = ws.close(wsx::CloseCode::NORMAL, "");
        })
    };
    // Wait for one big echo, so that the measurement starts in the steady state.
    let deadline = Instant::now() + Duration::from_secs(60);
    while echoed.load(Ordering::Acquire) == 0 {
        assert!(Instant::now() < deadline, "no big echo within 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }

    let probe = Arc::new(Probe {
        samples: Mutex::new(Vec::with_capacity(1 << 20)),
        recording: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        open: AtomicU64::new(0),
    });
    let p = probe.clone();
    let client = Client::builder()
        .threads(1)
        .pin_threads(false)
        .start(move |_| Small(p.clone()))
        .expect("client engine starts");
    for i in 0..small {
        client
            .connect(&url, ClientOptions::new().no_proxy(), i as u64)
            .expect("connect");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while probe.open.load(Ordering::Acquire) < small as u64 {
        assert!(
            Instant::now() < deadline,
            "small connections open within 30 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));

    let before = echoed.load(Ordering::Acquire);
    let start = Instant::now();
    probe.recording.store(true, Ordering::Release);
    std::thread::sleep(Duration::from_secs(seconds));
    probe.recording.store(false, Ordering::Release);
    let elapsed = start.elapsed().as_secs_f64();
    let done = echoed.load(Ordering::Acquire) - before;

    probe.stop.store(true, Ordering::Release);
    stop_big.store(true, Ordering::Release);
    let _ = big_thread.join();
    client.shutdown(Duration::from_secs(1));
    client.wait();
    server.shutdown(Duration::from_secs(1));
    server.wait();

    let mut samples = std::mem::take(&mut *probe.samples.lock().unwrap_or_else(|e| e.into_inner()));
    samples.sort_unstable();
    let at = |q: f64| -> u32 {
        if samples.is_empty() {
            return 0;
        }
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i]
    };
    Run {
        p50: at(0.50),
        p99: at(0.99),
        max: samples.last().copied().unwrap_or(0),
        samples: samples.len(),
        mib_s: done as f64 * (BIG as f64 / (1 << 20) as f64) / elapsed,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    let mut rounds = 3;
    let mut seconds = 4;
    let mut small = 100;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = args.next().and_then(|v| v.parse().ok()).unwrap_or(rounds),
            "--seconds" => seconds = args.next().and_then(|v| v.parse().ok()).unwrap_or(seconds),
            "--small" => small = args.next().and_then(|v| v.parse().ok()).unwrap_or(small),
            other => {
                eprintln!(
                    "usage: deflate_stall [--rounds N] [--seconds S] [--small CONNS] (got {other})"
                );
                std::process::exit(2);
            }
        }
    }
    let big = Arc::new(json(BIG));
    let modes = [Mode::Capped, Mode::Inline, Mode::Pooled];
    let mut results: Vec<(Mode, Run)> = Vec::new();
    println!("mode    round  p50_us  p99_us  max_us  samples  big_MiB/s");
    for round in 1..=rounds {
        for mode in modes {
            let r = run(mode, seconds, small, &big);
            println!(
                "{:<7} {round:>5} {:>7} {:>7} {:>7} {:>8} {:>10.1}",
                format!("{mode:?}").to_lowercase(),
                r.p50,
                r.p99,
                r.max,
                r.samples,
                r.mib_s
            );
            results.push((mode, r));
        }
    }
    println!("\nmedians over {rounds} rounds of {seconds} s:");
    println!("| mode | p50 µs | p99 µs | max µs | small echoes/s | big MiB/s |");
    println!("|---|---:|---:|---:|---:|---:|");
    for mode in modes {
        let of = |f: fn(&Run) -> f64| {
            median(
                results
                    .iter()
                    .filter(|(m, _)| std::mem::discriminant(m) == std::mem::discriminant(&mode))
                    .map(|(_, r)| f(r))
                    .collect(),
            )
        };
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} |",
            format!("{mode:?}").to_lowercase(),
            of(|r| f64::from(r.p50)),
            of(|r| f64::from(r.p99)),
            of(|r| f64::from(r.max)),
            of(|r| r.samples as f64) / seconds as f64,
            of(|r| r.mib_s),
        );
    }
}

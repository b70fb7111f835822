//! Measures the NATS backplane: N nodes (one worker each) in this process behind one
//! `nats-server`, S subscribers of one topic on each (engine clients, one more thread), a
//! publisher on node 0 at a fixed rate stamping each message with the time it was published.
//! Prints, per node, the delivery latency p50/p99/max (node 0's are local deliveries, the
//! others' cross NATS), the CPU of each node's worker per delivery, and the NATS threads' CPU.
//! Each node also has one probe subscriber, connected before the others and read by a thread
//! of its own: its latency is the node's path without the wait in the shared client threads,
//! and the probes' difference is what crossing NATS adds. `--flood` publishes as fast as the
//! backplane takes it instead and prints the ceiling.
//!
//! ```sh
//! nats-server -a 127.0.0.1 -p 4222 &
//! cargo run --release --features nats --example cluster_bench -- --nats nats://127.0.0.1:4222 --nodes 3
//! cargo run --release --features nats --example cluster_bench -- --nats nats://127.0.0.1:4222 --nodes 1
//! cargo run --release --features nats --example cluster_bench -- --nats nats://127.0.0.1:4222 --nodes 2 --subscribers 1 --flood
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use clap::Parser;
use wsx::client::ClientOptions;
use wsx::cluster::NatsBackplane;
use wsx::{Client, Conn, Handler, Message, Server, ServerHandle, Tick};

#[derive(Parser)]
#[command(about = "Latency, CPU and ceiling of the NATS backplane")]
struct Args {
    #[arg(long)]
    nats: String,
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Subscribers per node.
    #[arg(long, default_value_t = 1000)]
    subscribers: u64,
    /// Publishes per second (on node 0).
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Seconds of measurement.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Publish as fast as possible and report what crossed.
    #[arg(long)]
    flood: bool,
    /// Measure NATS alone instead: one async-nats publisher and one subscriber, each on a
    /// thread and runtime of its own, at `--rate` for `--duration`: the floor under a
    /// cross-node delivery on this machine.
    #[arg(long)]
    floor: bool,
    /// Threads of the client that reads the subscribers (the probes have their own).
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
}

/// The time every timestamp counts from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// CPU time of the calling thread, in µs.
fn thread_cpu_us() -> u64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `ru` is a valid, writable rusage; RUSAGE_THREAD reads the calling thread.
    #[allow(unsafe_code)]
    let ru = unsafe {
        libc::getrusage(libc::RUSAGE_THREAD, ru.as_mut_ptr());
        ru.assume_init()
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

/// CPU time of this process's threads named `name`, in µs (from /proc).
fn threads_cpu_us(name: &str) -> u64 {
    let tick_us = 1_000_000 / 100; // USER_HZ
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = after.split_whitespace().collect();
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        total += (n(11) + n(12)) * tick_us; // utime, stime
    }
    total
}

/// A node: path `/T` subscribes to T; its worker reports its CPU on each tick.
struct Node {
    cpu: Arc<AtomicU64>,
}

impl Handler for Node {
    type State = ();
    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        conn.subscribe("bench");
    }
    fn on_tick(&mut self, _tick: &mut Tick<'_, ()>) {
        self.cpu.store(thread_cpu_us(), Ordering::Relaxed);
    }
}

/// Latency samples (µs) per node, by the connection's tag.
struct Sub {
    lat: Arc<Vec<Mutex<Vec<u32>>>>,
}

impl Handler for Sub {
    type State = ();
    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        let Message::Text(t) = message else { return };
        let Ok(sent) = t.parse::<u64>() else { return };
        let now = epoch().elapsed().as_micros() as u64;
        let node = conn.tag() as usize;
        if let Some(l) = self.lat.get(node) {
            l.lock()
                .unwrap()
                .push(now.saturating_sub(sent).min(u32::MAX as u64) as u32);
        }
    }
}

/// The nearest-rank percentile `p` of sorted samples (0 when there are none).
fn pct(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// A probe subscriber of `url` on a thread of its own: the latency of every message it gets
/// until `stop`, in µs.
fn probe(
    url: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<u32>> {
    use wsx::blocking::Message as Got;
    let options = ClientOptions::new().no_proxy();
    let mut ws = wsx::blocking::connect_with(&url, &options).expect("probe connects");
    ws.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    std::thread::spawn(move || {
        let mut lat = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            match ws.recv() {
                Ok(Got::Text(t)) => {
                    let now = epoch().elapsed().as_micros() as u64;
                    if let Ok(sent) = t.parse::<u64>() {
                        lat.push(now.saturating_sub(sent).min(u32::MAX as u64) as u32);
                    }
                }
                Ok(_) => {}
                Err(wsx::client::ClientError::Timeout) => {}
                Err(_) => break,
            }
        }
        lat
    })
}

/// `--floor`: NATS's own publish-to-delivery latency between two connections.
fn floor(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    let url = args.nats.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let until = stop.clone();
    let subscriber = std::thread::spawn(move || -> Vec<u32> {
        let rt = runtime().expect("runtime");
        rt.block_on(async move {
            let client = async_nats::connect(url).await.expect("subscriber connects");
            let mut sub = client.subscribe("floor").await.expect("subscribe");
            client.flush().await.expect("flush");
            ready_tx.send(()).expect("ready");
            let mut lat = Vec::new();
            loop {
                let next = std::future::poll_fn(|cx| {
                    futures_core::Stream::poll_next(std::pin::Pin::new(&mut sub), cx)
                });
                match tokio::time::timeout(Duration::from_millis(200), next).await {
                    Ok(Some(m)) => {
                        let now = epoch().elapsed().as_micros() as u64;
                        if let Some(sent) = std::str::from_utf8(&m.payload)
                            .ok()
                            .and_then(|t| t.parse::<u64>().ok())
                        {
                            lat.push(now.saturating_sub(sent).min(u32::MAX as u64) as u32);
                        }
                    }
                    Ok(None) => break,
                    Err(_) if until.load(Ordering::Relaxed) => break,
                    Err(_) => {}
                }
            }
            lat
        })
    });
    ready_rx.recv()?;
    let rt = runtime()?;
    let sent = rt.block_on(async {
        let client = async_nats::connect(args.nats.clone()).await?;
        let start = Instant::now();
        let end = start + Duration::from_secs(args.duration);
        let mut sent = 0u64;
        while Instant::now() < end {
            let due = start + Duration::from_secs_f64(sent as f64 / args.rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                tokio::time::sleep(wait).await;
            }
            let now = epoch().elapsed().as_micros() as u64;
            client.publish("floor", now.to_string().into()).await?;
            sent += 1;
        }
        client.flush().await?;
        Ok::<u64, Box<dyn std::error::Error>>(sent)
    })?;
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let mut lat = subscriber.join().expect("subscriber thread");
    lat.sort_unstable();
    println!(
        "NATS alone: {sent} publishes at {}/s, {} received, latency p50 {} µs p99 {} µs max {} µs",
        args.rate,
        lat.len(),
        pct(&lat, 0.50),
        pct(&lat, 0.99),
        lat.last().copied().unwrap_or(0)
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    epoch();
    if args.floor {
        return floor(&args);
    }
    let mut nodes: Vec<(ServerHandle, Arc<AtomicU64>)> = Vec::new();
    for i in 0..args.nodes {
        let cpu = Arc::new(AtomicU64::new(0));
        let c = cpu.clone();
        let nats = NatsBackplane::new([args.nats.clone()]).node_name(format!("bench-{i}"));
        let server = Server::builder()
            .host("127.0.0.1")
            .port(0)
            .threads(1)
            .pin_threads(false)
            .tick(Duration::from_millis(100))
            .idle_timeout(None)
            .backplane(nats)
            .start(move |_| Node { cpu: c.clone() })?;
        nodes.push((server, cpu));
    }
    let lat: Arc<Vec<Mutex<Vec<u32>>>> =
        Arc::new((0..args.nodes).map(|_| Mutex::new(Vec::new())).collect());
    let l = lat.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probes: Vec<_> = nodes
        .iter()
        .map(|(n, _)| probe(format!("ws://{}/bench", n.local_addr()), stop.clone()))
        .collect();
    let clients = Client::builder()
        .threads(args.client_threads.max(1))
        .pin_threads(false)
        .idle_timeout(None)
        .start(move |_| Sub { lat: l.clone() })?;
    for (i, (n, _)) in nodes.iter().enumerate() {
        let url = format!("ws://{}/bench", n.local_addr());
        for _ in 0..args.subscribers {
            clients.connect(&url, ClientOptions::default(), i as u64)?;
        }
    }
    let ready = Instant::now();
    while nodes.iter().any(|(n, _)| {
        n.subscribers("bench") < args.subscribers + 1
            || n.backplane_stats()
                .map_or(true, |s| s.subscriptions == 0 || !s.connected)
    }) {
        if ready.elapsed() > Duration::from_secs(60) {
            return Err("subscribers did not all connect within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The SUBs reach the NATS server right after the nodes count them.
    std::thread::sleep(Duration::from_millis(500));
    for l in lat.iter() {
        l.lock().unwrap().clear();
    }
    let cpu0: Vec<u64> = nodes
        .iter()
        .map(|(_, c)| c.load(Ordering::Relaxed))
        .collect();
    let nats0 = threads_cpu_us("wsx-nats");
    let start = Instant::now();
    let end = start + Duration::from_secs(args.duration);
    let publisher = &nodes[0].0;
    let mut sent = 0u64;
    while Instant::now() < end {
        if !args.flood {
            let due = start + Duration::from_secs_f64(sent as f64 / args.rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let now = epoch().elapsed().as_micros() as u64;
        let _ = publisher.publish("bench", Message::Text(&now.to_string()));
        sent += 1;
    }
    // Let the last ones arrive.
    std::thread::sleep(Duration::from_millis(1000));
    let secs = start.elapsed().as_secs_f64() - 1.0;
    let nats_cpu = threads_cpu_us("wsx-nats") - nats0;
    stop.store(true, Ordering::Relaxed);
    let probed: Vec<Vec<u32>> = probes
        .into_iter()
        .map(|p| {
            let mut l = p.join().expect("probe thread");
            l.sort_unstable();
            l
        })
        .collect();
    println!(
        "nodes {} × {} subscribers, {} publishes on node 0 in {:.1} s ({:.0}/s){}",
        args.nodes,
        args.subscribers,
        sent,
        secs,
        sent as f64 / secs,
        if args.flood { ", flood" } else { "" }
    );
    let mut deliveries = 0;
    for (i, (n, cpu)) in nodes.iter().enumerate() {
        let mut l = std::mem::take(&mut *lat[i].lock().unwrap());
        l.sort_unstable();
        deliveries += l.len() as u64;
        let p = &probed[i];
        let worker_cpu = cpu.load(Ordering::Relaxed) - cpu0[i];
        let s = n.backplane_stats().unwrap_or_default();
        println!(
            "node {i} ({}): {} deliveries, latency p50 {} µs p99 {} µs max {} µs; probe {} messages, p50 {} µs p99 {} µs max {} µs; worker CPU {:.2} µs per delivery; backplane published {} dropped {}, from NATS {} received {} lost at the receive queue {} (slow_consumer events {})",
            if i == 0 { "local" } else { "across NATS" },
            l.len(),
            pct(&l, 0.50),
            pct(&l, 0.99),
            l.last().copied().unwrap_or(0),
            p.len(),
            pct(p, 0.50),
            pct(p, 0.99),
            p.last().copied().unwrap_or(0),
            worker_cpu as f64 / (l.len() + p.len()).max(1) as f64,
            s.published,
            s.dropped_backlog + s.dropped_disconnected,
            s.from_nats,
            s.received,
            s.from_nats
                - (s.received
                    + s.own_skipped
                    + s.refused_oversize
                    + s.refused_invalid
                    + s.unsubscribed),
            s.slow_consumer,
        );
    }
    for (i, p) in probed.iter().enumerate().skip(1) {
        let added = |q: f64| i64::from(pct(p, q)) - i64::from(pct(&probed[0], q));
        println!(
            "crossing NATS to node {i} adds (probe vs node 0's probe): p50 {} µs, p99 {} µs",
            added(0.50),
            added(0.99)
        );
    }
    println!(
        "NATS threads: {:.1} ms CPU, {:.2} µs per delivery, {:.2} µs per publish and node",
        nats_cpu as f64 / 1000.0,
        nats_cpu as f64 / deliveries.max(1) as f64,
        nats_cpu as f64 / (sent.max(1) * args.nodes as u64) as f64
    );
    clients.shutdown(Duration::ZERO);
    for (n, _) in &nodes {
        n.shutdown(Duration::ZERO);
        n.wait();
    }
    clients.wait();
    Ok(())
}

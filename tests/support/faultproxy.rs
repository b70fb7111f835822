//! A fault-injecting TCP proxy for tests, after Toxiproxy's model: it listens on 127.0.0.1:0,
//! opens one upstream connection per accepted client and forwards bytes both ways, applying
//! per direction the faults set through its [`FaultProxy`] handle at run time:
//!
//! - latency with jitter (each chunk read waits `latency ± jitter` before it is written),
//! - a bandwidth limit in bytes per second,
//! - writes cut into 1-byte pieces,
//! - silence: stop forwarding (and reading) without closing,
//! - a reset after N more bytes: both sockets closed with `SO_LINGER` 0 (RST),
//! - a half-close after N more bytes: `shutdown(Write)` towards the receiver.
//!
//! It counts the bytes forwarded each way and stops its threads on drop (each pump wakes at
//! least every [`TICK`] to look at the faults and the stop flag).

// Each test file uses part of it.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often an idle pump looks at its faults and the stop flag.
const TICK: Duration = Duration::from_millis(5);

/// A direction through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    /// From the client to the server.
    Up,
    /// From the server to the client.
    Down,
}

/// The faults of one direction.
#[derive(Debug, Clone, Default)]
pub(crate) struct Faults {
    /// Delay of each chunk before it is written.
    pub(crate) latency: Duration,
    /// Up to this much is added to or taken from `latency`, at random per chunk.
    pub(crate) jitter: Duration,
    /// Bytes per second at most; `None` for no limit.
    pub(crate) bandwidth: Option<u64>,
    /// Whether every write carries one byte.
    pub(crate) one_byte_writes: bool,
    /// Whether forwarding has stopped (the connection stays open).
    pub(crate) silent: bool,
    /// Reset both sockets once this many more bytes went this way.
    pub(crate) reset_after: Option<u64>,
    /// Shut down the receiver's write side once this many more bytes went this way.
    pub(crate) half_close_after: Option<u64>,
}

#[derive(Debug, Default)]
struct Settings {
    up: Faults,
    down: Faults,
    /// Bumped on every change, so that a pump counts "N more bytes" from the change it saw.
    generation: u64,
}

#[derive(Debug, Default)]
struct Shared {
    settings: Mutex<Settings>,
    stop: AtomicBool,
    up_bytes: AtomicU64,
    down_bytes: AtomicU64,
    /// Proxied connections whose pumps have not all ended.
    open: AtomicUsize,
    accepted: AtomicUsize,
}

impl Shared {
    fn faults(&self, dir: Dir) -> (Faults, u64) {
        let s = self.settings.lock().unwrap_or_else(|e| e.into_inner());
        let f = match dir {
            Dir::Up => s.up.clone(),
            Dir::Down => s.down.clone(),
        };
        (f, s.generation)
    }

    fn counter(&self, dir: Dir) -> &AtomicU64 {
        match dir {
            Dir::Up => &self.up_bytes,
            Dir::Down => &self.down_bytes,
        }
    }
}

/// The proxy and its handle: set faults, read counters; dropping it stops every thread.
#[derive(Debug)]
pub(crate) struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
    pumps: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1:0 that forwards to `upstream`.
    ///
    /// # Panics
    ///
    /// When it cannot bind.
    pub(crate) fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy binds");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared::default());
        let pumps: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let acceptor = {
            let shared = shared.clone();
            let pumps = pumps.clone();
            std::thread::spawn(move || accept_loop(listener, upstream, shared, pumps))
        };
        FaultProxy {
            addr,
            shared,
            acceptor: Some(acceptor),
            pumps,
        }
    }

    /// Where clients connect.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the faults of `dir`.
    pub(crate) fn set(&self, dir: Dir, faults: Faults) {
        self.update(dir, |f| *f = faults);
    }

    /// Changes the faults of `dir` in place.
    pub(crate) fn update(&self, dir: Dir, change: impl FnOnce(&mut Faults)) {
        let mut s = self
            .shared
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match dir {
            Dir::Up => change(&mut s.up),
            Dir::Down => change(&mut s.down),
        }
        s.generation += 1;
    }

    /// Applies `faults` both ways.
    pub(crate) fn set_both(&self, faults: Faults) {
        self.set(Dir::Up, faults.clone());
        self.set(Dir::Down, faults);
    }

    /// Stops forwarding both ways (or resumes), without closing anything.
    pub(crate) fn silence(&self, on: bool) {
        self.update(Dir::Up, |f| f.silent = on);
        self.update(Dir::Down, |f| f.silent = on);
    }

    /// Bytes forwarded in `dir` so far, over all connections.
    pub(crate) fn bytes(&self, dir: Dir) -> u64 {
        self.shared.counter(dir).load(Ordering::SeqCst)
    }

    /// Proxied connections still open (either direction still forwarding).
    pub(crate) fn open(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub(crate) fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        let pumps = std::mem::take(&mut *self.pumps.lock().unwrap_or_else(|e| e.into_inner()));
        for p in pumps {
            let _ = p.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    pumps: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    while !shared.stop.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(TICK);
                continue;
            }
            Err(_) => continue,
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5)) else {
            let _ = reset(&client);
            continue;
        };
        let _ = client.set_nonblocking(false);
        for s in [&client, &server] {
            let _ = s.set_nodelay(true);
            let _ = s.set_read_timeout(Some(TICK));
        }
        let clones = (
            client.try_clone(),
            server.try_clone(),
            client.try_clone(),
            server.try_clone(),
        );
        let (Ok(c_read), Ok(s_write), Ok(c_write), Ok(s_read)) = clones else {
            continue;
        };
        let conn = Arc::new(ConnPair {
            client,
            server,
            ended: AtomicBool::new(false),
            pumps_left: AtomicUsize::new(2),
        });
        shared.open.fetch_add(1, Ordering::SeqCst);
        let mut list = pumps.lock().unwrap_or_else(|e| e.into_inner());
        // Join the pumps of connections that have ended, so that their threads' stacks are
        // freed as connections come and go (a test that counts memory would see them).
        let (ended, running): (Vec<_>, Vec<_>) = list.drain(..).partition(|p| p.is_finished());
        for pump in ended {
            let _ = pump.join();
        }
        *list = running;
        for (dir, src, dst) in [(Dir::Up, c_read, s_write), (Dir::Down, s_read, c_write)] {
            let shared = shared.clone();
            let conn = conn.clone();
            list.push(std::thread::spawn(move || {
                pump(dir, src, dst, &shared, &conn)
            }));
        }
    }
}

/// One proxied connection: both sockets, shared by its two pumps.
#[derive(Debug)]
struct ConnPair {
    client: TcpStream,
    server: TcpStream,
    /// Set when a pump reset the connection: the other one ends too.
    ended: AtomicBool,
    pumps_left: AtomicUsize,
}

fn reset(s: &TcpStream) -> io::Result<()> {
    socket2::SockRef::from(s).set_linger(Some(Duration::ZERO))?;
    s.shutdown(Shutdown::Both)
}

/// A small xorshift generator for jitter (no need for a good one).
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn pump(dir: Dir, mut src: TcpStream, mut dst: TcpStream, shared: &Shared, conn: &ConnPair) {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (Instant::now().elapsed().as_nanos() as u64 | 1);
    let mut buf = vec![0u8; 16 << 10];
    let mut seen_generation = u64::MAX;
    // Bytes left before a reset or a half-close, counted from the change that set them.
    let mut reset_left: Option<u64> = None;
    let mut half_left: Option<u64> = None;
    'run: loop {
        if shared.stop.load(Ordering::SeqCst) || conn.ended.load(Ordering::SeqCst) {
            break;
        }
        let (faults, generation) = shared.faults(dir);
        if generation != seen_generation {
            seen_generation = generation;
            reset_left = faults.reset_after;
            half_left = faults.half_close_after;
        }
        if reset_left == Some(0) {
            let _ = reset(&conn.client);
            let _ = reset(&conn.server);
            conn.ended.store(true, Ordering::SeqCst);
            break;
        }
        if half_left == Some(0) {
            let _ = dst.shutdown(Shutdown::Write);
            break;
        }
        if faults.silent {
            std::thread::sleep(TICK);
            continue;
        }
        let mut want = buf.len();
        for left in [reset_left, half_left].into_iter().flatten() {
            want = want.min(usize::try_from(left).unwrap_or(usize::MAX));
        }
        let n = match src.read(&mut buf[..want]) {
            Ok(0) => {
                let _ = dst.shutdown(Shutdown::Write);
                break;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => {
                // The reader's side was reset: pass the reset on.
                let _ = reset(&dst);
                conn.ended.store(true, Ordering::SeqCst);
                break;
            }
        };
        // Silenced while this read was under way: hold what it read.
        let mut faults = shared.faults(dir).0;
        while faults.silent {
            if shared.stop.load(Ordering::SeqCst) || conn.ended.load(Ordering::SeqCst) {
                break 'run;
            }
            std::thread::sleep(TICK);
            faults = shared.faults(dir).0;
        }
        let mut delay = faults.latency;
        if !faults.jitter.is_zero() {
            let span = faults.jitter.as_micros() as u64;
            let r = next_random(&mut rng) % (2 * span + 1);
            delay = (delay + Duration::from_micros(r)).saturating_sub(faults.jitter);
        }
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let piece = if faults.one_byte_writes { 1 } else { n };
        for chunk in buf[..n].chunks(piece) {
            let started = Instant::now();
            if dst.write_all(chunk).is_err() {
                let _ = reset(&src);
                conn.ended.store(true, Ordering::SeqCst);
                break 'run;
            }
            shared
                .counter(dir)
                .fetch_add(chunk.len() as u64, Ordering::SeqCst);
            if let Some(rate) = faults.bandwidth.filter(|r| *r > 0) {
                let due = Duration::from_secs_f64(chunk.len() as f64 / rate as f64);
                if let Some(rest) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
        }
        for left in [&mut reset_left, &mut half_left].into_iter().flatten() {
            *left = left.saturating_sub(n as u64);
        }
    }
    if conn.pumps_left.fetch_sub(1, Ordering::SeqCst) == 1 {
        shared.open.fetch_sub(1, Ordering::SeqCst);
    }
}

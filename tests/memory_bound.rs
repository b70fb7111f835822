//! The per-connection memory bound: a peer that sends without reading can make the server hold
//! at most `max(max_buffered, one frame) + one read's control frames` of unwritten output
//! (`docs/server.md`, "Backpressure"). The server stops reading from it (its writes block),
//! serves the other connections of the worker meanwhile, and once the peer reads, it gets every
//! message that was not dropped, in order, and every pong it is owed.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{start_server, stop, Client, Echo, Ev};
use wsx::protocol::{Config, Connection, Event, Role};
use wsx::{Backend, Server, ServerHandle};

/// The read allowance of the bound: the pongs (and a close frame, a heartbeat ping) answering
/// one read of the worker's 256 KiB buffer plus a 139-byte residue, on a server connection.
const ONE_READ: u64 = (256 << 10) + 400;

/// Generous bound on a whole test: it only decides how long a broken server takes to fail.
const LONG: Duration = Duration::from_secs(30);

/// A non-blocking client speaking raw frames, so that the test sees `WouldBlock`.
struct Raw {
    stream: TcpStream,
    parser: Connection,
    rbuf: Vec<u8>,
    /// Bytes to write.
    out: Vec<u8>,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let mut stream = TcpStream::connect_timeout(&addr, common::TIMEOUT).expect("connect");
        stream
            .set_read_timeout(Some(common::TIMEOUT))
            .expect("read timeout");
        stream
            .write_all(&common::upgrade_head("/", &[]))
            .expect("write the upgrade request");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(stream.read(&mut byte).expect("read the 101"), 1, "eof");
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
        stream.set_nonblocking(true).expect("non-blocking");
        Raw {
            stream,
            parser: Connection::new(
                Role::Client,
                Config {
                    auto_pong: false,
                    ..Config::default()
                },
            ),
            rbuf: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Queues bytes to write.
    fn queue(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Writes what is queued until done or `WouldBlock`; returns whether it blocked.
    fn flush(&mut self) -> bool {
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("write: {e}"),
            }
        }
        false
    }

    /// Reads what is there (without blocking) and returns the frames' events: `(is_pong,
    /// payload)`.
    fn read_events(&mut self) -> Vec<(bool, Vec<u8>)> {
        let mut chunk = vec![0u8; 256 << 10];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("the server closed the connection"),
                Ok(n) => self.rbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("read: {e}"),
            }
        }
        let mut events = Vec::new();
        loop {
            let read = self
                .parser
                .handle_read(&mut self.rbuf)
                .expect("the server speaks the protocol");
            let consumed = read.consumed;
            let event = match read.event {
                Some(Event::Binary(b)) => Some((false, b.to_vec())),
                Some(Event::Pong(p)) => Some((true, p.to_vec())),
                Some(other) => panic!("unexpected {other:?}"),
                None => None,
            };
            self.rbuf.drain(..consumed);
            match event {
                Some(e) => events.push(e),
                None if consumed == 0 || self.rbuf.is_empty() => return events,
                None => {}
            }
        }
    }
}

/// Message `seq`: `len` bytes, the sequence number first, then a pattern that depends on it.
fn message(seq: u32, len: usize) -> Vec<u8> {
    let mut m: Vec<u8> = (0..len).map(|i| (i as u32 ^ seq) as u8).collect();
    m[..4].copy_from_slice(&seq.to_be_bytes());
    m
}

fn check(seq: u32, len: usize, data: &[u8]) {
    assert_eq!(data.len(), len, "message {seq} has its length");
    assert!(data == message(seq, len), "message {seq} intact");
}

/// Waits (bounded) until the server reports `n` paused connections.
fn wait_paused(server: &ServerHandle, n: u64) -> bool {
    common::wait_until(LONG, || server.footprint().paused == n)
}

test_all!(a_peer_that_sends_without_reading_is_paused_and_bounded);
fn a_peer_that_sends_without_reading_is_paused_and_bounded(backend: Backend) {
    const MAX_BUFFERED: usize = 1 << 20;
    const SMALL: usize = 256 << 10;
    /// Larger than `max_buffered`: admitted only when nothing is unwritten.
    const LARGE: usize = 3 << 19;
    const COUNT: u32 = 48; // 48 MiB sent: far past what the kernel's buffers hold
    let len = |seq: u32| if seq % 2 == 0 { SMALL } else { LARGE };
    let server = start_server(
        backend,
        Server::builder().threads(1).max_buffered(MAX_BUFFERED),
        |_| Echo,
    );
    let mut slow = Raw::connect(server.local_addr());
    let mut fast = Client::connect(server.local_addr());

    // Send until the writes block and the server says it stopped reading.
    let deadline = Instant::now() + LONG;
    let mut next = 0;
    let blocked = loop {
        if slow.out.is_empty() && next < COUNT {
            slow.queue(&common::masked(true, 0x2, &message(next, len(next))));
            next += 1;
        }
        if slow.flush() && server.footprint().paused == 1 {
            break true;
        }
        if slow.out.is_empty() && next == COUNT {
            break false;
        }
        assert!(Instant::now() < deadline, "no progress");
        if !slow.out.is_empty() {
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    assert!(
        blocked,
        "all {COUNT} messages went in: the server never stopped reading"
    );
    let before = server.stats().bytes_in;

    // The other client on the same worker is served promptly meanwhile.
    let mut fast_bytes = 0;
    for i in 0..20 {
        let text = format!("fast {i}");
        fast_bytes += text.len() as u64 + 6;
        fast.send_text(&text);
        assert_eq!(fast.recv(), Some(Ev::Text(text)));
    }
    // The slow peer's writes still block: the server read nothing more from it.
    assert!(slow.flush(), "the slow peer's writes went through");
    assert!(
        common::wait_until(LONG, || server.stats().bytes_in >= before + fast_bytes),
        "the fast client's bytes were read"
    );
    assert_eq!(
        server.stats().bytes_in,
        before + fast_bytes,
        "the server read only the fast client while the slow one was paused"
    );

    let bound = MAX_BUFFERED.max(LARGE + 14) as u64 + ONE_READ;
    let footprint = server.footprint();
    assert!(
        footprint.conn_queued_peak <= bound && footprint.conn_queued_peak > 0,
        "one connection's queue peaked at {} bytes (bound {bound})",
        footprint.conn_queued_peak
    );

    // Now read (and send the rest): every message not dropped arrives, in order, intact.
    let mut got = Vec::new();
    let deadline = Instant::now() + LONG;
    loop {
        for (pong, data) in slow.read_events() {
            assert!(!pong, "no pong was asked for");
            let seq = u32::from_be_bytes(data[..4].try_into().unwrap());
            check(seq, len(seq), &data);
            assert!(
                got.last().map_or(true, |&last| last < seq),
                "in order: {seq} after {got:?}"
            );
            got.push(seq);
        }
        if slow.out.is_empty() && next < COUNT {
            slow.queue(&common::masked(true, 0x2, &message(next, len(next))));
            next += 1;
        }
        slow.flush();
        let done = next == COUNT && slow.out.is_empty();
        if done && got.len() as u64 + server.stats().dropped == u64::from(COUNT) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "got {} of {COUNT} messages, {} dropped",
            got.len(),
            server.stats().dropped
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // Drops are possible (an echo that did not fit while the queue was not yet over the
    // limit), not required: the pause keeps most requests unread instead.
    eprintln!(
        "{} of {COUNT} echoed, {} dropped, queue peak {} bytes (bound {bound})",
        got.len(),
        server.stats().dropped,
        server.footprint().conn_queued_peak
    );
    assert!(
        server.footprint().conn_queued_peak <= bound,
        "bound held to the end: {}",
        server.footprint().conn_queued_peak
    );
    assert!(wait_paused(&server, 0), "reading resumed");
    stop(&server);
}

test_all!(a_ping_flood_gets_every_pong_once_the_peer_reads);
fn a_ping_flood_gets_every_pong_once_the_peer_reads(backend: Backend) {
    const LIMIT: usize = 64 << 10;
    const PINGS: u64 = 100_000; // 13 MB of pongs owed: far past the kernel's socket buffers
    let server = start_server(
        backend,
        Server::builder().threads(1).max_buffered(LIMIT),
        |_| Echo,
    );
    let mut flooder = Raw::connect(server.local_addr());
    let ping = |i: u64| {
        let mut payload = [0x55u8; 125];
        payload[..8].copy_from_slice(&i.to_be_bytes());
        common::masked(true, 0x9, &payload)
    };
    let mut next = 0;
    let deadline = Instant::now() + LONG;
    // Ping without reading until the writes block and the server has paused the flooder.
    loop {
        while flooder.out.len() < (64 << 10) && next < PINGS {
            flooder.queue(&ping(next));
            next += 1;
        }
        if flooder.flush() && server.footprint().paused == 1 {
            break;
        }
        assert!(
            next < PINGS || !flooder.out.is_empty(),
            "every ping went in: no pause"
        );
        assert!(Instant::now() < deadline, "no pause");
        std::thread::sleep(Duration::from_millis(1));
    }
    let peak = server.footprint().conn_queued_peak;
    assert!(
        peak > LIMIT as u64 && peak <= LIMIT as u64 + ONE_READ,
        "pongs queued: peak {peak} bytes"
    );
    // The worker still serves others.
    let mut other = Client::connect(server.local_addr());
    other.send_text("still here");
    assert_eq!(other.recv(), Some(Ev::Text("still here".into())));

    // Read: every pong, in order, none dropped.
    let mut pongs = 0;
    loop {
        for (pong, data) in flooder.read_events() {
            assert!(pong);
            assert_eq!(u64::from_be_bytes(data[..8].try_into().unwrap()), pongs);
            assert!(data[8..] == [0x55; 117]);
            pongs += 1;
        }
        while flooder.out.len() < (64 << 10) && next < PINGS {
            flooder.queue(&ping(next));
            next += 1;
        }
        flooder.flush();
        if pongs == PINGS {
            break;
        }
        assert!(Instant::now() < deadline, "{pongs} of {PINGS} pongs");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(server.stats().dropped, 0);
    assert!(server.footprint().conn_queued_peak <= LIMIT as u64 + ONE_READ);
    stop(&server);
}

test_all!(a_message_larger_than_the_limit_still_reaches_a_peer_that_reads);
fn a_message_larger_than_the_limit_still_reaches_a_peer_that_reads(backend: Backend) {
    const LIMIT: usize = 64 << 10;
    let server = start_server(
        backend,
        Server::builder().threads(1).max_buffered(LIMIT),
        |_| Echo,
    );
    let mut client = Client::connect(server.local_addr());
    for seq in 0..5 {
        let data = message(seq, 1 << 20); // 16 times the limit
        client.send_binary(&data);
        assert_eq!(client.recv(), Some(Ev::Binary(data)), "echo {seq}");
    }
    assert_eq!(server.stats().dropped, 0);
    assert!(wait_paused(&server, 0));
    stop(&server);
}

/// Echoes, and records how each connection ended.
struct EchoLog {
    closes: common::Shared<String>,
}

impl wsx::Handler for EchoLog {
    type State = ();

    fn on_message(&mut self, conn: &mut wsx::Conn<'_, ()>, message: wsx::Message<'_>) {
        let _ = conn.send(message);
    }

    fn on_close(&mut self, _conn: &mut wsx::Conn<'_, ()>, close: &wsx::CloseInfo) {
        self.closes.push(close.reason.clone());
    }
}

test_all!(a_paused_peer_that_never_reads_is_dropped_by_the_idle_timeout);
fn a_paused_peer_that_never_reads_is_dropped_by_the_idle_timeout(backend: Backend) {
    let closes = common::Shared::default();
    let c = closes.clone();
    let server = start_server(
        backend,
        Server::builder()
            .threads(1)
            .max_buffered(64 << 10)
            // Long enough that a stalled test thread on a loaded machine still sees the
            // pause before the timeout ends the connection.
            .idle_timeout(Some(Duration::from_secs(3))),
        move |_| EchoLog { closes: c.clone() },
    );
    let mut slow = Raw::connect(server.local_addr());
    let deadline = Instant::now() + LONG;
    let mut seq = 0;
    loop {
        if slow.out.is_empty() {
            slow.queue(&common::masked(true, 0x2, &message(seq, 256 << 10)));
            seq += 1;
        }
        if slow.flush() && server.footprint().paused == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no pause");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Nothing more is read from it, it reads nothing: the idle timeout ends it.
    assert_eq!(
        closes.wait_for(|_| true).as_deref(),
        Some("idle timeout"),
        "dropped by the idle timeout"
    );
    assert!(wait_paused(&server, 0));
    assert!(common::wait_until(LONG, || server.stats().connections == 0));
    stop(&server);
}

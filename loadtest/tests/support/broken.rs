//! Tiny WebSocket servers on 127.0.0.1, most of them misbehaving on purpose, for testing that
//! the load tester reports a broken server clearly instead of hanging.
//!
//! Each fixture listens on port 0 and answers every connection in a thread of its own. It
//! stops by itself: when its [`Fixture`] guard is dropped (the acceptor is joined, open
//! connections end within [`POLL`] × 5), or after [`LIFETIME`] at the latest, so a test that
//! forgets it or panics never leaves it behind. Nothing here blocks the test thread.
//!
//! The WebSocket parts are deliberately minimal (std only, plus `sha1` and `base64` for the
//! accept key): no extensions, no UTF-8 check, data frames echoed one by one.
// Each test binary uses its own subset of the fixtures.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The longest a fixture lives, guard or not.
pub(crate) const LIFETIME: Duration = Duration::from_secs(30);

/// How often the acceptor looks for a stop; connection threads look every 5 × this.
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// Largest frame payload the echo servers take; a larger one is answered with close 1009.
pub(crate) const MAX_PAYLOAD: usize = 64 * 1024;

/// Largest handshake request read; past it the connection is dropped.
const MAX_REQUEST: usize = 16 * 1024;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A running fixture: its address and counters. Dropping it stops the fixture.
pub(crate) struct Fixture {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Fixture {
    /// The address it listens on (127.0.0.1, an ephemeral port).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT/`.
    pub(crate) fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// TCP connections accepted so far.
    pub(crate) fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections that ended with the client's close frame (the echo servers).
    pub(crate) fn close_frames(&self) -> usize {
        self.shared.close_frames.load(Ordering::SeqCst)
    }

    /// Connections whose reads ended with a TCP reset (`ECONNRESET`).
    pub(crate) fn resets(&self) -> usize {
        self.shared.resets.load(Ordering::SeqCst)
    }

    /// Complete data messages echoed so far, all connections together (counted before the
    /// echo is written, so a client that has read an echo sees it counted).
    pub(crate) fn messages(&self) -> usize {
        self.shared.messages.load(Ordering::SeqCst)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            // Bounded: the acceptor looks at `stop` every POLL.
            let _ = acceptor.join();
        }
    }
}

/// An invalid frame for [`bad_frames`] to send right after a valid `101`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadFrame {
    /// A frame with the reserved data opcode 0x3.
    ReservedOpcode,
    /// A text frame with the mask bit set (a server must not mask, RFC 6455 §5.1).
    Masked,
    /// A text frame with RSV1 set although no extension was negotiated.
    ReservedBits,
    /// A text frame whose payload is not UTF-8.
    BadUtf8,
}

/// An address where nothing listens: connecting is refused (a port bound, then released).
pub(crate) fn refusing() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port for refusing()");
    listener.local_addr().expect("refusing() address")
}

/// Accepts and reads, never answers the handshake (nor anything else).
pub(crate) fn silent() -> Fixture {
    spawn(Behaviour::Silent)
}

/// Answers the upgrade request with `HTTP/1.1 200 OK` and an HTML body, then keeps the
/// connection open (so a client must reject the status, not wait for the end of the stream).
pub(crate) fn garbage_http() -> Fixture {
    spawn(Behaviour::GarbageHttp)
}

/// Answers the upgrade request with bytes that are not HTTP at all, then keeps the connection
/// open.
pub(crate) fn not_http() -> Fixture {
    spawn(Behaviour::NotHttp)
}

/// A valid `101` (with the right `Sec-WebSocket-Accept`), then a frame with a reserved opcode;
/// the connection stays open.
pub(crate) fn garbage_frames() -> Fixture {
    bad_frames(BadFrame::ReservedOpcode)
}

/// A valid `101`, then the invalid frame `kind`; the connection stays open.
pub(crate) fn bad_frames(kind: BadFrame) -> Fixture {
    spawn(Behaviour::BadFrame(kind))
}

/// A correct minimal echo server that drops the TCP connection of each client (no close
/// frame) once it has echoed `n` messages to it; `0` drops it right after the `101`.
pub(crate) fn closes_after(n: usize) -> Fixture {
    spawn(Behaviour::Echo {
        close_after: Some(n),
    })
}

/// A correct minimal echo server: text, binary and continuation frames up to [`MAX_PAYLOAD`]
/// echoed unmasked one by one (so fragments stay fragments), pings answered with pongs, a
/// close answered with the same code. The control case for the others.
pub(crate) fn echo() -> Fixture {
    spawn(Behaviour::Echo { close_after: None })
}

#[derive(Debug, Clone, Copy)]
enum Behaviour {
    Silent,
    GarbageHttp,
    NotHttp,
    BadFrame(BadFrame),
    Echo { close_after: Option<usize> },
}

struct Shared {
    stop: AtomicBool,
    deadline: Instant,
    connections: AtomicUsize,
    messages: AtomicUsize,
    close_frames: AtomicUsize,
    resets: AtomicUsize,
}

impl Shared {
    fn done(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || Instant::now() >= self.deadline
    }
}

fn spawn(behaviour: Behaviour) -> Fixture {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a fixture listener");
    let addr = listener.local_addr().expect("fixture address");
    listener
        .set_nonblocking(true)
        .expect("non-blocking fixture listener");
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        deadline: Instant::now() + LIFETIME,
        connections: AtomicUsize::new(0),
        messages: AtomicUsize::new(0),
        close_frames: AtomicUsize::new(0),
        resets: AtomicUsize::new(0),
    });
    let acceptor = {
        let shared = Arc::clone(&shared);
        thread::Builder::new()
            .name(format!("fixture-{}", addr.port()))
            .spawn(move || accept_loop(&listener, behaviour, &shared))
            .expect("spawn a fixture acceptor")
    };
    Fixture {
        addr,
        shared,
        acceptor: Some(acceptor),
    }
}

fn accept_loop(listener: &TcpListener, behaviour: Behaviour, shared: &Arc<Shared>) {
    while !shared.done() {
        match listener.accept() {
            Ok((stream, _)) => {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let shared = Arc::clone(shared);
                // A thread that cannot be spawned drops the connection: the client sees EOF.
                let _ = thread::Builder::new()
                    .name("fixture-conn".into())
                    .spawn(move || serve(stream, behaviour, shared));
            }
            Err(_) => thread::sleep(POLL),
        }
    }
}

fn serve(stream: TcpStream, behaviour: Behaviour, shared: Arc<Shared>) {
    let ready = stream.set_nonblocking(false).is_ok()
        && stream.set_read_timeout(Some(POLL * 5)).is_ok()
        && stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .is_ok();
    if !ready {
        return;
    }
    let mut peer = Peer {
        stream,
        buf: Vec::new(),
        shared,
    };
    let Some(request) = peer.read_request() else {
        return;
    };
    // Errors writing to a client that went away end the connection; nothing to report.
    let _ = match behaviour {
        Behaviour::Silent => {
            peer.drain();
            Ok(())
        }
        Behaviour::GarbageHttp => {
            let body = "<html><body>this is not a websocket server</body></html>\n";
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            peer.write(response.as_bytes()).map(|()| peer.drain())
        }
        Behaviour::NotHttp => peer
            .write(b"\x00\xff\xfeSSH-2.0-nothing\r\n\x16\x03\x01\x02\x00garbage\r\n\r\n")
            .map(|()| peer.drain()),
        Behaviour::BadFrame(kind) => peer.upgrade(&request).and_then(|ok| {
            if ok {
                peer.write(&bad_frame(kind))?;
                peer.drain();
            }
            Ok(())
        }),
        Behaviour::Echo { close_after } => peer.upgrade(&request).and_then(|ok| {
            if ok {
                peer.echo(close_after)?;
            }
            Ok(())
        }),
    };
}

fn bad_frame(kind: BadFrame) -> Vec<u8> {
    match kind {
        BadFrame::ReservedOpcode => vec![0x83, 0x02, b'h', b'i'],
        BadFrame::Masked => {
            let key = [0x11, 0x22, 0x33, 0x44];
            vec![
                0x81,
                0x82,
                key[0],
                key[1],
                key[2],
                key[3],
                b'h' ^ key[0],
                b'i' ^ key[1],
            ]
        }
        BadFrame::ReservedBits => vec![0xC1, 0x02, b'h', b'i'],
        BadFrame::BadUtf8 => vec![0x81, 0x02, 0xff, 0xfe],
    }
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub(crate) fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// What the next frame from the client is.
enum Next {
    Frame {
        fin: bool,
        opcode: u8,
        payload: Vec<u8>,
    },
    /// The client went away, or the fixture is stopping.
    Gone,
    /// A frame the server must refuse, with the close code to refuse it with.
    Refuse(u16),
}

struct Peer {
    stream: TcpStream,
    buf: Vec<u8>,
    shared: Arc<Shared>,
}

impl Peer {
    /// Reads more bytes into `buf`: false at the end of the stream, on an error, or when the
    /// fixture is stopping.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if self.shared.done() {
                return false;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return true;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    if e.kind() == io::ErrorKind::ConnectionReset {
                        self.shared.resets.fetch_add(1, Ordering::SeqCst);
                    }
                    return false;
                }
            }
        }
    }

    /// Reads and discards until the client goes away or the fixture stops.
    fn drain(&mut self) {
        while self.fill() {
            self.buf.clear();
        }
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// The request head up to its blank line (the bytes after it stay in `buf`).
    fn read_request(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 4);
                return Some(head);
            }
            if self.buf.len() > MAX_REQUEST || !self.fill() {
                return None;
            }
        }
    }

    /// Answers `101` for a request with a `Sec-WebSocket-Key`, `400` (and false) without one.
    fn upgrade(&mut self, request: &str) -> io::Result<bool> {
        let key = request.split("\r\n").skip(1).find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_owned())
        });
        let Some(key) = key else {
            self.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")?;
            return Ok(false);
        };
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            accept_key(&key)
        );
        self.write(response.as_bytes())?;
        Ok(true)
    }

    fn next_frame(&mut self) -> Next {
        loop {
            if let Some(next) = self.parse_frame() {
                return next;
            }
            if !self.fill() {
                return Next::Gone;
            }
        }
    }

    /// A whole frame from `buf`, or `None` when more bytes are needed.
    fn parse_frame(&mut self) -> Option<Next> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        let (fin, rsv, opcode) = (b[0] & 0x80 != 0, b[0] & 0x70, b[0] & 0x0f);
        let masked = b[1] & 0x80 != 0;
        let (len, mut at) = match b[1] & 0x7f {
            126 => (u64::from(u16::from_be_bytes([*b.get(2)?, *b.get(3)?])), 4),
            127 => {
                let bytes: [u8; 8] = b.get(2..10)?.try_into().ok()?;
                (u64::from_be_bytes(bytes), 10)
            }
            n => (u64::from(n), 2),
        };
        if rsv != 0 || !masked {
            return Some(Next::Refuse(1002));
        }
        if len > MAX_PAYLOAD as u64 {
            return Some(Next::Refuse(1009));
        }
        let len = len as usize;
        let key: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        let mut payload = b.get(at..at + len)?.to_vec();
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= key[i % 4];
        }
        self.buf.drain(..at + len);
        Some(Next::Frame {
            fin,
            opcode,
            payload,
        })
    }

    fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) -> io::Result<()> {
        let mut frame = Vec::with_capacity(payload.len() + 10);
        frame.push(if fin { 0x80 } else { 0 } | opcode);
        match payload.len() {
            n @ 0..=125 => frame.push(n as u8),
            n @ 126..=0xffff => {
                frame.push(126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(payload);
        self.write(&frame)
    }

    fn echo(&mut self, close_after: Option<usize>) -> io::Result<()> {
        let mut echoed = 0;
        if close_after == Some(0) {
            let _ = self.stream.shutdown(Shutdown::Both);
            return Ok(());
        }
        loop {
            match self.next_frame() {
                Next::Gone => return Ok(()),
                Next::Refuse(code) => {
                    self.send_frame(true, 0x8, &code.to_be_bytes())?;
                    return Ok(());
                }
                Next::Frame {
                    fin,
                    opcode: opcode @ (0x0..=0x2),
                    payload,
                } => {
                    if fin {
                        echoed += 1;
                        self.shared.messages.fetch_add(1, Ordering::SeqCst);
                    }
                    self.send_frame(fin, opcode, &payload)?;
                    if fin && close_after == Some(echoed) {
                        let _ = self.stream.shutdown(Shutdown::Both);
                        return Ok(());
                    }
                }
                Next::Frame {
                    opcode: 0x8,
                    payload,
                    ..
                } => {
                    self.shared.close_frames.fetch_add(1, Ordering::SeqCst);
                    let code = payload.get(..2).unwrap_or(&[]).to_vec();
                    self.send_frame(true, 0x8, &code)?;
                    let _ = self.stream.shutdown(Shutdown::Write);
                    self.drain();
                    return Ok(());
                }
                Next::Frame {
                    opcode: 0x9,
                    payload,
                    ..
                } => self.send_frame(true, 0xA, &payload)?,
                Next::Frame { opcode: 0xA, .. } => {}
                Next::Frame { .. } => {
                    self.send_frame(true, 0x8, &1002u16.to_be_bytes())?;
                    return Ok(());
                }
            }
        }
    }
}

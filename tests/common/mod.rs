//! Helpers for the integration tests: a small blocking WebSocket client built on
//! `wsx::protocol`, raw HTTP and frame builders for hostile bytes, a server starter, and
//! polling waits. Every wait here is bounded, so a broken server fails a test instead of
//! hanging it.
//!
//! A file that includes it includes `support/backends.rs` first (as `mod backends`).

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use wsx::protocol::handshake::{ClientRequest, HandshakeError, UpgradeResponse};
use wsx::protocol::{Config, Connection, Event};
use wsx::{
    Backend, CloseCode, Conn, Handler, Limits, Message, MessageKind, Role, ServerBuilder,
    ServerHandle,
};

/// The upper bound on any single wait in these tests. Generous: it only decides how long a
/// broken server takes to fail a test, never whether a working one passes.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);

/// A fixed `Sec-WebSocket-Key` for hand-written requests (the RFC 6455 §1.3 sample).
pub(crate) const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Starts `builder` on `backend` on a free port of 127.0.0.1, without pinning worker threads
/// (tests run side by side on few cores).
///
/// # Panics
///
/// When the server does not start, or runs on another backend than `backend`.
pub(crate) fn start_server<H, F>(
    backend: Backend,
    builder: ServerBuilder,
    factory: F,
) -> ServerHandle
where
    H: Handler,
    F: Fn(usize) -> H + Send + Sync + 'static,
{
    let server = builder
        .host("127.0.0.1")
        .port(0)
        .pin_threads(false)
        .backend(backend)
        .start(factory)
        .unwrap_or_else(|e| panic!("server starts on {backend}: {e}"));
    crate::backends::assert_runs_on(&server, backend);
    server
}

/// Shuts the server down at once and waits (bounded) for its workers to end.
pub(crate) fn stop(server: &ServerHandle) {
    server.shutdown(Duration::ZERO);
    wait_for_workers(server, TIMEOUT);
}

/// Calls [`ServerHandle::wait`] on another thread and panics if it has not returned within
/// `within`.
pub(crate) fn wait_for_workers(server: &ServerHandle, within: Duration) {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = server.clone();
    std::thread::spawn(move || {
        handle.wait();
        let _ = tx.send(());
    });
    rx.recv_timeout(within)
        .expect("server workers end after shutdown");
}

/// Polls `cond` every few milliseconds until it holds or `within` passes; returns whether it
/// held.
pub(crate) fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A list shared between a test and the handlers on the worker threads.
#[derive(Debug)]
pub(crate) struct Shared<T>(Arc<Mutex<Vec<T>>>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<T> Default for Shared<T> {
    fn default() -> Self {
        Shared(Arc::new(Mutex::new(Vec::new())))
    }
}

impl<T: Clone> Shared<T> {
    /// Appends an item.
    pub(crate) fn push(&self, item: T) {
        self.lock().push(item);
    }

    /// A copy of the items so far.
    pub(crate) fn snapshot(&self) -> Vec<T> {
        self.lock().clone()
    }

    /// Forgets the items so far.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// The number of items so far.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Waits (bounded by [`TIMEOUT`]) until some item matches `pred`, and returns it.
    pub(crate) fn wait_for(&self, mut pred: impl FnMut(&T) -> bool) -> Option<T> {
        let mut found = None;
        wait_until(TIMEOUT, || {
            found = self.lock().iter().find(|t| pred(t)).cloned();
            found.is_some()
        });
        found
    }

    /// Waits (bounded by [`TIMEOUT`]) until there are at least `n` items; returns whether there
    /// are.
    pub(crate) fn wait_len(&self, n: usize) -> bool {
        wait_until(TIMEOUT, || self.len() >= n)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<T>> {
        // A handler that panicked poisons the lock; the test still wants to read what it saw.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Echoes every message back.
#[derive(Debug, Default)]
pub(crate) struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        let _ = conn.send(message);
    }
}

/// What the test client received, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ev {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping (already answered when auto-pong is on).
    Ping(Vec<u8>),
    /// A pong.
    Pong(Vec<u8>),
    /// A close frame: code and reason (already answered when we had not closed first).
    Close(u16, String),
    /// The server closed the TCP connection (read returned 0).
    Eof,
    /// The TCP connection was reset (or another read error ended it).
    Reset,
}

impl Ev {
    /// Whether the TCP connection is over (EOF or reset).
    pub(crate) fn is_end(&self) -> bool {
        matches!(self, Ev::Eof | Ev::Reset)
    }

    fn from_event(event: Event<'_>) -> Self {
        match event {
            Event::Text(t) => Ev::Text(t.to_owned()),
            Event::Binary(b) => Ev::Binary(b.to_vec()),
            Event::Ping(p) => Ev::Ping(p.to_vec()),
            Event::Pong(p) => Ev::Pong(p.to_vec()),
            Event::Close { code, reason } => Ev::Close(code.0, reason.to_owned()),
        }
    }
}

/// How the test client connects.
#[derive(Debug, Clone)]
pub(crate) struct ClientOptions<'a> {
    /// Request target: path and query.
    pub(crate) target: &'a str,
    /// Subprotocols offered.
    pub(crate) protocols: &'a [&'a str],
    /// Extra request headers.
    pub(crate) headers: &'a [(&'a str, &'a str)],
    /// Whether pings are answered automatically while receiving.
    pub(crate) auto_pong: bool,
}

impl Default for ClientOptions<'_> {
    fn default() -> Self {
        ClientOptions {
            target: "/",
            protocols: &[],
            headers: &[],
            auto_pong: true,
        }
    }
}

/// A blocking WebSocket client for tests: a `TcpStream` with read timeouts and a
/// `wsx::protocol::Connection` in the client role.
pub(crate) struct Client {
    stream: TcpStream,
    conn: Connection,
    /// Bytes read from the socket and not yet consumed by the protocol.
    rbuf: Vec<u8>,
    /// How the TCP connection ended, once it did.
    ended: Option<Ev>,
    /// The server's `101` response.
    pub(crate) response: UpgradeResponse,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("local", &self.stream.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to `addr` at `/` and completes the handshake; panics if it fails.
    pub(crate) fn connect(addr: SocketAddr) -> Client {
        Client::connect_with(addr, &ClientOptions::default())
    }

    /// Connects with `options`; panics if the handshake fails.
    pub(crate) fn connect_with(addr: SocketAddr, options: &ClientOptions<'_>) -> Client {
        Client::try_connect(addr, options).expect("handshake succeeds")
    }

    /// Connects with `options`; the handshake error (e.g. an unexpected status) if it fails.
    pub(crate) fn try_connect(
        addr: SocketAddr,
        options: &ClientOptions<'_>,
    ) -> Result<Client, HandshakeError> {
        let mut stream =
            TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect to the test server");
        stream.set_nodelay(true).expect("set nodelay");
        stream
            .set_write_timeout(Some(TIMEOUT))
            .expect("set write timeout");
        let host = addr.ip().to_string();
        let mut request = ClientRequest::new(&host, options.target);
        request.port = addr.port();
        request.protocols = options.protocols;
        request.headers = options.headers;
        let mut out = Vec::new();
        let handshake = request.write_with_os_rng(&mut out)?;
        stream.write_all(&out).expect("write the upgrade request");

        let deadline = Instant::now() + TIMEOUT;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let (response, consumed) = loop {
            if let Some(done) = handshake.parse_response(&buf, &Limits::DEFAULT)? {
                break done;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no complete handshake response within {TIMEOUT:?}"
            );
            stream
                .set_read_timeout(Some(left))
                .expect("set read timeout");
            match stream.read(&mut chunk) {
                Ok(0) => panic!(
                    "connection closed during the handshake: {:?}",
                    String::from_utf8_lossy(&buf)
                ),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("reading the handshake response: {e}"),
            }
        };
        buf.drain(..consumed);
        let config = Config {
            auto_pong: options.auto_pong,
            ..Config::default()
        };
        Ok(Client {
            stream,
            conn: Connection::new(Role::Client, config),
            rbuf: buf,
            ended: None,
            response,
        })
    }

    /// The client's own address (what the server sees as the peer).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local address")
    }

    /// The subprotocol the server chose.
    pub(crate) fn protocol(&self) -> Option<&str> {
        self.response.protocol()
    }

    fn write_out(&mut self, out: &[u8]) {
        self.stream
            .write_all(out)
            .expect("write to the test server");
    }

    /// Sends a text message.
    pub(crate) fn send_text(&mut self, text: &str) {
        let mut out = Vec::new();
        self.conn.send_text(text, &mut out).expect("send text");
        self.write_out(&out);
    }

    /// Sends a binary message.
    pub(crate) fn send_binary(&mut self, data: &[u8]) {
        let mut out = Vec::new();
        self.conn.send_binary(data, &mut out).expect("send binary");
        self.write_out(&out);
    }

    /// Sends one fragment (see `WriteHalf::send_fragment`).
    pub(crate) fn send_fragment(&mut self, kind: Option<MessageKind>, payload: &[u8], fin: bool) {
        let mut out = Vec::new();
        self.conn
            .send_fragment(kind, payload, fin, &mut out)
            .expect("send fragment");
        self.write_out(&out);
    }

    /// Sends a ping.
    pub(crate) fn ping(&mut self, payload: &[u8]) {
        let mut out = Vec::new();
        self.conn.send_ping(payload, &mut out).expect("send ping");
        self.write_out(&out);
    }

    /// Sends an unsolicited pong.
    pub(crate) fn pong(&mut self, payload: &[u8]) {
        let mut out = Vec::new();
        self.conn.send_pong(payload, &mut out).expect("send pong");
        self.write_out(&out);
    }

    /// Starts the closing handshake.
    pub(crate) fn close(&mut self, code: u16, reason: &str) {
        let mut out = Vec::new();
        self.conn
            .send_close(CloseCode(code), reason, &mut out)
            .expect("send close");
        self.write_out(&out);
    }

    /// Writes bytes as they are, bypassing the protocol (hostile frames).
    pub(crate) fn send_raw(&mut self, bytes: &[u8]) {
        self.write_out(bytes);
    }

    /// Drops the TCP connection with a RST (linger 0) instead of a FIN: the most abrupt end.
    pub(crate) fn reset(self) {
        let sock = socket2::Socket::from(self.stream);
        sock.set_linger(Some(Duration::ZERO)).expect("set linger");
        drop(sock);
    }

    /// Shuts down the sending direction (FIN) but keeps reading.
    pub(crate) fn shutdown_write(&mut self) {
        self.stream
            .shutdown(Shutdown::Write)
            .expect("shutdown write");
    }

    /// The next event within [`TIMEOUT`]; `None` if nothing arrived in time.
    pub(crate) fn recv(&mut self) -> Option<Ev> {
        self.recv_within(TIMEOUT)
    }

    /// The next event within `within`; `None` if nothing arrived in time. Pings are answered
    /// (auto-pong) and the server's close is echoed before the event is returned. Once the TCP
    /// connection ended, returns [`Ev::Eof`] or [`Ev::Reset`] again and again.
    ///
    /// # Panics
    ///
    /// When the server breaks the protocol.
    pub(crate) fn recv_within(&mut self, within: Duration) -> Option<Ev> {
        let deadline = Instant::now() + within;
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            if !self.rbuf.is_empty() {
                let (consumed, event) = match self.conn.handle_read(&mut self.rbuf) {
                    Ok(read) => (read.consumed, read.event.map(Ev::from_event)),
                    Err(e) => panic!("the server broke the protocol: {e}"),
                };
                self.rbuf.drain(..consumed);
                self.flush_replies();
                if let Some(event) = event {
                    return Some(event);
                }
                if consumed > 0 && !self.rbuf.is_empty() {
                    continue;
                }
            }
            if let Some(end) = &self.ended {
                return Some(end.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream
                .set_read_timeout(Some(left))
                .expect("set read timeout");
            match self.stream.read(&mut chunk) {
                Ok(0) => self.ended = Some(Ev::Eof),
                Ok(n) => self.rbuf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.ended = Some(Ev::Reset),
            }
        }
    }

    /// The next event other than pings and pongs, within [`TIMEOUT`].
    pub(crate) fn recv_data(&mut self) -> Option<Ev> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_within(left)? {
                Ev::Ping(_) | Ev::Pong(_) => {}
                other => return Some(other),
            }
        }
    }

    /// Every event that arrives during `period` (answering pings meanwhile); stops early when
    /// the connection ends.
    pub(crate) fn pump(&mut self, period: Duration) -> Vec<Ev> {
        let deadline = Instant::now() + period;
        let mut events = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return events;
            }
            match self.recv_within(left) {
                None => return events,
                Some(ev) if ev.is_end() => {
                    events.push(ev);
                    return events;
                }
                Some(ev) => events.push(ev),
            }
        }
    }

    /// Receives until the TCP connection ends (within [`TIMEOUT`]) and returns everything that
    /// came, the end ([`Ev::Eof`] or [`Ev::Reset`]) last.
    ///
    /// # Panics
    ///
    /// When the connection is still open after [`TIMEOUT`].
    pub(crate) fn recv_until_end(&mut self) -> Vec<Ev> {
        let events = self.pump(TIMEOUT);
        assert!(
            events.last().is_some_and(Ev::is_end),
            "connection still open after {TIMEOUT:?}: {events:?}"
        );
        events
    }

    fn flush_replies(&mut self) {
        let mut out = Vec::new();
        let _ = self.conn.poll_transmit(&mut out);
        if !out.is_empty() {
            // The server may be gone already; a lost reply is what a real client would see.
            let _ = self.stream.write_all(&out);
        }
    }
}

/// A frame built by hand, for bytes the protocol core would refuse to send: any opcode byte,
/// masked with `mask` or not at all.
pub(crate) fn frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | (opcode & 0x0f)];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A masked frame with a fixed key: what a client would send, but with any opcode or payload.
pub(crate) fn masked(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(fin, opcode, payload, Some([0x37, 0xfa, 0x21, 0x3d]))
}

/// A valid upgrade request head for `target` with [`SAMPLE_KEY`], plus `extra` header lines
/// (each without CRLF).
pub(crate) fn upgrade_head(target: &str, extra: &[&str]) -> Vec<u8> {
    let mut head = format!(
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for line in extra {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// Connects, writes `request`, and reads until the server closes the connection (EOF),
/// returning everything it answered.
///
/// # Panics
///
/// When the connection is not closed with EOF within [`TIMEOUT`] (a reset fails too: a refused
/// client must be able to read its answer).
pub(crate) fn http_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream =
        TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect to the test server");
    stream
        .set_write_timeout(Some(TIMEOUT))
        .expect("set write timeout");
    stream.write_all(request).expect("write the request");
    let answer = read_to_eof(&mut stream);
    String::from_utf8_lossy(&answer).into_owned()
}

/// [`http_exchange`], but the request is followed at once by our FIN (a half-close), so that
/// the server may read both together.
pub(crate) fn http_exchange_then_fin(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream =
        TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect to the test server");
    stream
        .set_write_timeout(Some(TIMEOUT))
        .expect("set write timeout");
    stream.write_all(request).expect("write the request");
    stream.shutdown(Shutdown::Write).expect("half-close");
    let answer = read_to_eof(&mut stream);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Reads until EOF, within [`TIMEOUT`].
///
/// # Panics
///
/// On a timeout or a read error (a reset included).
pub(crate) fn read_to_eof(stream: &mut TcpStream) -> Vec<u8> {
    let deadline = Instant::now() + TIMEOUT;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no EOF within {TIMEOUT:?}; got {:?}",
            String::from_utf8_lossy(&got)
        );
        stream
            .set_read_timeout(Some(left))
            .expect("set read timeout");
        match stream.read(&mut chunk) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!(
                "read error instead of EOF: {e}; got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

/// Raises the soft limit on open descriptors to the hard limit, for the tests that hold a
/// thousand connections (both ends) at once; a default soft limit of 1,024 is too small.
#[allow(unsafe_code)] // two libc calls on a local struct; no other way to set a resource limit
pub(crate) fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 && lim.rlim_cur < lim.rlim_max
    {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit; raising the soft limit up to the hard one is allowed.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    }
}

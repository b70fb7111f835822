//! The server: [`Server::builder`], the [`Handler`] trait, [`Conn`] inside callbacks and the
//! [`ServerHandle`] for other threads.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::client::{ClientError, ClientOptions, Connector, Url};
use crate::engine::inbox::{Command, InboxSender};
use crate::engine::{self, Settings};
use crate::limits::Limits;
use crate::protocol::handshake::UpgradeRequest;
use crate::protocol::{CloseCode, MessageKind};

pub use crate::engine::conn::Conn;

/// A complete message, borrowed from the read buffer (or from the connection's assembly buffer
/// when it arrived in fragments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message, valid UTF-8.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl<'a> Message<'a> {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        match self {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// Text or binary.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Text(_) => MessageKind::Text,
            Message::Binary(_) => MessageKind::Binary,
        }
    }
}

/// What became of a send: the Rust form of the callback of Node ws's `send`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "a send can be dropped under backpressure"]
pub enum SendStatus {
    /// Nothing was waiting before it: it goes out in the write that ends the current callback
    /// (or now, outside one).
    Sent,
    /// It waits behind unwritten bytes ([`Conn::buffered_amount`] was above zero); it will be
    /// written as the peer reads, in order.
    Queued,
    /// Not sent: the connection's unwritten bytes were over
    /// [`Builder::max_buffered`] already.
    Dropped,
}

/// How a connection ended, given to [`Handler::on_close`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The close code: the peer's when it sent a close frame, else ours (for a protocol error,
    /// the error's), else [`CloseCode::ABNORMAL`] (1006) when the connection dropped.
    pub code: CloseCode,
    /// The reason that goes with the code.
    pub reason: String,
    /// Whether close frames went both ways (the closing handshake completed).
    pub clean: bool,
    /// The protocol error that ended the connection, if one did.
    pub error: Option<crate::ProtocolError>,
}

/// Identifies a connection across the server: its worker, its slot and the slot's generation
/// (so an id never reaches a later connection that reuses the slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) worker: u16,
    pub(crate) key: u32,
    pub(crate) gen: u32,
}

impl ConnId {
    /// The index of the worker thread that owns the connection.
    pub fn worker(&self) -> usize {
        usize::from(self.worker)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.worker, self.key, self.gen)
    }
}

/// The upgrade request as [`Handler::on_upgrade`] sees it, and the answer it shapes.
#[derive(Debug)]
pub struct Upgrade<'a> {
    pub(crate) request: &'a UpgradeRequest,
    pub(crate) peer: SocketAddr,
    pub(crate) protocol: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
}

impl<'a> Upgrade<'a> {
    /// The parsed request: path, query, headers, offered protocols and extensions, origin.
    pub fn request(&self) -> &'a UpgradeRequest {
        self.request
    }

    /// The request path, without the query.
    pub fn path(&self) -> &'a str {
        self.request.path()
    }

    /// The query string after `?`, if any.
    pub fn query(&self) -> Option<&'a str> {
        self.request.query()
    }

    /// A request header's value (the first, if repeated), by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.request.header(name)
    }

    /// The TCP peer address (a proxy's, behind one).
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The client address a proxy reported in the first entry of `X-Forwarded-For`, if any and
    /// well-formed. Trust it only behind a proxy you run: a client can send any value.
    pub fn forwarded_for(&self) -> Option<IpAddr> {
        let value = std::str::from_utf8(self.request.header("x-forwarded-for")?).ok()?;
        value.split(',').next()?.trim().parse().ok()
    }

    /// The subprotocols the client offered, in its order of preference.
    pub fn protocols(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.request.protocols()
    }

    /// Chooses the subprotocol to answer with. Returns false (and chooses nothing) when the
    /// client did not offer it.
    pub fn select_protocol(&mut self, protocol: &str) -> bool {
        if self.request.protocols().any(|p| p == protocol) {
            self.protocol = Some(protocol.to_owned());
            true
        } else {
            false
        }
    }

    /// Adds a header to the `101 Switching Protocols` response. Headers the handshake writes
    /// itself, and names or values that are not valid, make the upgrade fail with 500.
    pub fn add_header(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.headers.push((name.into(), value.into()));
    }
}

/// A refused upgrade: the HTTP response the client gets instead of `101`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub(crate) status: u16,
    pub(crate) body: String,
    pub(crate) headers: Vec<(String, String)>,
}

impl Reject {
    /// A refusal with `status` (400–599) and the status's reason phrase as body.
    pub fn new(status: u16) -> Self {
        let status = if (400..=599).contains(&status) {
            status
        } else {
            500
        };
        Reject {
            status,
            body: String::new(),
            headers: Vec::new(),
        }
    }

    /// Sets the plain-text body.
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }

    /// Adds a response header (dropped if its name or value could break the response).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The status.
    pub fn status(&self) -> u16 {
        self.status
    }
}

/// The application's side of a server: one instance per worker thread, created on that thread
/// by the factory given to [`Builder::start`], so it needs neither `Send` nor locks.
///
/// Every callback gets a [`Conn`]; what it sends is corked and leaves in one write when the
/// callbacks for the current read are done.
pub trait Handler: 'static {
    /// Per-connection state, kept in the worker's slab next to the connection.
    type State: Default + 'static;

    /// Decides on an upgrade request: accept with the connection's initial state (choosing a
    /// subprotocol and adding headers through `upgrade`), or refuse with an HTTP status. The
    /// default accepts every request with `State::default()`.
    ///
    /// # Errors
    ///
    /// A [`Reject`] refuses the upgrade with its status.
    fn on_upgrade(&mut self, upgrade: &mut Upgrade<'_>) -> Result<Self::State, Reject> {
        let _ = upgrade;
        Ok(Self::State::default())
    }

    /// The connection is open (the `101` is on its way).
    fn on_open(&mut self, conn: &mut Conn<'_, Self::State>) {
        let _ = conn;
    }

    /// A complete message arrived.
    fn on_message(&mut self, conn: &mut Conn<'_, Self::State>, message: Message<'_>) {
        let _ = (conn, message);
    }

    /// A ping arrived (the pong is already queued).
    fn on_ping(&mut self, conn: &mut Conn<'_, Self::State>, payload: &[u8]) {
        let _ = (conn, payload);
    }

    /// A pong arrived.
    fn on_pong(&mut self, conn: &mut Conn<'_, Self::State>, payload: &[u8]) {
        let _ = (conn, payload);
    }

    /// Every byte that was waiting under backpressure has been written.
    fn on_drain(&mut self, conn: &mut Conn<'_, Self::State>) {
        let _ = conn;
    }

    /// A client connection opened with [`ServerHandle::connect`] failed before it opened
    /// (TCP, proxy, handshake, timeout or a redirect that may not be followed). `tag` is the one
    /// given to `connect`.
    fn on_connect_error(&mut self, url: &Url, tag: u64, error: &ClientError) {
        let _ = (url, tag, error);
    }

    /// The connection ended; sends now fail with [`crate::SendError::Closing`]. Called once for
    /// every connection that was opened.
    fn on_close(&mut self, conn: &mut Conn<'_, Self::State>, close: &CloseInfo) {
        let _ = (conn, close);
    }
}

/// A client-only engine: workers without a listener, for many client connections per core
/// (load tests, market-data consumers). Open connections with [`ServerHandle::connect`].
///
/// # Examples
///
/// ```no_run
/// use wsx::{Client, Conn, Handler, Message};
///
/// struct Printer;
/// impl Handler for Printer {
///     type State = ();
///     fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
///         let _ = conn.send_text("hello");
///     }
///     fn on_message(&mut self, _conn: &mut Conn<'_, ()>, message: Message<'_>) {
///         println!("{message:?}");
///     }
/// }
///
/// let engine = Client::builder().threads(1).start(|_| Printer)?;
/// engine.connect("ws://127.0.0.1:9001/", Default::default(), 1).unwrap();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Client;

impl Client {
    /// A builder for an engine that only opens connections.
    pub fn builder() -> Builder {
        Builder {
            bind: Bind::Nothing,
            ..Builder::default()
        }
    }
}

/// Entry point: `Server::builder()`.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// A builder with the defaults documented on each of its methods.
    pub fn builder() -> Builder {
        Builder::default()
    }
}

/// Where the server listens.
#[derive(Debug)]
enum Bind {
    Addr(String),
    Listener(TcpListener),
    /// A client-only engine: no listener.
    Nothing,
}

/// Configures and starts a [`Server`].
///
/// # Examples
///
/// ```no_run
/// use wsx::{Conn, Handler, Message, Server};
///
/// struct Echo;
/// impl Handler for Echo {
///     type State = ();
///     fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
///         let _ = conn.send(message);
///     }
/// }
///
/// let server = Server::builder().port(9001).start(|_worker| Echo)?;
/// server.wait();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Builder {
    bind: Bind,
    threads: usize,
    pin: bool,
    settings: Settings,
    backlog: i32,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            bind: Bind::Addr("127.0.0.1:9001".into()),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            pin: true,
            settings: Settings::default(),
            backlog: 1024,
        }
    }
}

impl Builder {
    /// Listens on `addr` (`"host:port"`). Default `127.0.0.1:9001`.
    pub fn bind(mut self, addr: impl Into<String>) -> Self {
        self.bind = Bind::Addr(addr.into());
        self
    }

    /// Listens on `host` at the current port.
    pub fn host(self, host: &str) -> Self {
        let port = self.current_port();
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        self.bind(format!("{host}:{port}"))
    }

    /// Listens on `port` of the current host (0 picks a free port; see
    /// [`ServerHandle::local_addr`]).
    pub fn port(self, port: u16) -> Self {
        let host = match &self.bind {
            Bind::Addr(a) => a
                .rsplit_once(':')
                .map_or("127.0.0.1", |(h, _)| h)
                .to_owned(),
            Bind::Listener(_) | Bind::Nothing => "127.0.0.1".to_owned(),
        };
        self.bind(format!("{host}:{port}"))
    }

    fn current_port(&self) -> u16 {
        match &self.bind {
            Bind::Addr(a) => a
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .unwrap_or(9001),
            Bind::Listener(l) => l.local_addr().map_or(9001, |a| a.port()),
            Bind::Nothing => 9001,
        }
    }

    /// Accepts from a listener the application opened. Every worker polls a duplicate of it.
    pub fn listener(mut self, listener: TcpListener) -> Self {
        self.bind = Bind::Listener(listener);
        self
    }

    /// Worker threads. Default: one per available core.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Pins worker `i` to core `i` (modulo the cores). Default on.
    pub fn pin_threads(mut self, pin: bool) -> Self {
        self.pin = pin;
        self
    }

    /// Serves only this request path; other paths get `404`. Default: every path.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.settings.path = Some(path.into());
        self
    }

    /// Largest message accepted (`max_message_size`; frames are capped at the same size).
    /// Default 64 MiB. Larger messages close the connection with 1009.
    pub fn max_payload(mut self, bytes: u64) -> Self {
        self.settings.limits.max_message_size = bytes;
        self.settings.limits.max_frame_size = self.settings.limits.max_frame_size.min(bytes);
        self
    }

    /// All protocol limits at once; see [`Limits`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.settings.limits = limits;
        self
    }

    /// Time a client has from connecting to completing its upgrade request. Default 10 s; a
    /// slower client is dropped (this stops slowloris-style attacks).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.settings.handshake_timeout = timeout;
        self
    }

    /// Closes a connection from which nothing arrived for `timeout`; with automatic pings (on by
    /// default) a ping goes out at half the timeout, so a live peer's pong keeps it open — the
    /// "detect broken connections" recipe of Node's ws, built in. `None` turns it off.
    /// Default 120 s.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.idle_timeout = timeout;
        self
    }

    /// Sends a ping when a connection has been silent for half the idle timeout. Default on.
    pub fn auto_ping(mut self, on: bool) -> Self {
        self.settings.auto_ping = on;
        self
    }

    /// Time the peer has to answer our close frame (and to finish sending after a protocol
    /// error) before the socket is dropped. Default 5 s.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.settings.close_timeout = timeout;
        self
    }

    /// Backpressure limit: sends to a connection with more unwritten bytes than this are
    /// dropped ([`SendStatus::Dropped`]). Default 16 MiB.
    pub fn max_buffered(mut self, bytes: usize) -> Self {
        self.settings.max_buffered = bytes;
        self
    }

    /// Most connections per worker; connections beyond it are closed as soon as accepted.
    /// Default 1,000,000.
    pub fn max_connections(mut self, per_worker: usize) -> Self {
        self.settings.max_connections = per_worker;
        self
    }

    /// `TCP_NODELAY` on accepted sockets. Default on.
    pub fn nodelay(mut self, on: bool) -> Self {
        self.settings.nodelay = on;
        self
    }

    /// Offers permessage-deflate (RFC 7692) with `options`: a client's offer is answered when
    /// acceptable, and messages at or above the threshold are compressed. Default off. See
    /// `docs/deflate.md` for what each mode costs.
    pub fn deflate(mut self, options: crate::protocol::deflate::DeflateOptions) -> Self {
        self.settings.deflate = Some(Arc::new(options));
        self
    }

    /// Listen backlog. Default 1024.
    pub fn backlog(mut self, backlog: i32) -> Self {
        self.backlog = backlog;
        self
    }

    /// Starts the workers. `factory(worker_index)` runs once on each worker thread to make its
    /// [`Handler`].
    ///
    /// # Errors
    ///
    /// The address cannot be resolved or bound (with [`io::ErrorKind::AddrInUse`] when something
    /// already listens on the port, another server included: the workers of one server share
    /// the port with `SO_REUSEPORT`, but no one else joins it), or a thread or poller cannot be
    /// created.
    pub fn start<H, F>(self, factory: F) -> io::Result<ServerHandle>
    where
        H: Handler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        let (listeners, local_addr) = match self.bind {
            Bind::Addr(addr) => {
                let mut resolved = addr.to_socket_addrs()?;
                let first = resolved.next().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "address resolves to nothing")
                })?;
                let ls = engine::sys::epoll::listen_group(first, self.backlog, self.threads)?;
                let local = ls[0].local_addr()?;
                (ls, local)
            }
            Bind::Listener(l) => {
                l.set_nonblocking(true)?;
                let local = l.local_addr()?;
                let mut ls = Vec::new();
                for _ in 1..self.threads {
                    ls.push(l.try_clone()?);
                }
                ls.push(l);
                (ls, local)
            }
            Bind::Nothing => (Vec::new(), SocketAddr::from(([0, 0, 0, 0], 0))),
        };
        let mut listeners: Vec<Option<TcpListener>> = listeners.into_iter().map(Some).collect();
        listeners.resize_with(self.threads, || None);
        let cores = if self.pin {
            core_affinity::get_core_ids().unwrap_or_default()
        } else {
            Vec::new()
        };
        let settings = Arc::new(self.settings);
        let factory = Arc::new(factory);
        let mut workers = Vec::new();
        let mut threads = Vec::new();
        let mut stats = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
            let worker_stats = Arc::new(WorkerStats::default());
            let f = factory.clone();
            let (inbox, thread) = engine::worker::spawn(
                i,
                settings.clone(),
                listener,
                move |i| f(i),
                core,
                worker_stats.clone(),
            )?;
            workers.push(inbox);
            threads.push(thread);
            stats.push(worker_stats);
        }
        Ok(ServerHandle {
            inner: Arc::new(HandleInner {
                workers,
                stats,
                threads: Mutex::new(threads),
                local_addr,
                next_worker: AtomicUsize::new(0),
            }),
        })
    }
}

/// Counters one worker publishes.
#[derive(Debug, Default)]
pub(crate) struct WorkerStats {
    pub(crate) connections: AtomicU64,
    pub(crate) messages_in: AtomicU64,
    pub(crate) messages_out: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) shed: AtomicU64,
    pub(crate) timer_entries: AtomicU64,
    pub(crate) timer_capacity: AtomicU64,
    pub(crate) slab_capacity: AtomicU64,
}

/// Server-wide counters, summed over the workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Open connections (handshaking ones included).
    pub connections: u64,
    /// Messages received.
    pub messages_in: u64,
    /// Messages sent.
    pub messages_out: u64,
    /// Bytes read from sockets.
    pub bytes_in: u64,
    /// Bytes written to sockets.
    pub bytes_out: u64,
    /// Connections closed as soon as accepted, without a handshake: over
    /// [`Builder::max_connections`], or shed while the process was out of descriptors (see
    /// `docs/server.md`, "Descriptor limits").
    pub shed: u64,
}

/// Sizes of the engine's per-worker structures, summed over the workers: for tests that check
/// they stay flat under churn. Not a stable interface.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Entries in the timer wheels (stale ones included).
    pub timer_entries: u64,
    /// Entries the timer wheels have room for: what they hold in memory.
    pub timer_capacity: u64,
    /// Slots the connection slabs have room for.
    pub slab_capacity: u64,
}

#[derive(Debug)]
struct HandleInner {
    workers: Vec<InboxSender>,
    stats: Vec<Arc<WorkerStats>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    local_addr: SocketAddr,
    /// Round-robin over workers for client connections.
    next_worker: AtomicUsize,
}

/// Controls a running server from any thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    inner: Arc<HandleInner>,
}

/// A [`ServerHandle`] command could not be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandleError {
    /// The id names no worker of this server.
    #[error("no such connection")]
    NoSuchConnection,
    /// The worker has stopped.
    #[error("server is shut down")]
    ShutDown,
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.inner.workers.len()
    }

    fn inbox(&self, id: ConnId) -> Result<&InboxSender, HandleError> {
        self.inner
            .workers
            .get(id.worker())
            .ok_or(HandleError::NoSuchConnection)
    }

    fn command(&self, id: ConnId, cmd: Command) -> Result<(), HandleError> {
        if self.inbox(id)?.send(cmd) {
            Ok(())
        } else {
            Err(HandleError::ShutDown)
        }
    }

    /// Sends a message to connection `id` from any thread. Delivery is asynchronous: a
    /// connection that is gone by the time the worker looks is skipped.
    ///
    /// # Errors
    ///
    /// [`HandleError`] when the command cannot reach the worker.
    pub fn send(
        &self,
        id: ConnId,
        kind: MessageKind,
        payload: impl Into<Bytes>,
    ) -> Result<(), HandleError> {
        self.command(
            id,
            Command::Send {
                id,
                kind,
                payload: payload.into(),
            },
        )
    }

    /// Sends a text message to connection `id`.
    ///
    /// # Errors
    ///
    /// As [`ServerHandle::send`].
    pub fn send_text(&self, id: ConnId, text: impl Into<String>) -> Result<(), HandleError> {
        self.send(id, MessageKind::Text, Bytes::from(text.into()))
    }

    /// Starts the closing handshake of connection `id`.
    ///
    /// # Errors
    ///
    /// As [`ServerHandle::send`].
    pub fn close(
        &self,
        id: ConnId,
        code: CloseCode,
        reason: impl Into<String>,
    ) -> Result<(), HandleError> {
        self.command(
            id,
            Command::Close {
                id,
                code,
                reason: reason.into(),
            },
        )
    }

    /// Drops connection `id` without a closing handshake.
    ///
    /// # Errors
    ///
    /// As [`ServerHandle::send`].
    pub fn terminate(&self, id: ConnId) -> Result<(), HandleError> {
        self.command(id, Command::Terminate { id })
    }

    /// Opens a client connection to `url` on one of the workers (round-robin), driven by that
    /// worker's [`Handler`] like an accepted one: `on_open`, `on_message`… with
    /// [`Conn::role`] `Client` and [`Conn::tag`] `tag`, and `State::default()` as its state. A
    /// failure before the connection opens goes to [`Handler::on_connect_error`].
    ///
    /// The worker resolves the host name itself (blocking it briefly); give IP addresses where
    /// that matters.
    ///
    /// # Errors
    ///
    /// An invalid URL, `wss://` (no TLS yet), or a stopped engine, at once.
    pub fn connect(&self, url: &str, options: ClientOptions, tag: u64) -> Result<(), ClientError> {
        let connector = Connector::new(Url::parse(url)?, options)?;
        let n = self.inner.workers.len();
        let worker = self.inner.next_worker.fetch_add(1, Ordering::Relaxed) % n;
        let cmd = Command::Connect {
            connector: Box::new(connector),
            tag,
        };
        if self.inner.workers[worker].send(cmd) {
            Ok(())
        } else {
            Err(ClientError::Closed)
        }
    }

    /// Counters summed over the workers.
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        for w in &self.inner.stats {
            s.connections += w.connections.load(Ordering::Relaxed);
            s.messages_in += w.messages_in.load(Ordering::Relaxed);
            s.messages_out += w.messages_out.load(Ordering::Relaxed);
            s.bytes_in += w.bytes_in.load(Ordering::Relaxed);
            s.bytes_out += w.bytes_out.load(Ordering::Relaxed);
            s.shed += w.shed.load(Ordering::Relaxed);
        }
        s
    }

    /// Sizes of the workers' structures, published once per timer tick (100 ms).
    #[doc(hidden)]
    pub fn footprint(&self) -> Footprint {
        let mut f = Footprint::default();
        for w in &self.inner.stats {
            f.timer_entries += w.timer_entries.load(Ordering::Relaxed);
            f.timer_capacity += w.timer_capacity.load(Ordering::Relaxed);
            f.slab_capacity += w.slab_capacity.load(Ordering::Relaxed);
        }
        f
    }

    /// Graceful shutdown: stop accepting, send close 1001 to every connection, wait for the
    /// closing handshakes (and for queued messages to be written) up to `grace`, then drop what
    /// is left. Returns at once; [`ServerHandle::wait`] waits for the end.
    pub fn shutdown(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        for w in &self.inner.workers {
            let _ = w.send(Command::Shutdown { deadline });
        }
    }

    /// Blocks until every worker has ended (after [`ServerHandle::shutdown`]).
    pub fn wait(&self) {
        let threads =
            std::mem::take(&mut *self.inner.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

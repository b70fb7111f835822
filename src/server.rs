//! The server: [`Server::builder`], the [`Handler`] trait, [`Conn`] inside callbacks and the
//! [`ServerHandle`] for other threads.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::broadcast::directory::Directory;
use crate::broadcast::frame::{Audience, Published};
use crate::broadcast::{PublishOptions, TopicPolicy, TopicStats};
use crate::client::{ClientError, ClientOptions, Connector, Url};
use crate::engine::fanout::{Hub, Reach};
use crate::engine::inbox::{Command, InboxSender};
use crate::engine::{self, Settings};
use crate::limits::Limits;
use crate::protocol::{CloseCode, MessageKind};

pub use crate::engine::conn::Conn;
pub use crate::engine::deflate_pool::DeflatePoolStats;
pub use crate::engine::handler::Handler;
#[doc(hidden)]
pub use crate::engine::stats::Footprint;
pub use crate::engine::stats::Stats;
pub(crate) use crate::engine::stats::WorkerStats;
pub use crate::handler::{CloseInfo, ConnId, DropReason, Message, Reject, SendStatus, Upgrade};

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

    /// Backpressure limit on a connection's unwritten output. Default 16 MiB.
    ///
    /// A data frame is admitted when the connection's unwritten bytes plus the frame fit in
    /// `bytes`, or when nothing is unwritten (so one larger message still goes to a peer that
    /// keeps up); else the send is dropped ([`SendStatus::Dropped`], counted in
    /// [`Stats::dropped`]). Control frames are never dropped; instead the worker stops reading
    /// from a connection whose queue passes `bytes` (or refused a send), until it drains to half
    /// of it. One connection then holds at most its message being assembled
    /// (≤ `max_message_size`), the 139-byte residue of a read, and unwritten output of at most
    /// `max(bytes, F) + P`: `F` the largest frame the handler sends while nothing is unwritten
    /// (an echo: `max_message_size` + 14), `P` the control frames answering one read
    /// (≤ 256 KiB + 400 B on a server connection, 3 × that on a client one). See
    /// `docs/server.md`, "Backpressure".
    pub fn max_buffered(mut self, bytes: usize) -> Self {
        self.settings.max_buffered = bytes;
        self
    }

    /// The slow-consumer policy of every topic (and of broadcasts to all) that no
    /// [`Builder::topic_policy_for`] prefix matches. Default: [`TopicPolicy::default`] (drop
    /// at `max_buffered`). See [`crate::broadcast`].
    pub fn topic_policy(mut self, policy: TopicPolicy) -> Self {
        Arc::make_mut(&mut self.settings.policies).default = policy;
        self
    }

    /// The slow-consumer policy of topics whose name starts with `prefix` (the longest
    /// matching prefix wins), e.g. `topic_policy_for("ticks.", TopicPolicy::conflate_at(64 << 10))`.
    pub fn topic_policy_for(mut self, prefix: impl Into<String>, policy: TopicPolicy) -> Self {
        Arc::make_mut(&mut self.settings.policies)
            .by_prefix
            .push((prefix.into(), policy));
        self
    }

    /// Most publishes waiting in one worker's inbox (from other threads and other workers);
    /// past it a publish skips that worker ([`HandleError::Backlogged`],
    /// [`Stats::publish_backlogged`]) instead of growing its memory without bound. Default
    /// 65,536.
    pub fn publish_backlog(mut self, publishes: usize) -> Self {
        self.settings.publish_backlog = publishes.max(1);
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

    /// Threads of the deflate pool, shared by all workers, that compress large messages so that
    /// a worker goes on serving its other connections meanwhile (Node ws's
    /// `concurrencyLimit`). Messages at or above [`Builder::deflate_pool_threshold`] on
    /// connections that compress each message alone (`server_no_context_takeover` and the full
    /// window, the default) go to the pool; the frame is written in the message's place, before
    /// anything sent after it. 0 compresses every message inline on its worker. Default 1 (see
    /// `docs/deflate.md`, "Large messages: the deflate pool"). Only started when
    /// [`Builder::deflate`] is set.
    pub fn deflate_threads(mut self, threads: usize) -> Self {
        self.settings.pool.threads = threads;
        self
    }

    /// Most messages waiting for the deflate pool, all workers together. When it is full, a
    /// worker compresses its message inline (nothing is dropped; the worker reads no more until
    /// it is done, which slows the senders). Default 64.
    pub fn deflate_queue(mut self, jobs: usize) -> Self {
        self.settings.pool.queue = jobs.max(1);
        self
    }

    /// Messages of at least this many bytes are compressed on the deflate pool; smaller ones
    /// inline (a hand-off costs a copy of the message and a wake-up, about what compressing a
    /// few KiB costs). Default 128 KiB: about 0.5 ms of compression at level 5 on JSON.
    pub fn deflate_pool_threshold(mut self, bytes: usize) -> Self {
        self.settings.pool.threshold = bytes;
        self
    }

    /// Messages larger than this are not compressed on the pool (sent uncompressed, as
    /// [`DeflateOptions::max_compress_size`](crate::protocol::deflate::DeflateOptions::max_compress_size)
    /// does inline): a memory bound, since a job holds the message and its output. Default
    /// 64 MiB, the default message limit; with the pool on, `max_compress_size` (4 MiB) bounds
    /// only what a worker compresses inline.
    pub fn deflate_pool_max_size(mut self, bytes: usize) -> Self {
        self.settings.pool.max_size = bytes;
        self
    }

    /// The IO backend the workers run on. Default [`Backend::Auto`](crate::Backend::Auto):
    /// the `WSX_BACKEND` environment variable if set, else io_uring when the kernel supports
    /// it, else epoll (see [`crate::backend`]). A backend forced here (or by `WSX_BACKEND`)
    /// that the kernel refuses makes [`Builder::start`] fail with
    /// [`io::ErrorKind::Unsupported`]; [`ServerHandle::backend`] tells which one runs.
    pub fn backend(mut self, backend: crate::Backend) -> Self {
        self.settings.backend = backend;
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
        self.start_with_handle(move |worker, _| factory(worker))
    }

    /// Starts the workers like [`Builder::start`], giving the factory the server's
    /// [`ServerHandle`] too, so that a handler can keep it (to publish from a timer, to send
    /// to a connection of another worker, to read the stats).
    ///
    /// # Errors
    ///
    /// As [`Builder::start`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use wsx::{Conn, Handler, Message, Server, ServerHandle};
    ///
    /// struct Feed {
    ///     server: ServerHandle,
    /// }
    /// impl Handler for Feed {
    ///     type State = ();
    ///     fn on_message(&mut self, conn: &mut Conn<'_, ()>, _message: Message<'_>) {
    ///         let subscribers = self.server.subscribers("ticks");
    ///         let _ = conn.send_text(&format!("{subscribers} subscribers"));
    ///     }
    /// }
    ///
    /// let server = Server::builder().start_with_handle(|_worker, server| Feed {
    ///     server: server.clone(),
    /// })?;
    /// server.wait();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn start_with_handle<H, F>(self, factory: F) -> io::Result<ServerHandle>
    where
        H: Handler,
        F: Fn(usize, &ServerHandle) -> H + Send + Sync + 'static,
    {
        let (listeners, local_addr) = match self.bind {
            Bind::Addr(addr) => {
                let mut resolved = addr.to_socket_addrs()?;
                let first = resolved.next().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "address resolves to nothing")
                })?;
                let ls = engine::sys::listen::listen_group(first, self.backlog, self.threads)?;
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
        let mut settings = self.settings;
        settings.backend = engine::sys::select(settings.backend)?;
        if settings.deflate.is_some() && settings.pool.threads > 0 {
            let pool =
                engine::deflate_pool::DeflatePool::new(settings.pool.threads, settings.pool.queue)?;
            settings.deflate_pool = Some(Arc::new(pool));
        }
        let pool = settings.deflate_pool.clone();
        // Every worker's inbox exists before any worker runs, so that each can publish to all.
        let mut prepared = Vec::new();
        let mut inboxes = Vec::new();
        for listener in listeners {
            let (p, inbox) = engine::worker::prepare(listener, settings.backend)?;
            prepared.push(p);
            inboxes.push(inbox);
        }
        let hub = Arc::new(Hub {
            directory: Arc::new(Directory::new(inboxes.len())),
            inboxes,
            backlog: settings.publish_backlog,
            refused: AtomicU64::new(0),
        });
        let stats: Vec<Arc<WorkerStats>> = (0..prepared.len())
            .map(|_| Arc::new(WorkerStats::default()))
            .collect();
        let settings = Arc::new(settings);
        let handle = ServerHandle {
            inner: Arc::new(HandleInner {
                settings: settings.clone(),
                hub: hub.clone(),
                stats: stats.clone(),
                threads: Mutex::new(Vec::new()),
                pool,
                local_addr,
                next_worker: AtomicUsize::new(0),
            }),
        };
        let factory = Arc::new(factory);
        let mut threads = Vec::new();
        for (i, p) in prepared.into_iter().enumerate() {
            let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
            let f = factory.clone();
            let h = handle.clone();
            let thread = engine::worker::spawn(
                i,
                p,
                settings.clone(),
                hub.clone(),
                move |i| f(i, &h),
                core,
                stats[i].clone(),
            )?;
            threads.push(thread);
        }
        *handle
            .inner
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = threads;
        Ok(handle)
    }
}

#[derive(Debug)]
struct HandleInner {
    settings: Arc<Settings>,
    hub: Arc<Hub>,
    stats: Vec<Arc<WorkerStats>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// The deflate pool, stopped once the workers have ended.
    pool: Option<Arc<engine::deflate_pool::DeflatePool>>,
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
    /// A publish did not reach a worker whose inbox holds more than
    /// [`Builder::publish_backlog`] publishes already (the publisher is faster than that
    /// worker delivers); that worker's subscribers miss it. Counted in
    /// [`Stats::publish_backlogged`].
    #[error("a worker's publish backlog is full")]
    Backlogged,
}

fn reach_result(reach: Reach) -> Result<(), HandleError> {
    match reach {
        Reach::All => Ok(()),
        Reach::Backlogged => Err(HandleError::Backlogged),
        Reach::ShutDown => Err(HandleError::ShutDown),
    }
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The IO backend the workers run on: [`Backend::Epoll`](crate::Backend::Epoll) or
    /// [`Backend::IoUring`](crate::Backend::IoUring), never `Auto`.
    pub fn backend(&self) -> crate::Backend {
        self.inner.settings.backend
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.inner.hub.inboxes.len()
    }

    fn inbox(&self, id: ConnId) -> Result<&InboxSender, HandleError> {
        self.inner
            .hub
            .inboxes
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
    /// connection that is gone by the time the worker looks is skipped, and a send the
    /// connection's backpressure refuses is dropped (counted in [`Stats::dropped`]); use
    /// [`ServerHandle::send_tracked`] to hear of either.
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
                token: None,
            },
        )
    }

    /// Sends a message to connection `id` from any thread and reports what became of it to
    /// the worker's [`Handler`]: [`Handler::on_sent`] with `token` once its last byte has been
    /// written to the kernel, or [`Handler::on_send_dropped`] with `token` and a
    /// [`DropReason`] if it did not go (backpressure, or the connection was closing or gone).
    /// A message accepted but still unwritten when the connection ends is listed by
    /// [`Conn::unsent_tokens`] in [`Handler::on_close`] instead.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use wsx::{Conn, ConnId, DropReason, Handler, MessageKind, Server};
    ///
    /// struct Report;
    /// impl Handler for Report {
    ///     type State = ();
    ///     fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
    ///         println!("open: {}", conn.id());
    ///     }
    ///     fn on_sent(&mut self, conn: &mut Conn<'_, ()>, token: u64) {
    ///         println!("{token} went to {}", conn.id());
    ///     }
    ///     fn on_send_dropped(&mut self, id: ConnId, token: u64, reason: DropReason) {
    ///         println!("{token} did not go to {id}: {reason:?}");
    ///     }
    /// }
    ///
    /// let server = Server::builder().port(0).start(|_| Report)?;
    /// // Later, with an id the application kept (from `on_open`):
    /// # fn later(server: &wsx::ServerHandle, id: ConnId) {
    /// server.send_tracked(id, MessageKind::Text, "tick", 7).unwrap();
    /// # }
    /// # let _ = (later, server);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`HandleError`] when the command cannot reach the worker (no callback follows then).
    pub fn send_tracked(
        &self,
        id: ConnId,
        kind: MessageKind,
        payload: impl Into<Bytes>,
        token: u64,
    ) -> Result<(), HandleError> {
        self.command(
            id,
            Command::Send {
                id,
                kind,
                payload: payload.into(),
                token: Some(token),
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
        let n = self.inner.hub.inboxes.len();
        let worker = self.inner.next_worker.fetch_add(1, Ordering::Relaxed) % n;
        let cmd = Command::Connect {
            connector: Box::new(connector),
            tag,
        };
        if self.inner.hub.inboxes[worker].send(cmd) {
            Ok(())
        } else {
            Err(ClientError::Closed)
        }
    }

    /// Publishes `message` to every subscriber of `topic` on every worker: the frame is built
    /// once on this thread, and each worker with subscribers gets one inbox push. A topic
    /// nobody subscribes to costs a lookup and no allocation. Outcomes per subscriber are
    /// counted in [`ServerHandle::topic_stats`].
    ///
    /// # Errors
    ///
    /// [`HandleError::ShutDown`] when a worker that should get it has stopped.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use wsx::{Message, Server};
    ///
    /// struct Subscriber;
    /// impl wsx::Handler for Subscriber {
    ///     type State = ();
    ///     fn on_open(&mut self, conn: &mut wsx::Conn<'_, ()>) {
    ///         conn.subscribe("ticks");
    ///     }
    /// }
    /// let server = Server::builder().start(|_| Subscriber)?;
    /// std::thread::spawn(move || loop {
    ///     let _ = server.publish("ticks", Message::Text("{\"px\":1}"));
    ///     std::thread::sleep(std::time::Duration::from_millis(100));
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn publish(&self, topic: &str, message: Message<'_>) -> Result<(), HandleError> {
        self.publish_with(topic, message, &PublishOptions::default())
    }

    /// [`ServerHandle::publish`] with `options` (`include_self` does not apply here).
    ///
    /// # Errors
    ///
    /// As [`ServerHandle::publish`].
    pub fn publish_with(
        &self,
        topic: &str,
        message: Message<'_>,
        options: &PublishOptions<'_>,
    ) -> Result<(), HandleError> {
        let Some(shared) = self.inner.hub.directory.get(topic) else {
            return Ok(());
        };
        shared.published.fetch_add(1, Ordering::Relaxed);
        let message = Published::new(
            Audience::Topic(shared.name.clone()),
            options.key.map(Into::into),
            message,
            options.compress,
            None,
        );
        self.compress_large(&message);
        reach_result(self.inner.hub.send_to_workers(&message, None))
    }

    /// Sends `message` to every open accepted connection on every worker (ws's
    /// `wss.clients.forEach(c => c.send(m))`), framed once.
    ///
    /// # Errors
    ///
    /// As [`ServerHandle::publish`].
    pub fn broadcast(&self, message: Message<'_>) -> Result<(), HandleError> {
        let message = Published::new(Audience::All, None, message, true, None);
        self.compress_large(&message);
        reach_result(self.inner.hub.send_to_workers(&message, None))
    }

    /// A large publish from outside the workers is compressed here, once, on the publishing
    /// thread (when the server offers permessage-deflate), so that no worker stalls its other
    /// connections on it; smaller ones are compressed by the first worker that needs them.
    fn compress_large(&self, message: &Published) {
        let s = &self.inner.settings;
        if let Some(options) = &s.deflate {
            let len = message.payload().len();
            // (Recipients compress a publish only within `max_compress_size`.)
            if message.compress && len >= s.pool.threshold && len <= options.max_compress_size {
                let _ = message.deflated(options);
            }
        }
    }

    /// Connections subscribed to `topic`, over all workers.
    pub fn subscribers(&self, topic: &str) -> u64 {
        self.topic_stats(topic).map_or(0, |s| s.subscribers)
    }

    /// The counters of `topic`, while it has subscribers (a topic is forgotten, counters and
    /// all, when its last subscriber leaves).
    pub fn topic_stats(&self, topic: &str) -> Option<TopicStats> {
        self.inner.hub.directory.get(topic).map(|t| t.stats())
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
            s.delivered += w.delivered.load(Ordering::Relaxed);
            s.delivery_dropped += w.delivery_dropped.load(Ordering::Relaxed);
            s.conflated += w.conflated.load(Ordering::Relaxed);
            s.slow_closed += w.slow_closed.load(Ordering::Relaxed);
            s.compressed_per_subscriber += w.compressed_per_subscriber.load(Ordering::Relaxed);
            s.dropped += w.dropped.load(Ordering::Relaxed);
        }
        s.publish_backlogged = self.inner.hub.refused.load(Ordering::Relaxed);
        s
    }

    /// Sizes of the workers' structures: the wheel and slab sizes published once per timer
    /// tick (100 ms), the queue counts once per turn of each worker's loop.
    #[doc(hidden)]
    pub fn footprint(&self) -> Footprint {
        let mut f = Footprint::default();
        for w in &self.inner.stats {
            f.paused += w.paused.load(Ordering::Acquire);
            f.timer_entries += w.timer_entries.load(Ordering::Relaxed);
            f.timer_capacity += w.timer_capacity.load(Ordering::Relaxed);
            f.slab_capacity += w.slab_capacity.load(Ordering::Relaxed);
            f.topics += w.topics.load(Ordering::Relaxed);
            f.topic_heap += w.topic_heap.load(Ordering::Relaxed);
            f.queued_bytes += w.queued_bytes.load(Ordering::Relaxed);
            f.queued_peak += w.queued_peak.load(Ordering::Relaxed);
            f.conn_queued_peak = f
                .conn_queued_peak
                .max(w.conn_queued_peak.load(Ordering::Relaxed));
        }
        f
    }

    /// Graceful shutdown: stop accepting, send close 1001 to every connection, wait for the
    /// closing handshakes (and for queued messages to be written) up to `grace`, then drop what
    /// is left. Returns at once; [`ServerHandle::wait`] waits for the end.
    pub fn shutdown(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        for w in &self.inner.hub.inboxes {
            let _ = w.send(Command::Shutdown { deadline });
        }
    }

    /// Blocks until every worker has ended (after [`ServerHandle::shutdown`]), then stops the
    /// deflate pool and joins its threads.
    pub fn wait(&self) {
        let threads =
            std::mem::take(&mut *self.inner.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
        if let Some(pool) = &self.inner.pool {
            pool.shutdown();
        }
    }

    /// The deflate pool's counters (all zero when the server has no pool).
    pub fn deflate_pool_stats(&self) -> DeflatePoolStats {
        self.inner
            .pool
            .as_ref()
            .map_or_else(DeflatePoolStats::default, |p| p.stats())
    }
}

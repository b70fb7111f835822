//! The server's [`Builder`]: where it listens, its workers, limits, timeouts, broadcast
//! policies and deflate, and [`Builder::start`].

use std::io;
use std::net::{TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use std::net::SocketAddr;

use super::handle::launch;
use super::router::{Route, Router};
use super::ServerHandle;
use crate::broadcast::{LastValue, TopicPolicy};
use crate::engine::handler::Handler;
use crate::engine::{self, Settings};
use crate::limits::Limits;

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
    /// No listener: connections only come through `ServerHandle::adopt`.
    None,
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
    /// Routes by path, in the order added (see `router.rs`).
    routes: Vec<(String, Route)>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            bind: Bind::Addr("127.0.0.1:9001".into()),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            pin: true,
            settings: Settings::default(),
            backlog: 1024,
            routes: Vec::new(),
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
            Bind::Listener(_) | Bind::None => "127.0.0.1".to_owned(),
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
            Bind::None => 0,
        }
    }

    /// Accepts from a listener the application opened. Every worker polls a duplicate of it.
    pub fn listener(mut self, listener: TcpListener) -> Self {
        self.bind = Bind::Listener(listener);
        self
    }

    /// Listens nowhere: connections come only from another server, through
    /// [`ServerHandle::adopt`] and [`ServerHandle::adopt_upgraded`] (Node ws's `noServer`).
    /// [`ServerHandle::local_addr`] is then `0.0.0.0:0`. See `docs/external-http.md`.
    pub fn no_listener(mut self) -> Self {
        self.bind = Bind::None;
        self
    }

    /// Serves `path` with `route`'s handler and options (Node ws's "multiple servers sharing
    /// a single HTTP server"). Paths match exactly, without the query; a path no route
    /// serves gets 404. Start a server with routes with [`Builder::start_routes`]. See
    /// [`Route`] and `docs/routes.md`.
    pub fn route(mut self, path: impl Into<String>, route: Route) -> Self {
        self.routes.push((path.into(), route));
        self
    }

    /// Answers plain HTTP requests (requests that do not ask for an upgrade: health checks,
    /// a status page) with what `answer` returns, instead of `426 Upgrade Required`; `None`
    /// from it keeps the 426. It runs on the worker that read the request, so it must be
    /// quick. The response closes the connection; a request body is not read.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsx::{HttpResponse, Server};
    /// # struct App;
    /// # impl wsx::Handler for App { type State = (); }
    ///
    /// let server = Server::builder()
    ///     .port(0)
    ///     .http(|request| match request.path() {
    ///         "/health" => Some(HttpResponse::new(200).body("ok\n")),
    ///         "/" => Some(HttpResponse::html("<!doctype html><p>a websocket server</p>")),
    ///         _ => None,
    ///     })
    ///     .start(|_| App)?;
    /// # server.shutdown(std::time::Duration::ZERO);
    /// # server.wait();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn http<F>(mut self, answer: F) -> Self
    where
        F: Fn(&crate::http::HttpRequest) -> Option<crate::http::HttpResponse>
            + Send
            + Sync
            + 'static,
    {
        self.settings.http = Some(crate::http::HttpFallback(Arc::new(answer)));
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

    /// Joins this node to others over NATS: a publish here reaches the subscribers of every
    /// node with the same backplane, and this node subscribes on NATS to the topics it has
    /// subscribers of (see [`crate::cluster`] and `docs/cluster.md`). Default: none, this node
    /// alone.
    #[cfg(feature = "nats")]
    pub fn backplane(mut self, backplane: crate::cluster::NatsBackplane) -> Self {
        self.settings.backplane = Some(backplane);
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
    /// keeps up); else the send is dropped ([`SendStatus::Dropped`](super::SendStatus::Dropped), counted in
    /// [`Stats::dropped`](super::Stats::dropped)). Control frames are never dropped; instead the worker stops reading
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

    /// Topics whose name starts with `prefix` keep their newest publish per key (the key of
    /// [`Conn::publish_keyed`](crate::Conn::publish_keyed), or none: one per topic), within
    /// `limits`; a connection that subscribes to one gets those values at once, oldest first,
    /// then every publish made after it, none twice. The longest matching prefix wins; `""`
    /// covers every topic. Market data: a new subscriber sees the newest tick per symbol
    /// without waiting for the next. See `docs/broadcast.md`, "Last value".
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use wsx::broadcast::LastValue;
    /// use wsx::{Conn, Handler, Server};
    ///
    /// struct Ticks;
    /// impl Handler for Ticks {
    ///     type State = ();
    ///     fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
    ///         conn.subscribe("ticks"); // gets the newest tick of every symbol now
    ///     }
    /// }
    /// let server = Server::builder()
    ///     .last_value_for("ticks", LastValue::new().max_keys(10_000))
    ///     .start(|_| Ticks)?;
    /// let options = wsx::broadcast::PublishOptions {
    ///     key: Some("AAPL"),
    ///     ..Default::default()
    /// };
    /// server.publish_with("ticks", wsx::Message::Text("{\"AAPL\":189.5}"), &options)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn last_value_for(mut self, prefix: impl Into<String>, limits: LastValue) -> Self {
        self.settings.last_values.push((prefix.into(), limits));
        self
    }

    /// Most publishes waiting in one worker's inbox (from other threads and other workers);
    /// past it a publish skips that worker ([`HandleError::Backlogged`](super::HandleError::Backlogged),
    /// [`Stats::publish_backlogged`](super::Stats::publish_backlogged)) instead of growing its memory without bound. Default
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

    /// Calls [`Handler::on_tick`] on every worker about every `interval`. Default: never.
    ///
    /// An interval under 1 ms is raised to 1 ms. A tick never comes early; a worker that was
    /// busy for several intervals calls `on_tick` once when it is free, not once per missed
    /// interval. See [`Tick`](crate::Tick).
    pub fn tick(mut self, interval: Duration) -> Self {
        self.settings.tick = Some(engine::tick::at_least_1ms(interval));
        self
    }

    /// Serves `wss://`: every accepted connection starts with a TLS handshake with `tls` (its
    /// certificates, SNI, ALPN `http/1.1`, client authentication). The handshake timeout and
    /// limits cover the TLS handshake too; a plain HTTP request gets a 400 saying the port
    /// speaks TLS. See docs/tls.md.
    pub fn tls(mut self, tls: crate::tls::ServerTls) -> Self {
        self.settings.tls = Some(tls);
        self
    }

    /// Requires a PROXY protocol header (v1 or v2, as HAProxy, AWS NLB and most L4 load
    /// balancers send) at the start of every accepted connection, before the HTTP request and
    /// before the TLS ClientHello: [`Conn::peer_addr`](crate::Conn::peer_addr) is then the
    /// client the header names (the TCP peer for `LOCAL` / `UNKNOWN`). A connection without a
    /// valid header within the handshake timeout, or with one over its length bound, is closed
    /// without an answer. Only for listeners that load balancers alone can reach: anyone who
    /// can connect can claim any address. Default off. See docs/client-ip.md.
    pub fn proxy_protocol(mut self, on: bool) -> Self {
        self.settings.proxy.protocol = on;
        self
    }

    /// Believes the `Forwarded` and `X-Forwarded-For` headers of peers in `trusted` (and
    /// nobody else's): [`Conn::peer_addr`](crate::Conn::peer_addr) is then the rightmost hop
    /// that is not itself a trusted proxy. Default: an empty set. See docs/client-ip.md.
    pub fn trusted_proxies(mut self, trusted: crate::TrustedProxies) -> Self {
        self.settings.proxy.trusted = (!trusted.is_empty()).then(|| Arc::new(trusted));
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

    /// Starts the workers with the routes added by [`Builder::route`]: each worker makes one
    /// handler per route.
    ///
    /// # Errors
    ///
    /// As [`Builder::start`]; [`io::ErrorKind::InvalidInput`] without routes, with a path
    /// given twice, or with a [`Builder::path`] (routes say their paths).
    pub fn start_routes(mut self) -> io::Result<ServerHandle> {
        let invalid = |what: String| Err(io::Error::new(io::ErrorKind::InvalidInput, what));
        if self.routes.is_empty() {
            return invalid("no routes: add them with Builder::route".into());
        }
        if self.settings.path.is_some() {
            return invalid("Builder::path and routes together: routes say their paths".into());
        }
        if self.routes.len() >= usize::from(u16::MAX) {
            return invalid(format!(
                "{} routes: at most {}",
                self.routes.len(),
                u16::MAX - 1
            ));
        }
        let routes = std::mem::take(&mut self.routes);
        for (i, (path, _)) in routes.iter().enumerate() {
            if routes[..i].iter().any(|(p, _)| p == path) {
                return invalid(format!("route {path} given twice"));
            }
        }
        self.settings.routes = routes
            .iter()
            .map(|(path, route)| route.settings(path.clone(), self.settings.limits))
            .collect();
        let factories: Vec<_> = routes.iter().map(|(_, r)| r.factory()).collect();
        self.start_inner(move |worker, handle| Router::new(worker, handle, &factories))
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
        if !self.routes.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "routes are set: start them with Builder::start_routes",
            ));
        }
        self.start_inner(factory)
    }

    fn start_inner<H, F>(self, factory: F) -> io::Result<ServerHandle>
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
            Bind::None => (Vec::new(), SocketAddr::from(([0, 0, 0, 0], 0))),
        };
        let pool = self.settings.deflate.is_some() && self.settings.pool.threads > 0;
        launch(
            listeners,
            local_addr,
            self.threads,
            self.pin,
            self.settings,
            pool,
            factory,
        )
    }
}

//! The engine client: [`Client::builder`] starts workers without a listener, whose client
//! connections ([`ServerHandle::connect`]) run on the same slab, timers and [`Handler`] as a
//! server's.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::engine::handler::Handler;
use crate::engine::Settings;
use crate::limits::Limits;
use crate::server::ServerHandle;

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
    /// A builder for an engine that only opens connections, with the defaults documented on
    /// each of its methods.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }
}

/// Configures and starts a client engine ([`Client::builder`]): the options of its workers.
/// What belongs to one connection (URL, subprotocols, headers, handshake timeout, proxy,
/// permessage-deflate offer, protocol limits) is in the
/// [`ClientOptions`](crate::client::ClientOptions) given to [`ServerHandle::connect`].
#[derive(Debug)]
pub struct ClientBuilder {
    threads: usize,
    pin: bool,
    settings: Settings,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        let mut settings = Settings::default();
        settings.pool.threads = 0;
        ClientBuilder {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            pin: true,
            settings,
        }
    }
}

impl ClientBuilder {
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

    /// The workers' bounds; of these, a client connection's opening uses
    /// [`Limits::max_head_size`] (the largest proxy or `101` response head read). The protocol
    /// limits of an open connection are its options' ([`ClientOptions::limits`]). Default
    /// [`Limits::DEFAULT`].
    ///
    /// [`ClientOptions::limits`]: crate::client::ClientOptions::limits
    pub fn limits(mut self, limits: Limits) -> Self {
        self.settings.limits = limits;
        self
    }

    /// Closes a connection from which nothing arrived for `timeout`; with automatic pings (on
    /// by default) a ping goes out at half the timeout, so a live server's pong keeps it open.
    /// `None` turns it off. Default 120 s.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.idle_timeout = timeout;
        self
    }

    /// Sends a ping when a connection has been silent for half the idle timeout. Default on.
    pub fn auto_ping(mut self, on: bool) -> Self {
        self.settings.auto_ping = on;
        self
    }

    /// Time the server has to answer our close frame and then close the TCP connection
    /// (RFC 6455 §7.1.1) before the socket is dropped. Default 5 s.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.settings.close_timeout = timeout;
        self
    }

    /// Backpressure limit on a connection's unwritten output, as the server's
    /// [`Builder::max_buffered`](crate::server::Builder::max_buffered). Default 16 MiB.
    pub fn max_buffered(mut self, bytes: usize) -> Self {
        self.settings.max_buffered = bytes;
        self
    }

    /// `TCP_NODELAY` on the connections' sockets. Default on.
    pub fn nodelay(mut self, on: bool) -> Self {
        self.settings.nodelay = on;
        self
    }

    /// Threads of a deflate pool shared by the workers, that compresses large messages of
    /// connections that negotiated permessage-deflate ([`ClientOptions::deflate`]) off the
    /// worker, as the server's
    /// [`Builder::deflate_threads`](crate::server::Builder::deflate_threads). Default 0: every
    /// message is compressed inline on its worker.
    ///
    /// [`ClientOptions::deflate`]: crate::client::ClientOptions::deflate
    pub fn deflate_threads(mut self, threads: usize) -> Self {
        self.settings.pool.threads = threads;
        self
    }

    /// Messages of at least this many bytes go to the deflate pool (when it has threads).
    /// Default 128 KiB.
    pub fn deflate_pool_threshold(mut self, bytes: usize) -> Self {
        self.settings.pool.threshold = bytes;
        self
    }

    /// The IO backend the workers run on, as the server's
    /// [`Builder::backend`](crate::server::Builder::backend). Default
    /// [`Backend::Auto`](crate::Backend::Auto).
    pub fn backend(mut self, backend: crate::Backend) -> Self {
        self.settings.backend = backend;
        self
    }

    /// Calls [`Handler::on_tick`] on every worker about every `interval`, as the server's
    /// [`Builder::tick`](crate::server::Builder::tick) (at least 1 ms, never early, never in
    /// a burst): a handler that sends on a schedule, independent of what it receives, sends
    /// from there. Default: never.
    pub fn tick(mut self, interval: Duration) -> Self {
        self.settings.tick = Some(crate::engine::tick::at_least_1ms(interval));
        self
    }

    /// Starts the workers. `factory(worker_index)` runs once on each worker thread to make its
    /// [`Handler`]. A client connection's state comes from [`Handler::client_state`]: by
    /// default `State::default()`.
    ///
    /// # Errors
    ///
    /// A thread or poller cannot be created, or the backend asked for is refused.
    pub fn start<H, F>(self, factory: F) -> io::Result<ServerHandle>
    where
        H: Handler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        self.start_with_handle(move |worker, _| factory(worker))
    }

    /// Starts the workers like [`ClientBuilder::start`], giving the factory the engine's
    /// [`ServerHandle`] too (to open more connections from a callback, to read the stats).
    ///
    /// # Errors
    ///
    /// As [`ClientBuilder::start`].
    pub fn start_with_handle<H, F>(self, factory: F) -> io::Result<ServerHandle>
    where
        H: Handler,
        F: Fn(usize, &ServerHandle) -> H + Send + Sync + 'static,
    {
        let pool = self.settings.pool.threads > 0;
        crate::server::launch(
            Vec::new(),
            SocketAddr::from(([0, 0, 0, 0], 0)),
            self.threads,
            self.pin,
            self.settings,
            pool,
            factory,
        )
    }
}

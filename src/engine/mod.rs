//! The engine: all IO. One worker thread per core, each with its own poller, listener, slab of
//! connections, timer wheel and inbox; nothing shared between workers on the per-message path.
//!
//! ```text
//! accept ─► slab slot (handshake) ─► on_upgrade ─► 101 ─► slot (open) ─► on_open
//! readable ─► read into the worker's buffer ─► protocol::Connection ─► Handler callbacks
//!                                                   │ sends go to the worker's cork buffer
//!                                                   ▼
//!                         one write per connection per read; the rest queues in the slot
//! timer wheel ─► handshake deadline, heartbeat ping, idle timeout, close deadline
//! inbox (mpsc + waker) ─► sends, closes, publishes and shutdown from other threads
//! resolver (threads shared by the workers) ─► host names of client connections, off the
//!                                              workers, back through the inbox
//! deflate pool (threads shared by the workers) ─► large messages compressed off the worker,
//!                                                  back through the inbox, in order
//! publish ─► frame once ─► local subscribers (writev of shared frames) + one push per worker
//! ```
//!
//! The IO backend contract is in [`sys`]; the worker owns the protocol logic above it.

pub(crate) mod accept;
pub(crate) mod adopt;
pub(crate) mod conn;
pub(crate) mod deflate_pool;
pub(crate) mod fanout;
pub(crate) mod handler;
pub(crate) mod inbox;
pub(crate) mod outbound;
pub(crate) mod publish;
pub(crate) mod resolve;
pub(crate) mod route;
pub(crate) mod sent;
pub(crate) mod stats;
pub(crate) mod sys;
pub(crate) mod tick;
pub(crate) mod timer;
pub(crate) mod tls;
pub(crate) mod worker;

use std::time::Duration;

use crate::limits::Limits;

/// Server settings shared (read-only) by the workers.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) limits: Limits,
    pub(crate) path: Option<String>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) auto_ping: bool,
    pub(crate) close_timeout: Duration,
    pub(crate) max_buffered: usize,
    pub(crate) max_connections: usize,
    pub(crate) nodelay: bool,
    pub(crate) deflate: Option<std::sync::Arc<crate::protocol::deflate::DeflateOptions>>,
    /// Slow-consumer policies of topics and broadcasts.
    pub(crate) policies: std::sync::Arc<crate::broadcast::Policies>,
    /// Topic prefixes that keep their newest value per key (`Builder::last_value_for`).
    pub(crate) last_values: Vec<(String, crate::broadcast::LastValue)>,
    /// Most publishes waiting in one worker's inbox.
    pub(crate) publish_backlog: usize,
    /// How the deflate pool is sized and used.
    pub(crate) pool: PoolSettings,
    /// The running deflate pool (set when the server starts, if deflate is on and threads > 0).
    pub(crate) deflate_pool: Option<std::sync::Arc<deflate_pool::DeflatePool>>,
    /// The backend asked for (`Auto` until the server starts and resolves it).
    pub(crate) backend: crate::backend::Backend,
    /// Resolves the host names of client connections off the workers (see [`resolve`]).
    pub(crate) resolver: std::sync::Arc<resolve::Resolver>,
    /// How often each worker calls `Handler::on_tick` (at least 1 ms); `None`: never.
    pub(crate) tick: Option<Duration>,
    /// TLS on accepted connections (`wss://`); `None`: plain.
    pub(crate) tls: Option<crate::tls::ServerTls>,
    /// Routes by path, each with the options it overrides (see [`route`]); empty: one handler
    /// for every path (or for `path`).
    pub(crate) routes: Vec<route::RouteSettings>,
    /// Answers plain HTTP requests (not upgrades); `None`: 426.
    pub(crate) http: Option<crate::http::HttpFallback>,
    /// Behind proxies: the PROXY protocol and trusted forwarding headers (worker/proxied.rs).
    pub(crate) proxy: worker::proxied::ProxySettings,
    /// Pub/sub across nodes over NATS; `None`: this node alone.
    #[cfg(feature = "nats")]
    pub(crate) backplane: Option<crate::cluster::NatsBackplane>,
}

/// The deflate pool's settings (see `Builder::deflate_threads` and the other `deflate_*`
/// methods of the server's builder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolSettings {
    /// Pool threads; 0 compresses every message inline on its worker.
    pub(crate) threads: usize,
    /// Most jobs waiting in the queue.
    pub(crate) queue: usize,
    /// Messages at or above this size go to the pool.
    pub(crate) threshold: usize,
    /// Messages above this size are not compressed on the pool (a memory bound).
    pub(crate) max_size: usize,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            threads: 1,
            queue: 64,
            threshold: 128 << 10,
            max_size: 64 << 20,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            limits: Limits::DEFAULT,
            path: None,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(120)),
            auto_ping: true,
            close_timeout: Duration::from_secs(5),
            max_buffered: 16 << 20,
            max_connections: 1_000_000,
            nodelay: true,
            deflate: None,
            policies: std::sync::Arc::default(),
            last_values: Vec::new(),
            publish_backlog: 65_536,
            pool: PoolSettings::default(),
            deflate_pool: None,
            backend: crate::backend::Backend::Auto,
            resolver: std::sync::Arc::default(),
            tick: None,
            tls: None,
            routes: Vec::new(),
            http: None,
            proxy: worker::proxied::ProxySettings::default(),
            #[cfg(feature = "nats")]
            backplane: None,
        }
    }
}

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
//! inbox (mpsc + waker) ─► sends, closes and shutdown from other threads
//! ```
//!
//! The IO backend contract is in [`sys`]; the worker owns the protocol logic above it.

pub(crate) mod accept;
pub(crate) mod conn;
pub(crate) mod handler;
pub(crate) mod inbox;
pub(crate) mod outbound;
pub(crate) mod sent;
pub(crate) mod stats;
pub(crate) mod sys;
pub(crate) mod timer;
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
        }
    }
}

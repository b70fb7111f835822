//! [`Tick`]: what [`Handler::on_tick`](crate::Handler::on_tick) gets, the worker's
//! connections reachable by id, so that a handler can send on a schedule of its own instead
//! of in answer to an event. The part of the loop that calls it is `engine/worker/tick.rs`.

use std::time::{Duration, Instant};

use slab::Slab;

use crate::engine::conn::Ctx;
use crate::engine::worker::Slot;

/// The shortest tick interval; a smaller one is raised to it.
pub(crate) const MIN_TICK: Duration = Duration::from_millis(1);

/// `interval`, raised to [`MIN_TICK`].
pub(crate) fn at_least_1ms(interval: Duration) -> Duration {
    interval.max(MIN_TICK)
}

/// A worker's periodic turn, inside [`Handler::on_tick`](crate::Handler::on_tick): reach any of
/// this worker's open connections by its [`ConnId`](crate::ConnId) and send to it.
///
/// What a connection sends through [`Tick::with`] is corked and written as sends from any
/// other callback are, once `on_tick` returns (one write per connection touched).
///
/// # Examples
///
/// A "delayed echo": every message is held and echoed at the next tick.
///
/// ```
/// use std::time::Duration;
/// use wsx::{Conn, ConnId, Handler, Message, Server, Tick};
///
/// #[derive(Default)]
/// struct Delayed {
///     held: Vec<(ConnId, String)>,
/// }
///
/// impl Handler for Delayed {
///     type State = ();
///     fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
///         if let Message::Text(text) = message {
///             self.held.push((conn.id(), text.to_owned()));
///         }
///     }
///     fn on_tick(&mut self, tick: &mut Tick<'_, ()>) {
///         for (id, text) in self.held.drain(..) {
///             // `None`: the connection is gone; its message goes nowhere.
///             let _ = tick.with(id, |conn| conn.send_text(&text));
///         }
///     }
/// }
///
/// let server = Server::builder()
///     .port(0)
///     .tick(Duration::from_millis(5))
///     .start(|_worker| Delayed::default())?;
/// # server.shutdown(Duration::ZERO);
/// # server.wait();
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Tick<'a, S> {
    pub(crate) conns: &'a mut Slab<Slot<S>>,
    pub(crate) ctx: &'a mut Ctx,
    /// Connections touched before the one whose bytes are in the cork now: their bytes are
    /// in their queues, and the worker writes them once `on_tick` returns.
    pub(crate) touched: &'a mut Vec<(usize, u32)>,
    /// The connection whose sends are in the cork now (key, generation).
    pub(crate) owner: Option<(usize, u32)>,
    pub(crate) worker: usize,
    pub(crate) now: Instant,
}

impl<S> std::fmt::Debug for Tick<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tick")
            .field("worker", &self.worker)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

impl<S> Tick<'_, S> {
    /// The index of the worker whose turn this is (as [`ConnId::worker`](crate::ConnId::worker)
    /// of its connections).
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// When this tick began (read once, before `on_tick` was called).
    pub fn now(&self) -> Instant {
        self.now
    }
}

//! Routes: several handlers on one server, by request path, each with its own options (Node
//! ws's "multiple servers sharing a single HTTP server"). A [`Route`] is a handler factory and
//! the options it overrides; [`Builder::route`](super::Builder::route) adds one and
//! [`Builder::start_routes`](super::Builder::start_routes) starts them.
//!
//! The engine picks the route by path before any handler runs (`engine/route.rs`: an unknown
//! path gets 404) and keeps its index in the connection. Here, each worker's [`Router`] holds
//! one handler per route and hands each callback to the handler of the connection's route,
//! with the connection's state typed as that handler's: each route's state lives in a box, so
//! that handlers with different state types share one slab.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use super::ServerHandle;
use crate::engine::conn::Conn;
use crate::engine::handler::{Handler, InitialState};
use crate::engine::route::RouteSettings;
use crate::handler::{CloseInfo, ConnId, DropReason, Message, Reject, Upgrade};
use crate::limits::Limits;
use crate::protocol::deflate::DeflateOptions;

pub(crate) type Factory = Arc<dyn Fn(usize, &ServerHandle) -> Box<dyn Erased> + Send + Sync>;

/// One route: the factory of its handler (called once per worker, like the factory given to
/// [`Builder::start`](super::Builder::start)) and the options its connections get instead of
/// the server's. Options not set are the server's.
///
/// # Examples
///
/// ```
/// use wsx::{Conn, Handler, Message, Route, Server};
///
/// struct Echo;
/// impl Handler for Echo {
///     type State = ();
///     fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
///         let _ = conn.send(message);
///     }
/// }
///
/// #[derive(Default)]
/// struct Counter {
///     seen: u64,
/// }
/// impl Handler for Counter {
///     type State = u64; // messages on this connection
///     fn on_message(&mut self, conn: &mut Conn<'_, u64>, _message: Message<'_>) {
///         self.seen += 1;
///         *conn.state_mut() += 1;
///         let _ = conn.send_text(&conn.state().to_string());
///     }
/// }
///
/// let server = Server::builder()
///     .port(0)
///     .route("/echo", Route::new(|_worker| Echo).max_payload(64 << 10))
///     .route("/count", Route::new(|_worker| Counter::default()))
///     .start_routes()?;
/// # server.shutdown(std::time::Duration::ZERO);
/// # server.wait();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Route {
    factory: Factory,
    limits: Option<Limits>,
    max_payload: Option<u64>,
    deflate: Option<Option<Arc<DeflateOptions>>>,
    idle_timeout: Option<Option<Duration>>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("limits", &self.limits)
            .field("max_payload", &self.max_payload)
            .field("deflate", &self.deflate)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl Route {
    /// A route whose handler `factory(worker_index)` makes, once on each worker.
    pub fn new<H, F>(factory: F) -> Route
    where
        H: Handler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        Route::with_handle(move |worker, _| factory(worker))
    }

    /// [`Route::new`], giving the factory the server's [`ServerHandle`] too (as
    /// [`Builder::start_with_handle`](super::Builder::start_with_handle) does).
    pub fn with_handle<H, F>(factory: F) -> Route
    where
        H: Handler,
        F: Fn(usize, &ServerHandle) -> H + Send + Sync + 'static,
    {
        Route {
            factory: Arc::new(move |worker, handle| {
                Box::new(Typed(factory(worker, handle))) as Box<dyn Erased>
            }),
            limits: None,
            max_payload: None,
            deflate: None,
            idle_timeout: None,
        }
    }

    /// Largest message on this route (frames capped at the same size), as
    /// [`Builder::max_payload`](super::Builder::max_payload) sets for the server.
    pub fn max_payload(mut self, bytes: u64) -> Self {
        self.max_payload = Some(bytes);
        self
    }

    /// All protocol limits of this route; see [`Limits`]. A [`Route::max_payload`] applies on
    /// top.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Offers permessage-deflate on this route with `options` (whether the server does or
    /// not).
    pub fn deflate(mut self, options: DeflateOptions) -> Self {
        self.deflate = Some(Some(Arc::new(options)));
        self
    }

    /// No permessage-deflate on this route, even if the server offers it.
    pub fn no_deflate(mut self) -> Self {
        self.deflate = Some(None);
        self
    }

    /// The idle timeout of this route's connections, as
    /// [`Builder::idle_timeout`](super::Builder::idle_timeout) sets for the server.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// The engine's view of the route at `path`, with the server's `limits` under it.
    pub(crate) fn settings(&self, path: String, limits: Limits) -> RouteSettings {
        let mut own = self.limits.unwrap_or(limits);
        if let Some(bytes) = self.max_payload {
            own.max_message_size = bytes;
            own.max_frame_size = own.max_frame_size.min(bytes);
        }
        RouteSettings {
            path,
            limits: (self.limits.is_some() || self.max_payload.is_some()).then_some(own),
            deflate: self.deflate.clone(),
            idle_timeout: self.idle_timeout,
        }
    }

    /// The factory, for the worker's [`Router`].
    pub(crate) fn factory(&self) -> Factory {
        self.factory.clone()
    }
}

/// A connection's state on a routed server: the state of its route's handler.
pub(crate) struct RouteState(Box<dyn Any>);

// Built by the route's `on_upgrade`, never from nothing.
impl InitialState for RouteState {}

/// A route's handler with its state type erased, so that one worker holds handlers of
/// different types.
pub(crate) trait Erased {
    fn on_upgrade(&mut self, upgrade: &mut Upgrade<'_>) -> Result<RouteState, Reject>;
    fn on_open(&mut self, conn: &mut Conn<'_, RouteState>);
    fn on_message(&mut self, conn: &mut Conn<'_, RouteState>, message: Message<'_>);
    fn on_ping(&mut self, conn: &mut Conn<'_, RouteState>, payload: &[u8]);
    fn on_pong(&mut self, conn: &mut Conn<'_, RouteState>, payload: &[u8]);
    fn on_drain(&mut self, conn: &mut Conn<'_, RouteState>);
    fn on_sent(&mut self, conn: &mut Conn<'_, RouteState>, token: u64);
    fn on_send_dropped(&mut self, id: ConnId, token: u64, reason: DropReason);
    fn on_close(&mut self, conn: &mut Conn<'_, RouteState>, close: &CloseInfo);
}

struct Typed<H>(H);

/// Runs `f` with `conn` typed as a connection of state `S` (the state its route made).
fn typed<S: 'static>(conn: &mut Conn<'_, RouteState>, f: impl FnOnce(&mut Conn<'_, S>)) {
    let Some(user) = conn.user.0.downcast_mut::<S>() else {
        debug_assert!(false, "a connection's state is its route's");
        return;
    };
    let mut conn = Conn {
        tx: &mut *conn.tx,
        io: &mut *conn.io,
        user,
        ctx: &mut *conn.ctx,
    };
    f(&mut conn);
}

impl<H: Handler> Erased for Typed<H> {
    fn on_upgrade(&mut self, upgrade: &mut Upgrade<'_>) -> Result<RouteState, Reject> {
        let state = self.0.on_upgrade(upgrade)?;
        Ok(RouteState(Box::new(state)))
    }
    fn on_open(&mut self, conn: &mut Conn<'_, RouteState>) {
        typed(conn, |c| self.0.on_open(c));
    }
    fn on_message(&mut self, conn: &mut Conn<'_, RouteState>, message: Message<'_>) {
        typed(conn, |c| self.0.on_message(c, message));
    }
    fn on_ping(&mut self, conn: &mut Conn<'_, RouteState>, payload: &[u8]) {
        typed(conn, |c| self.0.on_ping(c, payload));
    }
    fn on_pong(&mut self, conn: &mut Conn<'_, RouteState>, payload: &[u8]) {
        typed(conn, |c| self.0.on_pong(c, payload));
    }
    fn on_drain(&mut self, conn: &mut Conn<'_, RouteState>) {
        typed(conn, |c| self.0.on_drain(c));
    }
    fn on_sent(&mut self, conn: &mut Conn<'_, RouteState>, token: u64) {
        typed(conn, |c| self.0.on_sent(c, token));
    }
    fn on_send_dropped(&mut self, id: ConnId, token: u64, reason: DropReason) {
        self.0.on_send_dropped(id, token, reason);
    }
    fn on_close(&mut self, conn: &mut Conn<'_, RouteState>, close: &CloseInfo) {
        typed(conn, |c| self.0.on_close(c, close));
    }
}

/// A worker's handlers, one per route, as one [`Handler`].
///
/// Routes take no [`Handler::on_tick`] and no client connections
/// ([`ServerHandle::connect`] on a routed server fails with
/// [`ClientError::NoState`](crate::client::ClientError::NoState)).
pub(crate) struct Router {
    routes: Vec<Box<dyn Erased>>,
    /// By slab key: the generation and route of the connection that last opened there, so
    /// that `on_send_dropped`, which has only an id, reaches the right route.
    owners: Vec<(u32, u16)>,
}

impl Router {
    pub(crate) fn new(worker: usize, handle: &ServerHandle, factories: &[Factory]) -> Router {
        Router {
            routes: factories.iter().map(|f| f(worker, handle)).collect(),
            owners: Vec::new(),
        }
    }

    fn route(&mut self, route: u16) -> Option<&mut Box<dyn Erased>> {
        self.routes.get_mut(usize::from(route).checked_sub(1)?)
    }
}

impl Handler for Router {
    type State = RouteState;

    fn on_upgrade(&mut self, upgrade: &mut Upgrade<'_>) -> Result<RouteState, Reject> {
        match self.route(upgrade.route) {
            Some(h) => h.on_upgrade(upgrade),
            None => Err(Reject::new(404)),
        }
    }

    fn client_state(&mut self, _url: &crate::client::Url, _tag: u64) -> Option<RouteState> {
        None
    }

    fn on_open(&mut self, conn: &mut Conn<'_, RouteState>) {
        let (key, gen, route) = (conn.io.id.key as usize, conn.io.id.gen, conn.io.route);
        if self.owners.len() <= key {
            self.owners.resize(key + 1, (0, 0));
        }
        self.owners[key] = (gen, route);
        if let Some(h) = self.route(route) {
            h.on_open(conn);
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_, RouteState>, message: Message<'_>) {
        if let Some(h) = self.route(conn.io.route) {
            h.on_message(conn, message);
        }
    }

    fn on_ping(&mut self, conn: &mut Conn<'_, RouteState>, payload: &[u8]) {
        if let Some(h) = self.route(conn.io.route) {
            h.on_ping(conn, payload);
        }
    }

    fn on_pong(&mut self, conn: &mut Conn<'_, RouteState>, payload: &[u8]) {
        if let Some(h) = self.route(conn.io.route) {
            h.on_pong(conn, payload);
        }
    }

    fn on_drain(&mut self, conn: &mut Conn<'_, RouteState>) {
        if let Some(h) = self.route(conn.io.route) {
            h.on_drain(conn);
        }
    }

    fn on_sent(&mut self, conn: &mut Conn<'_, RouteState>, token: u64) {
        if let Some(h) = self.route(conn.io.route) {
            h.on_sent(conn, token);
        }
    }

    fn on_send_dropped(&mut self, id: ConnId, token: u64, reason: DropReason) {
        let route = match self.owners.get(id.key as usize) {
            Some(&(gen, route)) if gen == id.gen => route,
            _ => return,
        };
        if let Some(h) = self.route(route) {
            h.on_send_dropped(id, token, reason);
        }
    }

    fn on_close(&mut self, conn: &mut Conn<'_, RouteState>, close: &CloseInfo) {
        if let Some(h) = self.route(conn.io.route) {
            h.on_close(conn, close);
        }
    }
}

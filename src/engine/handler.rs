//! The [`Handler`] trait: the callbacks a worker makes into user code, with a [`Conn`] to act
//! on the connection.

use crate::client::{ClientError, Url};
use crate::engine::conn::Conn;
use crate::engine::tick::Tick;
use crate::handler::{CloseInfo, ConnId, DropReason, Message, Reject, Upgrade};

/// How a connection's state begins when no callback builds it: every [`Default`] type starts
/// from `default()`; a state without one says so with an empty impl, and is then built by
/// [`Handler::on_upgrade`] (accepted connections) and [`Handler::client_state`] (client
/// connections).
///
/// # Examples
///
/// A session that exists only once the request has been seen:
///
/// ```
/// use wsx::{Conn, Handler, InitialState, Reject, Upgrade};
///
/// struct Session {
///     user: String,
/// }
/// impl InitialState for Session {} // none: built from the request
///
/// struct App;
/// impl Handler for App {
///     type State = Session;
///     fn on_upgrade(&mut self, upgrade: &mut Upgrade<'_>) -> Result<Session, Reject> {
///         let user = upgrade.header("x-user").ok_or_else(|| Reject::new(401))?;
///         let user = String::from_utf8_lossy(user).into_owned();
///         Ok(Session { user })
///     }
///     fn on_open(&mut self, conn: &mut Conn<'_, Session>) {
///         let _ = conn.send_text(&format!("hello {}", conn.state().user));
///     }
/// }
///
/// let server = wsx::Server::builder().port(0).start(|_| App)?;
/// # server.shutdown(std::time::Duration::ZERO);
/// # server.wait();
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait InitialState: Sized {
    /// The state a connection starts with when no callback builds one; `None` (the default)
    /// for a type that has none.
    fn initial() -> Option<Self> {
        None
    }
}

impl<T: Default> InitialState for T {
    fn initial() -> Option<Self> {
        Some(T::default())
    }
}

/// The application's side of a server: one instance per worker thread, created on that thread
/// by the factory given to [`Builder::start`](crate::server::Builder::start), so it needs neither `Send` nor locks.
///
/// Every callback gets a [`Conn`]; what it sends is corked and leaves in one write when the
/// callbacks for the current read are done.
pub trait Handler: 'static {
    /// Per-connection state, kept in the worker's slab next to the connection. Any
    /// [`Default`] type works as it is; a type without a default declares
    /// `impl InitialState for T {}` and is built by [`Handler::on_upgrade`] (and, for client
    /// connections, [`Handler::client_state`]). See [`InitialState`].
    type State: InitialState + 'static;

    /// Decides on an upgrade request: accept with the connection's initial state (choosing a
    /// subprotocol and adding headers through `upgrade`), or refuse with an HTTP status. The
    /// default accepts every request with the state's [`InitialState::initial`]
    /// (`State::default()`); a handler whose state has none must override it (the default
    /// refuses with `500` then).
    ///
    /// # Errors
    ///
    /// A [`Reject`] refuses the upgrade with its status.
    fn on_upgrade(&mut self, upgrade: &mut Upgrade<'_>) -> Result<Self::State, Reject> {
        let _ = upgrade;
        Self::State::initial().ok_or_else(|| Reject::new(500))
    }

    /// The state of a client connection opened with
    /// [`ServerHandle::connect`](crate::ServerHandle::connect), called when the server's `101`
    /// has been checked, before [`Handler::on_open`]; `tag` is the one given to `connect`. The
    /// default is the state's [`InitialState::initial`] (`State::default()`). `None` fails the
    /// connection with [`ClientError::NoState`] (to [`Handler::on_connect_error`]).
    fn client_state(&mut self, url: &Url, tag: u64) -> Option<Self::State> {
        let _ = (url, tag);
        Self::State::initial()
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

    /// The last byte of the message sent with `token` ([`Conn::send_tracked`],
    /// [`ServerHandle::send_tracked`](crate::ServerHandle::send_tracked)) has been written to
    /// the kernel. Called once per tracked message that was not dropped, in send order, and
    /// never after [`Handler::on_close`] (the tokens still unwritten then are in
    /// [`Conn::unsent_tokens`]).
    fn on_sent(&mut self, conn: &mut Conn<'_, Self::State>, token: u64) {
        let _ = (conn, token);
    }

    /// A tracked send from another thread
    /// ([`ServerHandle::send_tracked`](crate::ServerHandle::send_tracked)) did not go to
    /// connection `id`: dropped by backpressure, or the connection was closing or gone (then
    /// there is no [`Conn`] to give). No `on_sent` follows for `token`.
    fn on_send_dropped(&mut self, id: ConnId, token: u64, reason: DropReason) {
        let _ = (id, token, reason);
    }

    /// A client connection opened with [`ServerHandle::connect`](crate::ServerHandle::connect) failed before it opened
    /// (TCP, proxy, handshake, timeout or a redirect that may not be followed). `tag` is the one
    /// given to `connect`.
    fn on_connect_error(&mut self, url: &Url, tag: u64, error: &ClientError) {
        let _ = (url, tag, error);
    }

    /// The worker's periodic turn, about every interval set with
    /// [`Builder::tick`](crate::server::Builder::tick) or
    /// [`ClientBuilder::tick`](crate::ClientBuilder::tick); never called without one. Through
    /// `tick` the handler reaches any of this worker's open connections by id
    /// ([`Tick::with`]) and sends to them: sends on a schedule of the handler's own, not in
    /// answer to an event. What it sends is written once `on_tick` returns.
    ///
    /// The interval is at least 1 ms (a smaller one is raised to it). A tick never comes
    /// before its time; a worker busy for several intervals calls `on_tick` once when it is
    /// free and the next one an interval later (no burst to catch up), so count time with
    /// [`Tick::now`], not ticks.
    ///
    /// # Examples
    ///
    /// A client engine that sends one message per connection every 10 ms, whatever comes
    /// back (open-loop load):
    ///
    /// ```
    /// use std::time::Duration;
    /// use wsx::{Client, Conn, ConnId, Handler, Tick};
    ///
    /// #[derive(Default)]
    /// struct Load {
    ///     open: Vec<ConnId>,
    /// }
    ///
    /// impl Handler for Load {
    ///     type State = ();
    ///     fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
    ///         self.open.push(conn.id());
    ///     }
    ///     fn on_tick(&mut self, tick: &mut Tick<'_, ()>) {
    ///         // Forget the connections that are gone.
    ///         self.open
    ///             .retain(|&id| tick.with(id, |conn| conn.send_text("load").is_ok()).is_some());
    ///     }
    /// }
    ///
    /// let client = Client::builder()
    ///     .threads(1)
    ///     .tick(Duration::from_millis(10))
    ///     .start(|_worker| Load::default())?;
    /// # client.shutdown(Duration::ZERO);
    /// # client.wait();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn on_tick(&mut self, tick: &mut Tick<'_, Self::State>) {
        let _ = tick;
    }

    /// The connection ended; sends now fail with [`crate::SendError::Closing`]. Called once for
    /// every connection that was opened.
    fn on_close(&mut self, conn: &mut Conn<'_, Self::State>, close: &CloseInfo) {
        let _ = (conn, close);
    }
}

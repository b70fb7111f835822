//! Connections another server accepted, moved onto the workers: Node ws's `noServer` +
//! `handleUpgrade`. [`ServerHandle::adopt`] takes a connection whose upgrade request another
//! server read and did not answer; [`ServerHandle::answer`] and
//! [`ServerHandle::adopt_upgraded`] serve one (hyper, axum) that answers the upgrade itself.
//! See `docs/external-http.md`.

use std::io;
use std::net::TcpStream;

use super::ServerHandle;
use crate::engine::adopt::{Adoption, Answered};
use crate::engine::inbox::Command;
use crate::handler::Reject;
use crate::protocol::handshake::{self, AcceptOptions, HandshakeError, UpgradeRequest};

/// Most bytes that may follow the request head in an adoption (what the other server read
/// past the head: the first frames). They are handled as one read, and must fit the worker's
/// read buffer.
pub const MAX_ADOPT_LEFTOVER: usize = 128 << 10;

/// A connection to adopt: a TCP socket, with the TLS session another server runs on it when
/// it serves `wss://` (its handshake done: the session moves onto the worker, with any
/// plaintext it already decrypted).
///
/// # Examples
///
/// ```no_run
/// fn both(sock: std::net::TcpStream, session: rustls::ServerConnection) -> [wsx::Adopted; 2] {
///     let plain: wsx::Adopted = sock.try_clone().expect("a second descriptor").into();
///     let tls = wsx::Adopted::tls(sock, session);
///     [plain, tls]
/// }
/// # let _ = both;
/// ```
#[derive(Debug)]
pub struct Adopted {
    sock: TcpStream,
    tls: Option<rustls::ServerConnection>,
    client: Option<std::net::SocketAddr>,
}

impl Adopted {
    /// A plain TCP connection.
    pub fn tcp(sock: TcpStream) -> Self {
        Adopted {
            sock,
            tls: None,
            client: None,
        }
    }

    /// A TCP connection with the TLS session another server runs on it (with tokio-rustls:
    /// `TlsStream::into_inner()`, the `TcpStream` made std with `into_std()`).
    pub fn tls(sock: TcpStream, session: rustls::ServerConnection) -> Self {
        Adopted {
            sock,
            tls: Some(session),
            client: None,
        }
    }

    /// The client's address as the server in front learned it (from a PROXY protocol header
    /// or the forwarding headers of a proxy it trusts): [`Conn::peer_addr`] and
    /// [`Upgrade::peer_addr`] give it, `tcp_peer_addr` the socket's own peer. Without it, the
    /// socket's peer is the client (unless this server's own
    /// [`Builder::trusted_proxies`](super::Builder::trusted_proxies) reads the request's
    /// forwarding headers).
    ///
    /// [`Conn::peer_addr`]: crate::Conn::peer_addr
    /// [`Upgrade::peer_addr`]: crate::Upgrade::peer_addr
    pub fn client_addr(mut self, client: std::net::SocketAddr) -> Self {
        self.client = Some(client);
        self
    }
}

impl From<TcpStream> for Adopted {
    fn from(sock: TcpStream) -> Self {
        Adopted::tcp(sock)
    }
}

/// Why a connection could not be adopted. The connection is dropped (closed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdoptError {
    /// The server has stopped.
    #[error("server is shut down")]
    ShutDown,
    /// The socket could not be made non-blocking (it is not a connected socket).
    #[error("the socket cannot be adopted: {0}")]
    Io(#[from] io::Error),
    /// More bytes than a worker takes in one read: the head over
    /// [`Limits::max_head_size`](crate::Limits::max_head_size) plus
    /// [`MAX_ADOPT_LEFTOVER`], or a leftover over [`MAX_ADOPT_LEFTOVER`].
    #[error("{len} bytes to adopt, over the bound of {max}")]
    TooLarge {
        /// The bytes given.
        len: usize,
        /// The bound.
        max: usize,
    },
}

/// An upgrade request checked and negotiated for a server that answers it itself: the
/// headers its `101` must carry, and what the worker needs to open the connection once the
/// `101` is out ([`ServerHandle::adopt_upgraded`]).
///
/// Made by [`ServerHandle::answer`]: the request passed wsx's checks (RFC 6455 §4.2.1, the
/// limits), a route serves its path, and permessage-deflate was negotiated with the server's
/// (or the route's) options. No subprotocol is chosen unless
/// [`Answer::select_protocol`] chooses one.
#[derive(Debug)]
pub struct Answer {
    answered: Answered,
    response: Vec<u8>,
}

impl Answer {
    fn new(request: UpgradeRequest, decision: crate::engine::route::Decision) -> Answer {
        let mut a = Answer {
            answered: Answered {
                request,
                decision,
                protocol: None,
                context: None,
            },
            response: Vec::new(),
        };
        a.render();
        a
    }

    fn render(&mut self) {
        let offers: Vec<_> = self
            .answered
            .decision
            .deflate
            .iter()
            .map(|(offer, _, _)| offer.clone())
            .collect();
        let options = AcceptOptions::new().with_extensions(&offers);
        let options = match self.answered.protocol.as_deref() {
            Some(p) => options.with_protocol(p),
            None => options,
        };
        self.response.clear();
        // The protocol is one the client offered and the extension one it asked for.
        let written = handshake::write_accept(&self.answered.request, &options, &mut self.response);
        debug_assert!(written.is_ok(), "{written:?}");
    }

    /// The parsed request: path, query, headers, offered subprotocols and extensions.
    pub fn request(&self) -> &UpgradeRequest {
        &self.answered.request
    }

    /// Chooses the subprotocol the `101` names. False (and nothing chosen) when the client did
    /// not offer it.
    pub fn select_protocol(&mut self, protocol: &str) -> bool {
        if !self.answered.request.protocols().any(|p| p == protocol) {
            return false;
        }
        self.answered.protocol = Some(protocol.to_owned());
        self.render();
        true
    }

    /// Carries `context` (what the server in front learned: the user it authenticated, a
    /// session) to [`Handler::on_upgrade`](crate::Handler::on_upgrade) on the worker, which takes
    /// it with [`Upgrade::take_context`](crate::Upgrade::take_context).
    ///
    /// # Examples
    ///
    /// ```
    /// use wsx::{Conn, Handler, Reject, Upgrade};
    ///
    /// struct User(String);
    /// impl wsx::InitialState for User {}
    ///
    /// struct App;
    /// impl Handler for App {
    ///     type State = User;
    ///     fn on_upgrade(&mut self, upgrade: &mut Upgrade<'_>) -> Result<User, Reject> {
    ///         // Authenticated by the server in front; nothing to look up again.
    ///         upgrade.take_context::<User>().ok_or_else(|| Reject::new(401))
    ///     }
    ///     fn on_open(&mut self, conn: &mut Conn<'_, User>) {
    ///         let greeting = format!("hello {}", conn.state().0);
    ///         let _ = conn.send_text(&greeting);
    ///     }
    /// }
    ///
    /// // The server in front, once it has authenticated the request:
    /// fn authenticated(answer: wsx::Answer, user: &str) -> wsx::Answer {
    ///     answer.with_context(User(user.to_owned()))
    /// }
    /// # let _ = (authenticated, App);
    /// ```
    pub fn with_context<T: std::any::Any + Send>(mut self, context: T) -> Self {
        self.answered.context = Some(Box::new(context));
        self
    }

    /// The subprotocol chosen, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.answered.protocol.as_deref()
    }

    /// Whether permessage-deflate was agreed (the `101` carries its
    /// `Sec-WebSocket-Extensions`).
    pub fn deflate(&self) -> bool {
        self.answered.decision.deflate.is_some()
    }

    /// The headers of the `101 Switching Protocols` response, in order: `Upgrade`,
    /// `Connection`, `Sec-WebSocket-Accept`, then `Sec-WebSocket-Protocol` and
    /// `Sec-WebSocket-Extensions` when chosen.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        // The response is ASCII written by `write_accept`.
        let text = std::str::from_utf8(&self.response).unwrap_or_default();
        text.split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(": "))
    }

    /// The complete `101` response head, for a server that writes bytes itself.
    pub fn response(&self) -> &[u8] {
        &self.response
    }
}

/// The refusal a handshake error gets (as a worker writes it: status, the headers RFC 6455
/// asks for with 405 and 426, the error as body).
fn reject(e: &HandshakeError) -> Reject {
    let r = Reject::new(e.status()).body(e.to_string());
    match e.status() {
        405 => r.header("Allow", "GET"),
        426 => r
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13, 8"),
        _ => r,
    }
}

impl ServerHandle {
    /// Moves a connection whose upgrade request another server read onto a worker, as Node
    /// ws's `handleUpgrade` does: `head` is the request head it read and `leftover` what it
    /// read after it. The worker runs what it runs for a connection it accepted: the checks,
    /// the route, subprotocol and permessage-deflate negotiation, [`Handler::on_upgrade`],
    /// the `101` or the refusal, then the connection is the worker's (the handshake timeout
    /// runs from now). Nothing may have been written to the connection.
    ///
    /// The worker is chosen in turn. The connection counts against
    /// [`Builder::max_connections`](super::Builder::max_connections) like an accepted one.
    ///
    /// # Errors
    ///
    /// [`AdoptError`]; the connection is closed.
    ///
    /// [`Handler::on_upgrade`]: crate::Handler::on_upgrade
    pub fn adopt(
        &self,
        stream: impl Into<Adopted>,
        head: &[u8],
        leftover: &[u8],
    ) -> Result<(), AdoptError> {
        let max = self.settings().limits.max_head_size + MAX_ADOPT_LEFTOVER;
        let len = head.len() + leftover.len();
        if len > max || leftover.len() > MAX_ADOPT_LEFTOVER {
            return Err(AdoptError::TooLarge { len, max });
        }
        let mut bytes = Vec::with_capacity(len);
        bytes.extend_from_slice(head);
        bytes.extend_from_slice(leftover);
        self.send_adoption(stream.into(), bytes, None)
    }

    /// Checks an upgrade request for a server that answers it itself (hyper's
    /// `hyper::upgrade::on`, axum): wsx's request checks, the route for its path and
    /// permessage-deflate negotiation, now, on the calling thread. `head` is the request head
    /// (`GET /path HTTP/1.1\r\n…\r\n\r\n`).
    ///
    /// Send a `101 Switching Protocols` with [`Answer::headers`], then give the connection
    /// and the answer to [`ServerHandle::adopt_upgraded`].
    ///
    /// # Errors
    ///
    /// The refusal to send instead of the `101`: 400, 405, 426 or 431 for a request that
    /// fails a check (with the headers RFC 6455 asks for), 404 for a path no route serves.
    pub fn answer(&self, head: &[u8]) -> Result<Answer, Reject> {
        let settings = self.settings();
        let request = match UpgradeRequest::parse(head, &settings.limits) {
            Ok(Some((request, _))) => request,
            Ok(None) => return Err(Reject::new(400).body("incomplete request head")),
            Err(e) => return Err(reject(&e)),
        };
        let decision = settings.decide(&request)?;
        Ok(Answer::new(request, decision))
    }

    /// [`ServerHandle::answer`] for a request another server parsed: its method, request
    /// target (`/path?query`) and headers.
    ///
    /// # Errors
    ///
    /// As [`ServerHandle::answer`]; 400 for a method, target or header that cannot be put in
    /// a request head (CR, LF, spaces in the target).
    ///
    /// # Examples
    ///
    /// ```
    /// struct App;
    /// impl wsx::Handler for App {
    ///     type State = ();
    /// }
    /// let server = wsx::Server::builder().no_listener().start(|_| App)?;
    /// let answer = server
    ///     .answer_request(
    ///         "GET",
    ///         "/chat",
    ///         [
    ///             ("host", &b"example.com"[..]),
    ///             ("upgrade", b"websocket"),
    ///             ("connection", b"Upgrade"),
    ///             ("sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    ///             ("sec-websocket-version", b"13"),
    ///         ],
    ///     )
    ///     .expect("a valid upgrade request");
    /// assert!(answer
    ///     .headers()
    ///     .any(|(name, value)| name == "Sec-WebSocket-Accept"
    ///         && value == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    /// # server.shutdown(std::time::Duration::ZERO);
    /// # server.wait();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn answer_request<'a>(
        &self,
        method: &str,
        target: &str,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Answer, Reject> {
        let bad = |s: &[u8]| s.iter().any(|&b| b == b'\r' || b == b'\n');
        if bad(method.as_bytes()) || bad(target.as_bytes()) || target.contains(' ') {
            return Err(Reject::new(400).body("malformed request line"));
        }
        let mut head = format!("{method} {target} HTTP/1.1\r\n").into_bytes();
        for (name, value) in headers {
            if bad(name.as_bytes()) || bad(value) || name.contains(':') {
                return Err(Reject::new(400).body("malformed header"));
            }
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value);
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        self.answer(&head)
    }

    /// Moves a connection another server answered `101` on (with [`Answer::headers`]) onto a
    /// worker: [`Handler::on_upgrade`] builds its state there (the subprotocol and the
    /// permessage-deflate parameters are the answer's; the `101` being out, a refusal from it
    /// closes the connection with 1008), then [`Handler::on_open`] and the frames in
    /// `leftover`, the bytes the other server read after the request (hyper's
    /// `Parts::read_buf`).
    ///
    /// # Errors
    ///
    /// [`AdoptError`]; the connection is closed.
    ///
    /// [`Handler::on_upgrade`]: crate::Handler::on_upgrade
    /// [`Handler::on_open`]: crate::Handler::on_open
    pub fn adopt_upgraded(
        &self,
        stream: impl Into<Adopted>,
        answer: Answer,
        leftover: &[u8],
    ) -> Result<(), AdoptError> {
        if leftover.len() > MAX_ADOPT_LEFTOVER {
            return Err(AdoptError::TooLarge {
                len: leftover.len(),
                max: MAX_ADOPT_LEFTOVER,
            });
        }
        self.send_adoption(stream.into(), leftover.to_vec(), Some(answer.answered))
    }

    fn send_adoption(
        &self,
        stream: Adopted,
        bytes: Vec<u8>,
        answered: Option<Answered>,
    ) -> Result<(), AdoptError> {
        stream.sock.set_nonblocking(true)?;
        let cmd = Command::Adopt(Box::new(Adoption {
            sock: stream.sock,
            tls: stream.tls,
            bytes,
            answered,
            client: stream.client,
        }));
        if self.send_next(cmd) {
            Ok(())
        } else {
            Err(AdoptError::ShutDown)
        }
    }
}

//! What the engine and the public API share (a leaf: it depends on the protocol core only):
//! connection ids, messages handed to callbacks, what became of a send, how a connection
//! ended, and the upgrade request with its answer. The [`Handler`](crate::Handler) trait that
//! takes them lives with the engine that calls it (`engine/handler.rs`), next to
//! [`Conn`](crate::Conn).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::protocol::handshake::UpgradeRequest;
use crate::protocol::{CloseCode, MessageKind};

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
    /// It waits behind unwritten bytes ([`Conn::buffered_amount`](crate::Conn::buffered_amount) was above zero); it will be
    /// written as the peer reads, in order.
    Queued,
    /// Not sent: bytes were unwritten and the message's frame would have taken them past
    /// [`Builder::max_buffered`](crate::server::Builder::max_buffered). Counted in
    /// [`Stats::dropped`](crate::Stats::dropped).
    Dropped,
}

/// Why a tracked send from another thread did not go, given to
/// [`Handler::on_send_dropped`](crate::Handler::on_send_dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// Backpressure: what the connection has unwritten left no room for it
    /// ([`SendStatus::Dropped`]).
    Backpressure,
    /// The connection was closing (a close frame was sent or received) or is gone.
    Closed,
    /// The send was refused for another reason (a fragmented message in progress on the
    /// connection).
    Refused(crate::SendError),
}

/// How a connection ended, given to [`Handler::on_close`](crate::Handler::on_close).
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

/// The upgrade request as [`Handler::on_upgrade`](crate::Handler::on_upgrade) sees it, and the answer it shapes.
#[derive(Debug)]
pub struct Upgrade<'a> {
    pub(crate) request: &'a UpgradeRequest,
    pub(crate) peer: SocketAddr,
    /// The route serving the request (see `engine/route.rs`): 0 without routes.
    pub(crate) route: u16,
    /// The TCP peer's own address (a proxy's, behind one).
    pub(crate) tcp_peer: SocketAddr,
    pub(crate) protocol: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
    /// What a front server learned, from [`Answer::with_context`](crate::Answer::with_context).
    pub(crate) context: Option<Box<dyn std::any::Any + Send>>,
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

    /// The client's address, as [`Conn::peer_addr`](crate::Conn::peer_addr) will give it: the
    /// TCP peer's, or behind a proxy the real client's (from a PROXY protocol header, or from
    /// the forwarding headers of a trusted proxy). A header that gives no port gives port 0.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The TCP peer's own address: the proxy's, behind one.
    pub fn tcp_peer_addr(&self) -> SocketAddr {
        self.tcp_peer
    }

    /// The first entry of `X-Forwarded-For`, if any and well-formed, whoever sent it: a client
    /// can send any value, so this is not the client's address unless a proxy you run
    /// overwrites the header. Prefer [`Upgrade::peer_addr`] on a server built with
    /// `Builder::trusted_proxies`, which reads the header only from trusted proxies and takes
    /// the right entry of a multi-hop chain.
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

    /// Takes what the server in front put in the [`Answer`](crate::Answer) with
    /// [`Answer::with_context`](crate::Answer::with_context) (the user it authenticated, a
    /// session), if it was a `T`; `None` for a connection accepted or adopted without one, or
    /// once taken.
    pub fn take_context<T: std::any::Any>(&mut self) -> Option<T> {
        match self.context.take()?.downcast::<T>() {
            Ok(value) => Some(*value),
            Err(other) => {
                self.context = Some(other);
                None
            }
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

    /// The body the response carries: the one set, else the status's reason phrase.
    pub fn body_text(&self) -> &str {
        if self.body.is_empty() {
            crate::protocol::handshake::reason_phrase(self.status)
        } else {
            &self.body
        }
    }

    /// The headers added (those that [`Reject::header`] keeps when writing: names and values
    /// that cannot break the response).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .filter(|(n, v)| crate::http::header_is_safe(n, v))
            .map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

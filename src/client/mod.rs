//! WebSocket clients: URLs, options, proxies, the sans-IO [`Connector`] that the blocking
//! client ([`crate::blocking`]) and the engine drive, and the engine client's [`ClientBuilder`].

mod connector;
mod engine;
mod options;
pub mod proxy;
mod url;

use std::io;

pub use connector::{ConnectStep, Connector};
pub use engine::{Client, ClientBuilder};
#[doc(hidden)]
pub use options::Resolver;
pub use options::{ClientOptions, ProxyChoice};
pub use url::{Url, UrlError};

use crate::client::proxy::ProxyError;
use crate::error::{HandshakeError, ProtocolError, SendError};

/// Why a client connection failed or ended with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not a valid `ws://` or `wss://` URL.
    #[error("invalid url: {0}")]
    Url(#[from] UrlError),
    /// The transport failed.
    #[error("io error: {0}")]
    Io(#[from] io::Error),
    /// The server refused the upgrade or answered wrongly (for a non-101 status the error
    /// carries the status and the first bytes of the body).
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The proxy refused.
    #[error("proxy failed: {0}")]
    Proxy(#[from] ProxyError),
    /// The server broke the protocol (the close frame with its code was sent).
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// A send the connection refused (closing, or a control frame too long).
    #[error("send refused: {0}")]
    Send(#[from] SendError),
    /// The TLS handshake failed: the server's certificate was refused (expired, for another
    /// name, from an unknown CA), or the server refused ours, or it spoke no TLS.
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    /// The host of a `wss://` URL is not a valid TLS server name.
    #[error("tls: {0:?} is not a valid server name")]
    TlsName(String),
    /// More redirects than the options allow.
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    /// A redirect from `wss://` to `ws://`.
    #[error("refusing to follow a redirect from wss:// to {0}")]
    InsecureRedirect(String),
    /// The handshake or a read did not finish in time.
    #[error("timed out")]
    Timeout,
    /// The connection is closed: nothing more can be received or sent.
    #[error("connection closed")]
    Closed,
    /// The application refused an upgrade with this HTTP status (the tokio adapter's
    /// `accept_with`; the response was written).
    #[error("upgrade refused with {0}")]
    Refused(u16),
    /// The engine's handler gave no state for the client connection
    /// ([`Handler::client_state`](crate::Handler::client_state) returned `None`).
    #[error("the handler gave no state for the client connection")]
    NoState,
}

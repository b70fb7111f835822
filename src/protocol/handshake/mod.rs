//! The opening handshake (RFC 6455 §4), both sides, sans-IO: bytes in, parsed heads and bytes
//! out. Nothing here reads a socket or the clock; the caller owns every buffer.
//!
//! Each file owns one message in both directions:
//!
//! | file            | server                        | client                             |
//! |-----------------|-------------------------------|------------------------------------|
//! | `request.rs`    | [`UpgradeRequest::parse`]     | [`ClientRequest::write`]           |
//! | `response.rs`   | [`write_accept`], [`write_error`] | [`ClientHandshake::parse_response`] |
//! | `accept.rs`     | [`accept_key`]                | [`random_key`]                     |
//! | `extensions.rs` | [`parse_extensions`]          | [`format_extensions`]              |
//!
//! A parse takes a buffer that may hold only part of the head: `Ok(None)` means "read more and
//! call again with the whole buffer". `Ok(Some((head, consumed)))` gives the parsed head and its
//! length; bytes after it are the first WebSocket frames and stay with the caller.
//!
//! # Examples
//!
//! ```
//! use wsx::protocol::handshake::{write_accept, AcceptOptions, ClientRequest, UpgradeRequest};
//! use wsx::Limits;
//!
//! // Client: write the request.
//! let mut to_server = Vec::new();
//! let mut request = ClientRequest::new("example.com", "/chat?room=1");
//! request.protocols = &["chat"];
//! let client = request.write_with_os_rng(&mut to_server)?;
//!
//! // Server: parse it (the head may arrive in pieces) and accept with a subprotocol.
//! let (req, consumed) = UpgradeRequest::parse(&to_server, &Limits::DEFAULT)?.expect("complete");
//! assert_eq!((req.path(), req.query()), ("/chat", Some("room=1")));
//! assert_eq!(consumed, to_server.len());
//! let mut to_client = Vec::new();
//! let options = AcceptOptions::new().with_protocol("chat");
//! write_accept(&req, &options, &mut to_client)?;
//!
//! // Client: check the answer.
//! let (resp, _) = client.parse_response(&to_client, &Limits::DEFAULT)?.expect("complete");
//! assert_eq!(resp.protocol(), Some("chat"));
//! # Ok::<(), wsx::HandshakeError>(())
//! ```

mod accept;
mod extensions;
mod request;
mod response;

pub use accept::{accept_key, is_valid_key, random_key, GUID};
pub use extensions::{format_extensions, parse_extensions, ExtensionOffer};
pub use request::{is_upgrade_request, ClientHandshake, ClientRequest, UpgradeRequest, Version};
pub use response::{
    reason_phrase, write_accept, write_error, AcceptOptions, UnexpectedStatus, UpgradeResponse,
};

/// Why an opening handshake failed, and the HTTP status that answers it
/// ([`HandshakeError::status`]).
///
/// The variants fall in three groups, by whose fault it is:
///
/// - **the client's request** (server side): 400, 403, 405, 426 or 431, answered with
///   [`write_error`];
/// - **the local application** (building a request or a response it may not send): 500;
/// - **the server's response** (client side): 502, the status a gateway would answer downstream.
///   A client has nobody to answer, so for it the status only sorts the error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The head grew past [`crate::Limits::max_head_size`] without ending. 431.
    #[error("request head exceeds {max} bytes")]
    HeadTooLarge {
        /// The limit.
        max: usize,
    },
    /// The head has more than [`crate::Limits::max_headers`] header lines. 431.
    #[error("request has more than {max} headers")]
    TooManyHeaders {
        /// The limit.
        max: usize,
    },
    /// The request head is not valid HTTP/1.x, or a header that may appear once appears twice.
    /// 400.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// No `Upgrade` header with the `websocket` token: a plain HTTP request. 426, with
    /// `Upgrade: websocket` and `Sec-WebSocket-Version: 13, 8` in the answer.
    #[error("not a websocket upgrade request")]
    NotUpgrade,
    /// An upgrade request whose method is not `GET`. 405, with `Allow: GET`.
    #[error("method is not GET")]
    MethodNotAllowed,
    /// An HTTP/1.0 request. 400.
    #[error("http version before 1.1")]
    HttpVersion,
    /// No `Host` header, or an empty one. 400.
    #[error("missing host header")]
    MissingHost,
    /// No `Connection` header with the `Upgrade` token. 400.
    #[error("connection header lacks the upgrade token")]
    MissingConnectionUpgrade,
    /// No `Sec-WebSocket-Key` header. 400.
    #[error("missing sec-websocket-key header")]
    MissingKey,
    /// A `Sec-WebSocket-Key` that is not the base64 of 16 bytes. 400.
    #[error("sec-websocket-key is not 16 bytes of base64")]
    InvalidKey,
    /// A `Sec-WebSocket-Version` that is missing or a number other than 13 and 8. 426, with
    /// `Sec-WebSocket-Version: 13, 8` in the answer.
    #[error("unsupported websocket version")]
    UnsupportedVersion,
    /// A `Sec-WebSocket-Version` that is not a number. 400.
    #[error("malformed sec-websocket-version header")]
    InvalidVersion,
    /// A `Sec-WebSocket-Protocol` element that is not a token. 400.
    #[error("malformed sec-websocket-protocol header")]
    InvalidProtocol,
    /// A `Sec-WebSocket-Extensions` value that breaks the RFC 6455 §9.1 grammar. 400.
    #[error("malformed sec-websocket-extensions header: {0}")]
    InvalidExtensions(&'static str),
    /// The application refused the request's origin. 403. The parser never returns it: it is
    /// here so that an origin policy can answer with [`write_error`].
    #[error("origin not allowed")]
    OriginNotAllowed,

    /// The local server tried to accept with a subprotocol the client did not offer. 500.
    #[error("subprotocol was not offered by the client")]
    ProtocolNotOffered,
    /// The local server tried to accept with an extension the client did not offer. 500.
    #[error("extension was not offered by the client")]
    ExtensionNotOffered,
    /// A header the local application asked to send is invalid: a name that is not a token, a
    /// value with CR, LF or another control byte, or a header the handshake writes itself. 500.
    #[error("invalid header to send: {0}")]
    InvalidHeader(&'static str),
    /// The host or request target of a [`ClientRequest`] cannot be written. 500.
    #[error("invalid request target: {0}")]
    InvalidTarget(&'static str),
    /// The operating system's random source failed while making a key. 500.
    #[error("os random source failed")]
    RandomUnavailable,

    /// The server answered with a status other than 101. 502.
    #[error("server answered {} instead of 101", .0.status)]
    UnexpectedStatus(Box<UnexpectedStatus>),
    /// The server's response head is malformed, too large, or lacks `Upgrade: websocket` or
    /// `Connection: Upgrade`. 502.
    #[error("invalid response: {0}")]
    InvalidResponse(&'static str),
    /// The server's `Sec-WebSocket-Accept` is missing or does not match the key. 502.
    #[error("sec-websocket-accept does not match the key")]
    AcceptMismatch,
    /// The server chose a subprotocol the client did not offer, or several. 502.
    #[error("server chose a subprotocol that was not offered")]
    ResponseProtocolNotOffered,
    /// The server answered with an extension (named here) that the client did not offer. 502.
    #[error("server chose extension {0:?} that was not offered")]
    ResponseExtensionNotOffered(Box<str>),
}

impl HandshakeError {
    /// The HTTP status a server answers this error with (see the groups on [`HandshakeError`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use wsx::HandshakeError;
    /// assert_eq!(HandshakeError::UnsupportedVersion.status(), 426);
    /// assert_eq!(HandshakeError::HeadTooLarge { max: 8192 }.status(), 431);
    /// ```
    pub fn status(&self) -> u16 {
        use HandshakeError as E;
        match self {
            E::HeadTooLarge { .. } | E::TooManyHeaders { .. } => 431,
            E::Malformed(_)
            | E::HttpVersion
            | E::MissingHost
            | E::MissingConnectionUpgrade
            | E::MissingKey
            | E::InvalidKey
            | E::InvalidVersion
            | E::InvalidProtocol
            | E::InvalidExtensions(_) => 400,
            E::OriginNotAllowed => 403,
            E::MethodNotAllowed => 405,
            E::NotUpgrade | E::UnsupportedVersion => 426,
            E::ProtocolNotOffered
            | E::ExtensionNotOffered
            | E::InvalidHeader(_)
            | E::InvalidTarget(_)
            | E::RandomUnavailable => 500,
            E::UnexpectedStatus(_)
            | E::InvalidResponse(_)
            | E::AcceptMismatch
            | E::ResponseProtocolNotOffered
            | E::ResponseExtensionNotOffered(_) => 502,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_small() {
        assert!(size_of::<HandshakeError>() <= 24);
    }

    #[test]
    fn messages_are_lower_case() {
        for e in [
            HandshakeError::HeadTooLarge { max: 1 },
            HandshakeError::NotUpgrade,
            HandshakeError::MethodNotAllowed,
            HandshakeError::InvalidResponse("x"),
            HandshakeError::AcceptMismatch,
        ] {
            let msg = e.to_string();
            assert!(msg.starts_with(|c: char| c.is_ascii_lowercase()), "{msg}");
        }
    }
}

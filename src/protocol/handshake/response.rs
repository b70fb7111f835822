//! The response: written by the server ([`write_accept`], [`write_error`]), checked by the
//! client ([`ClientHandshake::parse_response`]).

use std::fmt;

use super::accept::accept_bytes;
use super::extensions::{
    format_extensions, is_token, list_elements, lists_contain, parse_extensions_into,
};
use super::request::{
    all, head_len, single, window, write_extra_headers, write_header, Head, HeadError, HeaderSlots,
    Span,
};
use super::{ClientHandshake, ExtensionOffer, HandshakeError, UpgradeRequest};
use crate::Limits;

/// How a server accepts an [`UpgradeRequest`]; see [`write_accept`].
///
/// # Examples
///
/// ```
/// let mut options = wsx::protocol::handshake::AcceptOptions::default();
/// options.protocol = Some("chat");
/// options.headers = &[("Server", "wsx")];
/// # assert!(options.extensions.is_empty());
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct AcceptOptions<'a> {
    /// The subprotocol chosen, which must be one the client offered; `None` sends no
    /// `Sec-WebSocket-Protocol`.
    pub protocol: Option<&'a str>,
    /// The extensions accepted, each named in the client's offers (with the parameters the
    /// extension's negotiation settled on); empty sends no `Sec-WebSocket-Extensions`.
    pub extensions: &'a [ExtensionOffer],
    /// More headers, written last in order. Headers the handshake writes itself are refused.
    pub headers: &'a [(&'a str, &'a str)],
}

/// Headers [`write_accept`] writes itself and refuses in [`AcceptOptions::headers`].
const SERVER_MANAGED: [&str; 5] = [
    "upgrade",
    "connection",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

/// Appends the `101 Switching Protocols` response that accepts `request` to `out`.
///
/// ```text
/// HTTP/1.1 101 Switching Protocols
/// Upgrade: websocket
/// Connection: Upgrade
/// Sec-WebSocket-Accept: <sha1 + base64 of the key and the GUID>
/// Sec-WebSocket-Protocol: <options.protocol, if any>
/// Sec-WebSocket-Extensions: <options.extensions, if any>
/// <options.headers>
/// ```
///
/// # Errors
///
/// Local mistakes, all 500: [`HandshakeError::ProtocolNotOffered`],
/// [`HandshakeError::ExtensionNotOffered`] (names compared ASCII case-insensitively), and
/// [`HandshakeError::InvalidHeader`] for an extension that cannot be formatted or an extra
/// header whose name is not a token, whose value holds CR, LF or another control byte, or that
/// the handshake writes itself. `out` is left as it was.
///
/// # Examples
///
/// ```
/// use wsx::protocol::handshake::{write_accept, AcceptOptions, UpgradeRequest};
/// let head = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
/// let (req, _) = UpgradeRequest::parse(head, &wsx::Limits::DEFAULT)?.expect("complete");
/// let mut out = Vec::new();
/// write_accept(&req, &AcceptOptions::default(), &mut out)?;
/// assert_eq!(
///     out,
///     b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
///       Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
/// );
/// # Ok::<(), wsx::HandshakeError>(())
/// ```
pub fn write_accept(
    request: &UpgradeRequest,
    options: &AcceptOptions<'_>,
    out: &mut Vec<u8>,
) -> Result<(), HandshakeError> {
    let before = out.len();
    let result = write_accept_inner(request, options, out);
    if result.is_err() {
        out.truncate(before);
    }
    result
}

fn write_accept_inner(
    request: &UpgradeRequest,
    options: &AcceptOptions<'_>,
    out: &mut Vec<u8>,
) -> Result<(), HandshakeError> {
    if let Some(protocol) = options.protocol {
        if !request.protocols().any(|p| p == protocol) {
            return Err(HandshakeError::ProtocolNotOffered);
        }
    }
    for chosen in options.extensions {
        if !request
            .extensions()
            .iter()
            .any(|o| o.name.eq_ignore_ascii_case(&chosen.name))
        {
            return Err(HandshakeError::ExtensionNotOffered);
        }
    }
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: ",
    );
    out.extend_from_slice(&accept_bytes(request.key().as_bytes()));
    out.extend_from_slice(b"\r\n");
    if let Some(protocol) = options.protocol {
        write_header(out, "Sec-WebSocket-Protocol", protocol);
    }
    if !options.extensions.is_empty() {
        let mut value = String::new();
        format_extensions(options.extensions, &mut value)?;
        write_header(out, "Sec-WebSocket-Extensions", &value);
    }
    write_extra_headers(out, options.headers, &SERVER_MANAGED)?;
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Appends the HTTP response that refuses a handshake with `error` to `out`: the status line
/// with [`HandshakeError::status`] and its reason phrase, `Connection: close`, a `text/plain`
/// body holding the error message, and its `Content-Length`. Close the connection after
/// writing it.
///
/// A 426 also carries `Upgrade: websocket` (so `Connection: Upgrade, close`, as RFC 9110 §7.8
/// asks) and `Sec-WebSocket-Version: 13, 8`; a 405 carries `Allow: GET`.
///
/// # Examples
///
/// ```
/// use wsx::protocol::handshake::write_error;
/// let mut out = Vec::new();
/// write_error(&wsx::HandshakeError::MethodNotAllowed, &mut out);
/// assert_eq!(
///     out,
///     b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\nConnection: close\r\n\
///       Content-Type: text/plain; charset=utf-8\r\nContent-Length: 18\r\n\r\n\
///       method is not GET\n"
/// );
/// ```
pub fn write_error(error: &HandshakeError, out: &mut Vec<u8>) {
    let status = error.status();
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, status.into());
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    match status {
        405 => out.extend_from_slice(b"Allow: GET\r\nConnection: close\r\n"),
        426 => out.extend_from_slice(
            b"Upgrade: websocket\r\nSec-WebSocket-Version: 13, 8\r\nConnection: Upgrade, close\r\n",
        ),
        _ => out.extend_from_slice(b"Connection: close\r\n"),
    }
    let body = format!("{error}\n");
    out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: ");
    push_decimal(out, body.len());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body.as_bytes());
}

fn push_decimal(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(n.to_string().as_bytes());
}

/// The reason phrase for the statuses a handshake uses (RFC 9110 §15, RFC 6585 for 431);
/// `"Error"` for others.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// A server's answer other than 101, as far as the client's buffer held it: carried by
/// [`HandshakeError::UnexpectedStatus`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnexpectedStatus {
    /// The status code, e.g. 403.
    pub status: u16,
    /// The reason phrase (empty when it was not UTF-8-clean ASCII).
    pub reason: String,
    /// The `Location` header, for a redirect.
    pub location: Option<String>,
    /// The first bytes of the body that were already in the buffer, at most
    /// [`UnexpectedStatus::MAX_BODY`] (and at most the `Content-Length`).
    pub body: Vec<u8>,
}

impl UnexpectedStatus {
    /// The most body bytes kept.
    pub const MAX_BODY: usize = 256;
}

/// A server's valid `101 Switching Protocols`, checked by [`ClientHandshake::parse_response`].
#[derive(Clone, PartialEq, Eq)]
pub struct UpgradeResponse {
    head: Head,
    protocol: Option<Span>,
    extensions: Vec<ExtensionOffer>,
}

impl UpgradeResponse {
    /// The status code: always 101.
    pub fn status(&self) -> u16 {
        101
    }

    /// The subprotocol the server chose, one the client offered.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.map(|s| self.head.text(s))
    }

    /// The extensions the server accepted, each named in the client's offers, with the
    /// parameters it sent (checked later by each extension's negotiation).
    pub fn extensions(&self) -> &[ExtensionOffer] {
        &self.extensions
    }

    /// Every header line as `(name, value)`, in order; values trimmed, names as sent.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.head.iter()
    }

    /// The first header called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.head.get(name)
    }

    /// Every header called `name` (ASCII case-insensitive), in order.
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.head.get_all(name)
    }
}

impl fmt::Debug for UpgradeResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpgradeResponse")
            .field("protocol", &self.protocol())
            .field("extensions", &self.extensions)
            .field("headers", &self.headers().count())
            .finish()
    }
}

impl ClientHandshake {
    /// Checks the server's response at the start of `buf`, which may hold only part of it.
    ///
    /// `Ok(None)` while the head is incomplete; `Ok(Some((response, consumed)))` once it is
    /// complete and accepts the handshake. Bytes after `consumed` are the first WebSocket
    /// frames and stay with the caller.
    ///
    /// # Errors
    ///
    /// All 502 (the server's fault):
    ///
    /// - [`HandshakeError::InvalidResponse`]: a head over [`Limits::max_head_size`] or
    ///   [`Limits::max_headers`], not HTTP/1.1, or without `Upgrade: websocket` or
    ///   `Connection: Upgrade` (tokens compared ASCII case-insensitively, in lists), or a
    ///   malformed `Sec-WebSocket-Extensions`;
    /// - [`HandshakeError::UnexpectedStatus`]: a status other than 101, with its reason,
    ///   `Location` and the first body bytes in `buf`;
    /// - [`HandshakeError::AcceptMismatch`]: `Sec-WebSocket-Accept` missing, repeated or wrong;
    /// - [`HandshakeError::ResponseProtocolNotOffered`]: a subprotocol not offered, or several;
    /// - [`HandshakeError::ResponseExtensionNotOffered`]: an extension not offered (by name).
    pub fn parse_response(
        &self,
        buf: &[u8],
        limits: &Limits,
    ) -> Result<Option<(UpgradeResponse, usize)>, HandshakeError> {
        use HandshakeError as E;
        let mut slots = HeaderSlots::new();
        let mut resp = httparse::Response::new(slots.get(limits));
        let len = match head_len(resp.parse(window(buf, limits)), buf.len(), limits) {
            Ok(Some(len)) => len,
            Ok(None) => return Ok(None),
            Err(HeadError::TooLarge) => return Err(E::InvalidResponse("head too large")),
            Err(HeadError::TooManyHeaders) => return Err(E::InvalidResponse("too many headers")),
            Err(HeadError::Invalid(what)) => return Err(E::InvalidResponse(what)),
        };
        let headers = &*resp.headers;
        let status = resp.code.unwrap_or_default();
        if status != 101 {
            return Err(unexpected_status(
                status,
                resp.reason,
                headers,
                buf.get(len..),
            ));
        }
        if resp.version != Some(1) {
            return Err(E::InvalidResponse("http version before 1.1"));
        }
        if !lists_contain(all(headers, "upgrade"), "websocket") {
            return Err(E::InvalidResponse("missing upgrade: websocket"));
        }
        if !lists_contain(all(headers, "connection"), "upgrade") {
            return Err(E::InvalidResponse("missing connection: upgrade"));
        }
        match single(headers, "sec-websocket-accept") {
            Ok(Some(accept)) if accept == self.accept => {}
            _ => return Err(E::AcceptMismatch),
        }
        let protocol = match single(headers, "sec-websocket-protocol") {
            Err(()) => return Err(E::ResponseProtocolNotOffered),
            Ok(None) => None,
            Ok(Some(value)) => {
                let mut elements = list_elements(value);
                match (elements.next(), elements.next()) {
                    (None, _) => None,
                    (Some(p), None)
                        if is_token(p) && self.protocols.iter().any(|o| o.as_bytes() == p) =>
                    {
                        Some(Span::of(buf, p))
                    }
                    _ => return Err(E::ResponseProtocolNotOffered),
                }
            }
        };
        let mut extensions = Vec::new();
        for value in all(headers, "sec-websocket-extensions") {
            parse_extensions_into(value, &mut extensions)
                .map_err(|_| E::InvalidResponse("malformed sec-websocket-extensions"))?;
        }
        if let Some(chosen) = extensions.iter().find(|e| {
            !self
                .extensions
                .iter()
                .any(|o| o.eq_ignore_ascii_case(&e.name))
        }) {
            return Err(E::ResponseExtensionNotOffered(chosen.name.as_str().into()));
        }
        let response = UpgradeResponse {
            head: Head::new(buf, len, headers),
            protocol,
            extensions,
        };
        Ok(Some((response, len)))
    }
}

fn unexpected_status(
    status: u16,
    reason: Option<&str>,
    headers: &[httparse::Header<'_>],
    after_head: Option<&[u8]>,
) -> HandshakeError {
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    let content_length = single(headers, "content-length")
        .ok()
        .flatten()
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse::<usize>().ok());
    let max = content_length
        .unwrap_or(usize::MAX)
        .min(UnexpectedStatus::MAX_BODY);
    let body = after_head.unwrap_or_default();
    HandshakeError::UnexpectedStatus(Box::new(UnexpectedStatus {
        status,
        reason: reason.unwrap_or_default().to_owned(),
        location: all(headers, "location").next().map(text),
        body: body.get(..max).unwrap_or(body).to_vec(),
    }))
}

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

/// How a server accepts an [`UpgradeRequest`]; see [`write_accept`]. Start from
/// [`AcceptOptions::new`] (or `default()`), which accepts with nothing chosen.
///
/// # Examples
///
/// ```
/// use wsx::protocol::handshake::AcceptOptions;
/// let options = AcceptOptions::new().with_protocol("chat").with_headers(&[("Server", "wsx")]);
/// assert_eq!(options.protocol, Some("chat"));
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

impl<'a> AcceptOptions<'a> {
    /// No subprotocol, no extension, no extra header.
    pub const fn new() -> Self {
        AcceptOptions {
            protocol: None,
            extensions: &[],
            headers: &[],
        }
    }

    /// With [`protocol`](Self::protocol) set.
    #[must_use]
    pub const fn with_protocol(mut self, protocol: &'a str) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// With [`extensions`](Self::extensions) set.
    #[must_use]
    pub const fn with_extensions(mut self, extensions: &'a [ExtensionOffer]) -> Self {
        self.extensions = extensions;
        self
    }

    /// With [`headers`](Self::headers) set.
    #[must_use]
    pub const fn with_headers(mut self, headers: &'a [(&'a str, &'a str)]) -> Self {
        self.headers = headers;
        self
    }
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

/// The reason phrase for the statuses a handshake or a plain HTTP answer uses (RFC 9110 §15,
/// RFC 6585 for 429 and 431); `"Error"` for others.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        401 => "Unauthorized",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::handshake::{ClientRequest, Version};
    use proptest::prelude::*;

    /// `head!["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket"]`: lines joined with CRLF,
    /// then the blank line.
    macro_rules! head {
        ($($line:expr),* $(,)?) => {{
            let mut head = String::new();
            $( head.push_str($line); head.push_str("\r\n"); )*
            head.push_str("\r\n");
            head.into_bytes()
        }};
    }

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const STATUS_101: &str = "HTTP/1.1 101 Switching Protocols";
    const UPGRADE: &str = "Upgrade: websocket";
    const CONNECTION: &str = "Connection: Upgrade";
    const ACCEPT: &str = "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    /// The RFC 6455 §1.2 client: key [`KEY`], offering `chat, superchat` and two extensions.
    fn client() -> ClientHandshake {
        let offers = [
            ExtensionOffer::new("permessage-deflate"),
            ExtensionOffer::new("x-webkit"),
        ];
        let mut request = ClientRequest::new("server.example.com", "/chat");
        request.protocols = &["chat", "superchat"];
        request.extensions = &offers;
        request.write_with_key(KEY, &mut Vec::new()).unwrap()
    }

    fn server_request(protocols: &[&str], extensions: &[ExtensionOffer]) -> UpgradeRequest {
        let mut request = ClientRequest::new("server.example.com", "/chat");
        request.protocols = protocols;
        request.extensions = extensions;
        let mut buf = Vec::new();
        request.write_with_key(KEY, &mut buf).unwrap();
        UpgradeRequest::parse(&buf, &Limits::DEFAULT)
            .unwrap()
            .unwrap()
            .0
    }

    type Parsed = Result<Option<(UpgradeResponse, usize)>, HandshakeError>;

    /// Parses `buf` whole, checking that every prefix shorter than the head is `Ok(None)` or
    /// the same error, and every longer one the same result.
    fn parse_split(client: &ClientHandshake, buf: &[u8], limits: &Limits) -> Parsed {
        let whole = client.parse_response(buf, limits);
        let head_len = match &whole {
            Ok(Some((_, n))) => *n,
            _ => buf.len(),
        };
        for k in 0..head_len {
            match client.parse_response(&buf[..k], limits) {
                Ok(None) => {}
                Err(e) if whole.as_ref().err() == Some(&e) => {}
                other => panic!("prefix {k} of {head_len}: {other:?}, whole: {whole:?}"),
            }
        }
        for k in head_len..=buf.len() {
            assert_eq!(
                client.parse_response(&buf[..k], limits),
                whole,
                "prefix {k}"
            );
        }
        whole
    }

    /// `responses! { name: [lines] => Ok(|resp| check) | Err(error); ... }` against [`client`].
    macro_rules! responses {
        ($($name:ident: [$($line:expr),* $(,)?] => $kind:ident $outcome:tt;)*) => {$({
            let buf = head![$($line),*];
            let parsed = parse_split(&client(), &buf, &Limits::DEFAULT);
            responses!(@$kind $name, parsed, buf, $outcome);
        })*};
        (@Ok $name:ident, $parsed:ident, $buf:ident, (|$resp:ident| $check:expr)) => {
            match $parsed {
                Ok(Some(($resp, n))) => {
                    assert_eq!(n, $buf.len(), "{}", stringify!($name));
                    assert!($check, "{}: {:?}", stringify!($name), $resp);
                }
                other => panic!("{}: {other:?}", stringify!($name)),
            }
        };
        (@Err $name:ident, $parsed:ident, $buf:ident, ($err:expr)) => {
            let err = $parsed.expect_err(stringify!($name));
            assert_eq!(err, $err, "{}", stringify!($name));
            assert_eq!(err.status(), 502, "{}", stringify!($name));
        };
    }

    #[test]
    fn rfc6455_section_1_2_response() {
        let request = server_request(&["chat", "superchat"], &[]);
        let mut out = b"kept".to_vec();
        let options = AcceptOptions::new().with_protocol("chat");
        write_accept(&request, &options, &mut out).unwrap();
        assert_eq!(
            out,
            b"keptHTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
              Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
              Sec-WebSocket-Protocol: chat\r\n\r\n"
        );
    }

    #[test]
    fn accept_with_extensions_and_headers() {
        let offers = [
            ExtensionOffer::new("permessage-deflate").with_param("client_max_window_bits", None),
            ExtensionOffer::new("x-other"),
        ];
        let request = server_request(&[], &offers);
        let chosen = [ExtensionOffer::new("Permessage-Deflate")
            .with_param("server_no_context_takeover", None)
            .with_param("client_max_window_bits", Some("10"))];
        let options = AcceptOptions::new()
            .with_extensions(&chosen)
            .with_headers(&[("Server", "wsx"), ("Set-Cookie", "id=1; Path=/")]);
        let mut out = Vec::new();
        write_accept(&request, &options, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with(
            "Sec-WebSocket-Extensions: Permessage-Deflate; server_no_context_takeover; \
             client_max_window_bits=10\r\nServer: wsx\r\nSet-Cookie: id=1; Path=/\r\n\r\n"
        ));
    }

    #[test]
    fn accept_refusals() {
        use HandshakeError as E;
        let offers = [ExtensionOffer::new("permessage-deflate")];
        let request = server_request(&["chat"], &offers);
        macro_rules! refuses {
            ($($name:ident: |$o:ident| $setup:expr => $err:expr;)*) => {$({
                let mut $o = AcceptOptions::default();
                $setup;
                let mut out = b"kept".to_vec();
                let err = write_accept(&request, &$o, &mut out).expect_err(stringify!($name));
                assert_eq!((err.clone(), err.status()), ($err, 500), "{}", stringify!($name));
                assert_eq!(out, b"kept", "{}: out left as it was", stringify!($name));
            })*};
        }
        let unoffered = [ExtensionOffer::new("x-other")];
        let bad_name = [ExtensionOffer::new("permessage-deflate").with_param("a b", None)];
        refuses! {
            protocol_not_offered: |o| o.protocol = Some("superchat") => E::ProtocolNotOffered;
            protocol_case_differs: |o| o.protocol = Some("Chat") => E::ProtocolNotOffered;
            protocol_injection: |o| o.protocol = Some("chat\r\nX: y") => E::ProtocolNotOffered;
            extension_not_offered: |o| o.extensions = &unoffered => E::ExtensionNotOffered;
            extension_bad_param: |o| o.extensions = &bad_name
                => E::InvalidHeader("extension parameter is not a token");
            header_crlf: |o| o.headers = &[("X", "1\r\nSet-Cookie: evil")]
                => E::InvalidHeader("header value has a control byte");
            header_bare_cr: |o| o.headers = &[("X", "1\r")]
                => E::InvalidHeader("header value has a control byte");
            header_name_colon: |o| o.headers = &[("X:", "1")]
                => E::InvalidHeader("header name is not a token");
            header_managed_accept: |o| o.headers = &[("Sec-WebSocket-Accept", "x")]
                => E::InvalidHeader("header is written by the handshake");
            header_managed_upgrade: |o| o.headers = &[("upgrade", "x")]
                => E::InvalidHeader("header is written by the handshake");
        }
    }

    #[test]
    fn error_responses() {
        use HandshakeError as E;
        /// `errors! { error => "exact response", ... }`.
        macro_rules! errors {
            ($($err:expr => $expected:literal,)*) => {$({
                let mut out = Vec::new();
                write_error(&$err, &mut out);
                assert_eq!(String::from_utf8(out).unwrap(), $expected, "{:?}", $err);
            })*};
        }
        errors! {
            E::MissingKey => "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\
                Content-Type: text/plain; charset=utf-8\r\nContent-Length: 33\r\n\r\n\
                missing sec-websocket-key header\n",
            E::MethodNotAllowed => "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n\
                Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\
                Content-Length: 18\r\n\r\nmethod is not GET\n",
            E::UnsupportedVersion => "HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\n\
                Sec-WebSocket-Version: 13, 8\r\nConnection: Upgrade, close\r\n\
                Content-Type: text/plain; charset=utf-8\r\nContent-Length: 30\r\n\r\n\
                unsupported websocket version\n",
            E::NotUpgrade => "HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\n\
                Sec-WebSocket-Version: 13, 8\r\nConnection: Upgrade, close\r\n\
                Content-Type: text/plain; charset=utf-8\r\nContent-Length: 32\r\n\r\n\
                not a websocket upgrade request\n",
            E::HeadTooLarge { max: 8192 } => "HTTP/1.1 431 Request Header Fields Too Large\r\n\
                Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\
                Content-Length: 32\r\n\r\nrequest head exceeds 8192 bytes\n",
            E::OriginNotAllowed => "HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\
                Content-Type: text/plain; charset=utf-8\r\nContent-Length: 19\r\n\r\n\
                origin not allowed\n",
        }
        // Every error response is one well-formed HTTP response whose body fits its length.
        for err in [
            E::Malformed("invalid token"),
            E::TooManyHeaders { max: 64 },
            E::InvalidExtensions("expected ';' or ','"),
            E::ProtocolNotOffered,
            E::AcceptMismatch,
            E::ResponseExtensionNotOffered("x\r\ny".into()),
        ] {
            let mut out = Vec::new();
            write_error(&err, &mut out);
            let mut headers = [httparse::EMPTY_HEADER; 8];
            let mut resp = httparse::Response::new(&mut headers);
            let n = match resp.parse(&out) {
                Ok(httparse::Status::Complete(n)) => n,
                other => panic!("{err:?}: {other:?}"),
            };
            assert_eq!(resp.code, Some(err.status()));
            assert_eq!(resp.reason, Some(reason_phrase(err.status())));
            let length = resp
                .headers
                .iter()
                .find(|h| h.name == "Content-Length")
                .unwrap()
                .value;
            assert_eq!(
                std::str::from_utf8(length).unwrap().parse(),
                Ok(out.len() - n)
            );
        }
    }

    #[test]
    fn round_trip_client_server_client() {
        let offers = [
            ExtensionOffer::new("permessage-deflate").with_param("client_max_window_bits", None)
        ];
        for version in [Version::V13, Version::V8] {
            let mut request = ClientRequest::new("127.0.0.1", "/echo?x=1");
            request.port = 9001;
            request.version = version;
            request.protocols = &["v2", "v1"];
            request.extensions = &offers;
            request.origin = Some("http://127.0.0.1");
            let mut wire = Vec::new();
            let client = request.write_with_os_rng(&mut wire).unwrap();
            wire.extend_from_slice(b"\x81\x80\x00\x00\x00\x00"); // a first frame, pipelined

            let (req, consumed) = UpgradeRequest::parse(&wire, &Limits::DEFAULT)
                .unwrap()
                .unwrap();
            assert_eq!(&wire[consumed..], b"\x81\x80\x00\x00\x00\x00");
            assert_eq!(req.host(), "127.0.0.1:9001");
            assert_eq!((req.path(), req.query()), ("/echo", Some("x=1")));
            assert_eq!(req.version(), version);
            assert_eq!(req.origin(), Some("http://127.0.0.1"));
            assert_eq!(req.key(), client.key());
            assert_eq!(req.extensions(), offers);

            let chosen = [ExtensionOffer::new("permessage-deflate")
                .with_param("client_max_window_bits", Some("12"))];
            let options = AcceptOptions {
                protocol: req.protocols().nth(1),
                ..AcceptOptions::new().with_extensions(&chosen)
            };
            let mut back = Vec::new();
            write_accept(&req, &options, &mut back).unwrap();
            let head_len = back.len();
            back.extend_from_slice(b"\x82\x00"); // the server's first frame

            let parsed = parse_split(&client, &back, &Limits::DEFAULT);
            let (resp, n) = parsed.unwrap().unwrap();
            assert_eq!(n, head_len);
            assert_eq!(resp.status(), 101);
            assert_eq!(resp.protocol(), Some("v1"));
            assert_eq!(resp.extensions(), chosen);
            assert_eq!(
                resp.header("sec-websocket-accept"),
                Some(client.expected_accept().as_bytes())
            );
            assert_eq!(
                resp.header_all("UPGRADE").collect::<Vec<_>>(),
                [b"websocket"]
            );
            assert_eq!(resp.headers().count(), 5);
        }
    }

    #[test]
    fn client_checks() {
        use HandshakeError as E;
        responses! {
            minimal: [STATUS_101, UPGRADE, CONNECTION, ACCEPT]
                => Ok(|r| r.protocol().is_none() && r.extensions().is_empty());
            case_and_lists: ["HTTP/1.1 101 Web Socket Protocol Handshake", "upgrade: WebSocket",
                "connection: keep-alive, UPGRADE", "sec-websocket-accept:  s3pPLMBiTxaQ9kYGzzhZRbK+xOo= "]
                => Ok(|r| r.status() == 101);
            chosen_protocol: [STATUS_101, UPGRADE, CONNECTION, ACCEPT, "Sec-WebSocket-Protocol: superchat"]
                => Ok(|r| r.protocol() == Some("superchat"));
            empty_protocol: [STATUS_101, UPGRADE, CONNECTION, ACCEPT, "Sec-WebSocket-Protocol: "]
                => Ok(|r| r.protocol().is_none());
            chosen_extensions: [STATUS_101, UPGRADE, CONNECTION, ACCEPT,
                "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover",
                "Sec-WebSocket-Extensions: X-WebKit"]
                => Ok(|r| r.extensions().len() == 2
                    && r.extensions()[0].param("server_no_context_takeover") == Some(None));
            wrong_accept: [STATUS_101, UPGRADE, CONNECTION, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo"]
                => Err(E::AcceptMismatch);
            accept_of_other_key: [STATUS_101, UPGRADE, CONNECTION,
                "Sec-WebSocket-Accept: HSmrc0sMlYUkAGmm5OPpG2HaGWk="] => Err(E::AcceptMismatch);
            missing_accept: [STATUS_101, UPGRADE, CONNECTION] => Err(E::AcceptMismatch);
            two_accepts: [STATUS_101, UPGRADE, CONNECTION, ACCEPT, ACCEPT] => Err(E::AcceptMismatch);
            unoffered_protocol: [STATUS_101, UPGRADE, CONNECTION, ACCEPT, "Sec-WebSocket-Protocol: mqtt"]
                => Err(E::ResponseProtocolNotOffered);
            protocol_case_differs: [STATUS_101, UPGRADE, CONNECTION, ACCEPT, "Sec-WebSocket-Protocol: Chat"]
                => Err(E::ResponseProtocolNotOffered);
            two_protocols_listed: [STATUS_101, UPGRADE, CONNECTION, ACCEPT,
                "Sec-WebSocket-Protocol: chat, superchat"] => Err(E::ResponseProtocolNotOffered);
            two_protocol_headers: [STATUS_101, UPGRADE, CONNECTION, ACCEPT,
                "Sec-WebSocket-Protocol: chat", "Sec-WebSocket-Protocol: chat"]
                => Err(E::ResponseProtocolNotOffered);
            unoffered_extension: [STATUS_101, UPGRADE, CONNECTION, ACCEPT,
                "Sec-WebSocket-Extensions: permessage-deflate, x-evil; a=1"]
                => Err(E::ResponseExtensionNotOffered("x-evil".into()));
            malformed_extensions: [STATUS_101, UPGRADE, CONNECTION, ACCEPT,
                "Sec-WebSocket-Extensions: permessage-deflate;;"]
                => Err(E::InvalidResponse("malformed sec-websocket-extensions"));
            missing_upgrade: [STATUS_101, CONNECTION, ACCEPT]
                => Err(E::InvalidResponse("missing upgrade: websocket"));
            upgrade_other: [STATUS_101, "Upgrade: h2c", CONNECTION, ACCEPT]
                => Err(E::InvalidResponse("missing upgrade: websocket"));
            missing_connection: [STATUS_101, UPGRADE, ACCEPT]
                => Err(E::InvalidResponse("missing connection: upgrade"));
            connection_close: [STATUS_101, UPGRADE, "Connection: close", ACCEPT]
                => Err(E::InvalidResponse("missing connection: upgrade"));
            http_1_0: ["HTTP/1.0 101 Switching Protocols", UPGRADE, CONNECTION, ACCEPT]
                => Err(E::InvalidResponse("http version before 1.1"));
            not_http: ["HTTX/1.1 101 Switching Protocols", UPGRADE, CONNECTION, ACCEPT]
                => Err(E::InvalidResponse("invalid http version"));
            bad_status: ["HTTP/1.1 1O1 Switching Protocols", UPGRADE, CONNECTION, ACCEPT]
                => Err(E::InvalidResponse("invalid status code"));
        }
    }

    #[test]
    fn non_101_status_keeps_what_it_can() {
        let client = client();
        let mut buf = head![
            "HTTP/1.1 302 Found",
            "Location: wss://elsewhere.example/chat",
            "Content-Length: 5"
        ];
        assert_eq!(
            client.parse_response(&buf[..buf.len() - 1], &Limits::DEFAULT),
            Ok(None)
        );
        buf.extend_from_slice(b"movedAND-MORE");
        let err = client.parse_response(&buf, &Limits::DEFAULT).unwrap_err();
        assert_eq!(err.status(), 502);
        assert_eq!(err.to_string(), "server answered 302 instead of 101");
        let HandshakeError::UnexpectedStatus(status) = err else {
            panic!("{err:?}")
        };
        assert_eq!(status.status, 302);
        assert_eq!(status.reason, "Found");
        assert_eq!(
            status.location.as_deref(),
            Some("wss://elsewhere.example/chat")
        );
        assert_eq!(status.body, b"moved");

        // A server refusal written by wsx itself, read back by the client.
        let mut refusal = Vec::new();
        write_error(&HandshakeError::UnsupportedVersion, &mut refusal);
        let Err(HandshakeError::UnexpectedStatus(status)) =
            client.parse_response(&refusal, &Limits::DEFAULT)
        else {
            panic!()
        };
        assert_eq!(
            (status.status, status.reason.as_str()),
            (426, "Upgrade Required")
        );
        assert_eq!(status.body, b"unsupported websocket version\n");
        assert_eq!(status.location, None);

        // A long body is cut, and so is one without a length.
        let mut long = head!["HTTP/1.1 500 Internal Server Error"];
        long.extend_from_slice(&[b'x'; 1000]);
        let Err(HandshakeError::UnexpectedStatus(status)) =
            client.parse_response(&long, &Limits::DEFAULT)
        else {
            panic!()
        };
        assert_eq!(status.body.len(), UnexpectedStatus::MAX_BODY);
    }

    #[test]
    fn response_head_limits() {
        let client = client();
        let mut buf = head![STATUS_101, UPGRADE, CONNECTION, ACCEPT];
        let small = Limits {
            max_head_size: buf.len() - 1,
            ..Limits::DEFAULT
        };
        assert_eq!(
            parse_split(&client, &buf, &small),
            Err(HandshakeError::InvalidResponse("head too large"))
        );
        let few = Limits {
            max_headers: 2,
            ..Limits::DEFAULT
        };
        assert_eq!(
            client.parse_response(&buf, &few),
            Err(HandshakeError::InvalidResponse("too many headers"))
        );
        buf.truncate(buf.len() - 2);
        assert_eq!(client.parse_response(&buf, &Limits::DEFAULT), Ok(None));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let client = client();
            let limits = Limits { max_head_size: 128, max_headers: 4, ..Limits::DEFAULT };
            for limits in [Limits::DEFAULT, limits] {
                if let Ok(Some((_, n))) = client.parse_response(&bytes, &limits) {
                    prop_assert!(n <= bytes.len());
                }
            }
        }

        #[test]
        fn random_response_after_status_line(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut buf = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
            buf.extend_from_slice(&bytes);
            if let Ok(Some((resp, n))) = client().parse_response(&buf, &Limits::DEFAULT) {
                prop_assert!(n <= buf.len());
                prop_assert_eq!(resp.status(), 101);
            }
        }
    }
}

//! The upgrade request: parsed by the server ([`UpgradeRequest::parse`]), written by the client
//! ([`ClientRequest::write`]).

use std::fmt;

use super::accept::{accept_bytes, is_valid_key, random_key, ACCEPT_LEN};
use super::extensions::{
    format_extensions, is_token, is_valid_value, list_elements, lists_contain,
    parse_extensions_into, trim_ows,
};
use super::{ExtensionOffer, HandshakeError};
use crate::Limits;

/// A WebSocket protocol version wsx speaks (`Sec-WebSocket-Version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Version {
    /// Version 8 (draft-ietf-hybi-thewebsocketprotocol-08 to -12): the wire format of 13, with
    /// the origin in `Sec-WebSocket-Origin`.
    V8,
    /// Version 13, RFC 6455.
    #[default]
    V13,
}

impl Version {
    /// The number sent in `Sec-WebSocket-Version`.
    pub const fn as_u8(self) -> u8 {
        match self {
            Version::V8 => 8,
            Version::V13 => 13,
        }
    }

    const fn as_str(self) -> &'static str {
        match self {
            Version::V8 => "8",
            Version::V13 => "13",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Head storage shared by the request and the response.

/// Header lines parsed on the stack up to this many; more (if the limit allows) go to the heap.
const STACK_HEADERS: usize = 64;

/// A byte range of a stored head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    start: usize,
    end: usize,
}

impl Span {
    /// The range `part` takes in `base`; `part` must be a sub-slice of `base`.
    pub(super) fn of(base: &[u8], part: &[u8]) -> Span {
        let start = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
        debug_assert!(start <= base.len() && part.len() <= base.len() - start);
        Span {
            start,
            end: start.wrapping_add(part.len()),
        }
    }
}

/// An owned copy of a head and the spans of its header lines.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Head {
    bytes: Box<[u8]>,
    headers: Vec<(Span, Span)>,
}

impl Head {
    /// Copies `buf[..len]` and records where `headers` (parsed from `buf`) lie in it.
    pub(super) fn new(buf: &[u8], len: usize, headers: &[httparse::Header<'_>]) -> Head {
        let bytes: Box<[u8]> = buf.get(..len).unwrap_or(buf).into();
        let headers = headers
            .iter()
            .map(|h| {
                (
                    Span::of(buf, h.name.as_bytes()),
                    Span::of(buf, trim_ows(h.value)),
                )
            })
            .collect();
        Head { bytes, headers }
    }

    /// The bytes of a span (empty if out of range, which a bug would be).
    pub(super) fn bytes(&self, span: Span) -> &[u8] {
        self.bytes.get(span.start..span.end).unwrap_or_default()
    }

    /// The text of a span checked to be UTF-8 when it was parsed.
    pub(super) fn text(&self, span: Span) -> &str {
        let text = std::str::from_utf8(self.bytes(span));
        debug_assert!(text.is_ok());
        text.unwrap_or_default()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.headers
            .iter()
            .map(|&(n, v)| (self.text(n), self.bytes(v)))
    }

    pub(super) fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    pub(super) fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// Why a head could not be read, before any WebSocket check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HeadError {
    TooLarge,
    TooManyHeaders,
    Invalid(&'static str),
}

/// Room for the header lines of one parse: on the stack up to [`STACK_HEADERS`].
pub(super) struct HeaderSlots<'b> {
    stack: [httparse::Header<'b>; STACK_HEADERS],
    heap: Vec<httparse::Header<'b>>,
}

impl<'b> HeaderSlots<'b> {
    pub(super) fn new() -> Self {
        HeaderSlots {
            stack: [httparse::EMPTY_HEADER; STACK_HEADERS],
            heap: Vec::new(),
        }
    }

    /// `limits.max_headers` empty slots.
    pub(super) fn get(&mut self, limits: &Limits) -> &mut [httparse::Header<'b>] {
        match self.stack.get_mut(..limits.max_headers) {
            Some(slots) => slots,
            None => {
                self.heap = vec![httparse::EMPTY_HEADER; limits.max_headers];
                &mut self.heap
            }
        }
    }
}

/// The part of `buf` worth parsing: one byte past the head limit, so that a head that does not
/// end within the limit is seen to be too large without scanning a huge buffer.
pub(super) fn window<'b>(buf: &'b [u8], limits: &Limits) -> &'b [u8] {
    buf.get(..limits.max_head_size.saturating_add(1))
        .unwrap_or(buf)
}

/// The head length from an httparse result over [`window`]: `Ok(None)` while incomplete.
pub(super) fn head_len(
    result: httparse::Result<usize>,
    buf_len: usize,
    limits: &Limits,
) -> Result<Option<usize>, HeadError> {
    match result {
        Ok(httparse::Status::Complete(n)) if n <= limits.max_head_size => Ok(Some(n)),
        Ok(httparse::Status::Complete(_)) => Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) if buf_len > limits.max_head_size => Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooManyHeaders),
        Err(e) => Err(HeadError::Invalid(match e {
            httparse::Error::HeaderName => "invalid header name",
            httparse::Error::HeaderValue => "invalid header value",
            httparse::Error::NewLine => "invalid line ending",
            httparse::Error::Status => "invalid status code",
            httparse::Error::Token => "invalid token",
            httparse::Error::Version => "invalid http version",
            httparse::Error::TooManyHeaders => "too many headers",
        })),
    }
}

/// The values of every header called `name`, trimmed.
pub(super) fn all<'a, 'b>(
    headers: &'a [httparse::Header<'b>],
    name: &'a str,
) -> impl Iterator<Item = &'b [u8]> + 'a {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| trim_ows(h.value))
}

/// The value of a header that may appear at most once.
pub(super) fn single<'b>(
    headers: &[httparse::Header<'b>],
    name: &str,
) -> Result<Option<&'b [u8]>, ()> {
    let mut values = all(headers, name);
    let first = values.next();
    match values.next() {
        Some(_) => Err(()),
        None => Ok(first),
    }
}

// ---------------------------------------------------------------------------------------------
// Server side.

/// A valid WebSocket upgrade request, parsed by a server with [`UpgradeRequest::parse`].
///
/// The method is always `GET` and the HTTP version 1.1, so neither is kept. The head is copied
/// (one allocation, plus one for the header index): the request outlives the read buffer.
#[derive(Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    head: Head,
    target: Span,
    path_len: usize,
    host: Span,
    key: Span,
    version: Version,
    protocols: Vec<Span>,
    extensions: Vec<ExtensionOffer>,
    origin: Option<Span>,
}

impl UpgradeRequest {
    /// Parses an upgrade request head from the start of `buf`, which may hold only part of it.
    ///
    /// Returns `Ok(None)` while the head is incomplete, and `Ok(Some((request, consumed)))` once
    /// it is complete and valid: `consumed` is the head length, and any bytes after it belong
    /// to the WebSocket stream. Call again with the whole buffer (not only the new bytes) after
    /// each read.
    ///
    /// The checks run in this order, and the first that fails is the error:
    ///
    /// 1. the head: at most [`Limits::max_head_size`] bytes and [`Limits::max_headers`] headers
    ///    (431), valid HTTP/1.x (400);
    /// 2. an `Upgrade` header listing `websocket`, ASCII case-insensitively (else 426
    ///    [`HandshakeError::NotUpgrade`], so a plain HTTP request is told to upgrade);
    /// 3. method `GET` (405 with `Allow: GET`), then HTTP/1.1 (400);
    /// 4. exactly one non-empty `Host` (400);
    /// 5. a `Connection` header listing `Upgrade` (400);
    /// 6. `Sec-WebSocket-Version` once: `13` or `8`; missing or another number is 426, not a
    ///    number is 400;
    /// 7. `Sec-WebSocket-Key` once, the padded base64 of 16 bytes (400);
    /// 8. every `Sec-WebSocket-Protocol` element a token (400); every `Sec-WebSocket-Extensions`
    ///    value well-formed (400);
    /// 9. at most one `Origin` (for version 8, `Sec-WebSocket-Origin` is read when `Origin` is
    ///    absent), UTF-8 (400).
    ///
    /// A header that may appear once (`Host`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version`,
    /// `Origin`) appearing twice is [`HandshakeError::Malformed`]. The origin is not judged:
    /// that is the application's policy ([`HandshakeError::OriginNotAllowed`]).
    ///
    /// # Errors
    ///
    /// The [`HandshakeError`] to answer with [`super::write_error`]; its
    /// [`status`](HandshakeError::status) is listed above.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsx::protocol::handshake::{UpgradeRequest, Version};
    /// let head = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
    ///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    ///     Sec-WebSocket-Version: 13\r\n\r\n\x81\x00";
    /// let limits = wsx::Limits::DEFAULT;
    /// assert_eq!(UpgradeRequest::parse(&head[..20], &limits)?, None);
    /// let (req, consumed) = UpgradeRequest::parse(head, &limits)?.expect("complete");
    /// assert_eq!(&head[consumed..], b"\x81\x00"); // a frame, left to the caller
    /// assert_eq!((req.path(), req.host(), req.version()), ("/chat", "server.example.com", Version::V13));
    /// assert_eq!(req.accept_key(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /// # Ok::<(), wsx::HandshakeError>(())
    /// ```
    pub fn parse(
        buf: &[u8],
        limits: &Limits,
    ) -> Result<Option<(UpgradeRequest, usize)>, HandshakeError> {
        let mut slots = HeaderSlots::new();
        let mut req = httparse::Request::new(slots.get(limits));
        let parsed = head_len(req.parse(window(buf, limits)), buf.len(), limits);
        let len = match parsed {
            Ok(Some(len)) => len,
            Ok(None) => return Ok(None),
            Err(e) => return Err(server_head_error(e, limits)),
        };
        let (method, target) = (req.method.unwrap_or_default(), req.path.unwrap_or_default());
        let request = Self::check(buf, len, method, target, req.version, req.headers)?;
        Ok(Some((request, len)))
    }

    fn check(
        buf: &[u8],
        len: usize,
        method: &str,
        target: &str,
        http_version: Option<u8>,
        headers: &[httparse::Header<'_>],
    ) -> Result<UpgradeRequest, HandshakeError> {
        use HandshakeError as E;
        if !lists_contain(all(headers, "upgrade"), "websocket") {
            return Err(E::NotUpgrade);
        }
        if method != "GET" {
            return Err(E::MethodNotAllowed);
        }
        if http_version != Some(1) {
            return Err(E::HttpVersion);
        }
        let host = match single(headers, "host") {
            Err(()) => return Err(E::Malformed("duplicate host header")),
            Ok(None) | Ok(Some([])) => return Err(E::MissingHost),
            Ok(Some(host)) => utf8(host, "host header is not utf-8")?,
        };
        if !lists_contain(all(headers, "connection"), "upgrade") {
            return Err(E::MissingConnectionUpgrade);
        }
        let version = match single(headers, "sec-websocket-version") {
            Err(()) => return Err(E::Malformed("duplicate sec-websocket-version header")),
            Ok(None) => return Err(E::UnsupportedVersion),
            Ok(Some(b"13")) => Version::V13,
            Ok(Some(b"8")) => Version::V8,
            Ok(Some(v)) if !v.is_empty() && v.iter().all(u8::is_ascii_digit) => {
                return Err(E::UnsupportedVersion)
            }
            Ok(Some(_)) => return Err(E::InvalidVersion),
        };
        let key = match single(headers, "sec-websocket-key") {
            Err(()) => return Err(E::Malformed("duplicate sec-websocket-key header")),
            Ok(None) => return Err(E::MissingKey),
            Ok(Some(key)) if is_valid_key(key) => key,
            Ok(Some(_)) => return Err(E::InvalidKey),
        };
        let mut protocols = Vec::new();
        for value in all(headers, "sec-websocket-protocol") {
            for protocol in list_elements(value) {
                if !is_token(protocol) {
                    return Err(E::InvalidProtocol);
                }
                protocols.push(Span::of(buf, protocol));
            }
        }
        let mut extensions = Vec::new();
        for value in all(headers, "sec-websocket-extensions") {
            parse_extensions_into(value, &mut extensions)?;
        }
        let mut origin = single(headers, "origin");
        if version == Version::V8 && origin == Ok(None) {
            origin = single(headers, "sec-websocket-origin");
        }
        let origin = match origin {
            Err(()) => return Err(E::Malformed("duplicate origin header")),
            Ok(None) => None,
            Ok(Some(origin)) => Some(utf8(origin, "origin header is not utf-8")?),
        };

        let target_bytes = target.as_bytes();
        Ok(UpgradeRequest {
            head: Head::new(buf, len, headers),
            target: Span::of(buf, target_bytes),
            path_len: target_bytes
                .iter()
                .position(|&b| b == b'?')
                .unwrap_or(target_bytes.len()),
            host: Span::of(buf, host),
            key: Span::of(buf, key),
            version,
            protocols,
            extensions,
            origin: origin.map(|o| Span::of(buf, o)),
        })
    }

    /// The request target as sent: path and query, e.g. `/chat?room=1`.
    pub fn target(&self) -> &str {
        self.head.text(self.target)
    }

    /// The target up to the first `?`, e.g. `/chat`. Not percent-decoded.
    pub fn path(&self) -> &str {
        let target = self.target();
        target.get(..self.path_len).unwrap_or(target)
    }

    /// The target after the first `?`, if there is one, e.g. `room=1`. Not percent-decoded.
    pub fn query(&self) -> Option<&str> {
        self.target()
            .get(self.path_len..)
            .and_then(|q| q.strip_prefix('?'))
    }

    /// The `Host` header, trimmed, e.g. `example.com:8080`.
    pub fn host(&self) -> &str {
        self.head.text(self.host)
    }

    /// The `Sec-WebSocket-Key`, as sent (24 base64 characters).
    pub fn key(&self) -> &str {
        self.head.text(self.key)
    }

    /// The `Sec-WebSocket-Accept` value that answers [`key`](Self::key).
    pub fn accept_key(&self) -> String {
        super::accept_key(self.key())
    }

    /// The `Sec-WebSocket-Version`.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The subprotocols offered in `Sec-WebSocket-Protocol`, in the client's order of
    /// preference, across all such headers.
    pub fn protocols(&self) -> impl Iterator<Item = &str> + '_ {
        self.protocols.iter().map(|&s| self.head.text(s))
    }

    /// The extensions offered in `Sec-WebSocket-Extensions`, in order, across all such headers.
    pub fn extensions(&self) -> &[ExtensionOffer] {
        &self.extensions
    }

    /// The `Origin` header (for version 8, `Sec-WebSocket-Origin` when `Origin` is absent).
    pub fn origin(&self) -> Option<&str> {
        self.origin.map(|s| self.head.text(s))
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

impl fmt::Debug for UpgradeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpgradeRequest")
            .field("target", &self.target())
            .field("host", &self.host())
            .field("key", &self.key())
            .field("version", &self.version)
            .field("protocols", &self.protocols().collect::<Vec<_>>())
            .field("extensions", &self.extensions)
            .field("origin", &self.origin())
            .field("headers", &self.headers().count())
            .finish()
    }
}

fn utf8<'b>(bytes: &'b [u8], what: &'static str) -> Result<&'b [u8], HandshakeError> {
    match std::str::from_utf8(bytes) {
        Ok(_) => Ok(bytes),
        Err(_) => Err(HandshakeError::Malformed(what)),
    }
}

fn server_head_error(e: HeadError, limits: &Limits) -> HandshakeError {
    match e {
        HeadError::TooLarge => HandshakeError::HeadTooLarge {
            max: limits.max_head_size,
        },
        HeadError::TooManyHeaders => HandshakeError::TooManyHeaders {
            max: limits.max_headers,
        },
        HeadError::Invalid(what) => HandshakeError::Malformed(what),
    }
}

/// Whether the head at the start of `buf` asks to upgrade to WebSocket: its `Upgrade` header
/// lists `websocket`. Nothing else is checked; [`UpgradeRequest::parse`] says whether the
/// request is a valid one.
///
/// For an HTTP server that also serves WebSocket: `Some(false)` is a plain HTTP request to
/// answer as such. A WebSocket-only endpoint can leave this to [`UpgradeRequest::parse`], whose
/// first check turns a plain request into [`HandshakeError::NotUpgrade`], answered with
/// 426 Upgrade Required (rather than 400: the request is fine HTTP, only not an upgrade).
///
/// # Errors
///
/// The head errors of [`UpgradeRequest::parse`]: 431 for a head over the limits, 400 for
/// invalid HTTP.
///
/// # Examples
///
/// ```
/// use wsx::protocol::handshake::is_upgrade_request;
/// let limits = wsx::Limits::DEFAULT;
/// assert_eq!(is_upgrade_request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &limits)?, Some(false));
/// assert_eq!(is_upgrade_request(b"GET / HTTP/1.1\r\nUpgrade: WebSocket\r\n\r\n", &limits)?, Some(true));
/// assert_eq!(is_upgrade_request(b"GET / HTTP/1.1\r\n", &limits)?, None);
/// # Ok::<(), wsx::HandshakeError>(())
/// ```
pub fn is_upgrade_request(buf: &[u8], limits: &Limits) -> Result<Option<bool>, HandshakeError> {
    let mut slots = HeaderSlots::new();
    let mut req = httparse::Request::new(slots.get(limits));
    match head_len(req.parse(window(buf, limits)), buf.len(), limits) {
        Ok(Some(_)) => Ok(Some(lists_contain(
            all(req.headers, "upgrade"),
            "websocket",
        ))),
        Ok(None) => Ok(None),
        Err(e) => Err(server_head_error(e, limits)),
    }
}

// ---------------------------------------------------------------------------------------------
// Client side.

/// What a client asks for. Fill it, then [`write`](Self::write) it.
///
/// # Examples
///
/// ```
/// use rand::SeedableRng;
/// use wsx::protocol::handshake::{ClientRequest, ExtensionOffer};
///
/// let deflate = [ExtensionOffer::new("permessage-deflate").with_param("client_max_window_bits", None)];
/// let mut request = ClientRequest::new("example.com", "/socket?v=2");
/// request.port = 8443;
/// request.secure = true;
/// request.protocols = &["v2.chat", "v1.chat"];
/// request.extensions = &deflate;
/// request.origin = Some("https://example.com");
/// request.headers = &[("User-Agent", "wsx")];
///
/// let mut out = Vec::new();
/// let handshake = request.write(&mut rand::rngs::StdRng::seed_from_u64(0), &mut out)?;
/// let text = std::str::from_utf8(&out).unwrap();
/// assert!(text.starts_with("GET /socket?v=2 HTTP/1.1\r\nHost: example.com:8443\r\n"));
/// assert!(text.contains(&format!("Sec-WebSocket-Key: {}\r\n", handshake.key())));
/// assert!(text.ends_with("User-Agent: wsx\r\n\r\n"));
/// # Ok::<(), wsx::HandshakeError>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientRequest<'a> {
    /// Host name or IP address, without port. An IPv6 address is bracketed when written.
    pub host: &'a str,
    /// TCP port; written in `Host` unless it is the default for [`secure`](Self::secure).
    pub port: u16,
    /// Whether the connection is `wss` (TLS): makes 443 the default port instead of 80.
    pub secure: bool,
    /// Path and query, starting with `/`, already percent-encoded (visible ASCII only).
    pub target: &'a str,
    /// The protocol version to ask for. Version 8 sends the origin as `Sec-WebSocket-Origin`.
    pub version: Version,
    /// Subprotocols to offer, most preferred first; each must be a token.
    pub protocols: &'a [&'a str],
    /// Extensions to offer, most preferred first.
    pub extensions: &'a [ExtensionOffer],
    /// The `Origin` to send (browsers always do; other clients may).
    pub origin: Option<&'a str>,
    /// More headers, written last in order. Headers the handshake writes itself are refused.
    pub headers: &'a [(&'a str, &'a str)],
}

/// Headers a [`ClientRequest`] writes itself and refuses in [`ClientRequest::headers`].
const CLIENT_MANAGED: [&str; 9] = [
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "origin",
    "sec-websocket-origin",
];

impl<'a> ClientRequest<'a> {
    /// A version 13 request for `ws://host:80` + `target`, offering nothing.
    pub fn new(host: &'a str, target: &'a str) -> Self {
        ClientRequest {
            host,
            port: 80,
            secure: false,
            target,
            version: Version::V13,
            protocols: &[],
            extensions: &[],
            origin: None,
            headers: &[],
        }
    }

    /// Appends the request to `out` with a key drawn from `rng`, and returns what the client
    /// needs to check the response.
    ///
    /// # Errors
    ///
    /// 500-class errors for a request that cannot be written: [`HandshakeError::InvalidTarget`]
    /// for the host or target, [`HandshakeError::InvalidHeader`] for a protocol that is not a
    /// token, an extension that cannot be formatted, or an extra header that is invalid or
    /// written by the handshake itself. `out` is left as it was.
    pub fn write<R: rand::RngCore + ?Sized>(
        &self,
        rng: &mut R,
        out: &mut Vec<u8>,
    ) -> Result<ClientHandshake, HandshakeError> {
        self.write_with_key(&random_key(rng), out)
    }

    /// [`write`](Self::write) with a key from the operating system's random source.
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write), and [`HandshakeError::RandomUnavailable`] if the operating
    /// system cannot give random bytes.
    pub fn write_with_os_rng(&self, out: &mut Vec<u8>) -> Result<ClientHandshake, HandshakeError> {
        use rand::TryRngCore as _;
        let mut nonce = [0u8; 16];
        rand::rngs::OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|_| HandshakeError::RandomUnavailable)?;
        let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, nonce);
        self.write_with_key(&key, out)
    }

    /// [`write`](Self::write) with a given key, for fixtures and tests. A real client must use
    /// a fresh random key for every connection (RFC 6455 §4.1).
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write), and [`HandshakeError::InvalidHeader`] if `key` is not the
    /// padded base64 of 16 bytes.
    pub fn write_with_key(
        &self,
        key: &str,
        out: &mut Vec<u8>,
    ) -> Result<ClientHandshake, HandshakeError> {
        let before = out.len();
        let result = self.write_inner(key, out);
        if result.is_err() {
            out.truncate(before);
        }
        result
    }

    fn write_inner(&self, key: &str, out: &mut Vec<u8>) -> Result<ClientHandshake, HandshakeError> {
        use HandshakeError as E;
        if !is_valid_key(key.as_bytes()) {
            return Err(E::InvalidHeader(
                "sec-websocket-key is not 16 bytes of base64",
            ));
        }
        let host = self.host.as_bytes();
        if host.is_empty()
            || !host
                .iter()
                .all(|&b| b.is_ascii_graphic() && !matches!(b, b'/' | b'?' | b'#' | b'@'))
        {
            return Err(E::InvalidTarget("invalid host"));
        }
        if !self.target.starts_with('/') {
            return Err(E::InvalidTarget("request target must start with '/'"));
        }
        if !self.target.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(E::InvalidTarget("request target must be visible ascii"));
        }
        if self.protocols.iter().any(|p| !is_token(p.as_bytes())) {
            return Err(E::InvalidHeader("subprotocol is not a token"));
        }

        out.extend_from_slice(b"GET ");
        out.extend_from_slice(self.target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        let bracket = host.contains(&b':') && !host.starts_with(b"[");
        if bracket {
            out.push(b'[');
        }
        out.extend_from_slice(host);
        if bracket {
            out.push(b']');
        }
        if self.port != if self.secure { 443 } else { 80 } {
            out.push(b':');
            out.extend_from_slice(self.port.to_string().as_bytes());
        }
        out.extend_from_slice(
            b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ",
        );
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\r\nSec-WebSocket-Version: ");
        out.extend_from_slice(self.version.as_str().as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(origin) = self.origin {
            if !is_valid_value(origin.as_bytes()) {
                return Err(E::InvalidHeader("origin has a control byte"));
            }
            let name = match self.version {
                Version::V8 => "Sec-WebSocket-Origin",
                Version::V13 => "Origin",
            };
            write_header(out, name, origin);
        }
        if !self.protocols.is_empty() {
            write_header(out, "Sec-WebSocket-Protocol", &self.protocols.join(", "));
        }
        if !self.extensions.is_empty() {
            let mut value = String::new();
            format_extensions(self.extensions, &mut value)?;
            write_header(out, "Sec-WebSocket-Extensions", &value);
        }
        write_extra_headers(out, self.headers, &CLIENT_MANAGED)?;
        out.extend_from_slice(b"\r\n");

        Ok(ClientHandshake {
            key: key.to_owned(),
            accept: accept_bytes(key.as_bytes()),
            version: self.version,
            protocols: self.protocols.iter().map(|&p| p.to_owned()).collect(),
            extensions: self.extensions.iter().map(|e| e.name.clone()).collect(),
        })
    }
}

/// Writes `name: value\r\n`; both already validated.
pub(super) fn write_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Validates and writes application headers; names in `managed` (lower-case) are refused.
pub(super) fn write_extra_headers(
    out: &mut Vec<u8>,
    headers: &[(&str, &str)],
    managed: &[&str],
) -> Result<(), HandshakeError> {
    for &(name, value) in headers {
        if !is_token(name.as_bytes()) {
            return Err(HandshakeError::InvalidHeader("header name is not a token"));
        }
        if !is_valid_value(value.as_bytes()) {
            return Err(HandshakeError::InvalidHeader(
                "header value has a control byte",
            ));
        }
        if managed.iter().any(|m| name.eq_ignore_ascii_case(m)) {
            return Err(HandshakeError::InvalidHeader(
                "header is written by the handshake",
            ));
        }
        write_header(out, name, value);
    }
    Ok(())
}

/// What a client keeps between writing its request and reading the response: the key and what
/// it offered. Check the response with [`ClientHandshake::parse_response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHandshake {
    pub(super) key: String,
    pub(super) accept: [u8; ACCEPT_LEN],
    pub(super) version: Version,
    pub(super) protocols: Vec<String>,
    pub(super) extensions: Vec<String>,
}

impl ClientHandshake {
    /// The `Sec-WebSocket-Key` that was sent.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The `Sec-WebSocket-Accept` the server must answer with.
    pub fn expected_accept(&self) -> &str {
        let accept = std::str::from_utf8(&self.accept);
        debug_assert!(accept.is_ok(), "base64 is ascii");
        accept.unwrap_or_default()
    }

    /// The version that was asked for.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The subprotocols that were offered.
    pub fn protocols(&self) -> &[String] {
        &self.protocols
    }

    /// The names of the extensions that were offered.
    pub fn extension_names(&self) -> &[String] {
        &self.extensions
    }
}

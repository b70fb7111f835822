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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    /// `head!["GET / HTTP/1.1", "Host: a"]`: the lines joined with CRLF, then the blank line.
    macro_rules! head {
        ($($line:expr),* $(,)?) => {{
            let mut head = String::new();
            $( head.push_str($line); head.push_str("\r\n"); )*
            head.push_str("\r\n");
            head.into_bytes()
        }};
    }

    const GET: &str = "GET /chat HTTP/1.1";
    const HOST: &str = "Host: server.example.com";
    const UPGRADE: &str = "Upgrade: websocket";
    const CONNECTION: &str = "Connection: Upgrade";
    const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
    const V13: &str = "Sec-WebSocket-Version: 13";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    type Parsed = Result<Option<(UpgradeRequest, usize)>, HandshakeError>;

    /// Parses `buf` whole, and checks that every shorter prefix is `Ok(None)` or the same error
    /// (a head error can show before the head ends, never a different one).
    fn parse_split(buf: &[u8], limits: &Limits) -> Parsed {
        let whole = UpgradeRequest::parse(buf, limits);
        let head_len = match &whole {
            Ok(Some((_, n))) => *n,
            _ => buf.len(),
        };
        for k in 0..head_len {
            match UpgradeRequest::parse(&buf[..k], limits) {
                Ok(None) => {}
                Err(e) if Err(e.clone()) == whole.as_ref().map(|_| ()).map_err(Clone::clone) => {}
                other => panic!("prefix {k} of {head_len}: {other:?}, whole: {whole:?}"),
            }
        }
        for k in head_len..=buf.len() {
            assert_eq!(
                UpgradeRequest::parse(&buf[..k], limits),
                whole,
                "prefix {k}"
            );
        }
        whole
    }

    fn parse_ok(buf: &[u8]) -> UpgradeRequest {
        match parse_split(buf, &Limits::DEFAULT) {
            Ok(Some((req, n))) => {
                assert_eq!(n, buf.len());
                req
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    /// `accepts! { name: [lines] => |req| checks; ... }`: each head parses, whole and split.
    macro_rules! accepts {
        ($($name:ident: [$($line:expr),* $(,)?] => |$req:ident| $check:expr;)*) => {$({
            let $req = parse_ok(&head![$($line),*]);
            assert!($check, "{}: {:?}", stringify!($name), $req);
        })*};
    }

    /// `rejects! { name: [lines] => error, status; ... }`: each head fails with that error.
    macro_rules! rejects {
        ($($name:ident: [$($line:expr),* $(,)?] => $err:expr, $status:literal;)*) => {$({
            let err = parse_split(&head![$($line),*], &Limits::DEFAULT)
                .expect_err(stringify!($name));
            assert_eq!(err, $err, "{}", stringify!($name));
            assert_eq!(err.status(), $status, "{}", stringify!($name));
        })*};
    }

    #[test]
    fn rfc6455_section_1_2_example() {
        let req = parse_ok(&head![
            GET,
            HOST,
            UPGRADE,
            CONNECTION,
            KEY,
            "Origin: http://example.com",
            "Sec-WebSocket-Protocol: chat, superchat",
            V13,
        ]);
        assert_eq!(req.target(), "/chat");
        assert_eq!(req.path(), "/chat");
        assert_eq!(req.query(), None);
        assert_eq!(req.host(), "server.example.com");
        assert_eq!(req.key(), "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(req.accept_key(), ACCEPT);
        assert_eq!(req.version(), Version::V13);
        assert_eq!(req.protocols().collect::<Vec<_>>(), ["chat", "superchat"]);
        assert_eq!(req.extensions(), []);
        assert_eq!(req.origin(), Some("http://example.com"));
        assert_eq!(req.headers().count(), 7);
    }

    #[test]
    fn chrome_like_request() {
        let req = parse_ok(&head![
            "GET /ws?token=abc&x=1 HTTP/1.1",
            "Host: localhost:9001",
            "Connection: Upgrade",
            "Pragma: no-cache",
            "Cache-Control: no-cache",
            "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
            "Upgrade: websocket",
            "Origin: http://localhost:8080",
            "Sec-WebSocket-Version: 13",
            "Accept-Encoding: gzip, deflate, br, zstd",
            "Accept-Language: en-US,en;q=0.9",
            "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==",
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
        ]);
        assert_eq!((req.path(), req.query()), ("/ws", Some("token=abc&x=1")));
        assert_eq!(req.host(), "localhost:9001");
        assert_eq!(req.accept_key(), "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
        assert_eq!(
            req.extensions(),
            [
                ExtensionOffer::new("permessage-deflate")
                    .with_param("client_max_window_bits", None)
            ]
        );
        assert_eq!(
            req.header("user-agent").map(|v| v.starts_with(b"Mozilla")),
            Some(true)
        );
        assert_eq!(req.header("PRAGMA"), Some(&b"no-cache"[..]));
        assert_eq!(req.header("x-missing"), None);
        let names: Vec<_> = req.headers().map(|(n, _)| n).collect();
        assert_eq!(names.first(), Some(&"Host"));
        assert_eq!(names.len(), 12);
    }

    #[test]
    fn valid_variations() {
        accepts! {
            lower_case_names: ["GET / HTTP/1.1", "host: a", "upgrade: websocket",
                "connection: upgrade", "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
                "sec-websocket-version: 13"] => |r| r.key() == "dGhlIHNhbXBsZSBub25jZQ==";
            upper_case_values: [GET, HOST, "Upgrade: WEBSOCKET", "Connection: UPGRADE", KEY, V13]
                => |r| r.version() == Version::V13;
            upgrade_list: [GET, HOST, "Upgrade: h2c, WebSocket", CONNECTION, KEY, V13] => |_r| true;
            upgrade_two_headers: [GET, HOST, "Upgrade: h2c", "Upgrade: websocket", CONNECTION, KEY,
                V13] => |_r| true;
            connection_list: [GET, HOST, UPGRADE, "Connection: keep-alive, Upgrade", KEY, V13]
                => |_r| true;
            connection_two_headers: [GET, HOST, UPGRADE, "Connection: keep-alive",
                "Connection: upgrade", KEY, V13] => |_r| true;
            connection_odd_spacing: [GET, HOST, UPGRADE, "Connection:keep-alive ,\tUpgrade ,", KEY,
                V13] => |_r| true;
            padded_values: [GET, "Host:   a.b  ", UPGRADE, CONNECTION,
                "Sec-WebSocket-Key:   dGhlIHNhbXBsZSBub25jZQ==  ", "Sec-WebSocket-Version: 13 "]
                => |r| r.host() == "a.b" && r.accept_key() == ACCEPT;
            version_8: [GET, HOST, UPGRADE, CONNECTION, KEY, "Sec-WebSocket-Version: 8",
                "Sec-WebSocket-Origin: http://old.example"]
                => |r| r.version() == Version::V8 && r.origin() == Some("http://old.example");
            version_8_prefers_origin: [GET, HOST, UPGRADE, CONNECTION, KEY,
                "Sec-WebSocket-Version: 8", "Origin: http://a", "Sec-WebSocket-Origin: http://b"]
                => |r| r.origin() == Some("http://a");
            version_13_ignores_sec_origin: [GET, HOST, UPGRADE, CONNECTION, KEY, V13,
                "Sec-WebSocket-Origin: http://b"] => |r| r.origin().is_none();
            protocols_across_headers: [GET, HOST, UPGRADE, CONNECTION, KEY, V13,
                "Sec-WebSocket-Protocol: a, b", "Sec-WebSocket-Protocol: c", "Sec-WebSocket-Protocol: ,"]
                => |r| r.protocols().collect::<Vec<_>>() == ["a", "b", "c"];
            extensions_across_headers: [GET, HOST, UPGRADE, CONNECTION, KEY, V13,
                "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10",
                "Sec-WebSocket-Extensions: x-foo, x-bar; q=\"1\""]
                => |r| r.extensions().iter().map(|e| e.name.as_str()).collect::<Vec<_>>()
                    == ["permessage-deflate", "x-foo", "x-bar"]
                    && r.extensions()[0].param("server_max_window_bits") == Some(Some("10"));
            query_split: ["GET /a/b?c=d?e HTTP/1.1", HOST, UPGRADE, CONNECTION, KEY, V13]
                => |r| r.path() == "/a/b" && r.query() == Some("c=d?e");
            empty_query: ["GET /? HTTP/1.1", HOST, UPGRADE, CONNECTION, KEY, V13]
                => |r| r.path() == "/" && r.query() == Some("");
            absolute_target: ["GET ws://a.example/x HTTP/1.1", HOST, UPGRADE, CONNECTION, KEY, V13]
                => |r| r.target() == "ws://a.example/x";
            utf8_origin: [GET, HOST, UPGRADE, CONNECTION, KEY, V13, "Origin: http://b\u{fc}cher.example"]
                => |r| r.origin() == Some("http://b\u{fc}cher.example");
        }
    }

    #[test]
    fn rejections_with_status() {
        use HandshakeError as E;
        rejects! {
            plain_get: [GET, HOST] => E::NotUpgrade, 426;
            upgrade_other: [GET, HOST, "Upgrade: h2c", CONNECTION, KEY, V13] => E::NotUpgrade, 426;
            upgrade_substring: [GET, HOST, "Upgrade: websockets", CONNECTION, KEY, V13]
                => E::NotUpgrade, 426;
            post: ["POST /chat HTTP/1.1", HOST, UPGRADE, CONNECTION, KEY, V13]
                => E::MethodNotAllowed, 405;
            lower_case_method: ["get /chat HTTP/1.1", HOST, UPGRADE, CONNECTION, KEY, V13]
                => E::MethodNotAllowed, 405;
            http_1_0: ["GET /chat HTTP/1.0", HOST, UPGRADE, CONNECTION, KEY, V13] => E::HttpVersion, 400;
            http_2: ["GET /chat HTTP/2.0", HOST, UPGRADE, CONNECTION, KEY, V13]
                => E::Malformed("invalid http version"), 400;
            no_host: [GET, UPGRADE, CONNECTION, KEY, V13] => E::MissingHost, 400;
            empty_host: [GET, "Host:", UPGRADE, CONNECTION, KEY, V13] => E::MissingHost, 400;
            two_hosts: [GET, HOST, "Host: evil", UPGRADE, CONNECTION, KEY, V13]
                => E::Malformed("duplicate host header"), 400;
            no_connection: [GET, HOST, UPGRADE, KEY, V13] => E::MissingConnectionUpgrade, 400;
            connection_keep_alive: [GET, HOST, UPGRADE, "Connection: keep-alive", KEY, V13]
                => E::MissingConnectionUpgrade, 400;
            connection_substring: [GET, HOST, UPGRADE, "Connection: upgraded", KEY, V13]
                => E::MissingConnectionUpgrade, 400;
            no_version: [GET, HOST, UPGRADE, CONNECTION, KEY] => E::UnsupportedVersion, 426;
            version_7: [GET, HOST, UPGRADE, CONNECTION, KEY, "Sec-WebSocket-Version: 7"]
                => E::UnsupportedVersion, 426;
            version_013: [GET, HOST, UPGRADE, CONNECTION, KEY, "Sec-WebSocket-Version: 013"]
                => E::UnsupportedVersion, 426;
            version_huge: [GET, HOST, UPGRADE, CONNECTION, KEY,
                "Sec-WebSocket-Version: 99999999999999999999999"] => E::UnsupportedVersion, 426;
            version_text: [GET, HOST, UPGRADE, CONNECTION, KEY, "Sec-WebSocket-Version: thirteen"]
                => E::InvalidVersion, 400;
            version_list: [GET, HOST, UPGRADE, CONNECTION, KEY, "Sec-WebSocket-Version: 13, 8"]
                => E::InvalidVersion, 400;
            version_empty: [GET, HOST, UPGRADE, CONNECTION, KEY, "Sec-WebSocket-Version:"]
                => E::InvalidVersion, 400;
            two_versions: [GET, HOST, UPGRADE, CONNECTION, KEY, V13, V13]
                => E::Malformed("duplicate sec-websocket-version header"), 400;
            version_before_key: [GET, HOST, UPGRADE, CONNECTION, "Sec-WebSocket-Version: 12"]
                => E::UnsupportedVersion, 426;
            no_key: [GET, HOST, UPGRADE, CONNECTION, V13] => E::MissingKey, 400;
            short_key: [GET, HOST, UPGRADE, CONNECTION, "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA", V13]
                => E::InvalidKey, 400;
            long_key: [GET, HOST, UPGRADE, CONNECTION, "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAA",
                V13] => E::InvalidKey, 400;
            unpadded_key: [GET, HOST, UPGRADE, CONNECTION, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ",
                V13] => E::InvalidKey, 400;
            not_base64_key: [GET, HOST, UPGRADE, CONNECTION, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j*Q==",
                V13] => E::InvalidKey, 400;
            two_keys: [GET, HOST, UPGRADE, CONNECTION, KEY, KEY, V13]
                => E::Malformed("duplicate sec-websocket-key header"), 400;
            protocol_not_token: [GET, HOST, UPGRADE, CONNECTION, KEY, V13,
                "Sec-WebSocket-Protocol: chat, super chat"] => E::InvalidProtocol, 400;
            protocol_quoted: [GET, HOST, UPGRADE, CONNECTION, KEY, V13,
                "Sec-WebSocket-Protocol: \"chat\""] => E::InvalidProtocol, 400;
            extensions_malformed: [GET, HOST, UPGRADE, CONNECTION, KEY, V13,
                "Sec-WebSocket-Extensions: permessage-deflate;"]
                => E::InvalidExtensions("expected a parameter name"), 400;
            two_origins: [GET, HOST, UPGRADE, CONNECTION, KEY, V13, "Origin: http://a", "Origin: http://b"]
                => E::Malformed("duplicate origin header"), 400;
            bad_header_name: [GET, "Ho st: a", UPGRADE, CONNECTION, KEY, V13]
                => E::Malformed("invalid header name"), 400;
            obs_fold: [GET, HOST, UPGRADE, " folded", CONNECTION, KEY, V13]
                => E::Malformed("invalid header name"), 400;
        }
    }

    #[test]
    fn latin1_host_is_malformed() {
        let mut buf = head![GET, "Host: caf_", UPGRADE, CONNECTION, KEY, V13];
        let at = buf.iter().position(|&b| b == b'_').unwrap();
        buf[at] = 0xe9;
        assert_eq!(
            UpgradeRequest::parse(&buf, &Limits::DEFAULT),
            Err(HandshakeError::Malformed("host header is not utf-8"))
        );
    }

    #[test]
    fn bytes_after_the_head_are_left() {
        let mut buf = head![GET, HOST, UPGRADE, CONNECTION, KEY, V13];
        let head_len = buf.len();
        buf.extend_from_slice(b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58");
        for k in 0..buf.len() {
            let parsed = UpgradeRequest::parse(&buf[..k], &Limits::DEFAULT).unwrap();
            assert_eq!(
                parsed.map(|(_, n)| n),
                (k >= head_len).then_some(head_len),
                "prefix {k}"
            );
        }
        // And a second request after the head is not read either.
        let mut two = head![GET, HOST, UPGRADE, CONNECTION, KEY, V13];
        two.extend_from_slice(&head!["GET /other HTTP/1.1"]);
        let (req, n) = UpgradeRequest::parse(&two, &Limits::DEFAULT)
            .unwrap()
            .unwrap();
        assert_eq!((req.path(), n), ("/chat", head_len));
    }

    #[test]
    fn head_size_limit() {
        let base = head![GET, HOST, UPGRADE, CONNECTION, KEY, V13];
        let exact = Limits {
            max_head_size: base.len(),
            ..Limits::DEFAULT
        };
        assert!(matches!(parse_split(&base, &exact), Ok(Some((_, n))) if n == base.len()));
        let short = Limits {
            max_head_size: base.len() - 1,
            ..Limits::DEFAULT
        };
        let too_large = HandshakeError::HeadTooLarge {
            max: base.len() - 1,
        };
        assert_eq!(too_large.status(), 431);
        assert_eq!(parse_split(&base, &short), Err(too_large));

        // Headers forever: 431 as soon as the limit is passed without the head ending.
        let mut endless = b"GET / HTTP/1.1\r\n".to_vec();
        while endless.len() <= Limits::DEFAULT.max_head_size {
            endless.extend_from_slice(format!("X-Filler: {:0200}\r\n", 0).as_bytes());
        }
        assert_eq!(
            UpgradeRequest::parse(&endless, &Limits::DEFAULT),
            Err(HandshakeError::HeadTooLarge { max: 8192 })
        );
        assert_eq!(
            is_upgrade_request(&endless, &Limits::DEFAULT),
            Err(HandshakeError::HeadTooLarge { max: 8192 })
        );
        let cut = &endless[..Limits::DEFAULT.max_head_size];
        assert_eq!(UpgradeRequest::parse(cut, &Limits::DEFAULT), Ok(None));
    }

    #[test]
    fn header_count_limit() {
        let lines: Vec<String> = (0..6).map(|i| format!("X-{i}: {i}")).collect();
        let mut all_lines = vec![GET, HOST, UPGRADE, CONNECTION, KEY, V13];
        all_lines.extend(lines.iter().map(String::as_str));
        let mut buf = all_lines.join("\r\n").into_bytes();
        buf.extend_from_slice(b"\r\n\r\n");
        // 11 header lines.
        let ten = Limits {
            max_headers: 10,
            ..Limits::DEFAULT
        };
        let err = HandshakeError::TooManyHeaders { max: 10 };
        assert_eq!(err.status(), 431);
        assert_eq!(parse_split(&buf, &ten), Err(err));
        let eleven = Limits {
            max_headers: 11,
            ..Limits::DEFAULT
        };
        assert!(matches!(parse_split(&buf, &eleven), Ok(Some(_))));

        // Past the stack slots: the heap path.
        let many: Vec<String> = (0..100).map(|i| format!("X-{i}: {i}")).collect();
        let mut lines = vec![GET, HOST, UPGRADE, CONNECTION, KEY, V13];
        lines.extend(many.iter().map(String::as_str));
        let mut buf = lines.join("\r\n").into_bytes();
        buf.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            UpgradeRequest::parse(&buf, &Limits::DEFAULT),
            Err(HandshakeError::TooManyHeaders { max: 64 })
        );
        let roomy = Limits {
            max_headers: 106,
            ..Limits::DEFAULT
        };
        let (req, _) = UpgradeRequest::parse(&buf, &roomy).unwrap().unwrap();
        assert_eq!(req.header("x-99"), Some(&b"99"[..]));
        assert_eq!(req.header_all("X-5").count(), 1);
        let none = Limits {
            max_headers: 0,
            ..Limits::DEFAULT
        };
        assert_eq!(
            UpgradeRequest::parse(&buf, &none),
            Err(HandshakeError::TooManyHeaders { max: 0 })
        );
    }

    #[test]
    fn upgrade_detection() {
        let limits = Limits::DEFAULT;
        type Detected = Result<Option<bool>, HandshakeError>;
        let cases: [(&[u8], Detected); 6] = [
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", Ok(Some(false))),
            (
                b"POST / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
                Ok(Some(true)),
            ),
            (
                b"GET / HTTP/1.0\r\nUpgrade: h2c,  WebSocket \r\n\r\n",
                Ok(Some(true)),
            ),
            (b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n", Ok(Some(false))),
            (b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n", Ok(None)),
            (
                b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
                Err(HandshakeError::Malformed("invalid header name")),
            ),
        ];
        for (buf, expected) in cases {
            assert_eq!(
                is_upgrade_request(buf, &limits),
                expected,
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    fn client_bytes(
        request: &ClientRequest<'_>,
    ) -> (Result<ClientHandshake, HandshakeError>, String) {
        let mut out = b"kept".to_vec();
        let result = request.write_with_key("dGhlIHNhbXBsZSBub25jZQ==", &mut out);
        assert!(out.starts_with(b"kept"));
        (result, String::from_utf8(out[4..].to_vec()).unwrap())
    }

    #[test]
    fn client_request_bytes() {
        let (handshake, text) = client_bytes(&ClientRequest::new("server.example.com", "/chat"));
        let handshake = handshake.unwrap();
        assert_eq!(
            text,
            "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        assert_eq!(handshake.key(), "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(handshake.expected_accept(), ACCEPT);
        assert_eq!(handshake.version(), Version::V13);

        let ext = [
            ExtensionOffer::new("permessage-deflate").with_param("client_max_window_bits", None)
        ];
        let mut full = ClientRequest::new("example.com", "/a?b=c");
        full.protocols = &["v2", "v1"];
        full.extensions = &ext;
        full.origin = Some("https://example.com");
        full.headers = &[("User-Agent", "wsx/0.1"), ("Cookie", "a=b; c=d")];
        let (handshake, text) = client_bytes(&full);
        assert_eq!(
            text,
            "GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\nOrigin: https://example.com\r\n\
             Sec-WebSocket-Protocol: v2, v1\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
             User-Agent: wsx/0.1\r\nCookie: a=b; c=d\r\n\r\n"
        );
        let handshake = handshake.unwrap();
        assert_eq!(handshake.protocols(), ["v2", "v1"]);
        assert_eq!(handshake.extension_names(), ["permessage-deflate"]);

        let mut v8 = ClientRequest::new("a", "/");
        v8.version = Version::V8;
        v8.origin = Some("http://a");
        let (_, text) = client_bytes(&v8);
        assert!(text.contains("Sec-WebSocket-Version: 8\r\nSec-WebSocket-Origin: http://a\r\n"));
    }

    #[test]
    fn client_host_header() {
        macro_rules! host {
            ($($host:literal, $port:literal, $secure:literal => $expected:literal;)*) => {$({
                let mut request = ClientRequest::new($host, "/");
                request.port = $port;
                request.secure = $secure;
                let (_, text) = client_bytes(&request);
                let line = text.lines().nth(1).unwrap();
                assert_eq!(line, concat!("Host: ", $expected), "{} {} {}", $host, $port, $secure);
            })*};
        }
        host! {
            "a.example", 80, false => "a.example";
            "a.example", 443, true => "a.example";
            "a.example", 443, false => "a.example:443";
            "a.example", 80, true => "a.example:80";
            "a.example", 9001, false => "a.example:9001";
            "127.0.0.1", 8080, false => "127.0.0.1:8080";
            "::1", 8080, false => "[::1]:8080";
            "[::1]", 80, false => "[::1]";
            "fe80::1", 443, true => "[fe80::1]";
        }
    }

    #[test]
    fn client_request_refusals() {
        use HandshakeError as E;
        macro_rules! refuses {
            ($($name:ident: |$r:ident| $setup:expr => $err:expr;)*) => {$({
                let mut $r = ClientRequest::new("example.com", "/");
                $setup;
                let (result, text) = client_bytes(&$r);
                assert_eq!(result, Err($err), "{}", stringify!($name));
                assert_eq!(text, "", "{}: out left as it was", stringify!($name));
            })*};
        }
        refuses! {
            empty_host: |r| r.host = "" => E::InvalidTarget("invalid host");
            host_with_space: |r| r.host = "a b" => E::InvalidTarget("invalid host");
            host_with_crlf: |r| r.host = "a\r\nX: y" => E::InvalidTarget("invalid host");
            host_with_path: |r| r.host = "a/b" => E::InvalidTarget("invalid host");
            host_with_userinfo: |r| r.host = "u@a" => E::InvalidTarget("invalid host");
            relative_target: |r| r.target = "chat" => E::InvalidTarget("request target must start with '/'");
            target_with_space: |r| r.target = "/a b" => E::InvalidTarget("request target must be visible ascii");
            target_with_crlf: |r| r.target = "/\r\nX: y" => E::InvalidTarget("request target must be visible ascii");
            target_non_ascii: |r| r.target = "/caf\u{e9}" => E::InvalidTarget("request target must be visible ascii");
            protocol_not_token: |r| r.protocols = &["a b"] => E::InvalidHeader("subprotocol is not a token");
            protocol_empty: |r| r.protocols = &[""] => E::InvalidHeader("subprotocol is not a token");
            origin_injection: |r| r.origin = Some("http://a\r\nX: y") => E::InvalidHeader("origin has a control byte");
            header_name_injection: |r| r.headers = &[("X\r\nY", "1")] => E::InvalidHeader("header name is not a token");
            header_value_injection: |r| r.headers = &[("X", "1\r\nY: 2")] => E::InvalidHeader("header value has a control byte");
            header_value_lf: |r| r.headers = &[("X", "1\nY: 2")] => E::InvalidHeader("header value has a control byte");
            header_value_nul: |r| r.headers = &[("X", "\0")] => E::InvalidHeader("header value has a control byte");
            header_empty_name: |r| r.headers = &[("", "1")] => E::InvalidHeader("header name is not a token");
            managed_key: |r| r.headers = &[("sec-websocket-key", "x")] => E::InvalidHeader("header is written by the handshake");
            managed_host: |r| r.headers = &[("HOST", "x")] => E::InvalidHeader("header is written by the handshake");
            managed_origin: |r| r.headers = &[("Origin", "x")] => E::InvalidHeader("header is written by the handshake");
        }
        let bad_ext = [ExtensionOffer::new("a b")];
        let mut r = ClientRequest::new("example.com", "/");
        r.extensions = &bad_ext;
        assert_eq!(
            client_bytes(&r).0,
            Err(E::InvalidHeader("extension name is not a token"))
        );
        let mut out = Vec::new();
        assert_eq!(
            ClientRequest::new("a", "/").write_with_key("short", &mut out),
            Err(E::InvalidHeader(
                "sec-websocket-key is not 16 bytes of base64"
            ))
        );
        assert!(out.is_empty());
    }

    #[test]
    fn client_keys_are_random() {
        let request = ClientRequest::new("a", "/");
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let ka = request.write(&mut rng, &mut a).unwrap();
        let kb = request.write(&mut rng, &mut b).unwrap();
        assert_ne!(ka.key(), kb.key());
        let ko = request.write_with_os_rng(&mut Vec::new()).unwrap();
        assert_ne!(ko.key(), ka.key());
        for k in [&ka, &kb, &ko] {
            assert!(is_valid_key(k.key().as_bytes()));
            assert_eq!(
                k.expected_accept(),
                crate::protocol::handshake::accept_key(k.key())
            );
        }
        // What the client writes, the server parses back to the same key.
        let (req, n) = UpgradeRequest::parse(&a, &Limits::DEFAULT)
            .unwrap()
            .unwrap();
        assert_eq!((req.key(), n, req.host()), (ka.key(), a.len(), "a"));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let limits = Limits { max_head_size: 256, max_headers: 8, ..Limits::DEFAULT };
            for limits in [Limits::DEFAULT, limits] {
                if let Ok(Some((req, n))) = UpgradeRequest::parse(&bytes, &limits) {
                    prop_assert!(n <= bytes.len());
                    prop_assert!(is_valid_key(req.key().as_bytes()));
                }
                let _ = is_upgrade_request(&bytes, &limits);
            }
        }

        #[test]
        fn mutated_requests_never_panic(
            at in 0usize..200,
            byte in any::<u8>(),
            cut in 0usize..220,
        ) {
            let mut buf = head![GET, HOST, UPGRADE, CONNECTION, KEY, V13,
                "Sec-WebSocket-Protocol: a, b", "Sec-WebSocket-Extensions: x; y=\"z\""];
            if let Some(b) = buf.get_mut(at) {
                *b = byte;
            }
            let buf = &buf[..cut.min(buf.len())];
            if let Ok(Some((req, n))) = UpgradeRequest::parse(buf, &Limits::DEFAULT) {
                prop_assert!(n <= buf.len());
                prop_assert_eq!(req.accept_key().len(), 28);
            }
        }
    }
}

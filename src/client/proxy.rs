//! Proxies: HTTP `CONNECT` (RFC 9110 §9.3.6) and SOCKS5 (RFC 1928, with RFC 1929
//! username/password), sans-IO.
//!
//! Reaching a server through a proxy takes three steps, and only the last one speaks a protocol:
//!
//! 1. pick the proxy: [`Proxy::parse`] a URL, or [`Proxy::from_env`] the way curl reads
//!    `http_proxy`, `https_proxy`, `all_proxy` and `no_proxy`;
//! 2. open a TCP connection to [`Proxy::authority`] (the caller's IO, not this module's);
//! 3. drive a [`ProxyHandshake`] over that stream until [`ProxyStep::Done`]. The stream is then a
//!    tunnel to the target: the WebSocket handshake (after TLS, for `wss://`) starts on it, fed
//!    first with whatever input the proxy handshake did not consume.
//!
//! ```text
//!            start ──► out ─────────────────────────────► proxy
//!   proxy ──► input ──► handle_read ──► out (SOCKS5 auth, CONNECT) ──► proxy
//!                           └──► NeedMore { consumed } … Done { consumed } ──► tunnel
//! ```
//!
//! `docs/proxies.md` lists the environment variables, the curl differences and what is not
//! supported (TLS to the proxy itself, NTLM, SOCKS4).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::Engine as _;

use crate::client::Url;

/// The largest proxy response head accepted, status line and headers included: 8 KiB.
///
/// A `CONNECT` reply is a status line and a few headers; the cap stops a proxy (or whatever
/// answers in its place) from making the client buffer without end while waiting for the blank
/// line that ends the head.
pub const MAX_RESPONSE_HEAD: usize = 8 * 1024;

/// Headers parsed in a proxy's response head; more is refused as malformed.
const MAX_RESPONSE_HEADERS: usize = 64;

/// The port of a proxy URL that names none, for every scheme, as in curl.
pub const DEFAULT_PROXY_PORT: u16 = 1080;

const SOCKS_VERSION: u8 = 0x05;
const SOCKS_NO_AUTH: u8 = 0x00;
const SOCKS_USER_PASS: u8 = 0x02;
const SOCKS_NO_ACCEPTABLE: u8 = 0xFF;
const SOCKS_CMD_CONNECT: u8 = 0x01;
const SOCKS_ATYP_V4: u8 = 0x01;
const SOCKS_ATYP_NAME: u8 = 0x03;
const SOCKS_ATYP_V6: u8 = 0x04;
/// RFC 1929's sub-negotiation version.
const SOCKS_AUTH_VERSION: u8 = 0x01;

/// A proxy to reach the WebSocket server through.
///
/// The `Debug` output hides the password.
///
/// # Examples
///
/// ```
/// use wsx::client::proxy::Proxy;
///
/// let proxy = Proxy::parse("socks5h://me:p%40ss@[::1]:9050")?;
/// assert_eq!(
///     proxy,
///     Proxy::Socks5 { host: "::1".into(), port: 9050, auth: Some(("me".into(), "p@ss".into())) }
/// );
/// assert_eq!(proxy.authority(), "[::1]:9050");
/// assert_eq!(Proxy::parse("proxy.example")?.authority(), "proxy.example:1080");
/// # Ok::<(), wsx::client::proxy::ProxyError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Proxy {
    /// HTTP CONNECT proxy (RFC 9110 §9.3.6), optional basic auth.
    Http {
        /// Name or IP literal (IPv6 without brackets).
        host: String,
        /// TCP port.
        port: u16,
        /// User name and password for `Proxy-Authorization: Basic`.
        auth: Option<(String, String)>,
    },
    /// SOCKS5 (RFC 1928), optional username/password auth (RFC 1929).
    ///
    /// Host names are always resolved by the proxy, for `socks5://` as for `socks5h://`.
    Socks5 {
        /// Name or IP literal (IPv6 without brackets).
        host: String,
        /// TCP port.
        port: u16,
        /// User name and password for the RFC 1929 sub-negotiation.
        auth: Option<(String, String)>,
    },
}

/// What a [`ProxyHandshake`] needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyStep {
    /// This many bytes of the input were consumed; read more and call again with the rest.
    NeedMore {
        /// Bytes at the front of the input that were used.
        consumed: usize,
    },
    /// The tunnel is ready: `consumed` bytes belonged to the proxy, the rest (if any) already came
    /// from the server.
    Done {
        /// Bytes at the front of the input that were used.
        consumed: usize,
    },
}

/// Why a proxy could not be used or refused the tunnel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The proxy URL could not be parsed.
    #[error("invalid proxy url: {0}")]
    BadUrl(&'static str),
    /// The proxy URL's scheme is not `http`, `socks5` or `socks5h`.
    #[error("unsupported proxy scheme {0:?}: use http://, socks5:// or socks5h://")]
    Scheme(String),
    /// The credentials cannot be sent with this proxy's protocol.
    #[error("invalid proxy credentials: {0}")]
    Credentials(&'static str),
    /// The target host cannot be put in a proxy request.
    #[error("invalid target host: {0}")]
    InvalidTarget(&'static str),
    /// SOCKS5 carries a host name in at most 255 bytes.
    #[error("target host name is longer than 255 bytes")]
    TargetHostTooLong,
    /// The HTTP proxy answered `CONNECT` with a status other than 2xx (407: it wants
    /// credentials, or other ones).
    #[error("proxy refused the tunnel: {status} {reason}")]
    HttpStatus {
        /// The status code.
        status: u16,
        /// The reason phrase, as sent.
        reason: String,
    },
    /// The HTTP proxy's response head did not end within [`MAX_RESPONSE_HEAD`] bytes.
    #[error("proxy response head is larger than 8 KiB")]
    ResponseHeadTooLarge,
    /// A reply that does not follow the proxy's protocol.
    #[error("malformed proxy reply: {0}")]
    Malformed(&'static str),
    /// A SOCKS reply with a version other than 5.
    #[error("socks proxy replied with version {0:#04x}, expected 5")]
    SocksVersion(u8),
    /// The SOCKS5 proxy accepts none of the offered authentication methods (it sent 0xFF).
    #[error("socks5 proxy accepts none of the offered auth methods")]
    SocksNoAcceptableMethod,
    /// The SOCKS5 proxy chose an authentication method that was not offered.
    #[error("socks5 proxy chose auth method {0:#04x}, which was not offered")]
    SocksUnexpectedMethod(u8),
    /// The SOCKS5 proxy refused the username and password (RFC 1929 status, not 0).
    #[error("socks5 proxy refused the username/password (status {0:#04x})")]
    SocksAuthFailed(u8),
    /// The SOCKS5 proxy could not connect to the target.
    #[error("socks5 proxy could not connect: {0}")]
    SocksConnect(SocksReply),
    /// [`ProxyHandshake::handle_read`] was called before [`ProxyHandshake::start`]: a bug in
    /// the caller, not in the proxy.
    #[error("proxy handshake driven out of order: {0}")]
    OutOfOrder(&'static str),
}

/// A failed SOCKS5 reply code (RFC 1928 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SocksReply {
    /// 0x01.
    GeneralFailure,
    /// 0x02.
    NotAllowed,
    /// 0x03.
    NetworkUnreachable,
    /// 0x04.
    HostUnreachable,
    /// 0x05.
    ConnectionRefused,
    /// 0x06.
    TtlExpired,
    /// 0x07.
    CommandNotSupported,
    /// 0x08.
    AddressTypeNotSupported,
    /// 0x09 to 0xFF.
    Unassigned(u8),
}

impl SocksReply {
    /// The reply for a non-zero `REP` code (0 is success and maps to [`SocksReply::Unassigned`]).
    pub fn from_code(code: u8) -> SocksReply {
        match code {
            0x01 => SocksReply::GeneralFailure,
            0x02 => SocksReply::NotAllowed,
            0x03 => SocksReply::NetworkUnreachable,
            0x04 => SocksReply::HostUnreachable,
            0x05 => SocksReply::ConnectionRefused,
            0x06 => SocksReply::TtlExpired,
            0x07 => SocksReply::CommandNotSupported,
            0x08 => SocksReply::AddressTypeNotSupported,
            other => SocksReply::Unassigned(other),
        }
    }

    /// The `REP` code on the wire.
    pub fn code(self) -> u8 {
        match self {
            SocksReply::GeneralFailure => 0x01,
            SocksReply::NotAllowed => 0x02,
            SocksReply::NetworkUnreachable => 0x03,
            SocksReply::HostUnreachable => 0x04,
            SocksReply::ConnectionRefused => 0x05,
            SocksReply::TtlExpired => 0x06,
            SocksReply::CommandNotSupported => 0x07,
            SocksReply::AddressTypeNotSupported => 0x08,
            SocksReply::Unassigned(code) => code,
        }
    }
}

impl fmt::Display for SocksReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            SocksReply::GeneralFailure => "general socks server failure",
            SocksReply::NotAllowed => "connection not allowed by ruleset",
            SocksReply::NetworkUnreachable => "network unreachable",
            SocksReply::HostUnreachable => "host unreachable",
            SocksReply::ConnectionRefused => "connection refused",
            SocksReply::TtlExpired => "ttl expired",
            SocksReply::CommandNotSupported => "command not supported",
            SocksReply::AddressTypeNotSupported => "address type not supported",
            SocksReply::Unassigned(code) => return write!(f, "unassigned reply code {code:#04x}"),
        };
        write!(f, "{text} ({:#04x})", self.code())
    }
}

impl Proxy {
    /// Parses `http://[user:pass@]host[:port]`, `socks5://…` or `socks5h://…`.
    ///
    /// As in curl: a URL without a scheme is an HTTP proxy, the default port is 1080 for every
    /// scheme, a path after the authority is ignored, and user and password are
    /// percent-decoded (`user` alone means an empty password). IPv6 literals go in brackets.
    ///
    /// # Errors
    ///
    /// [`ProxyError::Scheme`] for `https://` (TLS to the proxy is not supported), `socks4://`
    /// and the like; [`ProxyError::BadUrl`] for anything else that does not parse.
    pub fn parse(url: &str) -> Result<Proxy, ProxyError> {
        let url = url.trim();
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ProxyError::BadUrl("whitespace or control character"));
        }
        let (scheme, rest) = match url.split_once("://") {
            Some((scheme, rest)) => (scheme, rest),
            None => ("http", url),
        };
        let socks = match scheme.to_ascii_lowercase().as_str() {
            "http" => false,
            "socks5" | "socks5h" => true,
            _ => return Err(ProxyError::Scheme(scheme.to_owned())),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = rest.get(..end).unwrap_or(rest);
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let auth = match userinfo {
            None | Some("") => None,
            Some(userinfo) => {
                let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                Some((percent_decode(user)?, percent_decode(pass)?))
            }
        };
        let (host, port) = if let Some(after) = hostport.strip_prefix('[') {
            let (host, tail) = after
                .split_once(']')
                .ok_or(ProxyError::BadUrl("unclosed ipv6 bracket"))?;
            if host.parse::<Ipv6Addr>().is_err() {
                return Err(ProxyError::BadUrl("bad ipv6 literal"));
            }
            let port = match tail {
                "" => None,
                tail => Some(
                    tail.strip_prefix(':')
                        .ok_or(ProxyError::BadUrl("junk after ipv6 literal"))?,
                ),
            };
            (host, port)
        } else {
            let (host, port) = match hostport.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            };
            if port.is_some_and(|p| p.contains(':')) {
                return Err(ProxyError::BadUrl("ipv6 literals must be in brackets"));
            }
            if host.contains(['[', ']', '@', '%', '\\']) {
                return Err(ProxyError::BadUrl("character not allowed in a host"));
            }
            (host, port)
        };
        if host.is_empty() {
            return Err(ProxyError::BadUrl("no host"));
        }
        let port = match port {
            None => DEFAULT_PROXY_PORT,
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => return Err(ProxyError::BadUrl("port is not a number from 1 to 65535")),
            },
        };
        let host = host.to_ascii_lowercase();
        Ok(if socks {
            Proxy::Socks5 { host, port, auth }
        } else {
            Proxy::Http { host, port, auth }
        })
    }

    /// The proxy for `target` from the process environment, as curl picks it; see
    /// [`Proxy::from_env_with`].
    pub fn from_env(target: &Url) -> Option<Proxy> {
        Proxy::from_env_with(target, |name| std::env::var(name).ok())
    }

    /// The proxy for `target` from variables read through `lookup`, as curl picks it.
    ///
    /// - `ws://` reads `http_proxy` (lower case only: a CGI server puts a request's `Proxy:`
    ///   header into `HTTP_PROXY`), then `all_proxy`, `ALL_PROXY`;
    /// - `wss://` reads `https_proxy`, `HTTPS_PROXY`, then `all_proxy`, `ALL_PROXY`;
    /// - the first variable that is set, not blank and parses with [`Proxy::parse`] wins; a
    ///   blank one counts as unset, and so does a malformed one, silently;
    /// - no proxy when `no_proxy` (or, if that is unset or blank, `NO_PROXY`) matches the
    ///   target: a list split on commas and whitespace of `*` (every host), IP literals (equal
    ///   addresses only, `[v6]` or bare), or names, which match themselves and their subdomains
    ///   whether or not they start with a dot; each entry may end in `:port` to match that port
    ///   only.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsx::client::{proxy::Proxy, Url};
    ///
    /// let env = |name: &str| match name {
    ///     "https_proxy" => Some("socks5://127.0.0.1".to_owned()),
    ///     "no_proxy" => Some("localhost,.internal".to_owned()),
    ///     _ => None,
    /// };
    /// let target: Url = "wss://api.example.com/feed".parse()?;
    /// assert_eq!(Proxy::from_env_with(&target, env).unwrap().authority(), "127.0.0.1:1080");
    /// let target: Url = "wss://db.internal".parse()?;
    /// assert_eq!(Proxy::from_env_with(&target, env), None);
    /// let target: Url = "ws://api.example.com".parse()?;
    /// assert_eq!(Proxy::from_env_with(&target, env), None);
    /// # Ok::<(), wsx::client::UrlError>(())
    /// ```
    pub fn from_env_with(target: &Url, lookup: impl Fn(&str) -> Option<String>) -> Option<Proxy> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        if let Some(no_proxy) = get("no_proxy").or_else(|| get("NO_PROXY")) {
            if no_proxy_matches(&no_proxy, target.host(), target.port()) {
                return None;
            }
        }
        let names: &[&str] = if target.is_secure() {
            &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
        } else {
            &["http_proxy", "all_proxy", "ALL_PROXY"]
        };
        names
            .iter()
            .filter_map(|name| get(name))
            .find_map(|value| Proxy::parse(&value).ok())
    }

    /// `host:port` to open the TCP connection to (IPv6 in brackets).
    pub fn authority(&self) -> String {
        let (host, port) = match self {
            Proxy::Http { host, port, .. } | Proxy::Socks5 { host, port, .. } => (host, port),
        };
        if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }
}

impl std::str::FromStr for Proxy {
    type Err = ProxyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Proxy::parse(s)
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, host, port, auth) = match self {
            Proxy::Http { host, port, auth } => ("Http", host, port, auth),
            Proxy::Socks5 { host, port, auth } => ("Socks5", host, port, auth),
        };
        let auth = auth.as_ref().map(|(user, _)| (user, "<redacted>"));
        f.debug_struct(name)
            .field("host", host)
            .field("port", port)
            .field("auth", &auth)
            .finish()
    }
}

fn percent_decode(s: &str) -> Result<String, ProxyError> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = bytes.next().and_then(hex);
            let lo = bytes.next().and_then(hex);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push((hi << 4) | lo),
                _ => return Err(ProxyError::BadUrl("bad percent-escape in credentials")),
            }
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out)
        .map_err(|_| ProxyError::BadUrl("credentials are not utf-8 once percent-decoded"))
}

/// Whether a `no_proxy` list excludes `host` (as [`Url::host`] gives it) on `port`.
fn no_proxy_matches(list: &str, host: &str, port: u16) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let host_ip = host.parse::<IpAddr>().ok();
    list.split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|entry| !entry.is_empty())
        .any(|entry| no_proxy_entry_matches(&entry.to_ascii_lowercase(), &host, host_ip, port))
}

fn no_proxy_entry_matches(entry: &str, host: &str, host_ip: Option<IpAddr>, port: u16) -> bool {
    if entry == "*" {
        return true;
    }
    // `[v6]`, `[v6]:port`, `name:port`, `v4:port`; a bare IPv6 literal has no port.
    let (name, entry_port) = if let Some(rest) = entry.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, "")) => (ip, None),
            Some((ip, tail)) => match tail.strip_prefix(':').map(str::parse::<u16>) {
                Some(Ok(p)) => (ip, Some(p)),
                _ => return false,
            },
            None => return false,
        }
    } else if entry.matches(':').count() == 1 {
        match entry
            .split_once(':')
            .map(|(name, p)| (name, p.parse::<u16>()))
        {
            Some((name, Ok(p))) => (name, Some(p)),
            _ => return false,
        }
    } else {
        (entry, None)
    };
    if entry_port.is_some_and(|p| p != port) {
        return false;
    }
    match (name.parse::<IpAddr>(), host_ip) {
        (Ok(ip), Some(host_ip)) => ip == host_ip,
        (Ok(_), None) | (Err(_), Some(_)) => false,
        (Err(_), None) => {
            let domain = name.trim_start_matches('.').trim_end_matches('.');
            !domain.is_empty()
                && (host == domain
                    || host
                        .strip_suffix(domain)
                        .is_some_and(|sub| sub.ends_with('.')))
        }
    }
}

/// Drives a proxy's own handshake over an already-connected stream.
///
/// The calling order:
///
/// 1. [`start`](Self::start), then send what it appended;
/// 2. [`handle_read`](Self::handle_read) with every byte received and not yet consumed (an
///    empty slice is fine; it is how an invalid target is reported when `start` appended
///    nothing); send whatever it appended, drop the `consumed` bytes, and repeat after the next
///    read while it says [`ProxyStep::NeedMore`];
/// 3. on [`ProxyStep::Done`] the stream is a tunnel to the target; the input after `consumed`
///    came from the server.
///
/// Errors are sticky: once `handle_read` failed it returns the same error again. The proxy
/// does not close the stream on failure; the caller should.
///
/// # Examples
///
/// ```
/// use wsx::client::proxy::{Proxy, ProxyHandshake, ProxyStep};
///
/// let proxy = Proxy::parse("http://proxy.example:3128")?;
/// let mut handshake = ProxyHandshake::new(&proxy, "example.com", 443);
/// let mut out = Vec::new();
/// handshake.start(&mut out);
/// assert_eq!(out, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
///
/// // The proxy's answer, with the server's first bytes right behind it:
/// let input = b"HTTP/1.1 200 Connection established\r\n\r\nfrom the server";
/// let step = handshake.handle_read(input, &mut out)?;
/// assert_eq!(step, ProxyStep::Done { consumed: input.len() - b"from the server".len() });
/// # Ok::<(), wsx::client::proxy::ProxyError>(())
/// ```
#[derive(Debug)]
pub struct ProxyHandshake {
    state: State,
}

#[derive(Debug)]
enum State {
    /// Built; every request is ready, nothing sent.
    New(Plan),
    /// `CONNECT` sent; waiting for the response head.
    HttpHead,
    /// Greeting sent; waiting for the chosen method.
    SocksMethod {
        auth: Option<Vec<u8>>,
        connect: Vec<u8>,
    },
    /// RFC 1929 request sent; waiting for its status.
    SocksAuth {
        connect: Vec<u8>,
    },
    /// CONNECT request sent; waiting for the reply.
    SocksConnect,
    Done,
    Failed(ProxyError),
}

#[derive(Debug)]
enum Plan {
    Http {
        request: Vec<u8>,
    },
    Socks5 {
        greeting: Vec<u8>,
        auth: Option<Vec<u8>>,
        connect: Vec<u8>,
    },
}

/// What one message did.
enum Progress {
    Need,
    Consumed(usize),
    Finished(usize),
}

/// The target as a proxy request carries it.
enum Target {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
    Name(String),
}

impl Target {
    fn parse(host: &str) -> Result<Target, ProxyError> {
        if let Some(inner) = host.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or(ProxyError::InvalidTarget("unclosed ipv6 bracket"))?;
            return inner
                .parse()
                .map(Target::V6)
                .map_err(|_| ProxyError::InvalidTarget("bad ipv6 literal"));
        }
        if let Ok(v4) = host.parse() {
            return Ok(Target::V4(v4));
        }
        if let Ok(v6) = host.parse() {
            return Ok(Target::V6(v6));
        }
        if host.is_empty() {
            return Err(ProxyError::InvalidTarget("empty host"));
        }
        if host
            .bytes()
            .any(|b| b <= b' ' || b == 0x7F || b"/?#@[]\\:%".contains(&b))
        {
            return Err(ProxyError::InvalidTarget(
                "character not allowed in a host name",
            ));
        }
        Ok(Target::Name(host.to_owned()))
    }
}

impl ProxyHandshake {
    /// A handshake that asks `proxy` for a tunnel to `target_host:target_port`.
    ///
    /// `target_host` is a name, an IPv4 literal, or an IPv6 literal with or without brackets
    /// ([`Url::host`] gives one). With SOCKS5, IP literals go as addresses and names are resolved
    /// by the proxy.
    ///
    /// An invalid target (empty, with characters no host name has, or a name over 255 bytes for
    /// SOCKS5) or credentials the protocol cannot carry make the handshake fail from the
    /// start: [`start`](Self::start) appends nothing and
    /// [`handle_read`](Self::handle_read) returns the error.
    pub fn new(proxy: &Proxy, target_host: &str, target_port: u16) -> Self {
        let state = match ProxyHandshake::plan(proxy, target_host, target_port) {
            Ok(plan) => State::New(plan),
            Err(e) => State::Failed(e),
        };
        ProxyHandshake { state }
    }

    fn plan(proxy: &Proxy, target_host: &str, target_port: u16) -> Result<Plan, ProxyError> {
        let target = Target::parse(target_host)?;
        match proxy {
            Proxy::Http { auth, .. } => {
                let authority = match &target {
                    Target::V4(ip) => format!("{ip}:{target_port}"),
                    Target::V6(ip) => format!("[{ip}]:{target_port}"),
                    Target::Name(name) => format!("{name}:{target_port}"),
                };
                let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
                if let Some((user, pass)) = auth {
                    if user.contains(':') {
                        return Err(ProxyError::Credentials(
                            "a basic auth user name cannot contain ':'",
                        ));
                    }
                    let token =
                        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                    request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
                }
                request.push_str("\r\n");
                Ok(Plan::Http {
                    request: request.into_bytes(),
                })
            }
            Proxy::Socks5 { auth, .. } => {
                let auth = match auth {
                    None => None,
                    Some((user, pass)) => {
                        let (Ok(ulen), Ok(plen)) =
                            (u8::try_from(user.len()), u8::try_from(pass.len()))
                        else {
                            return Err(ProxyError::Credentials(
                                "socks5 user name and password are at most 255 bytes",
                            ));
                        };
                        if ulen == 0 {
                            return Err(ProxyError::Credentials(
                                "socks5 needs a non-empty user name",
                            ));
                        }
                        let mut request = vec![SOCKS_AUTH_VERSION, ulen];
                        request.extend_from_slice(user.as_bytes());
                        request.push(plen);
                        request.extend_from_slice(pass.as_bytes());
                        Some(request)
                    }
                };
                let greeting = if auth.is_some() {
                    vec![SOCKS_VERSION, 2, SOCKS_NO_AUTH, SOCKS_USER_PASS]
                } else {
                    vec![SOCKS_VERSION, 1, SOCKS_NO_AUTH]
                };
                let mut connect = vec![SOCKS_VERSION, SOCKS_CMD_CONNECT, 0x00];
                match &target {
                    Target::V4(ip) => {
                        connect.push(SOCKS_ATYP_V4);
                        connect.extend_from_slice(&ip.octets());
                    }
                    Target::V6(ip) => {
                        connect.push(SOCKS_ATYP_V6);
                        connect.extend_from_slice(&ip.octets());
                    }
                    Target::Name(name) => {
                        let len =
                            u8::try_from(name.len()).map_err(|_| ProxyError::TargetHostTooLong)?;
                        connect.extend_from_slice(&[SOCKS_ATYP_NAME, len]);
                        connect.extend_from_slice(name.as_bytes());
                    }
                }
                connect.extend_from_slice(&target_port.to_be_bytes());
                Ok(Plan::Socks5 {
                    greeting,
                    auth,
                    connect,
                })
            }
        }
    }

    /// Appends the first bytes to send: the `CONNECT` request, or the SOCKS5 greeting.
    ///
    /// Appends nothing when the handshake failed in [`new`](Self::new), or when called a second
    /// time.
    pub fn start(&mut self, out: &mut Vec<u8>) {
        let State::New(plan) = &mut self.state else {
            return;
        };
        self.state = match std::mem::replace(
            plan,
            Plan::Http {
                request: Vec::new(),
            },
        ) {
            Plan::Http { request } => {
                out.extend_from_slice(&request);
                State::HttpHead
            }
            Plan::Socks5 {
                greeting,
                auth,
                connect,
            } => {
                out.extend_from_slice(&greeting);
                State::SocksMethod { auth, connect }
            }
        };
    }

    /// Reads the proxy's replies from `input`, every byte received and not yet consumed; may
    /// append more to send (the SOCKS5 username/password, then the SOCKS5 connect request).
    ///
    /// A response split across reads is fine: bytes that do not complete a reply are left
    /// unconsumed. After [`ProxyStep::Done`] it keeps answering `Done { consumed: 0 }`.
    ///
    /// # Errors
    ///
    /// The proxy refused ([`ProxyError::HttpStatus`], [`ProxyError::SocksConnect`],
    /// [`ProxyError::SocksAuthFailed`], [`ProxyError::SocksNoAcceptableMethod`]), broke its
    /// protocol, or the arguments to [`new`](Self::new) were invalid; see [`ProxyError`].
    pub fn handle_read(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<ProxyStep, ProxyError> {
        let mut consumed = 0;
        loop {
            let rest = input.get(consumed..).unwrap_or_default();
            match self.step(rest, out) {
                Ok(Progress::Need) => return Ok(ProxyStep::NeedMore { consumed }),
                Ok(Progress::Consumed(n)) => {
                    debug_assert!(n > 0 && n <= rest.len());
                    consumed += n;
                }
                Ok(Progress::Finished(n)) => {
                    self.state = State::Done;
                    return Ok(ProxyStep::Done {
                        consumed: consumed + n,
                    });
                }
                Err(e) => {
                    self.state = State::Failed(e.clone());
                    return Err(e);
                }
            }
        }
    }

    /// Handles one message at the front of `input`.
    fn step(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Progress, ProxyError> {
        match &mut self.state {
            State::New(_) => Err(ProxyError::OutOfOrder("handle_read before start")),
            State::Failed(e) => Err(e.clone()),
            State::Done => Ok(Progress::Finished(0)),
            State::HttpHead => Ok(match parse_http_head(input)? {
                Some(n) => Progress::Finished(n),
                None => Progress::Need,
            }),
            State::SocksMethod { auth, connect } => {
                let Some(method) = parse_socks_method(input)? else {
                    return Ok(Progress::Need);
                };
                match (method, auth.take()) {
                    (SOCKS_NO_AUTH, _) => {
                        out.extend_from_slice(connect);
                        self.state = State::SocksConnect;
                    }
                    (SOCKS_USER_PASS, Some(auth)) => {
                        out.extend_from_slice(&auth);
                        self.state = State::SocksAuth {
                            connect: std::mem::take(connect),
                        };
                    }
                    (SOCKS_NO_ACCEPTABLE, _) => return Err(ProxyError::SocksNoAcceptableMethod),
                    (other, _) => return Err(ProxyError::SocksUnexpectedMethod(other)),
                }
                Ok(Progress::Consumed(2))
            }
            State::SocksAuth { connect } => {
                let Some(&version) = input.first() else {
                    return Ok(Progress::Need);
                };
                if !auth_version_ok(version) {
                    return Err(ProxyError::Malformed("bad auth reply version"));
                }
                let Some(&status) = input.get(1) else {
                    return Ok(Progress::Need);
                };
                if status != 0 {
                    return Err(ProxyError::SocksAuthFailed(status));
                }
                out.extend_from_slice(connect);
                self.state = State::SocksConnect;
                Ok(Progress::Consumed(2))
            }
            State::SocksConnect => Ok(match parse_socks_connect_reply(input)? {
                Some(n) => Progress::Finished(n),
                None => Progress::Need,
            }),
        }
    }
}

/// RFC 1929 says 0x01; some servers echo the SOCKS version, and curl does not check this byte.
fn auth_version_ok(version: u8) -> bool {
    version == SOCKS_AUTH_VERSION || version == SOCKS_VERSION
}

/// The length of a complete 2xx response head, `None` for a partial one.
///
/// Only the first [`MAX_RESPONSE_HEAD`] bytes are looked at, so the outcome is the same however
/// the input was split.
fn parse_http_head(input: &[u8]) -> Result<Option<usize>, ProxyError> {
    let window = input.get(..MAX_RESPONSE_HEAD).unwrap_or(input);
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(window) {
        Ok(httparse::Status::Complete(len)) => {
            let status = response.code.unwrap_or_default();
            if (200..300).contains(&status) {
                Ok(Some(len))
            } else {
                Err(ProxyError::HttpStatus {
                    status,
                    reason: response.reason.unwrap_or_default().to_owned(),
                })
            }
        }
        Ok(httparse::Status::Partial) if input.len() >= MAX_RESPONSE_HEAD => {
            Err(ProxyError::ResponseHeadTooLarge)
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(ProxyError::Malformed(
            "more than 64 headers in the response",
        )),
        Err(_) => Err(ProxyError::Malformed("invalid http response")),
    }
}

/// The method the SOCKS5 server chose, `None` until both bytes are in.
fn parse_socks_method(input: &[u8]) -> Result<Option<u8>, ProxyError> {
    match (input.first(), input.get(1)) {
        (Some(&version), _) if version != SOCKS_VERSION => Err(ProxyError::SocksVersion(version)),
        (Some(_), Some(&method)) => Ok(Some(method)),
        _ => Ok(None),
    }
}

/// The length of a complete, successful connect reply, `None` for a partial one.
///
/// Each field is checked as soon as it is in, in wire order, so the outcome is the same however
/// the input was split.
fn parse_socks_connect_reply(input: &[u8]) -> Result<Option<usize>, ProxyError> {
    // VER REP RSV ATYP BND.ADDR BND.PORT; RSV is not checked.
    let Some(&version) = input.first() else {
        return Ok(None);
    };
    if version != SOCKS_VERSION {
        return Err(ProxyError::SocksVersion(version));
    }
    let Some(&reply) = input.get(1) else {
        return Ok(None);
    };
    if reply != 0 {
        return Err(ProxyError::SocksConnect(SocksReply::from_code(reply)));
    }
    let Some(&atyp) = input.get(3) else {
        return Ok(None);
    };
    let addr_len = match atyp {
        SOCKS_ATYP_V4 => 4,
        SOCKS_ATYP_V6 => 16,
        SOCKS_ATYP_NAME => match input.get(4) {
            Some(&len) => 1 + usize::from(len),
            None => return Ok(None),
        },
        _ => {
            return Err(ProxyError::Malformed(
                "unknown address type in the connect reply",
            ))
        }
    };
    let len = 4 + addr_len + 2;
    Ok((input.len() >= len).then_some(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;

    fn http(host: &str, port: u16, auth: Option<(&str, &str)>) -> Proxy {
        let auth = auth.map(|(u, p)| (u.to_owned(), p.to_owned()));
        Proxy::Http {
            host: host.to_owned(),
            port,
            auth,
        }
    }

    fn socks(host: &str, port: u16, auth: Option<(&str, &str)>) -> Proxy {
        let auth = auth.map(|(u, p)| (u.to_owned(), p.to_owned()));
        Proxy::Socks5 {
            host: host.to_owned(),
            port,
            auth,
        }
    }

    #[test]
    fn parse_accepts() {
        let ok = [
            ("http://proxy:3128", http("proxy", 3128, None)),
            ("HTTP://Proxy.Example", http("proxy.example", 1080, None)),
            ("proxy.example:8080", http("proxy.example", 8080, None)),
            ("proxy.example", http("proxy.example", 1080, None)),
            ("http://proxy:3128/", http("proxy", 3128, None)),
            (
                "http://proxy:3128/ignored/path?x#y",
                http("proxy", 3128, None),
            ),
            ("  http://proxy:3128\n", http("proxy", 3128, None)),
            ("http://u:p@proxy:1", http("proxy", 1, Some(("u", "p")))),
            ("http://u@proxy", http("proxy", 1080, Some(("u", "")))),
            ("http://@proxy", http("proxy", 1080, None)),
            (
                "http://u%40x:p%3A%2f%25@proxy",
                http("proxy", 1080, Some(("u@x", "p:/%"))),
            ),
            (
                "http://u:p@ss@proxy",
                http("proxy", 1080, Some(("u", "p@ss"))),
            ),
            ("http://[::1]:8080", http("::1", 8080, None)),
            ("http://[2001:DB8::1]", http("2001:db8::1", 1080, None)),
            ("http://10.0.0.1:3128", http("10.0.0.1", 3128, None)),
            ("socks5://127.0.0.1", socks("127.0.0.1", 1080, None)),
            ("SOCKS5H://h:9050", socks("h", 9050, None)),
            (
                "socks5h://me:s%C3%A9same@[fe80::1]:9",
                socks("fe80::1", 9, Some(("me", "sésame"))),
            ),
        ];
        for (s, want) in ok {
            assert_eq!(Proxy::parse(s), Ok(want.clone()), "{s}");
            assert_eq!(s.parse::<Proxy>(), Ok(want), "{s}");
        }
    }

    #[test]
    fn parse_refuses() {
        let bad = [
            ("https://proxy", ProxyError::Scheme("https".into())),
            ("socks4://proxy", ProxyError::Scheme("socks4".into())),
            ("socks4a://proxy", ProxyError::Scheme("socks4a".into())),
            ("://proxy", ProxyError::Scheme("".into())),
            ("http://", ProxyError::BadUrl("no host")),
            ("http://:80", ProxyError::BadUrl("no host")),
            ("http://u:p@", ProxyError::BadUrl("no host")),
            (
                "http://h:0",
                ProxyError::BadUrl("port is not a number from 1 to 65535"),
            ),
            (
                "http://h:65536",
                ProxyError::BadUrl("port is not a number from 1 to 65535"),
            ),
            (
                "http://h:",
                ProxyError::BadUrl("port is not a number from 1 to 65535"),
            ),
            (
                "http://h:x",
                ProxyError::BadUrl("port is not a number from 1 to 65535"),
            ),
            (
                "http://::1",
                ProxyError::BadUrl("ipv6 literals must be in brackets"),
            ),
            ("http://[::1", ProxyError::BadUrl("unclosed ipv6 bracket")),
            ("http://[zz]:1", ProxyError::BadUrl("bad ipv6 literal")),
            (
                "http://[::1]x",
                ProxyError::BadUrl("junk after ipv6 literal"),
            ),
            (
                "http://a]b",
                ProxyError::BadUrl("character not allowed in a host"),
            ),
            (
                "http://a%20b",
                ProxyError::BadUrl("character not allowed in a host"),
            ),
            (
                "http://pro xy",
                ProxyError::BadUrl("whitespace or control character"),
            ),
            (
                "http://u:%zz@h",
                ProxyError::BadUrl("bad percent-escape in credentials"),
            ),
            (
                "http://u:%4@h",
                ProxyError::BadUrl("bad percent-escape in credentials"),
            ),
            (
                "http://u:%ff@h",
                ProxyError::BadUrl("credentials are not utf-8 once percent-decoded"),
            ),
            ("", ProxyError::BadUrl("no host")),
        ];
        for (s, e) in bad {
            assert_eq!(Proxy::parse(s), Err(e), "{s:?}");
        }
    }

    #[test]
    fn authority_and_debug() {
        assert_eq!(http("::1", 8080, None).authority(), "[::1]:8080");
        assert_eq!(socks("h", 1, None).authority(), "h:1");
        let dbg = format!("{:?}", socks("h", 1, Some(("me", "hunter2"))));
        assert!(dbg.contains("\"me\"") && !dbg.contains("hunter2"), "{dbg}");
        assert_eq!(
            format!("{:?}", http("h", 2, None)),
            r#"Http { host: "h", port: 2, auth: None }"#
        );
    }

    /// What a caller that feeds `server` in the chunks ending at `cuts` ends with.
    #[derive(Debug, PartialEq, Eq)]
    enum Outcome {
        /// Done, with this many bytes left over for the server.
        Done {
            leftover: usize,
        },
        /// Still waiting, with this many bytes buffered and unconsumed.
        Pending {
            buffered: usize,
        },
        Failed(ProxyError),
    }

    /// Drives a fresh handshake the way a caller does: keeps unconsumed bytes, appends each
    /// chunk, calls `handle_read` (first with nothing). Returns everything sent and the outcome.
    fn drive(
        proxy: &Proxy,
        host: &str,
        port: u16,
        server: &[u8],
        cuts: &[usize],
    ) -> (Vec<u8>, Outcome) {
        let mut hs = ProxyHandshake::new(proxy, host, port);
        let mut out = Vec::new();
        hs.start(&mut out);
        let mut buf = Vec::new();
        let mut fed = 0;
        for end in std::iter::once(0)
            .chain(cuts.iter().copied())
            .chain(std::iter::once(server.len()))
        {
            buf.extend_from_slice(&server[fed..end]);
            fed = end;
            match hs.handle_read(&buf, &mut out) {
                Ok(ProxyStep::NeedMore { consumed }) => drop(buf.drain(..consumed)),
                Ok(ProxyStep::Done { consumed }) => {
                    // Done is sticky and consumes nothing more.
                    assert_eq!(
                        hs.handle_read(&buf[consumed..], &mut out),
                        Ok(ProxyStep::Done { consumed: 0 })
                    );
                    let leftover = buf.len() - consumed + (server.len() - fed);
                    return (out, Outcome::Done { leftover });
                }
                Err(e) => {
                    // Errors are sticky.
                    assert_eq!(hs.handle_read(&buf, &mut out), Err(e.clone()));
                    return (out, Outcome::Failed(e));
                }
            }
        }
        (
            out,
            Outcome::Pending {
                buffered: buf.len(),
            },
        )
    }

    /// Splits `server` at every position, and byte by byte; each gives the unsplit result.
    fn check_splits(proxy: &Proxy, host: &str, port: u16, server: &[u8]) -> (Vec<u8>, Outcome) {
        let whole = drive(proxy, host, port, server, &[]);
        for cut in 0..=server.len() {
            assert_eq!(
                drive(proxy, host, port, server, &[cut]),
                whole,
                "split at {cut}"
            );
        }
        let every: Vec<usize> = (1..server.len()).collect();
        assert_eq!(
            drive(proxy, host, port, server, &every),
            whole,
            "byte by byte"
        );
        whole
    }

    #[test]
    fn http_connect_requests_are_byte_exact() {
        let cases: [(Proxy, &str, u16, &[u8]); 5] = [
            (http("p", 1, None), "example.com", 443, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
            (http("p", 1, None), "10.1.2.3", 80, b"CONNECT 10.1.2.3:80 HTTP/1.1\r\nHost: 10.1.2.3:80\r\n\r\n"),
            (http("p", 1, None), "2001:db8::1", 9001, b"CONNECT [2001:db8::1]:9001 HTTP/1.1\r\nHost: [2001:db8::1]:9001\r\n\r\n"),
            (http("p", 1, None), "[::1]", 80, b"CONNECT [::1]:80 HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"),
            (
                http("p", 1, Some(("Aladdin", "open sesame"))),
                "h",
                80,
                b"CONNECT h:80 HTTP/1.1\r\nHost: h:80\r\nProxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n",
            ),
        ];
        for (proxy, host, port, want) in cases {
            let mut hs = ProxyHandshake::new(&proxy, host, port);
            let mut out = b"kept".to_vec();
            hs.start(&mut out);
            assert_eq!(&out[..4], b"kept");
            assert_eq!(
                String::from_utf8_lossy(&out[4..]),
                String::from_utf8_lossy(want),
                "{host}"
            );
            hs.start(&mut out);
            assert_eq!(out.len(), 4 + want.len(), "a second start appends nothing");
        }
    }

    #[test]
    fn http_accepts_any_2xx_at_every_split() {
        let p = http("p", 1, None);
        let heads: [&[u8]; 5] = [
            b"HTTP/1.1 200 Connection established\r\n\r\n",
            b"HTTP/1.0 200 OK\r\nProxy-Agent: test/1.0\r\nContent-Length: 99\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 299 \r\n\r\n",
            b"HTTP/1.1 200 OK\nVia: x\n\n",
        ];
        for head in heads {
            let (_, outcome) = check_splits(&p, "h", 80, head);
            assert_eq!(
                outcome,
                Outcome::Done { leftover: 0 },
                "{}",
                String::from_utf8_lossy(head)
            );
            let with_server = [head, b"\x81\x05hello".as_slice()].concat();
            let (_, outcome) = check_splits(&p, "h", 80, &with_server);
            assert_eq!(outcome, Outcome::Done { leftover: 7 });
        }
        let (_, outcome) = check_splits(&p, "h", 80, b"HTTP/1.1 200 OK\r\n");
        assert_eq!(outcome, Outcome::Pending { buffered: 17 });
    }

    #[test]
    fn http_errors_at_every_split() {
        let p = http("p", 1, None);
        let status = |status, reason: &str| {
            Outcome::Failed(ProxyError::HttpStatus {
                status,
                reason: reason.into(),
            })
        };
        let many_headers = format!("HTTP/1.1 200 OK\r\n{}\r\n", "a: b\r\n".repeat(65));
        let huge = format!(
            "HTTP/1.1 200 OK\r\nx: {}\r\n\r\n",
            "y".repeat(MAX_RESPONSE_HEAD)
        );
        let cases: Vec<(&[u8], Outcome)> = vec![
            (
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\n\r\n",
                status(407, "Proxy Authentication Required"),
            ),
            (b"HTTP/1.1 502 Bad Gateway\r\n\r\n", status(502, "Bad Gateway")),
            (b"HTTP/1.1 403 \r\n\r\n", status(403, "")),
            (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", status(101, "Switching Protocols")),
            (b"SSH-2.0-OpenSSH\r\n\r\n", Outcome::Failed(ProxyError::Malformed("invalid http response"))),
            (b"\x05\x00", Outcome::Failed(ProxyError::Malformed("invalid http response"))),
            (
                many_headers.as_bytes(),
                Outcome::Failed(ProxyError::Malformed("more than 64 headers in the response")),
            ),
            (huge.as_bytes(), Outcome::Failed(ProxyError::ResponseHeadTooLarge)),
        ];
        for (server, want) in cases {
            if server.len() > 1024 {
                // Every split of 8 KiB is slow in debug builds; the head is only looked at in its
                // first 8 KiB, checked with a few splits.
                for cut in [
                    0,
                    1,
                    100,
                    MAX_RESPONSE_HEAD - 1,
                    MAX_RESPONSE_HEAD,
                    MAX_RESPONSE_HEAD + 1,
                ] {
                    assert_eq!(drive(&p, "h", 80, server, &[cut]).1, want);
                }
            } else {
                assert_eq!(
                    check_splits(&p, "h", 80, server).1,
                    want,
                    "{}",
                    String::from_utf8_lossy(server)
                );
            }
        }
        // Exactly at the cap is accepted; one byte more is not.
        let fill = |n: usize| format!("HTTP/1.1 200 OK\r\nx: {}\r\n\r\n", "y".repeat(n - 24));
        assert_eq!(fill(MAX_RESPONSE_HEAD).len(), MAX_RESPONSE_HEAD);
        assert_eq!(
            drive(&p, "h", 80, fill(MAX_RESPONSE_HEAD).as_bytes(), &[]).1,
            Outcome::Done { leftover: 0 }
        );
        let over = fill(MAX_RESPONSE_HEAD + 1);
        assert_eq!(
            drive(&p, "h", 80, over.as_bytes(), &[]).1,
            Outcome::Failed(ProxyError::ResponseHeadTooLarge)
        );
    }

    #[test]
    fn socks5_requests_are_byte_exact() {
        // Greeting, then (after method 0) the connect request.
        let cases: [(&str, u16, &[u8]); 5] = [
            (
                "127.0.0.1",
                9001,
                &hex!("05 01 00  05 01 00 01 7f000001 2329"),
            ),
            (
                "::1",
                80,
                &hex!("05 01 00  05 01 00 04 00000000000000000000000000000001 0050"),
            ),
            (
                "[2001:db8::2]",
                443,
                &hex!("05 01 00  05 01 00 04 20010db8000000000000000000000002 01bb"),
            ),
            (
                "example.com",
                443,
                &hex!("05 01 00  05 01 00 03 0b 6578616d706c652e636f6d 01bb"),
            ),
            ("a", 1, &hex!("05 01 00  05 01 00 03 01 61 0001")),
        ];
        for (host, port, want) in cases {
            let (sent, outcome) = drive(&socks("p", 1, None), host, port, &hex!("05 00"), &[]);
            assert_eq!(sent, want, "{host}");
            assert_eq!(outcome, Outcome::Pending { buffered: 0 });
        }
        // With credentials: both methods offered; the RFC 1929 request when 0x02 is chosen.
        let p = socks("p", 1, Some(("user", "pw")));
        let (sent, _) = drive(&p, "a", 1, &hex!("05 02"), &[]);
        assert_eq!(sent, hex!("05 02 00 02  01 04 75736572 02 7077"));
        let (sent, _) = drive(&p, "a", 1, &hex!("05 02 01 00"), &[]);
        assert_eq!(
            sent,
            hex!("05 02 00 02  01 04 75736572 02 7077  05 01 00 03 01 61 0001")
        );
        // The server may pick no authentication although credentials were offered.
        let (sent, _) = drive(&p, "a", 1, &hex!("05 00"), &[]);
        assert_eq!(sent, hex!("05 02 00 02  05 01 00 03 01 61 0001"));
        // An empty password is sent as PLEN 0.
        let (sent, _) = drive(&socks("p", 1, Some(("u", ""))), "a", 1, &hex!("05 02"), &[]);
        assert_eq!(sent, hex!("05 02 00 02  01 01 75 00"));
    }

    #[test]
    fn socks5_replies_at_every_split() {
        let v4 = hex!("05 00 00 01 0a000001 1f90");
        let v6 = hex!("05 00 00 04 00000000000000000000000000000001 1f90");
        let name = hex!("05 00 00 03 09 6c6f63616c686f7374 1f90");
        let empty_name = hex!("05 00 00 03 00 1f90");
        for reply in [&v4[..], &v6, &name, &empty_name] {
            for (proxy, before) in [
                (socks("p", 1, None), hex!("05 00").to_vec()),
                (
                    socks("p", 1, Some(("u", "p"))),
                    hex!("05 02 01 00").to_vec(),
                ),
                (
                    socks("p", 1, Some(("u", "p"))),
                    hex!("05 02 05 00").to_vec(),
                ),
                (socks("p", 1, Some(("u", "p"))), hex!("05 00").to_vec()),
            ] {
                let server = [&before[..], reply].concat();
                assert_eq!(
                    check_splits(&proxy, "example.com", 443, &server).1,
                    Outcome::Done { leftover: 0 }
                );
                let server = [&server[..], b"rest"].concat();
                assert_eq!(
                    check_splits(&proxy, "example.com", 443, &server).1,
                    Outcome::Done { leftover: 4 }
                );
            }
        }
    }

    #[test]
    fn socks5_errors_at_every_split() {
        let fail = Outcome::Failed;
        let anon = socks("p", 1, None);
        let authed = socks("p", 1, Some(("u", "p")));
        let cases: Vec<(&Proxy, Vec<u8>, Outcome)> = vec![
            (
                &anon,
                hex!("04 00").to_vec(),
                fail(ProxyError::SocksVersion(4)),
            ),
            (
                &anon,
                b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
                fail(ProxyError::SocksVersion(b'H')),
            ),
            (
                &anon,
                hex!("05 ff").to_vec(),
                fail(ProxyError::SocksNoAcceptableMethod),
            ),
            (
                &authed,
                hex!("05 ff").to_vec(),
                fail(ProxyError::SocksNoAcceptableMethod),
            ),
            (
                &anon,
                hex!("05 02").to_vec(),
                fail(ProxyError::SocksUnexpectedMethod(2)),
            ),
            (
                &authed,
                hex!("05 01").to_vec(),
                fail(ProxyError::SocksUnexpectedMethod(1)),
            ),
            (
                &authed,
                hex!("05 02 01 01").to_vec(),
                fail(ProxyError::SocksAuthFailed(1)),
            ),
            (
                &authed,
                hex!("05 02 01 ff").to_vec(),
                fail(ProxyError::SocksAuthFailed(0xff)),
            ),
            (
                &authed,
                hex!("05 02 02 00").to_vec(),
                fail(ProxyError::Malformed("bad auth reply version")),
            ),
            (
                &anon,
                hex!("05 00 04 00 00 01 00000000 0000").to_vec(),
                fail(ProxyError::SocksVersion(4)),
            ),
            (
                &anon,
                hex!("05 00 05 00 00 05 00000000 0000").to_vec(),
                fail(ProxyError::Malformed(
                    "unknown address type in the connect reply",
                )),
            ),
            (
                &anon,
                hex!("05 00 05 00 00 00 00000000 0000").to_vec(),
                fail(ProxyError::Malformed(
                    "unknown address type in the connect reply",
                )),
            ),
            (
                &authed,
                hex!("05 02 01 00 05 07").to_vec(),
                fail(ProxyError::SocksConnect(SocksReply::CommandNotSupported)),
            ),
        ];
        for (proxy, server, want) in cases {
            assert_eq!(
                check_splits(proxy, "h", 1, &server).1,
                want,
                "{server:02x?}"
            );
        }
        for code in 1..=0xffu8 {
            let server = [&hex!("05 00 05")[..], &[code, 0x00, 0x01], &[0; 6]].concat();
            let want = fail(ProxyError::SocksConnect(SocksReply::from_code(code)));
            assert_eq!(check_splits(&anon, "h", 1, &server).1, want);
            assert_eq!(SocksReply::from_code(code).code(), code);
        }
        // A bad version is refused as soon as it arrives, before the rest of the reply.
        assert_eq!(
            drive(&anon, "h", 1, &hex!("05 00 06"), &[]).1,
            fail(ProxyError::SocksVersion(6))
        );
        assert_eq!(
            drive(&anon, "h", 1, &hex!("05 00 05 01"), &[]).1,
            fail(ProxyError::SocksConnect(SocksReply::GeneralFailure))
        );
    }

    #[test]
    fn socks5_reply_codes_are_named() {
        let names = [
            (1, "general socks server failure (0x01)"),
            (2, "connection not allowed by ruleset (0x02)"),
            (3, "network unreachable (0x03)"),
            (4, "host unreachable (0x04)"),
            (5, "connection refused (0x05)"),
            (6, "ttl expired (0x06)"),
            (7, "command not supported (0x07)"),
            (8, "address type not supported (0x08)"),
            (9, "unassigned reply code 0x09"),
        ];
        for (code, name) in names {
            assert_eq!(SocksReply::from_code(code).to_string(), name);
        }
        assert_eq!(
            ProxyError::SocksConnect(SocksReply::ConnectionRefused).to_string(),
            "socks5 proxy could not connect: connection refused (0x05)"
        );
    }

    #[test]
    fn invalid_arguments_fail_before_sending() {
        let long = "a".repeat(256);
        let cases = [
            (
                socks("p", 1, None),
                long.as_str(),
                ProxyError::TargetHostTooLong,
            ),
            (
                socks("p", 1, None),
                "",
                ProxyError::InvalidTarget("empty host"),
            ),
            (
                http("p", 1, None),
                "",
                ProxyError::InvalidTarget("empty host"),
            ),
            (
                http("p", 1, None),
                "h\r\nX-Evil: 1",
                ProxyError::InvalidTarget("character not allowed in a host name"),
            ),
            (
                http("p", 1, None),
                "h:80",
                ProxyError::InvalidTarget("character not allowed in a host name"),
            ),
            (
                http("p", 1, None),
                "[::1",
                ProxyError::InvalidTarget("unclosed ipv6 bracket"),
            ),
            (
                http("p", 1, None),
                "[nope]",
                ProxyError::InvalidTarget("bad ipv6 literal"),
            ),
            (
                http("p", 1, Some(("a:b", "c"))),
                "h",
                ProxyError::Credentials("a basic auth user name cannot contain ':'"),
            ),
            (
                socks("p", 1, Some((long.as_str(), "c"))),
                "h",
                ProxyError::Credentials("socks5 user name and password are at most 255 bytes"),
            ),
            (
                socks("p", 1, Some(("u", long.as_str()))),
                "h",
                ProxyError::Credentials("socks5 user name and password are at most 255 bytes"),
            ),
            (
                socks("p", 1, Some(("", "pw"))),
                "h",
                ProxyError::Credentials("socks5 needs a non-empty user name"),
            ),
        ];
        for (proxy, host, want) in cases {
            let (sent, outcome) = drive(&proxy, host, 1, &hex!("05 02 01 00"), &[]);
            assert_eq!(
                (sent, outcome),
                (Vec::new(), Outcome::Failed(want)),
                "{proxy:?} {host:?}"
            );
        }
        // 255 bytes is the most that fits.
        let max = "a".repeat(255);
        let (sent, _) = drive(&socks("p", 1, None), &max, 1, &hex!("05 00"), &[]);
        assert_eq!(sent.len(), 3 + 5 + 255 + 2);
        let (sent, outcome) = drive(
            &http("p", 1, None),
            &long,
            1,
            b"HTTP/1.1 200 OK\r\n\r\n",
            &[],
        );
        assert_eq!(
            (sent.len(), outcome),
            (2 * (256 + 2) + 29, Outcome::Done { leftover: 0 })
        );
    }

    #[test]
    fn handle_read_before_start_is_refused() {
        let mut hs = ProxyHandshake::new(&http("p", 1, None), "h", 1);
        let mut out = Vec::new();
        let want = Err(ProxyError::OutOfOrder("handle_read before start"));
        assert_eq!(hs.handle_read(b"HTTP/1.1 200 OK\r\n\r\n", &mut out), want);
        assert!(out.is_empty());
    }

    /// `env_case!(target, [vars..] => want)`: `want` is the proxy URL (parsed) or `None`.
    macro_rules! env_case {
        ($target:expr, [$($name:expr => $value:expr),* $(,)?] => None) => {
            env_case!(@check $target, [$($name => $value),*], None)
        };
        ($target:expr, [$($name:expr => $value:expr),* $(,)?] => $want:expr) => {
            env_case!(@check $target, [$($name => $value),*], Some(Proxy::parse($want).unwrap()))
        };
        (@check $target:expr, [$($name:expr => $value:expr),*], $want:expr) => {{
            let vars: &[(&str, &str)] = &[$(($name, $value)),*];
            let target = Url::parse($target).unwrap();
            let got = Proxy::from_env_with(&target, |name| {
                vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
            });
            assert_eq!(got, $want, "{} with {:?}", $target, vars);
        }};
    }

    #[test]
    fn env_picks_the_proxy_like_curl() {
        // ws:// reads http_proxy only in lower case, then all_proxy, ALL_PROXY.
        env_case!("ws://h", [] => None);
        env_case!("ws://h", ["http_proxy" => "p:1"] => "http://p:1");
        env_case!("ws://h", ["HTTP_PROXY" => "p:1"] => None);
        env_case!("ws://h", ["HTTP_PROXY" => "p:1", "all_proxy" => "socks5://s"] => "socks5://s");
        env_case!("ws://h", ["https_proxy" => "p:1"] => None);
        env_case!("ws://h", ["all_proxy" => "socks5://a", "ALL_PROXY" => "socks5://b"] => "socks5://a");
        env_case!("ws://h", ["ALL_PROXY" => "socks5h://b:2"] => "socks5://b:2");
        env_case!("ws://h", ["http_proxy" => "p:1", "all_proxy" => "socks5://a"] => "http://p:1");
        // wss:// reads https_proxy, HTTPS_PROXY, then all_proxy, ALL_PROXY.
        env_case!("wss://h", ["http_proxy" => "p:1"] => None);
        env_case!("wss://h", ["https_proxy" => "p:2", "HTTPS_PROXY" => "p:3"] => "http://p:2");
        env_case!("wss://h", ["HTTPS_PROXY" => "p:3"] => "http://p:3");
        env_case!("wss://h", ["HTTPS_PROXY" => "p:3", "all_proxy" => "socks5://a"] => "http://p:3");
        env_case!("wss://h", ["all_proxy" => "socks5://a"] => "socks5://a");
        // Blank counts as unset; malformed is skipped.
        env_case!("wss://h", ["https_proxy" => "", "HTTPS_PROXY" => "p:3"] => "http://p:3");
        env_case!("wss://h", ["https_proxy" => "  ", "all_proxy" => "socks5://a"] => "socks5://a");
        env_case!("wss://h", ["https_proxy" => "https://tls-proxy", "all_proxy" => "socks5://a"] => "socks5://a");
        env_case!("wss://h", ["https_proxy" => "http://p:99999"] => None);
        env_case!("ws://h", ["http_proxy" => "p q"] => None);
        env_case!("ws://h", ["http_proxy" => "http://u:p@proxy:8"] => "http://u:p@proxy:8");
    }

    #[test]
    fn env_no_proxy_forms() {
        let p = "http_proxy";
        // Names match themselves and subdomains, with or without a leading dot.
        env_case!("ws://example.com", [p => "p", "no_proxy" => "example.com"] => None);
        env_case!("ws://a.b.example.com", [p => "p", "no_proxy" => "example.com"] => None);
        env_case!("ws://a.example.com", [p => "p", "no_proxy" => ".example.com"] => None);
        env_case!("ws://example.com", [p => "p", "no_proxy" => ".example.com"] => None);
        env_case!("ws://example.com", [p => "p", "no_proxy" => "example.com."] => None);
        env_case!("ws://Example.COM", [p => "p", "no_proxy" => "EXAMPLE.com"] => None);
        env_case!("ws://badexample.com", [p => "p", "no_proxy" => "example.com"] => "p");
        env_case!("ws://example.com.evil", [p => "p", "no_proxy" => "example.com"] => "p");
        env_case!("ws://com", [p => "p", "no_proxy" => "example.com"] => "p");
        // Lists: commas and whitespace, empty entries skipped.
        env_case!("ws://b", [p => "p", "no_proxy" => "a, b"] => None);
        env_case!("ws://c", [p => "p", "no_proxy" => ",a,,b c,"] => None);
        env_case!("ws://d", [p => "p", "no_proxy" => "a,b c"] => "p");
        // `*` matches every host, alone or in a list; a `*` inside a name is not a wildcard.
        env_case!("ws://anything", [p => "p", "no_proxy" => "*"] => None);
        env_case!("ws://anything", [p => "p", "no_proxy" => "a,*"] => None);
        env_case!("ws://x.example", [p => "p", "no_proxy" => "*.example"] => "p");
        // IP literals match equal addresses only.
        env_case!("ws://10.0.0.1", [p => "p", "no_proxy" => "10.0.0.1"] => None);
        env_case!("ws://10.0.0.10", [p => "p", "no_proxy" => "10.0.0.1"] => "p");
        env_case!("ws://10.0.0.1", [p => "p", "no_proxy" => "0.0.1"] => "p");
        env_case!("ws://10.0.0.1", [p => "p", "no_proxy" => "10.0.0.0/8"] => "p");
        env_case!("ws://[::1]", [p => "p", "no_proxy" => "::1"] => None);
        env_case!("ws://[::1]", [p => "p", "no_proxy" => "[0:0::1]"] => None);
        env_case!("ws://[::1]:8", [p => "p", "no_proxy" => "[::1]:8"] => None);
        env_case!("ws://[::1]:9", [p => "p", "no_proxy" => "[::1]:8"] => "p");
        env_case!("ws://[::2]", [p => "p", "no_proxy" => "::1"] => "p");
        env_case!("ws://localhost", [p => "p", "no_proxy" => "127.0.0.1"] => "p");
        // An optional port restricts the entry to that port (80 and 443 are the URL defaults).
        env_case!("ws://h:8080", [p => "p", "no_proxy" => "h:8080"] => None);
        env_case!("ws://h", [p => "p", "no_proxy" => "h:80"] => None);
        env_case!("ws://h:8081", [p => "p", "no_proxy" => "h:8080"] => "p");
        env_case!("ws://10.0.0.1:81", [p => "p", "no_proxy" => "10.0.0.1:81"] => None);
        env_case!("wss://a.h:8443", [p => "p", "https_proxy" => "p", "no_proxy" => ".h:8443"] => None);
        // Malformed entries match nothing.
        env_case!("ws://h", [p => "p", "no_proxy" => "h:x,[::1,[::1]x,."] => "p");
        // NO_PROXY is read when no_proxy is unset or blank.
        env_case!("ws://h", [p => "p", "NO_PROXY" => "h"] => None);
        env_case!("ws://h", [p => "p", "no_proxy" => " ", "NO_PROXY" => "h"] => None);
        env_case!("ws://h", [p => "p", "no_proxy" => "x", "NO_PROXY" => "h"] => "p");
        // It applies to all_proxy as well.
        env_case!("wss://h", ["all_proxy" => "socks5://s", "no_proxy" => "h"] => None);
    }
}

//! Client options: Node ws's client options, in Rust.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::client::proxy::Proxy;
use crate::limits::Limits;
use crate::protocol::deflate::DeflateOptions;
use crate::protocol::handshake::Version;

/// Which proxy a client goes through.
#[derive(Debug, Clone, Default)]
pub enum ProxyChoice {
    /// From `http_proxy` / `https_proxy` / `all_proxy` / `no_proxy`, as curl reads them.
    #[default]
    FromEnv,
    /// Connect directly.
    None,
    /// Through this proxy.
    Use(Proxy),
}

/// Options of a client connection.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let options = wsx::client::ClientOptions::new()
///     .protocol("chat")
///     .header("Authorization", "Bearer t0ken")
///     .origin("https://example.com")
///     .handshake_timeout(Duration::from_secs(5))
///     .follow_redirects(3);
/// assert_eq!(options.protocols, ["chat"]);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Subprotocols to offer, most preferred first.
    pub protocols: Vec<String>,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// The `Origin` header (`Sec-WebSocket-Origin` with version 8).
    pub origin: Option<String>,
    /// Time for TCP connect, proxy handshake and upgrade together. Default 10 s.
    pub handshake_timeout: Duration,
    /// Protocol version to ask for: 13 (default) or 8.
    pub version: Version,
    /// Limits on what the server may send ([`Limits::max_message_size`] is ws's `maxPayload`).
    pub limits: Limits,
    /// Redirects (3xx with `Location`) to follow; 0 (the default) fails on a redirect. `ws` →
    /// `wss` is followed, `wss` → `ws` never; `Authorization` and `Cookie` headers are dropped
    /// when a redirect changes the host.
    pub max_redirects: usize,
    /// Local address to bind before connecting (many source addresses let a load test open
    /// more than 64k connections to one server).
    pub local_addr: Option<IpAddr>,
    /// The proxy to go through. Default: from the environment.
    pub proxy: ProxyChoice,
    /// Offer permessage-deflate with these options (ws's `perMessageDeflate`). Default off.
    pub deflate: Option<DeflateOptions>,
    /// Masking key generator replacing the OS-seeded one (tests only: predictable keys break
    /// RFC 6455 §5.3). Node ws's `generateMask`.
    pub dangerous_mask_generator: Option<Arc<dyn Fn() -> [u8; 4] + Send + Sync>>,
    /// Resolves `host:port` in place of the system resolver, for the engine client (tests: a
    /// name that is slow or fails on cue). Called on a resolver thread, never for IP literals.
    #[doc(hidden)]
    pub dangerous_resolver: Option<Resolver>,
    /// How `wss://` servers are verified. Default: the Mozilla roots (`webpki-roots`).
    pub tls: Option<crate::tls::ClientTls>,
}

/// A function resolving `host:port` to addresses (see `ClientOptions::dangerous_resolver`).
#[doc(hidden)]
pub type Resolver = Arc<dyn Fn(&str) -> io::Result<Vec<SocketAddr>> + Send + Sync>;

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("protocols", &self.protocols)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("origin", &self.origin)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("version", &self.version)
            .field("limits", &self.limits)
            .field("max_redirects", &self.max_redirects)
            .field("local_addr", &self.local_addr)
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            protocols: Vec::new(),
            headers: Vec::new(),
            origin: None,
            handshake_timeout: Duration::from_secs(10),
            version: Version::V13,
            limits: Limits::DEFAULT,
            max_redirects: 0,
            local_addr: None,
            proxy: ProxyChoice::FromEnv,
            deflate: None,
            dangerous_mask_generator: None,
            dangerous_resolver: None,
            tls: None,
        }
    }
}

impl ClientOptions {
    /// The defaults documented on each field.
    pub fn new() -> Self {
        Self::default()
    }

    /// Offers a subprotocol (call again for more, most preferred first).
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocols.push(protocol.into());
        self
    }

    /// Adds a request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the `Origin`.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Sets the handshake timeout.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Asks for protocol version 13 or 8.
    pub fn version(mut self, version: Version) -> Self {
        self.version = version;
        self
    }

    /// Largest message accepted from the server (ws's `maxPayload`).
    pub fn max_payload(mut self, bytes: u64) -> Self {
        self.limits.max_message_size = bytes;
        self.limits.max_frame_size = self.limits.max_frame_size.min(bytes);
        self
    }

    /// Follows up to `max` redirects.
    pub fn follow_redirects(mut self, max: usize) -> Self {
        self.max_redirects = max;
        self
    }

    /// Binds this local address before connecting.
    pub fn local_addr(mut self, addr: IpAddr) -> Self {
        self.local_addr = Some(addr);
        self
    }

    /// Goes through `proxy`.
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = ProxyChoice::Use(proxy);
        self
    }

    /// Offers permessage-deflate with `options` (a client usually keeps
    /// `server_no_context_takeover` off, as browsers do).
    pub fn deflate(mut self, options: DeflateOptions) -> Self {
        self.deflate = Some(options);
        self
    }

    /// Verifies `wss://` servers with `tls` (a CA of the caller's, a client certificate, or the
    /// dangerous opt-out for tests) instead of the Mozilla roots.
    pub fn tls(mut self, tls: crate::tls::ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The TLS configuration `wss://` uses: the one set with [`ClientOptions::tls`], or the
    /// default (webpki roots, made once per process).
    pub fn tls_config(&self) -> crate::tls::ClientTls {
        static DEFAULT: std::sync::OnceLock<crate::tls::ClientTls> = std::sync::OnceLock::new();
        match &self.tls {
            Some(t) => t.clone(),
            None => DEFAULT.get_or_init(crate::tls::ClientTls::default).clone(),
        }
    }

    /// Connects directly, ignoring proxy environment variables.
    pub fn no_proxy(mut self) -> Self {
        self.proxy = ProxyChoice::None;
        self
    }
}

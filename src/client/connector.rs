//! The client's opening, sans-IO: proxy handshake (if any), upgrade request, response checks,
//! redirects. The blocking client and the engine drive the same [`Connector`].

use crate::client::options::{ClientOptions, ProxyChoice};
use crate::client::proxy::{Proxy, ProxyHandshake, ProxyStep};
use crate::client::{ClientError, Url};
use crate::protocol::deflate::{self, negotiate};
use crate::protocol::handshake::{ClientHandshake, ClientRequest, ExtensionOffer, UpgradeResponse};
use crate::protocol::{Config, Connection, Role};
use crate::HandshakeError;

/// What a [`Connector`] did with the bytes it was given.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // returned once per connection; a box would only add an allocation
pub enum ConnectStep {
    /// Consumed this many bytes; more are needed.
    NeedMore {
        /// Bytes consumed from the front of the input.
        consumed: usize,
    },
    /// The server accepted: the connection is open. Bytes after `consumed` are frames.
    Open {
        /// Bytes of the handshake.
        consumed: usize,
        /// The session, client role, with the options' limits.
        connection: Connection,
        /// The server's `101` response (protocol, extensions, headers).
        response: UpgradeResponse,
    },
    /// The server redirected and the options allow following it: open a new connection to
    /// `url` and continue with [`Connector::redirected`].
    Redirect {
        /// Where to go.
        url: Url,
    },
    /// `wss://` through a proxy: the tunnel is open. Start TLS over the transport (with
    /// [`Connector::tls_session`]), then call [`Connector::start_upgrade`] and write its bytes
    /// through TLS; bytes after `consumed` are the server's TLS records.
    Tunnel {
        /// Bytes of the proxy's answer.
        consumed: usize,
    },
}

enum Phase {
    Proxy(ProxyHandshake),
    Upgrade(ClientHandshake),
    /// `wss://` through a proxy: the tunnel is open, TLS starts before the upgrade.
    Tunnel,
    Done,
}

/// One attempt to open a client connection over one transport connection.
///
/// # Calling contract
///
/// 1. Connect a transport to [`Connector::connect_addr`] (the proxy, or the server).
/// 2. Write what [`Connector::start`] appends.
/// 3. Give every byte read (all of them not yet consumed, new ones appended) to
///    [`Connector::handle_read`], writing what it appends, until it returns
///    [`ConnectStep::Open`] or [`ConnectStep::Redirect`].
///
/// For `wss://`, TLS ([`Connector::tls_session`]) runs over the transport: directly, it starts
/// before step 2 and carries everything; through a proxy, steps 2 and 3 talk to the proxy in
/// the clear until [`ConnectStep::Tunnel`], then TLS starts over the tunnel and carries what
/// [`Connector::start_upgrade`] appends and everything after it.
pub struct Connector {
    url: Url,
    options: ClientOptions,
    proxy: Option<Proxy>,
    phase: Phase,
    redirects: usize,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("url", &self.url)
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// A first attempt at `url`.
    ///
    /// # Errors
    ///
    /// None today; kept for errors an attempt may find before connecting.
    pub fn new(url: Url, options: ClientOptions) -> Result<Connector, ClientError> {
        Self::redirected(url, options, 0)
    }

    /// An attempt after `redirects` redirects (options already adjusted for them).
    ///
    /// # Errors
    ///
    /// As [`Connector::new`].
    pub fn redirected(
        url: Url,
        options: ClientOptions,
        redirects: usize,
    ) -> Result<Connector, ClientError> {
        let proxy = match &options.proxy {
            ProxyChoice::FromEnv => Proxy::from_env(&url),
            ProxyChoice::None => None,
            ProxyChoice::Use(p) => Some(p.clone()),
        };
        Ok(Connector {
            url,
            options,
            proxy,
            phase: Phase::Done,
            redirects,
        })
    }

    /// For a `wss://` URL, a TLS client session for its host (SNI and certificate name), made
    /// with the options' [`ClientTls`](crate::tls::ClientTls); `None` for `ws://`. It starts
    /// after the proxy phase: through a proxy the tunnel carries TLS end to end.
    ///
    /// # Errors
    ///
    /// [`ClientError::TlsName`] when the host is no valid server name.
    pub fn tls_session(&self) -> Result<Option<rustls::ClientConnection>, ClientError> {
        if !self.url.is_secure() {
            return Ok(None);
        }
        let host = self
            .url
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|_| ClientError::TlsName(host.to_owned()))?;
        let config = self.options.tls_config().config().clone();
        Ok(Some(rustls::ClientConnection::new(config, name)?))
    }

    /// Whether this attempt goes through a proxy.
    pub fn proxied(&self) -> bool {
        self.proxy.is_some()
    }

    /// The URL this attempt opens.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The options in force.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The `host:port` the transport must connect to: the proxy's, or the server's.
    pub fn connect_addr(&self) -> String {
        match &self.proxy {
            Some(p) => p.authority(),
            None => self.url.authority(),
        }
    }

    /// Appends the first bytes to write.
    ///
    /// # Errors
    ///
    /// [`ClientError::Handshake`] when the options cannot make a valid request (a bad header).
    pub fn start(&mut self, out: &mut Vec<u8>) -> Result<(), ClientError> {
        match &self.proxy {
            Some(proxy) => {
                let mut hs = ProxyHandshake::new(proxy, self.url.host(), self.url.port());
                hs.start(out);
                self.phase = Phase::Proxy(hs);
            }
            None => self.write_upgrade(out)?,
        }
        Ok(())
    }

    /// Appends the upgrade request, once TLS runs through the tunnel a proxy opened (after
    /// [`ConnectStep::Tunnel`]).
    ///
    /// # Errors
    ///
    /// As [`Connector::start`].
    pub fn start_upgrade(&mut self, out: &mut Vec<u8>) -> Result<(), ClientError> {
        self.write_upgrade(out)
    }

    fn write_upgrade(&mut self, out: &mut Vec<u8>) -> Result<(), ClientError> {
        let protocols: Vec<&str> = self.options.protocols.iter().map(String::as_str).collect();
        let headers: Vec<(&str, &str)> = self
            .options
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let mut request = ClientRequest::new(self.url.host(), self.url.resource());
        request.port = self.url.port();
        request.secure = self.url.is_secure();
        request.version = self.options.version;
        request.protocols = &protocols;
        request.origin = self.options.origin.as_deref();
        request.headers = &headers;
        let offers: Vec<ExtensionOffer> = self
            .options
            .deflate
            .iter()
            .map(negotiate::client_offer)
            .collect();
        request.extensions = &offers;
        let hs = request.write_with_os_rng(out)?;
        self.phase = Phase::Upgrade(hs);
        Ok(())
    }

    /// Handles bytes read; see the calling contract.
    ///
    /// # Errors
    ///
    /// The proxy refused, the server refused (non-101 status carrying the body's first bytes,
    /// bad accept key, unoffered protocol or extension), a redirect that may not be followed,
    /// or too many redirects.
    pub fn handle_read(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<ConnectStep, ClientError> {
        let mut consumed = 0;
        if let Phase::Proxy(hs) = &mut self.phase {
            match hs.handle_read(input, out)? {
                ProxyStep::NeedMore { consumed } => return Ok(ConnectStep::NeedMore { consumed }),
                ProxyStep::Done { consumed: n } if self.url.is_secure() => {
                    self.phase = Phase::Tunnel;
                    return Ok(ConnectStep::Tunnel { consumed: n });
                }
                ProxyStep::Done { consumed: n } => {
                    consumed = n;
                    self.write_upgrade(out)?;
                }
            }
        }
        let Phase::Upgrade(hs) = &self.phase else {
            return Err(ClientError::Handshake(HandshakeError::InvalidResponse(
                "connector not started",
            )));
        };
        match hs.parse_response(&input[consumed..], &self.options.limits) {
            Ok(None) => Ok(ConnectStep::NeedMore { consumed }),
            Ok(Some((response, n))) => {
                let config = Config {
                    limits: self.options.limits,
                    ..Config::default()
                };
                let mut connection = Connection::new(Role::Client, config);
                if let Some(options) = &self.options.deflate {
                    let answer = response
                        .extensions()
                        .iter()
                        .find(|e| e.name.eq_ignore_ascii_case(deflate::NAME));
                    if let Some(answer) = answer {
                        let params = negotiate::client_accept(answer, options).map_err(|_| {
                            HandshakeError::ResponseExtensionNotOffered(answer.name.clone().into())
                        })?;
                        connection.set_deflate(params, std::sync::Arc::new(*options));
                    }
                }
                if let Some(generator) = &self.options.dangerous_mask_generator {
                    let generator = generator.clone();
                    connection.dangerous_set_mask_generator(move || generator());
                }
                self.phase = Phase::Done;
                Ok(ConnectStep::Open {
                    consumed: consumed + n,
                    connection,
                    response,
                })
            }
            Err(HandshakeError::UnexpectedStatus(status)) if is_redirect(status.status) => {
                let Some(location) = status.location.as_deref() else {
                    return Err(ClientError::Handshake(HandshakeError::UnexpectedStatus(
                        status,
                    )));
                };
                if self.options.max_redirects == 0 {
                    return Err(ClientError::Handshake(HandshakeError::UnexpectedStatus(
                        status,
                    )));
                }
                if self.redirects >= self.options.max_redirects {
                    return Err(ClientError::TooManyRedirects(self.options.max_redirects));
                }
                let next = self.url.join(location)?;
                if self.url.is_secure() && !next.is_secure() {
                    return Err(ClientError::InsecureRedirect(next.to_string()));
                }
                Ok(ConnectStep::Redirect { url: next })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The connector for the next hop of a redirect to `url`: credentials are dropped when the
    /// host changes.
    ///
    /// # Errors
    ///
    /// As [`Connector::new`].
    pub fn follow(&self, url: Url) -> Result<Connector, ClientError> {
        let mut options = self.options.clone();
        if url.host() != self.url.host() || url.port() != self.url.port() {
            options.headers.retain(|(n, _)| {
                !n.eq_ignore_ascii_case("authorization") && !n.eq_ignore_ascii_case("cookie")
            });
        }
        Connector::redirected(url, options, self.redirects + 1)
    }
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

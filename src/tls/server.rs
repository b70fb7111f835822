//! What a TLS server presents: [`ServerTls`] and its [`ServerTlsBuilder`].

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert, ResolvesServerCertUsingSni};
use rustls::sign::CertifiedKey;

use super::{certified_key, provider, read, roots_from_pem, TlsError};

/// What a TLS server presents: its certificate chain and key (or several, chosen by SNI), its
/// ALPN (`http/1.1`) and, optionally, the client certificates it asks for.
///
/// ```no_run
/// let tls = wsx::tls::ServerTls::from_pem_files("cert.pem", "key.pem")?;
/// assert_eq!(tls.config().alpn_protocols, [b"http/1.1".to_vec()]);
/// # Ok::<(), wsx::tls::TlsError>(())
/// ```
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl ServerTls {
    /// One certificate chain (PEM, leaf first) and its private key (PEM), read from files.
    ///
    /// ```no_run
    /// let tls = wsx::tls::ServerTls::from_pem_files("cert.pem", "key.pem")?;
    /// # let _ = tls;
    /// # Ok::<(), wsx::tls::TlsError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A file cannot be read or parsed, or the key does not fit the certificate.
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<ServerTls, TlsError> {
        ServerTls::from_pem(&read(cert.as_ref())?, &read(key.as_ref())?)
    }

    /// One certificate chain and its private key, as PEM bytes; it is presented to every
    /// client, whatever name it asks for.
    ///
    /// ```no_run
    /// let cert = std::fs::read("cert.pem")?;
    /// let key = std::fs::read("key.pem")?;
    /// let tls = wsx::tls::ServerTls::from_pem(&cert, &key)?;
    /// # let _ = tls;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The PEM cannot be parsed, or the key does not fit the certificate.
    pub fn from_pem(cert: &[u8], key: &[u8]) -> Result<ServerTls, TlsError> {
        ServerTls::builder().default_cert(cert, key)?.build()
    }

    /// A builder for several certificates chosen by SNI, and for client certificates (mTLS).
    ///
    /// ```no_run
    /// let read = |p: &str| std::fs::read(p).unwrap();
    /// let tls = wsx::tls::ServerTls::builder()
    ///     .cert("a.test", &read("a.pem"), &read("a.key"))?
    ///     .cert("b.test", &read("b.pem"), &read("b.key"))?
    ///     .client_auth(&read("clients-ca.pem"), true)
    ///     .build()?;
    /// # let _ = tls;
    /// # Ok::<(), wsx::tls::TlsError>(())
    /// ```
    pub fn builder() -> ServerTlsBuilder {
        ServerTlsBuilder::default()
    }

    /// A configuration the caller built (its own resolver, versions, ALPN, client auth); used
    /// as it is.
    ///
    /// ```
    /// # let resolver = std::sync::Arc::new(rustls::server::ResolvesServerCertUsingSni::new());
    /// let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
    ///     rustls::crypto::ring::default_provider(),
    /// ))
    /// .with_safe_default_protocol_versions()?
    /// .with_no_client_auth()
    /// .with_cert_resolver(resolver);
    /// let tls = wsx::tls::ServerTls::from_config(std::sync::Arc::new(config));
    /// assert!(tls.config().alpn_protocols.is_empty());
    /// # Ok::<(), rustls::Error>(())
    /// ```
    pub fn from_config(config: Arc<rustls::ServerConfig>) -> ServerTls {
        ServerTls { config }
    }

    /// The rustls configuration.
    ///
    /// ```no_run
    /// let tls = wsx::tls::ServerTls::from_pem_files("cert.pem", "key.pem")?;
    /// let session = rustls::ServerConnection::new(tls.config().clone())?;
    /// # let _ = session;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn config(&self) -> &Arc<rustls::ServerConfig> {
        &self.config
    }
}

/// Builds a [`ServerTls`]: certificates by name (SNI), a default certificate, client
/// certificates (mTLS). ALPN is `http/1.1`.
///
/// Which certificate a client gets: the one registered under the name it sent (SNI, compared
/// without case); a client that sent no name (as clients connecting to an IP address do) or an
/// unknown one gets the default: the one given to [`ServerTlsBuilder::default_cert`], or else
/// the first given to [`ServerTlsBuilder::cert`].
///
/// ```no_run
/// let read = |p: &str| std::fs::read(p).unwrap();
/// let tls = wsx::tls::ServerTls::builder()
///     .default_cert(&read("fallback.pem"), &read("fallback.key"))?
///     .cert("a.test", &read("a.pem"), &read("a.key"))?
///     .build()?;
/// # let _ = tls;
/// # Ok::<(), wsx::tls::TlsError>(())
/// ```
pub struct ServerTlsBuilder {
    sni: ResolvesServerCertUsingSni,
    names: Vec<String>,
    first: Option<Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
    client_auth: Option<(Vec<u8>, bool)>,
}

impl Default for ServerTlsBuilder {
    fn default() -> Self {
        ServerTlsBuilder {
            sni: ResolvesServerCertUsingSni::new(),
            names: Vec::new(),
            first: None,
            default: None,
            client_auth: None,
        }
    }
}

impl fmt::Debug for ServerTlsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTlsBuilder")
            .field("names", &self.names)
            .field("default", &self.default.is_some())
            .field("client_auth", &self.client_auth.as_ref().map(|(_, r)| *r))
            .finish_non_exhaustive()
    }
}

impl ServerTlsBuilder {
    /// Presents this chain (PEM, leaf first) and key (PEM) to clients asking for `name`.
    ///
    /// ```no_run
    /// let read = |p: &str| std::fs::read(p).unwrap();
    /// let builder = wsx::tls::ServerTls::builder().cert("a.test", &read("a.pem"), &read("a.key"))?;
    /// # let _ = builder;
    /// # Ok::<(), wsx::tls::TlsError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The PEM cannot be parsed, the key does not fit, `name` is no DNS name, or the
    /// certificate is not valid for `name`.
    pub fn cert(
        mut self,
        name: &str,
        chain_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<ServerTlsBuilder, TlsError> {
        let key = certified_key(chain_pem, key_pem)?;
        self.sni.add(name, key.clone())?;
        self.names.push(name.to_ascii_lowercase());
        self.first.get_or_insert_with(|| Arc::new(key));
        Ok(self)
    }

    /// As [`ServerTlsBuilder::cert`], from PEM files.
    ///
    /// ```no_run
    /// let builder = wsx::tls::ServerTls::builder().cert_files("a.test", "a.pem", "a.key")?;
    /// # let _ = builder;
    /// # Ok::<(), wsx::tls::TlsError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`ServerTlsBuilder::cert`], or a file cannot be read.
    pub fn cert_files(
        self,
        name: &str,
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<ServerTlsBuilder, TlsError> {
        self.cert(name, &read(chain.as_ref())?, &read(key.as_ref())?)
    }

    /// Presents this chain and key to clients that sent no name, or a name no
    /// [`ServerTlsBuilder::cert`] was registered under.
    ///
    /// ```no_run
    /// let read = |p: &str| std::fs::read(p).unwrap();
    /// let builder = wsx::tls::ServerTls::builder().default_cert(&read("c.pem"), &read("c.key"))?;
    /// # let _ = builder;
    /// # Ok::<(), wsx::tls::TlsError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The PEM cannot be parsed or the key does not fit.
    pub fn default_cert(
        mut self,
        chain_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<ServerTlsBuilder, TlsError> {
        self.default = Some(Arc::new(certified_key(chain_pem, key_pem)?));
        Ok(self)
    }

    /// Asks clients for a certificate issued by one of the CAs in `ca_pem`: with `required`,
    /// a client without one is refused in the handshake; without, it may connect anonymously
    /// (a certificate it does present must still verify).
    ///
    /// ```no_run
    /// let read = |p: &str| std::fs::read(p).unwrap();
    /// let tls = wsx::tls::ServerTls::builder()
    ///     .default_cert(&read("cert.pem"), &read("key.pem"))?
    ///     .client_auth(&read("clients-ca.pem"), true)
    ///     .build()?;
    /// # let _ = tls;
    /// # Ok::<(), wsx::tls::TlsError>(())
    /// ```
    pub fn client_auth(mut self, ca_pem: &[u8], required: bool) -> ServerTlsBuilder {
        self.client_auth = Some((ca_pem.to_vec(), required));
        self
    }

    /// The configuration.
    ///
    /// ```no_run
    /// let tls = wsx::tls::ServerTls::builder().cert_files("a.test", "a.pem", "a.key")?.build()?;
    /// # let _ = tls;
    /// # Ok::<(), wsx::tls::TlsError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`TlsError::NoCertificate`] when none was given; the client CA PEM cannot be parsed or
    /// holds no usable CA.
    pub fn build(self) -> Result<ServerTls, TlsError> {
        let default = self.default.or(self.first).ok_or(TlsError::NoCertificate)?;
        let resolver = Arc::new(SniResolver {
            sni: self.sni,
            names: self.names,
            default,
        });
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = match self.client_auth {
            None => builder.with_no_client_auth(),
            Some((ca_pem, required)) => {
                let roots = Arc::new(roots_from_pem(&ca_pem)?);
                let verifier =
                    rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider());
                let verifier = if required {
                    verifier.build()?
                } else {
                    verifier.allow_unauthenticated().build()?
                };
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(resolver);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls::from_config(Arc::new(config)))
    }
}

/// Certificates by SNI name, with a default for no name or an unknown one.
struct SniResolver {
    sni: ResolvesServerCertUsingSni,
    names: Vec<String>,
    default: Arc<CertifiedKey>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let known = hello
            .server_name()
            .is_some_and(|n| self.names.iter().any(|k| k.eq_ignore_ascii_case(n)));
        if known {
            self.sni.resolve(hello)
        } else {
            Some(self.default.clone())
        }
    }
}

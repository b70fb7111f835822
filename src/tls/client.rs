//! How a TLS client verifies the server: [`ClientTls`].

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::{certified_key, provider, read, roots_from_pem, TlsError};

/// How a TLS client verifies the server: the Mozilla roots (`webpki-roots`) by default, or
/// given CAs, optionally with a client certificate (mTLS). ALPN is `http/1.1`.
///
/// ```no_run
/// let tls = wsx::tls::ClientTls::with_ca_pem_file("ca.pem")?
///     .with_client_cert_files("client.pem", "client.key")?;
/// # let _ = tls;
/// # Ok::<(), wsx::tls::TlsError>(())
/// ```
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls").finish_non_exhaustive()
    }
}

impl Default for ClientTls {
    fn default() -> Self {
        ClientTls::webpki_roots()
    }
}

impl ClientTls {
    /// Verifies servers against the Mozilla root certificates (`webpki-roots`).
    ///
    /// ```
    /// let tls = wsx::tls::ClientTls::webpki_roots();
    /// assert_eq!(tls.config().alpn_protocols, [b"http/1.1".to_vec()]);
    /// ```
    pub fn webpki_roots() -> ClientTls {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        ClientTls::with_roots(roots)
    }

    /// Verifies servers against the CA certificates in a PEM file (and nothing else).
    ///
    /// ```no_run
    /// let tls = wsx::tls::ClientTls::with_ca_pem_file("ca.pem")?;
    /// # let _ = tls;
    /// # Ok::<(), wsx::tls::TlsError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The file cannot be read or holds no certificate.
    pub fn with_ca_pem_file(path: impl AsRef<Path>) -> Result<ClientTls, TlsError> {
        ClientTls::with_ca_pem(&read(path.as_ref())?)
    }

    /// Verifies servers against the CA certificates in PEM bytes (and nothing else).
    ///
    /// ```no_run
    /// let tls = wsx::tls::ClientTls::with_ca_pem(&std::fs::read("ca.pem")?)?;
    /// # let _ = tls;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The PEM holds no certificate, or one rustls cannot use as a root.
    pub fn with_ca_pem(pem: &[u8]) -> Result<ClientTls, TlsError> {
        Ok(ClientTls::with_roots(roots_from_pem(pem)?))
    }

    fn with_roots(roots: rustls::RootCertStore) -> ClientTls {
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        ClientTls::from_config(Arc::new(config))
    }

    /// **For tests only.** Accepts any server certificate: self-signed, expired, for another
    /// name, from any issuer. The handshake's signatures are still checked (the server must
    /// hold the key of the certificate it sent), but nothing says who that server is, so
    /// anyone on the path can impersonate it. Never use it against a server reached over a
    /// network you do not control.
    ///
    /// ```
    /// let tls = wsx::tls::ClientTls::dangerous_accept_any_certificate();
    /// # let _ = tls;
    /// ```
    pub fn dangerous_accept_any_certificate() -> ClientTls {
        let provider = provider();
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { provider }))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        ClientTls::from_config(Arc::new(config))
    }

    /// The same verification, presenting this client certificate chain (PEM, leaf first) and
    /// key (PEM) to servers that ask for one.
    ///
    /// ```no_run
    /// let read = |p: &str| std::fs::read(p).unwrap();
    /// let tls = wsx::tls::ClientTls::with_ca_pem(&read("ca.pem"))?
    ///     .with_client_cert(&read("client.pem"), &read("client.key"))?;
    /// # let _ = tls;
    /// # Ok::<(), wsx::tls::TlsError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The PEM cannot be parsed or the key does not fit the certificate.
    pub fn with_client_cert(self, chain_pem: &[u8], key_pem: &[u8]) -> Result<ClientTls, TlsError> {
        let key = Arc::new(certified_key(chain_pem, key_pem)?);
        let mut config = (*self.config).clone();
        config.client_auth_cert_resolver = Arc::new(OneClientCert(key));
        Ok(ClientTls::from_config(Arc::new(config)))
    }

    /// As [`ClientTls::with_client_cert`], from PEM files.
    ///
    /// ```no_run
    /// let tls = wsx::tls::ClientTls::webpki_roots()
    ///     .with_client_cert_files("client.pem", "client.key")?;
    /// # let _ = tls;
    /// # Ok::<(), wsx::tls::TlsError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`ClientTls::with_client_cert`], or a file cannot be read.
    pub fn with_client_cert_files(
        self,
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<ClientTls, TlsError> {
        self.with_client_cert(&read(chain.as_ref())?, &read(key.as_ref())?)
    }

    /// A configuration the caller built (its own verifier, client certificate, versions); used
    /// as it is (set `alpn_protocols` yourself if the server needs it).
    ///
    /// ```
    /// let config = rustls::ClientConfig::clone(wsx::tls::ClientTls::webpki_roots().config());
    /// let tls = wsx::tls::ClientTls::from_config(std::sync::Arc::new(config));
    /// # let _ = tls;
    /// ```
    pub fn from_config(config: Arc<rustls::ClientConfig>) -> ClientTls {
        ClientTls { config }
    }

    /// The rustls configuration.
    ///
    /// ```
    /// let tls = wsx::tls::ClientTls::webpki_roots();
    /// assert!(tls.config().enable_sni);
    /// ```
    pub fn config(&self) -> &Arc<rustls::ClientConfig> {
        &self.config
    }
}

/// Presents one client certificate to any server that asks.
#[derive(Debug)]
struct OneClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for OneClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Accepts any certificate; checks the handshake signatures with the provider's algorithms.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

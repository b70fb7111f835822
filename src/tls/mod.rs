//! TLS configuration for `wss://`, on rustls (with the `ring` provider): what a server presents
//! ([`ServerTls`]) and how a client verifies ([`ClientTls`]).
//!
//! The engine's workers, the blocking client and the CLI take these types; the record layer
//! itself runs inside the worker (`engine/tls.rs`), so both backends behave the same.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// The PEM held no certificate, or no private key, or could not be parsed.
    #[error("bad PEM: {0}")]
    Pem(String),
    /// rustls refused the configuration (a key that does not match its certificate, say).
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// The certificates of a PEM document, in order (leaf first).
pub(crate) fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Pem("no certificate found".into()));
    }
    Ok(certs)
}

/// The first private key of a PEM document (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::Pem(format!("private key: {e}")))
}

/// What a TLS server presents: its certificate chain and key (or several, chosen by SNI), its
/// ALPN (`http/1.1`) and, optionally, the client certificates it asks for.
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
    /// # Errors
    ///
    /// A file cannot be read or parsed, or the key does not fit the certificate.
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<ServerTls, TlsError> {
        ServerTls::from_pem(&read(cert.as_ref())?, &read(key.as_ref())?)
    }

    /// One certificate chain and its private key, as PEM bytes.
    ///
    /// # Errors
    ///
    /// The PEM cannot be parsed, or the key does not fit the certificate.
    pub fn from_pem(cert: &[u8], key: &[u8]) -> Result<ServerTls, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs_from_pem(cert)?, key_from_pem(key)?)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls::from_config(Arc::new(config)))
    }

    /// A configuration the caller built (its own resolver, versions, ALPN, client auth).
    pub fn from_config(config: Arc<rustls::ServerConfig>) -> ServerTls {
        ServerTls { config }
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<rustls::ServerConfig> {
        &self.config
    }
}

/// How a TLS client verifies the server: the Mozilla roots (`webpki-roots`) by default, or
/// given CAs, optionally with a client certificate.
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
    pub fn webpki_roots() -> ClientTls {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        ClientTls::with_roots(roots)
    }

    /// Verifies servers against the CA certificates in a PEM file (and nothing else).
    ///
    /// # Errors
    ///
    /// The file cannot be read or holds no certificate.
    pub fn with_ca_pem_file(path: impl AsRef<Path>) -> Result<ClientTls, TlsError> {
        ClientTls::with_ca_pem(&read(path.as_ref())?)
    }

    /// Verifies servers against the CA certificates in PEM bytes (and nothing else).
    ///
    /// # Errors
    ///
    /// The PEM holds no certificate, or one rustls cannot use as a root.
    pub fn with_ca_pem(pem: &[u8]) -> Result<ClientTls, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs_from_pem(pem)? {
            roots.add(cert)?;
        }
        Ok(ClientTls::with_roots(roots))
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

    /// A configuration the caller built (its own verifier, client certificate, versions).
    pub fn from_config(config: Arc<rustls::ClientConfig>) -> ClientTls {
        ClientTls { config }
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<rustls::ClientConfig> {
        &self.config
    }
}

//! TLS configuration for `wss://`, on rustls (with the `ring` provider): what a server presents
//! ([`ServerTls`], built with [`ServerTlsBuilder`] for several names or client certificates) and
//! how a client verifies ([`ClientTls`]).
//!
//! The engine's workers, the blocking client and the CLI take these types; the record layer
//! itself runs inside the worker (`engine/tls.rs`), so both backends behave the same.
//! `docs/tls.md` walks through certificates, SNI, client verification and mTLS.
//!
//! ```no_run
//! use wsx::tls::{ClientTls, ServerTls};
//!
//! let server = ServerTls::from_pem_files("cert.pem", "key.pem")?;
//! let client = ClientTls::with_ca_pem_file("ca.pem")?;
//! # let _ = (server, client);
//! # Ok::<(), wsx::tls::TlsError>(())
//! ```

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

mod client;
mod server;

pub use client::ClientTls;
pub use server::{ServerTls, ServerTlsBuilder};

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
    /// A server configuration with no certificate at all.
    #[error("no certificate given")]
    NoCertificate,
    /// rustls refused the configuration (a key that does not match its certificate, a
    /// certificate not valid for the name it is registered under, say).
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built (no usable CA, say).
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The crypto provider every configuration here uses: rustls' `ring`.
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

/// A certificate chain and its key, checked to match.
fn certified_key(chain_pem: &[u8], key_pem: &[u8]) -> Result<rustls::sign::CertifiedKey, TlsError> {
    Ok(rustls::sign::CertifiedKey::from_der(
        certs_from_pem(chain_pem)?,
        key_from_pem(key_pem)?,
        &provider(),
    )?)
}

/// A root store of the CA certificates in `pem`.
fn roots_from_pem(pem: &[u8]) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs_from_pem(pem)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_pem_is_an_error_not_a_panic() {
        assert!(matches!(certs_from_pem(b"nonsense"), Err(TlsError::Pem(_))));
        assert!(matches!(key_from_pem(b"nonsense"), Err(TlsError::Pem(_))));
        let bad = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(certs_from_pem(bad).is_err());
        assert!(matches!(
            ServerTls::builder().build(),
            Err(TlsError::NoCertificate)
        ));
    }
}

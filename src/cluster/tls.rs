//! What a node needs to authenticate to NATS and speak TLS to it, read and checked when the
//! server starts, so that a wrong path or a malformed key fails
//! [`Builder::start`](crate::server::Builder::start) instead of a node that never connects.

use std::io;
use std::path::Path;
use std::sync::Arc;

use super::options::NatsBackplane;

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

/// The TLS configuration for NATS: the given one; else, when CA files or a client certificate
/// are given, one that trusts the system's roots and the CA files and presents the
/// certificate; else `None` (the NATS client then trusts the system's roots when TLS is asked
/// for).
///
/// # Errors
///
/// A file that cannot be read, or holds no certificate or no key (`InvalidInput`, naming the
/// file); a certificate and key that do not match.
pub(crate) fn client_config(config: &NatsBackplane) -> io::Result<Option<rustls::ClientConfig>> {
    if let Some(tls) = &config.tls_config {
        return Ok(Some(tls.clone()));
    }
    if config.root_certificates.is_empty() && config.client_certificate.is_none() {
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    // A system store that cannot be read leaves the CA files: they are what the user named.
    if let Ok(system) = rustls_native_certs::load_native_certs() {
        roots.add_parsable_certificates(system);
    }
    for path in &config.root_certificates {
        for cert in certs(path)? {
            roots
                .add(cert)
                .map_err(|e| invalid(format!("NATS CA file {}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots);
    Ok(Some(match &config.client_certificate {
        Some((cert, key)) => builder
            .with_client_auth_cert(certs(cert)?, private_key(key)?)
            .map_err(|e| {
                invalid(format!(
                    "NATS client certificate {} and key {}: {e}",
                    cert.display(),
                    key.display()
                ))
            })?,
        None => builder.with_no_client_auth(),
    }))
}

/// Checks an NKey seed: it must decode, and be a user's (`SU…`), as NATS wants for a client.
///
/// # Errors
///
/// `InvalidInput` saying which (never the seed itself).
pub(crate) fn check_nkey(seed: &str) -> io::Result<()> {
    let pair = nkeys::KeyPair::from_seed(seed)
        .map_err(|e| invalid(format!("NATS nkey: not a seed ({e})")))?;
    if !pair.public_key().starts_with('U') {
        return Err(invalid(
            "NATS nkey: not a user's seed (SU…): a node connects as a user".into(),
        ));
    }
    Ok(())
}

/// The certificates of the PEM file at `path`.
fn certs(path: &Path) -> io::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    let pem = read(path)?;
    crate::tls::certs_from_pem(&pem).map_err(|e| invalid(format!("{}: {e}", path.display())))
}

/// The private key of the PEM file at `path`.
fn private_key(path: &Path) -> io::Result<rustls::pki_types::PrivateKeyDer<'static>> {
    let pem = read(path)?;
    crate::tls::key_from_pem(&pem).map_err(|e| invalid(format!("{}: {e}", path.display())))
}

fn read(path: &Path) -> io::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_checked_without_being_echoed() {
        let user = nkeys::KeyPair::new_user().seed().unwrap();
        assert!(check_nkey(&user).is_ok());
        let account = nkeys::KeyPair::new_account().seed().unwrap();
        let err = check_nkey(&account).unwrap_err();
        assert!(!err.to_string().contains(&account), "{err}");
        assert!(check_nkey("SUnotaseed").is_err());
    }

    #[test]
    fn missing_files_are_named() {
        let config = NatsBackplane::new(["tls://127.0.0.1:4222"]).root_certificates("/nope/ca.pem");
        let err = client_config(&config).unwrap_err();
        assert!(err.to_string().contains("/nope/ca.pem"), "{err}");
        assert!(client_config(&NatsBackplane::new(["nats://x:1"]))
            .unwrap()
            .is_none());
    }
}

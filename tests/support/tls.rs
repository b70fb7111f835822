//! Test certificates, made with rcgen: a CA and server certificates it signs for `localhost`
//! and `127.0.0.1`, variants (expired, wrong name, self-signed, SNI names `a.test` and
//! `b.test`), and a client certificate for mTLS. Each is written as PEM files into a fresh
//! temporary directory (removed on drop) and kept as PEM bytes.
//!
//! Include it with `#[path = "support/tls.rs"] mod tls;` and call [`Certs::generate`] once per
//! test (it takes a few milliseconds).
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// One certificate (leaf only; the CA is [`Certs::ca`]) and its key, as PEM files and bytes.
#[derive(Debug, Clone)]
pub struct Pair {
    /// The certificate file.
    pub cert: PathBuf,
    /// The private key file.
    pub key: PathBuf,
    /// The certificate, PEM.
    pub cert_pem: Vec<u8>,
    /// The key, PEM.
    pub key_pem: Vec<u8>,
}

/// A set of test certificates in their own temporary directory.
#[derive(Debug)]
pub struct Certs {
    /// The directory holding the files; removed when `Certs` is dropped.
    pub dir: PathBuf,
    /// The CA certificate file (`ca.pem`).
    pub ca: PathBuf,
    /// The CA certificate, PEM.
    pub ca_pem: Vec<u8>,
    /// Signed by the CA for `localhost` and `127.0.0.1`, valid now.
    pub server: Pair,
    /// Signed by the CA for `localhost` and `127.0.0.1`, expired (2020-2021).
    pub expired: Pair,
    /// Signed by the CA for `other.example` only.
    pub wrong_name: Pair,
    /// Self-signed for `localhost` and `127.0.0.1`, not from the CA.
    pub self_signed: Pair,
    /// Signed by the CA for `a.test`.
    pub a_test: Pair,
    /// Signed by the CA for `b.test`.
    pub b_test: Pair,
    /// A client certificate (`client.test`, client-auth usage) signed by the CA.
    pub client: Pair,
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn params(names: &[&str], common_name: &str) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("valid names");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
}

impl Certs {
    /// Generates the whole set and writes it.
    ///
    /// # Panics
    ///
    /// When generation or writing fails (a test cannot go on without its certificates).
    pub fn generate() -> Certs {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wsx-tls-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the certificate directory");

        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = params(&[], "wsx test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca_params.self_signed(&ca_key).expect("ca certificate");
        let ca_pem = ca.pem().into_bytes();
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, &ca_pem).expect("write ca.pem");

        let signed = |name: &str, p: CertificateParams| -> Pair {
            let key = KeyPair::generate().expect("key");
            let cert = p.signed_by(&key, &ca, &ca_key).expect("sign");
            write_pair(&dir, name, &cert, &key)
        };
        let local = ["localhost", "127.0.0.1"];
        let server = signed("server", params(&local, "localhost"));
        let mut expired_params = params(&local, "localhost");
        expired_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        expired_params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let expired = signed("expired", expired_params);
        let wrong_name = signed("wrong-name", params(&["other.example"], "other.example"));
        let a_test = signed("a-test", params(&["a.test"], "a.test"));
        let b_test = signed("b-test", params(&["b.test"], "b.test"));
        let mut client_params = params(&["client.test"], "client.test");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = signed("client", client_params);
        let self_signed = {
            let key = KeyPair::generate().expect("key");
            let cert = params(&local, "localhost")
                .self_signed(&key)
                .expect("self-signed");
            write_pair(&dir, "self-signed", &cert, &key)
        };
        Certs {
            ca: ca_path,
            ca_pem,
            server,
            expired,
            wrong_name,
            self_signed,
            a_test,
            b_test,
            client,
            dir,
        }
    }
}

fn write_pair(dir: &Path, name: &str, cert: &Certificate, key: &KeyPair) -> Pair {
    let cert_pem = cert.pem().into_bytes();
    let key_pem = key.serialize_pem().into_bytes();
    let cert_path = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}.key"));
    std::fs::write(&cert_path, &cert_pem).expect("write certificate");
    std::fs::write(&key_path, &key_pem).expect("write key");
    Pair {
        cert: cert_path,
        key: key_path,
        cert_pem,
        key_pem,
    }
}

//! What the authentication and TLS tests of tests/cluster.rs give `nats-server` and the nodes,
//! made fresh by each test in a temporary directory removed on drop:
//!
//! - TLS: a CA, a server certificate for `localhost` / `127.0.0.1` and a client certificate it
//!   signed, and a second, foreign CA with a client certificate of its own (rcgen, PEM files,
//!   and the DER for a hand-built rustls configuration);
//! - an nkey server configuration (`authorization { users = [ { nkey: "U…" } ] }`);
//! - operator mode: an operator, an account and user JWTs signed as `nsc` signs them
//!   (`base64url(header).base64url(claims).base64url(ed25519 signature by the issuer)`), a
//!   server configuration with `resolver: MEMORY` and the account preloaded, and `.creds` files.

// Each test file that includes this module uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use nkeys::KeyPair;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair as CertKey, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A fresh temporary directory, removed on drop.
pub(crate) struct Dir(PathBuf);

impl Dir {
    pub(crate) fn new(what: &str) -> Dir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wsx-nats-{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {dir:?}: {e}"));
        Dir(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `text` to the file `name` in the directory; its path.
    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A client certificate and its key: PEM files, and the DER.
pub(crate) struct Client {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub cert_der: CertificateDer<'static>,
    pub key_der: Vec<u8>,
}

impl Client {
    /// The private key, for rustls.
    pub(crate) fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// The certificates of one TLS test.
pub(crate) struct Certs {
    dir: Dir,
    /// The CA the server's and the client's certificates come from (PEM).
    pub ca: PathBuf,
    pub ca_der: CertificateDer<'static>,
    /// The server's certificate (for `localhost` and `127.0.0.1`) and key (PEM).
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A client certificate of the CA.
    pub client: Client,
    /// Another CA, which the server knows nothing of (PEM).
    pub foreign_ca: PathBuf,
    /// A client certificate of the foreign CA.
    pub foreign_client: Client,
}

/// A CA certificate (self-signed) and what signs with it.
fn new_ca(name: &str) -> (Certificate, CertKey) {
    let key = CertKey::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).expect("self-signed CA");
    (cert, key)
}

/// A leaf certificate for `names`, for `purpose`, signed by `issuer`: (PEM, DER, key PEM,
/// key DER).
fn leaf(
    issuer: &(Certificate, CertKey),
    names: &[&str],
    purpose: ExtendedKeyUsagePurpose,
) -> (String, CertificateDer<'static>, String, Vec<u8>) {
    let key = CertKey::generate().expect("leaf key");
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("leaf params");
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().copied().unwrap_or("client"),
    );
    params.extended_key_usages = vec![purpose];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = params
        .signed_by(&key, &issuer.0, &issuer.1)
        .expect("leaf certificate");
    (
        cert.pem(),
        cert.der().clone(),
        key.serialize_pem(),
        key.serialize_der(),
    )
}

impl Certs {
    pub(crate) fn new() -> Certs {
        let dir = Dir::new("tls");
        let ca = new_ca("wsx NATS test CA");
        let foreign = new_ca("wsx foreign CA");
        let (server_pem, _, server_key, _) = leaf(
            &ca,
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let client = |issuer: &(Certificate, CertKey), name: &str| {
            let (pem, der, key, key_der) = leaf(issuer, &[], ExtendedKeyUsagePurpose::ClientAuth);
            Client {
                cert: dir.write(&format!("{name}.pem"), &pem),
                key: dir.write(&format!("{name}.key"), &key),
                cert_der: der,
                key_der,
            }
        };
        let client_cert = client(&ca, "client");
        let foreign_client = client(&foreign, "foreign-client");
        Certs {
            ca: dir.write("ca.pem", &ca.0.pem()),
            ca_der: ca.0.der().clone(),
            server_cert: dir.write("server.pem", &server_pem),
            server_key: dir.write("server.key", &server_key),
            client: client_cert,
            foreign_ca: dir.write("foreign-ca.pem", &foreign.0.pem()),
            foreign_client,
            dir,
        }
    }

    /// The `nats-server` arguments for TLS with these certificates; with `verify`, client
    /// certificates of the CA are required too.
    pub(crate) fn server_args(&self, verify: bool) -> Vec<String> {
        let path = |p: &Path| p.to_str().expect("a UTF-8 temporary path").to_owned();
        let mut args = vec![
            "--tls".to_owned(),
            "--tlscert".to_owned(),
            path(&self.server_cert),
            "--tlskey".to_owned(),
            path(&self.server_key),
        ];
        if verify {
            args.extend([
                "--tlsverify".to_owned(),
                "--tlscacert".to_owned(),
                path(&self.ca),
            ]);
        }
        args
    }
}

/// A server configuration that lets in the users of these nkeys (public keys, `U…`).
pub(crate) fn nkey_config(dir: &Dir, users: &[String]) -> PathBuf {
    let users: Vec<String> = users
        .iter()
        .map(|u| format!("    {{ nkey: \"{u}\" }}"))
        .collect();
    dir.write(
        "nkeys.conf",
        &format!(
            "authorization {{\n  users = [\n{}\n  ]\n}}\n",
            users.join("\n")
        ),
    )
}

/// base64url without padding, as JWTs have it.
fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A NATS JWT (v2) for `subject`, signed by `issuer`, with `nats` as its `nats` claim.
pub(crate) fn jwt(issuer: &KeyPair, subject: &str, name: &str, nats: &str) -> String {
    static JTI: AtomicUsize = AtomicUsize::new(0);
    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let jti = format!(
        "WSXTEST{}X{}",
        std::process::id(),
        JTI.fetch_add(1, Ordering::SeqCst)
    );
    let header = b64(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = format!(
        r#"{{"jti":"{jti}","iat":{iat},"iss":"{}","name":"{name}","sub":"{subject}","nats":{nats}}}"#,
        issuer.public_key()
    );
    let signed = format!("{header}.{}", b64(claims.as_bytes()));
    let signature = issuer.sign(signed.as_bytes()).expect("ed25519 signature");
    format!("{signed}.{}", b64(&signature))
}

/// An operator, the one account the server knows and its configuration.
pub(crate) struct Operator {
    pub dir: Dir,
    pub account: KeyPair,
    /// The server configuration (`operator`, `resolver: MEMORY`, `resolver_preload`).
    pub config: PathBuf,
}

impl Operator {
    pub(crate) fn new() -> Operator {
        let dir = Dir::new("operator");
        let operator = KeyPair::new_operator();
        let account = KeyPair::new_account();
        let operator_jwt = jwt(
            &operator,
            &operator.public_key(),
            "wsx-test-operator",
            r#"{"type":"operator","version":2}"#,
        );
        let account_jwt = jwt(
            &operator,
            &account.public_key(),
            "wsx-test-account",
            r#"{"limits":{"subs":-1,"data":-1,"payload":-1,"imports":-1,"exports":-1,"wildcards":true,"conn":-1,"leaf":-1},"default_permissions":{"pub":{},"sub":{}},"type":"account","version":2}"#,
        );
        let operator_path = dir.write("operator.jwt", &operator_jwt);
        let config = dir.write(
            "operator.conf",
            &format!(
                "operator: \"{}\"\nresolver: MEMORY\nresolver_preload: {{\n  {}: \"{account_jwt}\"\n}}\n",
                operator_path.to_str().expect("a UTF-8 temporary path"),
                account.public_key(),
            ),
        );
        Operator {
            dir,
            account,
            config,
        }
    }

    /// A `.creds` file of a new user signed by `account` (this operator's, or any other).
    pub(crate) fn creds(&self, account: &KeyPair, name: &str) -> PathBuf {
        let user = KeyPair::new_user();
        let user_jwt = jwt(
            account,
            &user.public_key(),
            name,
            r#"{"pub":{},"sub":{},"subs":-1,"data":-1,"payload":-1,"type":"user","version":2}"#,
        );
        self.dir.write(
            &format!("{name}.creds"),
            &creds_file(&user_jwt, &user.seed().expect("a user seed")),
        )
    }
}

/// A credentials file as `nsc` writes it.
pub(crate) fn creds_file(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    )
}

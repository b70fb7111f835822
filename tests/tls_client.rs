//! The blocking client over `wss://` against a small rustls server run on a thread: a round
//! trip with the CA given; certificates refused (expired, wrong name, unknown issuer) with
//! errors that say so; the dangerous opt-out; SNI picking a certificate by name; mTLS.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;
#[path = "support/proxies.rs"]
mod proxies;
#[path = "support/tls.rs"]
mod tls;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::CertificateError;
use tls::Certs;
use wsx::blocking::{connect_with, Message};
use wsx::client::{ClientError, ClientOptions};
use wsx::protocol::handshake::accept_key;
use wsx::protocol::{Config, Connection, Event, Role};
use wsx::tls::{ClientTls, ServerTls};
use wsx::CloseCode;

/// What the server thread saw: the client's certificates once the handshake is done, or the
/// TLS error that ended it.
type Seen = Result<Vec<CertificateDer<'static>>, String>;

/// A one-connection `wss://` echo server on `port`: TLS with `config`, the upgrade, then every
/// text message echoed until the close. Reports the handshake's outcome on the channel.
fn serve_once(port: u16, config: ServerTls) -> mpsc::Receiver<Seen> {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let (tcp, _) = listener.accept().expect("accept");
        let session = rustls::ServerConnection::new(config.config().clone()).expect("session");
        let mut stream = rustls::StreamOwned::new(session, tcp);
        while stream.conn.is_handshaking() {
            if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
                let _ = tx.send(Err(e.to_string()));
                return;
            }
        }
        let certs = stream
            .conn
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default();
        let _ = tx.send(Ok(certs));
        let _ = upgrade_and_echo(&mut stream);
    });
    rx
}

fn upgrade_and_echo(stream: &mut impl ReadWrite) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let key = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    write!(
        stream,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(&key)
    )?;
    stream.flush()?;
    let mut conn = Connection::new(Role::Server, Config::default());
    let mut buf = vec![0u8; 1 << 16];
    let (mut start, mut end) = (0, 0);
    let mut out = Vec::new();
    loop {
        while start < end {
            let Ok(read) = conn.handle_read(&mut buf[start..end]) else {
                return Ok(());
            };
            start += read.consumed;
            let (closing, text) = match read.event {
                Some(Event::Text(t)) => (false, Some(t.to_owned())),
                Some(Event::Close { .. }) => (true, None),
                Some(_) => (false, None),
                None => break,
            };
            if let Some(text) = text {
                let _ = conn.send_text(&text, &mut out);
            }
            let _ = conn.poll_transmit(&mut out);
            stream.write_all(&out)?;
            stream.flush()?;
            out.clear();
            if closing {
                return Ok(());
            }
        }
        buf.copy_within(start..end, 0);
        end -= start;
        start = 0;
        let n = stream.read(&mut buf[end..])?;
        if n == 0 {
            return Ok(());
        }
        end += n;
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn options(tls: ClientTls) -> ClientOptions {
    ClientOptions::default().tls(tls)
}

fn ca_client(certs: &Certs) -> ClientTls {
    ClientTls::with_ca_pem_file(&certs.ca).expect("ca")
}

fn round_trip(url: &str, options: &ClientOptions) {
    let mut ws = connect_with(url, options).expect("connect");
    assert!(ws.tls().is_some(), "a wss:// connection has a TLS session");
    assert_eq!(ws.tls().unwrap().alpn_protocol(), Some(&b"http/1.1"[..]));
    ws.send_text("hello over tls").expect("send");
    assert_eq!(
        ws.recv().expect("recv"),
        Message::Text("hello over tls".into())
    );
    ws.close(CloseCode::NORMAL, "bye").expect("close");
}

/// The certificate error a refused connection carries.
fn cert_error(err: ClientError) -> CertificateError {
    match err {
        ClientError::Tls(rustls::Error::InvalidCertificate(e)) => e,
        other => panic!("expected a certificate error, got {other:?}"),
    }
}

#[test]
fn round_trip_with_the_ca_given() {
    let certs = Certs::generate();
    let server = ServerTls::from_pem_files(&certs.server.cert, &certs.server.key).unwrap();
    let seen = serve_once(27300, server);
    round_trip("wss://127.0.0.1:27300/", &options(ca_client(&certs)));
    assert_eq!(seen.recv().unwrap(), Ok(vec![]), "no client certificate");
}

#[test]
fn round_trip_by_name_localhost() {
    let certs = Certs::generate();
    let server = ServerTls::from_pem(&certs.server.cert_pem, &certs.server.key_pem).unwrap();
    let seen = serve_once(27301, server);
    round_trip("wss://localhost:27301/", &options(ca_client(&certs)));
    assert!(seen.recv().unwrap().is_ok());
}

#[test]
fn an_expired_certificate_is_refused_saying_so() {
    let certs = Certs::generate();
    let server = ServerTls::from_pem_files(&certs.expired.cert, &certs.expired.key).unwrap();
    let seen = serve_once(27302, server);
    let err = connect_with("wss://127.0.0.1:27302/", &options(ca_client(&certs))).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("expired"), "{message}");
    assert!(
        matches!(
            cert_error(err),
            CertificateError::Expired | CertificateError::ExpiredContext { .. }
        ),
        "{message}"
    );
    assert!(seen.recv().unwrap().is_err(), "the server saw the alert");
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let certs = Certs::generate();
    let server = ServerTls::from_pem_files(&certs.wrong_name.cert, &certs.wrong_name.key).unwrap();
    let seen = serve_once(27303, server);
    let err = connect_with("wss://127.0.0.1:27303/", &options(ca_client(&certs))).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("not valid for name"), "{message}");
    assert!(
        matches!(
            cert_error(err),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        ),
        "{message}"
    );
    assert!(seen.recv().unwrap().is_err());
}

#[test]
fn an_unknown_issuer_is_refused() {
    let certs = Certs::generate();
    let server =
        ServerTls::from_pem_files(&certs.self_signed.cert, &certs.self_signed.key).unwrap();
    let seen = serve_once(27304, server);
    let err = connect_with("wss://127.0.0.1:27304/", &options(ca_client(&certs))).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(cert_error(err), CertificateError::UnknownIssuer),
        "{message}"
    );
    assert!(seen.recv().unwrap().is_err());
}

#[test]
fn the_default_roots_refuse_a_test_ca() {
    let certs = Certs::generate();
    let server = ServerTls::from_pem_files(&certs.server.cert, &certs.server.key).unwrap();
    let seen = serve_once(27305, server);
    let err = connect_with("wss://127.0.0.1:27305/", &ClientOptions::default()).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(cert_error(err), CertificateError::UnknownIssuer),
        "{message}"
    );
    assert!(seen.recv().unwrap().is_err());
}

#[test]
fn the_dangerous_opt_out_accepts_a_self_signed_certificate() {
    let certs = Certs::generate();
    let server =
        ServerTls::from_pem_files(&certs.self_signed.cert, &certs.self_signed.key).unwrap();
    let seen = serve_once(27306, server);
    let tls = ClientTls::dangerous_accept_any_certificate();
    round_trip("wss://127.0.0.1:27306/", &options(tls));
    assert!(seen.recv().unwrap().is_ok());
}

#[test]
fn the_dangerous_opt_out_accepts_an_expired_certificate() {
    let certs = Certs::generate();
    let server = ServerTls::from_pem_files(&certs.expired.cert, &certs.expired.key).unwrap();
    let seen = serve_once(27307, server);
    let tls = ClientTls::dangerous_accept_any_certificate();
    round_trip("wss://127.0.0.1:27307/", &options(tls));
    assert!(seen.recv().unwrap().is_ok());
}

/// A raw TLS handshake to `port` asking for `name` (SNI); the leaf certificate the server sent.
fn leaf_for_name(port: u16, name: &str, client: &ClientTls) -> CertificateDer<'static> {
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let mut session = rustls::ClientConnection::new(client.config().clone(), name).unwrap();
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    while session.is_handshaking() {
        session.complete_io(&mut tcp).expect("handshake");
    }
    session.peer_certificates().unwrap()[0].clone().into_owned()
}

fn der(pem: &[u8]) -> CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem).unwrap()
}

#[test]
fn sni_picks_the_certificate_by_name() {
    let certs = Certs::generate();
    let build = || {
        ServerTls::builder()
            .cert("a.test", &certs.a_test.cert_pem, &certs.a_test.key_pem)
            .unwrap()
            .cert_files("b.test", &certs.b_test.cert, &certs.b_test.key)
            .unwrap()
            .default_cert(&certs.server.cert_pem, &certs.server.key_pem)
            .unwrap()
            .build()
            .unwrap()
    };
    let client = ca_client(&certs);
    for (port, name, want) in [
        (27310, "a.test", &certs.a_test),
        (27311, "b.test", &certs.b_test),
        (27312, "B.Test", &certs.b_test),
        (27313, "unknown.test", &certs.server),
    ] {
        let seen = serve_once(port, build());
        if name == "unknown.test" {
            // The default certificate is not valid for the name: refused by the client, but
            // it is the one that was sent.
            let sname = ServerName::try_from(name.to_owned()).unwrap();
            let mut session =
                rustls::ClientConnection::new(client.config().clone(), sname).unwrap();
            let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let mut err = None;
            while session.is_handshaking() {
                if let Err(e) = session.complete_io(&mut tcp) {
                    err = Some(e);
                    break;
                }
            }
            assert!(err.is_some(), "{name}: the default is not valid for it");
            assert!(seen.recv().unwrap().is_err());
            continue;
        }
        assert_eq!(
            leaf_for_name(port, name, &client),
            der(&want.cert_pem),
            "{name}"
        );
        assert!(seen.recv().unwrap().is_ok(), "{name}");
    }
    // No SNI (an IP address): the default, and the blocking client accepts it.
    let seen = serve_once(27314, build());
    let mut ws = connect_with("wss://127.0.0.1:27314/", &options(client)).unwrap();
    let leaf = ws.tls().unwrap().peer_certificates().unwrap()[0].clone();
    assert_eq!(leaf, der(&certs.server.cert_pem));
    ws.close(CloseCode::NORMAL, "").unwrap();
    assert!(seen.recv().unwrap().is_ok());
}

#[test]
fn the_first_certificate_is_the_default_without_default_cert() {
    let certs = Certs::generate();
    let server = ServerTls::builder()
        .cert("localhost", &certs.server.cert_pem, &certs.server.key_pem)
        .unwrap()
        .cert("a.test", &certs.a_test.cert_pem, &certs.a_test.key_pem)
        .unwrap()
        .build()
        .unwrap();
    let seen = serve_once(27315, server);
    let ws = connect_with("wss://127.0.0.1:27315/", &options(ca_client(&certs))).unwrap();
    let leaf = ws.tls().unwrap().peer_certificates().unwrap()[0].clone();
    assert_eq!(leaf, der(&certs.server.cert_pem));
    assert!(seen.recv().unwrap().is_ok());
}

#[test]
fn a_certificate_registered_under_a_name_it_does_not_cover_is_refused() {
    let certs = Certs::generate();
    let err = ServerTls::builder()
        .cert("b.test", &certs.a_test.cert_pem, &certs.a_test.key_pem)
        .unwrap_err();
    assert!(matches!(err, wsx::tls::TlsError::Rustls(_)), "{err}");
    // A key that does not fit its certificate.
    let err = ServerTls::from_pem(&certs.a_test.cert_pem, &certs.b_test.key_pem).unwrap_err();
    assert!(matches!(err, wsx::tls::TlsError::Rustls(_)), "{err}");
}

fn mtls_server(certs: &Certs, required: bool) -> ServerTls {
    ServerTls::builder()
        .default_cert(&certs.server.cert_pem, &certs.server.key_pem)
        .unwrap()
        .client_auth(&certs.ca_pem, required)
        .build()
        .unwrap()
}

#[test]
fn mtls_a_required_client_certificate_missing_is_refused() {
    let certs = Certs::generate();
    let seen = serve_once(27320, mtls_server(&certs, true));
    let err = connect_with("wss://127.0.0.1:27320/", &options(ca_client(&certs))).unwrap_err();
    assert!(matches!(err, ClientError::Tls(_)), "{err:?}");
    let server_side = seen.recv().unwrap().unwrap_err();
    assert!(server_side.contains("certificate"), "{server_side}");
}

#[test]
fn mtls_a_client_certificate_is_accepted() {
    let certs = Certs::generate();
    let seen = serve_once(27321, mtls_server(&certs, true));
    let tls = ca_client(&certs)
        .with_client_cert_files(&certs.client.cert, &certs.client.key)
        .unwrap();
    round_trip("wss://127.0.0.1:27321/", &options(tls));
    let client_certs = seen.recv().unwrap().unwrap();
    assert_eq!(client_certs, vec![der(&certs.client.cert_pem)]);
}

#[test]
fn mtls_a_client_certificate_from_another_ca_is_refused() {
    let certs = Certs::generate();
    let seen = serve_once(27322, mtls_server(&certs, false));
    let tls = ca_client(&certs)
        .with_client_cert(&certs.self_signed.cert_pem, &certs.self_signed.key_pem)
        .unwrap();
    let err = connect_with("wss://127.0.0.1:27322/", &options(tls)).unwrap_err();
    assert!(matches!(err, ClientError::Tls(_)), "{err:?}");
    assert!(seen.recv().unwrap().is_err());
}

#[test]
fn mtls_optional_lets_an_anonymous_client_in() {
    let certs = Certs::generate();
    let seen = serve_once(27323, mtls_server(&certs, false));
    round_trip("wss://127.0.0.1:27323/", &options(ca_client(&certs)));
    assert_eq!(seen.recv().unwrap(), Ok(vec![]));
}

#[test]
fn a_server_speaking_no_tls_is_an_error_not_a_hang() {
    let listener = TcpListener::bind(("127.0.0.1", 27324)).unwrap();
    let t = thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
    });
    let certs = Certs::generate();
    let err = connect_with("wss://127.0.0.1:27324/", &options(ca_client(&certs))).unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Tls(_) | ClientError::Closed | ClientError::Io(_)
        ),
        "{err:?}"
    );
    t.join().unwrap();
}

#[test]
fn the_handshake_timeout_covers_the_tls_handshake() {
    // A server that accepts and never answers the ClientHello.
    let listener = TcpListener::bind(("127.0.0.1", 27325)).unwrap();
    let (tx, rx) = mpsc::channel::<()>();
    let t = thread::spawn(move || {
        let (_tcp, _) = listener.accept().unwrap();
        let _ = rx.recv();
    });
    let certs = Certs::generate();
    let mut opts = options(ca_client(&certs));
    opts.handshake_timeout = std::time::Duration::from_millis(300);
    let err = connect_with("wss://127.0.0.1:27325/", &opts).unwrap_err();
    assert!(matches!(err, ClientError::Timeout), "{err:?}");
    drop(tx);
    t.join().unwrap();
}

/// Reads one request head from `stream` and answers a 302 to `location`.
fn answer_redirect(stream: &mut impl ReadWrite, location: &str) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let _ = write!(
        stream,
        "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
    );
    let _ = stream.flush();
}

#[test]
fn a_redirect_from_ws_to_wss_is_followed_over_tls() {
    let certs = Certs::generate();
    let server = ServerTls::from_pem_files(&certs.server.cert, &certs.server.key).unwrap();
    let seen = serve_once(27330, server);
    let listener = TcpListener::bind(("127.0.0.1", 27331)).unwrap();
    let hop = thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        answer_redirect(&mut tcp, "wss://127.0.0.1:27330/next");
    });
    let opts = options(ca_client(&certs)).follow_redirects(1);
    let mut ws = connect_with("ws://127.0.0.1:27331/", &opts).expect("followed");
    assert_eq!(ws.url().to_string(), "wss://127.0.0.1:27330/next");
    assert!(ws.tls().is_some());
    ws.send_text("after the redirect").unwrap();
    assert_eq!(
        ws.recv().unwrap(),
        Message::Text("after the redirect".into())
    );
    ws.close(CloseCode::NORMAL, "").unwrap();
    assert!(seen.recv().unwrap().is_ok());
    hop.join().unwrap();
}

#[test]
fn a_redirect_from_wss_to_ws_is_refused() {
    let certs = Certs::generate();
    let server = ServerTls::from_pem_files(&certs.server.cert, &certs.server.key).unwrap();
    let listener = TcpListener::bind(("127.0.0.1", 27332)).unwrap();
    let hop = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let session = rustls::ServerConnection::new(server.config().clone()).unwrap();
        let mut stream = rustls::StreamOwned::new(session, tcp);
        answer_redirect(&mut stream, "ws://127.0.0.1:1/");
    });
    let opts = options(ca_client(&certs)).follow_redirects(1);
    let err = connect_with("wss://127.0.0.1:27332/", &opts).unwrap_err();
    assert!(
        matches!(&err, ClientError::InsecureRedirect(url) if url == "ws://127.0.0.1:1/"),
        "{err:?}"
    );
    hop.join().unwrap();
}

fn proxy_at(addr: std::net::SocketAddr, socks: bool) -> wsx::client::proxy::Proxy {
    let (host, port) = (addr.ip().to_string(), addr.port());
    if socks {
        wsx::client::proxy::Proxy::Socks5 {
            host,
            port,
            auth: None,
        }
    } else {
        wsx::client::proxy::Proxy::Http {
            host,
            port,
            auth: None,
        }
    }
}

#[test]
fn wss_through_proxies_runs_tls_end_to_end() {
    let certs = Certs::generate();
    for (port, socks) in [(27333, false), (27334, true)] {
        let server = ServerTls::from_pem_files(&certs.server.cert, &certs.server.key).unwrap();
        let seen = serve_once(port, server);
        let proxy = if socks {
            proxies::socks5_proxy(proxies::ProxyConfig::default())
        } else {
            proxies::http_connect_proxy(proxies::ProxyConfig::default())
        };
        let opts = options(ca_client(&certs)).proxy(proxy_at(proxy, socks));
        // The certificate is checked against the target's name, not the proxy's.
        round_trip(&format!("wss://localhost:{port}/"), &opts);
        assert!(seen.recv().unwrap().is_ok(), "socks: {socks}");
    }
}

test_all!(the_blocking_client_against_the_engine_server);
/// The blocking client against the engine's TLS server, configured with the builder (a default
/// certificate and required client certificates): refused without a client certificate,
/// a round trip with one.
fn the_blocking_client_against_the_engine_server(backend: wsx::Backend) {
    let certs = Certs::generate();
    let tls = mtls_server(&certs, true);
    let server = common::start_server(backend, wsx::Server::builder().threads(1).tls(tls), |_| {
        common::Echo
    });
    let url = format!("wss://127.0.0.1:{}/", server.local_addr().port());
    let err = connect_with(&url, &options(ca_client(&certs))).unwrap_err();
    assert!(
        matches!(err, ClientError::Tls(_) | ClientError::Closed),
        "{err:?}"
    );
    let with_cert = ca_client(&certs)
        .with_client_cert(&certs.client.cert_pem, &certs.client.key_pem)
        .unwrap();
    round_trip(&url, &options(with_cert));
    common::stop(&server);
}

//! The wrong protocol on a port, on both backends, seen as raw bytes on a `TcpStream`: a plain
//! HTTP request (a WebSocket upgrade) on a TLS port is answered `HTTP/1.1 400` in plain text
//! with a body that says the port speaks TLS, and a TLS ClientHello on a plain port is answered
//! with a fatal TLS alert record (`0x15 0x03 ..`) that a TLS client reports as an alert. Either
//! way the server then closes the connection, and goes on serving the right protocol.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;
#[path = "support/wss_certs.rs"]
mod wss_certs;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use common::{start_server, stop, Echo, SAMPLE_KEY, TIMEOUT};
use wsx::client::ClientOptions;
use wsx::tls::{ClientTls, ServerTls};
use wsx::{blocking, Backend, Server};

/// Everything the server sends until it closes the connection; panics when it keeps the
/// connection open past [`TIMEOUT`] (a bound on a broken server, not part of the check).
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(TIMEOUT))
        .expect("set a read timeout");
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return bytes,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            // A reset after the answer also ends the connection.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return bytes,
            Err(e) => panic!(
                "the connection stays open ({e}) after {} bytes: {:?}",
                bytes.len(),
                String::from_utf8_lossy(&bytes)
            ),
        }
    }
}

fn upgrade_request(addr: SocketAddr) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// A blocking-client echo over `url`, to show the server still serves its own protocol.
fn echo_works(url: &str, options: &ClientOptions) {
    let mut ws = blocking::connect_with(url, options).unwrap_or_else(|e| panic!("{url}: {e}"));
    ws.set_read_timeout(Some(TIMEOUT)).unwrap();
    ws.send_text("still serving").unwrap();
    assert_eq!(
        ws.recv().unwrap(),
        blocking::Message::Text("still serving".to_owned())
    );
    ws.close(wsx::CloseCode::NORMAL, "").unwrap();
}

/// A WebSocket upgrade over TLS (rustls over the raw stream, verifying against the test CA)
/// is answered `101`: the port still serves TLS after a plain request.
fn upgrade_over_tls_works(addr: SocketAddr, certs: &wss_certs::Certs) {
    let config = ClientTls::with_ca_pem_file(&certs.ca).unwrap();
    let session =
        rustls::ClientConnection::new(Arc::clone(config.config()), "localhost".try_into().unwrap())
            .unwrap();
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut tls = rustls::StreamOwned::new(session, stream);
    tls.write_all(upgrade_request(addr).as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte)
            .unwrap_or_else(|e| panic!("after {:?}: {e}", String::from_utf8_lossy(&head)));
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(
        head.starts_with("HTTP/1.1 101 "),
        "the upgrade over TLS: {head:?}"
    );
    assert_eq!(
        tls.conn.alpn_protocol(),
        Some(&b"http/1.1"[..]),
        "the server chose no ALPN http/1.1"
    );
}

test_all!(plain_http_on_a_tls_port_gets_400);
/// A WebSocket upgrade in plain text to a TLS port: `HTTP/1.1 400`, a body that names TLS, then
/// the close; a TLS upgrade right after it is served.
fn plain_http_on_a_tls_port_gets_400(backend: Backend) {
    let certs = wss_certs::Certs::new();
    let tls = ServerTls::from_pem_files(&certs.cert, &certs.key).unwrap();
    let server = start_server(backend, Server::builder().threads(1).tls(tls), |_| Echo);
    let addr = server.local_addr();

    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(upgrade_request(addr).as_bytes()).unwrap();
    let answer = read_until_closed(&mut stream);
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 400 "),
        "not a 400 in plain text: {text:?}"
    );
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head: {text:?}"));
    assert!(
        body.contains("TLS") && body.contains("wss://"),
        "the body does not say the port expects TLS: {body:?}"
    );
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.trim().parse::<usize>().expect("a number"));
    assert_eq!(
        length,
        Some(body.len()),
        "Content-Length and body: {text:?}"
    );

    upgrade_over_tls_works(addr, &certs);
    stop(&server);
}

test_all!(tls_client_hello_on_a_plain_port_gets_an_alert);
/// A real ClientHello (from rustls) to a plain port: a TLS alert record, fatal, that the same
/// rustls client then reports as the alert it received; then the close. A `ws://` client right
/// after it is served.
fn tls_client_hello_on_a_plain_port_gets_an_alert(backend: Backend) {
    let certs = wss_certs::Certs::new();
    let server = start_server(backend, Server::builder().threads(1), |_| Echo);
    let addr = server.local_addr();

    let config = ClientTls::with_ca_pem_file(&certs.ca).unwrap();
    let mut tls =
        rustls::ClientConnection::new(Arc::clone(config.config()), "localhost".try_into().unwrap())
            .unwrap();
    let mut hello = Vec::new();
    while tls.wants_write() {
        tls.write_tls(&mut hello).unwrap();
    }
    assert_eq!(hello[0], 0x16, "rustls wrote a handshake record first");

    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(&hello).unwrap();
    let answer = read_until_closed(&mut stream);
    assert!(
        answer.len() >= 7,
        "no full alert record: {answer:02x?} ({:?})",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(answer[0], 0x15, "not an alert record: {answer:02x?}");
    assert_eq!(answer[1], 0x03, "not a TLS record version: {answer:02x?}");
    assert_eq!(
        u16::from_be_bytes([answer[3], answer[4]]),
        2,
        "an alert is two bytes: {answer:02x?}"
    );
    assert_eq!(answer[5], 2, "the alert is not fatal: {answer:02x?}");
    assert_eq!(answer.len(), 7, "bytes after the alert: {answer:02x?}");

    let mut reader = &answer[..];
    tls.read_tls(&mut reader).unwrap();
    match tls.process_new_packets() {
        Err(rustls::Error::AlertReceived(_)) => {}
        other => panic!("rustls read the answer as {other:?}"),
    }

    echo_works(&format!("ws://{addr}/"), &ClientOptions::new().no_proxy());
    stop(&server);
}

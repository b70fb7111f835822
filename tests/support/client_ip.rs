//! Shared by `tests/client_ip.rs` and `tests/interop_haproxy.rs`: a handler that records the
//! addresses every callback sees and answers each message with them, and a raw client that
//! writes a preface (a PROXY protocol header) before its upgrade request, plain or over TLS.
//!
//! Include it after `support/backends.rs`, `common` and `support/tls.rs`.

// Each test file that includes this module uses only part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};

use crate::common::{masked, start_server, upgrade_head, Shared, TIMEOUT};
use crate::tls;
use wsx::tls::{ClientTls, ServerTls};
use wsx::{
    Backend, CloseInfo, Conn, Handler, Message, Reject, ServerBuilder, ServerHandle, Upgrade,
};

/// What a callback saw: its name, `peer_addr()` and `tcp_peer_addr()`.
pub(crate) type Seen = (&'static str, SocketAddr, SocketAddr);

/// Records the addresses in every callback and answers each message with them.
pub(crate) struct Probe(pub(crate) Shared<Seen>);

impl Handler for Probe {
    type State = ();

    fn on_upgrade(&mut self, upgrade: &mut Upgrade<'_>) -> Result<(), Reject> {
        self.0
            .push(("upgrade", upgrade.peer_addr(), upgrade.tcp_peer_addr()));
        Ok(())
    }

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        self.0
            .push(("open", conn.peer_addr(), conn.tcp_peer_addr()));
    }

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, _message: Message<'_>) {
        self.0
            .push(("message", conn.peer_addr(), conn.tcp_peer_addr()));
        let _ = conn.send_text(&format!("{} {}", conn.peer_addr(), conn.tcp_peer_addr()));
    }

    fn on_close(&mut self, conn: &mut Conn<'_, ()>, _close: &CloseInfo) {
        self.0
            .push(("close", conn.peer_addr(), conn.tcp_peer_addr()));
    }
}

pub(crate) fn start(backend: Backend, builder: ServerBuilder) -> (ServerHandle, Shared<Seen>) {
    let seen = Shared::default();
    let log = seen.clone();
    let server = start_server(backend, builder.threads(1), move |_| Probe(log.clone()));
    (server, seen)
}

pub(crate) fn addr(server: &ServerHandle) -> SocketAddr {
    server.local_addr()
}

pub(crate) trait Io: Read + Write + Send {}
impl<T: Read + Write + Send> Io for T {}

/// A TCP connection to `to` from `from` (any port), with timeouts.
pub(crate) fn tcp(to: SocketAddr, from: Option<IpAddr>) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if let Some(ip) = from {
        sock.bind(&SocketAddr::new(ip, 0).into())
            .expect("bind the client address");
    }
    sock.connect_timeout(&to.into(), TIMEOUT)
        .expect("connect to the test server");
    let stream: TcpStream = sock.into();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// Writes `preface` on a fresh connection, then (over TLS when `tls`) the upgrade request with
/// `headers`, and reads the `101`. Returns the stream and the TCP address the server sees.
pub(crate) fn upgrade(
    to: SocketAddr,
    from: Option<IpAddr>,
    preface: &[u8],
    tls: Option<&ClientTls>,
    headers: &[&str],
) -> (Box<dyn Io>, SocketAddr) {
    let mut sock = tcp(to, from);
    let local = sock.local_addr().unwrap();
    // The preface and what follows it leave in one write, so that the server reads them
    // together (the PROXY header and the request, or the header and the ClientHello).
    let mut first = preface.to_vec();
    let mut io: Box<dyn Io> = match tls {
        None => {
            first.extend_from_slice(&upgrade_head("/", headers));
            sock.write_all(&first).unwrap();
            Box::new(sock)
        }
        Some(tls) => {
            let name = "localhost".try_into().unwrap();
            let mut conn = rustls::ClientConnection::new(tls.config().clone(), name).unwrap();
            conn.write_tls(&mut first).unwrap(); // the ClientHello
            sock.write_all(&first).unwrap();
            let mut io = rustls::StreamOwned::new(conn, sock);
            io.write_all(&upgrade_head("/", headers)).unwrap();
            Box::new(io)
        }
    };
    io.flush().unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 4096, "response head too long");
        io.read_exact(&mut byte).expect("read the upgrade response");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    (io, local)
}

/// Sends one text message and returns the server's text answer.
pub(crate) fn ask(io: &mut Box<dyn Io>) -> String {
    io.write_all(&masked(true, 1, b"who am i")).unwrap();
    io.flush().unwrap();
    read_text(io)
}

/// Reads one short text message from the server.
pub(crate) fn read_text(io: &mut Box<dyn Io>) -> String {
    let mut header = [0u8; 2];
    io.read_exact(&mut header).expect("read the answer");
    assert_eq!(header[0], 0x81, "a final text frame");
    let mut payload = vec![0u8; usize::from(header[1] & 0x7f)];
    io.read_exact(&mut payload).unwrap();
    String::from_utf8(payload).unwrap()
}

/// Opens a connection, asks, closes, and checks that every callback saw `client` as the peer
/// and the connection's own TCP address as the TCP peer.
#[allow(clippy::too_many_arguments)]
pub(crate) fn check(
    server: &ServerHandle,
    seen: &Shared<Seen>,
    from: Option<IpAddr>,
    preface: &[u8],
    tls: Option<&ClientTls>,
    headers: &[&str],
    client: Option<SocketAddr>,
) {
    seen.clear();
    let (mut io, local) = upgrade(addr(server), from, preface, tls, headers);
    let client = client.unwrap_or(local);
    assert_eq!(ask(&mut io), format!("{client} {local}"));
    io.write_all(&masked(true, 8, &[0x03, 0xe8])).unwrap();
    io.flush().unwrap();
    assert!(seen.wait_len(4), "all callbacks ran: {:?}", seen.snapshot());
    let names: Vec<&str> = seen.snapshot().iter().map(|s| s.0).collect();
    assert_eq!(names, ["upgrade", "open", "message", "close"]);
    for (name, peer, tcp) in seen.snapshot() {
        assert_eq!(peer, client, "peer_addr in {name}");
        assert_eq!(tcp, local, "tcp_peer_addr in {name}");
    }
}

pub(crate) fn tls_pair() -> (ServerTls, ClientTls) {
    let certs = tls::Certs::generate();
    (
        ServerTls::from_pem(&certs.server.cert_pem, &certs.server.key_pem).unwrap(),
        ClientTls::with_ca_pem(&certs.ca_pem).unwrap(),
    )
}

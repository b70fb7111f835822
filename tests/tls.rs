//! wss:// inside the engine, on both backends: a TLS server and the engine client over TLS,
//! large messages through the bounded record queue, data before a clean close, broadcast to TLS
//! subscribers, a refused certificate, and the handshake timeout on a silent TLS peer.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;
#[path = "support/tls.rs"]
mod tls;

use std::io::Read;
use std::net::TcpStream;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::Duration;

use common::{start_server, stop, Echo};
use wsx::client::{ClientError, ClientOptions, Url};
use wsx::tls::{ClientTls, ServerTls};
use wsx::{
    Backend, Client, CloseCode, CloseInfo, Conn, Handler, Message, SendStatus, Server, ServerHandle,
};

const WAIT: Duration = Duration::from_secs(30);

fn tls_pair() -> (ServerTls, ClientTls) {
    let certs = tls::Certs::generate();
    (
        ServerTls::from_pem(&certs.server.cert_pem, &certs.server.key_pem).unwrap(),
        ClientTls::with_ca_pem(&certs.ca_pem).unwrap(),
    )
}

#[derive(Debug)]
enum Seen {
    Open(u64),
    Data(u64, Vec<u8>),
    Closed(u64, CloseInfo),
    Failed(u64, String),
}

/// The client side: sends what its tag asks for on open and reports everything.
struct Probe {
    tx: Sender<Seen>,
    /// Messages each connection sends on open: `(count, size)`.
    send: (usize, usize),
}

fn pattern(tag: u64, i: usize, size: usize) -> Vec<u8> {
    (0..size)
        .map(|j| (j as u64 * 31 + i as u64 * 7 + tag) as u8)
        .collect()
}

impl Handler for Probe {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        let _ = self.tx.send(Seen::Open(conn.tag()));
        let (count, size) = self.send;
        for i in 0..count {
            let status = conn.send_binary(&pattern(conn.tag(), i, size)).unwrap();
            assert_ne!(status, SendStatus::Dropped);
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        let data = match message {
            Message::Text(t) => t.as_bytes().to_vec(),
            Message::Binary(b) => b.to_vec(),
        };
        let _ = self.tx.send(Seen::Data(conn.tag(), data));
    }

    fn on_close(&mut self, conn: &mut Conn<'_, ()>, close: &CloseInfo) {
        let _ = self.tx.send(Seen::Closed(conn.tag(), close.clone()));
    }

    fn on_connect_error(&mut self, _url: &Url, tag: u64, error: &ClientError) {
        let _ = self.tx.send(Seen::Failed(tag, error.to_string()));
    }
}

fn client_engine(backend: Backend, send: (usize, usize)) -> (ServerHandle, Receiver<Seen>) {
    let (tx, rx) = channel();
    let engine = Client::builder()
        .threads(1)
        .pin_threads(false)
        .backend(backend)
        .start(move |_| Probe {
            tx: tx.clone(),
            send,
        })
        .expect("client engine starts");
    backends::assert_runs_on(&engine, backend);
    (engine, rx)
}

fn options(tls: &ClientTls) -> ClientOptions {
    ClientOptions::new().no_proxy().tls(tls.clone())
}

test_all!(many_connections_echo_over_wss);
/// 40 engine-client connections to a TLS server, 20 messages each of up to 300 KiB (more than
/// the record queue holds at once): every echo arrives whole and in order.
fn many_connections_echo_over_wss(backend: Backend) {
    let (server_tls, client_tls) = tls_pair();
    let server = start_server(
        backend,
        Server::builder().threads(2).tls(server_tls),
        |_| Echo,
    );
    const N: u64 = 40;
    const MESSAGES: usize = 20;
    // Sizes vary per message: the probe sends `pattern(tag, i, size_of(i))`.
    struct Varied(Sender<Seen>);
    impl Handler for Varied {
        type State = ();
        fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
            for i in 0..MESSAGES {
                let status = conn
                    .send_binary(&pattern(conn.tag(), i, size_of(i)))
                    .unwrap();
                assert_ne!(status, SendStatus::Dropped);
            }
        }
        fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
            if let Message::Binary(b) = message {
                let _ = self.0.send(Seen::Data(conn.tag(), b.to_vec()));
            }
        }
        fn on_connect_error(&mut self, _url: &Url, tag: u64, error: &ClientError) {
            let _ = self.0.send(Seen::Failed(tag, error.to_string()));
        }
    }
    fn size_of(i: usize) -> usize {
        [1, 125, 4096, 70_000, 300_000][i % 5]
    }
    let (tx, rx) = channel();
    let engine = Client::builder()
        .threads(1)
        .pin_threads(false)
        .backend(backend)
        .start(move |_| Varied(tx.clone()))
        .unwrap();
    let url = format!("wss://localhost:{}/", server.local_addr().port());
    for tag in 1..=N {
        engine.connect(&url, options(&client_tls), tag).unwrap();
    }
    let mut next = vec![0usize; N as usize + 1];
    let mut got = 0;
    while got < N as usize * MESSAGES {
        match rx.recv_timeout(WAIT).expect("every echo arrives") {
            Seen::Data(tag, data) => {
                let i = next[tag as usize];
                assert_eq!(data.len(), size_of(i), "tag {tag} message {i}");
                assert!(data == pattern(tag, i, size_of(i)), "tag {tag} message {i}");
                next[tag as usize] += 1;
                got += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    engine.shutdown(Duration::from_secs(5));
    stop(&server);
}

/// Sends `count` messages of `size` bytes on open, then closes with 1000.
struct SendThenClose {
    count: usize,
    size: usize,
}

impl Handler for SendThenClose {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        for i in 0..self.count {
            let status = conn.send_binary(&pattern(0, i, self.size)).unwrap();
            assert_ne!(status, SendStatus::Dropped);
        }
        conn.close(CloseCode::NORMAL, "done").unwrap();
    }
}

test_all!(data_sent_before_a_clean_close_arrives_complete);
/// The server queues 8 MiB and closes: every byte arrives before the close frame, and the
/// close is clean (close_notify comes after the last record, before the TCP close).
fn data_sent_before_a_clean_close_arrives_complete(backend: Backend) {
    let (server_tls, client_tls) = tls_pair();
    let server = start_server(
        backend,
        Server::builder().threads(1).tls(server_tls),
        |_| SendThenClose {
            count: 32,
            size: 256 << 10,
        },
    );
    let (engine, rx) = client_engine(backend, (0, 0));
    let url = format!("wss://127.0.0.1:{}/", server.local_addr().port());
    engine.connect(&url, options(&client_tls), 7).unwrap();
    let mut i = 0;
    loop {
        match rx.recv_timeout(WAIT).expect("the connection ends") {
            Seen::Open(7) => {}
            Seen::Data(7, data) => {
                assert!(data == pattern(0, i, 256 << 10), "message {i}");
                i += 1;
            }
            Seen::Closed(7, info) => {
                assert_eq!(i, 32, "every message before the close");
                assert!(info.clean, "{info:?}");
                assert_eq!(info.code, CloseCode::NORMAL);
                assert_eq!(info.reason, "done");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    engine.shutdown(Duration::from_secs(5));
    stop(&server);
}

/// Subscribes every connection to `t` at open; a text `pub:P` publishes P to `t`.
struct Feed;

impl Handler for Feed {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        conn.subscribe("t");
        let status = conn.send_text("subscribed").unwrap();
        assert_ne!(status, SendStatus::Dropped);
    }

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        if let Message::Text(t) = message {
            if let Some(p) = t.strip_prefix("pub:") {
                conn.publish("t", Message::Text(p));
            }
        }
    }
}

test_all!(a_broadcast_reaches_every_tls_subscriber_in_order);
/// 50 TLS subscribers, 200 publishes from the handle: each subscriber gets all, in order.
fn a_broadcast_reaches_every_tls_subscriber_in_order(backend: Backend) {
    let (server_tls, client_tls) = tls_pair();
    let server = start_server(
        backend,
        Server::builder().threads(2).tls(server_tls),
        |_| Feed,
    );
    let (engine, rx) = client_engine(backend, (0, 0));
    const N: u64 = 50;
    let url = format!("wss://localhost:{}/", server.local_addr().port());
    for tag in 1..=N {
        engine.connect(&url, options(&client_tls), tag).unwrap();
    }
    let mut ready = 0;
    while ready < N {
        match rx.recv_timeout(WAIT).expect("every subscriber is ready") {
            Seen::Open(_) => {}
            Seen::Data(_, d) if d == b"subscribed" => ready += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    const PUBLISHES: usize = 200;
    for i in 0..PUBLISHES {
        let text = format!("tick {i} {}", "x".repeat(i * 10));
        server.publish("t", Message::Text(&text)).unwrap();
    }
    let mut next = vec![0usize; N as usize + 1];
    let mut got = 0;
    while got < N as usize * PUBLISHES {
        match rx.recv_timeout(WAIT).expect("every delivery arrives") {
            Seen::Data(tag, d) => {
                let i = next[tag as usize];
                assert_eq!(
                    String::from_utf8(d).unwrap(),
                    format!("tick {i} {}", "x".repeat(i * 10))
                );
                next[tag as usize] += 1;
                got += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    engine.shutdown(Duration::from_secs(5));
    stop(&server);
}

test_all!(a_server_from_an_unknown_ca_is_refused_with_a_tls_error);
/// Without the test CA (the Mozilla roots only), the engine client refuses the server's
/// certificate and says why; the server keeps serving others.
fn a_server_from_an_unknown_ca_is_refused_with_a_tls_error(backend: Backend) {
    let (server_tls, client_tls) = tls_pair();
    let server = start_server(
        backend,
        Server::builder().threads(1).tls(server_tls),
        |_| Echo,
    );
    let (engine, rx) = client_engine(backend, (1, 5));
    let url = format!("wss://localhost:{}/", server.local_addr().port());
    engine
        .connect(&url, ClientOptions::new().no_proxy(), 1)
        .unwrap();
    match rx.recv_timeout(WAIT).expect("the connect fails") {
        Seen::Failed(1, error) => {
            assert!(
                error.contains("tls: invalid peer certificate: UnknownIssuer"),
                "{error}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    // With the CA, the same server is fine.
    engine.connect(&url, options(&client_tls), 2).unwrap();
    match rx.recv_timeout(WAIT).expect("the connection opens") {
        Seen::Open(2) => {}
        other => panic!("unexpected {other:?}"),
    }
    match rx.recv_timeout(WAIT).expect("the echo comes") {
        Seen::Data(2, d) => assert_eq!(d, pattern(2, 0, 5)),
        other => panic!("unexpected {other:?}"),
    }
    engine.shutdown(Duration::from_secs(5));
    stop(&server);
}

test_all!(a_silent_tls_peer_is_closed_at_the_handshake_timeout);
/// A peer that connects and sends half a ClientHello is dropped when the handshake timeout
/// passes; a full handshake meanwhile works.
fn a_silent_tls_peer_is_closed_at_the_handshake_timeout(backend: Backend) {
    let (server_tls, client_tls) = tls_pair();
    let server = start_server(
        backend,
        Server::builder()
            .threads(1)
            .tls(server_tls)
            .handshake_timeout(Duration::from_millis(300)),
        |_| Echo,
    );
    let mut silent = TcpStream::connect(server.local_addr()).unwrap();
    std::io::Write::write_all(&mut silent, &[0x16, 0x03, 0x01, 0x01, 0x00, 0x01]).unwrap();
    let (engine, rx) = client_engine(backend, (1, 3));
    let url = format!("wss://localhost:{}/", server.local_addr().port());
    engine.connect(&url, options(&client_tls), 3).unwrap();
    assert!(matches!(rx.recv_timeout(WAIT), Ok(Seen::Open(3))));
    silent.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 64];
    // The server closes: end of input (or a reset), not the read timeout.
    match silent.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("unexpected {n} bytes: {:?}", &buf[..n]),
        Err(e) => assert_ne!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}"),
    }
    engine.shutdown(Duration::from_secs(5));
    stop(&server);
}

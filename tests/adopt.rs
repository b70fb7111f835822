//! Adoption (Node ws's `noServer` + `handleUpgrade`), on both backends: a front server of the
//! test's own accepts, reads the upgrade request and hands the connection to a wsx server
//! without a listener, plain and over TLS, either unanswered (`ServerHandle::adopt`: wsx
//! checks, negotiates and answers) or answered by the front with what `ServerHandle::answer`
//! agreed (`ServerHandle::adopt_upgraded`).

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;
#[path = "support/tls.rs"]
mod tls;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::Duration;

use common::{stop, SAMPLE_KEY};
use wsx::blocking::{self, Message as Received};
use wsx::client::ClientOptions;
use wsx::protocol::deflate::DeflateOptions;
use wsx::tls::{ClientTls, ServerTls};
use wsx::{
    Adopted, Backend, CloseCode, CloseInfo, Conn, Handler, Message, Reject, Server, ServerHandle,
    Upgrade,
};

const WAIT: Duration = Duration::from_secs(10);

/// Echoes, reports what `on_upgrade` saw and how connections ended; refuses `/refused`.
struct App {
    seen: Sender<String>,
}

impl Handler for App {
    type State = ();
    fn on_upgrade(&mut self, upgrade: &mut Upgrade<'_>) -> Result<(), Reject> {
        let _ = self.seen.send(format!("upgrade {}", upgrade.path()));
        if upgrade.path() == "/refused" {
            return Err(Reject::new(403).body("not here"));
        }
        let _ = upgrade.select_protocol("chat");
        Ok(())
    }
    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        let _ = conn.send(message);
    }
    fn on_close(&mut self, _conn: &mut Conn<'_, ()>, close: &CloseInfo) {
        let _ = self.seen.send(format!("close {}", close.code.0));
    }
}

fn adopting_server(backend: Backend) -> (ServerHandle, Receiver<String>) {
    let (tx, rx) = channel();
    let server = Server::builder()
        .no_listener()
        .threads(2)
        .pin_threads(false)
        .backend(backend)
        .deflate(DeflateOptions::default())
        .start(move |_| App { seen: tx.clone() })
        .expect("server starts");
    backends::assert_runs_on(&server, backend);
    (server, rx)
}

/// Reads from `read` until the end of a request head; returns the head and what came after.
fn read_head(mut read: impl FnMut(&mut [u8]) -> std::io::Result<usize>) -> (Vec<u8>, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = read(&mut chunk).expect("the client sends its request");
        assert!(n > 0, "the client closed before its request ended");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return (buf, rest);
        }
    }
}

/// How the front server hands connections over.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// `adopt`: nothing answered.
    Unanswered,
    /// `answer`, the 101 written by the front, `adopt_upgraded`.
    Answered,
}

/// A front server: accepts `count` connections on a listener of its own and hands each to
/// `server` the way `mode` says, plain or (with `tls`) after the TLS handshake, which the front
/// does itself.
fn front(
    server: ServerHandle,
    mode: Mode,
    tls: Option<ServerTls>,
    count: usize,
) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for _ in 0..count {
            let Ok((mut sock, _)) = listener.accept() else {
                return;
            };
            sock.set_read_timeout(Some(WAIT)).expect("timeout");
            match &tls {
                None => {
                    let (head, rest) = read_head(|b| sock.read(b));
                    hand_over(&server, mode, sock, None, &head, &rest);
                }
                Some(tls) => {
                    let mut session =
                        rustls::ServerConnection::new(tls.config().clone()).expect("session");
                    while session.is_handshaking() {
                        session.complete_io(&mut sock).expect("TLS handshake");
                    }
                    let (head, rest) = {
                        let mut stream = rustls::Stream::new(&mut session, &mut sock);
                        read_head(|b| stream.read(b))
                    };
                    hand_over(&server, mode, sock, Some(session), &head, &rest);
                }
            }
        }
    });
    addr
}

/// Hands one connection over; in `Answered` mode the front writes the 101 (or the refusal)
/// first, through the TLS session if there is one.
fn hand_over(
    server: &ServerHandle,
    mode: Mode,
    mut sock: TcpStream,
    mut session: Option<rustls::ServerConnection>,
    head: &[u8],
    rest: &[u8],
) {
    let mut write = |bytes: &[u8]| match &mut session {
        None => sock.write_all(bytes).expect("write"),
        Some(session) => {
            session.writer().write_all(bytes).expect("seal");
            while session.wants_write() {
                session.write_tls(&mut sock).expect("write");
            }
        }
    };
    let answered = match mode {
        Mode::Unanswered => None,
        Mode::Answered => match server.answer(head) {
            Ok(mut answer) => {
                let _ = answer.select_protocol("chat");
                write(answer.response());
                Some(answer)
            }
            Err(reject) => {
                let body = reject.body_text().to_owned();
                let mut response = format!("HTTP/1.1 {} Refused\r\n", reject.status()).into_bytes();
                for (name, value) in reject.headers() {
                    response.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
                }
                response.extend_from_slice(
                    format!(
                        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
                write(&response);
                return;
            }
        },
    };
    let stream = match session {
        None => Adopted::tcp(sock),
        Some(session) => Adopted::tls(sock, session),
    };
    match answered {
        None => server.adopt(stream, head, rest).expect("adopted"),
        Some(answer) => server
            .adopt_upgraded(stream, answer, rest)
            .expect("adopted"),
    }
}

fn client_options(ca: Option<&[u8]>) -> ClientOptions {
    let mut options = ClientOptions::new().deflate(DeflateOptions::default());
    options.protocols = vec!["chat".into()];
    options.handshake_timeout = WAIT;
    if let Some(ca) = ca {
        options = options.tls(ClientTls::with_ca_pem(ca).expect("ca"));
    }
    options
}

fn echo_through(url: &str, ca: Option<&[u8]>) {
    let mut ws = blocking::connect_with(url, &client_options(ca)).expect("upgrade");
    ws.set_read_timeout(Some(WAIT)).expect("timeout");
    assert_eq!(ws.protocol(), Some("chat"));
    assert!(
        ws.response()
            .extensions()
            .iter()
            .any(|e| e.name == "permessage-deflate"),
        "permessage-deflate agreed"
    );
    let big = "x".repeat(100_000);
    for text in ["hello", big.as_str()] {
        ws.send_text(text).expect("send");
        match ws.recv().expect("echo") {
            Received::Text(t) => assert_eq!(t, text),
            other => panic!("unexpected {other:?}"),
        }
    }
    // Waits for the server's close frame.
    ws.close(CloseCode::NORMAL, "done").expect("clean close");
}

fn expect_seen(rx: &Receiver<String>, what: &str) {
    let got = rx.recv_timeout(WAIT).unwrap_or_else(|_| panic!("{what}"));
    assert_eq!(got, what);
}

test_all!(adopt_plain, adopt_upgraded_plain);

/// `adopt`: wsx answers; the subprotocol and deflate come from the worker's negotiation.
fn adopt_plain(backend: Backend) {
    let (server, seen) = adopting_server(backend);
    let addr = front(server.clone(), Mode::Unanswered, None, 1);
    echo_through(&format!("ws://{addr}/chat"), None);
    expect_seen(&seen, "upgrade /chat");
    expect_seen(&seen, "close 1000");
    stop(&server);
}

/// `answer` + `adopt_upgraded`: the front writes the 101.
fn adopt_upgraded_plain(backend: Backend) {
    let (server, seen) = adopting_server(backend);
    let addr = front(server.clone(), Mode::Answered, None, 1);
    echo_through(&format!("ws://{addr}/chat"), None);
    expect_seen(&seen, "upgrade /chat");
    expect_seen(&seen, "close 1000");
    stop(&server);
}

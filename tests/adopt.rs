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
                    // One byte at a time, as a careful HTTP server reads: what follows the
                    // head stays decrypted in the session, for the worker to find there.
                    let (head, rest) = {
                        let mut stream = rustls::Stream::new(&mut session, &mut sock);
                        read_head(|b| stream.read(&mut b[..1]))
                    };
                    assert!(rest.is_empty());
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

fn tls_pair() -> (ServerTls, Vec<u8>) {
    let certs = tls::Certs::generate();
    (
        ServerTls::from_pem(&certs.server.cert_pem, &certs.server.key_pem).expect("server tls"),
        certs.ca_pem.clone(),
    )
}

test_all!(adopt_tls, adopt_upgraded_tls);

/// Over TLS: the front does the TLS handshake and reads the request through its session; the
/// session moves to the worker with the socket.
fn adopt_tls(backend: Backend) {
    let (server, seen) = adopting_server(backend);
    let (tls, ca) = tls_pair();
    let addr = front(server.clone(), Mode::Unanswered, Some(tls), 1);
    echo_through(&format!("wss://localhost:{}/chat", addr.port()), Some(&ca));
    expect_seen(&seen, "upgrade /chat");
    expect_seen(&seen, "close 1000");
    stop(&server);
}

/// Over TLS, the front answering: its 101 goes through its session before the move.
fn adopt_upgraded_tls(backend: Backend) {
    let (server, seen) = adopting_server(backend);
    let (tls, ca) = tls_pair();
    let addr = front(server.clone(), Mode::Answered, Some(tls), 1);
    echo_through(&format!("wss://localhost:{}/chat", addr.port()), Some(&ca));
    expect_seen(&seen, "upgrade /chat");
    expect_seen(&seen, "close 1000");
    stop(&server);
}

/// A request head, then a masked text frame with `text`, in one write: the front reads both, so
/// the frame reaches the worker as leftover bytes.
fn request_and_frame(path: &str, text: &str) -> Vec<u8> {
    let mut bytes = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes();
    let mask = [1u8, 2, 3, 4];
    assert!(text.len() < 126);
    bytes.extend_from_slice(&[0x81, 0x80 | text.len() as u8]);
    bytes.extend_from_slice(&mask);
    bytes.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    bytes
}

/// Reads the response head and returns it with what followed.
fn read_response(sock: &mut TcpStream) -> (String, Vec<u8>) {
    let (head, rest) = read_head(|b| sock.read(b));
    (String::from_utf8(head).expect("ascii head"), rest)
}

/// Reads until `want` bytes follow the head (or the peer closes).
fn read_more(sock: &mut TcpStream, mut have: Vec<u8>, want: usize) -> Vec<u8> {
    let mut chunk = [0u8; 1024];
    while have.len() < want {
        match sock.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => have.extend_from_slice(&chunk[..n]),
        }
    }
    have
}

test_all!(leftover_frames_are_read, refusals);

/// Frames that came with the request reach the handler, in both modes.
fn leftover_frames_are_read(backend: Backend) {
    for mode in [Mode::Unanswered, Mode::Answered] {
        let (server, seen) = adopting_server(backend);
        let addr = front(server.clone(), mode, None, 1);
        let mut sock = TcpStream::connect(addr).expect("connect");
        sock.set_read_timeout(Some(WAIT)).expect("timeout");
        sock.write_all(&request_and_frame("/early", "early bird"))
            .expect("write");
        let (head, rest) = read_response(&mut sock);
        assert!(head.starts_with("HTTP/1.1 101 "), "{mode:?}: {head}");
        let echo = read_more(&mut sock, rest, 12);
        assert_eq!(&echo[..2], &[0x81, 10], "{mode:?}");
        assert_eq!(&echo[2..12], b"early bird", "{mode:?}");
        expect_seen(&seen, "upgrade /early");
        stop(&server);
    }
}

/// What a refusal looks like in each mode: the worker's HTTP answer for `adopt`, the front's
/// for `answer`, and a 1008 close when `on_upgrade` refuses after the front's 101.
fn refusals(backend: Backend) {
    let (server, seen) = adopting_server(backend);
    // adopt: a request without a key gets the worker's 400; on_upgrade's 403 its body.
    let addr = front(server.clone(), Mode::Unanswered, None, 2);
    let mut sock = TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(WAIT)).expect("timeout");
    sock.write_all(
        b"GET /x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    )
    .expect("write");
    let (head, _) = read_response(&mut sock);
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    let mut sock = TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(WAIT)).expect("timeout");
    let request = request_and_frame("/refused", "x");
    let head_len = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    sock.write_all(&request[..head_len]).expect("write");
    let (head, rest) = read_response(&mut sock);
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    let body = read_more(&mut sock, rest, 8);
    assert_eq!(body, b"not here");
    expect_seen(&seen, "upgrade /refused");

    // answer + adopt_upgraded: the front's refusal carries wsx's status; a refusal by
    // on_upgrade after the 101 is a close frame with 1008 and the reason.
    let addr = front(server.clone(), Mode::Answered, None, 2);
    let mut sock = TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(WAIT)).expect("timeout");
    sock.write_all(
        b"GET /x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 12\r\n\r\n",
    )
    .expect("write");
    let (head, _) = read_response(&mut sock);
    assert!(head.starts_with("HTTP/1.1 426 "), "{head}");
    assert!(head.contains("Sec-WebSocket-Version: 13, 8\r\n"), "{head}");
    let mut sock = TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(WAIT)).expect("timeout");
    sock.write_all(&request[..head_len]).expect("write");
    let (head, rest) = read_response(&mut sock);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let close = read_more(&mut sock, rest, 12);
    assert_eq!(close[0], 0x88, "a close frame");
    assert_eq!(&close[2..4], &1008u16.to_be_bytes());
    assert_eq!(&close[4..], b"not here");
    expect_seen(&seen, "upgrade /refused");
    stop(&server);
}

/// `answer` on the calling thread: the checks and statuses a worker applies, and the 101's
/// headers.
#[test]
fn answer_checks_and_headers() {
    let (server, _seen) = adopting_server(Backend::Epoll);
    let request = |extra: &str, version: &str, method: &str| {
        format!(
            "{method} /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: {version}\r\n{extra}\r\n"
        )
    };
    let ok = server
        .answer(
            request(
                "Sec-WebSocket-Protocol: a, chat\r\nSec-WebSocket-Extensions: permessage-deflate\r\n",
                "13",
                "GET",
            )
            .as_bytes(),
        )
        .expect("valid");
    assert!(ok.deflate());
    assert_eq!(ok.protocol(), None);
    let names: Vec<&str> = ok.headers().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "Upgrade",
            "Connection",
            "Sec-WebSocket-Accept",
            "Sec-WebSocket-Extensions"
        ]
    );
    let mut chosen = ok;
    assert!(!chosen.select_protocol("other"));
    assert!(chosen.select_protocol("chat"));
    assert!(chosen
        .headers()
        .any(|(n, v)| n == "Sec-WebSocket-Protocol" && v == "chat"));
    assert!(chosen
        .response()
        .starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));

    let status = |head: String| server.answer(head.as_bytes()).unwrap_err().status();
    assert_eq!(status(request("", "12", "GET")), 426);
    assert_eq!(status(request("", "13", "POST")), 405);
    assert_eq!(status("GET / HTTP/1.1\r\nHost: x\r\n\r\n".into()), 426);
    assert_eq!(
        status(request("", "13", "GET").replace("\r\n\r\n", "\r\n")),
        400
    );
    let huge = format!("X-Big: {}\r\n", "a".repeat(64 << 10));
    assert_eq!(status(request(&huge, "13", "GET")), 431);
    assert_eq!(
        server
            .answer_request("GET", "/a b", [("host", &b"x"[..])])
            .unwrap_err()
            .status(),
        400
    );
    assert_eq!(
        server
            .answer_request("GET", "/", [("x-evil", &b"a\r\nb: c"[..])])
            .unwrap_err()
            .status(),
        400
    );
    stop(&server);
}

/// More than a worker takes in one read is refused before it reaches one.
#[test]
fn oversized_adoptions_are_refused() {
    let (server, _seen) = adopting_server(Backend::Epoll);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let _client = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (sock, _) = listener.accept().expect("accept");
    let leftover = vec![0u8; wsx::MAX_ADOPT_LEFTOVER + 1];
    match server.adopt(sock, b"GET / HTTP/1.1\r\n\r\n", &leftover) {
        Err(wsx::AdoptError::TooLarge { .. }) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
    stop(&server);
}

test_all!(plaintext_held_by_the_tls_session_is_read);

/// A TLS client that sends its request and a first frame in one record: the front reads only
/// the head, the frame stays in the session it hands over, and the worker reads it from there.
fn plaintext_held_by_the_tls_session_is_read(backend: Backend) {
    for mode in [Mode::Unanswered, Mode::Answered] {
        let (server, seen) = adopting_server(backend);
        let (tls, ca) = tls_pair();
        let addr = front(server.clone(), mode, Some(tls), 1);
        let config = ClientTls::with_ca_pem(&ca).expect("ca").config().clone();
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut session = rustls::ClientConnection::new(config, name).expect("session");
        let mut sock = TcpStream::connect(addr).expect("connect");
        sock.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut stream = rustls::Stream::new(&mut session, &mut sock);
        stream
            .write_all(&request_and_frame("/held", "held back"))
            .expect("write");
        let (head, rest) = read_head(|b| stream.read(b));
        let head = String::from_utf8(head).expect("ascii");
        assert!(head.starts_with("HTTP/1.1 101 "), "{mode:?}: {head}");
        let mut echo = rest;
        let mut chunk = [0u8; 256];
        while echo.len() < 11 {
            let n = stream.read(&mut chunk).expect("echo");
            assert!(n > 0, "{mode:?}: closed before the echo");
            echo.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(&echo[..11], b"\x81\x09held back", "{mode:?}");
        expect_seen(&seen, "upgrade /held");
        stop(&server);
    }
}

/// What the front learned travels with the answer to `on_upgrade`, typed.
#[test]
fn context_travels_from_the_front_to_on_upgrade() {
    struct Front;
    impl Handler for Front {
        type State = String;
        fn on_upgrade(&mut self, upgrade: &mut Upgrade<'_>) -> Result<String, Reject> {
            assert_eq!(upgrade.take_context::<u32>(), None, "not a u32");
            let user = upgrade
                .take_context::<String>()
                .ok_or_else(|| Reject::new(401))?;
            assert_eq!(upgrade.take_context::<String>(), None, "taken once");
            Ok(user)
        }
        fn on_open(&mut self, conn: &mut Conn<'_, String>) {
            let greeting = format!("hello {}", conn.state());
            let _ = conn.send_text(&greeting);
        }
    }
    let server = Server::builder()
        .no_listener()
        .pin_threads(false)
        .start(|_| Front)
        .expect("server");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    client.set_read_timeout(Some(WAIT)).expect("timeout");
    let (mut sock, _) = listener.accept().expect("accept");
    let request = request_and_frame("/", "x");
    let head_len = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let answer = server
        .answer(&request[..head_len])
        .expect("valid")
        .with_context(String::from("alice"));
    sock.write_all(answer.response()).expect("101");
    server.adopt_upgraded(sock, answer, &[]).expect("adopted");
    let (head, rest) = read_response(&mut client);
    assert!(head.starts_with("HTTP/1.1 101 "));
    let greeting = read_more(&mut client, rest, 13);
    assert_eq!(&greeting[..13], b"\x81\x0bhello alice");
    stop(&server);
}

/// The client's address the front learned travels with the socket: `peer_addr` is it in every
/// callback, `tcp_peer_addr` the socket's own peer.
#[test]
fn the_client_address_the_front_learned_is_the_peer_address() {
    struct Addrs(Sender<String>);
    impl Handler for Addrs {
        type State = ();
        fn on_upgrade(&mut self, upgrade: &mut Upgrade<'_>) -> Result<(), Reject> {
            let _ = self.0.send(format!(
                "upgrade {} {}",
                upgrade.peer_addr(),
                upgrade.tcp_peer_addr()
            ));
            Ok(())
        }
        fn on_message(&mut self, conn: &mut Conn<'_, ()>, _message: Message<'_>) {
            let _ = self.0.send(format!(
                "message {} {}",
                conn.peer_addr(),
                conn.tcp_peer_addr()
            ));
        }
    }
    let (tx, seen) = channel();
    let server = Server::builder()
        .no_listener()
        .pin_threads(false)
        .start(move |_| Addrs(tx.clone()))
        .expect("server");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let _client = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (sock, tcp_peer) = listener.accept().expect("accept");
    let real: std::net::SocketAddr = "203.0.113.7:4711".parse().unwrap();
    let request = request_and_frame("/", "x");
    let head_len = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    server
        .adopt(
            Adopted::tcp(sock).client_addr(real),
            &request[..head_len],
            &request[head_len..],
        )
        .expect("adopted");
    expect_seen(&seen, &format!("upgrade {real} {tcp_peer}"));
    expect_seen(&seen, &format!("message {real} {tcp_peer}"));
    stop(&server);
}

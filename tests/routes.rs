//! Routes (several handlers on one server by path, each with its own options) and plain HTTP
//! answers (`Builder::http`), on both backends.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{stop, SAMPLE_KEY};
use wsx::blocking::{self, Message as Received, WebSocket};
use wsx::client::{ClientError, ClientOptions};
use wsx::protocol::deflate::DeflateOptions;
use wsx::{
    Backend, CloseCode, Conn, Handler, HttpResponse, Message, Route, Server, ServerBuilder,
    ServerHandle,
};

const WAIT: Duration = Duration::from_secs(10);

/// Echoes with its name in front, so that a reply tells which route's handler answered.
struct Named(&'static str);

impl Handler for Named {
    type State = ();
    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        if let Message::Text(t) = message {
            let _ = conn.send_text(&format!("{}:{t}", self.0));
        }
    }
}

/// Counts messages per connection in a state of its own type.
#[derive(Default)]
struct Counter;

impl Handler for Counter {
    type State = u64;
    fn on_message(&mut self, conn: &mut Conn<'_, u64>, _message: Message<'_>) {
        *conn.state_mut() += 1;
        let n = *conn.state();
        let _ = conn.send_text(&format!("count:{n}"));
    }
}

fn start(backend: Backend, builder: ServerBuilder) -> ServerHandle {
    let server = builder
        .host("127.0.0.1")
        .port(0)
        .threads(2)
        .pin_threads(false)
        .backend(backend)
        .start_routes()
        .expect("routed server starts");
    backends::assert_runs_on(&server, backend);
    server
}

fn connect(server: &ServerHandle, path: &str, options: &ClientOptions) -> WebSocket {
    let url = format!("ws://{}{path}", server.local_addr());
    let ws = blocking::connect_with(&url, options).expect("upgrade");
    ws.set_read_timeout(Some(WAIT)).expect("timeout");
    ws
}

fn text(ws: &mut WebSocket) -> String {
    match ws.recv().expect("a reply") {
        Received::Text(t) => t,
        other => panic!("unexpected {other:?}"),
    }
}

fn options() -> ClientOptions {
    let mut o = ClientOptions::new();
    o.handshake_timeout = WAIT;
    o
}

fn status_of(result: Result<WebSocket, ClientError>) -> Option<u16> {
    match result {
        Err(ClientError::Handshake(wsx::HandshakeError::UnexpectedStatus(s))) => Some(s.status),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => None,
    }
}

test_all!(
    each_path_reaches_its_own_handler,
    each_route_has_its_own_options,
    a_route_has_its_own_idle_timeout,
    plain_http_gets_the_given_answer
);

/// The case Node ws's README answers with `noServer` and one `upgrade` listener: `/foo` and
/// `/bar` on one port, 20 connections to each at once, every one served by its own path's
/// handler (with its own state type); any other path gets 404.
fn each_path_reaches_its_own_handler(backend: Backend) {
    let server = start(
        backend,
        Server::builder()
            .route("/foo", Route::new(|_| Named("foo")))
            .route("/bar", Route::new(|_| Counter)),
    );
    let mut foos: Vec<WebSocket> = (0..20)
        .map(|_| connect(&server, "/foo", &options()))
        .collect();
    let mut bars: Vec<WebSocket> = (0..20)
        .map(|_| connect(&server, "/bar?x=1", &options()))
        .collect();
    for (i, ws) in foos.iter_mut().enumerate() {
        ws.send_text(&i.to_string()).expect("send");
    }
    for ws in &mut bars {
        ws.send_text("a").expect("send");
        ws.send_text("b").expect("send");
    }
    for (i, ws) in foos.iter_mut().enumerate() {
        assert_eq!(text(ws), format!("foo:{i}"));
    }
    for ws in &mut bars {
        assert_eq!(text(ws), "count:1");
        assert_eq!(text(ws), "count:2");
    }
    for path in ["/", "/foo/", "/baz", "/FOO"] {
        let url = format!("ws://{}{path}", server.local_addr());
        assert_eq!(
            status_of(blocking::connect_with(&url, &options())),
            Some(404),
            "{path}"
        );
    }
    // The refused ones linger until their clients go; the 40 stay.
    assert!(
        common::wait_until(WAIT, || server.stats().connections == 40),
        "{} connections",
        server.stats().connections
    );
    stop(&server);
}

/// Max payload and permessage-deflate per route, over the server's own settings.
fn each_route_has_its_own_options(backend: Backend) {
    let server = start(
        backend,
        Server::builder()
            .deflate(DeflateOptions::default())
            .route("/small", Route::new(|_| Named("small")).max_payload(16))
            .route("/plain", Route::new(|_| Named("plain")).no_deflate())
            .route("/default", Route::new(|_| Named("default"))),
    );
    let offer = options().deflate(DeflateOptions::default());
    let agreed = |ws: &WebSocket| {
        ws.response()
            .extensions()
            .iter()
            .any(|e| e.name == "permessage-deflate")
    };
    let mut small = connect(&server, "/small", &offer);
    assert!(agreed(&small), "the server's deflate applies on /small");
    small.send_text(&"x".repeat(16)).expect("send");
    assert_eq!(text(&mut small), format!("small:{}", "x".repeat(16)));
    small.send_text(&"x".repeat(17)).expect("send");
    match small.recv() {
        Ok(Received::Close(code, _)) => assert_eq!(code, CloseCode::TOO_BIG),
        other => panic!("expected a 1009 close, got {other:?}"),
    }
    let plain = connect(&server, "/plain", &offer);
    assert!(!agreed(&plain), "/plain turns deflate off");
    let mut default = connect(&server, "/default", &offer);
    assert!(agreed(&default));
    let big = "y".repeat(100_000);
    default.send_text(&big).expect("send");
    assert_eq!(text(&mut default), format!("default:{big}"));
    stop(&server);
}

/// A route's idle timeout closes its connections; another route's (the server's, long) keeps
/// its own open meanwhile.
fn a_route_has_its_own_idle_timeout(backend: Backend) {
    let server = start(
        backend,
        Server::builder()
            .auto_ping(false)
            .route(
                "/brief",
                Route::new(|_| Named("brief")).idle_timeout(Some(Duration::from_millis(200))),
            )
            .route("/long", Route::new(|_| Named("long"))),
    );
    let mut brief = connect(&server, "/brief", &options());
    let mut long = connect(&server, "/long", &options());
    // Silent on both: the brief one ends (EOF, no close frame: the idle timeout drops it).
    match brief.recv() {
        Err(ClientError::Closed) | Err(ClientError::Io(_)) => {}
        other => panic!("expected the idle connection to end, got {other:?}"),
    }
    long.send_text("still here").expect("send");
    assert_eq!(text(&mut long), "long:still here");
    stop(&server);
}

/// `Builder::http`: health checks and pages on the WebSocket port; `None` keeps the 426; a
/// panicking answer gets 500 and harms nothing else; upgrades are served as before.
fn plain_http_gets_the_given_answer(backend: Backend) {
    let server = start(
        backend,
        Server::builder()
            .http(|request| match request.path() {
                "/health" => Some(HttpResponse::new(200).body("ok\n")),
                "/page" => Some(HttpResponse::html("<p>hi</p>").header("X-Page", "1")),
                "/panic" => panic!("the answer failed"),
                _ => None,
            })
            .route("/ws", Route::new(|_| Named("ws"))),
    );
    let addr = server.local_addr();
    let get = |request: &str| -> String {
        let mut sock = TcpStream::connect(addr).expect("connect");
        sock.set_read_timeout(Some(WAIT)).expect("timeout");
        sock.write_all(request.as_bytes()).expect("write");
        let mut response = String::new();
        // The answer closes the connection.
        sock.read_to_string(&mut response).expect("read to the end");
        response
    };
    let health = get("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
    assert!(
        health.ends_with("Content-Length: 3\r\n\r\nok\n"),
        "{health}"
    );
    let page = get("GET /page HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        page.contains("Content-Type: text/html; charset=utf-8\r\n"),
        "{page}"
    );
    assert!(
        page.contains("X-Page: 1\r\n") && page.ends_with("<p>hi</p>"),
        "{page}"
    );
    let head = get("HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.ends_with("Content-Length: 3\r\n\r\n"), "{head}");
    let other = get("GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(other.starts_with("HTTP/1.1 426 "), "{other}");
    let failed = get("GET /panic HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(failed.starts_with("HTTP/1.1 500 "), "{failed}");
    let upgrade = get(&format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 99\r\n\r\n"
    ));
    assert!(
        upgrade.starts_with("HTTP/1.1 426 "),
        "a bad upgrade is no plain request"
    );
    let mut ws = connect(&server, "/ws", &options());
    ws.send_text("after").expect("send");
    assert_eq!(text(&mut ws), "ws:after");
    stop(&server);
}

/// Without `Builder::http`, a plain request keeps its 426.
#[test]
fn plain_http_without_an_answer_gets_426() {
    let server = Server::builder()
        .port(0)
        .pin_threads(false)
        .start(|_| Named("x"))
        .expect("server");
    let mut sock = TcpStream::connect(server.local_addr()).expect("connect");
    sock.set_read_timeout(Some(WAIT)).expect("timeout");
    sock.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut response = String::new();
    sock.read_to_string(&mut response).expect("read");
    assert!(response.starts_with("HTTP/1.1 426 "), "{response}");
    stop(&server);
}

/// Routes and the calls that cannot go with them are refused at start.
#[test]
fn bad_route_sets_are_refused() {
    let kind = |r: std::io::Result<ServerHandle>| r.map(|_| ()).unwrap_err().kind();
    let invalid = std::io::ErrorKind::InvalidInput;
    assert_eq!(kind(Server::builder().port(0).start_routes()), invalid);
    assert_eq!(
        kind(
            Server::builder()
                .port(0)
                .route("/a", Route::new(|_| Named("a")))
                .route("/a", Route::new(|_| Named("b")))
                .start_routes()
        ),
        invalid
    );
    assert_eq!(
        kind(
            Server::builder()
                .port(0)
                .path("/a")
                .route("/a", Route::new(|_| Named("a")))
                .start_routes()
        ),
        invalid
    );
    assert_eq!(
        kind(
            Server::builder()
                .port(0)
                .route("/a", Route::new(|_| Named("a")))
                .start(|_| Named("b"))
        ),
        invalid
    );
}

/// Adoption honours routes: `answer` refuses a path no route serves, and an adopted
/// connection reaches its path's handler.
#[test]
fn adoption_goes_through_the_routes() {
    let server = Server::builder()
        .no_listener()
        .pin_threads(false)
        .route("/foo", Route::new(|_| Named("foo")))
        .route("/bar", Route::new(|_| Named("bar")))
        .start_routes()
        .expect("server");
    let request = |path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
    };
    assert_eq!(
        server
            .answer(request("/baz").as_bytes())
            .unwrap_err()
            .status(),
        404
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    client.set_read_timeout(Some(WAIT)).expect("timeout");
    let (sock, _) = listener.accept().expect("accept");
    server
        .adopt(sock, request("/bar").as_bytes(), &[])
        .expect("adopt");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        client.read_exact(&mut byte).expect("101");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101 "));
    // A masked "hi".
    client
        .write_all(&[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2])
        .expect("frame");
    let mut reply = [0u8; 8];
    client.read_exact(&mut reply).expect("reply");
    assert_eq!(&reply, b"\x81\x06bar:hi");
    stop(&server);
}

//! The engine client: client connections opened from a worker with `ServerHandle::connect`,
//! driven by the same `Handler` as accepted ones.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;
#[path = "support/proxies.rs"]
mod proxies;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::{start_server, stop, Echo, TIMEOUT};
use wsx::client::proxy::Proxy;
use wsx::client::{ClientError, ClientOptions, Url};
use wsx::{
    Backend, Client, CloseCode, CloseInfo, Conn, Handler, HandshakeError, InitialState, Message,
    Reject, Role, Server, ServerHandle, Upgrade,
};

/// What the client handler saw, by tag.
#[derive(Debug)]
enum Seen {
    Open(u64, Role, Option<String>),
    Text(u64, String),
    Closed(u64, CloseInfo),
    Failed(u64, String, ClientError),
}

/// Sends `hello <tag>` on open (or nothing for tag 0) and reports everything.
struct Probe(Sender<Seen>);

impl Handler for Probe {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        let _ = self.0.send(Seen::Open(
            conn.tag(),
            conn.role(),
            conn.protocol().map(str::to_owned),
        ));
        if conn.tag() != 0 {
            let _ = conn.send_text(&format!("hello {}", conn.tag()));
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        if let Message::Text(t) = message {
            let _ = self.0.send(Seen::Text(conn.tag(), t.to_owned()));
        }
    }

    fn on_close(&mut self, conn: &mut Conn<'_, ()>, close: &CloseInfo) {
        let _ = self.0.send(Seen::Closed(conn.tag(), close.clone()));
    }

    fn on_connect_error(&mut self, url: &Url, tag: u64, error: &ClientError) {
        let _ = self
            .0
            .send(Seen::Failed(tag, url.to_string(), clone_error(error)));
    }
}

/// `ClientError` holds an `io::Error` and is not `Clone`: keep what the tests compare.
fn clone_error(e: &ClientError) -> ClientError {
    match e {
        ClientError::Handshake(h) => ClientError::Handshake(h.clone()),
        ClientError::Io(io) => ClientError::Io(std::io::Error::new(io.kind(), io.to_string())),
        ClientError::Timeout => ClientError::Timeout,
        ClientError::Closed => ClientError::Closed,
        ClientError::TooManyRedirects(n) => ClientError::TooManyRedirects(*n),
        other => ClientError::Io(std::io::Error::other(other.to_string())),
    }
}

fn client_engine(backend: Backend, threads: usize) -> (ServerHandle, Receiver<Seen>) {
    let (tx, rx) = channel();
    let engine = Client::builder()
        .threads(threads)
        .pin_threads(false)
        .backend(backend)
        .start(move |_| Probe(tx.clone()))
        .expect("client engine starts");
    backends::assert_runs_on(&engine, backend);
    (engine, rx)
}

fn direct() -> ClientOptions {
    ClientOptions::new().no_proxy()
}

test_all!(a_thousand_client_connections_from_one_worker);
fn a_thousand_client_connections_from_one_worker(backend: Backend) {
    common::raise_fd_limit();
    let server = start_server(backend, Server::builder().threads(2), |_| Echo);
    let (engine, rx) = client_engine(backend, 1);
    let url = format!("ws://{}/", server.local_addr());
    const N: u64 = 1000;
    for tag in 1..=N {
        engine.connect(&url, direct(), tag).unwrap();
    }
    let mut echoed = vec![false; N as usize + 1];
    let mut opened = 0;
    let mut got = 0;
    while got < N {
        match rx
            .recv_timeout(Duration::from_secs(20))
            .expect("every connection echoes")
        {
            Seen::Open(_, role, _) => {
                assert_eq!(role, Role::Client);
                opened += 1;
            }
            Seen::Text(tag, text) => {
                assert_eq!(text, format!("hello {tag}"));
                assert!(!echoed[tag as usize], "echo twice on {tag}");
                echoed[tag as usize] = true;
                got += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(opened, N);
    // Counters are published once per worker loop turn.
    let counted = common::wait_until(TIMEOUT, || {
        let (e, s) = (engine.stats(), server.stats());
        e.connections == N && e.messages_in == N && s.messages_in == N
    });
    assert!(counted, "{:?} {:?}", engine.stats(), server.stats());
    // Graceful shutdown of the client engine closes every connection with 1001.
    engine.shutdown(Duration::from_secs(5));
    common::wait_for_workers(&engine, Duration::from_secs(10));
    let mut closed = 0;
    // The workers have ended: every event they had is in the channel.
    while let Ok(seen) = rx.try_recv() {
        if let Seen::Closed(_, info) = seen {
            assert_eq!(
                info.code,
                CloseCode::GOING_AWAY,
                "the server echoes our 1001"
            );
            assert!(info.clean);
            closed += 1;
        }
    }
    assert_eq!(closed, N);
    stop(&server);
}

/// Closes every connection with 4001 "bye" after the first message.
struct CloseAfterOne;

impl Handler for CloseAfterOne {
    type State = ();

    fn on_upgrade(&mut self, upgrade: &mut Upgrade<'_>) -> Result<(), Reject> {
        if upgrade.path() == "/forbidden" {
            return Err(Reject::new(403).body("go away"));
        }
        upgrade.select_protocol("chat");
        Ok(())
    }

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, _message: Message<'_>) {
        let _ = conn.close(CloseCode(4001), "bye");
    }
}

test_all!(server_initiated_close_and_subprotocol);
fn server_initiated_close_and_subprotocol(backend: Backend) {
    let server = start_server(backend, Server::builder().threads(1), |_| CloseAfterOne);
    let (engine, rx) = client_engine(backend, 1);
    let url = format!("ws://{}/", server.local_addr());
    engine
        .connect(&url, direct().protocol("other").protocol("chat"), 7)
        .unwrap();
    match rx.recv_timeout(TIMEOUT).unwrap() {
        Seen::Open(7, Role::Client, protocol) => assert_eq!(protocol.as_deref(), Some("chat")),
        other => panic!("unexpected {other:?}"),
    }
    match rx.recv_timeout(TIMEOUT).unwrap() {
        Seen::Closed(7, info) => {
            assert_eq!(
                (info.code, info.reason.as_str(), info.clean),
                (CloseCode(4001), "bye", true)
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    stop(&engine);
    stop(&server);
}

test_all!(failures_before_open_reach_on_connect_error);
fn failures_before_open_reach_on_connect_error(backend: Backend) {
    let server = start_server(backend, Server::builder().threads(1), |_| CloseAfterOne);
    let (engine, rx) = client_engine(backend, 1);
    // Refused by the server's handler: the status and the body's first bytes.
    engine
        .connect(
            &format!("ws://{}/forbidden", server.local_addr()),
            direct(),
            1,
        )
        .unwrap();
    match rx.recv_timeout(TIMEOUT).unwrap() {
        Seen::Failed(1, url, ClientError::Handshake(HandshakeError::UnexpectedStatus(s))) => {
            assert!(url.ends_with("/forbidden"));
            assert_eq!(s.status, 403);
            assert_eq!(s.body, b"go away");
        }
        other => panic!("unexpected {other:?}"),
    }
    // Nobody listens: connection refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    engine
        .connect(&format!("ws://127.0.0.1:{port}/"), direct(), 2)
        .unwrap();
    match rx.recv_timeout(TIMEOUT).unwrap() {
        Seen::Failed(2, _, ClientError::Io(e)) => {
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused)
        }
        other => panic!("unexpected {other:?}"),
    }
    // A server that accepts and never answers: the handshake timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let options = direct().handshake_timeout(Duration::from_millis(300));
    engine
        .connect(
            &format!("ws://{}/", silent.local_addr().unwrap()),
            options,
            3,
        )
        .unwrap();
    match rx.recv_timeout(TIMEOUT).unwrap() {
        Seen::Failed(3, _, ClientError::Timeout) => {}
        other => panic!("unexpected {other:?}"),
    }
    // Invalid URLs fail at once, on the calling thread.
    assert!(matches!(
        engine.connect("http:/x", direct(), 4),
        Err(ClientError::Url(_))
    ));
    // For the engine's TLS work: `wss://` used to fail here with `TlsUnsupported`, which is
    // gone; what `engine.connect("wss://127.0.0.1/", ..)` should report (at once, or as
    // `Seen::Failed` once it connects) belongs with the engine's wss:// tests.
    stop(&engine);
    stop(&server);
}

/// A one-shot HTTP server answering every request with a redirect to `location`.
fn redirector(location: String, count: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for _ in 0..count {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let location = location.replace("{self}", &addr.to_string());
            let _ = write!(
                s,
                "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
            );
        }
    });
    addr.to_string()
}

test_all!(redirects_are_followed_within_the_limit);
fn redirects_are_followed_within_the_limit(backend: Backend) {
    let server = start_server(backend, Server::builder().threads(1), |_| Echo);
    let (engine, rx) = client_engine(backend, 1);
    let hop = redirector(format!("ws://{}/echo", server.local_addr()), 1);
    engine
        .connect(
            &format!("ws://{hop}/start"),
            direct().follow_redirects(2),
            9,
        )
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(rx.recv_timeout(TIMEOUT).expect("open, then the echo"));
    }
    assert!(
        matches!(seen[0], Seen::Open(9, Role::Client, None)),
        "{seen:?}"
    );
    assert!(
        matches!(&seen[1], Seen::Text(9, t) if t == "hello 9"),
        "{seen:?}"
    );
    // A redirect loop ends at the limit.
    let looping = redirector("ws://{self}/again".to_owned(), 10);
    engine
        .connect(
            &format!("ws://{looping}/"),
            direct().follow_redirects(3),
            10,
        )
        .unwrap();
    match rx.recv_timeout(TIMEOUT).unwrap() {
        Seen::Failed(10, _, ClientError::TooManyRedirects(3)) => {}
        other => panic!("unexpected {other:?}"),
    }
    stop(&engine);
    stop(&server);
}

// Host names are resolved off the worker (`engine/resolve.rs`): the resolver hook in the
// options stands in for `getaddrinfo`, so that a test decides when a name answers.

/// A gate a resolver hook waits at until the test opens it (or 30 s pass, so that a failed test
/// still lets its threads end); it tells the test whenever a hook arrives at it.
#[derive(Clone)]
struct Gate {
    open: Arc<(Mutex<bool>, Condvar)>,
    arrived: Sender<String>,
}

impl Gate {
    fn new() -> (Gate, Receiver<String>) {
        let (arrived, rx) = channel();
        let gate = Gate {
            open: Arc::new((Mutex::new(false), Condvar::new())),
            arrived,
        };
        (gate, rx)
    }

    fn wait(&self, name: &str) {
        let _ = self.arrived.send(name.to_owned());
        let (open, cv) = &*self.open;
        let guard = open.lock().unwrap();
        let _ = cv
            .wait_timeout_while(guard, Duration::from_secs(30), |open| !*open)
            .unwrap();
    }

    fn open(&self) {
        let (open, cv) = &*self.open;
        *open.lock().unwrap() = true;
        cv.notify_all();
    }
}

/// Options whose resolver maps `slow.test` (after the gate opens) and `fast.test` (at once) to
/// `to`, fails `missing.test`, and gives no address for `empty.test`.
fn resolving(to: SocketAddr, gate: &Gate) -> ClientOptions {
    let gate = gate.clone();
    let mut options = direct();
    options.dangerous_resolver = Some(Arc::new(move |name: &str| {
        let host = name.rsplit_once(':').map_or(name, |(h, _)| h);
        match host {
            "slow.test" => {
                gate.wait(host);
                Ok(vec![to])
            }
            "fast.test" => Ok(vec![to]),
            "empty.test" => Ok(Vec::new()),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no such host {host}"),
            )),
        }
    }));
    options
}

test_all!(a_slow_name_does_not_stall_the_other_connections_of_its_worker);
fn a_slow_name_does_not_stall_the_other_connections_of_its_worker(backend: Backend) {
    let server = start_server(backend, Server::builder().threads(1), |_| Echo);
    let (engine, rx) = client_engine(backend, 1);
    let (gate, arrived) = Gate::new();
    let port = server.local_addr().port();
    let options = resolving(server.local_addr(), &gate);
    engine
        .connect(&format!("ws://slow.test:{port}/"), options.clone(), 1)
        .unwrap();
    assert_eq!(
        arrived
            .recv_timeout(TIMEOUT)
            .expect("the slow name is being resolved"),
        "slow.test"
    );
    // Same worker (one), while the slow name is still unanswered: a name and an IP literal.
    engine
        .connect(&format!("ws://fast.test:{port}/"), options.clone(), 2)
        .unwrap();
    engine
        .connect(&format!("ws://{}/", server.local_addr()), options, 3)
        .unwrap();
    let mut echoed = Vec::new();
    while echoed.len() < 2 {
        match rx
            .recv_timeout(TIMEOUT)
            .expect("the other connections echo")
        {
            Seen::Open(tag, Role::Client, _) => assert_ne!(tag, 1, "the slow one opened early"),
            Seen::Text(tag, text) => {
                assert_eq!(text, format!("hello {tag}"));
                echoed.push(tag);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    echoed.sort_unstable();
    assert_eq!(echoed, [2, 3]);
    // Once its name answers, the slow connection opens too.
    gate.open();
    match rx.recv_timeout(TIMEOUT).unwrap() {
        Seen::Open(1, Role::Client, _) => {}
        other => panic!("unexpected {other:?}"),
    }
    match rx.recv_timeout(TIMEOUT).unwrap() {
        Seen::Text(1, text) => assert_eq!(text, "hello 1"),
        other => panic!("unexpected {other:?}"),
    }
    stop(&engine);
    stop(&server);
}

test_all!(a_name_that_does_not_resolve_reports_the_error);
fn a_name_that_does_not_resolve_reports_the_error(backend: Backend) {
    let (engine, rx) = client_engine(backend, 1);
    let (gate, _arrived) = Gate::new();
    let unused = SocketAddr::from(([127, 0, 0, 1], 9));
    let options = resolving(unused, &gate);
    engine
        .connect("ws://missing.test:80/", options.clone(), 1)
        .unwrap();
    match rx.recv_timeout(TIMEOUT).unwrap() {
        Seen::Failed(1, url, ClientError::Io(e)) => {
            assert_eq!(url, "ws://missing.test/");
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
            assert!(e.to_string().contains("missing.test"), "{e}");
        }
        other => panic!("unexpected {other:?}"),
    }
    engine.connect("ws://empty.test:80/", options, 2).unwrap();
    match rx.recv_timeout(TIMEOUT).unwrap() {
        Seen::Failed(2, _, ClientError::Io(e)) => {
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
            assert!(e.to_string().contains("resolves to no address"), "{e}");
        }
        other => panic!("unexpected {other:?}"),
    }
    // The system resolver too: `.invalid` never resolves (RFC 6761).
    engine
        .connect("ws://no-such-host.invalid/", direct(), 3)
        .unwrap();
    match rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the system resolver answers")
    {
        Seen::Failed(3, _, ClientError::Io(_)) => {}
        other => panic!("unexpected {other:?}"),
    }
    stop(&engine);
}

test_all!(a_stuck_name_times_out_and_shutdown_does_not_wait_for_it);
fn a_stuck_name_times_out_and_shutdown_does_not_wait_for_it(backend: Backend) {
    let (engine, rx) = client_engine(backend, 1);
    let (gate, arrived) = Gate::new();
    let unused = SocketAddr::from(([127, 0, 0, 1], 9));
    let options = resolving(unused, &gate);
    // Past the handshake timeout, the connection fails with a timeout, the name still stuck.
    engine
        .connect(
            "ws://slow.test/",
            options
                .clone()
                .handshake_timeout(Duration::from_millis(300)),
            1,
        )
        .unwrap();
    match rx.recv_timeout(TIMEOUT).unwrap() {
        Seen::Failed(1, _, ClientError::Timeout) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(arrived.recv_timeout(TIMEOUT).unwrap(), "slow.test");
    // Another stuck name, with a long timeout: the shutdown ends the worker without it.
    engine
        .connect(
            "ws://slow.test/",
            options.handshake_timeout(Duration::from_secs(600)),
            2,
        )
        .unwrap();
    assert_eq!(arrived.recv_timeout(TIMEOUT).unwrap(), "slow.test");
    engine.shutdown(Duration::from_secs(5));
    common::wait_for_workers(&engine, TIMEOUT);
    match rx.try_recv() {
        Ok(Seen::Failed(2, _, ClientError::Closed)) => {}
        other => panic!("unexpected {other:?}"),
    }
    // Neither answer reaches the handler once the gate opens.
    gate.open();
    assert!(rx.try_recv().is_err());
}

test_all!(a_proxy_given_by_name_is_resolved_off_the_worker_too);
fn a_proxy_given_by_name_is_resolved_off_the_worker_too(backend: Backend) {
    let server = start_server(backend, Server::builder().threads(1), |_| Echo);
    let (engine, rx) = client_engine(backend, 1);
    let (gate, _arrived) = Gate::new();
    let proxy = proxies::http_connect_proxy(proxies::ProxyConfig::default());
    let mut options = resolving(proxy, &gate).proxy(Proxy::Http {
        host: "fast.test".into(),
        port: proxy.port(),
        auth: None,
    });
    engine
        .connect(
            &format!("ws://{}/", server.local_addr()),
            options.clone(),
            1,
        )
        .unwrap();
    match rx.recv_timeout(TIMEOUT).unwrap() {
        Seen::Open(1, Role::Client, _) => {}
        other => panic!("unexpected {other:?}"),
    }
    match rx.recv_timeout(TIMEOUT).unwrap() {
        Seen::Text(1, text) => assert_eq!(text, "hello 1"),
        other => panic!("unexpected {other:?}"),
    }
    // A proxy name that does not resolve fails like a server's.
    options.proxy = wsx::client::ProxyChoice::Use(Proxy::Http {
        host: "missing.test".into(),
        port: proxy.port(),
        auth: None,
    });
    engine
        .connect(&format!("ws://{}/", server.local_addr()), options, 2)
        .unwrap();
    match rx.recv_timeout(TIMEOUT).unwrap() {
        Seen::Failed(2, _, ClientError::Io(e)) => {
            assert!(e.to_string().contains("missing.test"), "{e}")
        }
        other => panic!("unexpected {other:?}"),
    }
    stop(&engine);
    stop(&server);
}

// A state type without a default: built by `on_upgrade` on the server and by `client_state`
// on the client engine (`InitialState` declared empty).

/// A server connection's state: the room named by the request path.
struct Room(String);
impl InitialState for Room {}

/// Answers every message with `<room>: <message>`.
struct Rooms;

impl Handler for Rooms {
    type State = Room;

    fn on_upgrade(&mut self, upgrade: &mut Upgrade<'_>) -> Result<Room, Reject> {
        let room = upgrade
            .path()
            .strip_prefix("/room/")
            .ok_or(Reject::new(404))?;
        Ok(Room(room.to_owned()))
    }

    fn on_message(&mut self, conn: &mut Conn<'_, Room>, message: Message<'_>) {
        if let Message::Text(t) = message {
            let reply = format!("{}: {t}", conn.state().0);
            let _ = conn.send_text(&reply);
        }
    }
}

/// A client connection's state: its name, made from the tag; tag 0 gets none.
struct Named(String);
impl InitialState for Named {}

struct NamedClient(Sender<Seen>);

impl Handler for NamedClient {
    type State = Named;

    fn client_state(&mut self, _url: &Url, tag: u64) -> Option<Named> {
        (tag != 0).then(|| Named(format!("client {tag}")))
    }

    fn on_open(&mut self, conn: &mut Conn<'_, Named>) {
        let text = conn.state().0.clone();
        let _ = conn.send_text(&text);
    }

    fn on_message(&mut self, conn: &mut Conn<'_, Named>, message: Message<'_>) {
        if let Message::Text(t) = message {
            let _ = self.0.send(Seen::Text(conn.tag(), t.to_owned()));
        }
    }

    fn on_connect_error(&mut self, url: &Url, tag: u64, error: &ClientError) {
        let _ = self
            .0
            .send(Seen::Failed(tag, url.to_string(), clone_error(error)));
    }
}

/// Keeps the default `on_upgrade`, which has no state to accept with.
struct NoUpgrade;

impl Handler for NoUpgrade {
    type State = Room;
}

test_all!(states_without_a_default_are_built_by_on_upgrade_and_client_state);
fn states_without_a_default_are_built_by_on_upgrade_and_client_state(backend: Backend) {
    let server = start_server(backend, Server::builder().threads(1), |_| Rooms);
    let (tx, rx) = channel();
    let engine = Client::builder()
        .threads(1)
        .pin_threads(false)
        .backend(backend)
        .start(move |_| NamedClient(tx.clone()))
        .expect("client engine starts");
    backends::assert_runs_on(&engine, backend);
    let url = format!("ws://{}/room/lobby", server.local_addr());
    engine.connect(&url, direct(), 7).unwrap();
    match rx.recv_timeout(TIMEOUT).unwrap() {
        Seen::Text(7, text) => assert_eq!(text, "lobby: client 7"),
        other => panic!("unexpected {other:?}"),
    }
    // No state from `client_state`: the connection fails before it opens.
    engine.connect(&url, direct(), 0).unwrap();
    match rx.recv_timeout(TIMEOUT).unwrap() {
        Seen::Failed(0, _, e) => assert!(e.to_string().contains("no state"), "{e}"),
        other => panic!("unexpected {other:?}"),
    }
    // The server refuses what its `on_upgrade` refuses.
    engine
        .connect(
            &format!("ws://{}/elsewhere", server.local_addr()),
            direct(),
            8,
        )
        .unwrap();
    match rx.recv_timeout(TIMEOUT).unwrap() {
        Seen::Failed(8, _, ClientError::Handshake(HandshakeError::UnexpectedStatus(s))) => {
            assert_eq!(s.status, 404)
        }
        other => panic!("unexpected {other:?}"),
    }
    // The default `on_upgrade` with a state that has no initial value refuses with 500.
    let plain = start_server(backend, Server::builder().threads(1), |_| NoUpgrade);
    engine
        .connect(&format!("ws://{}/", plain.local_addr()), direct(), 9)
        .unwrap();
    match rx.recv_timeout(TIMEOUT).unwrap() {
        Seen::Failed(9, _, ClientError::Handshake(HandshakeError::UnexpectedStatus(s))) => {
            assert_eq!(s.status, 500)
        }
        other => panic!("unexpected {other:?}"),
    }
    stop(&engine);
    stop(&plain);
    stop(&server);
}

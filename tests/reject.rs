//! Refused upgrades: `on_upgrade` returning a `Reject` (status, body, headers), and the
//! engine's own answers — 426 for a plain HTTP request, 404 for a path other than `path(..)`,
//! 400 for a malformed key, 431 for an oversize head. Each answer is complete and followed by
//! EOF, and no refused request reaches `on_open`.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;

use common::{
    http_exchange, start_server, stop, upgrade_head, Client, ClientOptions, Echo, Ev, Shared,
    TIMEOUT,
};
use wsx::protocol::handshake::HandshakeError;
use wsx::{Backend, Conn, Handler, Reject, Server, ServerHandle, Upgrade};

/// Refuses `/private` with 403, counts the connections it opens.
struct Gate {
    opened: Shared<()>,
}

impl Handler for Gate {
    type State = ();

    fn on_upgrade(&mut self, upgrade: &mut Upgrade<'_>) -> Result<(), Reject> {
        if upgrade.path() == "/private" {
            return Err(Reject::new(403)
                .body("members only")
                .header("X-Reason", "test"));
        }
        Ok(())
    }

    fn on_open(&mut self, _conn: &mut Conn<'_, ()>) {
        self.opened.push(());
    }
}

fn gate(backend: Backend) -> (ServerHandle, Shared<()>) {
    let opened = Shared::default();
    let o = opened.clone();
    (
        start_server(backend, Server::builder().threads(1), move |_| Gate {
            opened: o.clone(),
        }),
        opened,
    )
}

/// Waits until every refused connection is gone from the worker, so that whatever callbacks
/// they could cause have happened. A late `on_open` for a refused connection could only come
/// while the worker still holds it. `client` is the one open connection: its pong means the
/// worker has finished the turn that opened it, and the counters published after that turn
/// count only this client once the refused ones are gone for good.
fn fence(server: &ServerHandle, client: &mut Client) {
    client.ping(b"fence");
    assert_eq!(client.recv(), Some(Ev::Pong(b"fence".to_vec())));
    assert!(
        common::wait_until(TIMEOUT, || server.stats().connections == 1),
        "{:?}",
        server.stats()
    );
}

/// Opens one accepted connection after refused ones, fences, and checks that it is the only
/// one `on_open` saw.
fn assert_only_the_probe_opened(server: &ServerHandle, opened: &Shared<()>) {
    let mut probe = Client::connect(server.local_addr());
    assert!(opened.wait_len(1), "the probe opened");
    fence(server, &mut probe);
    assert_eq!(opened.len(), 1, "no refused connection opened");
}

/// The status line, the head and the body of an HTTP answer.
fn split(answer: &str) -> (&str, &str, &str) {
    let (head, body) = answer.split_once("\r\n\r\n").expect("a complete head");
    let status = head.lines().next().unwrap_or_default();
    (status, head, body)
}

test_all!(on_upgrade_rejects_with_status_body_and_headers);
fn on_upgrade_rejects_with_status_body_and_headers(backend: Backend) {
    let (server, opened) = gate(backend);
    let answer = http_exchange(server.local_addr(), &upgrade_head("/private", &[]));
    let (status, head, body) = split(&answer);
    assert_eq!(status, "HTTP/1.1 403 Forbidden");
    assert!(head.contains("\r\nX-Reason: test"), "{head}");
    assert!(head.contains("\r\nContent-Length: 12"), "{head}");
    assert_eq!(body, "members only");

    // The same through the client: the handshake error carries the status and the body.
    let options = ClientOptions {
        target: "/private",
        ..ClientOptions::default()
    };
    match Client::try_connect(server.local_addr(), &options) {
        Err(HandshakeError::UnexpectedStatus(s)) => {
            assert_eq!(s.status, 403);
            assert_eq!(s.body, b"members only");
        }
        other => panic!("expected a 403, got {other:?}"),
    }

    // Other paths are accepted.
    let mut client = Client::connect(server.local_addr());
    assert!(opened.wait_len(1));
    fence(&server, &mut client);
    assert_eq!(opened.len(), 1, "only the accepted connection opened");
    stop(&server);
}

test_all!(a_plain_http_request_gets_426);
fn a_plain_http_request_gets_426(backend: Backend) {
    let (server, opened) = gate(backend);
    let answer = http_exchange(
        server.local_addr(),
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    );
    let (status, head, _) = split(&answer);
    assert!(status.starts_with("HTTP/1.1 426 "), "{answer}");
    assert!(
        head.to_ascii_lowercase().contains("\r\nupgrade: websocket"),
        "{head}"
    );
    assert_only_the_probe_opened(&server, &opened);
    stop(&server);
}

test_all!(a_wrong_path_gets_404);
fn a_wrong_path_gets_404(backend: Backend) {
    let server = start_server(backend, Server::builder().threads(1).path("/ws"), |_| Echo);
    let answer = http_exchange(server.local_addr(), &upgrade_head("/other", &[]));
    assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
    let answer = http_exchange(server.local_addr(), &upgrade_head("/ws/deeper", &[]));
    assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
    // The path itself is served, with or without a query.
    for target in ["/ws", "/ws?room=1"] {
        let mut client = Client::connect_with(
            server.local_addr(),
            &ClientOptions {
                target,
                ..ClientOptions::default()
            },
        );
        client.send_text(target);
        assert_eq!(client.recv(), Some(Ev::Text(target.into())));
    }
    stop(&server);
}

test_all!(a_malformed_key_gets_400);
fn a_malformed_key_gets_400(backend: Backend) {
    let (server, opened) = gate(backend);
    for key in [
        "short",
        "dGhlIHNhbXBsZSBub25jZQ",
        "!!!!!!!!!!!!!!!!!!!!!!==",
    ] {
        let head = format!(
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        let answer = http_exchange(server.local_addr(), head.as_bytes());
        assert!(answer.starts_with("HTTP/1.1 400 "), "{key}: {answer}");
    }
    assert_only_the_probe_opened(&server, &opened);
    stop(&server);
}

test_all!(an_oversize_head_gets_431);
fn an_oversize_head_gets_431(backend: Backend) {
    let (server, opened) = gate(backend);
    // Default limit: 8 KiB of head. One long header, then many short ones.
    let long = format!("X-Pad: {}", "a".repeat(9000));
    let answer = http_exchange(server.local_addr(), &upgrade_head("/", &[&long]));
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    let many: Vec<String> = (0..100).map(|i| format!("X-H{i}: v")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let answer = http_exchange(server.local_addr(), &upgrade_head("/", &many));
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    assert_only_the_probe_opened(&server, &opened);
    assert!(
        common::wait_until(TIMEOUT, || server.stats().connections == 0),
        "{:?}",
        server.stats()
    );
    stop(&server);
}

test_all!(a_refused_request_followed_at_once_by_a_fin_still_gets_its_answer);
fn a_refused_request_followed_at_once_by_a_fin_still_gets_its_answer(backend: Backend) {
    let opened = Shared::default();
    let o = opened.clone();
    // A long close timeout: the server must notice the EOF, not wait it out.
    let builder = Server::builder()
        .threads(1)
        .close_timeout(std::time::Duration::from_secs(60));
    let server = start_server(backend, builder, move |_| Gate { opened: o.clone() });
    for _ in 0..5 {
        let answer =
            common::http_exchange_then_fin(server.local_addr(), &upgrade_head("/private", &[]));
        assert!(
            answer.starts_with("HTTP/1.1 403 ") && answer.ends_with("members only"),
            "{answer}"
        );
        let answer = common::http_exchange_then_fin(
            server.local_addr(),
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert!(answer.starts_with("HTTP/1.1 426 "), "{answer}");
    }
    assert!(
        common::wait_until(TIMEOUT, || server.stats().connections == 0),
        "{:?}",
        server.stats()
    );
    assert_only_the_probe_opened(&server, &opened);
    stop(&server);
}

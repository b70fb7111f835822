//! Graceful shutdown: messages sent before `shutdown(grace)` (from a callback and through the
//! `ServerHandle`, reported `Sent` or `Queued`) all arrive, then a close 1001, and `wait()`
//! returns; handshaking connections are dropped at once, peers that never answer are dropped
//! when the grace period ends, and the server then refuses connections and commands.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{read_to_eof, start_server, wait_for_workers, Client, Ev, Shared, TIMEOUT};
use wsx::{
    Backend, CloseCode, CloseInfo, Conn, ConnId, HandleError, Handler, Message, SendStatus, Server,
    ServerHandle,
};

const N: usize = 40;
const SIZE: usize = 64 << 10;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rec {
    Open(ConnId),
    Sent(SendStatus),
    Close(CloseInfo),
}

/// On `go`, sends `N` binary messages of `SIZE` bytes, message `i` filled with byte `i`.
struct Burst {
    log: Shared<Rec>,
}

impl Handler for Burst {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        self.log.push(Rec::Open(conn.id()));
    }

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        if message == Message::Text("go") {
            for i in 0..N {
                let status = conn.send_binary(&vec![i as u8; SIZE]).expect("open");
                self.log.push(Rec::Sent(status));
            }
        }
    }

    fn on_close(&mut self, _conn: &mut Conn<'_, ()>, close: &CloseInfo) {
        self.log.push(Rec::Close(close.clone()));
    }
}

fn burst_server(backend: Backend) -> (ServerHandle, Shared<Rec>) {
    let log = Shared::default();
    let l = log.clone();
    (
        start_server(backend, Server::builder().threads(2), move |_| Burst {
            log: l.clone(),
        }),
        log,
    )
}

fn open_id(log: &Shared<Rec>) -> ConnId {
    match log.wait_for(|r| matches!(r, Rec::Open(_))) {
        Some(Rec::Open(id)) => id,
        other => panic!("{other:?}"),
    }
}

test_all!(shutdown_delivers_every_message_then_closes_with_1001);
fn shutdown_delivers_every_message_then_closes_with_1001(backend: Backend) {
    let (server, log) = burst_server(backend);
    let mut client = Client::connect(server.local_addr());
    let id = open_id(&log);

    // The client does not read yet, so most of the burst is still queued in the server.
    client.send_text("go");
    assert!(common::wait_until(TIMEOUT, || log
        .snapshot()
        .iter()
        .filter(|r| matches!(r, Rec::Sent(_)))
        .count()
        == N));
    let statuses: Vec<SendStatus> = log
        .snapshot()
        .into_iter()
        .filter_map(|r| match r {
            Rec::Sent(s) => Some(s),
            _ => None,
        })
        .collect();
    assert!(
        statuses.iter().all(|s| *s != SendStatus::Dropped),
        "{statuses:?}"
    );
    for i in 0..10 {
        server
            .send_text(id, format!("late {i}"))
            .expect("command delivered");
    }
    server.shutdown(Duration::from_secs(3));

    for i in 0..N {
        match client.recv() {
            Some(Ev::Binary(data)) => assert!(
                data.len() == SIZE && data.iter().all(|b| *b == i as u8),
                "message {i}"
            ),
            other => panic!("expected binary message {i}, got {other:?}"),
        }
    }
    for i in 0..10 {
        assert_eq!(client.recv(), Some(Ev::Text(format!("late {i}"))));
    }
    assert_eq!(
        client.recv(),
        Some(Ev::Close(1001, "server shutting down".into()))
    );
    assert_eq!(client.recv(), Some(Ev::Eof));
    wait_for_workers(&server, TIMEOUT);

    let close = log.wait_for(|r| matches!(r, Rec::Close(_)));
    assert!(
        matches!(&close, Some(Rec::Close(info)) if info.code == CloseCode::GOING_AWAY && info.clean),
        "{close:?}"
    );
    // Stopped: no more connections or commands.
    assert!(
        TcpStream::connect(server.local_addr()).is_err(),
        "the listener is closed"
    );
    assert_eq!(server.send_text(id, "too late"), Err(HandleError::ShutDown));
    assert_eq!(server.stats().connections, 0);
}

test_all!(shutdown_drops_handshaking_and_unresponsive_peers);
fn shutdown_drops_handshaking_and_unresponsive_peers(backend: Backend) {
    let (server, log) = burst_server(backend);
    // Never reads, so it never answers the close frame.
    let mut deaf = Client::connect(server.local_addr());
    open_id(&log);
    deaf.send_text("go");
    // Halfway through its handshake.
    let mut half = TcpStream::connect(server.local_addr()).unwrap();
    half.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    assert!(
        common::wait_until(TIMEOUT, || server.stats().connections == 2),
        "{:?}",
        server.stats()
    );

    let started = Instant::now();
    server.shutdown(Duration::from_millis(500));
    assert_eq!(
        read_to_eof(&mut half),
        b"",
        "the handshaking connection is dropped without an answer"
    );
    wait_for_workers(&server, TIMEOUT);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(3),
        "the grace period bounds the wait: {waited:?}"
    );
    let close = log.wait_for(|r| matches!(r, Rec::Close(_)));
    assert!(
        matches!(&close, Some(Rec::Close(info)) if info.code == CloseCode::ABNORMAL && !info.clean),
        "{close:?}"
    );
    drop(deaf);
}

test_all!(shutdown_of_an_idle_server_ends_at_once);
fn shutdown_of_an_idle_server_ends_at_once(backend: Backend) {
    let (server, _log) = burst_server(backend);
    let started = Instant::now();
    server.shutdown(Duration::from_secs(10));
    wait_for_workers(&server, TIMEOUT);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no connections: no grace to wait out"
    );
}

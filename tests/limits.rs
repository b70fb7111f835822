//! Every limit and hostile input: an oversize frame or message closes with 1009, invalid
//! UTF-8 with 1007, protocol errors (reserved opcode, reserved bits, unmasked frame) with 1002;
//! a client that does not finish its handshake is dropped after `handshake_timeout`; an idle
//! peer is pinged, then dropped after `idle_timeout`, while a peer that answers pings stays;
//! a peer that never answers our close frame is dropped after `close_timeout`.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{masked, read_to_eof, start_server, stop, Client, ClientOptions, Ev, Shared, TIMEOUT};
use wsx::{
    Backend, CloseCode, CloseInfo, Conn, ConnId, Handler, Limits, Message, ProtocolError, Server,
    ServerBuilder, ServerHandle,
};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rec {
    Open(ConnId),
    Pong(ConnId),
    Close(ConnId, CloseInfo),
}

/// Echoes; records opens, pongs and closes.
struct Watch {
    log: Shared<Rec>,
}

impl Handler for Watch {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        self.log.push(Rec::Open(conn.id()));
    }

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        let _ = conn.send(message);
    }

    fn on_pong(&mut self, conn: &mut Conn<'_, ()>, _payload: &[u8]) {
        self.log.push(Rec::Pong(conn.id()));
    }

    fn on_close(&mut self, conn: &mut Conn<'_, ()>, close: &CloseInfo) {
        self.log.push(Rec::Close(conn.id(), close.clone()));
    }
}

fn watch(backend: Backend, builder: ServerBuilder) -> (ServerHandle, Shared<Rec>) {
    let log = Shared::default();
    let l = log.clone();
    (
        start_server(backend, builder.threads(1), move |_| Watch {
            log: l.clone(),
        }),
        log,
    )
}

fn close_of(log: &Shared<Rec>) -> CloseInfo {
    match log.wait_for(|r| matches!(r, Rec::Close(..))) {
        Some(Rec::Close(_, info)) => info,
        other => panic!("no on_close: {other:?}"),
    }
}

/// Sends `bytes` on a fresh connection and expects a close frame with `code`, then EOF (the
/// server lingers so that the close frame is read, not lost to a reset). Returns what
/// `on_close` saw.
fn expect_close(backend: Backend, builder: ServerBuilder, bytes: &[u8], code: u16) -> CloseInfo {
    let (server, log) = watch(backend, builder);
    let mut client = Client::connect(server.local_addr());
    client.send_raw(bytes);
    let events = client.recv_until_end();
    assert!(
        matches!(&events[..], [Ev::Close(c, _), Ev::Eof] if *c == code),
        "expected close {code} then EOF, got {events:?}"
    );
    let info = close_of(&log);
    assert_eq!(info.code, CloseCode(code));
    assert!(!info.clean, "{info:?}");
    assert!(info.error.is_some(), "{info:?}");
    stop(&server);
    info
}

test_all!(an_oversize_frame_closes_with_1009);
fn an_oversize_frame_closes_with_1009(backend: Backend) {
    // At the limit: accepted.
    let (server, _log) = watch(backend, Server::builder().max_payload(1024));
    let mut client = Client::connect(server.local_addr());
    client.send_binary(&[7; 1024]);
    assert_eq!(client.recv(), Some(Ev::Binary(vec![7; 1024])));
    stop(&server);

    // One byte over: refused as soon as the header is read.
    let info = expect_close(
        backend,
        Server::builder().max_payload(1024),
        &masked(true, 0x2, &[7; 1025]),
        1009,
    );
    assert!(
        matches!(
            info.error,
            Some(ProtocolError::FrameTooLarge {
                len: 1025,
                max: 1024
            })
        ),
        "{info:?}"
    );

    // A header announcing a huge frame, with no payload behind it.
    let mut huge = vec![0x82, 0x80 | 127];
    huge.extend_from_slice(&(1u64 << 40).to_be_bytes());
    huge.extend_from_slice(&[1, 2, 3, 4]);
    expect_close(backend, Server::builder().max_payload(1024), &huge, 1009);
}

test_all!(an_oversize_fragmented_message_closes_with_1009);
fn an_oversize_fragmented_message_closes_with_1009(backend: Backend) {
    let mut bytes = masked(false, 0x2, &[1; 600]);
    bytes.extend(masked(true, 0x0, &[2; 600]));
    let info = expect_close(backend, Server::builder().max_payload(1024), &bytes, 1009);
    assert!(
        matches!(
            info.error,
            Some(ProtocolError::MessageTooLarge { max: 1024 })
        ),
        "{info:?}"
    );
}

test_all!(invalid_utf8_closes_with_1007);
fn invalid_utf8_closes_with_1007(backend: Backend) {
    expect_close(
        backend,
        Server::builder(),
        &masked(true, 0x1, &[b'o', b'k', 0xff, 0xfe]),
        1007,
    );
    // Split across fragments: the second fragment breaks the sequence the first began.
    let mut bytes = masked(false, 0x1, &[0xe2, 0x82]);
    bytes.extend(masked(true, 0x0, b"x"));
    expect_close(backend, Server::builder(), &bytes, 1007);
}

test_all!(protocol_errors_close_with_1002);
fn protocol_errors_close_with_1002(backend: Backend) {
    // Reserved opcode.
    let info = expect_close(backend, Server::builder(), &masked(true, 0x3, b""), 1002);
    assert_eq!(info.error, Some(ProtocolError::ReservedOpcode(3)));
    // Unmasked frame from a client.
    let info = expect_close(
        backend,
        Server::builder(),
        &common::frame(true, 0x1, b"hi", None),
        1002,
    );
    assert_eq!(info.error, Some(ProtocolError::UnmaskedFrame));
    // RSV1 without an extension.
    let mut rsv = masked(true, 0x1, b"hi");
    rsv[0] |= 0x40;
    let info = expect_close(backend, Server::builder(), &rsv, 1002);
    assert_eq!(info.error, Some(ProtocolError::ReservedBits));
    // A continuation with nothing to continue.
    expect_close(backend, Server::builder(), &masked(true, 0x0, b"x"), 1002);
    // A fragmented ping.
    expect_close(backend, Server::builder(), &masked(false, 0x9, b"x"), 1002);
}

test_all!(a_silent_connection_is_dropped_after_the_handshake_timeout);
fn a_silent_connection_is_dropped_after_the_handshake_timeout(backend: Backend) {
    let (server, log) = watch(
        backend,
        Server::builder().handshake_timeout(Duration::from_millis(300)),
    );
    let started = Instant::now();
    let mut silent = TcpStream::connect(server.local_addr()).unwrap();
    let mut half = TcpStream::connect(server.local_addr()).unwrap();
    half.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
        .unwrap();
    // No answer at all, just the end of the connection.
    assert_eq!(read_to_eof(&mut silent), b"");
    assert_eq!(read_to_eof(&mut half), b"");
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(3),
        "dropped only after {waited:?}"
    );
    assert!(
        common::wait_until(TIMEOUT, || server.stats().connections == 0),
        "{:?}",
        server.stats()
    );
    assert!(
        log.snapshot().is_empty(),
        "nothing opened: {:?}",
        log.snapshot()
    );

    // A connection that completes its handshake in time is not affected by the timeout.
    // A silent connection made after it has its handshake deadline later: once that one is
    // dropped, a handshake timer still armed for the client would have fired too.
    let mut client = Client::connect(server.local_addr());
    let mut later = TcpStream::connect(server.local_addr()).unwrap();
    assert_eq!(read_to_eof(&mut later), b"");
    client.send_text("still here");
    assert_eq!(client.recv(), Some(Ev::Text("still here".into())));
    stop(&server);
}

test_all!(an_idle_peer_is_pinged_then_dropped_after_the_idle_timeout);
fn an_idle_peer_is_pinged_then_dropped_after_the_idle_timeout(backend: Backend) {
    let (server, log) = watch(
        backend,
        Server::builder().idle_timeout(Some(Duration::from_millis(400))),
    );
    let options = ClientOptions {
        auto_pong: false,
        ..ClientOptions::default()
    };
    let mut client = Client::connect_with(server.local_addr(), &options);
    let started = Instant::now();
    let events = client.recv_until_end();
    let waited = started.elapsed();
    assert!(
        matches!(&events[..], [Ev::Ping(_), end] if end.is_end()),
        "a ping, then the end: {events:?}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "dropped only after {waited:?}"
    );
    let info = close_of(&log);
    assert_eq!(info.code, CloseCode::ABNORMAL);
    assert!(!info.clean);
    stop(&server);
}

test_all!(a_peer_that_answers_pings_stays_open);
fn a_peer_that_answers_pings_stays_open(backend: Backend) {
    let (server, log) = watch(
        backend,
        Server::builder().idle_timeout(Some(Duration::from_millis(400))),
    );
    let mut client = Client::connect(server.local_addr());
    // Four idle periods; recv answers every ping.
    let events = client.pump(Duration::from_millis(1600));
    let pings = events.iter().filter(|e| matches!(e, Ev::Ping(_))).count();
    assert!(pings >= 2, "pinged at every half period: {events:?}");
    assert!(
        events.iter().all(|e| matches!(e, Ev::Ping(_))),
        "{events:?}"
    );
    client.send_text("alive");
    assert_eq!(client.recv_data(), Some(Ev::Text("alive".into())));
    let seen = log.snapshot();
    assert!(
        seen.iter().filter(|r| matches!(r, Rec::Pong(_))).count() >= 2,
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|r| matches!(r, Rec::Close(..))),
        "{seen:?}"
    );
    stop(&server);
}

test_all!(a_peer_that_never_answers_our_close_is_dropped_after_the_close_timeout);
fn a_peer_that_never_answers_our_close_is_dropped_after_the_close_timeout(backend: Backend) {
    let (server, log) = watch(
        backend,
        Server::builder().close_timeout(Duration::from_millis(300)),
    );
    let client = Client::connect(server.local_addr());
    let id = match log.wait_for(|r| matches!(r, Rec::Open(_))) {
        Some(Rec::Open(id)) => id,
        other => panic!("{other:?}"),
    };
    // The client does not read, so it never echoes the close frame.
    let started = Instant::now();
    server.close(id, CloseCode::NORMAL, "done").unwrap();
    let info = close_of(&log);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(3),
        "dropped only after {waited:?} (default 5 s)"
    );
    assert_eq!(info.code, CloseCode::ABNORMAL);
    assert!(!info.clean);
    assert!(
        common::wait_until(TIMEOUT, || server.stats().connections == 0),
        "{:?}",
        server.stats()
    );
    drop(client);
    stop(&server);
}

test_all!(bad_close_and_control_frames_close_with_1002_or_1007);
fn bad_close_and_control_frames_close_with_1002_or_1007(backend: Backend) {
    // Codes that may not be sent on the wire.
    for code in [999u16, 1005, 1006, 1016, 2999, 5000] {
        expect_close(
            backend,
            Server::builder(),
            &masked(true, 0x8, &code.to_be_bytes()),
            1002,
        );
    }
    // A one-byte close payload.
    expect_close(backend, Server::builder(), &masked(true, 0x8, &[3]), 1002);
    // A close reason that is not UTF-8.
    expect_close(
        backend,
        Server::builder(),
        &masked(true, 0x8, &[0x03, 0xe8, 0xff]),
        1007,
    );
    // A ping over 125 bytes.
    expect_close(
        backend,
        Server::builder(),
        &masked(true, 0x9, &[0; 126]),
        1002,
    );
}

test_all!(messages_before_a_protocol_error_in_the_same_read_are_delivered_first);
fn messages_before_a_protocol_error_in_the_same_read_are_delivered_first(backend: Backend) {
    let (server, log) = watch(backend, Server::builder());
    let mut client = Client::connect(server.local_addr());
    let mut bytes = masked(true, 0x1, b"one");
    bytes.extend(masked(true, 0x2, b"two"));
    bytes.extend(masked(true, 0xb, b""));
    bytes.extend(masked(true, 0x1, b"never"));
    client.send_raw(&bytes);
    let events = client.recv_until_end();
    assert!(
        matches!(&events[..], [Ev::Text(a), Ev::Binary(b), Ev::Close(1002, _), Ev::Eof] if a == "one" && b == b"two"),
        "{events:?}"
    );
    assert_eq!(
        close_of(&log).error,
        Some(ProtocolError::ReservedOpcode(0xb))
    );
    stop(&server);
}

test_all!(without_auto_ping_an_idle_peer_is_dropped_unpinged);
fn without_auto_ping_an_idle_peer_is_dropped_unpinged(backend: Backend) {
    let builder = Server::builder()
        .idle_timeout(Some(Duration::from_millis(300)))
        .auto_ping(false);
    let (server, log) = watch(backend, builder);
    let mut client = Client::connect(server.local_addr());
    let events = client.recv_until_end();
    assert!(
        matches!(&events[..], [end] if end.is_end()),
        "no ping, just the end: {events:?}"
    );
    assert_eq!(close_of(&log).code, CloseCode::ABNORMAL);
    stop(&server);
}

test_all!(connections_past_max_connections_are_closed_at_once);
fn connections_past_max_connections_are_closed_at_once(backend: Backend) {
    let (server, log) = watch(backend, Server::builder().max_connections(2));
    let mut first = Client::connect(server.local_addr());
    let _second = Client::connect(server.local_addr());
    let mut third = TcpStream::connect(server.local_addr()).unwrap();
    third.set_read_timeout(Some(TIMEOUT)).unwrap();
    let _ = third.write_all(&common::upgrade_head("/", &[]));
    // Closed without an answer (EOF, or a reset if our request was unread).
    let mut buf = [0u8; 64];
    match std::io::Read::read(&mut third, &mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Ok(n) => panic!(
            "no answer expected: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => panic!("expected the connection closed, got {e}"),
    }
    assert_eq!(
        log.snapshot()
            .iter()
            .filter(|r| matches!(r, Rec::Open(_)))
            .count(),
        2
    );

    // Room again once one leaves.
    first.close(1000, "");
    assert!(first.recv_until_end().contains(&Ev::Eof));
    assert!(common::wait_until(TIMEOUT, || server.stats().connections == 1));
    let mut fourth = Client::connect(server.local_addr());
    fourth.send_text("in");
    assert_eq!(fourth.recv(), Some(Ev::Text("in".into())));
    stop(&server);
}

test_all!(limits_set_as_a_whole_apply);
fn limits_set_as_a_whole_apply(backend: Backend) {
    let limits = Limits {
        max_fragments: 4,
        max_headers: 10,
        ..Limits::default()
    };
    // Four fragments pass, five do not.
    let (server, _log) = watch(backend, Server::builder().limits(limits));
    let mut client = Client::connect(server.local_addr());
    let mut bytes = masked(false, 0x1, b"a");
    bytes.extend(masked(false, 0x0, b"b"));
    bytes.extend(masked(false, 0x0, b"c"));
    bytes.extend(masked(true, 0x0, b"d"));
    client.send_raw(&bytes);
    assert_eq!(client.recv(), Some(Ev::Text("abcd".into())));
    // Eleven header lines (five of the handshake, six more) are one too many.
    let extra: Vec<String> = (0..6).map(|i| format!("X-H{i}: v")).collect();
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let answer = common::http_exchange(server.local_addr(), &common::upgrade_head("/", &extra));
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    stop(&server);

    let mut bytes = masked(false, 0x2, b"a");
    for _ in 0..3 {
        bytes.extend(masked(false, 0x0, b"b"));
    }
    bytes.extend(masked(true, 0x0, b"c"));
    let info = expect_close(backend, Server::builder().limits(limits), &bytes, 1009);
    assert_eq!(info.error, Some(ProtocolError::TooManyFragments { max: 4 }));
}

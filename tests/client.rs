//! The blocking client after the handshake, against a wsx server and a raw one: echo of text,
//! binary and fragmented messages (large ones included), ping → pong, `max_payload`, masking
//! (one key per frame, from `dangerous_mask_generator` when set, random otherwise), both
//! closing handshakes, and `local_addr`.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;
#[path = "support/client.rs"]
mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use support::{
    open, options, recorder, stop_server, ws_url, Behaviour, RawServer, CLOSE_ME, PING_ME,
};
use wsx::blocking::Message;
use wsx::client::ClientError;
use wsx::protocol::CloseState;
use wsx::{Backend, CloseCode, MessageKind, ProtocolError, SendError};

test_all!(text_binary_and_fragmented_messages_echo);
fn text_binary_and_fragmented_messages_echo(backend: Backend) {
    let (server, _log) = recorder(backend, Behaviour::default());
    let mut ws = open(&ws_url(server.local_addr(), "/"), &options());
    assert_eq!(ws.url().to_string(), ws_url(server.local_addr(), "/"));

    ws.send_text("héllo").expect("send");
    assert_eq!(ws.recv().expect("echo"), Message::Text("héllo".into()));
    ws.send_text("").expect("send");
    assert_eq!(ws.recv().expect("echo"), Message::Text(String::new()));
    ws.send_binary(&[0, 1, 2, 255]).expect("send");
    assert_eq!(
        ws.recv().expect("echo"),
        Message::Binary(vec![0, 1, 2, 255])
    );

    // Fragments; the "é" is split between two of them.
    let e = "é".as_bytes();
    ws.send_fragment(Some(MessageKind::Text), &[b"caf", &e[..1]].concat(), false)
        .expect("first");
    ws.send_fragment(None, &e[1..], false).expect("middle");
    ws.send_fragment(None, b"!", true).expect("last");
    assert_eq!(ws.recv().expect("echo"), Message::Text("café!".into()));
    ws.send_fragment(Some(MessageKind::Binary), &[1, 2], false)
        .expect("first");
    // A ping between fragments is answered at once.
    ws.ping(b"mid").expect("ping");
    assert_eq!(ws.recv().expect("pong"), Message::Pong(b"mid".to_vec()));
    ws.send_fragment(None, &[3], true).expect("last");
    assert_eq!(ws.recv().expect("echo"), Message::Binary(vec![1, 2, 3]));
    // A fragment out of order is refused locally.
    assert!(matches!(
        ws.send_fragment(None, b"x", true),
        Err(ClientError::Send(SendError::FragmentOrder))
    ));

    // Larger than the client's 64 KiB read buffer, both kinds.
    let big: Vec<u8> = (0..(1 << 20) + 3).map(|i| (i % 251) as u8).collect();
    ws.send_binary(&big).expect("send big");
    assert_eq!(ws.recv().expect("echo big"), Message::Binary(big));
    let text = "ωx".repeat(100_000);
    ws.send_text(&text).expect("send big text");
    assert_eq!(ws.recv().expect("echo big text"), Message::Text(text));

    ws.close(CloseCode::NORMAL, "").expect("close");
    stop_server(&server);
}

test_all!(ping_gets_a_pong);
fn ping_gets_a_pong(backend: Backend) {
    let (server, _log) = recorder(backend, Behaviour::default());
    let mut ws = open(&ws_url(server.local_addr(), "/"), &options());
    ws.ping(b"are you there").expect("ping");
    assert_eq!(
        ws.recv().expect("pong"),
        Message::Pong(b"are you there".to_vec())
    );
    ws.ping(b"").expect("empty ping");
    assert_eq!(ws.recv().expect("pong"), Message::Pong(Vec::new()));
    assert!(matches!(
        ws.ping(&[0; 126]),
        Err(ClientError::Send(SendError::ControlTooLong))
    ));
    ws.close(CloseCode::NORMAL, "").expect("close");
    stop_server(&server);
}

test_all!(max_payload_refuses_a_larger_message_with_1009);
fn max_payload_refuses_a_larger_message_with_1009(backend: Backend) {
    let (server, log) = recorder(backend, Behaviour::default());
    let mut ws = open(
        &ws_url(server.local_addr(), "/"),
        &options().max_payload(16),
    );
    ws.send_text("small").expect("send");
    assert_eq!(ws.recv().expect("echo"), Message::Text("small".into()));
    ws.send_text(&"x".repeat(100)).expect("send");
    match ws.recv() {
        Err(ClientError::Protocol(
            ProtocolError::FrameTooLarge { max: 16, .. }
            | ProtocolError::MessageTooLarge { max: 16 },
        )) => {}
        other => panic!("expected a size error, got {other:?}"),
    }
    // Our close frame with 1009 went out; the server answers it and reports it.
    let close = log.closes.wait_for(|_| true).expect("server on_close");
    assert_eq!(close.code, CloseCode::TOO_BIG);
    stop_server(&server);
}

test_all!(the_mask_generator_is_called_once_per_frame);
fn the_mask_generator_is_called_once_per_frame(backend: Backend) {
    let (server, _log) = recorder(backend, Behaviour::default());
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let mut opts = options();
    opts.dangerous_mask_generator = Some(Arc::new(move || {
        let n = c.fetch_add(1, Ordering::SeqCst) as u8;
        [n, n.wrapping_mul(7), 0xa5, n ^ 0x3c]
    }));
    let mut ws = open(&ws_url(server.local_addr(), "/"), &opts);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the handshake masks nothing"
    );

    let n = 5;
    for i in 0..n {
        ws.send_text(&format!("message {i}")).expect("send");
    }
    ws.ping(b"p").expect("ping");
    assert_eq!(calls.load(Ordering::SeqCst), n + 1);
    // The server unmasked them all with those keys.
    for i in 0..n {
        assert_eq!(
            ws.recv().expect("echo"),
            Message::Text(format!("message {i}"))
        );
    }
    assert_eq!(ws.recv().expect("pong"), Message::Pong(b"p".to_vec()));
    // Receiving masks nothing; fragments and the close frame take one key each.
    assert_eq!(calls.load(Ordering::SeqCst), n + 1);
    ws.send_fragment(Some(MessageKind::Binary), b"ab", false)
        .expect("first");
    ws.send_fragment(None, b"cd", true).expect("last");
    assert_eq!(calls.load(Ordering::SeqCst), n + 3);
    assert_eq!(ws.recv().expect("echo"), Message::Binary(b"abcd".to_vec()));
    // The automatic pong to a server ping takes one too.
    ws.send_text(PING_ME).expect("send");
    assert_eq!(ws.recv().expect("ping"), Message::Ping(b"srv".to_vec()));
    assert_eq!(calls.load(Ordering::SeqCst), n + 5);
    ws.close(CloseCode::NORMAL, "").expect("close");
    assert_eq!(calls.load(Ordering::SeqCst), n + 6);
    stop_server(&server);
}

/// A raw server that answers the handshake and sends the first `count` frames it reads to the
/// test.
fn frame_capture(count: usize) -> (RawServer, mpsc::Receiver<support::RawFrame>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let raw = RawServer::start("127.0.0.1", move |mut conn, req| {
        let tx = tx.lock().expect("sender").clone();
        conn.send(req.switching(&[]).as_bytes());
        for _ in 0..count {
            match conn.read_frame() {
                Ok(frame) => {
                    let _ = tx.send(frame);
                }
                Err(_) => return,
            }
        }
    });
    (raw, rx)
}

#[test]
fn frames_on_the_wire_are_masked_with_fresh_keys() {
    let count = 6;
    let (raw, frames) = frame_capture(count);
    let mut ws = open(&raw.url("/"), &options());
    for _ in 0..count - 1 {
        ws.send_text("same text").expect("send");
    }
    ws.ping(b"ping").expect("ping");
    let frames: Vec<_> = (0..count)
        .map(|_| frames.recv_timeout(support::TIMEOUT).expect("a frame"))
        .collect();
    let mut keys = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        let key = frame.key.expect("the mask bit is set");
        assert!(frame.fin);
        let (opcode, payload): (u8, &[u8]) = if i < count - 1 {
            (1, b"same text")
        } else {
            (9, b"ping")
        };
        assert_eq!((frame.opcode, &frame.payload[..]), (opcode, payload));
        if key != [0; 4] {
            assert_ne!(frame.wire, frame.payload, "the payload is masked");
        }
        keys.push(key);
    }
    let mut distinct = keys.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), keys.len(), "keys repeat: {keys:?}");

    // With a generator, the keys on the wire are exactly its output.
    let (raw, frames) = frame_capture(2);
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let mut opts = options();
    opts.dangerous_mask_generator = Some(Arc::new(move || {
        [c.fetch_add(1, Ordering::SeqCst) as u8 + 1; 4]
    }));
    let mut ws = open(&raw.url("/"), &opts);
    ws.send_binary(b"one").expect("send");
    ws.send_binary(b"two").expect("send");
    for (key, payload) in [([1; 4], b"one"), ([2; 4], b"two")] {
        let frame = frames.recv_timeout(support::TIMEOUT).expect("a frame");
        assert_eq!(frame.key, Some(key));
        assert_eq!(frame.payload, payload);
    }
}

test_all!(a_server_close_is_returned_then_closed);
fn a_server_close_is_returned_then_closed(backend: Backend) {
    let (server, log) = recorder(backend, Behaviour::default());
    let mut ws = open(&ws_url(server.local_addr(), "/"), &options());
    ws.send_text(CLOSE_ME).expect("send");
    assert_eq!(
        ws.recv().expect("close frame"),
        Message::Close(CloseCode(4001), "bye".into())
    );
    // Our reply went out with the event: the handshake is complete.
    assert_eq!(ws.close_state(), CloseState::Closed);
    assert!(matches!(ws.recv(), Err(ClientError::Closed)));
    assert!(matches!(ws.recv(), Err(ClientError::Closed)));
    assert!(matches!(
        ws.send_text("too late"),
        Err(ClientError::Send(SendError::Closing))
    ));
    // The server's on_close reports our reply: its code echoed, without a reason.
    let close = log.closes.wait_for(|_| true).expect("server on_close");
    assert_eq!(
        (close.code, close.clean),
        (CloseCode(4001), true),
        "{close:?}"
    );
    // Closing again after the handshake is done returns at once.
    ws.close(CloseCode::NORMAL, "").expect("close after close");
    stop_server(&server);
}

test_all!(a_client_close_completes_the_handshake);
fn a_client_close_completes_the_handshake(backend: Backend) {
    let (server, log) = recorder(backend, Behaviour::default());
    let mut ws = open(&ws_url(server.local_addr(), "/"), &options());
    ws.send_text("last words").expect("send");
    // The echo arrives before the server's close reply; close() discards it.
    ws.close(CloseCode::NORMAL, "done").expect("close");
    assert_eq!(ws.close_state(), CloseState::Closed);
    assert!(matches!(ws.recv(), Err(ClientError::Closed)));
    let close = log.closes.wait_for(|_| true).expect("server on_close");
    assert_eq!(
        (close.code, close.reason.as_str(), close.clean),
        (CloseCode::NORMAL, "done", true),
        "{close:?}"
    );
    assert_eq!(close.error, None);

    // An invalid code is refused locally and the connection stays open.
    let mut ws = open(&ws_url(server.local_addr(), "/"), &options());
    assert!(matches!(
        ws.close(CloseCode::ABNORMAL, ""),
        Err(ClientError::Send(SendError::InvalidCloseCode(1006)))
    ));
    ws.send_text("still open").expect("send");
    assert_eq!(ws.recv().expect("echo"), Message::Text("still open".into()));
    ws.close(CloseCode(4321), "custom").expect("close");
    let close = log
        .closes
        .wait_for(|c| c.code == CloseCode(4321))
        .expect("second on_close");
    assert_eq!((close.reason.as_str(), close.clean), ("custom", true));
    stop_server(&server);
}

test_all!(local_addr_sets_the_source_address);
fn local_addr_sets_the_source_address(backend: Backend) {
    let (server, log) = recorder(backend, Behaviour::default());
    let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    let mut ws = open(
        &ws_url(server.local_addr(), "/"),
        &options().local_addr(source),
    );
    assert_eq!(ws.local_addr().expect("local addr").ip(), source);
    let seen = &log.upgrades.snapshot()[0];
    assert_eq!(seen.peer.ip(), source);
    assert_eq!(seen.peer, ws.local_addr().expect("local addr"));
    ws.close(CloseCode::NORMAL, "").expect("close");
    stop_server(&server);
}

test_all!(ipv6_literal_urls);
fn ipv6_literal_urls(backend: Backend) {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback here");
        return;
    }
    let (server, log) = support::recorder_on(backend, "[::1]", Behaviour::default());
    let port = server.local_addr().port();
    let url = format!("ws://[::1]:{port}/six");
    let mut ws = open(&url, &options());
    assert_eq!(ws.url().to_string(), url);
    ws.send_text("v6").expect("send");
    assert_eq!(ws.recv().expect("echo"), Message::Text("v6".into()));
    let seen = &log.upgrades.snapshot()[0];
    assert_eq!(seen.header("host"), Some(format!("[::1]:{port}").as_str()));
    assert!(seen.peer.is_ipv6());
    ws.close(CloseCode::NORMAL, "").expect("close");

    // An IPv4 local address cannot reach an IPv6-only target: a clear io error, at once.
    let v4 = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    match wsx::blocking::connect_with(&url, &options().local_addr(v4)) {
        Err(ClientError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::AddrNotAvailable),
        other => panic!("{other:?}"),
    }
    stop_server(&server);
}

test_all!(a_read_timeout_is_timeout_and_the_connection_survives_it);
fn a_read_timeout_is_timeout_and_the_connection_survives_it(backend: Backend) {
    let (server, _log) = recorder(backend, Behaviour::default());
    let mut ws = open(&ws_url(server.local_addr(), "/"), &options());
    ws.set_read_timeout(Some(std::time::Duration::from_millis(50)))
        .expect("timeout");
    let started = std::time::Instant::now();
    assert!(matches!(ws.recv(), Err(ClientError::Timeout)));
    assert!(started.elapsed() < support::TIMEOUT);
    ws.set_read_timeout(Some(support::TIMEOUT))
        .expect("timeout");
    ws.send_text("after").expect("send");
    assert_eq!(ws.recv().expect("echo"), Message::Text("after".into()));
    ws.close(CloseCode::NORMAL, "").expect("close");
    stop_server(&server);
}

#[test]
fn a_protocol_error_is_answered_with_its_close_code_and_is_sticky() {
    // The raw server accepts, sends a masked frame (servers must not mask), then reports the
    // client's answer.
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let raw = RawServer::start("127.0.0.1", move |mut conn, req| {
        let tx = tx.lock().expect("sender").clone();
        let mut answer = req.switching(&[]).into_bytes();
        answer.extend_from_slice(&[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]);
        conn.send(&answer);
        let _ = tx.send(conn.read_frame());
    });
    let mut ws = open(&raw.url("/"), &options());
    for _ in 0..2 {
        match ws.recv() {
            Err(ClientError::Protocol(ProtocolError::MaskedFrame)) => {}
            other => panic!("expected MaskedFrame, got {other:?}"),
        }
    }
    let frame = rx
        .recv_timeout(support::TIMEOUT)
        .expect("the raw server reports")
        .expect("a close frame");
    assert_eq!(frame.opcode, 8);
    assert_eq!(frame.payload[..2], 1002u16.to_be_bytes());
    assert!(matches!(
        ws.send_text("no"),
        Err(ClientError::Send(SendError::Closing))
    ));
}

#[test]
fn a_connection_dropped_without_a_close_frame_is_closed() {
    let raw = RawServer::start("127.0.0.1", |mut conn, req| {
        let mut answer = req.switching(&[]).into_bytes();
        answer.extend_from_slice(b"\x82\x01\x07");
        conn.send(&answer);
    });
    let mut ws = open(&raw.url("/"), &options());
    assert_eq!(ws.recv().expect("frame"), Message::Binary(vec![7]));
    assert!(matches!(ws.recv(), Err(ClientError::Closed)));
    // No close frame was exchanged: close_state() tells this apart from a clean close.
    assert_eq!(ws.close_state(), CloseState::Open);
    assert!(matches!(ws.recv(), Err(ClientError::Closed)));
}

#[test]
fn docs_client_md_shows_examples_client_rs() {
    let doc = include_str!("../docs/client.md");
    let example = include_str!("../examples/client.rs");
    assert!(
        doc.contains(&format!("```rust,no_run\n{example}```")),
        "docs/client.md must show examples/client.rs verbatim"
    );
}

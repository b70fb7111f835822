//! The blocking client's opening handshake over loopback sockets: what a wsx server sees in
//! `on_upgrade` (extra headers, `Origin`, version 8, offered subprotocols) and what the client
//! gets back (`protocol()`, `response()`), and every way it fails — a refusal with its status and
//! body, a wrong accept key, an unoffered subprotocol, a refused or silent server, `wss://`,
//! invalid URLs and headers — each as its own `ClientError`.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;
#[path = "support/client.rs"]
mod support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use support::{
    closed_port, open, options, recorder, stop_server, ws_url, Behaviour, RawServer, TIMEOUT,
};
use wsx::blocking::{connect_with, Message};
use wsx::client::{ClientError, UrlError};
use wsx::protocol::handshake::Version;
use wsx::{Backend, CloseCode, HandshakeError};

test_all!(extra_headers_and_origin_reach_on_upgrade);
fn extra_headers_and_origin_reach_on_upgrade(backend: Backend) {
    let (server, log) = recorder(backend, Behaviour::default());
    let addr = server.local_addr();
    let opts = options()
        .header("X-Token", "t0ken")
        .header("Authorization", "Bearer abc")
        .header("Cookie", "a=1; b=2")
        .origin("https://app.example");
    let mut ws = open(&ws_url(addr, "/chat?room=1"), &opts);
    ws.send_text("hi").expect("send");
    assert_eq!(ws.recv().expect("echo"), Message::Text("hi".into()));

    let seen = log.upgrades.snapshot();
    assert_eq!(seen.len(), 1);
    let seen = &seen[0];
    assert_eq!(seen.target, "/chat?room=1");
    assert_eq!(seen.version, Version::V13);
    assert_eq!(seen.origin.as_deref(), Some("https://app.example"));
    assert_eq!(seen.header("origin"), Some("https://app.example"));
    assert_eq!(seen.header("x-token"), Some("t0ken"));
    assert_eq!(seen.header("authorization"), Some("Bearer abc"));
    assert_eq!(seen.header("cookie"), Some("a=1; b=2"));
    assert_eq!(seen.header("host"), Some(addr.to_string().as_str()));
    assert_eq!(seen.header("sec-websocket-version"), Some("13"));
    assert!(seen.protocols.is_empty());
    ws.close(CloseCode::NORMAL, "").expect("close");
    stop_server(&server);
}

test_all!(the_negotiated_subprotocol_is_in_protocol);
fn the_negotiated_subprotocol_is_in_protocol(backend: Backend) {
    let (server, log) = recorder(
        backend,
        Behaviour {
            protocols: &["v2.wsx", "v1.wsx"],
            ..Behaviour::default()
        },
    );
    let url = ws_url(server.local_addr(), "/");
    let mut ws = open(&url, &options().protocol("v1.wsx").protocol("v2.wsx"));
    // The server's preference wins.
    assert_eq!(ws.protocol(), Some("v2.wsx"));
    assert_eq!(
        ws.response().header("sec-websocket-protocol"),
        Some(&b"v2.wsx"[..])
    );
    assert_eq!(log.upgrades.snapshot()[0].protocols, ["v1.wsx", "v2.wsx"]);
    ws.close(CloseCode::NORMAL, "").expect("close");

    // Nothing acceptable offered: no protocol, and the connection still opens.
    let ws = open(&url, &options().protocol("mqtt"));
    assert_eq!(ws.protocol(), None);
    // Nothing offered at all.
    let ws2 = open(&url, &options());
    assert_eq!(ws2.protocol(), None);
    drop((ws, ws2));
    stop_server(&server);
}

test_all!(a_version_8_request_is_accepted_with_sec_websocket_origin);
fn a_version_8_request_is_accepted_with_sec_websocket_origin(backend: Backend) {
    let (server, log) = recorder(backend, Behaviour::default());
    let opts = options().version(Version::V8).origin("http://old.example");
    let mut ws = open(&ws_url(server.local_addr(), "/"), &opts);
    ws.send_binary(&[1, 2, 3]).expect("send");
    assert_eq!(ws.recv().expect("echo"), Message::Binary(vec![1, 2, 3]));
    let seen = &log.upgrades.snapshot()[0];
    assert_eq!(seen.version, Version::V8);
    assert_eq!(seen.header("sec-websocket-version"), Some("8"));
    assert_eq!(
        seen.header("sec-websocket-origin"),
        Some("http://old.example")
    );
    assert_eq!(seen.header("origin"), None);
    assert_eq!(seen.origin.as_deref(), Some("http://old.example"));
    ws.close(CloseCode::NORMAL, "").expect("close");
    stop_server(&server);
}

test_all!(a_refusal_carries_its_status_and_body);
fn a_refusal_carries_its_status_and_body(backend: Backend) {
    let (server, log) = recorder(
        backend,
        Behaviour {
            reject: Some((403, "go away")),
            ..Behaviour::default()
        },
    );
    let err = connect_with(&ws_url(server.local_addr(), "/"), &options()).expect_err("refused");
    match &err {
        ClientError::Handshake(HandshakeError::UnexpectedStatus(s)) => {
            assert_eq!(s.status, 403);
            assert_eq!(s.reason, "Forbidden");
            assert_eq!(s.body, b"go away");
            assert_eq!(s.location, None);
        }
        other => panic!("expected a 403, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "handshake failed: server answered 403 instead of 101"
    );
    assert_eq!(log.upgrades.len(), 1);
    assert_eq!(log.closes.len(), 0, "a refused upgrade never opens");
    stop_server(&server);
}

#[test]
fn a_wrong_accept_key_is_accept_mismatch() {
    let raw = RawServer::answering("127.0.0.1", |_, _| {
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
            .to_owned()
    });
    let err = connect_with(&raw.url("/"), &options()).expect_err("mismatch");
    assert!(
        matches!(err, ClientError::Handshake(HandshakeError::AcceptMismatch)),
        "{err:?}"
    );
    // A 101 without the header fails the same way.
    let raw = RawServer::answering("127.0.0.1", |_, _| {
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
            .to_owned()
    });
    let err = connect_with(&raw.url("/"), &options()).expect_err("no accept");
    assert!(
        matches!(err, ClientError::Handshake(HandshakeError::AcceptMismatch)),
        "{err:?}"
    );
}

#[test]
fn a_101_without_upgrade_headers_is_an_invalid_response() {
    let raw = RawServer::answering("127.0.0.1", |req, _| {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            req.accept()
        )
    });
    let err = connect_with(&raw.url("/"), &options()).expect_err("invalid");
    assert!(
        matches!(
            err,
            ClientError::Handshake(HandshakeError::InvalidResponse(_))
        ),
        "{err:?}"
    );
}

#[test]
fn an_unoffered_subprotocol_is_refused() {
    let raw = RawServer::answering("127.0.0.1", |req, _| {
        req.switching(&["Sec-WebSocket-Protocol: superchat"])
    });
    for opts in [options(), options().protocol("chat")] {
        let err = connect_with(&raw.url("/"), &opts).expect_err("unoffered");
        assert!(
            matches!(
                err,
                ClientError::Handshake(HandshakeError::ResponseProtocolNotOffered)
            ),
            "{err:?}"
        );
    }
    // Two protocols in the answer are refused even when both were offered.
    let raw = RawServer::answering("127.0.0.1", |req, _| {
        req.switching(&["Sec-WebSocket-Protocol: a, b"])
    });
    let err = connect_with(&raw.url("/"), &options().protocol("a").protocol("b"))
        .expect_err("two protocols");
    assert!(
        matches!(
            err,
            ClientError::Handshake(HandshakeError::ResponseProtocolNotOffered)
        ),
        "{err:?}"
    );
}

#[test]
fn an_unoffered_extension_is_refused() {
    let raw = RawServer::answering("127.0.0.1", |req, _| {
        req.switching(&["Sec-WebSocket-Extensions: permessage-deflate"])
    });
    let err = connect_with(&raw.url("/"), &options()).expect_err("unoffered");
    match err {
        ClientError::Handshake(HandshakeError::ResponseExtensionNotOffered(name)) => {
            assert_eq!(&*name, "permessage-deflate");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn frames_right_behind_the_101_are_kept() {
    // The server's first frame arrives in the same read as the 101.
    let raw = RawServer::start("127.0.0.1", |mut conn, req| {
        let mut answer = req.switching(&[]).into_bytes();
        answer.extend_from_slice(b"\x81\x05hello");
        conn.send(&answer);
    });
    let mut ws = open(&raw.url("/"), &options());
    assert_eq!(ws.recv().expect("frame"), Message::Text("hello".into()));
}

#[test]
fn a_refused_connection_is_io() {
    let started = Instant::now();
    let err = connect_with(
        &ws_url(([127, 0, 0, 1], closed_port()).into(), "/"),
        &options(),
    )
    .expect_err("refused");
    match err {
        ClientError::Io(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
        other => panic!("expected an io error, got {other:?}"),
    }
    assert!(started.elapsed() < TIMEOUT);
}

#[test]
fn a_silent_server_times_out_at_the_handshake_timeout() {
    // The kernel completes the TCP handshake; nobody ever reads or answers.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = ws_url(listener.local_addr().expect("addr"), "/");
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let err = connect_with(&url, &options().handshake_timeout(timeout)).expect_err("no answer");
    let took = started.elapsed();
    assert!(matches!(err, ClientError::Timeout), "{err:?}");
    assert!(took >= timeout, "gave up early: {took:?}");
    assert!(took < timeout + Duration::from_secs(2), "took {took:?}");
    drop(listener);

    // A server that answers half a head and stalls times out the same way.
    let raw = RawServer::start("127.0.0.1", |mut conn, _| {
        conn.send(b"HTTP/1.1 101 Switching");
        std::thread::sleep(TIMEOUT);
    });
    let started = Instant::now();
    let err = connect_with(&raw.url("/"), &options().handshake_timeout(timeout))
        .expect_err("half a head");
    assert!(matches!(err, ClientError::Timeout), "{err:?}");
    assert!(started.elapsed() < timeout + Duration::from_secs(2));
}

#[test]
fn a_server_that_hangs_up_before_answering_is_closed() {
    // Reads the request, answers nothing, closes. The blocking client reports `Closed`.
    let raw = RawServer::start("127.0.0.1", |_, _| {});
    let err = connect_with(&raw.url("/"), &options()).expect_err("hung up");
    assert!(matches!(err, ClientError::Closed), "{err:?}");
}

#[test]
fn wss_connects_over_tcp_first() {
    // Port 1 on loopback refuses: `wss://` (and `https://`) go to TCP like `ws://`, and TLS
    // starts after the connect (tests/tls_client.rs covers TLS itself).
    for url in ["wss://127.0.0.1:1/", "https://127.0.0.1:1/"] {
        let err = connect_with(url, &options()).expect_err("refused");
        assert!(
            matches!(&err, ClientError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
            "{url}: {err:?}"
        );
    }
}

#[test]
fn invalid_urls_are_url_errors() {
    let cases = [
        ("ftp://127.0.0.1/", UrlError::Scheme("ftp".into())),
        ("ws://", UrlError::MissingHost),
        ("ws://127.0.0.1:0/", UrlError::Port("0".into())),
        ("ws://127.0.0.1:65536/", UrlError::Port("65536".into())),
        ("127.0.0.1:9001", UrlError::Invalid("no scheme")),
        (
            "ws://user:pw@127.0.0.1/",
            UrlError::Invalid("credentials in the url are not supported"),
        ),
        (
            "ws://127.0.0.1/#top",
            UrlError::Invalid("fragments are not allowed in websocket urls"),
        ),
        (
            "ws://127.0.0.1/a b",
            UrlError::Invalid("whitespace or control character"),
        ),
    ];
    for (url, want) in cases {
        match connect_with(url, &options()) {
            Err(ClientError::Url(e)) => assert_eq!(e, want, "{url}"),
            other => panic!("{url}: expected a url error, got {other:?}"),
        }
    }
}

#[test]
fn invalid_request_headers_are_refused_before_sending() {
    let raw = RawServer::answering("127.0.0.1", |req, _| req.switching(&[]));
    let cases = [
        options().header("X-Bad", "a\r\nInjected: 1"),
        options().header("Bad Name", "v"),
        options().header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        options().header("Host", "elsewhere"),
        options().origin("http://a\r\nb"),
        options().protocol("not a token"),
    ];
    for opts in &cases {
        let err = connect_with(&raw.url("/"), opts).expect_err("refused");
        assert!(
            matches!(err, ClientError::Handshake(ref e) if e.status() == 500),
            "{opts:?}: {err:?}"
        );
    }
    assert!(
        raw.requests().is_empty(),
        "nothing reached the server: {:?}",
        raw.requests()
    );
}

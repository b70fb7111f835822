//! Redirects followed by the blocking client: a raw TCP redirector answers 3xx + `Location`
//! in front of a wsx server or of itself. Followed only when `follow_redirects(n)` allows, up to
//! n; relative locations keep the host; `Authorization` and `Cookie` are dropped when the host
//! or port changes and kept when neither does.
//!
//! Redirects that involve TLS (`ws://` → `wss://` followed to a TLS server, `wss://` → `ws://`
//! refused with `InsecureRedirect`) are in tests/tls_client.rs, which has a TLS server.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;
#[path = "support/client.rs"]
mod support;

use support::{
    open, options, recorder, recorder_on, redirect, stop_server, ws_url, Behaviour, RawServer,
};
use wsx::blocking::{connect_with, Message};
use wsx::client::{ClientError, UrlError};
use wsx::{Backend, CloseCode, HandshakeError};

/// A redirector on 127.0.0.1 that answers every request with `status` to `location`.
fn redirector(status: u16, location: String) -> RawServer {
    RawServer::answering("127.0.0.1", move |_, _| redirect(status, &location))
}

test_all!(a_redirect_is_followed_when_allowed);
fn a_redirect_is_followed_when_allowed(backend: Backend) {
    let (server, log) = recorder(
        backend,
        Behaviour {
            protocols: &["chat"],
            ..Behaviour::default()
        },
    );
    let target = ws_url(server.local_addr(), "/final?x=1");
    let hop = redirector(302, target.clone());
    let mut ws = open(
        &hop.url("/start"),
        &options().follow_redirects(1).protocol("chat"),
    );
    assert_eq!(ws.url().to_string(), target);
    assert_eq!(ws.protocol(), Some("chat"), "the options carry over");
    ws.send_text("hi").expect("send");
    assert_eq!(ws.recv().expect("echo"), Message::Text("hi".into()));
    assert_eq!(hop.requests().len(), 1);
    assert_eq!(hop.requests()[0].target, "/start");
    assert_eq!(log.upgrades.snapshot()[0].target, "/final?x=1");
    ws.close(CloseCode::NORMAL, "").expect("close");
    stop_server(&server);
}

test_all!(every_redirect_status_is_followed_and_others_are_not);
fn every_redirect_status_is_followed_and_others_are_not(backend: Backend) {
    let (server, _log) = recorder(backend, Behaviour::default());
    let target = ws_url(server.local_addr(), "/");
    for status in [301, 302, 303, 307, 308] {
        let hop = redirector(status, target.clone());
        let ws = open(&hop.url("/"), &options().follow_redirects(1));
        assert_eq!(ws.url().to_string(), target, "{status}");
    }
    for status in [300, 304, 305, 200] {
        let hop = redirector(status, target.clone());
        match connect_with(&hop.url("/"), &options().follow_redirects(1)) {
            Err(ClientError::Handshake(HandshakeError::UnexpectedStatus(s))) => {
                assert_eq!(s.status, status);
            }
            other => panic!("{status}: {other:?}"),
        }
    }
    stop_server(&server);
}

test_all!(a_redirect_is_an_error_by_default);
fn a_redirect_is_an_error_by_default(backend: Backend) {
    let (server, log) = recorder(backend, Behaviour::default());
    let target = ws_url(server.local_addr(), "/final");
    let hop = redirector(302, target.clone());
    for opts in [options(), options().follow_redirects(0)] {
        match connect_with(&hop.url("/"), &opts) {
            Err(ClientError::Handshake(HandshakeError::UnexpectedStatus(s))) => {
                assert_eq!(s.status, 302);
                assert_eq!(s.location.as_deref(), Some(target.as_str()));
                assert_eq!(s.body, b"moved");
            }
            other => panic!("expected the 302, got {other:?}"),
        }
    }
    assert_eq!(log.upgrades.len(), 0, "the target was never contacted");
    stop_server(&server);
}

#[test]
fn a_302_without_location_is_the_status() {
    let hop = RawServer::answering("127.0.0.1", |_, _| {
        "HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n".to_owned()
    });
    match connect_with(&hop.url("/"), &options().follow_redirects(3)) {
        Err(ClientError::Handshake(HandshakeError::UnexpectedStatus(s))) => {
            assert_eq!((s.status, s.location), (302, None));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_redirect_loop_ends_in_too_many_redirects() {
    let hop = RawServer::answering("127.0.0.1", |_, own| redirect(302, &ws_url(own, "/again")));
    let err = connect_with(&hop.url("/"), &options().follow_redirects(3)).expect_err("loop");
    assert!(matches!(err, ClientError::TooManyRedirects(3)), "{err:?}");
    // The first request and three followed redirects.
    assert_eq!(hop.requests().len(), 4, "{:?}", hop.requests());
}

test_all!(follow_redirects_n_allows_exactly_n);
fn follow_redirects_n_allows_exactly_n(backend: Backend) {
    let (server, _log) = recorder(backend, Behaviour::default());
    let last = redirector(307, ws_url(server.local_addr(), "/end"));
    let first = redirector(302, last.url("/middle"));
    let ws = open(&first.url("/"), &options().follow_redirects(2));
    assert_eq!(ws.url().to_string(), ws_url(server.local_addr(), "/end"));
    let err = connect_with(&first.url("/"), &options().follow_redirects(1)).expect_err("one");
    assert!(matches!(err, ClientError::TooManyRedirects(1)), "{err:?}");
    stop_server(&server);
}

/// Options with credentials and two other headers that must survive any redirect.
fn with_credentials() -> wsx::client::ClientOptions {
    options()
        .follow_redirects(1)
        .header("authorization", "Bearer secret")
        .header("Cookie", "session=1")
        .header("X-Keep", "yes")
        .origin("https://app.example")
}

test_all!(credentials_are_dropped_when_the_host_or_port_changes);
fn credentials_are_dropped_when_the_host_or_port_changes(backend: Backend) {
    // Another host: 127.0.0.2 (every 127/8 address is local on Linux). Another port: a second
    // server on 127.0.0.1.
    for ip in ["127.0.0.2", "127.0.0.1"] {
        let (server, log) = recorder_on(backend, ip, Behaviour::default());
        let hop = redirector(302, ws_url(server.local_addr(), "/"));
        let ws = open(&hop.url("/"), &with_credentials());
        assert_eq!(ws.url().host(), ip);
        let first = &hop.requests()[0];
        assert_eq!(first.header("authorization"), Some("Bearer secret"));
        assert_eq!(first.header("cookie"), Some("session=1"));
        let seen = &log.upgrades.snapshot()[0];
        assert_eq!(seen.header("authorization"), None, "{ip}: {seen:?}");
        assert_eq!(seen.header("cookie"), None, "{ip}: {seen:?}");
        assert_eq!(seen.header("x-keep"), Some("yes"));
        assert_eq!(seen.origin.as_deref(), Some("https://app.example"));
        drop(ws);
        stop_server(&server);
    }
}

/// A raw server that redirects `/rel` to `/final`, `/abs` and `/http` to itself with an
/// absolute `ws://` or `http://` URL, and accepts every other path with a `101` (then reads
/// until the client goes).
fn self_redirector() -> RawServer {
    RawServer::start("127.0.0.1", |mut conn, req| {
        let own = conn.stream.local_addr().expect("local addr");
        let answer = match req.target.as_str() {
            "/rel" => redirect(302, "/final?from=rel"),
            "/abs" => redirect(302, &format!("ws://{own}/final?from=abs")),
            "/http" => redirect(302, &format!("http://{own}/final?from=http")),
            _ => req.switching(&[]),
        };
        conn.send(answer.as_bytes());
        while conn.read_frame().is_ok() {}
    })
}

#[test]
fn same_host_redirects_keep_credentials_and_relative_ones_keep_the_host() {
    let hop = self_redirector();
    for start in ["rel", "abs", "http"] {
        let ws = open(&hop.url(&format!("/{start}")), &with_credentials());
        assert_eq!(
            ws.url().to_string(),
            hop.url(&format!("/final?from={start}"))
        );
        let requests = hop.requests();
        let last = requests.last().expect("the followed request");
        assert_eq!(last.target, format!("/final?from={start}"));
        assert_eq!(
            last.header("authorization"),
            Some("Bearer secret"),
            "{start}"
        );
        assert_eq!(last.header("cookie"), Some("session=1"), "{start}");
        assert_eq!(last.header("x-keep"), Some("yes"));
        assert_eq!(last.header("host"), Some(hop.addr.to_string().as_str()));
    }
}

#[test]
fn a_redirect_to_wss_is_followed() {
    // Port 1 on loopback refuses: the redirect was followed to a TCP connect.
    for location in ["wss://127.0.0.1:1/", "https://127.0.0.1:1/"] {
        let hop = redirector(302, location.to_owned());
        let err = connect_with(&hop.url("/"), &options().follow_redirects(1)).expect_err("port 1");
        assert!(
            matches!(&err, ClientError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
            "{location}: {err:?}"
        );
    }
}

#[test]
fn an_unusable_location_is_a_url_error() {
    let cases = [
        ("gopher://127.0.0.1/", UrlError::Scheme("gopher".into())),
        ("ws://127.0.0.1:0/", UrlError::Port("0".into())),
        // Only absolute URLs and absolute paths are resolved, not relative paths.
        ("final", UrlError::Invalid("no scheme")),
    ];
    for (location, want) in cases {
        let hop = redirector(302, location.to_owned());
        match connect_with(&hop.url("/a/b"), &options().follow_redirects(1)) {
            Err(ClientError::Url(e)) => assert_eq!(e, want, "{location}"),
            other => panic!("{location}: {other:?}"),
        }
    }
}

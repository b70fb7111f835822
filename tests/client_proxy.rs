//! The blocking client through the in-process HTTP `CONNECT` and SOCKS5 proxies of
//! `support/proxies.rs`, to a wsx server: sessions with and without credentials, refusals as
//! `ClientError::Proxy` with the proxy's code, and redirects where every hop goes through the
//! proxy. The server seeing the proxy's address as the peer (not the client's) shows that the
//! connection went through it.
//!
//! `ProxyChoice::FromEnv` is not driven through the process environment here (tests run in
//! parallel and share it); `Proxy::from_env_with` has unit tests in `src/client/proxy.rs`.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;
#[path = "support/proxies.rs"]
mod proxies;
#[path = "support/client.rs"]
mod support;

use std::net::SocketAddr;

use proxies::ProxyConfig;
use support::{
    closed_port, open, options, recorder, redirect, stop_server, ws_url, Behaviour, Log, RawServer,
};
use wsx::blocking::{connect_with, Message, WebSocket};
use wsx::client::proxy::{Proxy, ProxyError, SocksReply};
use wsx::client::{ClientError, ClientOptions};
use wsx::Backend;
use wsx::CloseCode;

fn http(addr: SocketAddr, auth: Option<(&str, &str)>) -> Proxy {
    Proxy::Http {
        host: addr.ip().to_string(),
        port: addr.port(),
        auth: auth.map(|(u, p)| (u.to_owned(), p.to_owned())),
    }
}

fn socks5(addr: SocketAddr, auth: Option<(&str, &str)>) -> Proxy {
    Proxy::Socks5 {
        host: addr.ip().to_string(),
        port: addr.port(),
        auth: auth.map(|(u, p)| (u.to_owned(), p.to_owned())),
    }
}

/// Echoes one message, closes, and checks what the server saw: the proxy as the TCP peer, the
/// target in `Host`, no proxy credentials.
fn assert_session_through_proxy(mut ws: WebSocket, server: SocketAddr, log: &Log) {
    ws.send_text("through the proxy").expect("send");
    assert_eq!(
        ws.recv().expect("echo"),
        Message::Text("through the proxy".into())
    );
    let seen = log.upgrades.snapshot().pop().expect("an upgrade");
    let local = ws.local_addr().expect("local addr");
    assert_ne!(seen.peer, local, "the server's peer is the proxy, not us");
    assert_eq!(seen.header("host"), Some(server.to_string().as_str()));
    assert_eq!(seen.header("proxy-authorization"), None);
    ws.close(CloseCode::NORMAL, "").expect("close");
}

fn through(proxy: Proxy) -> ClientOptions {
    options().proxy(proxy)
}

test_all!(a_session_through_an_http_connect_proxy);
fn a_session_through_an_http_connect_proxy(backend: Backend) {
    let (server, log) = recorder(backend, Behaviour::default());
    let proxy = http(proxies::http_connect_proxy(ProxyConfig::default()), None);
    let url = ws_url(server.local_addr(), "/");
    let ws = open(&url, &through(proxy));
    assert_eq!(ws.url().to_string(), url);
    assert_session_through_proxy(ws, server.local_addr(), &log);
    stop_server(&server);
}

test_all!(an_http_connect_proxy_with_basic_auth);
fn an_http_connect_proxy_with_basic_auth(backend: Backend) {
    let (server, log) = recorder(backend, Behaviour::default());
    let addr = proxies::http_connect_proxy(ProxyConfig::with_auth("user", "p@ss:word"));
    let proxy = Proxy::parse(&format!("http://user:p%40ss%3Aword@{addr}")).expect("proxy url");
    let ws = open(&ws_url(server.local_addr(), "/"), &through(proxy));
    assert_session_through_proxy(ws, server.local_addr(), &log);
    stop_server(&server);
}

test_all!(a_wrong_or_missing_proxy_password_is_407);
fn a_wrong_or_missing_proxy_password_is_407(backend: Backend) {
    let (server, log) = recorder(backend, Behaviour::default());
    let addr = proxies::http_connect_proxy(ProxyConfig::with_auth("user", "right"));
    for auth in [Some(("user", "wrong")), None] {
        let err = connect_with(
            &ws_url(server.local_addr(), "/"),
            &through(http(addr, auth)),
        )
        .expect_err("refused");
        match err {
            ClientError::Proxy(ProxyError::HttpStatus { status, reason }) => {
                assert_eq!(
                    (status, reason.as_str()),
                    (407, "Proxy Authentication Required")
                );
            }
            other => panic!("{auth:?}: expected a 407, got {other:?}"),
        }
    }
    assert_eq!(log.upgrades.len(), 0);
    stop_server(&server);
}

#[test]
fn an_http_proxy_that_cannot_reach_the_target_is_502() {
    let proxy = http(proxies::http_connect_proxy(ProxyConfig::default()), None);
    let url = ws_url(([127, 0, 0, 1], closed_port()).into(), "/");
    match connect_with(&url, &through(proxy)) {
        Err(ClientError::Proxy(ProxyError::HttpStatus { status: 502, .. })) => {}
        other => panic!("expected a 502, got {other:?}"),
    }
}

test_all!(a_server_refusal_through_the_proxy_keeps_its_status_and_body);
fn a_server_refusal_through_the_proxy_keeps_its_status_and_body(backend: Backend) {
    let (server, _log) = recorder(
        backend,
        Behaviour {
            reject: Some((403, "go away")),
            ..Behaviour::default()
        },
    );
    let proxy = http(proxies::http_connect_proxy(ProxyConfig::default()), None);
    match connect_with(&ws_url(server.local_addr(), "/"), &through(proxy)) {
        Err(ClientError::Handshake(wsx::HandshakeError::UnexpectedStatus(s))) => {
            assert_eq!((s.status, &s.body[..]), (403, &b"go away"[..]));
        }
        other => panic!("expected the 403, got {other:?}"),
    }
    stop_server(&server);
}

test_all!(a_session_through_socks5);
fn a_session_through_socks5(backend: Backend) {
    let (server, log) = recorder(backend, Behaviour::default());
    let proxy = socks5(proxies::socks5_proxy(ProxyConfig::default()), None);
    let ws = open(&ws_url(server.local_addr(), "/"), &through(proxy));
    assert_session_through_proxy(ws, server.local_addr(), &log);
    stop_server(&server);
}

test_all!(socks5_with_username_and_password);
fn socks5_with_username_and_password(backend: Backend) {
    let (server, log) = recorder(backend, Behaviour::default());
    let addr = proxies::socks5_proxy(ProxyConfig::with_auth("user", "sésame"));
    let proxy = Proxy::parse(&format!("socks5h://user:s%C3%A9same@{addr}")).expect("proxy url");
    let ws = open(&ws_url(server.local_addr(), "/"), &through(proxy));
    assert_session_through_proxy(ws, server.local_addr(), &log);
    stop_server(&server);
}

test_all!(socks5_refusals_are_proxy_errors);
fn socks5_refusals_are_proxy_errors(backend: Backend) {
    let (server, log) = recorder(backend, Behaviour::default());
    let url = ws_url(server.local_addr(), "/");
    let addr = proxies::socks5_proxy(ProxyConfig::with_auth("user", "right"));
    let err = connect_with(&url, &through(socks5(addr, Some(("user", "wrong")))));
    assert!(
        matches!(err, Err(ClientError::Proxy(ProxyError::SocksAuthFailed(1)))),
        "{err:?}"
    );
    let err = connect_with(&url, &through(socks5(addr, None)));
    assert!(
        matches!(
            err,
            Err(ClientError::Proxy(ProxyError::SocksNoAcceptableMethod))
        ),
        "{err:?}"
    );
    let open_proxy = socks5(proxies::socks5_proxy(ProxyConfig::default()), None);
    let refused = ws_url(([127, 0, 0, 1], closed_port()).into(), "/");
    let err = connect_with(&refused, &through(open_proxy));
    assert!(
        matches!(
            err,
            Err(ClientError::Proxy(ProxyError::SocksConnect(
                SocksReply::ConnectionRefused
            )))
        ),
        "{err:?}"
    );
    assert_eq!(log.upgrades.len(), 0);
    stop_server(&server);
}

test_all!(every_redirect_hop_goes_through_the_proxy);
fn every_redirect_hop_goes_through_the_proxy(backend: Backend) {
    let (server, log) = recorder(backend, Behaviour::default());
    let target = ws_url(server.local_addr(), "/final");
    let hop = RawServer::answering("127.0.0.1", move |_, _| redirect(302, &target));
    for proxy in [
        http(proxies::http_connect_proxy(ProxyConfig::default()), None),
        socks5(proxies::socks5_proxy(ProxyConfig::default()), None),
    ] {
        let ws = open(&hop.url("/"), &through(proxy).follow_redirects(1));
        assert_eq!(ws.url().to_string(), ws_url(server.local_addr(), "/final"));
        assert_session_through_proxy(ws, server.local_addr(), &log);
    }
    assert_eq!(hop.requests().len(), 2);
    stop_server(&server);
}

//! `ProxyHandshake` over real loopback sockets, against the in-process HTTP `CONNECT` and SOCKS5
//! proxies of `support/proxies.rs`, relaying to an echo server.

#[path = "support/proxies.rs"]
mod proxies;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use proxies::{ProxyConfig, TIMEOUT};
use wsx::client::proxy::{Proxy, ProxyError, ProxyHandshake, ProxyStep, SocksReply};

/// Connects to `proxy` and drives the handshake for `host:port`, reading at most `read_size`
/// bytes at a time. Returns the tunnel and the bytes already received from the target.
fn connect_through(
    proxy: &Proxy,
    host: &str,
    port: u16,
    read_size: usize,
) -> Result<(TcpStream, Vec<u8>), ProxyError> {
    let mut stream = TcpStream::connect(proxy.authority()).expect("connect to the proxy");
    stream
        .set_read_timeout(Some(TIMEOUT))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(TIMEOUT))
        .expect("write timeout");
    let mut handshake = ProxyHandshake::new(proxy, host, port);
    let mut out = Vec::new();
    handshake.start(&mut out);
    let mut input = Vec::new();
    let mut chunk = vec![0; read_size];
    loop {
        let step = handshake.handle_read(&input, &mut out);
        stream.write_all(&out).expect("write to the proxy");
        out.clear();
        match step? {
            ProxyStep::NeedMore { consumed } => drop(input.drain(..consumed)),
            ProxyStep::Done { consumed } => {
                input.drain(..consumed);
                return Ok((stream, input));
            }
        }
        let n = stream.read(&mut chunk).expect("read from the proxy");
        assert!(n > 0, "the proxy closed the connection mid-handshake");
        input.extend_from_slice(&chunk[..n]);
    }
}

/// Sends a message through the tunnel and expects it back, after `expect_first` (what the
/// target sends on its own); `early` is what the handshake left over.
fn assert_echoes(mut tunnel: TcpStream, mut early: Vec<u8>, expect_first: &[u8]) {
    let message = b"hello through the proxy";
    tunnel.write_all(message).expect("write through the tunnel");
    let want = [expect_first, message].concat();
    let mut buf = [0; 256];
    while early.len() < want.len() {
        let n = tunnel.read(&mut buf).expect("read through the tunnel");
        assert!(n > 0, "the tunnel closed early");
        early.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        String::from_utf8_lossy(&early),
        String::from_utf8_lossy(&want)
    );
}

fn http(addr: SocketAddr, auth: Option<(&str, &str)>) -> Proxy {
    let auth = auth.map(|(u, p)| (u.to_owned(), p.to_owned()));
    Proxy::Http {
        host: addr.ip().to_string(),
        port: addr.port(),
        auth,
    }
}

fn socks5(addr: SocketAddr, auth: Option<(&str, &str)>) -> Proxy {
    let auth = auth.map(|(u, p)| (u.to_owned(), p.to_owned()));
    Proxy::Socks5 {
        host: addr.ip().to_string(),
        port: addr.port(),
        auth,
    }
}

#[test]
fn http_connect_tunnels_to_the_target() {
    let echo = proxies::echo_server();
    let proxy = http(proxies::http_connect_proxy(ProxyConfig::default()), None);
    for (host, read_size) in [("127.0.0.1", 4096), ("localhost", 1), ("127.0.0.1", 3)] {
        let (tunnel, early) =
            connect_through(&proxy, host, echo.port(), read_size).expect("tunnel");
        assert_echoes(tunnel, early, b"");
    }
}

#[test]
fn http_connect_with_basic_auth() {
    let echo = proxies::echo_server();
    let addr = proxies::http_connect_proxy(ProxyConfig::with_auth("user", "p@ss:word"));
    // Through parse, so the percent-decoding is part of what the proxy checks.
    let proxy = Proxy::parse(&format!("http://user:p%40ss%3Aword@{addr}")).expect("proxy url");
    let (tunnel, early) = connect_through(&proxy, "127.0.0.1", echo.port(), 5).expect("tunnel");
    assert_echoes(tunnel, early, b"");
}

#[test]
fn http_connect_wrong_or_missing_password_is_407() {
    let echo = proxies::echo_server();
    let addr = proxies::http_connect_proxy(ProxyConfig::with_auth("user", "right"));
    for auth in [Some(("user", "wrong")), Some(("other", "right")), None] {
        let err =
            connect_through(&http(addr, auth), "127.0.0.1", echo.port(), 7).expect_err("refused");
        assert_eq!(
            err,
            ProxyError::HttpStatus {
                status: 407,
                reason: "Proxy Authentication Required".into()
            },
            "{auth:?}"
        );
    }
}

#[test]
fn http_connect_refusals_carry_the_status() {
    let proxy = http(proxies::http_connect_proxy(ProxyConfig::default()), None);
    let err =
        connect_through(&proxy, "127.0.0.1", proxies::closed_port(), 4096).expect_err("refused");
    assert_eq!(
        err,
        ProxyError::HttpStatus {
            status: 502,
            reason: "Bad Gateway".into()
        }
    );
    let err = connect_through(&proxy, "192.0.2.1", 80, 4096).expect_err("refused");
    assert_eq!(
        err,
        ProxyError::HttpStatus {
            status: 403,
            reason: "Forbidden".into()
        }
    );
}

#[test]
fn socks5_tunnels_to_the_target() {
    let echo = proxies::echo_server();
    let proxy = socks5(proxies::socks5_proxy(ProxyConfig::default()), None);
    for (host, read_size) in [("127.0.0.1", 4096), ("localhost", 1), ("127.0.0.1", 3)] {
        let (tunnel, early) =
            connect_through(&proxy, host, echo.port(), read_size).expect("tunnel");
        assert_echoes(tunnel, early, b"");
    }
}

#[test]
fn socks5_with_username_and_password() {
    let echo = proxies::echo_server();
    let addr = proxies::socks5_proxy(ProxyConfig::with_auth("user", "sésame"));
    let proxy = Proxy::parse(&format!("socks5h://user:s%C3%A9same@{addr}")).expect("proxy url");
    for read_size in [4096, 1] {
        let (tunnel, early) =
            connect_through(&proxy, "localhost", echo.port(), read_size).expect("tunnel");
        assert_echoes(tunnel, early, b"");
    }
}

#[test]
fn socks5_wrong_password_fails() {
    let echo = proxies::echo_server();
    let addr = proxies::socks5_proxy(ProxyConfig::with_auth("user", "right"));
    let err = connect_through(
        &socks5(addr, Some(("user", "wrong"))),
        "127.0.0.1",
        echo.port(),
        4096,
    );
    assert_eq!(err.expect_err("refused"), ProxyError::SocksAuthFailed(1));
    // Without credentials the client offers only "no auth", which this proxy does not accept.
    let err = connect_through(&socks5(addr, None), "127.0.0.1", echo.port(), 4096);
    assert_eq!(
        err.expect_err("refused"),
        ProxyError::SocksNoAcceptableMethod
    );
}

#[test]
fn socks5_refusals_name_the_reply_code() {
    let proxy = socks5(proxies::socks5_proxy(ProxyConfig::default()), None);
    let cases = [
        (
            "127.0.0.1",
            proxies::closed_port(),
            SocksReply::ConnectionRefused,
        ),
        ("192.0.2.1", 80, SocksReply::NotAllowed),
        ("example.invalid", 80, SocksReply::HostUnreachable),
    ];
    for (host, port, want) in cases {
        let err = connect_through(&proxy, host, port, 2).expect_err("refused");
        assert_eq!(err, ProxyError::SocksConnect(want), "{host}");
    }
}

#[test]
fn server_bytes_behind_the_proxy_reply_are_kept() {
    // The target speaks first and the proxies send its bytes in the same write as their reply:
    // whatever the handshake does not consume must reach the caller.
    let greeter = proxies::echo_server_with_greeting(b"welcome\n");
    let coalesce = ProxyConfig {
        coalesce: Some(std::time::Duration::from_secs(2)),
        ..ProxyConfig::default()
    };
    let proxies = [
        http(proxies::http_connect_proxy(coalesce.clone()), None),
        socks5(proxies::socks5_proxy(coalesce), None),
    ];
    for proxy in &proxies {
        for read_size in [4096, 1] {
            let (tunnel, early) =
                connect_through(proxy, "127.0.0.1", greeter.port(), read_size).expect("tunnel");
            if read_size == 4096 {
                assert_eq!(
                    early, b"welcome\n",
                    "{proxy:?}: one read should carry reply and greeting"
                );
            }
            assert_echoes(tunnel, early, b"welcome\n");
        }
    }
}

//! Tiny in-process proxies for tests: an HTTP `CONNECT` proxy and a SOCKS5 proxy (RFC 1928 with
//! RFC 1929 auth), and the echo servers they relay to.
//!
//! Everything listens on 127.0.0.1 and connects only to loopback targets (the proxies refuse
//! anything else: 403, or SOCKS5 reply 0x02), and every socket has [`TIMEOUT`] on its reads and
//! writes, so a stuck test fails instead of hanging. Threads are detached; they end with their
//! connections or with the test process.
//!
//! Include it with `#[path = "support/proxies.rs"] mod proxies;`.

// Each test file that includes this module uses only part of it.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use base64::Engine as _;

/// Read and write timeout of every socket here.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);

/// How a test proxy behaves.
#[derive(Clone, Debug, Default)]
pub(crate) struct ProxyConfig {
    /// User name and password the proxy requires; `None` lets everyone through.
    pub(crate) auth: Option<(String, String)>,
    /// Wait up to this long for the target's first bytes after connecting, and send them in the
    /// same write as the proxy's success reply (as a proxy on a fast path may), so the client
    /// reads server bytes right behind the proxy's reply.
    pub(crate) coalesce: Option<Duration>,
}

impl ProxyConfig {
    /// Requires `user` / `pass`.
    pub(crate) fn with_auth(user: &str, pass: &str) -> Self {
        ProxyConfig {
            auth: Some((user.to_owned(), pass.to_owned())),
            ..Self::default()
        }
    }
}

fn set_timeouts(stream: &TcpStream) {
    let _ = stream.set_read_timeout(Some(TIMEOUT));
    let _ = stream.set_write_timeout(Some(TIMEOUT));
    let _ = stream.set_nodelay(true);
}

/// Binds 127.0.0.1 on a free port and runs `session` on a thread per connection.
fn serve(session: impl Fn(TcpStream) + Send + Sync + Clone + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            set_timeouts(&stream);
            let session = session.clone();
            thread::spawn(move || session(stream));
        }
    });
    addr
}

/// A TCP server that sends `greeting` on accept, then echoes every byte until EOF.
pub(crate) fn echo_server_with_greeting(greeting: &'static [u8]) -> SocketAddr {
    serve(move |mut stream| {
        if stream.write_all(greeting).is_err() {
            return;
        }
        let mut buf = [0; 4096];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if stream.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    })
}

/// A TCP server that echoes every byte until EOF.
pub(crate) fn echo_server() -> SocketAddr {
    echo_server_with_greeting(b"")
}

/// A port on 127.0.0.1 with nothing listening (connecting to it is refused).
pub(crate) fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().expect("local addr").port()
}

/// Where a proxy may connect: loopback addresses, and `localhost` as 127.0.0.1.
fn loopback_target(host: &str, port: u16) -> Option<SocketAddr> {
    let ip: IpAddr = match host {
        "localhost" => Ipv4Addr::LOCALHOST.into(),
        host => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?,
    };
    ip.is_loopback().then_some(SocketAddr::new(ip, port))
}

/// Connects to the target and, with `coalesce`, reads its first bytes.
fn connect_upstream(
    target: SocketAddr,
    coalesce: Option<Duration>,
) -> io::Result<(TcpStream, Vec<u8>)> {
    let upstream = TcpStream::connect_timeout(&target, TIMEOUT)?;
    set_timeouts(&upstream);
    let mut first = Vec::new();
    if let Some(wait) = coalesce {
        upstream.set_read_timeout(Some(wait))?;
        let mut buf = [0; 4096];
        if let Ok(n) = (&upstream).read(&mut buf) {
            first.extend_from_slice(&buf[..n]);
        }
        upstream.set_read_timeout(Some(TIMEOUT))?;
    }
    Ok((upstream, first))
}

/// Copies both ways until each side ends, then closes.
fn relay(client: TcpStream, upstream: TcpStream) {
    let (Ok(mut client_read), Ok(mut upstream_write)) = (client.try_clone(), upstream.try_clone())
    else {
        return;
    };
    let up = thread::spawn(move || {
        let _ = io::copy(&mut client_read, &mut upstream_write);
        let _ = upstream_write.shutdown(Shutdown::Write);
    });
    let (mut upstream_read, mut client_write) = (upstream, client);
    let _ = io::copy(&mut upstream_read, &mut client_write);
    let _ = client_write.shutdown(Shutdown::Write);
    let _ = up.join();
}

/// An HTTP `CONNECT` proxy: 200 and a tunnel, 407 without the right `Proxy-Authorization:
/// Basic`, 403 for a non-loopback target, 502 when the target refuses, 400 for anything else.
pub(crate) fn http_connect_proxy(config: ProxyConfig) -> SocketAddr {
    serve(move |client| http_session(client, &config))
}

fn http_session(mut client: TcpStream, config: &ProxyConfig) {
    let mut head = Vec::new();
    let mut buf = [0; 1024];
    let end = loop {
        if let Some(pos) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if head.len() > 8192 {
            return reply(&mut client, "400 Bad Request");
        }
        match client.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    };
    let early = head.split_off(end);
    let Ok(head) = String::from_utf8(head) else {
        return reply(&mut client, "400 Bad Request");
    };
    let mut lines = head.split("\r\n");
    let request_line: Vec<&str> = lines.next().unwrap_or_default().split(' ').collect();
    let [method, authority, version] = request_line[..] else {
        return reply(&mut client, "400 Bad Request");
    };
    if method != "CONNECT" || !version.starts_with("HTTP/1.") {
        return reply(&mut client, "400 Bad Request");
    }
    if let Some((user, pass)) = &config.auth {
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        );
        let authorized = lines.any(|line| {
            line.split_once(':').is_some_and(|(name, value)| {
                name.eq_ignore_ascii_case("proxy-authorization") && value.trim() == want
            })
        });
        if !authorized {
            return reply(
                &mut client,
                "407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"wsx-test\"",
            );
        }
    }
    let target = authority
        .rsplit_once(':')
        .and_then(|(host, port)| loopback_target(host, port.parse().ok()?));
    let Some(target) = target else {
        return reply(&mut client, "403 Forbidden");
    };
    let Ok((mut upstream, first)) = connect_upstream(target, config.coalesce) else {
        return reply(&mut client, "502 Bad Gateway");
    };
    if upstream.write_all(&early).is_err() {
        return;
    }
    let ok = [
        b"HTTP/1.1 200 Connection established\r\n\r\n".as_slice(),
        &first,
    ]
    .concat();
    if client.write_all(&ok).is_ok() {
        relay(client, upstream);
    }
}

fn reply(client: &mut TcpStream, status: &str) {
    let _ = write!(
        client,
        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let _ = client.shutdown(Shutdown::Write);
}

/// A SOCKS5 proxy for `CONNECT` only: method 0x00 without auth, 0x02 (RFC 1929) with it, 0xFF
/// when the client offers neither; replies 0x02 (not allowed) for non-loopback targets, 0x04
/// (host unreachable) for names other than `localhost`, 0x05 when the target refuses.
pub(crate) fn socks5_proxy(config: ProxyConfig) -> SocketAddr {
    serve(move |client| {
        let _ = socks5_session(client, &config);
    })
}

fn read_u8(stream: &mut TcpStream) -> io::Result<u8> {
    let mut byte = [0];
    stream.read_exact(&mut byte)?;
    Ok(byte[0])
}

fn read_vec(stream: &mut TcpStream, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    stream.read_exact(&mut buf)?;
    Ok(buf)
}

fn socks5_session(mut client: TcpStream, config: &ProxyConfig) -> io::Result<()> {
    if read_u8(&mut client)? != 5 {
        return Ok(());
    }
    let count = read_u8(&mut client)?;
    let methods = read_vec(&mut client, count.into())?;
    let method = if config.auth.is_some() { 0x02 } else { 0x00 };
    if !methods.contains(&method) {
        return client.write_all(&[5, 0xFF]);
    }
    client.write_all(&[5, method])?;
    if let Some((user, pass)) = &config.auth {
        let version = read_u8(&mut client)?;
        let ulen = read_u8(&mut client)?;
        let got_user = read_vec(&mut client, ulen.into())?;
        let plen = read_u8(&mut client)?;
        let got_pass = read_vec(&mut client, plen.into())?;
        let ok = version == 1 && got_user == user.as_bytes() && got_pass == pass.as_bytes();
        client.write_all(&[1, if ok { 0 } else { 1 }])?;
        if !ok {
            return Ok(());
        }
    }
    let [version, command, _, atyp] =
        <[u8; 4]>::try_from(read_vec(&mut client, 4)?).unwrap_or_default();
    if version != 5 {
        return Ok(());
    }
    let host = match atyp {
        1 => Ipv4Addr::from(<[u8; 4]>::try_from(read_vec(&mut client, 4)?).unwrap_or_default())
            .to_string(),
        4 => std::net::Ipv6Addr::from(
            <[u8; 16]>::try_from(read_vec(&mut client, 16)?).unwrap_or_default(),
        )
        .to_string(),
        3 => {
            let len = read_u8(&mut client)?;
            String::from_utf8_lossy(&read_vec(&mut client, len.into())?).into_owned()
        }
        _ => return socks5_reply(&mut client, 0x08),
    };
    let port =
        u16::from_be_bytes(<[u8; 2]>::try_from(read_vec(&mut client, 2)?).unwrap_or_default());
    if command != 1 {
        return socks5_reply(&mut client, 0x07);
    }
    let Some(target) = loopback_target(&host, port) else {
        return socks5_reply(&mut client, if atyp == 3 { 0x04 } else { 0x02 });
    };
    let Ok((upstream, first)) = connect_upstream(target, config.coalesce) else {
        return socks5_reply(&mut client, 0x05);
    };
    let bound = upstream.local_addr()?;
    let mut ok = vec![5, 0, 0];
    match bound.ip() {
        IpAddr::V4(ip) => ok.extend_from_slice(&[&[1], &ip.octets()[..]].concat()),
        IpAddr::V6(ip) => ok.extend_from_slice(&[&[4], &ip.octets()[..]].concat()),
    }
    ok.extend_from_slice(&bound.port().to_be_bytes());
    ok.extend_from_slice(&first);
    client.write_all(&ok)?;
    relay(client, upstream);
    Ok(())
}

fn socks5_reply(client: &mut TcpStream, code: u8) -> io::Result<()> {
    client.write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0])?;
    client.shutdown(Shutdown::Write)
}

//! The client's opening over tokio: TCP (and TLS for `wss://`), then the sans-IO
//! [`Connector`] (proxy phase, upgrade request, response checks, permessage-deflate, redirects),
//! all within [`ClientOptions::handshake_timeout`].

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::stream::{io_error, WebSocketConfig, WebSocketStream};
use super::tls::{self, MaybeTlsStream};
use crate::client::{ClientError as Error, ClientOptions, ConnectStep, Connector, Url};
use crate::protocol::handshake::UpgradeResponse;
use crate::HandshakeError;

/// Bytes read at a time during the handshake.
const CHUNK: usize = 16 << 10;

/// A client connection and the server's `101` response.
pub type Connected = (WebSocketStream<MaybeTlsStream<TcpStream>>, UpgradeResponse);

/// Connects to a `ws://` or `wss://` `url` with default [`ClientOptions`].
///
/// # Errors
///
/// As [`connect_with`].
///
/// # Examples
///
/// ```no_run
/// use futures_util::{SinkExt, StreamExt};
/// use wsx::tokio::Message;
///
/// # async fn _run() -> Result<(), wsx::tokio::Error> {
/// let (mut ws, _response) = wsx::tokio::connect("ws://127.0.0.1:9001/").await?;
/// ws.send(Message::Text("hello".into())).await?;
/// if let Some(Ok(Message::Text(reply))) = ws.next().await {
///     println!("{reply}");
/// }
/// ws.close(None).await?;
/// # Ok(())
/// # }
/// ```
pub async fn connect(url: &str) -> Result<Connected, Error> {
    connect_with(url, &ClientOptions::default()).await
}

/// Connects to `url` with `options`: subprotocols, headers, origin, permessage-deflate, limits,
/// TLS ([`ClientOptions::tls`]: a CA, a client certificate), an HTTP proxy (`CONNECT`, from
/// the environment by default), redirects, and the handshake timeout, as the blocking client
/// does. The stream gets [`WebSocketConfig`]'s defaults with the options' limits.
///
/// # Errors
///
/// [`Error::Url`], [`Error::Io`] (resolution, TCP), [`Error::Proxy`], [`Error::Tls`],
/// [`Error::Handshake`] (a non-101 answer carries its status and the first bytes of its body),
/// [`Error::TooManyRedirects`], [`Error::InsecureRedirect`], and [`Error::Timeout`] past
/// [`ClientOptions::handshake_timeout`].
pub async fn connect_with(url: &str, options: &ClientOptions) -> Result<Connected, Error> {
    match tokio::time::timeout(options.handshake_timeout, open(url, options)).await {
        Ok(result) => result,
        Err(_) => Err(Error::Timeout),
    }
}

async fn open(url: &str, options: &ClientOptions) -> Result<Connected, Error> {
    let mut connector = Connector::new(Url::parse(url)?, options.clone())?;
    loop {
        let tcp = open_tcp(&connector.connect_addr(), options.local_addr).await?;
        let mut stream = MaybeTlsStream::Plain(tcp);
        if connector.url().is_secure() && !connector.proxied() {
            stream = secure(stream, connector.url(), options).await?;
        }
        let mut out = Vec::new();
        connector.start(&mut out)?;
        stream.write_all(&out).await.map_err(io_error)?;
        let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
        let mut chunk = vec![0u8; CHUNK];
        // The head may not exceed the limit; the frames that follow it in the same read may.
        let most = options.limits.max_head_size.saturating_add(CHUNK);
        loop {
            if buf.len() >= most {
                return Err(HandshakeError::InvalidResponse("response head too large").into());
            }
            let n = stream.read(&mut chunk).await.map_err(io_error)?;
            if n == 0 {
                return Err(Error::Closed);
            }
            buf.extend_from_slice(&chunk[..n]);
            out.clear();
            let step = connector.handle_read(&buf, &mut out)?;
            if !out.is_empty() {
                stream.write_all(&out).await.map_err(io_error)?;
            }
            match step {
                ConnectStep::NeedMore { consumed } => {
                    buf.drain(..consumed);
                }
                ConnectStep::Tunnel { consumed } => {
                    if consumed != buf.len() {
                        // The server speaks only after our ClientHello: nothing may follow the
                        // proxy's answer yet.
                        return Err(HandshakeError::InvalidResponse(
                            "bytes after the proxy's answer",
                        )
                        .into());
                    }
                    buf.clear();
                    stream = secure(stream, connector.url(), options).await?;
                    out.clear();
                    connector.start_upgrade(&mut out)?;
                    stream.write_all(&out).await.map_err(io_error)?;
                }
                ConnectStep::Open {
                    consumed,
                    connection,
                    response,
                } => {
                    buf.drain(..consumed);
                    let config = WebSocketConfig {
                        limits: options.limits,
                        ..WebSocketConfig::default()
                    };
                    let ws = WebSocketStream::from_connection(stream, connection, buf, config);
                    return Ok((ws, response));
                }
                ConnectStep::Redirect { url } => {
                    connector = connector.follow(url)?;
                    break;
                }
            }
        }
    }
}

/// Starts TLS over a plain stream.
async fn secure(
    stream: MaybeTlsStream<TcpStream>,
    url: &Url,
    options: &ClientOptions,
) -> Result<MaybeTlsStream<TcpStream>, Error> {
    match stream {
        MaybeTlsStream::Plain(tcp) => Ok(MaybeTlsStream::Rustls(
            tls::handshake(tcp, url, options).await?,
        )),
        tls => Ok(tls),
    }
}

/// Resolves `addr` and connects to the first address that accepts, from `local` if given.
async fn open_tcp(addr: &str, local: Option<IpAddr>) -> Result<TcpStream, Error> {
    let mut last: Option<io::Error> = None;
    let mut any = false;
    for target in tokio::net::lookup_host(addr).await? {
        if local.is_some_and(|local| local.is_ipv4() != target.is_ipv4()) {
            // A local address of one family cannot reach the other: try the next target.
            continue;
        }
        any = true;
        match connect_one(target, local).await {
            Ok(tcp) => {
                tcp.set_nodelay(true)?;
                return Ok(tcp);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .unwrap_or_else(|| {
            let why = if any {
                format!("{addr} resolves to no address")
            } else {
                format!("{addr} has no usable address")
            };
            io::Error::new(io::ErrorKind::NotFound, why)
        })
        .into())
}

async fn connect_one(target: SocketAddr, local: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(local) = local {
        socket.bind(SocketAddr::new(local, 0))?;
    }
    socket.connect(target).await
}

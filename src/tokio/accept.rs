//! The server's opening over tokio: read the request head (bounded in size and time), run the
//! core's checks ([`UpgradeRequest::parse`]), let the application choose a subprotocol or
//! refuse, negotiate permessage-deflate, and write the `101` or the HTTP error.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::stream::{io_error, WebSocketConfig, WebSocketStream};
use crate::client::ClientError as Error;
use crate::protocol::deflate::{negotiate, DeflateOptions};
use crate::protocol::handshake::{
    reason_phrase, write_accept, write_error, AcceptOptions, UpgradeRequest,
};
use crate::protocol::{Config, Connection, Role};
use crate::{HandshakeError, Reject};

/// Bytes read at a time while the head arrives.
const CHUNK: usize = 4 << 10;

/// Options of [`accept_with`].
///
/// # Examples
///
/// ```
/// use wsx::protocol::deflate::DeflateOptions;
/// let config = wsx::tokio::AcceptConfig {
///     deflate: Some(DeflateOptions::default()),
///     ..wsx::tokio::AcceptConfig::default()
/// };
/// assert_eq!(config.handshake_timeout, std::time::Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptConfig {
    /// The stream's options; its [`limits`](WebSocketConfig::limits) also bound the request
    /// head ([`crate::Limits::max_head_size`], [`crate::Limits::max_headers`]: 431 past them).
    pub stream: WebSocketConfig,
    /// Accept permessage-deflate offers with these options (`None`, the default: decline).
    pub deflate: Option<DeflateOptions>,
    /// Time for the whole request head to arrive and the answer to be written. Default 10 s.
    /// Stops a client that opens connections and sends nothing (or a byte at a time).
    pub handshake_timeout: Duration,
}

impl Default for AcceptConfig {
    fn default() -> Self {
        AcceptConfig {
            stream: WebSocketConfig::default(),
            deflate: None,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// How the application accepts an upgrade in [`accept_with`]: the subprotocol and extra
/// headers of the `101`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accept {
    protocol: Option<String>,
    headers: Vec<(String, String)>,
}

impl Accept {
    /// Accepts with no subprotocol and no extra header.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers with `protocol`, which must be one the client offered (else the upgrade fails
    /// with 500, the server's mistake).
    #[must_use]
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocol = Some(protocol.into());
        self
    }

    /// Adds a header to the `101` (a header the handshake writes itself, or an invalid name
    /// or value, fails the upgrade with 500).
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Accepts a WebSocket connection on `io` with [`AcceptConfig`]'s defaults: any path, no
/// subprotocol, no permessage-deflate.
///
/// # Errors
///
/// As [`accept_with`].
pub async fn accept<S>(io: S) -> Result<WebSocketStream<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    accept_with(io, &AcceptConfig::default(), |_| Ok(Accept::new())).await
}

/// Accepts a WebSocket connection on `io` (a `TcpStream`, a `tokio_rustls::server::TlsStream`,
/// anything `AsyncRead + AsyncWrite + Unpin`): reads the request head, checks it (the answer
/// to a bad one is the HTTP error of [`HandshakeError::status`]: 400, 405, 426, 431), calls
/// `decide` with the request (path, query, headers, offered subprotocols, origin) to accept
/// with a subprotocol ([`Accept`]) or refuse with a status ([`Reject`]), answers
/// permessage-deflate offers per `config.deflate`, and writes the `101`.
///
/// # Errors
///
/// [`Error::Handshake`] for a request the checks refused (its status was answered);
/// [`Error::Refused`] when `decide` refused (its response was written); [`Error::Timeout`]
/// past `config.handshake_timeout`; [`Error::Closed`] when the client left before the head
/// ended; [`Error::Io`].
///
/// # Examples
///
/// ```no_run
/// use wsx::tokio::{accept_with, Accept, AcceptConfig};
///
/// # async fn _run(tcp: tokio::net::TcpStream) -> Result<(), wsx::tokio::Error> {
/// let ws = accept_with(tcp, &AcceptConfig::default(), |request| {
///     if request.path() != "/chat" {
///         return Err(wsx::Reject::new(404));
///     }
///     match request.protocols().find(|p| *p == "chat.v1") {
///         Some(p) => Ok(Accept::new().protocol(p)),
///         None => Ok(Accept::new()),
///     }
/// })
/// .await?;
/// # drop(ws);
/// # Ok(())
/// # }
/// ```
pub async fn accept_with<S, F>(
    io: S,
    config: &AcceptConfig,
    decide: F,
) -> Result<WebSocketStream<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&UpgradeRequest) -> Result<Accept, Reject>,
{
    match tokio::time::timeout(config.handshake_timeout, handshake(io, config, decide)).await {
        Ok(result) => result,
        Err(_) => Err(Error::Timeout),
    }
}

async fn handshake<S, F>(
    mut io: S,
    config: &AcceptConfig,
    decide: F,
) -> Result<WebSocketStream<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&UpgradeRequest) -> Result<Accept, Reject>,
{
    let limits = &config.stream.limits;
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; CHUNK];
    let (request, consumed) = loop {
        match UpgradeRequest::parse(&buf, limits) {
            Ok(Some(parsed)) => break parsed,
            Ok(None) => {}
            Err(e) => return Err(refuse(&mut io, e).await),
        }
        // `parse` fails a head past the limit; one read past it is all that is ever held.
        let n = io.read(&mut chunk).await.map_err(io_error)?;
        if n == 0 {
            return Err(Error::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let accept = match decide(&request) {
        Ok(accept) => accept,
        Err(reject) => {
            let mut out = Vec::new();
            write_reject(&reject, &mut out);
            answer_and_close(&mut io, &out).await;
            return Err(Error::Refused(reject.status()));
        }
    };
    let negotiated = config
        .deflate
        .as_ref()
        .and_then(|options| negotiate::server_accept(request.extensions(), options));
    let extensions: Vec<_> = negotiated
        .iter()
        .map(|(answer, _)| answer.clone())
        .collect();
    let headers: Vec<(&str, &str)> = accept
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut options = AcceptOptions::new()
        .with_extensions(&extensions)
        .with_headers(&headers);
    options.protocol = accept.protocol.as_deref();
    let mut out = Vec::new();
    if let Err(e) = write_accept(&request, &options, &mut out) {
        return Err(refuse(&mut io, e).await);
    }
    io.write_all(&out).await.map_err(io_error)?;
    io.flush().await.map_err(io_error)?;
    let mut conn = Connection::new(
        Role::Server,
        Config {
            limits: *limits,
            ..Config::default()
        },
    );
    if let (Some((_, params)), Some(options)) = (negotiated, config.deflate) {
        conn.set_deflate(params, Arc::new(options));
    }
    buf.drain(..consumed);
    Ok(WebSocketStream::from_connection(
        io,
        conn,
        buf,
        config.stream,
    ))
}

/// Answers `error` with its HTTP status, closes, and returns the error.
async fn refuse<S: AsyncWrite + Unpin>(io: &mut S, error: HandshakeError) -> Error {
    let mut out = Vec::new();
    write_error(&error, &mut out);
    answer_and_close(io, &out).await;
    Error::Handshake(error)
}

/// Writes a refusal and shuts the transport down; the client may be gone already.
async fn answer_and_close<S: AsyncWrite + Unpin>(io: &mut S, response: &[u8]) {
    if io.write_all(response).await.is_ok() {
        let _ = io.shutdown().await;
    }
}

/// Appends the HTTP response of an application's refusal.
fn write_reject(reject: &Reject, out: &mut Vec<u8>) {
    let status = reject.status();
    let phrase = reason_phrase(status);
    let body = if reject.body.is_empty() {
        phrase
    } else {
        reject.body.as_str()
    };
    out.extend_from_slice(format!("HTTP/1.1 {status} {phrase}\r\n").as_bytes());
    for (name, value) in &reject.headers {
        let breaks = |s: &str| s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0);
        if name.is_empty() || name.contains(':') || breaks(name) || breaks(value) {
            continue;
        }
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}

//! `wss://` for the tokio client: [`MaybeTlsStream`] and the TLS handshake through
//! `tokio-rustls`, with the configuration of [`ClientOptions::tls_config`] (the same
//! verification, CA and client certificate as the blocking client).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::stream::io_error;
use crate::client::{ClientError as Error, ClientOptions, Url};

/// The transport of a client connection: plain for `ws://`, TLS for `wss://`.
#[derive(Debug)]
#[non_exhaustive]
#[allow(clippy::large_enum_variant)] // one per connection; a box would only add an allocation
pub enum MaybeTlsStream<S> {
    /// `ws://`.
    Plain(S),
    /// `wss://`, TLS through `tokio-rustls`.
    Rustls(TlsStream<S>),
}

impl<S> MaybeTlsStream<S> {
    /// The TCP stream (under TLS, for `wss://`).
    pub fn get_ref(&self) -> &S {
        match self {
            MaybeTlsStream::Plain(s) => s,
            MaybeTlsStream::Rustls(s) => s.get_ref().0,
        }
    }

    /// For `wss://`, the TLS session (peer certificates, protocol version, ALPN).
    pub fn tls(&self) -> Option<&rustls::ClientConnection> {
        match self {
            MaybeTlsStream::Plain(_) => None,
            MaybeTlsStream::Rustls(s) => Some(s.get_ref().1),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MaybeTlsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTlsStream::Rustls(s) => match Pin::new(s).poll_read(cx, buf) {
                // A peer that closes TCP without close_notify ends the stream all the same.
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    Poll::Ready(Ok(()))
                }
                other => other,
            },
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MaybeTlsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTlsStream::Rustls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTlsStream::Rustls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTlsStream::Rustls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// The TLS server name of `url`'s host (brackets of an IPv6 literal removed).
fn server_name(url: &Url) -> Result<ServerName<'static>, Error> {
    let host = url.host().trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|_| Error::TlsName(host.to_owned()))
}

/// Runs the client TLS handshake for `url` over `io` with `options`' TLS configuration.
pub(super) async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    url: &Url,
    options: &ClientOptions,
) -> Result<TlsStream<S>, Error> {
    let name = server_name(url)?;
    let config = options.tls_config().config().clone();
    TlsConnector::from(config)
        .connect(name, io)
        .await
        .map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => Error::Closed,
            _ => io_error(e),
        })
}

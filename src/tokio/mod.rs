//! The tokio adapter (cargo feature `tokio`): WebSocket connections as a
//! [`Stream`](futures_core::Stream) + [`Sink`](futures_sink::Sink) ([`WebSocketStream`]) over
//! any `AsyncRead + AsyncWrite`, on the same sans-IO core as the engine and the blocking client
//! (permessage-deflate, limits, UTF-8 checks, the closing handshake). `docs/tokio.md` tells when
//! to use it instead of the thread-per-core engine, and how to port a tokio-tungstenite program.
//!
//! ```text
//! connect(url) ─► TCP (+ TLS, tokio-rustls) ─► Connector (sans-IO request, checks, deflate) ─┐
//! accept(io)   ─► UpgradeRequest::parse ─► your decision ─► 101 / HTTP error ───────────────┤
//! from_raw_socket(io, role, config)  (a stream hyper or another server already upgraded) ───┤
//!                                                                                            ▼
//!           WebSocketStream<S>: Stream<Item = Result<Message, Error>> + Sink<Message>
//! ```
//!
//! - [`connect`] / [`connect_with`]: `ws://` and `wss://` with [`ClientOptions`] (TLS through
//!   `tokio-rustls` with [`ClientOptions::tls`]'s configuration, HTTP `CONNECT` proxies,
//!   redirects as the options allow, the handshake timeout).
//! - [`accept`] / [`accept_with`]: the server's side over a `TcpStream` or a
//!   `tokio_rustls::server::TlsStream`, with a callback that picks the subprotocol or refuses.
//! - [`WebSocketStream::from_raw_socket`]: a stream another library has upgraded.
//!
//! Messages are [`Message`] (the blocking client's owned type: text, binary, ping, pong,
//! close); errors are [`Error`] (the clients' error type, for both roles).
//!
//! # Examples
//!
//! An echo server and a client on one runtime; the halves of the client's stream run in two
//! tasks (`futures_util::StreamExt::split`):
//!
//! ```
//! use futures_util::{SinkExt, StreamExt};
//! use wsx::tokio::Message;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), wsx::tokio::Error> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let url = format!("ws://{}/", listener.local_addr()?);
//! tokio::spawn(async move {
//!     let (tcp, _) = listener.accept().await?;
//!     let mut ws = wsx::tokio::accept(tcp).await?;
//!     while let Some(Ok(message)) = ws.next().await {
//!         if matches!(message, Message::Text(_) | Message::Binary(_)) {
//!             ws.send(message).await?;
//!         }
//!     }
//!     Ok::<(), wsx::tokio::Error>(())
//! });
//!
//! let (ws, _response) = wsx::tokio::connect_with(&url, &wsx::client::ClientOptions::new().no_proxy()).await?;
//! let (mut tx, mut rx) = ws.split();
//! let writer = tokio::spawn(async move {
//!     tx.send(Message::Text("hello".into())).await?;
//!     Ok::<_, wsx::tokio::Error>(tx)
//! });
//! assert_eq!(rx.next().await.transpose()?, Some(Message::Text("hello".into())));
//! let tx = writer.await.expect("the writer task")?;
//! let mut ws = tx.reunite(rx).expect("halves of one stream");
//! ws.close(None).await?;
//! # Ok(())
//! # }
//! ```

mod accept;
mod connect;
mod stream;
mod tls;

pub use accept::{accept, accept_with, Accept, AcceptConfig};
pub use connect::{connect, connect_with, Connected};
pub use stream::{WebSocketConfig, WebSocketStream};
pub use tls::MaybeTlsStream;

pub use crate::blocking::Message;
pub use crate::client::ClientError as Error;
pub use crate::client::ClientOptions;
/// The `tokio-rustls` this adapter is built with (rustls 0.23 with `ring`, as the rest of the
/// crate), for a server's `TlsAcceptor` made from [`ServerTls::config`](crate::tls::ServerTls::config).
pub use tokio_rustls;

//! Helpers for the tokio adapter's tests (`tests/tokio_*.rs`): a bounded runtime, bounded
//! waits, client options, a listener on a free port, and echo servers over `WebSocketStream`.
//!
//! Include it with `#[path = "support/tokio.rs"] mod tokio_support;`.

// Each test file that includes this module uses only part of it.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use wsx::client::{ClientError, ClientOptions};
use wsx::tokio::{accept_with, Accept, AcceptConfig, Message, WebSocketStream};

/// The bound on every wait of these tests (it only decides how fast a broken build fails).
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// Runs `body` on a two-thread runtime, bounded by [`WAIT`] (twice, for the slow ones).
pub(crate) fn run<F: Future<Output = ()>>(body: F) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        tokio::time::timeout(WAIT * 2, body)
            .await
            .expect("the test finishes in time");
    });
}

/// Awaits `f` within [`WAIT`].
pub(crate) async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {WAIT:?}"))
}

pub(crate) fn options() -> ClientOptions {
    ClientOptions::new().no_proxy().handshake_timeout(WAIT)
}

/// The next message of `ws`, which must come.
pub(crate) async fn next<S>(ws: &mut S) -> Message
where
    S: futures_util::Stream<Item = Result<Message, ClientError>> + Unpin,
{
    within("a message", ws.next())
        .await
        .expect("the stream goes on")
        .expect("a message, not an error")
}

/// A listener on a free port and its `ws://` URL.
pub(crate) async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("addr"));
    (listener, url)
}

/// Echoes text and binary messages until the stream ends; returns every non-data message seen.
pub(crate) async fn echo<S>(mut ws: WebSocketStream<S>) -> Vec<Message>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut seen = Vec::new();
    while let Some(message) = ws.next().await {
        match message {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                if ws.send(m).await.is_err() {
                    break;
                }
            }
            Ok(other) => seen.push(other),
            Err(_) => break,
        }
    }
    seen
}

/// A tokio echo server for one connection with `config`; returns its URL and the task that
/// yields the control messages it saw.
pub(crate) async fn tokio_echo_server(
    config: AcceptConfig,
) -> (String, tokio::task::JoinHandle<Vec<Message>>) {
    let (listener, url) = listen().await;
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let ws = accept_with(tcp, &config, |_| Ok(Accept::new()))
            .await
            .expect("upgrade");
        echo(ws).await
    });
    (url, task)
}

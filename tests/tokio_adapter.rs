//! The tokio adapter (`wsx::tokio`): both roles against each other, against the engine
//! (`wsx::Server`, on both backends) and against the blocking client; fragmented and large
//! messages, permessage-deflate both ways, split halves in two tasks, pings answered while
//! only reading, the closing handshake from either side with codes, limits (1009),
//! backpressure, proxies. `tests/tokio_handshake.rs` has the refused openings and their HTTP
//! status, `tests/tokio_tls.rs` runs over `wss://`, `tests/tokio_interop.rs` against Node's ws
//! and Python's websockets.
#![cfg(feature = "tokio")]

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;
#[path = "support/proxies.rs"]
mod proxies;
#[path = "support/tokio.rs"]
mod tokio_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsx::client::{ClientError, ClientOptions};
use wsx::protocol::deflate::DeflateOptions;
use wsx::tokio::{
    accept, accept_with, Accept, AcceptConfig, Message, WebSocketConfig, WebSocketStream,
};
use wsx::{Backend, CloseCode, Conn, Handler, Limits, ProtocolError, Role};

use tokio_support::{echo, listen, next, options, run, tokio_echo_server, within, WAIT};

/// Large and varied messages: empty, small, 126 and 65,536 bytes (the two longer length
/// forms), 3 MiB of compressible text and 1 MiB of binary.
fn messages() -> Vec<Message> {
    let text: String = (0..3 << 20)
        .map(|i| char::from(b'a' + (i % 23) as u8))
        .collect();
    vec![
        Message::Text(String::new()),
        Message::Text("héllo".into()),
        Message::Binary(vec![7; 126]),
        Message::Binary((0..65536u32).map(|i| (i * 31 % 251) as u8).collect()),
        Message::Text(text),
        Message::Binary((0..1u32 << 20).map(|i| (i % 256) as u8).collect()),
    ]
}

#[test]
fn tokio_client_and_server_echo_large_messages_and_close() {
    run(async {
        let (url, server) = tokio_echo_server(AcceptConfig::default()).await;
        let (mut ws, response) = wsx::tokio::connect_with(&url, &options())
            .await
            .expect("connect");
        assert_eq!(response.status(), 101);
        assert_eq!(ws.role(), Role::Client);
        assert_eq!(ws.deflate_params(), None);
        for m in messages() {
            ws.send(m.clone()).await.expect("send");
            assert!(next(&mut ws).await == m, "echo differs");
        }
        within("close", ws.close(Some((CloseCode(4000), "bye"))))
            .await
            .expect("close");
        // The server's reply (the code echoed) is handed out, then the stream ends.
        assert_eq!(
            next(&mut ws).await,
            Message::Close(CloseCode(4000), String::new())
        );
        assert!(ws.next().await.is_none());
        assert!(futures_util::stream::FusedStream::is_terminated(&ws));
        let seen = within("the server's end", server)
            .await
            .expect("server task");
        assert_eq!(seen, [Message::Close(CloseCode(4000), "bye".into())]);
    });
}

#[test]
fn deflate_in_both_roles() {
    run(async {
        let config = AcceptConfig {
            deflate: Some(DeflateOptions {
                threshold: 0,
                ..DeflateOptions::default()
            }),
            ..AcceptConfig::default()
        };
        let (listener, url) = listen().await;
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let ws = accept_with(tcp, &config, |_| Ok(Accept::new()))
                .await
                .expect("upgrade");
            assert!(
                ws.deflate_params().is_some(),
                "the server negotiated deflate"
            );
            echo(ws).await
        });
        let counted = Counted::connect(&url).await;
        let client = options().deflate(DeflateOptions {
            threshold: 0,
            ..DeflateOptions::default()
        });
        let (mut ws, response) = counted.upgrade(&url, &client).await;
        let header = response
            .header("sec-websocket-extensions")
            .expect("an answer");
        assert!(header.starts_with(b"permessage-deflate"), "{header:?}");
        assert!(ws.deflate_params().is_some());
        let list = messages();
        let raw: usize = list.iter().map(payload_len).sum();
        for m in list {
            ws.send(m.clone()).await.expect("send");
            assert!(next(&mut ws).await == m, "echo differs");
        }
        // The 3 MiB text and the repeated bytes compress: far fewer bytes crossed the wire.
        let (read, written) = ws.get_ref().counts();
        assert!(
            written < raw / 4 && read < raw / 4,
            "{read} / {written} of {raw}"
        );
        ws.close(None).await.expect("close");
        within("the server's end", server)
            .await
            .expect("server task");
    });
}

fn payload_len(m: &Message) -> usize {
    match m {
        Message::Text(t) => t.len(),
        Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b.len(),
        Message::Close(..) => 0,
    }
}

/// A TCP stream that counts the bytes it reads and writes.
struct Counted {
    tcp: TcpStream,
    read: Arc<AtomicUsize>,
    written: Arc<AtomicUsize>,
}

impl Counted {
    async fn connect(url: &str) -> Counted {
        let addr = url.trim_start_matches("ws://").trim_end_matches('/');
        Counted {
            tcp: TcpStream::connect(addr).await.expect("connect"),
            read: Arc::default(),
            written: Arc::default(),
        }
    }

    fn counts(&self) -> (usize, usize) {
        (
            self.read.load(Ordering::Relaxed),
            self.written.load(Ordering::Relaxed),
        )
    }

    /// The client handshake by hand (the request of the core), then `from_partially_read`
    /// with the negotiated deflate: the path a stream upgraded elsewhere takes.
    async fn upgrade(
        mut self,
        url: &str,
        options: &ClientOptions,
    ) -> (
        WebSocketStream<Counted>,
        wsx::protocol::handshake::UpgradeResponse,
    ) {
        let url = wsx::client::Url::parse(url).expect("url");
        let mut connector = wsx::client::Connector::new(url, options.clone()).expect("connector");
        let mut out = Vec::new();
        connector.start(&mut out).expect("request");
        self.write_all(&out).await.expect("write");
        let mut buf = Vec::new();
        loop {
            let mut chunk = [0u8; 4096];
            let n = self.read(&mut chunk).await.expect("read");
            assert!(n > 0, "the server closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
            out.clear();
            match connector.handle_read(&buf, &mut out).expect("handshake") {
                wsx::client::ConnectStep::Open {
                    consumed,
                    connection,
                    response,
                } => {
                    let params = connection.deflate_params().expect("deflate negotiated");
                    let deflate = options.deflate.expect("offered");
                    let ws = WebSocketStream::from_partially_read(
                        self,
                        buf[consumed..].to_vec(),
                        Role::Client,
                        WebSocketConfig::default(),
                    )
                    .with_deflate(params, deflate);
                    return (ws, response);
                }
                wsx::client::ConnectStep::NeedMore { .. } => {}
                other => panic!("{other:?}"),
            }
        }
    }
}

impl tokio::io::AsyncRead for Counted {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut this.tcp).poll_read(cx, buf);
        this.read
            .fetch_add(buf.filled().len() - before, Ordering::Relaxed);
        r
    }
}

impl tokio::io::AsyncWrite for Counted {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = std::pin::Pin::new(&mut this.tcp).poll_write(cx, data);
        if let std::task::Poll::Ready(Ok(n)) = r {
            this.written.fetch_add(n, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[test]
fn split_halves_read_and_write_from_two_tasks() {
    run(async {
        let (url, server) = tokio_echo_server(AcceptConfig::default()).await;
        let (ws, _) = wsx::tokio::connect_with(&url, &options())
            .await
            .expect("connect");
        let (mut tx, mut rx) = ws.split();
        const N: usize = 2000;
        // The writer sends while the reader reads: neither waits for the other.
        let writer = tokio::spawn(async move {
            for i in 0..N {
                tx.send(Message::Text(format!("{i:05}{}", "x".repeat(i % 700))))
                    .await
                    .expect("send");
            }
            tx
        });
        let reader = tokio::spawn(async move {
            for i in 0..N {
                match next(&mut rx).await {
                    Message::Text(t) => assert!(t.starts_with(&format!("{i:05}")), "echo {i}"),
                    other => panic!("{other:?}"),
                }
            }
            rx
        });
        let tx = within("the writer", writer).await.expect("writer task");
        let rx = within("the reader", reader).await.expect("reader task");
        let mut ws = tx.reunite(rx).expect("one stream");
        ws.close(None).await.expect("close");
        within("the server's end", server)
            .await
            .expect("server task");
    });
}

#[test]
fn a_reader_waiting_forever_does_not_block_the_writer() {
    run(async {
        let (listener, url) = listen().await;
        // A server that only counts what it receives and never sends a message.
        let (count_tx, mut count_rx) = tokio::sync::mpsc::unbounded_channel();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut ws = accept(tcp).await.expect("upgrade");
            let mut n = 0;
            while let Some(Ok(m)) = ws.next().await {
                if matches!(m, Message::Binary(_)) {
                    n += 1;
                    let _ = count_tx.send(n);
                }
            }
        });
        let (ws, _) = wsx::tokio::connect_with(&url, &options())
            .await
            .expect("connect");
        let (mut tx, mut rx) = ws.split();
        let reader =
            tokio::spawn(async move { rx.next().await.map(|r| r.map_err(|e| e.to_string())) });
        for i in 0..100u8 {
            within("a send", tx.send(Message::Binary(vec![i; 1000])))
                .await
                .expect("send");
        }
        let mut last = 0;
        while last < 100 {
            last = within("the server's count", count_rx.recv())
                .await
                .expect("count");
        }
        assert!(!reader.is_finished(), "the reader still waits");
        // The close goes through the write half; the reader then sees the server's reply.
        within("close", tx.close()).await.expect("close");
        let got = within("the reader's end", reader)
            .await
            .expect("reader task");
        assert_eq!(
            got,
            Some(Ok(Message::Close(CloseCode::NORMAL, String::new())))
        );
        within("the server's end", server)
            .await
            .expect("server task");
    });
}

#[test]
fn pings_are_answered_while_the_application_only_reads() {
    run(async {
        let (listener, url) = listen().await;
        // Server role: only reads; the blocking client's pings come back as pongs.
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut ws = accept(tcp).await.expect("upgrade");
            let mut pings = Vec::new();
            while let Some(Ok(m)) = ws.next().await {
                pings.push(m);
            }
            pings
        });
        let url2 = url.clone();
        let blocking = tokio::task::spawn_blocking(move || {
            let mut ws = wsx::blocking::connect_with(&url2, &options()).expect("connect");
            ws.set_read_timeout(Some(WAIT)).expect("timeout");
            for payload in [&b"one"[..], b"two", b""] {
                ws.ping(payload).expect("ping");
                assert_eq!(ws.recv().expect("pong"), Message::Pong(payload.to_vec()));
            }
            ws.close(CloseCode::NORMAL, "").expect("close");
        });
        within("the blocking client", blocking)
            .await
            .expect("client thread");
        let seen = within("the server's end", server)
            .await
            .expect("server task");
        assert_eq!(
            seen,
            [
                Message::Ping(b"one".to_vec()),
                Message::Ping(b"two".to_vec()),
                Message::Ping(Vec::new()),
                Message::Close(CloseCode::NORMAL, String::new())
            ]
        );

        // Client role: the server pings, the tokio client's application only reads.
        let (listener, url) = listen().await;
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut ws = accept(tcp).await.expect("upgrade");
            ws.send(Message::Ping(b"are you there".to_vec()))
                .await
                .expect("ping");
            let pong = next(&mut ws).await;
            ws.close(Some((CloseCode(4001), "done")))
                .await
                .expect("close");
            pong
        });
        let (mut ws, _) = wsx::tokio::connect_with(&url, &options())
            .await
            .expect("connect");
        assert_eq!(
            next(&mut ws).await,
            Message::Ping(b"are you there".to_vec())
        );
        // Server-initiated close: handed out with its code, answered, then the end.
        assert_eq!(
            next(&mut ws).await,
            Message::Close(CloseCode(4001), "done".into())
        );
        assert!(within("the end", ws.next()).await.is_none());
        let pong = within("the server's end", server)
            .await
            .expect("server task");
        assert_eq!(pong, Message::Pong(b"are you there".to_vec()));
    });
}

#[test]
fn fragmented_messages_from_the_blocking_client_are_assembled() {
    run(async {
        let (url, server) = tokio_echo_server(AcceptConfig::default()).await;
        let client = tokio::task::spawn_blocking(move || {
            let mut ws = wsx::blocking::connect_with(&url, &options()).expect("connect");
            ws.set_read_timeout(Some(WAIT)).expect("timeout");
            ws.send_fragment(Some(wsx::MessageKind::Text), "hé".as_bytes(), false)
                .expect("1");
            ws.ping(b"between").expect("ping");
            ws.send_fragment(None, b"llo ", false).expect("2");
            ws.send_fragment(None, &[b'w'; 100_000], true).expect("3");
            assert_eq!(ws.recv().expect("pong"), Message::Pong(b"between".to_vec()));
            let want = format!("héllo {}", "w".repeat(100_000));
            assert_eq!(ws.recv().expect("echo"), Message::Text(want));
            ws.close(CloseCode::NORMAL, "").expect("close");
        });
        within("the blocking client", client)
            .await
            .expect("client thread");
        within("the server's end", server)
            .await
            .expect("server task");
    });
}

#[test]
fn oversized_messages_close_with_1009_in_both_roles() {
    run(async {
        // Server role.
        let limits = Limits {
            max_message_size: 1000,
            ..Limits::DEFAULT
        };
        let config = AcceptConfig {
            stream: WebSocketConfig {
                limits,
                ..WebSocketConfig::default()
            },
            ..AcceptConfig::default()
        };
        let (listener, url) = listen().await;
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut ws = accept_with(tcp, &config, |_| Ok(Accept::new()))
                .await
                .expect("upgrade");
            let first = ws.next().await;
            let after = ws.next().await;
            (first.map(|r| r.map_err(|e| e.to_string())), after.is_none())
        });
        let client = tokio::task::spawn_blocking(move || {
            let mut ws = wsx::blocking::connect_with(&url, &options()).expect("connect");
            ws.set_read_timeout(Some(WAIT)).expect("timeout");
            ws.send_binary(&[0; 1001]).expect("send");
            ws.recv().expect("the close frame")
        });
        let close = within("the client", client).await.expect("client thread");
        assert!(
            matches!(close, Message::Close(CloseCode(1009), _)),
            "{close:?}"
        );
        let (first, ended) = within("the server", server).await.expect("server task");
        let error = first.expect("an item").expect_err("an error");
        assert!(error.contains("1000"), "{error}");
        assert!(ended, "the stream ends after the error");

        // Client role: a tokio server sends more than the client's max_payload.
        let (listener, url) = listen().await;
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut ws = accept(tcp).await.expect("upgrade");
            ws.send(Message::Text("x".repeat(5000)))
                .await
                .expect("send");
            next(&mut ws).await
        });
        let (mut ws, _) = wsx::tokio::connect_with(&url, &options().max_payload(4096))
            .await
            .expect("connect");
        match within("the error", ws.next()).await {
            Some(Err(ClientError::Protocol(e))) => {
                assert_eq!(e.close_code(), CloseCode(1009), "{e}");
                assert!(
                    matches!(e, ProtocolError::FrameTooLarge { max: 4096, .. }),
                    "{e}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(ws.next().await.is_none());
        let close = within("the server", server).await.expect("server task");
        assert!(
            matches!(close, Message::Close(CloseCode(1009), _)),
            "{close:?}"
        );
    });
}

/// Sends `request` to a fresh tokio server that accepts with `decide`; returns the response
/// bytes and what `accept_with` returned.
#[test]
fn from_raw_socket_over_an_in_memory_pipe() {
    run(async {
        let (a, b) = tokio::io::duplex(1024);
        let server = WebSocketStream::from_raw_socket(a, Role::Server, WebSocketConfig::default());
        let mut client =
            WebSocketStream::from_raw_socket(b, Role::Client, WebSocketConfig::default());
        let task = tokio::spawn(echo(server));
        // Bigger than the pipe: the writer waits for the reader, and both go on.
        let big = Message::Binary(vec![3; 300_000]);
        client.send(big.clone()).await.expect("send");
        assert!(next(&mut client).await == big);
        client
            .close(Some((CloseCode::GOING_AWAY, "bye")))
            .await
            .expect("close");
        let seen = within("the server's end", task).await.expect("server task");
        assert_eq!(seen, [Message::Close(CloseCode::GOING_AWAY, "bye".into())]);
    });
}

#[test]
fn backpressure_bounds_the_write_buffer() {
    run(async {
        // A peer that does not read: sends stop once the buffer passes its limit.
        let (a, _b) = tokio::io::duplex(4096);
        let mut ws = WebSocketStream::from_raw_socket(a, Role::Server, WebSocketConfig::default());
        ws.set_write_buffer_limit(64 << 10);
        let mut sent = 0usize;
        let blocked = tokio::time::timeout(Duration::from_millis(300), async {
            loop {
                ws.feed(Message::Binary(vec![1; 1000])).await.expect("feed");
                sent += 1;
            }
        })
        .await;
        assert!(blocked.is_err(), "sends went on forever");
        assert!(
            ws.buffered_amount() <= (64 << 10) + 1010,
            "{}",
            ws.buffered_amount()
        );
        assert!(sent >= 60, "only {sent} sends before the limit");
    });
}

// ---------------------------------------------------------------------------------------------
// Against the engine.

struct EngineEcho;

impl Handler for EngineEcho {
    type State = ();

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: wsx::Message<'_>) {
        let _ = conn.send(message);
    }
}

test_all!(tokio_client_against_the_engine_with_deflate);
fn tokio_client_against_the_engine_with_deflate(backend: Backend) {
    let server = common::start_server(
        backend,
        wsx::Server::builder()
            .threads(1)
            .deflate(DeflateOptions::default()),
        |_| EngineEcho,
    );
    let url = format!("ws://{}/", server.local_addr());
    run(async {
        let client = options().deflate(DeflateOptions::default());
        let (mut ws, _) = wsx::tokio::connect_with(&url, &client)
            .await
            .expect("connect");
        assert!(
            ws.deflate_params().is_some(),
            "the engine negotiated deflate"
        );
        let list = messages();
        for m in &list {
            ws.send(m.clone()).await.expect("send");
            assert!(next(&mut ws).await == *m, "echo differs");
        }
        ws.close(Some((CloseCode::NORMAL, "done")))
            .await
            .expect("close");
        assert_eq!(
            next(&mut ws).await,
            Message::Close(CloseCode::NORMAL, String::new())
        );
    });
    let raw: u64 = messages().iter().map(|m| payload_len(m) as u64).sum();
    assert!(
        common::wait_until(WAIT, || server.stats().connections == 0),
        "the engine closed"
    );
    let stats = server.stats();
    assert!(
        stats.bytes_in < raw / 4 && stats.bytes_out < raw / 4,
        "{stats:?} for {raw}"
    );
    common::stop(&server);
}

#[test]
fn blocking_client_against_a_tokio_server_with_deflate() {
    run(async {
        let (url, server) = tokio_echo_server(AcceptConfig {
            deflate: Some(DeflateOptions::default()),
            ..AcceptConfig::default()
        })
        .await;
        let client = tokio::task::spawn_blocking(move || {
            let mut ws =
                wsx::blocking::connect_with(&url, &options().deflate(DeflateOptions::default()))
                    .expect("connect");
            ws.set_read_timeout(Some(WAIT)).expect("timeout");
            let answer = ws
                .response()
                .header("sec-websocket-extensions")
                .map(<[u8]>::to_vec);
            assert!(answer.is_some_and(|a| a.starts_with(b"permessage-deflate")));
            let text = "abc".repeat(100_000);
            ws.send_text(&text).expect("send");
            assert_eq!(ws.recv().expect("echo"), Message::Text(text));
            ws.close(CloseCode::NORMAL, "").expect("close");
        });
        within("the blocking client", client)
            .await
            .expect("client thread");
        within("the server's end", server)
            .await
            .expect("server task");
    });
}

#[test]
fn docs_tokio_md_shows_the_examples() {
    let doc = include_str!("../docs/tokio.md");
    for (name, example) in [
        (
            "examples/tokio_echo.rs",
            include_str!("../examples/tokio_echo.rs"),
        ),
        (
            "examples/tokio_client.rs",
            include_str!("../examples/tokio_client.rs"),
        ),
    ] {
        assert!(
            doc.contains(&format!("```rust,no_run\n{example}```")),
            "docs/tokio.md must show {name} verbatim"
        );
    }
}

#[test]
fn through_http_connect_and_socks5_proxies() {
    run(async {
        for (scheme, proxy) in [
            (
                "http",
                proxies::http_connect_proxy(proxies::ProxyConfig::default()),
            ),
            (
                "socks5",
                proxies::socks5_proxy(proxies::ProxyConfig::with_auth("u", "p")),
            ),
        ] {
            let (url, server) = tokio_echo_server(AcceptConfig::default()).await;
            let auth = if scheme == "socks5" { "u:p@" } else { "" };
            let proxy = wsx::client::proxy::Proxy::parse(&format!("{scheme}://{auth}{proxy}"))
                .expect("proxy url");
            let client = options().proxy(proxy);
            let (mut ws, _) = wsx::tokio::connect_with(&url, &client)
                .await
                .unwrap_or_else(|e| panic!("through {scheme}: {e}"));
            ws.send(Message::Text(scheme.into())).await.expect("send");
            assert_eq!(next(&mut ws).await, Message::Text(scheme.into()));
            ws.close(None).await.expect("close");
            within("the server's end", server)
                .await
                .expect("server task");
        }
    });
}

#[test]
fn a_transport_that_ends_without_a_close_frame_is_one_error() {
    run(async {
        let (a, b) = tokio::io::duplex(1024);
        let mut ws = WebSocketStream::from_raw_socket(a, Role::Client, WebSocketConfig::default());
        drop(b);
        match within("the error", ws.next()).await {
            Some(Err(ClientError::Io(e))) => {
                assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}")
            }
            other => panic!("{other:?}"),
        }
        assert!(within("the end", ws.next()).await.is_none());
        assert!(ws.send(Message::Text("late".into())).await.is_err());
    });
}

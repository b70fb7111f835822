//! The tokio adapter's openings: refused requests get their HTTP status (426, 400, 405, 431,
//! the application's own refusal, 500 for the server's mistake), a client that sends nothing
//! times out, the client sees a refusal's status and times out on a silent server, and the
//! accept callback picks the subprotocol and adds headers.
#![cfg(feature = "tokio")]

// `common` needs it; its `test_all!` is not used here.
#[allow(unused_macros)]
#[path = "support/backends.rs"]
mod backends;
mod common;
#[path = "support/tokio.rs"]
mod tokio_support;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsx::client::ClientError;
use wsx::protocol::handshake::reason_phrase;
use wsx::tokio::{accept_with, Accept, AcceptConfig, WebSocketConfig};
use wsx::{HandshakeError, Limits};

use tokio_support::{echo, listen, options, run, within};

async fn refused(
    request: Vec<u8>,
    config: AcceptConfig,
    decide: fn(&wsx::protocol::handshake::UpgradeRequest) -> Result<Accept, wsx::Reject>,
) -> (String, ClientError) {
    let (listener, url) = listen().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        accept_with(tcp, &config, decide)
            .await
            .expect_err("refused")
    });
    let mut tcp = TcpStream::connect(url.trim_start_matches("ws://").trim_end_matches('/'))
        .await
        .expect("connect");
    tcp.write_all(&request).await.expect("write");
    let mut response = Vec::new();
    within("the answer", tcp.read_to_end(&mut response))
        .await
        .expect("read");
    let error = within("the server", server).await.expect("server task");
    (String::from_utf8_lossy(&response).into_owned(), error)
}

fn upgrade_request(path: &str, extra: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n",
        common::SAMPLE_KEY
    )
    .into_bytes()
}

#[test]
fn bad_handshakes_get_their_http_status() {
    run(async {
        let ok: fn(&_) -> _ = |_| Ok(Accept::new());
        // A plain HTTP request: 426 with the versions.
        let plain = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        let (response, error) = refused(plain, AcceptConfig::default(), ok).await;
        assert!(response.starts_with("HTTP/1.1 426 "), "{response}");
        assert!(
            response.contains("Sec-WebSocket-Version: 13, 8"),
            "{response}"
        );
        assert!(
            matches!(error, ClientError::Handshake(HandshakeError::NotUpgrade)),
            "{error}"
        );
        // A bad version: 426; no key: 400; POST: 405.
        let v = String::from_utf8(upgrade_request("/", ""))
            .unwrap()
            .replace("Version: 13", "Version: 7");
        let (response, _) = refused(v.into_bytes(), AcceptConfig::default(), ok).await;
        assert!(response.starts_with("HTTP/1.1 426 "), "{response}");
        let no_key = String::from_utf8(upgrade_request("/", ""))
            .unwrap()
            .replace(
                &format!("Sec-WebSocket-Key: {}\r\n", common::SAMPLE_KEY),
                "",
            );
        let (response, _) = refused(no_key.into_bytes(), AcceptConfig::default(), ok).await;
        assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
        let post = String::from_utf8(upgrade_request("/", ""))
            .unwrap()
            .replacen("GET", "POST", 1);
        let (response, _) = refused(post.into_bytes(), AcceptConfig::default(), ok).await;
        assert!(response.starts_with("HTTP/1.1 405 "), "{response}");
        // A head past max_head_size: 431, whatever else arrives.
        let config = AcceptConfig {
            stream: WebSocketConfig {
                limits: Limits {
                    max_head_size: 1024,
                    ..Limits::DEFAULT
                },
                ..WebSocketConfig::default()
            },
            ..AcceptConfig::default()
        };
        let big = upgrade_request("/", &format!("X-Pad: {}\r\n", "p".repeat(2000)));
        let (response, error) = refused(big, config, ok).await;
        assert!(response.starts_with("HTTP/1.1 431 "), "{response}");
        assert!(matches!(
            error,
            ClientError::Handshake(HandshakeError::HeadTooLarge { .. })
        ));
        // The application's refusal: its status, body and header.
        let (response, error) =
            refused(upgrade_request("/nope", ""), AcceptConfig::default(), |r| {
                assert_eq!(r.path(), "/nope");
                Err(wsx::Reject::new(404)
                    .body("no such room")
                    .header("X-Why", "path"))
            })
            .await;
        assert!(
            response.starts_with(&format!("HTTP/1.1 404 {}", reason_phrase(404))),
            "{response}"
        );
        assert!(
            response.contains("X-Why: path\r\n") && response.ends_with("no such room"),
            "{response}"
        );
        assert!(matches!(error, ClientError::Refused(404)), "{error}");
        // A subprotocol the client did not offer: the server's mistake, 500.
        let (response, _) = refused(upgrade_request("/", ""), AcceptConfig::default(), |_| {
            Ok(Accept::new().protocol("never-offered"))
        })
        .await;
        assert!(response.starts_with("HTTP/1.1 500 "), "{response}");
    });
}

#[test]
fn silent_clients_time_out_and_clients_see_refusals() {
    run(async {
        let (listener, url) = listen().await;
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let config = AcceptConfig {
                handshake_timeout: Duration::from_millis(200),
                ..AcceptConfig::default()
            };
            accept_with(tcp, &config, |_| Ok(Accept::new()))
                .await
                .expect_err("timeout")
        });
        let _silent = TcpStream::connect(url.trim_start_matches("ws://").trim_end_matches('/'))
            .await
            .expect("connect");
        let error = within("the timeout", server).await.expect("server task");
        assert!(matches!(error, ClientError::Timeout), "{error}");

        // The client: a refusal carries the status; a silent server times out.
        let (listener, url) = listen().await;
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let _ = accept_with(tcp, &AcceptConfig::default(), |_| {
                Err(wsx::Reject::new(403))
            })
            .await;
        });
        match wsx::tokio::connect_with(&url, &options()).await {
            Err(ClientError::Handshake(HandshakeError::UnexpectedStatus(s))) => {
                assert_eq!(s.status, 403)
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
        let (listener, url) = listen().await;
        let hold = tokio::spawn(async move { listener.accept().await.map(|(tcp, _)| tcp) });
        let quick = options().handshake_timeout(Duration::from_millis(300));
        match wsx::tokio::connect_with(&url, &quick).await {
            Err(ClientError::Timeout) => {}
            other => panic!("{:?}", other.map(|_| ())),
        }
        drop(hold);
    });
}

#[test]
fn subprotocols_are_chosen_by_the_callback() {
    run(async {
        let (listener, url) = listen().await;
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let ws = accept_with(tcp, &AcceptConfig::default(), |r| {
                let chosen = r.protocols().find(|p| p.starts_with("chat"));
                Ok(chosen
                    .map_or_else(Accept::new, |p| Accept::new().protocol(p))
                    .header("X-Room", "1"))
            })
            .await
            .expect("upgrade");
            echo(ws).await
        });
        let client = options().protocol("mqtt").protocol("chat.v2");
        let (mut ws, response) = wsx::tokio::connect_with(&url, &client)
            .await
            .expect("connect");
        assert_eq!(response.protocol(), Some("chat.v2"));
        assert_eq!(response.header("x-room"), Some(&b"1"[..]));
        ws.close(None).await.expect("close");
        within("the server's end", server)
            .await
            .expect("server task");
    });
}

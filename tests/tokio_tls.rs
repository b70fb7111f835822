//! The tokio adapter over `wss://`: `wsx::tokio::connect_with` verifies with the options'
//! `ClientTls` (a test CA, client certificates) through tokio-rustls, and
//! `wsx::tokio::accept` runs over a `tokio_rustls::server::TlsStream` made from a
//! `ServerTls`; each against the other, against the engine's TLS (both backends) and against
//! the blocking client. Certificates come from `support/tls.rs` (rcgen), fresh per test.
#![cfg(feature = "tokio")]

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;
#[path = "support/tls.rs"]
mod tls;

use std::future::Future;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use wsx::client::{ClientError, ClientOptions};
use wsx::tls::{ClientTls, ServerTls};
use wsx::tokio::Message;
use wsx::{Backend, CloseCode, Conn, Handler};

const WAIT: Duration = Duration::from_secs(10);

fn run<F: Future<Output = ()>>(body: F) {
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

/// Client options trusting the test CA alone.
fn trusting(certs: &tls::Certs) -> ClientOptions {
    ClientOptions::new()
        .no_proxy()
        .handshake_timeout(WAIT)
        .tls(ClientTls::with_ca_pem(&certs.ca_pem).expect("the CA"))
}

/// A tokio `wss://` echo server presenting `server` for every connection; returns its URL.
async fn tokio_wss_echo(server: ServerTls) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!(
        "wss://127.0.0.1:{}/",
        listener.local_addr().expect("addr").port()
    );
    let acceptor = TlsAcceptor::from(server.config().clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut ws) = wsx::tokio::accept(tls).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if matches!(m, Message::Text(_) | Message::Binary(_))
                        && ws.send(m).await.is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    url
}

/// Echo round trips and a close over an open client stream.
async fn exchange<S>(ws: &mut wsx::tokio::WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    for m in [
        Message::Text("over tls".into()),
        Message::Binary(vec![9; 200_000]),
    ] {
        ws.send(m.clone()).await.expect("send");
        let echo = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("in time");
        assert!(
            echo.expect("a message").expect("no error") == m,
            "echo differs"
        );
    }
    ws.close(Some((CloseCode::NORMAL, "bye")))
        .await
        .expect("close");
}

#[test]
fn tokio_client_and_tokio_server_over_wss() {
    let certs = tls::Certs::generate();
    run(async {
        let server =
            ServerTls::from_pem(&certs.server.cert_pem, &certs.server.key_pem).expect("cert");
        let url = tokio_wss_echo(server).await;
        let (mut ws, response) = wsx::tokio::connect_with(&url, &trusting(&certs))
            .await
            .expect("connect");
        assert_eq!(response.status(), 101);
        let session = ws.get_ref().tls().expect("a TLS session");
        assert!(session.peer_certificates().is_some_and(|c| !c.is_empty()));
        exchange(&mut ws).await;
    });
}

#[test]
fn server_certificates_are_verified_as_the_blocking_client_does() {
    let certs = tls::Certs::generate();
    run(async {
        // The Mozilla roots do not know the test CA.
        let server =
            ServerTls::from_pem(&certs.server.cert_pem, &certs.server.key_pem).expect("cert");
        let url = tokio_wss_echo(server).await;
        let roots = ClientOptions::new().no_proxy().handshake_timeout(WAIT);
        match wsx::tokio::connect_with(&url, &roots).await {
            Err(ClientError::Tls(_)) => {}
            other => panic!("{:?}", other.map(|_| ())),
        }
        // A certificate for another name, and an expired one, from the trusted CA.
        for pair in [&certs.wrong_name, &certs.expired] {
            let server = ServerTls::from_pem(&pair.cert_pem, &pair.key_pem).expect("cert");
            let url = tokio_wss_echo(server).await;
            match wsx::tokio::connect_with(&url, &trusting(&certs)).await {
                Err(ClientError::Tls(_)) => {}
                other => panic!("{:?}", other.map(|_| ())),
            }
        }
        // The blocking client refuses the same way.
        let server = ServerTls::from_pem(&certs.wrong_name.cert_pem, &certs.wrong_name.key_pem)
            .expect("cert");
        let url = tokio_wss_echo(server).await;
        let options = trusting(&certs);
        let blocking = tokio::task::spawn_blocking(move || {
            wsx::blocking::connect_with(&url, &options).map(|_| ())
        });
        assert!(matches!(
            blocking.await.expect("thread"),
            Err(ClientError::Tls(_))
        ));
    });
}

#[test]
fn client_certificates_reach_a_server_that_requires_them() {
    let certs = tls::Certs::generate();
    run(async {
        let server = ServerTls::builder()
            .default_cert(&certs.server.cert_pem, &certs.server.key_pem)
            .expect("cert")
            .client_auth(&certs.ca_pem, true)
            .build()
            .expect("server config");
        let url = tokio_wss_echo(server).await;
        // Without a client certificate the server refuses (during the handshake or at the
        // first read, as TLS 1.3 sends the refusal after the client's Finished).
        match wsx::tokio::connect_with(&url, &trusting(&certs)).await {
            Ok((mut ws, _)) => {
                let next = tokio::time::timeout(WAIT, ws.next())
                    .await
                    .expect("in time");
                assert!(matches!(next, Some(Err(_)) | None), "{next:?}");
            }
            Err(e) => assert!(
                matches!(
                    e,
                    ClientError::Tls(_) | ClientError::Io(_) | ClientError::Closed
                ),
                "{e}"
            ),
        }
        let with_cert = ClientTls::with_ca_pem(&certs.ca_pem)
            .expect("ca")
            .with_client_cert(&certs.client.cert_pem, &certs.client.key_pem)
            .expect("client cert");
        let options = ClientOptions::new()
            .no_proxy()
            .handshake_timeout(WAIT)
            .tls(with_cert);
        let (mut ws, _) = wsx::tokio::connect_with(&url, &options)
            .await
            .expect("connect");
        exchange(&mut ws).await;
    });
}

#[test]
fn blocking_client_against_a_tokio_wss_server() {
    let certs = tls::Certs::generate();
    run(async {
        let server =
            ServerTls::from_pem(&certs.server.cert_pem, &certs.server.key_pem).expect("cert");
        let url = tokio_wss_echo(server).await;
        let options = trusting(&certs);
        let client = tokio::task::spawn_blocking(move || {
            let mut ws = wsx::blocking::connect_with(&url, &options).expect("connect");
            ws.set_read_timeout(Some(WAIT)).expect("timeout");
            ws.send_text("hello").expect("send");
            assert_eq!(ws.recv().expect("echo"), Message::Text("hello".into()));
            ws.close(CloseCode::NORMAL, "").expect("close");
        });
        tokio::time::timeout(WAIT, client)
            .await
            .expect("in time")
            .expect("client thread");
    });
}

struct EngineEcho;

impl Handler for EngineEcho {
    type State = ();

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: wsx::Message<'_>) {
        let _ = conn.send(message);
    }
}

test_all!(tokio_client_against_the_engine_over_wss);
fn tokio_client_against_the_engine_over_wss(backend: Backend) {
    let certs = tls::Certs::generate();
    let server_tls =
        ServerTls::from_pem(&certs.server.cert_pem, &certs.server.key_pem).expect("cert");
    let server = common::start_server(
        backend,
        wsx::Server::builder().threads(1).tls(server_tls),
        |_| EngineEcho,
    );
    let url = format!("wss://127.0.0.1:{}/", server.local_addr().port());
    run(async {
        let (mut ws, _) = wsx::tokio::connect_with(&url, &trusting(&certs))
            .await
            .expect("connect");
        exchange(&mut ws).await;
        let reply = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("in time");
        assert!(
            matches!(reply, Some(Ok(Message::Close(CloseCode::NORMAL, _)))),
            "{reply:?}"
        );
    });
    common::stop(&server);
}

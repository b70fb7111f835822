//! An HTTP server in front of wsx (the hyper and axum examples), started on a tokio runtime
//! of its own on a free port of 127.0.0.1, plain or TLS; raw HTTP/1.1 requests to it over a
//! blocking socket (or rustls over it); and the checks both examples must pass: pages and
//! WebSockets on one port, negotiation, wsx's refusals through the front server, the bytes
//! sent right behind the request, many clients at once, authentication.
//!
//! Include it after `support/backends.rs`, `common` and `support/tls.rs` (as `mod tls`):
//!
//! ```ignore
//! #[path = "support/external_http.rs"]
//! mod external_http;
//! ```
//!
//! Every read has a timeout and every wait for another thread is bounded by
//! [`common::TIMEOUT`](crate::common::TIMEOUT) (or a multiple, for the many-clients check).
#![allow(dead_code)]

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio_rustls::TlsAcceptor;
use wsx::blocking::{connect_with, Message};
use wsx::client::ClientOptions;
use wsx::protocol::deflate::DeflateOptions;
use wsx::protocol::{CloseState, Config, Connection, Event, Role};
use wsx::tls::{ClientTls, ServerTls};
use wsx::CloseCode;

use crate::common::{SAMPLE_KEY, TIMEOUT};
use crate::tls::Certs;

/// The largest response these tests read.
const MAX_RESPONSE: usize = 1 << 20;

/// A front server running on its own tokio runtime (dropped, and its tasks with it, when the
/// `Front` is).
pub(crate) struct Front {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// The client side of TLS (trusting the test CA), when it serves TLS.
    pub(crate) tls: Option<ClientTls>,
    runtime: Option<tokio::runtime::Runtime>,
    // Kept for the files' lifetime.
    _certs: Option<Certs>,
}

impl Front {
    /// Binds 127.0.0.1:0 and runs `serve(listener, acceptor)` on a fresh two-thread runtime;
    /// with `tls`, the acceptor holds a certificate for `localhost` and 127.0.0.1 signed by a
    /// fresh test CA.
    ///
    /// # Panics
    ///
    /// When the runtime, the socket or the certificates cannot be made.
    pub(crate) fn start<F, Fut>(tls: bool, serve: F) -> Front
    where
        F: FnOnce(tokio::net::TcpListener, Option<TlsAcceptor>) -> Fut,
        Fut: Future<Output = io::Result<()>> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let (acceptor, client, certs) = if tls {
            let certs = Certs::generate();
            let server = ServerTls::from_pem(&certs.server.cert_pem, &certs.server.key_pem)
                .expect("server tls");
            let client = ClientTls::with_ca_pem(&certs.ca_pem).expect("client tls");
            let acceptor = TlsAcceptor::from(server.config().clone());
            (Some(acceptor), Some(client), Some(certs))
        } else {
            (None, None, None)
        };
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let task = {
            let _entered = runtime.enter();
            serve(listener, acceptor)
        };
        runtime.spawn(task);
        Front {
            addr,
            tls: client,
            runtime: Some(runtime),
            _certs: certs,
        }
    }

    /// The `ws://` or `wss://` URL of `path_and_query` on this server.
    pub(crate) fn url(&self, path_and_query: &str) -> String {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}{path_and_query}", self.addr)
    }

    /// Client options for this server: its CA when it serves TLS, the given subprotocol,
    /// permessage-deflate offered.
    pub(crate) fn options(&self) -> ClientOptions {
        let options = ClientOptions::default()
            .protocol(crate::PROTOCOL)
            .deflate(DeflateOptions::default())
            .handshake_timeout(TIMEOUT);
        match &self.tls {
            Some(tls) => options.tls(tls.clone()),
            None => options,
        }
    }

    /// A fresh connection to the server (TLS done when it serves TLS), reads and writes
    /// bounded by [`TIMEOUT`].
    ///
    /// # Panics
    ///
    /// When it cannot connect.
    pub(crate) fn open(&self) -> Box<dyn ReadWrite> {
        let tcp = TcpStream::connect(self.addr).expect("connect");
        tcp.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
        tcp.set_write_timeout(Some(TIMEOUT)).expect("write timeout");
        match &self.tls {
            None => Box::new(tcp),
            Some(tls) => {
                let name = ServerName::try_from("localhost").expect("a server name");
                let session =
                    rustls::ClientConnection::new(tls.config().clone(), name).expect("session");
                Box::new(rustls::StreamOwned::new(session, tcp))
            }
        }
    }

    /// Sends `request` (a whole HTTP/1.1 request) on a fresh connection and reads one
    /// response.
    ///
    /// # Panics
    ///
    /// When the server does not answer with a complete response within [`TIMEOUT`].
    pub(crate) fn request(&self, request: &str) -> Response {
        let mut stream = self.open();
        stream
            .write_all(request.as_bytes())
            .expect("send the request");
        stream.flush().expect("flush the request");
        read_response(&mut *stream, &mut Vec::new()).expect("a response")
    }

    /// `GET path` on a fresh connection.
    pub(crate) fn get(&self, path: &str) -> Response {
        self.request(&format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        ))
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        // The runtime goes with its tasks; nothing waits on a connection left open.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A blocking byte stream: TCP, or rustls over TCP.
pub(crate) trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

/// An HTTP response as read off the wire.
#[derive(Debug)]
pub(crate) struct Response {
    /// The status code.
    pub(crate) status: u16,
    /// The headers, names lower-cased.
    pub(crate) headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes; none for `101`).
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (lower case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response from `stream`; `buf` holds what was read before and keeps what follows
/// the response (the first WebSocket bytes after a `101`).
pub(crate) fn read_response(stream: &mut dyn ReadWrite, buf: &mut Vec<u8>) -> io::Result<Response> {
    let deadline = Instant::now() + TIMEOUT;
    let mut chunk = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head_len) = parsed
            .parse(buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
        {
            let status = parsed.code.unwrap_or(0);
            let headers: Vec<(String, String)> = parsed
                .headers
                .iter()
                .map(|h| {
                    let value = String::from_utf8_lossy(h.value).into_owned();
                    (h.name.to_ascii_lowercase(), value)
                })
                .collect();
            let length = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            let length = if status == 101 { 0 } else { length };
            if length > MAX_RESPONSE {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "body too large"));
            }
            while buf.len() < head_len + length {
                read_some(stream, buf, &mut chunk, deadline)?;
            }
            let body = buf[head_len..head_len + length].to_vec();
            buf.drain(..head_len + length);
            return Ok(Response {
                status,
                headers,
                body,
            });
        }
        if buf.len() > MAX_RESPONSE {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
        }
        read_some(stream, buf, &mut chunk, deadline)?;
    }
}

fn read_some(
    stream: &mut dyn ReadWrite,
    buf: &mut Vec<u8>,
    chunk: &mut [u8],
    deadline: Instant,
) -> io::Result<()> {
    if Instant::now() > deadline {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "response too slow"));
    }
    let n = loop {
        // A signal that lands on this thread (the io_uring tests run servers side by side in
        // this process) interrupts the read; it is not an answer.
        match stream.read(chunk) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted && Instant::now() < deadline => {
                continue
            }
            read => break read?,
        }
    };
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "closed mid-response",
        ));
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// An upgrade request for `/ws` with `extra` header lines (each ending in `\r\n`).
pub(crate) fn upgrade_request(extra: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         {extra}\r\n"
    )
}

/// `/`, `/health` and an unknown path, each over HTTP on the WebSocket port.
pub(crate) fn serves_pages(front: &Front) {
    let page = front.get("/");
    assert_eq!(page.status, 200, "GET /: {page:?}");
    let content_type = page.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(page.text().contains("new WebSocket("), "{}", page.text());
    assert!(page.text().contains("/ws"), "the page opens /ws");

    let health = front.get("/health");
    assert_eq!(health.status, 200, "GET /health: {health:?}");
    assert_eq!(health.text(), "ok\n");

    let missing = front.get("/missing");
    assert_eq!(missing.status, 404, "GET /missing: {missing:?}");
}

/// A WebSocket round trip through the front server: deflate and the subprotocol negotiated,
/// a short and a long (compressed) text and a binary message echoed, a clean close.
pub(crate) fn echoes(front: &Front) {
    let mut ws = connect_with(&front.url("/ws"), &front.options()).expect("connect /ws");
    let extensions = ws
        .response()
        .header("sec-websocket-extensions")
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    assert!(
        extensions.contains("permessage-deflate"),
        "negotiated extensions: {extensions:?}"
    );
    assert_eq!(ws.protocol(), Some(crate::PROTOCOL));
    ws.set_read_timeout(Some(TIMEOUT)).expect("read timeout");

    ws.send_text("hello").expect("send");
    assert_eq!(ws.recv().expect("echo"), Message::Text("hello".into()));
    let long = "all work and no play makes a dull echo. ".repeat(2000);
    ws.send_text(&long).expect("send long");
    assert_eq!(ws.recv().expect("long echo"), Message::Text(long));
    let binary: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    ws.send_binary(&binary).expect("send binary");
    assert_eq!(ws.recv().expect("binary echo"), Message::Binary(binary));

    ws.close(CloseCode::NORMAL, "done").expect("close");
    assert_eq!(
        ws.close_state(),
        CloseState::Closed,
        "the server answered the close"
    );
}

/// Bad upgrade requests get wsx's refusal through the front server: `400` without a key,
/// `426` with the versions wsx speaks (13 among them) for version 12.
pub(crate) fn refuses_bad_upgrades(front: &Front) {
    let no_key = front.request(&upgrade_request("Sec-WebSocket-Version: 13\r\n"));
    assert_eq!(no_key.status, 400, "missing key: {no_key:?}");

    let v12 = front.request(&upgrade_request(&format!(
        "Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 12\r\n"
    )));
    assert_eq!(v12.status, 426, "version 12: {v12:?}");
    let versions = v12.header("sec-websocket-version").unwrap_or_default();
    assert!(
        versions.split(',').any(|v| v.trim() == "13"),
        "the versions wsx speaks: {v12:?}"
    );
}

/// A frame sent in the same write as the upgrade request (so the front server may read it
/// with the request) reaches the wsx worker: the leftover bytes are handed over.
pub(crate) fn keeps_bytes_sent_with_the_request(front: &Front) {
    let mut client = Connection::new(Role::Client, Config::default());
    let mut bytes = upgrade_request(&format!(
        "Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n"
    ))
    .into_bytes();
    client.send_text("early", &mut bytes).expect("a frame");
    let _ = client.poll_transmit(&mut bytes);

    let mut stream = front.open();
    stream.write_all(&bytes).expect("send");
    stream.flush().expect("flush");
    let mut buf = Vec::new();
    let response = read_response(&mut *stream, &mut buf).expect("the 101");
    assert_eq!(response.status, 101, "{response:?}");

    assert_eq!(read_text(&mut client, &mut *stream, &mut buf), "early");
}

/// A page request, then an upgrade on the same kept-alive connection: the front server
/// serves both, and the socket it hands over after the second is the one the first came on.
pub(crate) fn upgrades_a_kept_alive_connection(front: &Front) {
    let mut stream = front.open();
    let mut buf = Vec::new();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    stream.flush().expect("flush");
    let health = read_response(&mut *stream, &mut buf).expect("the page");
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));

    let mut client = Connection::new(Role::Client, Config::default());
    let request = upgrade_request(&format!(
        "Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n"
    ));
    stream
        .write_all(request.as_bytes())
        .expect("send the upgrade");
    stream.flush().expect("flush");
    let response = read_response(&mut *stream, &mut buf).expect("the 101");
    assert_eq!(response.status, 101, "{response:?}");
    assert_eq!(
        response.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{response:?}"
    );

    let mut frame = Vec::new();
    client
        .send_text("after a page", &mut frame)
        .expect("a frame");
    let _ = client.poll_transmit(&mut frame);
    stream.write_all(&frame).expect("send the frame");
    stream.flush().expect("flush");
    assert_eq!(
        read_text(&mut client, &mut *stream, &mut buf),
        "after a page"
    );
}

/// Reads frames from `stream` (after what `buf` holds) until a text message, and returns it.
fn read_text(client: &mut Connection, stream: &mut dyn ReadWrite, buf: &mut Vec<u8>) -> String {
    let deadline = Instant::now() + TIMEOUT;
    let mut chunk = [0u8; 4096];
    loop {
        let read = client.handle_read(buf).expect("valid frames");
        let consumed = read.consumed;
        match read.event {
            Some(Event::Text(text)) => return text.to_owned(),
            Some(other) => panic!("expected a text message, got {other:?}"),
            None => {
                buf.drain(..consumed);
                read_some(stream, buf, &mut chunk, deadline).expect("a message");
            }
        }
    }
}

/// Several WebSocket clients and HTTP requests at once, each checked, all done within a
/// bound (every read in them has a timeout, so the scope ends too).
pub(crate) fn serves_many_at_once(front: &Front) {
    const SOCKETS: usize = 8;
    const MESSAGES: usize = 20;
    const PAGES: usize = 8;
    let (done, results) = mpsc::channel::<Result<(), String>>();
    thread::scope(|scope| {
        for i in 0..SOCKETS {
            let done = done.clone();
            scope.spawn(move || {
                let result = (|| {
                    let mut ws = connect_with(&front.url("/ws"), &front.options())
                        .map_err(|e| format!("connect {i}: {e}"))?;
                    ws.set_read_timeout(Some(TIMEOUT))
                        .map_err(|e| e.to_string())?;
                    for m in 0..MESSAGES {
                        let text = format!("client {i} message {m}");
                        ws.send_text(&text).map_err(|e| e.to_string())?;
                        match ws.recv() {
                            Ok(Message::Text(echo)) if echo == text => {}
                            other => return Err(format!("client {i}: {other:?}")),
                        }
                    }
                    ws.close(CloseCode::NORMAL, "").map_err(|e| e.to_string())
                })();
                let _ = done.send(result);
            });
        }
        for i in 0..PAGES {
            let done = done.clone();
            scope.spawn(move || {
                let path = if i % 2 == 0 { "/" } else { "/health" };
                let response = front.get(path);
                let result = if response.status == 200 {
                    Ok(())
                } else {
                    Err(format!("GET {path}: {response:?}"))
                };
                let _ = done.send(result);
            });
        }
        drop(done);
        let deadline = Instant::now() + TIMEOUT * 4;
        for n in 0..SOCKETS + PAGES {
            let left = deadline.saturating_duration_since(Instant::now());
            match results.recv_timeout(left.max(Duration::from_millis(1))) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("{e}"),
                Err(e) => panic!("{n} of {} done: {e}", SOCKETS + PAGES),
            }
        }
    });
}

/// With a token asked: an upgrade without it gets `401` from the front server (wsx never sees
/// it); with `?token=` or `Authorization: Bearer` it opens and echoes.
pub(crate) fn authenticates(front: &Front, token: &str) {
    let refused = front.request(&upgrade_request(&format!(
        "Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n"
    )));
    assert_eq!(refused.status, 401, "no token: {refused:?}");
    let wrong = connect_with(&front.url("/ws?token=wrong"), &front.options());
    assert!(wrong.is_err(), "a wrong token opened a connection");

    let mut ws =
        connect_with(&front.url(&format!("/ws?token={token}")), &front.options()).expect("query");
    ws.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    ws.send_text("with a token").expect("send");
    assert_eq!(
        ws.recv().expect("echo"),
        Message::Text("with a token".into())
    );

    let options = front
        .options()
        .header("Authorization", format!("Bearer {token}"));
    let mut ws = connect_with(&front.url("/ws"), &options).expect("bearer");
    ws.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    ws.send_text("bearer").expect("send");
    assert_eq!(ws.recv().expect("echo"), Message::Text("bearer".into()));
}

/// The tests of a server in front of wsx, the same for each (hyper, axum): expands, in the
/// including file, to `run` and every check plain and over TLS on both backends. That file
/// defines `start(backend, tls, token) -> (Front, ServerHandle)` for its server and includes
/// `support/backends.rs` (for `test_all!`), `common` and this module as `external_http`.
macro_rules! front_tests {
    () => {
        /// Runs `check` against a fresh pair, then stops both.
        fn run(backend: Backend, tls: bool, check: impl FnOnce(&Front)) {
            let (front, ws) = start(backend, tls, None);
            check(&front);
            drop(front);
            common::stop(&ws);
        }

        test_all!(
            pages_and_websockets_share_the_port,
            pages_and_websockets_share_the_port_tls,
            refusals_come_from_wsx,
            refusals_come_from_wsx_tls,
            bytes_behind_the_request_reach_the_worker,
            bytes_behind_the_request_reach_the_worker_tls,
            a_kept_alive_connection_upgrades,
            a_kept_alive_connection_upgrades_tls,
            many_clients_and_pages_at_once,
            many_clients_and_pages_at_once_tls,
            token_checked_before_the_upgrade,
            token_checked_before_the_upgrade_tls,
        );

        /// `/`, `/health` and a 404 over HTTP; echo over `/ws` with deflate and `echo` chosen.
        fn pages_and_websockets_share_the_port(backend: Backend) {
            run(backend, false, |front| {
                external_http::serves_pages(front);
                external_http::echoes(front);
                external_http::serves_pages(front);
            });
        }

        /// The same over `https://` and `wss://`.
        fn pages_and_websockets_share_the_port_tls(backend: Backend) {
            run(backend, true, |front| {
                external_http::serves_pages(front);
                external_http::echoes(front);
                external_http::serves_pages(front);
            });
        }

        /// No key: 400; version 12: 426 with `Sec-WebSocket-Version: 13`.
        fn refusals_come_from_wsx(backend: Backend) {
            run(backend, false, external_http::refuses_bad_upgrades);
        }

        /// The same over TLS.
        fn refusals_come_from_wsx_tls(backend: Backend) {
            run(backend, true, external_http::refuses_bad_upgrades);
        }

        /// A frame written with the upgrade request is echoed.
        fn bytes_behind_the_request_reach_the_worker(backend: Backend) {
            run(
                backend,
                false,
                external_http::keeps_bytes_sent_with_the_request,
            );
        }

        /// The same over TLS (the bytes may sit in hyper's buffer or in the rustls session).
        fn bytes_behind_the_request_reach_the_worker_tls(backend: Backend) {
            run(
                backend,
                true,
                external_http::keeps_bytes_sent_with_the_request,
            );
        }

        /// `/health`, then an upgrade on the same connection.
        fn a_kept_alive_connection_upgrades(backend: Backend) {
            run(
                backend,
                false,
                external_http::upgrades_a_kept_alive_connection,
            );
        }

        /// The same over TLS.
        fn a_kept_alive_connection_upgrades_tls(backend: Backend) {
            run(
                backend,
                true,
                external_http::upgrades_a_kept_alive_connection,
            );
        }

        /// Eight WebSocket clients and eight page loads at once.
        fn many_clients_and_pages_at_once(backend: Backend) {
            run(backend, false, external_http::serves_many_at_once);
        }

        /// The same over TLS.
        fn many_clients_and_pages_at_once_tls(backend: Backend) {
            run(backend, true, external_http::serves_many_at_once);
        }

        /// The server in front refuses an upgrade without the token (401) and passes one with it.
        fn token_checked_before_the_upgrade(backend: Backend) {
            let (front, ws) = start(backend, false, Some("s3cret"));
            external_http::authenticates(&front, "s3cret");
            drop(front);
            common::stop(&ws);
        }

        /// The same over TLS.
        fn token_checked_before_the_upgrade_tls(backend: Backend) {
            let (front, ws) = start(backend, true, Some("s3cret"));
            external_http::authenticates(&front, "s3cret");
            drop(front);
            common::stop(&ws);
        }
    };
}

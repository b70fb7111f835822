//! One port, HTTP pages and WebSockets, with axum 0.8: its `Router` serves `/` (a page whose
//! script opens a WebSocket back to the same origin) and `/health`, and its `/ws` handler
//! hands the upgrade to a wsx server that has no listener of its own (Node ws's "External
//! HTTP/S server" and "Client authentication"; `docs/external-http.md`).
//!
//! ```sh
//! cargo run --example axum_upgrade                           # http://127.0.0.1:8080/
//! cargo run --example axum_upgrade -- --tls                  # https://, a self-signed certificate
//! cargo run --example axum_upgrade -- --tls-cert C --tls-key K --token secret
//! ```
//!
//! The `/ws` handler takes the whole request (`axum::extract::Request`), lets
//! [`ServerHandle::answer_request`] check it and negotiate the subprotocol and
//! permessage-deflate, answers `101` with the headers it gives, and takes the socket back
//! with `hyper::upgrade::on` once hyper has written them; [`ServerHandle::adopt_upgraded`]
//! moves it (with its rustls session, over TLS) onto a wsx worker. axum's own `ws` extractor
//! is not used: the connection is wsx's from the `101` on.
//!
//! The accept loop is hyper's HTTP/1.1 server with upgrades on, serving the `Router` as a
//! service, behind a tokio-rustls acceptor for `https://`.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use clap::Parser;
use hyper::server::conn::http1;
use hyper::upgrade::Upgraded;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use wsx::protocol::deflate::DeflateOptions;
use wsx::tls::ServerTls;
use wsx::{Adopted, Backend, Conn, Handler, Message, Server, ServerHandle};

/// The subprotocol this server speaks, chosen when the client offers it.
pub const PROTOCOL: &str = "echo";

/// How long a client has to finish the TLS handshake, and to send a request head.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest request head hyper buffers (it answers `431` past it).
const MAX_HEAD: usize = 16 * 1024;

/// The most HTTP connections served at once; past it, accepting waits. A connection handed
/// to wsx leaves this count (the wsx server's own `max_connections` bounds those).
const MAX_HTTP_CONNECTIONS: usize = 10_000;

/// The page at `/`: it opens a WebSocket to `/ws` on the origin it came from (passing its own
/// query string, so `/?token=…` reaches the upgrade), sends a line and shows the echo.
pub const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>wsx behind axum</title>
<pre id="log"></pre>
<script>
  const log = (line) => { document.getElementById("log").textContent += line + "\n"; };
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(scheme + location.host + "/ws" + location.search, ["echo"]);
  ws.onopen = () => { log("open, protocol " + ws.protocol); ws.send("hello from the page"); };
  ws.onmessage = (event) => log("echo: " + event.data);
  ws.onclose = (event) => log("closed " + event.code);
</script>
"#;

/// The WebSocket side: every message echoed.
struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        let _ = conn.send(message);
    }
}

/// The wsx server behind axum: no listener of its own (connections only come through
/// [`ServerHandle::adopt_upgraded`]), permessage-deflate on, on `backend`.
///
/// # Errors
///
/// When the engine cannot start (threads, the poller).
pub fn ws_server(backend: Backend) -> io::Result<ServerHandle> {
    Server::builder()
        .no_listener()
        .backend(backend)
        .path("/ws")
        .max_payload(1 << 20)
        .deflate(DeflateOptions::default())
        .start(|_| Echo)
}

/// The state of the axum app: the wsx server to hand upgrades to, and the token a client must
/// show to upgrade (`None`: anyone may).
#[derive(Clone)]
pub struct App {
    /// The wsx server built by [`ws_server`].
    pub ws: ServerHandle,
    /// The token asked of WebSocket clients, as `?token=` or `Authorization: Bearer`.
    pub token: Option<Arc<str>>,
}

/// The routes: `/`, `/health` and `/ws`; other paths get axum's `404`.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .route("/ws", get(ws_upgrade))
        .with_state(app)
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn health() -> &'static str {
    "ok\n"
}

/// `/ws`: authenticate, let wsx check and negotiate, answer `101` with wsx's headers and move
/// the socket onto a wsx worker once hyper has written it.
async fn ws_upgrade(State(app): State<App>, mut req: Request) -> Response {
    // ws's "Client authentication": refuse here, before anything is upgraded.
    if let Some(token) = &app.token {
        if !authorized(&req, token) {
            return (StatusCode::UNAUTHORIZED, "unauthorized\n").into_response();
        }
    }
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let headers = req
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()));
    let mut answer = match app
        .ws
        .answer_request(req.method().as_str(), target, headers)
    {
        Ok(answer) => answer,
        Err(reject) => {
            // wsx's refusal (400 without a key, 426 for another version…), sent by axum.
            let status =
                StatusCode::from_u16(reject.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = Response::builder().status(status);
            for (name, value) in reject.headers() {
                response = response.header(name, value);
            }
            let body = Body::from(reject.body_text().to_owned());
            return response
                .body(body)
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
    };
    let offered = answer.request().protocols().any(|p| p == PROTOCOL);
    if offered {
        answer.select_protocol(PROTOCOL);
    }
    let mut response = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
    for (name, value) in answer.headers() {
        response = response.header(name, value);
    }
    let Ok(response) = response.body(Body::empty()) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let ws = app.ws.clone();
    tokio::spawn(async move {
        let adopted = match on_upgrade.await {
            Ok(upgraded) => into_adopted(upgraded),
            Err(e) => Err(io::Error::other(e)),
        };
        let result = adopted.and_then(|(stream, leftover)| {
            ws.adopt_upgraded(stream, answer, &leftover)
                .map_err(io::Error::other)
        });
        if let Err(e) = result {
            eprintln!("upgrade: {e}");
        }
    });
    response
}

/// The socket under hyper's upgraded connection, with the bytes hyper read past the request:
/// a plain TCP stream, or TCP with its rustls session.
fn into_adopted(upgraded: Upgraded) -> io::Result<(Adopted, Bytes)> {
    let upgraded = match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            let tcp = parts.io.into_inner().into_std()?;
            return Ok((Adopted::from(tcp), parts.read_buf));
        }
        Err(upgraded) => upgraded,
    };
    match upgraded.downcast::<TokioIo<TlsStream<TcpStream>>>() {
        Ok(parts) => {
            let (tcp, session) = parts.io.into_inner().into_inner();
            Ok((Adopted::tls(tcp.into_std()?, session), parts.read_buf))
        }
        Err(_) => Err(io::Error::other("not a TCP or TLS-over-TCP stream")),
    }
}

/// Whether the request carries `token`, as `?token=` or `Authorization: Bearer`.
fn authorized(req: &Request, token: &str) -> bool {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let query = req
        .uri()
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("token="));
    bearer == Some(token) || query == Some(token)
}

/// Serves `router` over HTTP/1.1 (and, with `tls`, HTTPS) on `listener` until the task is
/// dropped, upgrades allowed.
///
/// # Errors
///
/// None so far: failed accepts are reported and skipped; the result is for callers that
/// `?` it.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(MAX_HTTP_CONNECTIONS));
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return Ok(()); // never closed
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: wait a moment instead of spinning on the error.
                eprintln!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (router, tls) = (router.clone(), tls.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tcp.set_nodelay(true);
            let served = match tls {
                None => serve_connection(TokioIo::new(tcp), router).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => serve_connection(TokioIo::new(stream), router).await,
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err("tls handshake timed out".to_owned()),
                    }
                }
            };
            if let Err(e) = served {
                eprintln!("{peer}: {e}");
            }
        });
    }
}

/// One connection through hyper's HTTP/1.1 server, the `Router` as its service.
async fn serve_connection<I>(io: TokioIo<I>, router: Router) -> Result<(), String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .serve_connection(io, TowerToHyperService::new(router))
        .with_upgrades()
        .await
        .map_err(|e| e.to_string())
}

/// The TLS acceptor for `cert` and `key` (PEM files), through wsx's own TLS configuration
/// (rustls with the `ring` provider, ALPN `http/1.1`).
///
/// # Errors
///
/// When a file cannot be read or holds no usable certificate or key.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, wsx::tls::TlsError> {
    let tls = ServerTls::from_pem_files(cert, key)?;
    Ok(TlsAcceptor::from(tls.config().clone()))
}

/// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM files.
fn self_signed() -> io::Result<(PathBuf, PathBuf)> {
    let dir = PathBuf::from("target/axum-example");
    std::fs::create_dir_all(&dir)?;
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let made = rcgen::generate_simple_self_signed(names).map_err(io::Error::other)?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem())?;
    std::fs::write(&key, made.key_pair.serialize_pem())?;
    Ok((cert, key))
}

/// axum in front, wsx behind, one port.
#[derive(Parser)]
struct Args {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Serve https:// and wss:// with a self-signed certificate (under target/axum-example/).
    #[arg(long)]
    tls: bool,
    /// Serve https:// and wss:// with this certificate chain (PEM; with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Ask WebSocket clients for this token (`/?token=…` in the browser).
    #[arg(long)]
    token: Option<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(tls_acceptor(&cert, &key)?),
        _ if args.tls => {
            let (cert, key) = self_signed()?;
            println!("certificate {}", cert.display());
            Some(tls_acceptor(&cert, &key)?)
        }
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let app = App {
        ws: ws_server(Backend::Auto)?,
        token: args.token.map(Arc::from),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(args.listen).await?;
        println!("listening on {scheme}://{}/", listener.local_addr()?);
        serve(listener, tls, router(app)).await
    })?;
    Ok(())
}

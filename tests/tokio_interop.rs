//! The tokio adapter against Node's `ws` (8.x) and Python's `websockets` (17.x), both roles,
//! over the permessage-deflate matrix of `support/interop.rs` (the same cases, messages and
//! expected answers as `tests/interop_node_ws.rs` and `tests/interop_python.rs`), plain and
//! over `wss://`:
//!
//! - peer clients (`tests/interop/{ws_client.js,py_client.py}`) against one
//!   `wsx::tokio::accept_with` echo server per case, each with the case's deflate options;
//! - `wsx::tokio::connect_with` against the peer servers (`ws_server.js`, `py_server.py`), which
//!   greet with the offer they saw and the answer they sent, then echo.
//!
//! The peers are installed as those tests install them (`target/interop-node`,
//! `target/interop-python`). A missing piece prints `SKIPPED: ...` and passes, except under
//! `CI=true`, where it fails.
#![cfg(feature = "tokio")]

// `support/interop.rs` needs it; its `test_all!` is not used here.
#[allow(unused_macros)]
#[path = "support/backends.rs"]
mod backends;
mod common;
#[path = "support/interop.rs"]
mod interop;
#[path = "support/wss_certs.rs"]
mod wss_certs;

use std::sync::OnceLock;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use interop::{Case, Peer, PeerProcess, Tls, CASE_TIMEOUT, PROCESS_TIMEOUT};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use wsx::blocking::Message;
use wsx::tokio::{accept_with, Accept, AcceptConfig};
use wsx::CloseCode;

// ---------------------------------------------------------------------------------------------
// Peers, installed by `tests/support/interop.rs` as for the engine's interop tests.

fn node_ws() -> Option<Peer> {
    static PEER: OnceLock<Result<Peer, String>> = OnceLock::new();
    match PEER.get_or_init(interop::install_node_ws) {
        Ok(peer) => Some(peer.clone()),
        Err(why) => interop::missing(why),
    }
}

fn python_websockets() -> Option<Peer> {
    static PEER: OnceLock<Result<Peer, String>> = OnceLock::new();
    match PEER.get_or_init(interop::install_python_websockets) {
        Ok(peer) => Some(peer.clone()),
        Err(why) => interop::missing(why),
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn certs() -> (wss_certs::Certs, Tls) {
    let certs = wss_certs::Certs::new();
    let tls = Tls {
        ca: certs.ca.clone(),
        cert: certs.cert.clone(),
        key: certs.key.clone(),
    };
    (certs, tls)
}

// ---------------------------------------------------------------------------------------------
// Peer clients against tokio servers.

/// What a tokio server saw of its one connection: whether deflate was negotiated, and the
/// messages it failed to echo.
type Seen = tokio::sync::oneshot::Receiver<Result<bool, String>>;

/// Starts a tokio echo server for `case` (its deflate options) on a free port.
async fn tokio_server(case: &Case, tls: Option<&Tls>) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = AcceptConfig {
        deflate: case.server.map(|s| s.server_options()),
        stream: wsx::tokio::WebSocketConfig {
            limits: wsx::Limits {
                max_message_size: 64 << 20,
                ..wsx::Limits::DEFAULT
            },
            ..wsx::tokio::WebSocketConfig::default()
        },
        ..AcceptConfig::default()
    };
    let acceptor = tls.map(|t| {
        let server = wsx::tls::ServerTls::from_pem_files(&t.cert, &t.key).expect("test cert");
        tokio_rustls::TlsAcceptor::from(server.config().clone())
    });
    let (report, seen) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let result = async {
            let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
            match acceptor {
                Some(acceptor) => {
                    let tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
                    serve(accept_with(tls, &config, |_| Ok(Accept::new())).await).await
                }
                None => serve(accept_with(tcp, &config, |_| Ok(Accept::new())).await).await,
            }
        }
        .await;
        let _ = report.send(result);
    });
    let scheme = interop::scheme(tls);
    (format!("{scheme}://{addr}/"), seen)
}

/// Echoes until the peer closes; says whether deflate was on.
async fn serve<S>(
    ws: Result<wsx::tokio::WebSocketStream<S>, wsx::tokio::Error>,
) -> Result<bool, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut ws = ws.map_err(|e| format!("upgrade: {e}"))?;
    let deflate = ws.deflate_params().is_some();
    while let Some(message) = ws.next().await {
        match message.map_err(|e| format!("read: {e}"))? {
            m @ (Message::Text(_) | Message::Binary(_)) => {
                ws.send(m).await.map_err(|e| format!("echo: {e}"))?;
            }
            Message::Close(code, _) if code != CloseCode::NORMAL => {
                return Err(format!("closed with {code:?}"));
            }
            _ => {}
        }
    }
    Ok(deflate)
}

fn peer_clients_against_tokio_servers(peer: &Peer, cases: &[Case], tls: Option<&Tls>) {
    let rt = runtime();
    let raw = interop::total_bytes(&interop::messages());
    let servers: Vec<(String, Seen)> = cases
        .iter()
        .map(|case| rt.block_on(tokio_server(case, tls)))
        .collect();
    let input: Vec<String> = cases
        .iter()
        .zip(&servers)
        .enumerate()
        .map(|(i, (case, (url, _)))| format!("{i}\t{url}\t{}", case_offer_spec(case)))
        .collect();
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    let mut process = PeerProcess::start(peer, &peer.client, &interop::client_args(tls), &input);
    let mut results = std::collections::HashMap::new();
    while results.len() < cases.len() {
        let line = process.line(deadline, "RESULT line");
        let fields: Vec<String> = line.split('\t').map(str::to_owned).collect();
        match fields.get(1).map(|id| id.parse::<usize>()) {
            Some(Ok(id)) if fields[0] == "RESULT" => {
                results.insert(id, fields);
            }
            _ => eprintln!("{}: {line}", peer.name),
        }
    }
    let mut failures = Vec::new();
    for (i, (case, (_, seen))) in cases.iter().zip(servers).enumerate() {
        let fields = &results[&i];
        let mut fail = |why: String| failures.push((*case, why));
        if fields.get(2).map(String::as_str) != Some("ok") {
            fail(format!(
                "{} client: {}",
                peer.name,
                fields.get(3).cloned().unwrap_or_default()
            ));
            continue;
        }
        let expected = interop::expected_answer(case.offer.as_ref(), case.server.as_ref(), false);
        let extensions = fields.get(3).cloned().unwrap_or_default();
        match interop::parse_answer(&extensions) {
            Ok(got) if got == expected => {}
            Ok(got) => fail(format!(
                "answer {extensions:?} is {got:?}, expected {expected:?}"
            )),
            Err(e) => fail(e),
        }
        if fields.get(4).and_then(|b| b.parse::<u64>().ok()) != Some(raw) {
            fail(format!(
                "{} sent {:?} payload bytes, not {raw}",
                peer.name,
                fields.get(4)
            ));
        }
        let seen = rt.block_on(async { tokio::time::timeout(CASE_TIMEOUT, seen).await });
        match seen {
            Ok(Ok(Ok(deflate))) if deflate == expected.is_some() => {}
            Ok(Ok(Ok(deflate))) => fail(format!("the server's deflate_params: {deflate}")),
            Ok(Ok(Err(why))) => fail(format!("the tokio server: {why}")),
            other => fail(format!("the tokio server did not end: {other:?}")),
        }
    }
    let what = format!(
        "client against wsx::tokio servers over {}://",
        interop::scheme(tls)
    );
    interop::report(peer, &what, cases.len(), &failures);
}

/// The offer spec the client scripts take (`off` for no deflate).
fn case_offer_spec(case: &Case) -> String {
    // `Case::label` is `offer[SPEC] server[SPEC]`.
    let label = case.label();
    let start = label.find('[').map_or(0, |i| i + 1);
    let end = label.find(']').unwrap_or(label.len());
    label[start..end].to_owned()
}

// ---------------------------------------------------------------------------------------------
// The tokio client against peer servers.

async fn tokio_case(peer: &Peer, case: &Case, port: u16, tls: Option<&Tls>) -> Result<(), String> {
    let url = format!("{}://127.0.0.1:{port}/", interop::scheme(tls));
    let options = interop::client_options(case, tls);
    let (mut ws, response) = wsx::tokio::connect_with(&url, &options)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let hello = match tokio::time::timeout(CASE_TIMEOUT, ws.next()).await {
        Ok(Some(Ok(m))) => m,
        other => return Err(format!("no greeting: {other:?}")),
    };
    let expected = interop::check_hello(peer, case, &hello)?;
    let header: Vec<String> = response
        .header_all("sec-websocket-extensions")
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    if interop::parse_answer(&header.join(", "))? != expected {
        return Err(format!("the client saw the answer {header:?}"));
    }
    if ws.deflate_params().is_some() != expected.is_some() {
        return Err(format!("deflate_params {:?}", ws.deflate_params()));
    }
    let list = interop::messages();
    // All sends from one task, all echoes read by another: the halves work apart.
    let (mut tx, mut rx) = ws.split();
    let sent = list.clone();
    let writer = tokio::spawn(async move {
        for m in sent {
            tx.send(m).await.map_err(|e| format!("send: {e}"))?;
        }
        Ok::<_, String>(tx)
    });
    for (n, m) in list.iter().enumerate() {
        let echo = match tokio::time::timeout(CASE_TIMEOUT, rx.next()).await {
            Ok(Some(Ok(m))) => m,
            other => return Err(format!("echo {}: {other:?}", n + 1)),
        };
        interop::same_message(n + 1, m, &echo)?;
    }
    let tx = writer.await.map_err(|e| e.to_string())??;
    let mut ws = tx
        .reunite(rx)
        .map_err(|_| "halves of two streams".to_owned())?;
    ws.close(Some((CloseCode::NORMAL, "done")))
        .await
        .map_err(|e| format!("close: {e}"))
}

fn tokio_client_against_peer_servers(peer: &Peer, cases: &[Case], tls: Option<&Tls>) {
    let (_process, ports) = interop::start_peer_servers(peer, cases, tls);
    let rt = runtime();
    let failures: Vec<(Case, String)> = cases
        .iter()
        .zip(&ports)
        .filter_map(|(case, &port)| {
            rt.block_on(tokio_case(peer, case, port, tls))
                .err()
                .map(|why| (*case, why))
        })
        .collect();
    let what = format!(
        "server against the wsx::tokio client over {}://",
        interop::scheme(tls)
    );
    interop::report(peer, &what, cases.len(), &failures);
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn ws_client_against_tokio_servers() {
    let Some(peer) = node_ws() else { return };
    peer_clients_against_tokio_servers(&peer, &interop::cases_against_wsx(), None);
}

#[test]
fn ws_server_against_the_tokio_client() {
    let Some(peer) = node_ws() else { return };
    tokio_client_against_peer_servers(&peer, &interop::cases_against_peer(), None);
}

#[test]
fn wss_ws_both_roles_with_the_tokio_adapter() {
    let Some(peer) = node_ws() else { return };
    let (_certs, tls) = certs();
    peer_clients_against_tokio_servers(&peer, &interop::wss_cases_against_wsx(), Some(&tls));
    tokio_client_against_peer_servers(&peer, &interop::wss_cases_against_peer(), Some(&tls));
}

#[test]
fn websockets_client_against_tokio_servers() {
    let Some(peer) = python_websockets() else {
        return;
    };
    peer_clients_against_tokio_servers(&peer, &interop::cases_against_wsx(), None);
}

#[test]
fn websockets_server_against_the_tokio_client() {
    let Some(peer) = python_websockets() else {
        return;
    };
    tokio_client_against_peer_servers(&peer, &interop::cases_against_peer(), None);
}

#[test]
fn wss_websockets_both_roles_with_the_tokio_adapter() {
    let Some(peer) = python_websockets() else {
        return;
    };
    let (_certs, tls) = certs();
    peer_clients_against_tokio_servers(&peer, &interop::wss_cases_against_wsx(), Some(&tls));
    tokio_client_against_peer_servers(&peer, &interop::wss_cases_against_peer(), Some(&tls));
}

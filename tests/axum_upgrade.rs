//! `examples/axum_upgrade.rs`: axum 0.8 in front of a wsx server without a listener, on one
//! port, plain and TLS. The page and `/health` over HTTP, WebSocket echo with
//! permessage-deflate and the subprotocol negotiated, wsx's refusals sent by axum, the bytes
//! sent with the request kept, many clients at once, and the token check in the axum handler. Each test
//! runs the wsx side on both backends.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;
#[path = "support/external_http.rs"]
mod external_http;
#[path = "support/tls.rs"]
mod tls;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/axum_upgrade.rs"]
mod example;

use std::sync::Arc;

use example::PROTOCOL;
use external_http::Front;
use wsx::{Backend, ServerHandle};

/// The wsx server on `backend` and axum in front of it, asking `token` when given.
fn start(backend: Backend, tls: bool, token: Option<&str>) -> (Front, ServerHandle) {
    let ws = example::ws_server(backend).expect("the wsx server starts");
    backends::assert_runs_on(&ws, backend);
    let app = example::App {
        ws: ws.clone(),
        token: token.map(Arc::from),
    };
    let front = Front::start(tls, move |listener, acceptor| {
        example::serve(listener, acceptor, example::router(app))
    });
    (front, ws)
}

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

/// The axum handler refuses an upgrade without the token (401) and passes one with it.
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

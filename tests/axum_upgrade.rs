//! `examples/axum_upgrade.rs`: axum 0.8 in front of a wsx server without a listener, on one
//! port, plain and TLS. The page and `/health` over HTTP, WebSocket echo with
//! permessage-deflate and the subprotocol negotiated, wsx's refusals sent by axum, the bytes
//! sent with the request kept, many clients at once, and the token check in the axum handler. Each test
//! runs the wsx side on both backends.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;
#[macro_use]
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

// The checks, the same for every server in front (support/external_http.rs).
front_tests!();

//! Interop with Python's `websockets` (17.x), both roles, with and without permessage-deflate:
//! websockets as the client of wsx servers, and websockets servers against the blocking and
//! the engine wsx clients, over the matrix of `support/interop.rs` (window bits 9..=15 asked
//! for and imposed, each `*_no_context_takeover` on either side, no deflate at all). The first
//! run creates a venv in `target/interop-python` (`python3 -m venv`) and installs websockets
//! with pip. Without python3, venv or the package the tests print `SKIPPED: ...` and pass,
//! except under `CI=true`, where they fail.
//!
//! The `wss_*` tests run a few of the cases over TLS, with a CA and a server certificate for
//! `127.0.0.1` made for the test (`support/wss_certs.rs`): websockets as the client of `wss://`
//! wsx servers (an `ssl.SSLContext` that trusts the CA alone), and websockets servers with an
//! `ssl.SSLContext` against the wsx clients (which trust that CA alone).

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;
#[path = "support/interop.rs"]
mod interop;
#[path = "support/wss_certs.rs"]
mod wss_certs;

use std::sync::OnceLock;

use interop::Peer;
use wsx::Backend;

/// The pip requirement: the current major version.
/// The venv's python with websockets installed, or `None` (after `SKIPPED`, or a panic under
/// `CI=true`).
fn python_websockets() -> Option<Peer> {
    // Every test asks at once: set up once per test binary.
    static PEER: OnceLock<Result<Peer, String>> = OnceLock::new();
    match PEER.get_or_init(interop::install_python_websockets) {
        Ok(peer) => Some(peer.clone()),
        Err(why) => interop::missing(why),
    }
}

test_all!(websockets_client_against_wsx_servers);
fn websockets_client_against_wsx_servers(backend: Backend) {
    let Some(peer) = python_websockets() else {
        return;
    };
    interop::peer_clients_against_wsx_servers(backend, &peer);
}

#[test]
fn websockets_server_against_wsx_blocking_client() {
    let Some(peer) = python_websockets() else {
        return;
    };
    interop::blocking_client_against_peer_servers(&peer);
}

test_all!(websockets_server_against_wsx_engine_client);
fn websockets_server_against_wsx_engine_client(backend: Backend) {
    let Some(peer) = python_websockets() else {
        return;
    };
    interop::engine_client_against_peer_servers(backend, &peer);
}

/// A fresh test CA and server certificate, as the interop drivers take them.
fn certs() -> (wss_certs::Certs, interop::Tls) {
    let certs = wss_certs::Certs::new();
    let tls = interop::Tls {
        ca: certs.ca.clone(),
        cert: certs.cert.clone(),
        key: certs.key.clone(),
    };
    (certs, tls)
}

test_all!(wss_websockets_client_against_wsx_servers);
/// websockets connects to `wss://` wsx servers, verifying them against the test CA.
fn wss_websockets_client_against_wsx_servers(backend: Backend) {
    let Some(peer) = python_websockets() else {
        return;
    };
    let (_certs, tls) = certs();
    interop::wss_peer_clients_against_wsx_servers(backend, &peer, &tls);
}

#[test]
fn wss_websockets_server_against_wsx_blocking_client() {
    let Some(peer) = python_websockets() else {
        return;
    };
    let (_certs, tls) = certs();
    interop::wss_blocking_client_against_peer_servers(&peer, &tls);
}

test_all!(wss_websockets_server_against_wsx_engine_client);
fn wss_websockets_server_against_wsx_engine_client(backend: Backend) {
    let Some(peer) = python_websockets() else {
        return;
    };
    let (_certs, tls) = certs();
    interop::wss_engine_client_against_peer_servers(backend, &peer, &tls);
}

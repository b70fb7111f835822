//! Interop with Node's `ws` (8.x), both roles, with and without permessage-deflate: ws as the
//! client of wsx servers, and ws servers against the blocking and the engine wsx clients, over
//! the matrix of `support/interop.rs` (window bits 9..=15 asked for and imposed, each
//! `*_no_context_takeover` on either side, no deflate at all). ws is installed with npm into
//! `target/interop-node` the first time. Without node or npm the tests print `SKIPPED: ...`
//! and pass, except under `CI=true`, where they fail.
//!
//! The `wss_*` tests run a few of the cases over TLS, with a CA and a server certificate for
//! `127.0.0.1` made for the test (`support/wss_certs.rs`): ws as the client of `wss://` wsx
//! servers (the CA in ws's `ca` option), and ws on `https.createServer` against the wsx clients
//! (which trust that CA alone).

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;
#[path = "support/interop.rs"]
mod interop;
#[path = "support/wss_certs.rs"]
mod wss_certs;

use std::sync::OnceLock;

use interop::{Bits, Case, Cnct, Offer, Peer, PeerResult, ServerConf};
use wsx::Backend;

/// Node with ws installed, or `None` (after `SKIPPED`, or a panic under `CI=true`).
fn node_ws() -> Option<Peer> {
    // Every test asks at once: install once per test binary.
    static PEER: OnceLock<Result<Peer, String>> = OnceLock::new();
    match PEER.get_or_init(interop::install_node_ws) {
        Ok(peer) => Some(peer.clone()),
        Err(why) => interop::missing(why),
    }
}

test_all!(ws_client_against_wsx_servers);
fn ws_client_against_wsx_servers(backend: Backend) {
    let Some(peer) = node_ws() else { return };
    interop::peer_clients_against_wsx_servers(backend, &peer);
}

#[test]
fn ws_server_against_wsx_blocking_client() {
    let Some(peer) = node_ws() else { return };
    interop::blocking_client_against_peer_servers(&peer);
}

test_all!(ws_server_against_wsx_engine_client);
fn ws_server_against_wsx_engine_client(backend: Backend) {
    let Some(peer) = node_ws() else { return };
    interop::engine_client_against_peer_servers(backend, &peer);
}

test_all!(ws_strict_client_refuses_the_wsx_default);
/// A wsx server answers `client_no_context_takeover` by default even when the client did not
/// offer it (RFC 7692 §7.1.1.1 allows it): ws configured with `clientNoContextTakeover: false`
/// refuses that answer and fails the handshake. The matrix runs the same clients against
/// servers configured with `client_no_context_takeover: false`, where they pass.
fn ws_strict_client_refuses_the_wsx_default(backend: Backend) {
    let Some(peer) = node_ws() else { return };
    let strict = Offer {
        cnct: Cnct::Refuse,
        ..Offer::PLAIN
    };
    let cases = [
        Case {
            offer: Some(strict),
            server: Some(ServerConf::WSX_DEFAULT),
        },
        Case {
            offer: Some(Offer {
                smwb: Some(10),
                cmwb: Bits::Value(10),
                ..strict
            }),
            server: Some(ServerConf::WSX_DEFAULT),
        },
    ];
    let (results, failures) = interop::run_peer_clients(backend, &peer, &cases);
    assert!(failures.is_empty(), "{failures:?}");
    for (case, result) in cases.iter().zip(results) {
        let PeerResult::Fail(why) = result else {
            panic!(
                "{}: ws accepted the default answer: {result:?}",
                case.label()
            );
        };
        assert!(
            why.contains("Invalid Sec-WebSocket-Extensions header")
                && why.contains("client_no_context_takeover"),
            "{}: ws failed for another reason: {why}",
            case.label()
        );
    }
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

test_all!(wss_ws_client_against_wsx_servers);
/// ws connects to `wss://` wsx servers, verifying them against the test CA.
fn wss_ws_client_against_wsx_servers(backend: Backend) {
    let Some(peer) = node_ws() else { return };
    let (_certs, tls) = certs();
    interop::wss_peer_clients_against_wsx_servers(backend, &peer, &tls);
}

#[test]
fn wss_ws_server_against_wsx_blocking_client() {
    let Some(peer) = node_ws() else { return };
    let (_certs, tls) = certs();
    interop::wss_blocking_client_against_peer_servers(&peer, &tls);
}

test_all!(wss_ws_server_against_wsx_engine_client);
fn wss_ws_server_against_wsx_engine_client(backend: Backend) {
    let Some(peer) = node_ws() else { return };
    let (_certs, tls) = certs();
    interop::wss_engine_client_against_peer_servers(backend, &peer, &tls);
}

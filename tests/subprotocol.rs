//! Subprotocol negotiation and extra response headers: `on_upgrade` picks one of the offered
//! subprotocols, the `101` carries it, `Conn::protocol` returns it; headers added with
//! `Upgrade::add_header` reach the client, and invalid ones fail the upgrade with 500.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;

use common::{http_exchange, start_server, stop, upgrade_head, Client, ClientOptions, Ev, Shared};
use wsx::{Backend, Conn, Handler, Message, Reject, Server, ServerHandle, Upgrade};

/// What the handler saw: the offers, whether choosing an unoffered protocol was refused, and
/// what `Conn::protocol` said in `on_open` and `on_message`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rec {
    Offered(Vec<String>),
    UnofferedAccepted(bool),
    Open(Option<String>),
    Message(Option<String>),
}

/// Prefers `v2.wsx`, then `v1.wsx`; adds two headers to every `101`.
struct Negotiator {
    log: Shared<Rec>,
    extra_header: Option<(&'static str, &'static str)>,
}

impl Handler for Negotiator {
    type State = ();

    fn on_upgrade(&mut self, upgrade: &mut Upgrade<'_>) -> Result<(), Reject> {
        self.log.push(Rec::Offered(
            upgrade.protocols().map(str::to_owned).collect(),
        ));
        self.log.push(Rec::UnofferedAccepted(
            upgrade.select_protocol("never-offered"),
        ));
        for preferred in ["v2.wsx", "v1.wsx"] {
            if upgrade.select_protocol(preferred) {
                break;
            }
        }
        upgrade.add_header("X-Served-By", "wsx-tests");
        upgrade.add_header("Set-Cookie", "session=abc; HttpOnly");
        if let Some((name, value)) = self.extra_header {
            upgrade.add_header(name, value);
        }
        Ok(())
    }

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        self.log.push(Rec::Open(conn.protocol().map(str::to_owned)));
    }

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        self.log
            .push(Rec::Message(conn.protocol().map(str::to_owned)));
        let _ = conn.send(message);
    }
}

fn server(
    backend: Backend,
    extra_header: Option<(&'static str, &'static str)>,
) -> (ServerHandle, Shared<Rec>) {
    let log = Shared::default();
    let l = log.clone();
    let server = start_server(backend, Server::builder().threads(1), move |_| Negotiator {
        log: l.clone(),
        extra_header,
    });
    (server, log)
}

test_all!(the_chosen_subprotocol_is_in_the_101_and_in_conn_protocol);
fn the_chosen_subprotocol_is_in_the_101_and_in_conn_protocol(backend: Backend) {
    let (server, log) = server(backend, None);
    let options = ClientOptions {
        protocols: &["v1.wsx", "other", "v2.wsx"],
        ..ClientOptions::default()
    };
    let mut client = Client::connect_with(server.local_addr(), &options);
    // The server's preference wins over the client's order.
    assert_eq!(client.protocol(), Some("v2.wsx"));
    assert_eq!(
        client.response.header("sec-websocket-protocol"),
        Some(&b"v2.wsx"[..])
    );
    client.send_text("hi");
    assert_eq!(client.recv(), Some(Ev::Text("hi".into())));
    assert!(log.wait_len(4));
    assert_eq!(
        log.snapshot(),
        [
            Rec::Offered(vec!["v1.wsx".into(), "other".into(), "v2.wsx".into()]),
            Rec::UnofferedAccepted(false),
            Rec::Open(Some("v2.wsx".into())),
            Rec::Message(Some("v2.wsx".into())),
        ]
    );
    stop(&server);
}

test_all!(no_subprotocol_when_none_is_acceptable);
fn no_subprotocol_when_none_is_acceptable(backend: Backend) {
    let (server, log) = server(backend, None);
    let options = ClientOptions {
        protocols: &["mqtt"],
        ..ClientOptions::default()
    };
    let client = Client::connect_with(server.local_addr(), &options);
    assert_eq!(client.protocol(), None);
    assert_eq!(client.response.header("sec-websocket-protocol"), None);
    assert_eq!(
        log.wait_for(|r| matches!(r, Rec::Open(_))),
        Some(Rec::Open(None))
    );

    // Nothing offered at all.
    log.clear();
    let client = Client::connect(server.local_addr());
    assert_eq!(client.protocol(), None);
    assert_eq!(
        log.wait_for(|r| matches!(r, Rec::Open(_))),
        Some(Rec::Open(None))
    );
    assert!(log.snapshot().contains(&Rec::Offered(Vec::new())));
    stop(&server);
}

test_all!(added_headers_are_in_the_101);
fn added_headers_are_in_the_101(backend: Backend) {
    let (server, _log) = server(backend, None);
    let client = Client::connect(server.local_addr());
    assert_eq!(
        client.response.header("x-served-by"),
        Some(&b"wsx-tests"[..])
    );
    assert_eq!(
        client.response.header("set-cookie"),
        Some(&b"session=abc; HttpOnly"[..])
    );
    stop(&server);
}

test_all!(an_invalid_added_header_fails_the_upgrade_with_500);
fn an_invalid_added_header_fails_the_upgrade_with_500(backend: Backend) {
    for bad in [
        ("Bad Name", "x"),
        ("X-Split", "a\r\nInjected: yes"),
        ("Sec-WebSocket-Accept", "forged"),
    ] {
        let (server, log) = server(backend, Some(bad));
        let answer = http_exchange(
            server.local_addr(),
            &upgrade_head("/", &["Sec-WebSocket-Protocol: v1.wsx"]),
        );
        assert!(answer.starts_with("HTTP/1.1 500 "), "{bad:?}: {answer}");
        assert!(!answer.contains("Injected"), "{answer}");
        assert!(!answer.contains("forged"), "{answer}");
        assert!(
            !log.snapshot().iter().any(|r| matches!(r, Rec::Open(_))),
            "no on_open for a failed upgrade"
        );
        stop(&server);
    }
}

//! Client authentication during the upgrade (Node ws's "client authentication"): the request's
//! `Authorization: Bearer …` header (or a `?token=` query, for browsers, which cannot set
//! headers) is checked in `on_upgrade`, before any WebSocket frame; a bad token gets
//! `401 Unauthorized` with a `WWW-Authenticate` header, a good one becomes the connection's
//! state. Behind hyper or axum, authenticate in their handler before
//! `ServerHandle::answer` instead (docs/external-http.md).
//!
//! ```sh
//! cargo run --example client_auth            # ws://127.0.0.1:9001/?token=secret-alice
//! cargo run --example client_auth -- --demo  # a good and a bad token, printed
//! ```

use wsx::blocking;
use wsx::client::ClientOptions;
use wsx::{Conn, Handler, InitialState, Reject, Server, ServerHandle, Upgrade};

/// Who a connection belongs to, known from its upgrade request.
struct User {
    name: String,
}

impl InitialState for User {} // only `on_upgrade` makes one

/// The application's token check (a real one would ask a session store or verify a JWT).
fn user_of(token: &str) -> Option<&'static str> {
    match token {
        "secret-alice" => Some("alice"),
        "secret-bob" => Some("bob"),
        _ => None,
    }
}

struct App;

impl Handler for App {
    type State = User;

    fn on_upgrade(&mut self, upgrade: &mut Upgrade<'_>) -> Result<User, Reject> {
        let header = upgrade
            .header("authorization")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let query = upgrade
            .query()
            .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("token=")));
        let token = header.or(query).unwrap_or_default();
        match user_of(token) {
            Some(name) => Ok(User {
                name: name.to_owned(),
            }),
            None => Err(Reject::new(401)
                .header("WWW-Authenticate", "Bearer")
                .body("a valid token is required")),
        }
    }

    fn on_open(&mut self, conn: &mut Conn<'_, User>) {
        let greeting = format!("hello {}", conn.state().name);
        let _ = conn.send_text(&greeting);
    }
}

/// The server.
pub(crate) fn start(port: u16) -> std::io::Result<ServerHandle> {
    Server::builder().port(port).start(|_| App)
}

/// A client with a good token and one with a bad one; returns what each got.
pub(crate) fn demo() -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let server = start(0)?;
    let url = format!("ws://{}/", server.local_addr());
    let mut lines = Vec::new();
    let mut good = ClientOptions::new();
    good.headers
        .push(("Authorization".into(), "Bearer secret-alice".into()));
    let mut ws = blocking::connect_with(&url, &good)?;
    if let blocking::Message::Text(t) = ws.recv()? {
        lines.push(format!("good token: {t}"));
    }
    let mut bad = ClientOptions::new();
    bad.headers
        .push(("Authorization".into(), "Bearer guess".into()));
    match blocking::connect_with(&url, &bad) {
        Err(e) => lines.push(format!("bad token: {e}")),
        Ok(_) => lines.push("bad token: accepted".into()),
    }
    server.shutdown(std::time::Duration::from_secs(1));
    server.wait();
    Ok(lines)
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--demo") {
        for line in demo()? {
            println!("{line}");
        }
        return Ok(());
    }
    let server = start(9001)?;
    println!(
        "ws://{}/?token=secret-alice (or Authorization: Bearer secret-alice)",
        server.local_addr()
    );
    server.wait();
    Ok(())
}

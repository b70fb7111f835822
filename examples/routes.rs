//! Several WebSocket services on one port, each with its own handler and options, plus plain
//! HTTP answers (Node ws's "multiple servers sharing a single HTTP/S server"): `/echo` echoes,
//! `/chat` broadcasts each message to every other chat client, `/health` answers HTTP, and any
//! other path gets 404 (docs/routes.md).
//!
//! ```sh
//! cargo run --example routes            # serves ws://127.0.0.1:9001/echo and /chat
//! cargo run --example routes -- --demo  # starts on a free port, tries each path, prints, exits
//! ```

use std::time::Duration;

use wsx::blocking::{self, Message as Received};
use wsx::protocol::deflate::DeflateOptions;
use wsx::{Conn, Handler, HttpResponse, Message, Route, Server, ServerHandle};

/// `/echo`: every message back to its sender.
struct Echo;

impl Handler for Echo {
    type State = ();
    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        let _ = conn.send(message);
    }
}

/// `/chat`: each connection has a name (its state); a message goes to every other chat client.
struct Chat;

impl Handler for Chat {
    type State = String;
    fn on_upgrade(&mut self, upgrade: &mut wsx::Upgrade<'_>) -> Result<String, wsx::Reject> {
        let name = upgrade
            .query()
            .and_then(|q| q.strip_prefix("name="))
            .unwrap_or("anonymous");
        Ok(name.to_owned())
    }
    fn on_open(&mut self, conn: &mut Conn<'_, String>) {
        conn.subscribe("chat");
    }
    fn on_message(&mut self, conn: &mut Conn<'_, String>, message: Message<'_>) {
        if let Message::Text(text) = message {
            let line = format!("{}: {text}", conn.state());
            conn.publish_to_others("chat", Message::Text(&line));
        }
    }
}

/// The server: two routes with their own options, and HTTP answers for the rest.
pub(crate) fn start(port: u16) -> std::io::Result<ServerHandle> {
    Server::builder()
        .port(port)
        .http(|request| match request.path() {
            "/health" => Some(HttpResponse::new(200).body("ok\n")),
            _ => None,
        })
        // Small messages, no compression: an echo service for probes.
        .route("/echo", Route::new(|_| Echo).max_payload(4 << 10))
        // Chat lines compressed, idle clients dropped after a minute.
        .route(
            "/chat",
            Route::new(|_| Chat)
                .deflate(DeflateOptions::default())
                .idle_timeout(Some(Duration::from_secs(60))),
        )
        .start_routes()
}

/// Starts the server on a free port, tries every path, and returns what happened, line by line.
pub(crate) fn demo() -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let server = start(0)?;
    let base = format!("ws://{}", server.local_addr());
    let mut lines = Vec::new();

    let mut echo = blocking::connect(&format!("{base}/echo"))?;
    echo.send_text("ping")?;
    if let Received::Text(t) = echo.recv()? {
        lines.push(format!("/echo answered {t}"));
    }

    let mut alice = blocking::connect(&format!("{base}/chat?name=alice"))?;
    let mut bob = blocking::connect(&format!("{base}/chat?name=bob"))?;
    // Each subscribes in its `on_open`, on its worker: wait (bounded) until both have.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while server.subscribers("chat") < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    alice.send_text("hi bob")?;
    if let Received::Text(t) = bob.recv()? {
        lines.push(format!("/chat delivered \"{t}\""));
    }

    match blocking::connect(&format!("{base}/nowhere")) {
        Err(e) => lines.push(format!("/nowhere refused: {e}")),
        Ok(_) => lines.push("/nowhere accepted".into()),
    }
    server.shutdown(Duration::from_secs(1));
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
        "ws://{0}/echo and ws://{0}/chat?name=you; http://{0}/health",
        server.local_addr()
    );
    server.wait();
    Ok(())
}

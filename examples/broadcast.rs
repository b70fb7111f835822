//! Server broadcast (Node ws's "server broadcast"): every message a client sends goes to every
//! connected client, the sender included, or, with `/others`, to every client but the sender.
//! The frame is built once, whatever the number of clients (docs/broadcast.md).
//!
//! ```sh
//! cargo run --example broadcast            # ws://127.0.0.1:9001/ and ws://127.0.0.1:9001/others
//! cargo run --example broadcast -- --demo  # three clients, printed
//! ```

use std::time::Duration;

use wsx::blocking::{self, Message as Received};
use wsx::{Conn, Handler, Message, Server, ServerHandle};

/// Whether a connection's messages skip the sender (it asked for `/others`).
#[derive(Default)]
struct Others(bool);

struct Broadcast;

impl Handler for Broadcast {
    type State = Others;

    fn on_upgrade(&mut self, upgrade: &mut wsx::Upgrade<'_>) -> Result<Others, wsx::Reject> {
        Ok(Others(upgrade.path() == "/others"))
    }

    fn on_message(&mut self, conn: &mut Conn<'_, Others>, message: Message<'_>) {
        if conn.state().0 {
            conn.broadcast_to_others(message);
        } else {
            conn.broadcast(message);
        }
    }
}

/// The server.
pub(crate) fn start(port: u16) -> std::io::Result<ServerHandle> {
    Server::builder().port(port).start(|_| Broadcast)
}

/// Three clients; one broadcasts to all, one to the others; returns who got what.
pub(crate) fn demo() -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let server = start(0)?;
    let addr = server.local_addr();
    let mut all = blocking::connect(&format!("ws://{addr}/"))?;
    let mut others = blocking::connect(&format!("ws://{addr}/others"))?;
    let mut quiet = blocking::connect(&format!("ws://{addr}/"))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while server.stats().connections < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut lines = Vec::new();
    let mut text =
        |who: &str, ws: &mut blocking::WebSocket| -> Result<(), Box<dyn std::error::Error>> {
            if let Received::Text(t) = ws.recv()? {
                lines.push(format!("{who} got {t}"));
            }
            Ok(())
        };
    all.send_text("to everyone")?;
    text("all", &mut all)?;
    text("others", &mut others)?;
    text("quiet", &mut quiet)?;
    others.send_text("to the others")?;
    text("all", &mut all)?;
    text("quiet", &mut quiet)?;
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
        "ws://{0}/ (to all) and ws://{0}/others",
        server.local_addr()
    );
    server.wait();
    Ok(())
}

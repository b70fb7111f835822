//! WebSocket compression (Node ws's "WebSocket compression"): permessage-deflate (RFC 7692)
//! with the knobs ws has (`threshold`, `level`, context takeover, window bits), and what the
//! client and server agreed. Large messages are compressed on the deflate pool, off the
//! workers (docs/deflate.md).
//!
//! ```sh
//! cargo run --example compression            # ws://127.0.0.1:9001 with permessage-deflate
//! cargo run --example compression -- --demo  # negotiates, sends 100 KB, prints
//! ```

use wsx::blocking::{self, Message as Received};
use wsx::client::ClientOptions;
use wsx::protocol::deflate::DeflateOptions;
use wsx::{Conn, Handler, Message, Server, ServerHandle};

struct Echo;

impl Handler for Echo {
    type State = ();
    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        let _ = conn.send_text(&format!("compression: {}", conn.compression()));
    }
    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        let _ = conn.send(message);
    }
}

/// The options of ws's README example: messages under 1 KiB go uncompressed, level 3 (wsx's
/// default level is 5).
fn options() -> DeflateOptions {
    DeflateOptions {
        threshold: 1024,
        level: 3,
        ..DeflateOptions::default()
    }
}

/// The server.
pub(crate) fn start(port: u16) -> std::io::Result<ServerHandle> {
    Server::builder()
        .port(port)
        .deflate(options())
        .start(|_| Echo)
}

/// A client offering permessage-deflate: what was agreed, and a 100 KB message's round trip.
pub(crate) fn demo() -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let server = start(0)?;
    let client = ClientOptions::new().deflate(DeflateOptions::default());
    let mut ws = blocking::connect_with(&format!("ws://{}/", server.local_addr()), &client)?;
    let mut lines = Vec::new();
    let agreed = ws
        .response()
        .header("sec-websocket-extensions")
        .map(|v| String::from_utf8_lossy(v).into_owned());
    lines.push(format!(
        "agreed: {}",
        agreed.unwrap_or_else(|| "nothing".into())
    ));
    if let Received::Text(t) = ws.recv()? {
        lines.push(format!("server says {t}"));
    }
    let big = "{\"price\": 101.25, \"size\": 300}\n".repeat(3200);
    ws.send_text(&big)?;
    if let Received::Text(t) = ws.recv()? {
        lines.push(format!("{} bytes came back intact: {}", t.len(), t == big));
    }
    let stats = server.stats();
    lines.push(format!(
        "bytes on the wire: {} in, {} out, for {} bytes of text each way",
        stats.bytes_in,
        stats.bytes_out,
        big.len()
    ));
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
    println!("ws://{}/ with permessage-deflate", server.local_addr());
    server.wait();
    Ok(())
}

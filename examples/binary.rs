//! Sending binary data (Node ws's "sending binary data"): a client sends an array of `f32` as
//! little-endian bytes; the server answers with their sum, in binary too.
//!
//! ```sh
//! cargo run --example binary            # the server, on ws://127.0.0.1:9001
//! cargo run --example binary -- --demo  # server and client, printed
//! ```

use wsx::blocking::{self, Message as Received};
use wsx::{Conn, Handler, Message, Server, ServerHandle};

struct Sum;

impl Handler for Sum {
    type State = ();
    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        let Message::Binary(bytes) = message else {
            let _ = conn.close(wsx::CloseCode::UNSUPPORTED, "binary only");
            return;
        };
        let sum: f32 = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .sum();
        let _ = conn.send_binary(&sum.to_le_bytes());
    }
}

/// The server.
pub(crate) fn start(port: u16) -> std::io::Result<ServerHandle> {
    Server::builder().port(port).start(|_| Sum)
}

/// Sends `[0.5, 1.5, 2.0]` and returns the server's answer.
pub(crate) fn demo() -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let server = start(0)?;
    let mut ws = blocking::connect(&format!("ws://{}/", server.local_addr()))?;
    let values = [0.5f32, 1.5, 2.0];
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    ws.send_binary(&bytes)?;
    let mut lines = Vec::new();
    if let Received::Binary(b) = ws.recv()? {
        let sum = f32::from_le_bytes(b[..4].try_into()?);
        lines.push(format!("sum of {values:?} = {sum}"));
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
        "ws://{}/ sums little-endian f32 arrays",
        server.local_addr()
    );
    server.wait();
    Ok(())
}

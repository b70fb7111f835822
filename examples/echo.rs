//! The simplest server: echo every message (Node ws's "simple server").
//!
//! ```sh
//! cargo run --example echo          # then connect to ws://127.0.0.1:9001
//! ```

use wsx::{CloseInfo, Conn, Handler, Message, Server};

struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        println!("{} connected from {}", conn.id(), conn.peer_addr());
    }

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        // The send reports what became of the message (sent, queued or dropped).
        if let Ok(status) = conn.send(message) {
            if status == wsx::SendStatus::Dropped {
                eprintln!("{}: peer too slow, message dropped", conn.id());
            }
        }
    }

    fn on_close(&mut self, conn: &mut Conn<'_, ()>, close: &CloseInfo) {
        println!(
            "{} closed: {} {:?} (clean: {})",
            conn.id(),
            close.code,
            close.reason,
            close.clean
        );
    }
}

fn main() -> std::io::Result<()> {
    let server = Server::builder().port(9001).start(|_worker| Echo)?;
    println!("listening on ws://{}", server.local_addr());
    server.wait();
    Ok(())
}

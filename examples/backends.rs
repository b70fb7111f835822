//! Starts one echo server on each IO backend the kernel offers, talks to each with the blocking
//! client, and prints which backend served it: `cargo run --example backends`.
//!
//! `WSX_BACKEND=epoll` (or `io_uring`) chooses for servers that do not choose themselves; a
//! forced backend the kernel refuses is an error at start, never a silent fallback.

use wsx::blocking::{self, Message as Got};
use wsx::{Backend, Conn, Handler, Message, Server};

struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        let _ = conn.send(message);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for asked in [Backend::Auto, Backend::Epoll, Backend::IoUring] {
        let server = match Server::builder()
            .host("127.0.0.1")
            .port(0)
            .threads(1)
            .backend(asked)
            .start(|_| Echo)
        {
            Ok(server) => server,
            Err(e) => {
                println!("{asked}: not available here ({e})");
                continue;
            }
        };
        let mut ws = blocking::connect(&format!("ws://{}/", server.local_addr()))?;
        ws.send_text("hello")?;
        let reply = match ws.recv()? {
            Got::Text(t) => t,
            other => format!("{other:?}"),
        };
        println!("{asked}: runs on {}, echoed {reply:?}", server.backend());
        ws.close(wsx::CloseCode::NORMAL, "")?;
        server.shutdown(std::time::Duration::from_secs(1));
        server.wait();
    }
    Ok(())
}

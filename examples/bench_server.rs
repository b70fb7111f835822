//! The server the neutral benchmark harness in `../shared/bench` drives: an echo server and
//! broadcaster written only against the public API.
//!
//! ```sh
//! cargo run --release --example bench_server -- --port 9001 [--threads 1] [--deflate] [--deflate-level 1-12] [--no-subscribe]
//! ```
//!
//! permessage-deflate is on with `--deflate` or with `WS_DEFLATE=1` in the environment (the
//! harness's compressed scenarios `g` and `h` start every peer that way); every message at or
//! above the threshold is then sent compressed.
//!
//! The harness's broadcast rule (scenarios `d` and `f`): a text message `B<payload>` is sent as
//! `<payload>` to every connected client, the sender included. Every connection subscribes to
//! one topic when it opens, and `B` messages are published to it through the public API: the
//! frame is built once and every subscriber's write points at it. With `--no-subscribe` no
//! connection subscribes and `B` goes through `Conn::broadcast` to every open connection
//! instead (the same deliveries without a topic index: the baseline for the memory that a
//! subscription costs).

use wsx::{Conn, Handler, Message, Server};

/// The topic every connection subscribes to.
const ALL: &str = "bench";

struct Bench {
    /// Whether connections subscribe to [`ALL`] (else `B` broadcasts to every connection).
    subscribe: bool,
}

impl Handler for Bench {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        if self.subscribe {
            conn.subscribe(ALL);
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        match message {
            Message::Text(text) if text.starts_with('B') => {
                if self.subscribe {
                    conn.publish(ALL, Message::Text(&text[1..]));
                } else {
                    conn.broadcast(Message::Text(&text[1..]));
                }
            }
            _ => {
                let _ = conn.send(message);
            }
        }
    }
}

fn main() -> std::io::Result<()> {
    let mut port = 9001;
    let mut threads = 1;
    let mut level = None;
    let mut deflate = std::env::var("WS_DEFLATE").as_deref() == Ok("1");
    let mut subscribe = true;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--deflate" {
            deflate = true;
            continue;
        }
        if flag == "--no-subscribe" {
            subscribe = false;
            continue;
        }
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--port" => port = value.parse().expect("--port takes a number"),
            "--threads" => threads = value.parse().expect("--threads takes a number"),
            "--deflate-level" => {
                level = Some(value.parse().expect("--deflate-level takes a number"));
            }
            other => panic!("unknown flag {other}; usage: bench_server --port P [--threads N] [--deflate] [--deflate-level L] [--no-subscribe]"),
        }
    }
    // The harness pins the process to one core; do not pin threads again inside it.
    let mut builder = Server::builder();
    if deflate {
        let mut options = wsx::protocol::deflate::DeflateOptions::default();
        if let Some(level) = level {
            options.level = level;
        }
        builder = builder.deflate(options);
    }
    let server = builder
        .port(port)
        .threads(threads)
        .pin_threads(false)
        .idle_timeout(None)
        .start(move |_| Bench { subscribe })?;
    eprintln!("bench_server listening on {}", server.local_addr());
    server.wait();
    Ok(())
}

//! Detecting and closing broken connections (Node ws's "how to detect and close broken
//! connections?"). A peer that vanished without a FIN (a dead NAT entry, a pulled cable) looks
//! idle forever; wsx finds it two ways:
//!
//! - **Built in**: `Builder::idle_timeout(T)` with automatic pings (on by default). A ping goes
//!   out after `T/2` of silence; a peer whose pong (or anything else) does not come within the
//!   other half is dropped, and `on_close` says 1006 "idle timeout".
//! - **By hand**, as ws's README does it: `on_tick` pings every connection each interval and
//!   terminates those that did not answer the previous ping (`on_pong` marks them alive).
//!
//! ```sh
//! cargo run --example heartbeat            # ws://127.0.0.1:9001, 30 s heartbeat by hand
//! cargo run --example heartbeat -- --demo  # a live and a silent peer, printed
//! ```

use std::collections::HashMap;
use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

use wsx::{CloseInfo, Conn, ConnId, Handler, Server, ServerHandle, Tick};

/// The hand-made heartbeat: whether each connection answered since the last ping.
struct Heartbeat {
    alive: HashMap<ConnId, bool>,
    closed: Sender<String>,
}

impl Handler for Heartbeat {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        self.alive.insert(conn.id(), true);
    }

    fn on_pong(&mut self, conn: &mut Conn<'_, ()>, _payload: &[u8]) {
        self.alive.insert(conn.id(), true);
    }

    fn on_tick(&mut self, tick: &mut Tick<'_, ()>) {
        let ids: Vec<ConnId> = self.alive.keys().copied().collect();
        for id in ids {
            let answered = self.alive.insert(id, false).unwrap_or(false);
            tick.with(id, |conn| {
                if answered {
                    let _ = conn.ping(b"");
                } else {
                    conn.terminate(); // no pong since the last ping: gone
                }
            });
        }
    }

    fn on_close(&mut self, conn: &mut Conn<'_, ()>, close: &CloseInfo) {
        self.alive.remove(&conn.id());
        let _ = self.closed.send(format!(
            "{} closed: {} {}",
            conn.id(),
            close.code,
            close.reason
        ));
    }
}

/// The server: a heartbeat every `interval`; the built-in idle timeout is off, so that the
/// hand-made one is what acts.
pub(crate) fn start(
    port: u16,
    interval: Duration,
    closed: Sender<String>,
) -> std::io::Result<ServerHandle> {
    Server::builder()
        .port(port)
        .idle_timeout(None)
        .tick(interval)
        .start(move |_| Heartbeat {
            alive: HashMap::new(),
            closed: closed.clone(),
        })
}

/// A live peer (the blocking client answers pings while it reads) and a silent one (a socket
/// that finishes the handshake, then never reads or answers): the silent one is terminated
/// after two intervals, the live one stays.
pub(crate) fn demo() -> Result<Vec<String>, Box<dyn std::error::Error>> {
    use std::io::{Read, Write};
    let (tx, closed) = channel();
    let server = start(0, Duration::from_millis(200), tx)?;
    let addr = server.local_addr();
    let mut live = wsx::blocking::connect(&format!("ws://{addr}/"))?;
    live.set_read_timeout(Some(Duration::from_millis(50)))?;
    let mut silent = std::net::TcpStream::connect(addr)?;
    silent.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )?;
    let mut head = [0u8; 129];
    let _ = silent.read(&mut head)?; // the 101; nothing is read after it
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        // Reading answers the pings.
        let _ = live.recv();
        if let Ok(line) = closed.try_recv() {
            lines.push(line);
            break;
        }
    }
    // The worker publishes its counters once per loop turn: wait (bounded) for the drop.
    while server.stats().connections > 1 && std::time::Instant::now() < deadline {
        let _ = live.recv();
    }
    lines.push(format!(
        "open after the silent one went: {}",
        server.stats().connections
    ));
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
    let (tx, closed) = channel();
    let server = start(9001, Duration::from_secs(30), tx)?;
    println!("ws://{}/ (heartbeat every 30 s)", server.local_addr());
    for line in closed {
        println!("{line}");
    }
    server.wait();
    Ok(())
}

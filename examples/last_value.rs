//! Last value per key (market data): topic `ticks` keeps the newest tick of each symbol, so a
//! client that subscribes sees every symbol's price at once instead of waiting for its next
//! tick, then every tick after (docs/broadcast.md, "Last value").
//!
//! ```sh
//! cargo run --example last_value            # ticks on ws://127.0.0.1:9003/, 5 symbols, 2/s each
//! cargo run --example last_value -- --demo  # ticks published, then a late subscriber, printed
//! ```

use std::time::Duration;

use wsx::blocking::{self, Message as Received};
use wsx::broadcast::{LastValue, PublishOptions};
use wsx::{Conn, Handler, Message, Server, ServerHandle};

const SYMBOLS: [&str; 5] = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOG"];

/// Every connection subscribes to `ticks` when it opens.
struct Ticks;

impl Handler for Ticks {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        // The newest tick of every symbol is queued for it here, ahead of what comes next.
        conn.subscribe("ticks");
    }
}

/// The server: `ticks` keeps one value per symbol (at most 10,000 symbols, 16 MiB).
pub(crate) fn start(port: u16) -> std::io::Result<ServerHandle> {
    Server::builder()
        .port(port)
        .last_value_for(
            "ticks",
            LastValue::new().max_keys(10_000).max_bytes(16 << 20),
        )
        .start(|_| Ticks)
}

/// Publishes a tick of `symbol`, keyed by the symbol.
fn tick(server: &ServerHandle, symbol: &str, price: f64) -> Result<(), wsx::HandleError> {
    let options = PublishOptions {
        key: Some(symbol),
        ..PublishOptions::default()
    };
    let text = format!("{{\"s\":\"{symbol}\",\"px\":{price:.2}}}");
    server.publish_with("ticks", Message::Text(&text), &options)
}

/// Three rounds of ticks with nobody listening, then a subscriber: what it gets at once, and
/// the next tick.
pub(crate) fn demo() -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let server = start(0)?;
    for round in 0..3 {
        for (i, symbol) in SYMBOLS.iter().enumerate() {
            tick(&server, symbol, 100.0 * (i + 1) as f64 + f64::from(round))?;
        }
    }
    let mut late = blocking::connect(&format!("ws://{}/", server.local_addr()))?;
    late.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut lines = Vec::new();
    for _ in 0..SYMBOLS.len() {
        if let Received::Text(t) = late.recv()? {
            lines.push(format!("at once: {t}"));
        }
    }
    tick(&server, "NVDA", 350.0)?;
    if let Received::Text(t) = late.recv()? {
        lines.push(format!("then: {t}"));
    }
    let stats = server.last_value_stats();
    lines.push(format!(
        "kept {} values ({} bytes) of {} ticks",
        stats.values, stats.bytes, stats.recorded
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
    let server = start(9003)?;
    println!("ticks on ws://{}/", server.local_addr());
    let mut round = 0u32;
    loop {
        for (i, symbol) in SYMBOLS.iter().enumerate() {
            let drift = f64::from(round % 20) * 0.25;
            let _ = tick(&server, symbol, 100.0 * (i + 1) as f64 + drift);
        }
        round += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
}

//! wsx-loadtest as a library: start a wsx echo server in this process, run a fixed-rate echo
//! scenario against it, and read the report's figures.
//!
//! ```sh
//! cargo run --release -p wsx-loadtest --example library
//! ```

use clap::Parser;
use wsx::{Conn, Handler, Message, Server};
use wsx_loadtest::cli::Cli;

struct Echo;

impl Handler for Echo {
    type State = ();
    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        let _ = conn.send(message);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::builder().port(0).threads(1).start(|_| Echo)?;
    let url = format!("ws://{}/", server.local_addr());
    // The same words as on the command line.
    let cli = Cli::try_parse_from([
        "wsx-loadtest",
        "echo",
        "--url",
        &url,
        "-c",
        "10",
        "--rate",
        "2000",
        "-d",
        "8",
        "--duration",
        "2s",
        "--warmup",
        "500ms",
        "-q",
    ])?;
    let report = wsx_loadtest::run(&cli.command)?;
    print!("{}", report.table());
    if let Some(latency) = &report.latency_us {
        println!(
            "{} replies, p99 {:.1} µs, {} errors",
            latency.count, latency.p99, report.errors.total
        );
    }
    server.shutdown(std::time::Duration::from_secs(1));
    server.wait();
    Ok(())
}

//! The `wsx` command line: `wsx serve` runs an echo server on the engine.

use std::process::ExitCode;
use std::time::Duration;

use wsx::{Conn, Handler, Message, Server};

const USAGE: &str =
    "usage: wsx serve [--host HOST] [--port PORT] [--threads N] [--path PATH] [--deflate]

  serve    echo server: every text or binary message comes back unchanged
           (default 127.0.0.1:9001, one worker per core); Ctrl-C or SIGTERM stops it
           cleanly (close 1001 to every client, 5 s grace);
           --deflate answers permessage-deflate offers (RFC 7692)";

/// Echoes every message.
struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        let _ = conn.send(message);
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => match serve(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wsx: {e}");
                ExitCode::FAILURE
            }
        },
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn serve(args: &[String]) -> Result<(), String> {
    let mut host = "127.0.0.1".to_owned();
    let mut port: u16 = 9001;
    let mut threads: Option<usize> = None;
    let mut path: Option<String> = None;
    let mut deflate = false;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--host" => host = value()?,
            "--port" => port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--threads" => threads = Some(value()?.parse().map_err(|e| format!("--threads: {e}"))?),
            "--path" => path = Some(value()?),
            "--deflate" => deflate = true,
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
    }
    let mut builder = Server::builder().host(&host).port(port);
    if let Some(n) = threads {
        builder = builder.threads(n);
    }
    if let Some(p) = path {
        builder = builder.path(p);
    }
    if deflate {
        builder = builder.deflate(wsx::protocol::deflate::DeflateOptions::default());
    }
    let server = builder
        .start(|_| Echo)
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
    println!(
        "wsx: echo server listening on ws://{} (backend epoll, {} workers{})",
        server.local_addr(),
        server.workers(),
        if deflate { ", permessage-deflate" } else { "" }
    );
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let handle = server.clone();
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            eprintln!("wsx: signal {sig}, shutting down");
            handle.shutdown(Duration::from_secs(5));
        }
    });
    server.wait();
    println!("wsx: stopped");
    Ok(())
}

//! Drives every case of a running Autobahn|Testsuite fuzzingserver with the engine client.
//!
//! ```sh
//! ../shared/autobahn/fuzzingserver.sh 9001 reports/client &
//! cargo run --release --example autobahn_client -- --url ws://127.0.0.1:9001 --agent wsx [--deflate]
//! ```
//!
//! Exits non-zero when a connection fails to open or a case does not finish; the verdicts are
//! in the fuzzingserver's report (`summarize.py`).

use std::process::ExitCode;
use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

use wsx::client::{ClientError, ClientOptions, Url};
use wsx::{Client, CloseInfo, Conn, Handler, Message};

/// What the handler tells the main thread.
enum Report {
    Text(u64, String),
    Closed(u64),
    Failed(u64, String),
}

/// Echoes every message back; reports texts, closes and failures by tag.
struct Echo(Sender<Report>);

impl Handler for Echo {
    type State = ();

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        if conn.tag() == 0 {
            if let Message::Text(t) = message {
                let _ = self.0.send(Report::Text(0, t.to_owned()));
            }
            return;
        }
        let _ = conn.send(message);
    }

    fn on_close(&mut self, conn: &mut Conn<'_, ()>, _close: &CloseInfo) {
        let _ = self.0.send(Report::Closed(conn.tag()));
    }

    fn on_connect_error(&mut self, url: &Url, tag: u64, error: &ClientError) {
        let _ = self.0.send(Report::Failed(tag, format!("{url}: {error}")));
    }
}

fn main() -> ExitCode {
    let mut url = "ws://127.0.0.1:9001".to_owned();
    let mut agent = "wsx".to_owned();
    let mut deflate = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--deflate" {
            deflate = true;
            continue;
        }
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--url" => url = value,
            "--agent" => agent = value,
            other => {
                eprintln!("unknown flag {other}; usage: autobahn_client --url URL --agent NAME");
                return ExitCode::from(2);
            }
        }
    }
    let (tx, rx) = channel();
    let engine = match Client::builder()
        .threads(1)
        .idle_timeout(None)
        .start(move |_| Echo(tx.clone()))
    {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("autobahn_client: cannot start the engine: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The backend comes from `WSX_BACKEND` (default: io_uring where the kernel allows it).
    println!("autobahn_client: engine on backend {}", engine.backend());
    // Autobahn's large cases (9.*) send up to 16 MiB messages.
    let options = || {
        let options = ClientOptions::new().no_proxy().max_payload(64 << 20);
        if deflate {
            // As a browser offers it: the server may keep its context across messages.
            options.deflate(wsx::protocol::deflate::DeflateOptions {
                server_no_context_takeover: false,
                client_no_context_takeover: false,
                ..Default::default()
            })
        } else {
            options
        }
    };
    let wait = |tag: u64, secs: u64| -> Result<Option<String>, String> {
        let mut text = None;
        loop {
            match rx.recv_timeout(Duration::from_secs(secs)) {
                Ok(Report::Text(t, s)) if t == tag => text = Some(s),
                Ok(Report::Closed(t)) if t == tag => return Ok(text),
                Ok(Report::Failed(t, e)) if t == tag => return Err(e),
                Ok(_) => {}
                Err(_) => return Err(format!("case {tag}: no close within {secs} s")),
            }
        }
    };
    let run = || -> Result<(), String> {
        engine
            .connect(&format!("{url}/getCaseCount"), options(), 0)
            .map_err(|e| e.to_string())?;
        let count: u64 = wait(0, 30)?
            .ok_or("getCaseCount sent no number")?
            .trim()
            .parse()
            .map_err(|e| format!("getCaseCount: {e}"))?;
        println!("autobahn_client: {count} cases");
        for case in 1..=count {
            let target = format!("{url}/runCase?case={case}&agent={agent}");
            engine
                .connect(&target, options(), case)
                .map_err(|e| e.to_string())?;
            wait(case, 300)?;
        }
        let tag = count + 1;
        engine
            .connect(
                &format!("{url}/updateReports?agent={agent}"),
                options(),
                tag,
            )
            .map_err(|e| e.to_string())?;
        wait(tag, 60)?;
        Ok(())
    };
    let result = run();
    engine.shutdown(Duration::from_secs(1));
    engine.wait();
    match result {
        Ok(()) => {
            println!("autobahn_client: all cases run, report updated");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("autobahn_client: {e}");
            ExitCode::FAILURE
        }
    }
}

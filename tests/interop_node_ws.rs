//! Interop with Node's `ws` (8.x), permessage-deflate on: ws as a client of a wsx server, and
//! the wsx client against a ws server. Installs ws with npm into `target/interop-node` the first
//! time; when node or npm is missing the tests say so and pass without running.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use wsx::blocking::Message;
use wsx::client::ClientOptions;
use wsx::protocol::deflate::DeflateOptions;
use wsx::{Conn, Handler, Server};

/// The directory with `node_modules/ws`, installing it if needed; `None` (with a note) when
/// node or npm is not available.
fn node_ws() -> Option<PathBuf> {
    // Both tests ask at once: install once.
    static INSTALLED: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(install_ws).clone()
}

fn install_ws() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/interop-node");
    if Command::new("node").arg("--version").output().is_err() {
        eprintln!("SKIPPED: node is not installed; the ws interop tests did not run");
        return None;
    }
    if !dir.join("node_modules/ws").exists() {
        std::fs::create_dir_all(&dir).ok()?;
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "ws@8"])
            .current_dir(&dir)
            .status();
        match status {
            Ok(s) if s.success() => {}
            other => {
                eprintln!("SKIPPED: `npm install ws@8` failed ({other:?}); the ws interop tests did not run");
                return None;
            }
        }
    }
    Some(dir)
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}

struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        assert!(conn.compression(), "permessage-deflate negotiated with ws");
    }

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: wsx::Message<'_>) {
        let _ = conn.send(message);
    }
}

#[test]
fn ws_client_against_wsx_server() {
    let Some(dir) = node_ws() else { return };
    let server = Server::builder()
        .port(0)
        .threads(1)
        .pin_threads(false)
        .deflate(DeflateOptions::default())
        .start(|_| Echo)
        .unwrap();
    let out = Command::new("node")
        .arg(script("ws_client.js"))
        .arg(format!("ws://{}/", server.local_addr()))
        .env("NODE_PATH", dir.join("node_modules"))
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ws client failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "ok 12");
    // The echoes of the large repetitive messages were compressed on the way out.
    let stats = server.stats();
    assert!(stats.bytes_out < stats.bytes_in * 2, "{stats:?}");
    assert!(
        stats.bytes_in < 120_000,
        "ws compressed what it sent: {stats:?}"
    );
    assert!(
        stats.bytes_out < 120_000,
        "wsx compressed the echoes: {stats:?}"
    );
    server.shutdown(Duration::ZERO);
    server.wait();
}

#[test]
fn wsx_client_against_ws_server() {
    let Some(dir) = node_ws() else { return };
    let mut child = Command::new("node")
        .arg(script("ws_server.js"))
        .env("NODE_PATH", dir.join("node_modules"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().expect("ws server prints its port");
    let options = ClientOptions::new().no_proxy().deflate(DeflateOptions {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        ..DeflateOptions::default()
    });
    let mut ws = wsx::blocking::connect_with(&format!("ws://127.0.0.1:{port}/"), &options).unwrap();
    ws.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(
        ws.response()
            .extensions()
            .iter()
            .any(|e| e.name == "permessage-deflate"),
        "ws accepted permessage-deflate"
    );
    // Repeated messages exercise ws's context takeover on its side.
    for round in 0..3 {
        for n in [1usize, 1023, 1024, 5000, 100_000] {
            let text = format!("round {round} ").repeat(n / 8 + 1);
            ws.send_text(&text).unwrap();
            assert_eq!(ws.recv().unwrap(), Message::Text(text));
            let data: Vec<u8> = (0..n).map(|i| (i % 13) as u8).collect();
            ws.send_binary(&data).unwrap();
            assert_eq!(ws.recv().unwrap(), Message::Binary(data));
        }
    }
    ws.close(wsx::CloseCode::NORMAL, "done").unwrap();
    let _ = child.kill();
    let _ = child.wait();
}

//! Every mode of the load generator against real servers in their own processes: `wsx serve
//! --broadcast B` (the binary next to this test's, built first if it is missing) and Node's
//! `ws` (tests/node/server.js; ws@8 is installed with npm into `target/interop-node`, shared
//! with the root crate's interop tests). Without node or npm the Node tests print
//! `SKIPPED: ...` and pass, except under `CI=true`, where they fail.
//!
//! Each server is killed by its `Child` handle when its test ends, and exits by itself when
//! its stdin closes (Node) or on its own lifetime bound, so none outlives the test.

#[path = "support/servers.rs"]
mod servers;

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

use servers::loadtest;
use wsx_loadtest::report::Report;

/// A server process, killed by its handle on drop.
struct Peer {
    child: Child,
    url: String,
    /// Kept open (wsx serve writes to it; closing it could end the server early).
    stdout: BufReader<ChildStdout>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Peer {
    /// Starts `cmd` (stdout piped) and reads the port from its first line, where `port_of`
    /// finds it.
    fn start(mut cmd: Command, what: &str, port_of: fn(&str) -> Option<u16>) -> Peer {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{what} does not start: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut peer = Peer {
            child,
            url: String::new(),
            stdout: BufReader::new(stdout),
        };
        // A server that dies first closes the pipe and the read returns.
        let mut line = String::new();
        peer.stdout
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("read the first line of {what}: {e}"));
        let port = port_of(&line)
            .unwrap_or_else(|| panic!("no port in the first line of {what}: {line:?}"));
        peer.url = format!("ws://127.0.0.1:{port}/");
        peer
    }
}

/// The `wsx` binary of this build: `target/<profile>/wsx`, next to the `deps/` folder that
/// holds this test. `cargo test -p wsx-loadtest` does not build it, so it is built (or, when
/// up to date, checked) once with `$CARGO build --bin wsx`: a missing binary, or a stale one
/// from before `--broadcast`, would fail every test here.
fn wsx_binary() -> &'static Path {
    static WSX: OnceLock<PathBuf> = OnceLock::new();
    WSX.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test's path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test runs from target/<profile>/deps");
        let wsx = profile_dir.join(format!("wsx{}", std::env::consts::EXE_SUFFIX));
        {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
            let mut build = Command::new(&cargo);
            build
                .args(["build", "-p", "wsx", "--bin", "wsx", "--manifest-path"])
                .arg(&manifest);
            if profile_dir.file_name().is_some_and(|p| p == "release") {
                build.arg("--release");
            }
            let status = build
                .status()
                .unwrap_or_else(|e| panic!("{cargo} build --bin wsx did not start: {e}"));
            assert!(status.success(), "{cargo} build --bin wsx failed: {status}");
            assert!(wsx.exists(), "{wsx:?} is missing after building it");
        }
        wsx
    })
}

/// `wsx serve --port 0 --threads 1 --broadcast B`.
fn wsx_serve() -> Peer {
    let mut cmd = Command::new(wsx_binary());
    cmd.args(["serve", "--port", "0", "--threads", "1", "--broadcast", "B"]);
    // "wsx: echo server listening on ws://ADDR (...)"
    Peer::start(cmd, "wsx serve", |line| {
        let addr: std::net::SocketAddr = line
            .split("ws://")
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        Some(addr.port())
    })
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Says why a test cannot run: a failure under `CI=true`, `SKIPPED` on stderr elsewhere.
fn missing(why: &str) {
    if in_ci() {
        panic!("CI=true and the Node ws peer test cannot run: {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

/// Runs `cmd` to completion (output captured) and says why it failed, if it did.
fn run_setup(cmd: &mut Command) -> Result<(), String> {
    match cmd.output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "{cmd:?} exited with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => Err(format!("{cmd:?} did not start: {e}")),
    }
}

/// `node_modules` with ws@8 in the workspace's `target/interop-node`, installed the first
/// time (as tests/interop_node_ws.rs does).
fn node_ws() -> Result<&'static Path, &'static str> {
    static MODULES: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let modules = MODULES.get_or_init(|| {
        run_setup(Command::new("node").arg("--version"))
            .map_err(|e| format!("node is not usable, the ws peer tests did not run ({e})"))?;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/interop-node");
        if !dir.join("node_modules/ws/package.json").exists() {
            std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {dir:?}: {e}"))?;
            run_setup(
                Command::new("npm")
                    .args(["install", "--no-audit", "--no-fund", "--silent", "ws@8"])
                    .current_dir(&dir),
            )
            .map_err(|e| {
                format!("`npm install ws@8` failed, the ws peer tests did not run ({e})")
            })?;
        }
        Ok(dir.join("node_modules"))
    });
    modules.as_deref().map_err(String::as_str)
}

/// tests/node/server.js on Node's ws, or `None` when node or ws is missing (see [`missing`]).
fn node_serve() -> Option<Peer> {
    let modules = match node_ws() {
        Ok(m) => m,
        Err(why) => {
            missing(why);
            return None;
        }
    };
    let mut cmd = Command::new("node");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/server.js"))
        .env("NODE_PATH", modules);
    Some(Peer::start(cmd, "node server.js", |line| {
        line.trim().strip_prefix("listening on ")?.parse().ok()
    }))
}

/// Flags every run here has: one load generator thread, no progress line, short phases.
fn run(mode: &str, url: &str, args: &[&str]) -> Report {
    let mut all = vec![mode, "--url", url, "--threads", "1", "-q"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--connect-timeout", "10s", "--drain", "5s"]);
    loadtest(&all)
}

fn assert_clean(r: &Report, what: &str) {
    assert_eq!(r.errors.total, 0, "{what}: errors: {:?}", r.errors);
    assert!(r.ended_early.is_none(), "{what}: {:?}", r.ended_early);
}

fn echo_closed_loop(url: &str, what: &str) {
    let r = run(
        "echo",
        url,
        &[
            "-c",
            "20",
            "-d",
            "2",
            "--duration",
            "2s",
            "--warmup",
            "300ms",
        ],
    );
    assert_clean(&r, what);
    assert_eq!(r.connect.opened, 20, "{what}");
    assert!(r.received_measured > 0, "{what}: no reply in the window");
    assert_eq!(r.sent, r.received, "{what}: every message sent came back");
    assert_eq!(r.bytes_sent, r.bytes_received, "{what}");
    let latency = r.latency_us.as_ref().expect("latency recorded");
    assert_eq!(latency.count, r.received_measured, "{what}");
}

/// Messages per second of the fixed-rate run, its window and its connections.
const RATE: u64 = 400;
const RATE_SECS: u64 = 2;
const RATE_CONNS: u64 = 20;

fn echo_fixed_rate(url: &str, what: &str) {
    let duration = format!("{RATE_SECS}s");
    let r = run(
        "echo",
        url,
        &[
            "-c",
            &RATE_CONNS.to_string(),
            "-d",
            "16",
            "--rate",
            &RATE.to_string(),
            "--duration",
            &duration,
            "--warmup",
            "300ms",
        ],
    );
    assert_clean(&r, what);
    // The messages due in the window are counted by their intended time: the schedule's,
    // whatever the machine's load. Each connection's first and last slot may fall either
    // side of an edge of the window.
    let expected = RATE * RATE_SECS;
    assert!(
        r.sent_measured.abs_diff(expected) <= RATE_CONNS,
        "{what}: {} sent in the window, {expected} ± {RATE_CONNS} due",
        r.sent_measured
    );
    assert_eq!(r.sent, r.received, "{what}: every message came back");
    assert_eq!(r.received_measured, r.sent_measured, "{what}");
    assert!(r.latency_uncorrected_us.is_some(), "{what}: both latencies");
}

fn broadcast(url: &str, what: &str) {
    let r = run(
        "broadcast",
        url,
        &[
            "-c",
            "20",
            "--rate",
            "100",
            "--duration",
            "2s",
            "--warmup",
            "300ms",
        ],
    );
    assert_clean(&r, what);
    let b = r.broadcast.as_ref().expect("broadcast figures");
    assert_eq!(b.subscribers, 20, "{what}: every connection subscribes");
    assert!(b.publishes > 0, "{what}: publishes were made");
    assert_eq!(b.expected_deliveries, b.publishes * b.subscribers, "{what}");
    assert_eq!(b.deliveries, b.expected_deliveries, "{what}: {b:?}");
    assert_eq!(b.lost, 0, "{what}");
    assert!(b.reach_us.is_some(), "{what}: reach measured");
}

fn connect(url: &str, what: &str) {
    let r = run("connect", url, &["-c", "200"]);
    assert_clean(&r, what);
    assert_eq!(r.connect.opened, 200, "{what}: all opened");
    assert_eq!(r.connect.failed, 0, "{what}");
    let handshakes = r.connect.handshake_us.as_ref().expect("handshake latency");
    assert_eq!(handshakes.count, 200, "{what}");
}

fn idle(url: &str, what: &str) {
    let r = run(
        "idle",
        url,
        &["-c", "50", "--ping", "200ms", "--duration", "1s"],
    );
    assert_clean(&r, what);
    assert_eq!(r.connect.opened, 50, "{what}");
    let pongs = r.pongs.expect("pongs counted with --ping");
    assert!(pongs > 0, "{what}: pongs came");
    assert!(
        pongs <= r.sent,
        "{what}: {pongs} pongs for {} pings",
        r.sent
    );
}

/// A test per mode and peer.
macro_rules! peer_tests {
    ($($mode:ident: $wsx:ident, $node:ident;)*) => {$(
        #[test]
        fn $wsx() {
            let server = wsx_serve();
            $mode(&server.url, "wsx serve");
        }

        #[test]
        fn $node() {
            let Some(server) = node_serve() else { return };
            $mode(&server.url, "node ws");
        }
    )*};
}

peer_tests! {
    echo_closed_loop: wsx_echo_closed_loop, node_echo_closed_loop;
    echo_fixed_rate: wsx_echo_fixed_rate, node_echo_fixed_rate;
    broadcast: wsx_broadcast, node_broadcast;
    connect: wsx_connect, node_connect;
    idle: wsx_idle, node_idle;
}

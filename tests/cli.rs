//! The `wsx` binary: `--help` and `--version`, errors that name the bad flag, shutdown on
//! SIGTERM after its output pipes have closed (`wsx serve 2>&1 | head -1`), and the soft
//! open-file limit raised to the hard one at start, `--broadcast PREFIX`, and with feature
//! `nats` two `wsx serve --nats` nodes sharing publishes over a real `nats-server`.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
#[cfg(feature = "nats")]
#[path = "support/nats.rs"]
mod nats;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use wsx::Backend;

const WSX: &str = env!("CARGO_BIN_EXE_wsx");

/// How long a stopping server may take before the test fails (no clients: it needs none of
/// its 5 s grace).
const STOP_WITHIN: Duration = Duration::from_secs(10);

/// Runs `wsx` with `args` to the end (these invocations exit at once).
fn wsx(args: &[&str]) -> Output {
    Command::new(WSX)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("wsx runs")
}

/// A running `wsx serve`, killed (by its handle) if a test fails before it has stopped.
struct Serve {
    child: Child,
}

impl Serve {
    /// Starts `program` with `args` (which end in `wsx serve …`) on `backend` (through
    /// `WSX_BACKEND`) with stdout and stderr piped; returns it with the address from its first
    /// line, which must name `backend`, and the still open pipes.
    fn start(
        backend: Backend,
        program: &str,
        args: &[&str],
    ) -> (Self, SocketAddr, BufReader<ChildStdout>, ChildStderr) {
        Serve::start_with_env(backend, backend, program, args)
    }

    /// [`Serve::start`] with `WSX_BACKEND` set to `env` and a first line that must name
    /// `backend` (`args` may force another backend than `env`).
    fn start_with_env(
        env: Backend,
        backend: Backend,
        program: &str,
        args: &[&str],
    ) -> (Self, SocketAddr, BufReader<ChildStdout>, ChildStderr) {
        let mut child = Command::new(program)
            .args(args)
            .env("WSX_BACKEND", env.name())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wsx serve starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let stderr = child.stderr.take().expect("piped stderr");
        let serve = Serve { child };
        // The first line: "wsx: echo server listening on ws://ADDR (...)". A server that dies
        // first closes the pipe, and the read returns.
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the first line");
        let addr = line
            .split("ws://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no listening address in the first line: {line:?}"));
        assert!(
            line.contains(&format!("(backend {backend},")),
            "the first line does not name the backend {backend}: {line:?}"
        );
        (serve, addr, stdout, stderr)
    }

    /// Waits (bounded by `within`, polling) for the process to exit.
    fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("a pid fits in pid_t")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends `signal` to our own child `pid`.
#[allow(unsafe_code)]
fn signal(pid: i32, signal: i32) {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; `pid` is a child we
    // spawned and have not reaped, so it names that process and no other.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
}

/// True under `CI=true`, where a missing tool fails a test instead of skipping it.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

#[test]
fn help_exits_0_and_lists_every_flag() {
    let out = wsx(&["serve", "--help"]);
    assert!(out.status.success(), "{:?}", out.status);
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--host",
        "--port",
        "--threads",
        "--path",
        "--deflate",
        "--deflate-level",
        "--deflate-context-takeover",
        "--deflate-max-window-bits",
        "--deflate-threshold",
        "--backend",
        "--broadcast",
        "--broadcast-path",
        "--last-value",
        "--stats-interval",
        "--health",
        "--help",
        "--version",
    ] {
        assert!(
            help.contains(flag),
            "`wsx serve --help` lacks {flag}:\n{help}"
        );
    }
    #[cfg(feature = "nats")]
    for flag in [
        "--nats",
        "--nats-prefix",
        "--nats-creds",
        "--nats-ca",
        "--nats-bucket",
    ] {
        assert!(help.contains(flag), "`wsx serve --help` lacks {flag}");
    }
    // The defaults are documented with the flags.
    for default in ["127.0.0.1", "9001", "one per core", "every path"] {
        assert!(help.contains(default), "no default {default:?}:\n{help}");
    }
    // The top level lists the command.
    let out = wsx(&["--help"]);
    assert!(out.status.success(), "{:?}", out.status);
    assert!(String::from_utf8_lossy(&out.stdout).contains("serve"));
}

#[test]
fn version_prints_the_crate_version() {
    for args in [&["--version"][..], &["serve", "--version"]] {
        let out = wsx(args);
        assert!(out.status.success(), "{args:?}: {:?}", out.status);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.trim_end().ends_with(env!("CARGO_PKG_VERSION")) && text.starts_with("wsx"),
            "{args:?}: {text:?}"
        );
    }
}

#[test]
fn a_bad_flag_exits_2_and_is_named() {
    for (args, named) in [
        (&["serve", "--bogus"][..], "--bogus"),
        (&["serve", "--port", "http"], "--port"),
        (&["serve", "--port", "70000"], "--port"),
        (&["serve", "--threads", "0"], "--threads"),
        (&["serve", "--host"], "--host"),
        (&["frobnicate"], "frobnicate"),
    ] {
        let out = wsx(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(named),
            "{args:?}: stderr does not name {named}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: usage errors go to stderr");
    }
    // No command at all is a usage error too.
    assert_eq!(wsx(&[]).status.code(), Some(2));
}

test_all!(the_backend_flag_chooses_the_backend_and_the_first_line_names_it);
/// `--backend` wins over `WSX_BACKEND`, and a name that is no backend is a usage error.
fn the_backend_flag_chooses_the_backend_and_the_first_line_names_it(backend: Backend) {
    let other = Backend::ALL
        .into_iter()
        .find(|&b| b != backend)
        .expect("two backends");
    // `WSX_BACKEND` names the other one; the first line must name the flag's.
    let (mut serve, addr, _stdout, _stderr) = Serve::start_with_env(
        other,
        backend,
        WSX,
        &[
            "serve",
            "--port",
            "0",
            "--threads",
            "1",
            "--backend",
            backend.name(),
        ],
    );
    assert!(addr.ip().is_loopback(), "{addr}");
    signal(serve.pid(), libc::SIGTERM);
    let status = serve.wait_exit(STOP_WITHIN);
    assert!(status.is_some_and(|s| s.success()), "{status:?}");

    let out = wsx(&["serve", "--backend", "kqueue"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--backend") && err.contains("kqueue"), "{err}");
}

test_all!(sigterm_stops_the_server_after_its_output_pipes_closed);
fn sigterm_stops_the_server_after_its_output_pipes_closed(backend: Backend) {
    let (mut serve, addr, stdout, stderr) =
        Serve::start(backend, WSX, &["serve", "--port", "0", "--threads", "1"]);
    assert!(addr.ip().is_loopback(), "{addr}");
    // `| head -1`: the reader has its line and goes away.
    drop(stdout);
    drop(stderr);
    signal(serve.pid(), libc::SIGTERM);
    match serve.wait_exit(STOP_WITHIN) {
        // Every note it printed on the way out hit a closed pipe, and none of them mattered.
        Some(status) => assert!(status.success(), "{status:?}"),
        None => panic!("wsx serve still runs {STOP_WITHIN:?} after SIGTERM with closed pipes"),
    }
}

test_all!(sigint_stops_the_server_and_it_says_so);
fn sigint_stops_the_server_and_it_says_so(backend: Backend) {
    let (mut serve, _addr, mut stdout, stderr) =
        Serve::start(backend, WSX, &["serve", "--port", "0", "--threads", "1"]);
    signal(serve.pid(), libc::SIGINT);
    let status = serve.wait_exit(STOP_WITHIN);
    assert!(
        status.is_some_and(|s| s.success()),
        "wsx serve after SIGINT: {status:?}"
    );
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("read stdout");
    assert_eq!(rest, "wsx: stopped\n");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut { stderr }, &mut err).expect("read stderr");
    assert!(err.contains("shutting down"), "{err:?}");
}

/// The soft and hard `Max open files` of a process, from /proc/PID/limits.
fn nofile_limits(pid: &str) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("read limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let mut numbers = line["Max open files".len()..].split_whitespace();
    let mut next = || -> u64 {
        numbers
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a limited number in {line:?}"))
    };
    (next(), next())
}

test_all!(serve_raises_the_soft_open_file_limit_to_the_hard_one);
fn serve_raises_the_soft_open_file_limit_to_the_hard_one(backend: Backend) {
    if Command::new("prlimit").arg("--version").output().is_err() {
        let why = "prlimit (util-linux) is not installed";
        assert!(!in_ci(), "{why}; install util-linux");
        eprintln!("SKIPPED: {why}; the open-file limit test did not run");
        return;
    }
    // A hard limit we may set (never above our own), and a soft one well below it.
    let (_, own_hard) = nofile_limits("self");
    let hard = own_hard.min(4096);
    let soft = (hard / 2).min(1024);
    assert!(
        soft >= 64,
        "this process's hard limit ({own_hard}) is too low to test with"
    );
    let nofile = format!("--nofile={soft}:{hard}");
    // prlimit sets the limits on itself, then execs wsx: same process, same pid.
    let (mut serve, _addr, _stdout, _stderr) = Serve::start(
        backend,
        "prlimit",
        &[&nofile, WSX, "serve", "--port", "0", "--threads", "1"],
    );
    let pid = serve.child.id().to_string();
    assert_eq!(nofile_limits(&pid), (hard, hard), "prlimit {nofile}");
    signal(serve.pid(), libc::SIGTERM);
    let status = serve.wait_exit(STOP_WITHIN);
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

/// A blocking client of `wsx serve` at `addr`, with a bounded read timeout.
fn client_of(addr: SocketAddr) -> wsx::blocking::WebSocket {
    client_on(addr, "/")
}

/// [`client_of`] on request path `path`.
fn client_on(addr: SocketAddr, path: &str) -> wsx::blocking::WebSocket {
    let options = wsx::client::ClientOptions::new().no_proxy();
    let ws = wsx::blocking::connect_with(&format!("ws://{addr}{path}"), &options)
        .unwrap_or_else(|e| panic!("connect to wsx serve at {addr}{path}: {e}"));
    ws.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    ws
}

test_all!(broadcast_sends_a_prefixed_text_to_everyone_and_echoes_the_rest);
/// `--broadcast B` on two workers: `B<payload>` from one client reaches both (the sender
/// included) as `<payload>`; a plain text, and a binary message that starts with `B`, are
/// echoed to their sender only.
fn broadcast_sends_a_prefixed_text_to_everyone_and_echoes_the_rest(backend: Backend) {
    use wsx::blocking::Message;
    let (mut serve, addr, _stdout, _stderr) = Serve::start(
        backend,
        WSX,
        &["serve", "--port", "0", "--threads", "2", "--broadcast", "B"],
    );
    // Both are open on the server once their 101 has come.
    let mut a = client_of(addr);
    let mut b = client_of(addr);
    a.send_text("Bhello all").expect("publish");
    assert_eq!(a.recv().expect("a"), Message::Text("hello all".into()));
    assert_eq!(b.recv().expect("b"), Message::Text("hello all".into()));
    b.send_text("just me").expect("send");
    assert_eq!(b.recv().expect("b"), Message::Text("just me".into()));
    a.send_binary(b"Binary").expect("send");
    assert_eq!(a.recv().expect("a"), Message::Binary(b"Binary".to_vec()));
    // Nothing else came to either: the next thing each gets is the pong to its own ping.
    for (name, ws) in [("a", &mut a), ("b", &mut b)] {
        ws.ping(b"anything else?").expect("ping");
        assert_eq!(
            ws.recv().expect(name),
            Message::Pong(b"anything else?".to_vec()),
            "{name} got only what was meant for it"
        );
    }
    signal(serve.pid(), libc::SIGTERM);
    let status = serve.wait_exit(STOP_WITHIN);
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

test_all!(a_broadcast_path_keeps_publishes_to_its_subscribers_and_stats_lines_count_them);
/// `--broadcast B --broadcast-path /feed`: a publish from /feed reaches the /feed connections
/// only; `B…` from another path is echoed. `--stats-interval` prints JSON lines of counters on
/// stderr that count the connections and the deliveries.
fn a_broadcast_path_keeps_publishes_to_its_subscribers_and_stats_lines_count_them(
    backend: Backend,
) {
    use wsx::blocking::Message;
    let (mut serve, addr, _stdout, stderr) = Serve::start(
        backend,
        WSX,
        &[
            "serve",
            "--port",
            "0",
            "--threads",
            "2",
            "--broadcast",
            "B",
            "--broadcast-path",
            "/feed",
            "--stats-interval",
            "100ms",
        ],
    );
    let on = |path: &str| client_on(addr, path);
    let mut a = on("/feed");
    let mut b = on("/feed");
    let mut other = on("/echo");
    a.send_text("Bnews").expect("publish");
    assert_eq!(a.recv().expect("a"), Message::Text("news".into()));
    assert_eq!(b.recv().expect("b"), Message::Text("news".into()));
    other.send_text("Bnot a publish").expect("send");
    assert_eq!(
        other.recv().expect("other"),
        Message::Text("Bnot a publish".into())
    );
    // The publish did not reach /echo, and the echo did not reach /feed: the next thing each
    // gets is the pong to its own ping.
    for (name, ws) in [("a", &mut a), ("b", &mut b), ("other", &mut other)] {
        ws.ping(b"more?").expect("ping");
        assert_eq!(
            ws.recv().expect(name),
            Message::Pong(b"more?".to_vec()),
            "{name} got only what was meant for it"
        );
    }
    // A stats line that has seen the three connections and the two deliveries (each line is
    // a snapshot: read on until one has; 600 lines are a minute, a bound against a hang).
    let seen = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .take(600)
        .find(|line| {
            line.starts_with('{')
                && line.contains("\"connections\":3,\"opened\":3,\"closed\":0,")
                && line.contains("\"delivered\":2,")
        });
    assert!(seen.is_some(), "no stats line counted them");
    signal(serve.pid(), libc::SIGTERM);
    let status = serve.wait_exit(STOP_WITHIN);
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

test_all!(last_value_gives_a_new_subscriber_the_feeds_last_publish_at_once);
/// `--broadcast B --broadcast-path /feed --last-value`: a connection that opens on /feed after
/// two publishes gets the second at once, then the next; without a feed the flag is refused.
fn last_value_gives_a_new_subscriber_the_feeds_last_publish_at_once(backend: Backend) {
    use wsx::blocking::Message;
    let (mut serve, addr, _stdout, _stderr) = Serve::start(
        backend,
        WSX,
        &[
            "serve",
            "--port",
            "0",
            "--threads",
            "2",
            "--broadcast",
            "B",
            "--broadcast-path",
            "/feed",
            "--last-value",
        ],
    );
    let on = |path: &str| client_on(addr, path);
    let mut first = on("/feed");
    first.send_text("Bopen 1").expect("publish");
    assert_eq!(first.recv().expect("first"), Message::Text("open 1".into()));
    first.send_text("Bopen 2").expect("publish");
    assert_eq!(first.recv().expect("first"), Message::Text("open 2".into()));
    let mut late = on("/feed");
    assert_eq!(
        late.recv().expect("late"),
        Message::Text("open 2".into()),
        "the last publish, at once"
    );
    first.send_text("Bopen 3").expect("publish");
    assert_eq!(late.recv().expect("late"), Message::Text("open 3".into()));
    signal(serve.pid(), libc::SIGTERM);
    let status = serve.wait_exit(STOP_WITHIN);
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    // Without a feed (every connection gets a broadcast) there is nothing to keep.
    let out = wsx(&["serve", "--port", "0", "--broadcast", "B", "--last-value"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--last-value needs"), "{stderr}");
}

test_all!(health_answers_the_load_balancer_and_other_requests_keep_426);
/// `--health PATH`: a plain `GET PATH` gets `200 ok`; any other plain request the 426; the
/// WebSocket service is unchanged.
fn health_answers_the_load_balancer_and_other_requests_keep_426(backend: Backend) {
    use std::io::{Read, Write};
    let (mut serve, addr, _stdout, _stderr) = Serve::start(
        backend,
        WSX,
        &[
            "serve",
            "--port",
            "0",
            "--threads",
            "1",
            "--health",
            "/healthz",
        ],
    );
    let get = |path: &str| {
        let mut sock = std::net::TcpStream::connect(addr).expect("connect");
        sock.set_read_timeout(Some(STOP_WITHIN)).expect("timeout");
        sock.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .expect("write");
        let mut response = String::new();
        sock.read_to_string(&mut response).expect("read");
        response
    };
    let ok = get("/healthz");
    assert!(
        ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.ends_with("\r\n\r\nok\n"),
        "{ok}"
    );
    assert!(get("/other").starts_with("HTTP/1.1 426 "));
    let mut ws = client_of(addr);
    ws.send_text("still echoing").expect("send");
    match ws.recv().expect("echo") {
        wsx::blocking::Message::Text(t) => assert_eq!(t, "still echoing"),
        other => panic!("unexpected {other:?}"),
    }
    signal(serve.pid(), libc::SIGTERM);
    assert!(serve.wait_exit(STOP_WITHIN).is_some_and(|s| s.success()));
}

#[cfg(feature = "nats")]
test_all!(two_nats_nodes_share_publishes);
/// `wsx serve --broadcast B --nats URL` twice, against a NATS server that asks for a token
/// (given in `WSX_NATS_TOKEN`): `B<payload>` on either node reaches the clients of both; each
/// node says its name on NATS on its second line. `--nats` without `--broadcast` is refused.
#[cfg(feature = "nats")]
fn two_nats_nodes_share_publishes(backend: Backend) {
    use wsx::blocking::Message;
    let bad = wsx(&["serve", "--nats", "nats://127.0.0.1:4222"]);
    assert_eq!(bad.status.code(), Some(2), "--nats without --broadcast");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--broadcast"));
    let program = match nats::program() {
        Ok(program) => program,
        Err(why) => {
            assert!(!in_ci(), "CI=true and nats-server cannot run: {why}");
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    let server = nats::Nats::start_with(program, &["--auth", "cli-token"]);
    let prefix = format!("cli{}", backend as u8);
    let url = server.url();
    let node = || nats_node(backend, &url, &prefix, &["--broadcast", "B"]);
    let (mut serve_a, addr_a, name_a, _out_a) = node();
    let (mut serve_b, addr_b, name_b, _out_b) = node();
    let mut a = client_of(addr_a);
    let mut b = client_of(addr_b);
    // Each node subscribes on NATS once its first client is open (bounded wait).
    let subject = format!("{prefix}.broadcast");
    let deadline = Instant::now() + Duration::from_secs(30);
    for name in [&name_a, &name_b] {
        while !server
            .subscriptions_of(&format!("wsx/{name}"))
            .is_some_and(|subs| subs.contains(&subject))
        {
            assert!(
                Instant::now() < deadline,
                "node {name} never subscribed to {subject}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    a.send_text("Bfrom a").expect("publish on a");
    assert_eq!(a.recv().expect("a"), Message::Text("from a".into()));
    assert_eq!(b.recv().expect("b"), Message::Text("from a".into()));
    b.send_text("Bfrom b").expect("publish on b");
    assert_eq!(b.recv().expect("b"), Message::Text("from b".into()));
    assert_eq!(a.recv().expect("a"), Message::Text("from b".into()));
    for serve in [&mut serve_a, &mut serve_b] {
        signal(serve.pid(), libc::SIGTERM);
        let status = serve.wait_exit(STOP_WITHIN);
        assert!(status.is_some_and(|s| s.success()), "{status:?}");
    }
}

#[cfg(feature = "nats")]
/// `wsx serve --port 0 --threads 1 --nats URL --nats-prefix PREFIX` with `extra` flags on
/// `backend`, with the token `cli-token` in `WSX_NATS_TOKEN`: the process, its address, its
/// node name (from its second line) and its stdout.
fn nats_node(
    backend: Backend,
    url: &str,
    prefix: &str,
    extra: &[&str],
) -> (Serve, SocketAddr, String, BufReader<ChildStdout>) {
    let mut child = Command::new(WSX)
        .args(["serve", "--port", "0", "--threads", "1"])
        .args(extra)
        .args(["--nats", url, "--nats-prefix", prefix])
        .env("WSX_BACKEND", backend.name())
        .env("WSX_NATS_TOKEN", "cli-token")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("wsx serve starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let serve = Serve { child };
    let mut first = String::new();
    stdout.read_line(&mut first).expect("the first line");
    let addr: SocketAddr = first
        .split("ws://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {first:?}"));
    let mut second = String::new();
    stdout.read_line(&mut second).expect("the second line");
    let name = second
        .strip_prefix("wsx: node ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no node name in {second:?}"))
        .to_owned();
    assert!(second.contains(&format!("prefix {prefix:?}")), "{second:?}");
    (serve, addr, name, stdout)
}

#[cfg(feature = "nats")]
test_all!(a_node_started_later_gets_the_feeds_last_publish_from_the_bucket);
/// `--last-value --nats-bucket NAME` against `nats-server -js`: a publish on node a is kept in
/// the bucket; node b, started afterwards, gives its first client that publish at once.
#[cfg(feature = "nats")]
fn a_node_started_later_gets_the_feeds_last_publish_from_the_bucket(backend: Backend) {
    use wsx::blocking::Message;
    let program = match nats::program() {
        Ok(program) => program,
        Err(why) => {
            assert!(!in_ci(), "CI=true and nats-server cannot run: {why}");
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    let dir = std::env::temp_dir().join(format!(
        "wsx-cli-js-{}-{}",
        std::process::id(),
        backend as u8
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a store directory");
    let dir_arg = dir.to_string_lossy().into_owned();
    let server = nats::Nats::start_with(program, &["--auth", "cli-token", "-js", "-sd", &dir_arg]);
    let prefix = format!("clilv{}", backend as u8);
    let bucket = format!("clilv{}", backend as u8);
    let flags = ["--broadcast", "B", "--last-value", "--nats-bucket", &bucket];
    let (mut serve_a, addr_a, _, _out_a) = nats_node(backend, &server.url(), &prefix, &flags);
    let mut a = client_of(addr_a);
    // Published once the bucket is there (a's second line comes before it is made): then one
    // more, stored when the bucket's bytes change (one value, of another length).
    let jsz = |field: &str| -> u64 {
        let body = server.monitor("/jsz").replace(char::is_whitespace, "");
        body.split_once(&format!("\"{field}\":"))
            .and_then(|(_, rest)| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .unwrap_or_else(|| panic!("no {field} in /jsz: {body}"))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while jsz("messages") == 0 {
        assert!(Instant::now() < deadline, "no publish reached the bucket");
        a.send_text("Bearly").expect("publish on a");
        assert_eq!(a.recv().expect("a"), Message::Text("early".into()));
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = jsz("bytes");
    a.send_text("Bthe last one").expect("publish on a");
    assert_eq!(a.recv().expect("a"), Message::Text("the last one".into()));
    while jsz("bytes") == before {
        assert!(
            Instant::now() < deadline,
            "the last publish never reached the bucket"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (mut serve_b, addr_b, _, _out_b) = nats_node(backend, &server.url(), &prefix, &flags);
    let mut b = client_of(addr_b);
    assert_eq!(
        b.recv().expect("b"),
        Message::Text("the last one".into()),
        "the last publish, read from the bucket"
    );
    for serve in [&mut serve_a, &mut serve_b] {
        signal(serve.pid(), libc::SIGTERM);
        let status = serve.wait_exit(STOP_WITHIN);
        assert!(status.is_some_and(|s| s.success()), "{status:?}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

//! A flood of connections past the open-file limit does not stop the server for good: once the
//! flood is gone it accepts, upgrades and echoes again by itself.
//!
//! The server runs in a child process (this test binary run again with `CHILD` set) that
//! lowers its own `RLIMIT_NOFILE` to a few descriptors over what it holds; the flood comes
//! from this process, whose limit is untouched. The child answers `stats` on its stdin with
//! its server's counters on its stdout and exits when its stdin closes.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::{upgrade_head, Client, Echo, Ev, TIMEOUT};
use wsx::Backend;
use wsx::Server;

/// Set in the child's environment.
const CHILD: &str = "WSX_FD_LIMIT_CHILD";
/// Marks the child's protocol lines among the test harness's own output.
const TAG: &str = "wsx-fd-limit:";
/// Descriptors the child may open beyond those it holds before starting the server (which
/// takes a few: poller, waker, listener, the reserve).
const HEADROOM: u64 = 24;
/// Most connections the flood opens.
const FLOOD: usize = 300;
/// The flood stops after this many connects in a row that the server's full accept queue left
/// unanswered (each waits `CONNECT_WAIT`).
const STALLED_CONNECTS: usize = 10;
const CONNECT_WAIT: Duration = Duration::from_millis(300);

test_all!(accepts_again_after_descriptors_ran_out);
fn accepts_again_after_descriptors_ran_out(backend: Backend) {
    if std::env::var_os(CHILD).is_some() {
        child(backend);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    // The child runs this same twin, so its server runs on this backend too.
    let mut child = Command::new(exe)
        .args([
            &format!(
                "accepts_again_after_descriptors_ran_out::{}",
                backend.name()
            ),
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the child server");
    let lines = tagged_lines(&mut child);
    let mut control = Control {
        stdin: child.stdin.take().expect("child stdin"),
        lines,
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        flood_then_connect(&mut control)
    }));
    drop(control);
    reap(&mut child);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// The parent's part: find the child's port, flood it, let go, connect once more.
fn flood_then_connect(control: &mut Control) {
    let first = control.next_line();
    let port: u16 = first
        .strip_prefix("port=")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("child's first line: {first:?}"));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    let head = upgrade_head("/", &[]);
    let mut flood = Vec::new();
    let mut stalled = 0;
    while flood.len() < FLOOD && stalled < STALLED_CONNECTS {
        match TcpStream::connect_timeout(&addr, CONNECT_WAIT) {
            Ok(s) => {
                stalled = 0;
                // A refused write (the server shed it already) is part of the flood.
                let _ = (&s).write_all(&head);
                flood.push(s);
            }
            Err(_) => stalled += 1,
        }
    }
    eprintln!(
        "flood: {} connections, then {stalled} connects unanswered",
        flood.len()
    );
    let (open, _) = control.stats();
    assert!(
        open < flood.len() as u64,
        "the flood of {} should exceed the child's descriptors, yet it holds {open}",
        flood.len()
    );
    drop(flood);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (open, _) = control.stats();
        if open == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} connections still open 10 s after the flood closed them"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Descriptors are free again: a new client must get through, upgrade and be echoed.
    let mut client = connect_within(addr, TIMEOUT);
    client.send_text("after the flood");
    assert_eq!(client.recv_data(), Some(Ev::Text("after the flood".into())));
    let (open, shed) = control.stats();
    assert_eq!(open, 1);
    assert!(shed > 0, "the flood past the limit was not shed");
}

/// Connects with a bounded TCP connect (a server that stopped accepting leaves the SYN
/// unanswered once its queue is full) and completes the handshake.
fn connect_within(addr: SocketAddr, within: Duration) -> Client {
    if let Err(e) = TcpStream::connect_timeout(&addr, within) {
        panic!("the server accepts nothing after the flood: connect failed within {within:?}: {e}");
    }
    Client::connect(addr)
}

/// The child's part: lower the descriptor limit, serve, answer `stats` until stdin closes.
fn child(backend: Backend) -> ! {
    let held = std::fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .count() as u64;
    set_soft_fd_limit(held + HEADROOM);
    let server = Server::builder()
        .host("127.0.0.1")
        .port(0)
        .threads(1)
        .pin_threads(false)
        .backlog(8)
        .backend(backend)
        .start(|_| Echo)
        .expect("the child's server starts");
    backends::assert_runs_on(&server, backend);
    let out = std::io::stdout();
    let say = |line: String| {
        let mut out = out.lock();
        let _ = writeln!(out, "{TAG}{line}");
        let _ = out.flush();
    };
    say(format!("port={}", server.local_addr().port()));
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line == "stats" {
            let s = server.stats();
            say(format!("connections={} shed={}", s.connections, s.shed));
        }
    }
    std::process::exit(0)
}

#[allow(unsafe_code)] // two libc calls on a local struct; no other way to set a resource limit
fn set_soft_fd_limit(soft: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim.rlim_cur = soft.min(lim.rlim_max);
    // SAFETY: `lim` is a valid rlimit; lowering the soft limit is always allowed.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
}

/// The test's end of the child's stdin and stdout.
struct Control {
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Control {
    /// The child's next protocol line, within [`TIMEOUT`].
    fn next_line(&mut self) -> String {
        self.lines
            .recv_timeout(TIMEOUT)
            .expect("a line from the child server within the timeout")
    }

    /// The child's server's open and shed connections.
    fn stats(&mut self) -> (u64, u64) {
        writeln!(self.stdin, "stats").expect("write to the child");
        self.stdin.flush().expect("flush to the child");
        let line = self.next_line();
        let field = |name: &str| -> u64 {
            line.split(' ')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in the child's {line:?}"))
        };
        (field("connections"), field("shed"))
    }
}

/// What follows [`TAG`] on the child's stdout lines, read on a thread.
fn tagged_lines(child: &mut Child) -> Receiver<String> {
    let stdout = child.stdout.take().expect("child stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // The harness's own words may precede the tag on its line.
            if let Some(at) = line.find(TAG) {
                if tx.send(line[at + TAG.len()..].to_owned()).is_err() {
                    break;
                }
            }
        }
    });
    rx
}

/// Waits (bounded) for the child to exit after its stdin closed; kills it if it does not.
fn reap(child: &mut Child) {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

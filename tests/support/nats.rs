//! A real `nats-server` for the cluster tests: installed from Debian's `nats-server` package
//! when missing (tests/support/apt.rs), started on free loopback ports with its monitoring
//! endpoint, killed and restarted on the same port, and read through `/connz?subs=1`. Also a
//! raw NATS publisher (the text protocol over a socket) that sends what a hostile peer would.

// Each test file that includes this module uses only part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[path = "apt.rs"]
mod apt;
#[path = "ports.rs"]
mod ports;

/// How long a `nats-server` may take to say it is ready.
const READY: Duration = Duration::from_secs(20);

/// How many pairs of free ports a start tries before it gives up.
const BIND_ATTEMPTS: usize = 5;

/// What `nats-server` prints when a port it was given is taken.
const IN_USE: &str = "address already in use";

/// Whether this run is CI's (`CI=true`), where a peer that cannot run is a failure.
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `nats-server` (`$WSX_NATS_SERVER`, else on the `PATH`), installed when missing. `Err` says
/// why not; the caller skips, or fails under `CI=true`.
pub(crate) fn program() -> Result<PathBuf, String> {
    apt::find_or_install("WSX_NATS_SERVER", "nats-server", "--version", "nats-server")
}

/// A running `nats-server` on 127.0.0.1; killed when dropped.
pub(crate) struct Nats {
    program: PathBuf,
    /// Extra arguments (authentication, say).
    args: Vec<String>,
    pub(crate) port: u16,
    pub(crate) monitor: u16,
    child: Option<Child>,
}

impl Nats {
    /// Starts one on free ports and waits (bounded) until it says it is ready.
    pub(crate) fn start(program: PathBuf) -> Nats {
        Nats::start_with(program, &[])
    }

    /// Starts one with extra `args` (such as `--auth TOKEN`).
    pub(crate) fn start_with(program: PathBuf, args: &[&str]) -> Nats {
        let mut nats = Nats {
            program,
            args: args.iter().map(|a| a.to_string()).collect(),
            port: 0,
            monitor: 0,
            child: None,
        };
        // A port found free can still be taken before nats-server binds it: then take two
        // other ports.
        for attempt in 1..=BIND_ATTEMPTS {
            nats.port = ports::unused_port();
            nats.monitor = ports::unused_port();
            match nats.spawn() {
                Ok(()) => return nats,
                Err(log) if attempt < BIND_ATTEMPTS && log.contains(IN_USE) => continue,
                Err(log) => panic!("nats-server did not start:\n{log}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// `nats://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// `tls://127.0.0.1:PORT`.
    pub(crate) fn tls_url(&self) -> String {
        format!("tls://127.0.0.1:{}", self.port)
    }

    /// Client connections the server has accepted since it started (`/varz`
    /// `total_connections`): those it refused later (authentication, TLS) included.
    pub(crate) fn total_connections(&self) -> u64 {
        let body: String = self
            .monitor("/varz")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        body.split_once("\"total_connections\":")
            .and_then(|(_, rest)| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .unwrap_or_else(|| panic!("no total_connections in /varz: {body}"))
    }

    /// Starts the process on `self.port` and `self.monitor`; `Err` has what it printed.
    fn spawn(&mut self) -> Result<(), String> {
        let mut child = Command::new(&self.program)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-m", &self.monitor.to_string()])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nats-server starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut log = Vec::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let ready = line.contains("Server is ready");
                log.push(line);
                if ready {
                    let _ = tx.send(Ok(()));
                }
            }
            // Ended before it was ready: say what it printed.
            let _ = tx.send(Err(log.join("\n")));
        });
        match rx.recv_timeout(READY) {
            Ok(Ok(())) => {
                self.child = Some(child);
                Ok(())
            }
            Ok(Err(log)) => {
                let _ = child.wait();
                Err(log)
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("nats-server not ready within {READY:?}")
            }
        }
    }

    /// Kills it (SIGKILL, no goodbye to its clients) and waits until it has gone.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports.
    pub(crate) fn restart(&mut self) {
        self.kill();
        if let Err(log) = self.spawn() {
            panic!("nats-server did not start again on its ports:\n{log}");
        }
    }

    /// `GET path` on the monitoring endpoint: the body.
    pub(crate) fn monitor(&self, path: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.monitor)).expect("monitor port");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut response = String::new();
        s.read_to_string(&mut response).expect("monitor answers");
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default()
    }

    /// The subjects the client connection named `name` subscribes to now (`/connz?subs=1`),
    /// `None` when no connection has that name.
    pub(crate) fn subscriptions_of(&self, name: &str) -> Option<Vec<String>> {
        let body: String = self
            .monitor("/connz?subs=1")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let wanted = format!("\"name\":\"{name}\"");
        // One chunk per connection: each object starts with its "cid".
        let conn = body.split("{\"cid\":").find(|c| c.contains(&wanted))?;
        let Some((_, list)) = conn.split_once("\"subscriptions_list\":[") else {
            return Some(Vec::new());
        };
        let list = list.split(']').next().unwrap_or("");
        Some(
            list.split(',')
                .map(|s| s.trim_matches('"').to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        )
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A NATS client speaking the text protocol by hand: it publishes whatever it is given,
/// headers and all, as a hostile peer on the same NATS could.
pub(crate) struct RawPublisher {
    stream: BufReader<TcpStream>,
}

impl RawPublisher {
    /// Connects (headers on, no echo of its own) and waits for the server's `INFO`.
    pub(crate) fn connect(port: u16) -> RawPublisher {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("NATS port");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut p = RawPublisher {
            stream: BufReader::new(s),
        };
        let info = p.line();
        assert!(info.starts_with("INFO"), "{info}");
        p.write(
            b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"name\":\"raw\"}\r\n",
        );
        p.flush();
        p
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stream.read_line(&mut line).expect("a line from NATS");
        line
    }

    fn write(&mut self, bytes: &[u8]) {
        self.stream
            .get_mut()
            .write_all(bytes)
            .expect("write to NATS");
    }

    /// Publishes `payload` to `subject` with `headers` (name, value).
    pub(crate) fn publish(&mut self, subject: &str, headers: &[(&str, &str)], payload: &[u8]) {
        if headers.is_empty() {
            self.write(format!("PUB {subject} {}\r\n", payload.len()).as_bytes());
        } else {
            let mut head = String::from("NATS/1.0\r\n");
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            let total = head.len() + payload.len();
            self.write(format!("HPUB {subject} {} {total}\r\n", head.len()).as_bytes());
            self.write(head.as_bytes());
        }
        self.write(payload);
        self.write(b"\r\n");
    }

    /// PING, then waits for the PONG: everything published before it has reached the server.
    pub(crate) fn flush(&mut self) {
        self.write(b"PING\r\n");
        loop {
            let line = self.line();
            assert!(!line.starts_with("-ERR"), "NATS refused: {line}");
            if line.starts_with("PONG") {
                return;
            }
        }
    }
}

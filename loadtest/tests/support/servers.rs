//! In-process wsx servers for the load generator's tests: an echo server, a delayed echo
//! (every message held `delay`, then echoed from `on_tick`), an echo that stalls its worker
//! once, and one with the `B<payload>` broadcast rule.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use wsx::{Conn, ConnId, Handler, Message, Server, ServerHandle, Tick};
use wsx_loadtest::cli::Cli;
use wsx_loadtest::report::Report;

/// Runs the load generator with `args` (after `wsx-loadtest`), in process.
pub(crate) fn loadtest(args: &[&str]) -> Report {
    let mut argv = vec!["wsx-loadtest"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).expect("valid arguments");
    wsx_loadtest::run(&cli.command).expect("the run starts")
}

/// A started server; shut down on drop.
pub(crate) struct Running(pub(crate) ServerHandle);

impl Running {
    /// Its ws:// URL.
    pub(crate) fn url(&self) -> String {
        format!("ws://{}/", self.0.local_addr())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.shutdown(Duration::ZERO);
        self.0.wait();
    }
}

struct Echo;
impl Handler for Echo {
    type State = ();
    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        let _ = conn.send(message);
    }
}

/// An echo server on one worker.
pub(crate) fn echo() -> Running {
    Running(
        Server::builder()
            .port(0)
            .threads(1)
            .start(|_| Echo)
            .expect("server starts"),
    )
}

struct Delayed {
    delay: Duration,
    held: VecDeque<(Instant, ConnId, Vec<u8>, bool)>,
}

impl Handler for Delayed {
    type State = ();
    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        let text = matches!(message, Message::Text(_));
        self.held
            .push_back((Instant::now(), conn.id(), message.as_bytes().to_vec(), text));
    }
    fn on_tick(&mut self, tick: &mut Tick<'_, ()>) {
        while let Some((at, _, _, _)) = self.held.front() {
            if at.elapsed() < self.delay {
                break;
            }
            let Some((_, id, bytes, text)) = self.held.pop_front() else {
                break;
            };
            let _ = tick.with(id, |conn| {
                if text {
                    let _ = conn.send_text(std::str::from_utf8(&bytes).unwrap_or(""));
                } else {
                    let _ = conn.send_binary(&bytes);
                }
            });
        }
    }
}

/// An echo server that holds every message `delay` before echoing it.
pub(crate) fn delayed(delay: Duration) -> Running {
    Running(
        Server::builder()
            .port(0)
            .threads(1)
            .tick(Duration::from_millis(1))
            .start(move |_| Delayed {
                delay,
                held: VecDeque::new(),
            })
            .expect("server starts"),
    )
}

struct Staller {
    seen: Arc<AtomicU64>,
    at: u64,
    stall: Duration,
}

impl Handler for Staller {
    type State = ();
    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        if self.seen.fetch_add(1, Ordering::AcqRel) + 1 == self.at {
            // The worker stops serving every socket, as a server behind a long GC pause or a
            // blocking call would.
            std::thread::sleep(self.stall);
        }
        let _ = conn.send(message);
    }
}

/// An echo server whose worker stalls for `stall` at its `at`-th message.
pub(crate) fn stalls_once(at: u64, stall: Duration) -> Running {
    let seen = Arc::new(AtomicU64::new(0));
    Running(
        Server::builder()
            .port(0)
            .threads(1)
            .start(move |_| Staller {
                seen: seen.clone(),
                at,
                stall,
            })
            .expect("server starts"),
    )
}

struct Broadcaster;
impl Handler for Broadcaster {
    type State = ();
    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        match message {
            Message::Text(t) if t.starts_with('B') => conn.broadcast(Message::Text(&t[1..])),
            m => {
                let _ = conn.send(m);
            }
        }
    }
}

/// An echo server where a text message `B<payload>` sends the payload to every connection.
pub(crate) fn broadcaster(threads: usize) -> Running {
    Running(
        Server::builder()
            .port(0)
            .threads(threads)
            .start(|_| Broadcaster)
            .expect("server starts"),
    )
}

struct PeerRecorder {
    peers: Arc<std::sync::Mutex<std::collections::BTreeSet<std::net::IpAddr>>>,
}

impl Handler for PeerRecorder {
    type State = ();
    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        let ip = conn.peer_addr().ip();
        self.peers.lock().unwrap().insert(ip);
    }
}

/// A server that records the address every connection came from.
pub(crate) fn recording_peers() -> (
    Running,
    Arc<std::sync::Mutex<std::collections::BTreeSet<std::net::IpAddr>>>,
) {
    let peers = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let p = peers.clone();
    let server = Server::builder()
        .host("127.0.0.1")
        .port(0)
        .threads(1)
        .start(move |_| PeerRecorder { peers: p.clone() })
        .expect("server starts");
    (Running(server), peers)
}

//! Helpers for the client tests: options that never read the proxy environment, a wsx server
//! whose handler records what it saw (`Recorder`), and a raw TCP server on a std thread that
//! answers with hand-written bytes (wrong accept keys, redirects) and captures frames.
//!
//! Every socket here has [`TIMEOUT`] on its reads and writes, so a stuck test fails instead of
//! hanging. Threads are detached; they end with their connections or with the test process.
//!
//! Include it with `mod common;` and `#[path = "support/client.rs"] mod support;` (after
//! `support/backends.rs`, see `common`).

// Each test file that includes this module uses only part of it.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use wsx::blocking::{self, WebSocket};
use wsx::client::ClientOptions;
use wsx::protocol::handshake::{accept_key, Version};
use wsx::{
    Backend, CloseCode, CloseInfo, Conn, Handler, Message, Reject, Server, ServerHandle, Upgrade,
};

pub(crate) use crate::common::TIMEOUT;
use crate::common::{stop, Shared};

/// Options for a test: no proxy (the process environment may name one, and it is shared by
/// tests running in parallel) and every wait bounded by [`TIMEOUT`].
pub(crate) fn options() -> ClientOptions {
    ClientOptions::new().no_proxy().handshake_timeout(TIMEOUT)
}

/// Connects with `options` and bounds every later `recv` by [`TIMEOUT`]; panics on failure.
pub(crate) fn open(url: &str, options: &ClientOptions) -> WebSocket {
    let ws = blocking::connect_with(url, options)
        .unwrap_or_else(|e| panic!("connect to {url}: {e} ({e:?})"));
    ws.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    ws
}

/// `ws://addr/path`.
pub(crate) fn ws_url(addr: SocketAddr, path: &str) -> String {
    format!("ws://{addr}{path}")
}

/// An upgrade request as [`Recorder::on_upgrade`] saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// The request target: path and query.
    pub(crate) target: String,
    /// Every header, names lower-cased, values as (lossy) text.
    pub(crate) headers: Vec<(String, String)>,
    /// `Origin`, or `Sec-WebSocket-Origin` for version 8.
    pub(crate) origin: Option<String>,
    /// The requested protocol version.
    pub(crate) version: Version,
    /// The TCP peer.
    pub(crate) peer: SocketAddr,
    /// The subprotocols offered.
    pub(crate) protocols: Vec<String>,
}

impl Seen {
    /// The first header called `name` (lower case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a [`Recorder`] server saw, shared with the test.
#[derive(Debug, Clone, Default)]
pub(crate) struct Log {
    /// Every upgrade request, refused ones included.
    pub(crate) upgrades: Shared<Seen>,
    /// Every `on_close`.
    pub(crate) closes: Shared<CloseInfo>,
}

/// How a [`Recorder`] answers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Behaviour {
    /// Subprotocols it accepts, preferred first.
    pub(crate) protocols: &'static [&'static str],
    /// Refuse every upgrade with this status and body.
    pub(crate) reject: Option<(u16, &'static str)>,
}

/// Records every upgrade request and close; echoes messages, except the text [`CLOSE_ME`],
/// which it answers by closing with 4001 "bye", and [`PING_ME`], which it answers with a ping
/// carrying `srv`.
pub(crate) struct Recorder {
    log: Log,
    behaviour: Behaviour,
}

/// The text that makes a [`Recorder`] close the connection.
pub(crate) const CLOSE_ME: &str = "close me";

/// The text that makes a [`Recorder`] ping the client.
pub(crate) const PING_ME: &str = "ping me";

impl Handler for Recorder {
    type State = ();

    fn on_upgrade(&mut self, upgrade: &mut Upgrade<'_>) -> Result<(), Reject> {
        let request = upgrade.request();
        self.log.upgrades.push(Seen {
            target: request.target().to_owned(),
            headers: request
                .headers()
                .map(|(n, v)| {
                    (
                        n.to_ascii_lowercase(),
                        String::from_utf8_lossy(v).into_owned(),
                    )
                })
                .collect(),
            origin: request.origin().map(str::to_owned),
            version: request.version(),
            peer: upgrade.peer_addr(),
            protocols: upgrade.protocols().map(str::to_owned).collect(),
        });
        if let Some((status, body)) = self.behaviour.reject {
            return Err(Reject::new(status).body(body));
        }
        for protocol in self.behaviour.protocols {
            if upgrade.select_protocol(protocol) {
                break;
            }
        }
        Ok(())
    }

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        if message == Message::Text(CLOSE_ME) {
            let _ = conn.close(CloseCode(4001), "bye");
        } else if message == Message::Text(PING_ME) {
            let _ = conn.ping(b"srv");
        } else {
            let _ = conn.send(message);
        }
    }

    fn on_close(&mut self, _conn: &mut Conn<'_, ()>, close: &CloseInfo) {
        self.log.closes.push(close.clone());
    }
}

/// A one-worker [`Recorder`] server on `backend` and `ip` (any loopback address), without heartbeat pings
/// (so that the client sees only what the test asks for).
pub(crate) fn recorder_on(backend: Backend, ip: &str, behaviour: Behaviour) -> (ServerHandle, Log) {
    let log = Log::default();
    let l = log.clone();
    let server = Server::builder()
        .bind(format!("{ip}:0"))
        .threads(1)
        .pin_threads(false)
        .auto_ping(false)
        .backend(backend)
        .start(move |_| Recorder {
            log: l.clone(),
            behaviour,
        })
        .expect("server starts");
    crate::backends::assert_runs_on(&server, backend);
    (server, log)
}

/// [`recorder_on`] 127.0.0.1.
pub(crate) fn recorder(backend: Backend, behaviour: Behaviour) -> (ServerHandle, Log) {
    recorder_on(backend, "127.0.0.1", behaviour)
}

/// Stops a server (bounded).
pub(crate) fn stop_server(server: &ServerHandle) {
    stop(server);
}

/// A request head read by a [`RawServer`].
#[derive(Debug, Clone)]
pub(crate) struct RawRequest {
    /// The head as text, up to and including the blank line.
    pub(crate) head: String,
    /// The request target.
    pub(crate) target: String,
}

impl RawRequest {
    /// The first header called `name` (case-insensitive), trimmed.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The `Sec-WebSocket-Accept` that answers this request's key.
    pub(crate) fn accept(&self) -> String {
        accept_key(self.header("sec-websocket-key").unwrap_or_default())
    }

    /// A valid `101` for this request, with `extra` header lines (each without CRLF).
    pub(crate) fn switching(&self, extra: &[&str]) -> String {
        let mut head = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n",
            self.accept()
        );
        for line in extra {
            head.push_str(line);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        head
    }
}

/// A redirect answer.
pub(crate) fn redirect(status: u16, location: &str) -> String {
    format!(
        "HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nContent-Length: 5\r\n\
         Connection: close\r\n\r\nmoved"
    )
}

/// One accepted connection of a [`RawServer`], after its request head.
pub(crate) struct RawConn {
    /// The socket.
    pub(crate) stream: TcpStream,
    /// Bytes read after the head and not yet used.
    rest: Vec<u8>,
}

/// A frame as it crossed the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawFrame {
    /// FIN.
    pub(crate) fin: bool,
    /// The opcode.
    pub(crate) opcode: u8,
    /// The masking key, if the mask bit was set.
    pub(crate) key: Option<[u8; 4]>,
    /// The payload, unmasked.
    pub(crate) payload: Vec<u8>,
    /// The payload as sent (masked).
    pub(crate) wire: Vec<u8>,
}

impl RawConn {
    /// Writes `bytes`; errors are ignored (the client may have gone).
    pub(crate) fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    fn fill(&mut self, want: usize) -> io::Result<()> {
        let mut chunk = [0; 4096];
        while self.rest.len() < want {
            match self.stream.read(&mut chunk)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => self.rest.extend_from_slice(&chunk[..n]),
            }
        }
        Ok(())
    }

    /// Reads one frame (client frames: at most 64 KiB of payload here).
    ///
    /// # Errors
    ///
    /// EOF, a timeout, or a length this reader does not take.
    pub(crate) fn read_frame(&mut self) -> io::Result<RawFrame> {
        self.fill(2)?;
        let (b0, b1) = (self.rest[0], self.rest[1]);
        let (len, mut at) = match b1 & 0x7f {
            126 => {
                self.fill(4)?;
                (
                    usize::from(u16::from_be_bytes([self.rest[2], self.rest[3]])),
                    4,
                )
            }
            127 => return Err(io::Error::other("64-bit lengths not taken here")),
            n => (usize::from(n), 2),
        };
        let key = if b1 & 0x80 != 0 {
            self.fill(at + 4)?;
            let key = [
                self.rest[at],
                self.rest[at + 1],
                self.rest[at + 2],
                self.rest[at + 3],
            ];
            at += 4;
            Some(key)
        } else {
            None
        };
        self.fill(at + len)?;
        let wire: Vec<u8> = self.rest[at..at + len].to_vec();
        self.rest.drain(..at + len);
        let payload = match key {
            Some(k) => wire.iter().enumerate().map(|(i, b)| b ^ k[i % 4]).collect(),
            None => wire.clone(),
        };
        Ok(RawFrame {
            fin: b0 & 0x80 != 0,
            opcode: b0 & 0x0f,
            key,
            payload,
            wire,
        })
    }
}

/// A TCP server on a std thread that reads each connection's request head, records it, and
/// hands the connection to a session closure (on a thread per connection).
#[derive(Debug, Clone)]
pub(crate) struct RawServer {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    requests: Arc<Mutex<Vec<RawRequest>>>,
}

impl RawServer {
    /// Listens on `ip:0` and runs `session` for every connection whose head arrives within
    /// [`TIMEOUT`].
    pub(crate) fn start(
        ip: &str,
        session: impl Fn(RawConn, RawRequest) + Send + Sync + 'static,
    ) -> RawServer {
        let listener = TcpListener::bind(format!("{ip}:0")).expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let session = Arc::new(session);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (session, recorded) = (session.clone(), recorded.clone());
                thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(TIMEOUT));
                    let _ = stream.set_write_timeout(Some(TIMEOUT));
                    let _ = stream.set_nodelay(true);
                    let mut conn = RawConn {
                        stream,
                        rest: Vec::new(),
                    };
                    let Some(request) = read_head(&mut conn) else {
                        return;
                    };
                    recorded
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(request.clone());
                    session(conn, request);
                });
            }
        });
        RawServer { addr, requests }
    }

    /// Answers every request with `answer(request, own address)` and closes.
    pub(crate) fn answering(
        ip: &str,
        answer: impl Fn(&RawRequest, SocketAddr) -> String + Send + Sync + 'static,
    ) -> RawServer {
        RawServer::start(ip, move |mut conn, request| {
            let own = conn.stream.local_addr().expect("local addr");
            let bytes = answer(&request, own);
            conn.send(bytes.as_bytes());
        })
    }

    /// The request heads so far.
    pub(crate) fn requests(&self) -> Vec<RawRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `ws://addr/path`.
    pub(crate) fn url(&self, path: &str) -> String {
        ws_url(self.addr, path)
    }
}

fn read_head(conn: &mut RawConn) -> Option<RawRequest> {
    let mut chunk = [0; 1024];
    let end = loop {
        if let Some(pos) = conn.rest.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if conn.rest.len() > 16 << 10 {
            return None;
        }
        match conn.stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => conn.rest.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&conn.rest[..end]).into_owned();
    conn.rest.drain(..end);
    let target = head.split(' ').nth(1).unwrap_or_default().to_owned();
    Some(RawRequest { head, target })
}

/// A port on 127.0.0.1 with nothing listening (connecting to it is refused).
pub(crate) fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().expect("local addr").port()
}

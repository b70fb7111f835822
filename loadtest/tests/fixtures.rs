//! The broken-server fixtures of `support/broken.rs`, checked with a raw TCP client so that a
//! test which uses them knows what they do.

#[path = "support/broken.rs"]
mod broken;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use broken::BadFrame;

/// The example key of RFC 6455 §1.3 and its accept value.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The longest any read here waits: a fixture that hangs fails the test instead of blocking it.
const GUARD: Duration = Duration::from_secs(10);

struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&addr, GUARD).expect("connect to the fixture");
        stream.set_read_timeout(Some(GUARD)).expect("read timeout");
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    fn send_request(&mut self, addr: SocketAddr) {
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        self.stream
            .write_all(request.as_bytes())
            .expect("write the request");
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).expect("read from the fixture");
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// The response head up to its blank line.
    fn read_head(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 4);
                return head;
            }
            assert!(self.buf.len() < 16 * 1024, "response head too long");
            assert!(
                self.fill() > 0,
                "the fixture closed before the end of the head"
            );
        }
    }

    /// Upgrades and checks the `101` with the right accept value.
    fn upgrade(addr: SocketAddr) -> Self {
        let mut client = Self::connect(addr);
        client.send_request(addr);
        let head = client.read_head();
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        let accept = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-accept")
                .then(|| value.trim().to_owned())
        });
        assert_eq!(accept.as_deref(), Some(ACCEPT), "{head}");
        client
    }

    fn send(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        self.send_raw(fin, opcode, payload, true);
    }

    fn send_raw(&mut self, fin: bool, opcode: u8, payload: &[u8], masked: bool) {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
        let mask_bit = if masked { 0x80 } else { 0 };
        match payload.len() {
            n @ 0..=125 => frame.push(mask_bit | n as u8),
            n @ 126..=0xffff => {
                frame.push(mask_bit | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(mask_bit | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if masked {
            frame.extend_from_slice(&key);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            frame.extend_from_slice(payload);
        }
        self.stream.write_all(&frame).expect("write a frame");
    }

    /// The next frame: (first byte, mask bit, payload unmasked).
    fn read_frame(&mut self) -> (u8, bool, Vec<u8>) {
        loop {
            if let Some(frame) = self.parse_frame() {
                return frame;
            }
            assert!(
                self.fill() > 0,
                "the fixture closed in the middle of a frame"
            );
        }
    }

    fn parse_frame(&mut self) -> Option<(u8, bool, Vec<u8>)> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        let masked = b[1] & 0x80 != 0;
        let (len, mut at) = match b[1] & 0x7f {
            126 => (usize::from(u16::from_be_bytes([*b.get(2)?, *b.get(3)?])), 4),
            127 => (
                usize::try_from(u64::from_be_bytes(b.get(2..10)?.try_into().ok()?)).ok()?,
                10,
            ),
            n => (usize::from(n), 2),
        };
        let mut key = [0u8; 4];
        if masked {
            key.copy_from_slice(b.get(at..at + 4)?);
            at += 4;
        }
        let mut payload = b.get(at..at + len)?.to_vec();
        if masked {
            for (i, byte) in payload.iter_mut().enumerate() {
                *byte ^= key[i % 4];
            }
        }
        let first = b[0];
        self.buf.drain(..at + len);
        Some((first, masked, payload))
    }

    /// True when the fixture has closed or reset the connection (and sent nothing more).
    fn closed_by_peer(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => {
                assert!(
                    !matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ),
                    "the fixture kept the connection open past {GUARD:?}"
                );
                matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                )
            }
        }
    }
}

/// Waits, bounded, for `cond`.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + GUARD;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn accept_key_is_the_rfc_one() {
    assert_eq!(broken::accept_key(KEY), ACCEPT);
}

#[test]
fn echo_echoes_masked_frames_unmasked() {
    let server = broken::echo();
    let mut c = Client::upgrade(server.addr());
    c.send(true, 0x1, b"hello");
    assert_eq!(c.read_frame(), (0x81, false, b"hello".to_vec()));

    let big: Vec<u8> = (0..broken::MAX_PAYLOAD)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    c.send(true, 0x2, &big);
    assert_eq!(c.read_frame(), (0x82, false, big));

    // Fragments are echoed as fragments.
    c.send(false, 0x1, b"ab");
    c.send(true, 0x0, b"cd");
    assert_eq!(c.read_frame(), (0x01, false, b"ab".to_vec()));
    assert_eq!(c.read_frame(), (0x80, false, b"cd".to_vec()));

    c.send(true, 0x9, b"ping");
    assert_eq!(c.read_frame(), (0x8A, false, b"ping".to_vec()));
    assert_eq!(server.messages(), 3);

    c.send(true, 0x8, &[0x03, 0xe8, b'b', b'y', b'e']);
    assert_eq!(c.read_frame(), (0x88, false, vec![0x03, 0xe8]));
    assert!(c.closed_by_peer());
    assert_eq!(server.connections(), 1);
}

#[test]
fn echo_refuses_what_a_server_must_refuse() {
    let server = broken::echo();
    // A frame over the limit: close 1009.
    let mut c = Client::upgrade(server.addr());
    c.send(true, 0x2, &vec![0u8; broken::MAX_PAYLOAD + 1]);
    assert_eq!(
        c.read_frame(),
        (0x88, false, 1009u16.to_be_bytes().to_vec())
    );
    // An unmasked client frame: close 1002.
    let mut c = Client::upgrade(server.addr());
    c.send_raw(true, 0x1, b"hi", false);
    assert_eq!(
        c.read_frame(),
        (0x88, false, 1002u16.to_be_bytes().to_vec())
    );
    // A reserved opcode: close 1002.
    let mut c = Client::upgrade(server.addr());
    c.send(true, 0x3, b"hi");
    assert_eq!(
        c.read_frame(),
        (0x88, false, 1002u16.to_be_bytes().to_vec())
    );
    // A request without a key: 400.
    let mut c = Client::connect(server.addr());
    c.stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    assert!(c.read_head().starts_with("HTTP/1.1 400 "));
    assert_eq!(server.messages(), 0);
}

#[test]
fn closes_after_drops_each_connection_after_n_messages() {
    let server = broken::closes_after(2);
    for round in 0..2 {
        let mut c = Client::upgrade(server.addr());
        c.send(true, 0x1, b"one");
        assert_eq!(c.read_frame(), (0x81, false, b"one".to_vec()));
        c.send(true, 0x2, b"two");
        assert_eq!(c.read_frame(), (0x82, false, b"two".to_vec()));
        assert!(
            c.closed_by_peer(),
            "round {round}: no close frame, the TCP connection ends"
        );
    }
    assert_eq!(server.messages(), 4);
    assert_eq!(server.connections(), 2);

    let server = broken::closes_after(0);
    let mut c = Client::upgrade(server.addr());
    assert!(c.closed_by_peer());
}

#[test]
fn silent_never_answers() {
    let server = broken::silent();
    let mut c = Client::connect(server.addr());
    c.send_request(server.addr());
    wait_until("the accept", || server.connections() == 1);
    c.stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("short read timeout");
    let mut byte = [0u8; 1];
    let err = c
        .stream
        .read(&mut byte)
        .expect_err("the silent fixture sent something or closed");
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        "{err}"
    );
}

#[test]
fn garbage_http_does_not_say_101() {
    let server = broken::garbage_http();
    let mut c = Client::connect(server.addr());
    c.send_request(server.addr());
    let head = c.read_head();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(!head.contains("101"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("sec-websocket-accept"));
    while c.buf.len() < 10 {
        assert!(c.fill() > 0, "the body");
    }
    assert!(c.buf.starts_with(b"<html>"));
}

#[test]
fn not_http_answers_bytes_that_are_not_http() {
    let server = broken::not_http();
    let mut c = Client::connect(server.addr());
    c.send_request(server.addr());
    while c.buf.len() < 5 {
        assert!(c.fill() > 0, "some bytes");
    }
    assert!(!c.buf.starts_with(b"HTTP/"), "{:?}", c.buf);
}

#[test]
fn garbage_frames_follow_a_valid_101() {
    let server = broken::garbage_frames();
    let mut c = Client::upgrade(server.addr());
    let (first, masked, _) = c.read_frame();
    assert!(!masked);
    assert!(
        matches!(first & 0x0f, 0x3..=0x7 | 0xB..=0xF),
        "opcode {first:#x}"
    );

    /// Checks (first byte, mask bit, payload) of the frame.
    type Check = fn(u8, bool, &[u8]) -> bool;
    let cases: [(BadFrame, Check); 4] = [
        (BadFrame::ReservedOpcode, |b, _, _| b & 0x0f == 0x3),
        (BadFrame::Masked, |b, m, p| b == 0x81 && m && p == b"hi"),
        (BadFrame::ReservedBits, |b, m, _| b & 0x40 != 0 && !m),
        (BadFrame::BadUtf8, |b, _, p| {
            b == 0x81 && std::str::from_utf8(p).is_err()
        }),
    ];
    for (kind, check) in cases {
        let server = broken::bad_frames(kind);
        let mut c = Client::upgrade(server.addr());
        let (first, masked, payload) = c.read_frame();
        assert!(
            check(first, masked, &payload),
            "{kind:?}: {first:#x} {masked} {payload:?}"
        );
        // The connection stays open: the client has to notice the frame itself.
        c.stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("short read timeout");
        let mut byte = [0u8; 1];
        assert!(
            c.stream.read(&mut byte).is_err(),
            "{kind:?}: more bytes or a close"
        );
    }
}

#[test]
fn refusing_refuses() {
    let addr = broken::refusing();
    assert!(addr.ip().is_loopback());
    let err = TcpStream::connect_timeout(&addr, GUARD).expect_err("nothing listens");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
}

#[test]
fn a_dropped_fixture_stops() {
    let server = broken::silent();
    let addr = server.addr();
    assert_eq!(server.url(), format!("ws://{addr}/"));
    let mut c = Client::connect(addr);
    c.send_request(addr);
    wait_until("the accept", || server.connections() == 1);
    drop(server);
    // The open connection ends, and nothing listens any more.
    assert!(c.closed_by_peer());
    let err = TcpStream::connect_timeout(&addr, GUARD).expect_err("the listener is gone");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
}

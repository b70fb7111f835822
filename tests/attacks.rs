//! Attacks as tests: the shapes of the published Node `ws` advisories and the classic
//! WebSocket denials of service, each with the refusal it must get (an HTTP status, a close
//! code read from the server's close frame, or a closed connection), and each with a
//! well-behaved connection, opened before the attack, that must still echo afterwards, and a
//! memory bound: the peak resident set of this process (server and attacker) during the attack
//! grows by less than a stated amount — 4 MiB for the small attacks, far below what a server
//! that buffered the attack would hold. The tests run one at a time for that ([`serial`]).
//!
//! Sizes are bounded so that the whole file runs in seconds on two cores.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use common::{
    masked, read_to_eof, start_server, stop, upgrade_head, wait_until, Client, Echo, Ev, TIMEOUT,
};
use wsx::protocol::deflate::DeflateOptions;
use wsx::{Backend, Limits, Server, ServerBuilder, ServerHandle};

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// The attacks run one at a time, so that the memory this process (server and attacker)
/// gains during one is that attack's.
static SERIAL: Mutex<()> = Mutex::new(());

/// Every test takes it first, for its whole run.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The memory bound of one attack: the peak resident set while it runs, over the resident set
/// before it (the server runs in this process).
struct Memory {
    before: u64,
}

impl Memory {
    /// Resets the peak (`/proc/self/clear_refs`) and notes the resident set. Call it with the
    /// [`serial`] lock held, once the server runs and the attack's bytes are built.
    fn measure() -> Memory {
        std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak resident set");
        Memory {
            before: status_kib("VmRSS"),
        }
    }

    /// Panics unless the peak grew by less than `bound_kib` since [`measure`](Self::measure).
    #[track_caller]
    fn assert_peak_below(&self, bound_kib: u64, what: &str) {
        let grown = status_kib("VmHWM").saturating_sub(self.before);
        assert!(
            grown < bound_kib,
            "{what}: the peak resident set grew by {grown} KiB (bound {bound_kib} KiB)"
        );
    }
}

/// Starts an echo server on one worker with `builder`'s settings, and a well-behaved client
/// connected to it before any attack.
fn server_and_probe(backend: Backend, builder: ServerBuilder) -> (ServerHandle, Client) {
    let server = start_server(backend, builder.threads(1), |_| Echo);
    let probe = Client::connect(server.local_addr());
    (server, probe)
}

/// Panics unless the probe still echoes a message.
#[track_caller]
fn assert_echoes(probe: &mut Client, what: &str) {
    probe.send_text(what);
    assert_eq!(
        probe.recv_data(),
        Some(Ev::Text(what.to_owned())),
        "the well-behaved connection still echoes"
    );
}

/// The status code of an HTTP answer (`HTTP/1.1 431 …` gives 431).
fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
}

/// Sends `request` on a fresh connection and returns the status the server answered with
/// before closing.
fn refused_with(addr: SocketAddr, request: &[u8]) -> u16 {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    s.set_write_timeout(Some(TIMEOUT)).expect("write timeout");
    // The server may answer and close before the whole request is written.
    let _ = s.write_all(request);
    s.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match std::io::Read::read(&mut s, &mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    status_of(&String::from_utf8_lossy(&head))
}

/// Opens a raw connection, upgrades it, and returns it with the 101 read off.
fn upgraded(addr: SocketAddr) -> TcpStream {
    upgraded_with(addr, &[])
}

/// [`upgraded`] with `extra` header lines in the request.
fn upgraded_with(addr: SocketAddr, extra: &[&str]) -> TcpStream {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    s.set_write_timeout(Some(TIMEOUT)).expect("write timeout");
    s.write_all(&upgrade_head("/", extra))
        .expect("write the upgrade");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    s.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    while !head.ends_with(b"\r\n\r\n") {
        std::io::Read::read_exact(&mut s, &mut byte).expect("read the 101");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "upgraded: {head:?}");
    s
}

/// The close code of the first close frame in `bytes` (unmasked server frames), if any.
fn close_code_in(bytes: &[u8]) -> Option<u16> {
    let mut at = 0;
    while at + 2 <= bytes.len() {
        let opcode = bytes[at] & 0x0f;
        let (len, hdr) = match bytes[at + 1] & 0x7f {
            126 => (
                u16::from_be_bytes(bytes.get(at + 2..at + 4)?.try_into().ok()?) as usize,
                4,
            ),
            127 => (
                u64::from_be_bytes(bytes.get(at + 2..at + 10)?.try_into().ok()?) as usize,
                10,
            ),
            n => (usize::from(n), 2),
        };
        let payload = bytes.get(at + hdr..at + hdr + len)?;
        if opcode == 0x8 {
            return Some(u16::from_be_bytes(payload.get(..2)?.try_into().ok()?));
        }
        at += hdr + len;
    }
    None
}

/// Writes `bytes` on an upgraded connection (ignoring a write the server cut short) and
/// returns the code of the server's close frame, read until EOF.
fn closed_with(addr: SocketAddr, bytes: &[u8]) -> Option<u16> {
    let mut s = upgraded(addr);
    let _ = s.write_all(bytes);
    close_code_in(&read_to_eof(&mut s))
}

/// Waits (bounded) until the server holds `n` connections.
#[track_caller]
fn assert_connections_fall_to(server: &ServerHandle, n: u64) {
    assert!(
        wait_until(TIMEOUT, || server.stats().connections == n),
        "connections back to {n}: {:?}",
        server.stats()
    );
}

test_all!(a_huge_protocol_header_of_redos_shape_is_answered_quickly);
/// CVE-2021-32640: a `Sec-WebSocket-Protocol` of many commas and spaces made `ws` spend
/// seconds in a regular expression. Within the head limit it is answered at once; past it, 431.
fn a_huge_protocol_header_of_redos_shape_is_answered_quickly(backend: Backend) {
    let _serial = serial();
    let (server, mut probe) = server_and_probe(backend, Server::builder());
    let memory = Memory::measure();
    let addr = server.local_addr();
    let shape = format!("a{}", ", ".repeat(3_000));
    let line = format!("Sec-WebSocket-Protocol: {shape}");
    let status = refused_with(addr, &upgrade_head("/", &[&line]));
    assert_eq!(
        status, 101,
        "a ReDoS-shaped protocol list is answered at once"
    );
    let huge = format!("Sec-WebSocket-Protocol: {}", ", ".repeat(50_000));
    assert_eq!(refused_with(addr, &upgrade_head("/", &[&huge])), 431);
    assert_echoes(&mut probe, "after the protocol header");
    memory.assert_peak_below(4 << 10, "ReDoS-shaped protocol headers");
    stop(&server);
}

test_all!(a_huge_extensions_header_of_redos_shape_is_answered_quickly);
/// The same shape in `Sec-WebSocket-Extensions` (the `ws` extension parser crashes).
fn a_huge_extensions_header_of_redos_shape_is_answered_quickly(backend: Backend) {
    let _serial = serial();
    let (server, mut probe) = server_and_probe(backend, Server::builder());
    let memory = Memory::measure();
    let addr = server.local_addr();
    let shape = format!(
        "Sec-WebSocket-Extensions: permessage-deflate{}",
        "; a=\"".repeat(1_000)
    );
    let status = refused_with(addr, &upgrade_head("/", &[&shape]));
    assert_eq!(
        status, 101,
        "a ReDoS-shaped extension list is answered at once (the bad offer declined)"
    );
    let huge = format!("Sec-WebSocket-Extensions: {}", ",;".repeat(50_000));
    assert_eq!(refused_with(addr, &upgrade_head("/", &[&huge])), 431);
    assert_echoes(&mut probe, "after the extensions header");
    memory.assert_peak_below(4 << 10, "ReDoS-shaped extension headers");
    stop(&server);
}

test_all!(extension_names_and_parameters_of_object_properties_are_declined);
/// The 2017 `ws` advisory (npm 550): an extension or parameter called `constructor` or
/// `__proto__` crashed its parser. Here they are unknown names: the offers are declined, the
/// upgrade succeeds without permessage-deflate, and the connection works.
fn extension_names_and_parameters_of_object_properties_are_declined(backend: Backend) {
    let _serial = serial();
    let builder = Server::builder().deflate(DeflateOptions::default());
    let (server, mut probe) = server_and_probe(backend, builder);
    let memory = Memory::measure();
    let addr = server.local_addr();
    for value in [
        "constructor",
        "__proto__; toString",
        "permessage-deflate; constructor",
        "permessage-deflate; __proto__=1; hasOwnProperty",
    ] {
        let line = format!("Sec-WebSocket-Extensions: {value}");
        let mut s = upgraded_with(addr, &[&line]);
        s.write_all(&masked(true, 0x1, b"hi")).expect("write");
        let mut reply = [0u8; 4];
        std::io::Read::read_exact(&mut s, &mut reply).expect("the echo");
        // An unmasked, uncompressed text frame: RSV1 clear, so the offer was declined.
        assert_eq!(reply, [0x81, 2, b'h', b'i'], "{value}");
    }
    assert_echoes(&mut probe, "after object-property extension names");
    memory.assert_peak_below(4 << 10, "object-property extension names");
    stop(&server);
}

test_all!(thousands_of_headers_get_431);
/// CVE-2024-37890: a request with more headers than `server.maxHeadersCount` crashed `ws`.
fn thousands_of_headers_get_431(backend: Backend) {
    let _serial = serial();
    let (server, mut probe) = server_and_probe(backend, Server::builder());
    let memory = Memory::measure();
    let lines: Vec<String> = (0..5_000).map(|i| format!("X-{i}: a")).collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    // Past max_head_size as well as max_headers: 431 either way.
    assert_eq!(
        refused_with(server.local_addr(), &upgrade_head("/", &lines)),
        431
    );
    // Many small headers within the head size, past max_headers.
    let few: Vec<String> = (0..Limits::DEFAULT.max_headers + 10)
        .map(|i| format!("X{i}: a"))
        .collect();
    let few: Vec<&str> = few.iter().map(String::as_str).collect();
    assert_eq!(
        refused_with(server.local_addr(), &upgrade_head("/", &few)),
        431
    );
    assert_echoes(&mut probe, "after many headers");
    memory.assert_peak_below(4 << 10, "thousands of headers");
    stop(&server);
}

test_all!(a_sixteen_mebibyte_header_line_gets_431);
/// One header line of 16 MiB (past the 1 MiB of the classic attack), never ended: refused at
/// the head limit, not buffered (the peak grows by less than 4 MiB).
fn a_sixteen_mebibyte_header_line_gets_431(backend: Backend) {
    let _serial = serial();
    let (server, mut probe) = server_and_probe(backend, Server::builder());
    let mut request = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    request.resize(request.len() + (16 << 20), b'a');
    let memory = Memory::measure();
    let mut s = TcpStream::connect_timeout(&server.local_addr(), TIMEOUT).expect("connect");
    s.set_write_timeout(Some(TIMEOUT)).expect("write timeout");
    // The server answers and closes part-way: the rest of the write may fail.
    let _ = s.write_all(&request);
    let answer = read_to_eof_or_reset(&mut s);
    assert_eq!(status_of(&answer), 431);
    assert_echoes(&mut probe, "after a 16 MiB header line");
    memory.assert_peak_below(4 << 10, "a 16 MiB header line");
    stop(&server);
}

/// Reads what the server answered until EOF or a reset (a reset may follow an answer to a
/// client that was still writing).
fn read_to_eof_or_reset(s: &mut TcpStream) -> String {
    String::from_utf8_lossy(&bytes_to_eof_or_reset(s)).into_owned()
}

/// The bytes the server sent until EOF or a reset.
fn bytes_to_eof_or_reset(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    s.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    loop {
        match std::io::Read::read(s, &mut chunk) {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

test_all!(a_declared_length_of_2_pow_63_minus_1_closes_with_1009);
/// CVE-2016-10542: a frame announcing a huge payload; refused from its header alone.
fn a_declared_length_of_2_pow_63_minus_1_closes_with_1009(backend: Backend) {
    let _serial = serial();
    let (server, mut probe) = server_and_probe(backend, Server::builder());
    let memory = Memory::measure();
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(i64::MAX as u64).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    assert_eq!(closed_with(server.local_addr(), &header), Some(1009));
    // A length with the top bit set is not even a valid length: 1002.
    let mut bad = vec![0x82, 0x80 | 127];
    bad.extend_from_slice(&u64::MAX.to_be_bytes());
    bad.extend_from_slice(&[1, 2, 3, 4]);
    assert_eq!(closed_with(server.local_addr(), &bad), Some(1002));
    assert_echoes(&mut probe, "after a huge length");
    memory.assert_peak_below(4 << 10, "a declared 2^63-1 length");
    stop(&server);
}

test_all!(a_million_one_byte_fragments_close_with_1009);
/// A message of a million 1-byte fragments (7 MB on the wire) under the default limits: closed
/// once it passes `max_fragments` (131,072), with the message assembled so far (128 KiB) the
/// most it held.
fn a_million_one_byte_fragments_close_with_1009(backend: Backend) {
    let _serial = serial();
    let (server, mut probe) = server_and_probe(backend, Server::builder());
    let mut bytes = masked(false, 0x2, b"x");
    let cont = masked(false, 0x0, b"x");
    bytes.reserve(cont.len() * 1_000_000);
    for _ in 0..1_000_000 {
        bytes.extend_from_slice(&cont);
    }
    let memory = Memory::measure();
    assert_eq!(closed_with(server.local_addr(), &bytes), Some(1009));
    assert_echoes(&mut probe, "after a fragment flood");
    memory.assert_peak_below(4 << 10, "a million one-byte fragments");
    stop(&server);
}

test_all!(invalid_close_frames_close_with_1002_or_1007);
/// Close frames with a 1-byte payload, reserved or out-of-range codes, or a reason that is not
/// UTF-8.
fn invalid_close_frames_close_with_1002_or_1007(backend: Backend) {
    let _serial = serial();
    let (server, mut probe) = server_and_probe(backend, Server::builder());
    let memory = Memory::measure();
    let addr = server.local_addr();
    assert_eq!(closed_with(addr, &masked(true, 0x8, &[0x03])), Some(1002));
    for code in [999u16, 1004, 1005, 1006, 1015, 5000] {
        let payload = code.to_be_bytes();
        assert_eq!(
            closed_with(addr, &masked(true, 0x8, &payload)),
            Some(1002),
            "close code {code}"
        );
    }
    let mut bad_reason = 1000u16.to_be_bytes().to_vec();
    bad_reason.extend_from_slice(&[0xff, 0xfe]);
    assert_eq!(
        closed_with(addr, &masked(true, 0x8, &bad_reason)),
        Some(1007)
    );
    assert_echoes(&mut probe, "after invalid close frames");
    memory.assert_peak_below(4 << 10, "invalid close frames");
    stop(&server);
}

test_all!(garbage_pipelined_after_the_upgrade_closes_with_1002);
/// Bytes that are no frame, sent in the same write as the upgrade request.
fn garbage_pipelined_after_the_upgrade_closes_with_1002(backend: Backend) {
    let _serial = serial();
    let (server, mut probe) = server_and_probe(backend, Server::builder());
    let memory = Memory::measure();
    let mut request = upgrade_head("/", &[]);
    // Reserved bits and a reserved opcode, unmasked.
    request.extend_from_slice(&[0xf3, 0x05, b'h', b'e', b'l', b'l', b'o']);
    let mut s = TcpStream::connect_timeout(&server.local_addr(), TIMEOUT).expect("connect");
    s.write_all(&request).expect("write");
    let answer = read_to_eof(&mut s);
    assert!(answer.starts_with(b"HTTP/1.1 101"), "{answer:?}");
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of head");
    assert_eq!(close_code_in(&answer[end + 4..]), Some(1002), "{answer:?}");
    assert_echoes(&mut probe, "after pipelined garbage");
    memory.assert_peak_below(4 << 10, "garbage after the upgrade");
    stop(&server);
}

test_all!(a_request_without_host_gets_400);
/// RFC 6455 §4.1 requires `Host`.
fn a_request_without_host_gets_400(backend: Backend) {
    let _serial = serial();
    let (server, mut probe) = server_and_probe(backend, Server::builder());
    let memory = Memory::measure();
    let request = format!(
        "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        common::SAMPLE_KEY
    );
    assert_eq!(refused_with(server.local_addr(), request.as_bytes()), 400);
    assert_echoes(&mut probe, "after a request without Host");
    memory.assert_peak_below(4 << 10, "a request without Host");
    stop(&server);
}

test_all!(an_http_1_0_upgrade_is_refused);
/// RFC 6455 §4.1 requires HTTP/1.1 or later.
fn an_http_1_0_upgrade_is_refused(backend: Backend) {
    let _serial = serial();
    let (server, mut probe) = server_and_probe(backend, Server::builder());
    let memory = Memory::measure();
    let request = String::from_utf8(upgrade_head("/", &[]))
        .expect("ascii")
        .replacen("HTTP/1.1", "HTTP/1.0", 1);
    let status = refused_with(server.local_addr(), request.as_bytes());
    assert_eq!(status, 400, "HTTP/1.0 is refused with 400");
    assert_echoes(&mut probe, "after an HTTP/1.0 request");
    memory.assert_peak_below(4 << 10, "an HTTP/1.0 upgrade");
    stop(&server);
}

test_all!(slowloris_at_the_handshake_is_cut_at_the_handshake_timeout);
/// A client that sends its head a byte at a time, more slowly than the handshake timeout.
fn slowloris_at_the_handshake_is_cut_at_the_handshake_timeout(backend: Backend) {
    let _serial = serial();
    let builder = Server::builder().handshake_timeout(Duration::from_millis(300));
    let (server, mut probe) = server_and_probe(backend, builder);
    let memory = Memory::measure();
    let mut s = TcpStream::connect_timeout(&server.local_addr(), TIMEOUT).expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nX-")
        .expect("write");
    // Waits on the server's close (EOF), bounded by TIMEOUT: the handshake timeout cut it.
    let answer = read_to_eof_or_reset(&mut s);
    assert!(!answer.starts_with("HTTP/1.1 101"), "{answer:?}");
    assert_echoes(&mut probe, "after a slow handshake");
    assert_connections_fall_to(&server, 1);
    memory.assert_peak_below(4 << 10, "slowloris at the handshake");
    stop(&server);
}

test_all!(slowloris_in_the_middle_of_a_frame_is_cut_at_the_idle_timeout);
/// A peer that sends half a frame header and then nothing.
fn slowloris_in_the_middle_of_a_frame_is_cut_at_the_idle_timeout(backend: Backend) {
    let _serial = serial();
    let builder = Server::builder()
        .idle_timeout(Some(Duration::from_millis(300)))
        .close_timeout(Duration::from_millis(300));
    let server = start_server(backend, builder.threads(1), |_| Echo);
    let memory = Memory::measure();
    let mut s = upgraded(server.local_addr());
    s.write_all(&[0x82, 0xfe, 0x10]).expect("half a header");
    let mut probe = Client::connect(server.local_addr());
    // Waits on the server's close (EOF or reset), bounded by TIMEOUT, on another thread: the
    // probe answers the server's pings meanwhile.
    let reader = std::thread::spawn(move || read_to_eof_or_reset(&mut s));
    assert!(
        wait_until(TIMEOUT, || {
            probe.pump(Duration::from_millis(20));
            reader.is_finished()
        }),
        "the half frame is cut"
    );
    assert_echoes(&mut probe, "after a half frame");
    assert_connections_fall_to(&server, 1);
    memory.assert_peak_below(4 << 10, "slowloris mid-frame");
    stop(&server);
}

test_all!(a_flood_of_connections_that_never_handshake_is_dropped);
/// Hundreds of connections that send nothing: all dropped at the handshake timeout, while an
/// upgraded connection keeps working.
fn a_flood_of_connections_that_never_handshake_is_dropped(backend: Backend) {
    let _serial = serial();
    common::raise_fd_limit();
    let builder = Server::builder().handshake_timeout(Duration::from_millis(300));
    let (server, mut probe) = server_and_probe(backend, builder);
    let memory = Memory::measure();
    let mut flood: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect_timeout(&server.local_addr(), TIMEOUT).expect("connect"))
        .collect();
    assert_echoes(&mut probe, "during the flood");
    for s in &mut flood {
        let _ = read_to_eof_or_reset(s);
    }
    assert_connections_fall_to(&server, 1);
    assert_echoes(&mut probe, "after the flood");
    memory.assert_peak_below(8 << 10, "300 connections that never handshake");
    stop(&server);
}

test_all!(a_reset_in_the_middle_of_a_message_frees_the_connection);
/// A peer that sends part of a fragmented message, then resets.
fn a_reset_in_the_middle_of_a_message_frees_the_connection(backend: Backend) {
    let _serial = serial();
    let (server, mut probe) = server_and_probe(backend, Server::builder());
    let memory = Memory::measure();
    for _ in 0..20 {
        let mut victim = Client::connect(server.local_addr());
        victim.send_raw(&masked(false, 0x1, b"first half"));
        let mut partial = masked(true, 0x0, &[b'x'; 1000]);
        partial.truncate(500);
        victim.send_raw(&partial);
        victim.reset();
    }
    assert_connections_fall_to(&server, 1);
    assert_echoes(&mut probe, "after resets mid-message");
    memory.assert_peak_below(4 << 10, "20 resets mid-message");
    stop(&server);
}

test_all!(a_ping_flood_from_a_peer_that_never_reads_is_bounded);
/// A peer sends pings without ever reading the pongs: the server stops reading it once its
/// output buffer is full (`max_buffered`), so memory stays bounded (the peak grows by less than
/// 16 MiB for 8 MiB of pings) and other connections keep working.
fn a_ping_flood_from_a_peer_that_never_reads_is_bounded(backend: Backend) {
    let _serial = serial();
    let builder = Server::builder().max_buffered(256 << 10);
    let (server, mut probe) = server_and_probe(backend, builder);
    let memory = Memory::measure();
    let mut flooder = upgraded(server.local_addr());
    flooder
        .set_write_timeout(Some(Duration::from_millis(500)))
        .expect("write timeout");
    let ping = masked(true, 0x9, &[b'p'; 125]);
    let batch: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 1_000)
        .collect();
    for _ in 0..64 {
        // A write that times out means the server stopped reading us: the bound held.
        if flooder.write_all(&batch).is_err() {
            break;
        }
    }
    assert_echoes(&mut probe, "during a ping flood");
    memory.assert_peak_below(16 << 10, "a ping flood of 8 MiB");
    drop(flooder);
    assert_connections_fall_to(&server, 1);
    assert_echoes(&mut probe, "after a ping flood");
    stop(&server);
}

/// A permessage-deflate payload (without the final `00 00 ff ff`, RFC 7692 §7.2.1) that
/// inflates to `total` zero bytes: one compressed MiB of zeros, repeated (each piece ends with
/// a sync flush, so the pieces chain into one valid stream).
fn zeros_bomb(total: usize) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    const PIECE: usize = 1 << 20;
    let mut c = Compress::new(Compression::best(), false);
    let mut piece = Vec::with_capacity(PIECE / 256);
    c.compress_vec(&vec![0u8; PIECE], &mut piece, FlushCompress::Sync)
        .expect("compress");
    assert_eq!(c.total_in(), PIECE as u64, "one call compresses the piece");
    assert!(piece.ends_with(&[0, 0, 0xff, 0xff]));
    let mut bomb = piece.repeat(total / PIECE);
    bomb.truncate(bomb.len() - 4);
    bomb
}

test_all!(a_one_gibibyte_deflate_bomb_closes_with_1009_and_bounded_memory);
/// 1 GiB of zeros compressed to about 1 MiB, in one compressed frame: the server inflates no
/// more than its message limit (16 MiB here) and closes with 1009; its memory grows by less
/// than 64 MiB (not by the gibibyte) and the well-behaved connection keeps echoing.
fn a_one_gibibyte_deflate_bomb_closes_with_1009_and_bounded_memory(backend: Backend) {
    let _serial = serial();
    let limits = Limits {
        max_message_size: 16 << 20,
        ..Limits::DEFAULT
    };
    let builder = Server::builder()
        .limits(limits)
        .deflate(DeflateOptions::default());
    let (server, mut probe) = server_and_probe(backend, builder);
    let bomb = zeros_bomb(1 << 30);
    assert!(bomb.len() < 2 << 20, "{} bytes on the wire", bomb.len());
    let mut frame = masked(true, 0x2, &bomb);
    frame[0] |= 0x40; // RSV1: a compressed message
    let memory = Memory::measure();
    let mut s = upgraded_with(
        server.local_addr(),
        &["Sec-WebSocket-Extensions: permessage-deflate"],
    );
    let _ = s.write_all(&frame);
    let answer = bytes_to_eof_or_reset(&mut s);
    assert_eq!(close_code_in(&answer), Some(1009));
    memory.assert_peak_below(64 << 10, "a 1 GiB deflate bomb");
    drop(s);
    assert_connections_fall_to(&server, 1);
    assert_echoes(&mut probe, "after a 1 GiB deflate bomb");
    stop(&server);
}

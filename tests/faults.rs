//! Faults between the peers: a client reaches a wsx server through `support/faultproxy.rs`,
//! which delays, throttles, cuts up, silences, resets or half-closes the bytes between them.
//! Heartbeats close a peer gone silent within the configured time, a close handshake the peer
//! never answers times out, data written before a clean close arrives complete and in order,
//! and after every fault the server holds no connection and the process no descriptor more
//! than before.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;
#[path = "support/faultproxy.rs"]
mod faultproxy;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{masked, start_server, stop, upgrade_head, wait_until, Client, Ev, Shared, TIMEOUT};
use faultproxy::{Dir, FaultProxy, Faults};
use wsx::protocol::deflate::DeflateOptions;
use wsx::{Backend, CloseCode, CloseInfo, Conn, ConnId, Handler, Message, Server, ServerHandle};

/// The tests count the process's descriptors, so they run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Slack on top of a configured time: scheduling on a loaded machine, never a target.
const SLACK: Duration = Duration::from_millis(1500);

/// What the server's handler saw, shared with the test.
#[derive(Clone, Default)]
struct Seen {
    opened: Shared<ConnId>,
    closed: Shared<(Instant, CloseInfo)>,
    /// Sequence numbers of the numbered messages that arrived intact, in arrival order;
    /// `u32::MAX` for one that did not match its number.
    numbered: Shared<u32>,
}

/// Records opens and closes, checks numbered messages, echoes everything.
struct Recorder(Seen);

impl Handler for Recorder {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        self.0.opened.push(conn.id());
    }

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        if let Message::Binary(data) = &message {
            if data.len() >= 4 {
                let seq = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                let ok = **data == numbered(seq)[..];
                self.0.numbered.push(if ok { seq } else { u32::MAX });
            }
        }
        let _ = conn.send(message);
    }

    fn on_close(&mut self, _conn: &mut Conn<'_, ()>, close: &CloseInfo) {
        self.0.closed.push((Instant::now(), close.clone()));
    }
}

fn server(backend: Backend, builder: wsx::ServerBuilder) -> (ServerHandle, Seen) {
    let seen = Seen::default();
    let s = seen.clone();
    let server = start_server(backend, builder.threads(1), move |_| Recorder(s.clone()));
    (server, seen)
}

/// Message `seq` of the ordered-delivery test: its number, then bytes derived from it; sizes
/// vary from 4 bytes to 70,000 (more than 64 KiB: the 8-byte length form).
fn numbered(seq: u32) -> Vec<u8> {
    let len = if seq % 50 == 7 {
        70_000
    } else {
        4 + (seq as usize * 131) % 3000
    };
    let mut out = seq.to_be_bytes().to_vec();
    let mut x = seq.wrapping_mul(2_654_435_761) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        // Few distinct bytes, so that deflate has something to do.
        out.push(b'a' + (x % 8) as u8);
    }
    out
}

/// The process's descriptors once `server` has served and ended one connection (an engine
/// may open what it needs on first use); what every fault must come back to.
fn baseline(server: &ServerHandle, seen: &Seen) -> usize {
    let mut warm = Client::connect(server.local_addr());
    warm.send_text("warm-up");
    assert_eq!(warm.recv(), Some(Ev::Text("warm-up".into())));
    warm.close(1000, "");
    assert_eq!(warm.recv(), Some(Ev::Close(1000, String::new())));
    drop(warm);
    assert!(wait_until(TIMEOUT, || server.stats().connections == 0));
    assert!(seen.closed.wait_len(1));
    seen.opened.clear();
    seen.closed.clear();
    open_fds()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .count()
}

/// Waits until the server holds no connection and the process no more descriptors than
/// `baseline`.
#[track_caller]
fn assert_no_leak(server: &ServerHandle, baseline: usize) {
    assert!(
        wait_until(TIMEOUT, || server.stats().connections == 0),
        "server connections back to 0 (now {})",
        server.stats().connections
    );
    assert!(
        wait_until(TIMEOUT, || open_fds() <= baseline),
        "descriptors back to {baseline} (now {})",
        open_fds()
    );
}

/// Waits (bounded) for the server's first close event.
fn closed(seen: &Seen) -> (Instant, CloseInfo) {
    seen.closed
        .wait_for(|_| true)
        .expect("the server closes the connection")
}

test_all!(heartbeat_closes_a_silent_peer_in_time);
/// A peer that goes silent without closing (the proxy stops forwarding both ways) is pinged,
/// and closed once the idle timeout passes without an answer: within idle + close timeout.
fn heartbeat_closes_a_silent_peer_in_time(backend: Backend) {
    let _serial = serial();
    let idle = Duration::from_millis(600);
    let close = Duration::from_millis(300);
    let (server, seen) = server(
        backend,
        Server::builder()
            .idle_timeout(Some(idle))
            .close_timeout(close),
    );
    let baseline = baseline(&server, &seen);
    let proxy = FaultProxy::start(server.local_addr());
    let mut client = Client::connect(proxy.addr());
    client.send_text("hello");
    assert_eq!(client.recv(), Some(Ev::Text("hello".into())));
    assert!(seen.opened.wait_len(1));
    proxy.silence(true);
    let silent_since = Instant::now();
    let (at, info) = closed(&seen);
    let took = at - silent_since;
    assert!(
        took <= idle + close + SLACK,
        "closed {took:?} after the peer went silent (idle {idle:?}, close {close:?})"
    );
    assert!(
        !info.clean,
        "no closing handshake through a silent proxy: {info:?}"
    );
    drop(client);
    drop(proxy);
    assert_no_leak(&server, baseline);
    stop(&server);
}

test_all!(close_handshake_without_answer_times_out);
/// The server closes; the client's answer never reaches it (the proxy silences the way up):
/// the server drops the connection after its close timeout, and frees it.
fn close_handshake_without_answer_times_out(backend: Backend) {
    let _serial = serial();
    let close = Duration::from_millis(300);
    let (server, seen) = server(
        backend,
        Server::builder().idle_timeout(None).close_timeout(close),
    );
    let baseline = baseline(&server, &seen);
    let proxy = FaultProxy::start(server.local_addr());
    let mut client = Client::connect(proxy.addr());
    assert!(seen.opened.wait_len(1));
    let id = seen.opened.snapshot()[0];
    proxy.update(Dir::Up, |f| f.silent = true);
    let asked = Instant::now();
    let up_before = proxy.bytes(Dir::Up);
    server
        .close(id, CloseCode::NORMAL, "bye")
        .expect("close a connection by id");
    // The server's close frame still goes down to the client, which answers it (in vain).
    assert_eq!(client.recv(), Some(Ev::Close(1000, "bye".into())));
    let (at, info) = closed(&seen);
    let took = at - asked;
    assert!(
        took <= close + SLACK,
        "dropped {took:?} after closing (close timeout {close:?})"
    );
    assert!(!info.clean, "the handshake did not complete: {info:?}");
    assert_eq!(info.code, CloseCode::ABNORMAL, "{info:?}");
    assert_eq!(
        proxy.bytes(Dir::Up),
        up_before,
        "nothing went up through the silenced way"
    );
    assert_eq!(server.stats().connections, 0);
    drop(client);
    drop(proxy);
    assert_no_leak(&server, baseline);
    stop(&server);
}

/// Sends 200 numbered messages through `faults` (both ways) with the blocking client, reads
/// every echo, closes cleanly; the server saw them all, intact and in order, before the close.
fn ordered_through(backend: Backend, faults: &Faults) {
    let _serial = serial();
    for deflate in [false, true] {
        let mut builder = Server::builder().idle_timeout(None);
        if deflate {
            builder = builder.deflate(DeflateOptions::default());
        }
        let (server, seen) = server(backend, builder);
        let baseline = baseline(&server, &seen);
        let proxy = FaultProxy::start(server.local_addr());
        proxy.set_both(faults.clone());
        let mut options = wsx::client::ClientOptions::new()
            .no_proxy()
            .handshake_timeout(TIMEOUT);
        if deflate {
            options = options.deflate(DeflateOptions::default());
        }
        let url = format!("ws://{}/", proxy.addr());
        let mut ws = wsx::blocking::connect_with(&url, &options).expect("connect through proxy");
        ws.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
        const N: u32 = 200;
        for seq in 0..N {
            ws.send_binary(&numbered(seq)).expect("send");
        }
        for seq in 0..N {
            match ws.recv().expect("an echo") {
                wsx::blocking::Message::Binary(b) => {
                    assert!(b == numbered(seq), "echo {seq} intact (deflate {deflate})")
                }
                other => panic!("echo {seq}: got {other:?}"),
            }
        }
        ws.close(CloseCode::NORMAL, "done")
            .expect("the server answers the close");
        let (_, info) = closed(&seen);
        assert!(info.clean, "clean close: {info:?}");
        let got = seen.numbered.snapshot();
        let want: Vec<u32> = (0..N).collect();
        assert_eq!(
            got, want,
            "every message, intact and in order (deflate {deflate})"
        );
        if !deflate {
            let sum: u64 = (0..N).map(|s| numbered(s).len() as u64).sum();
            assert!(proxy.bytes(Dir::Up) > sum && proxy.bytes(Dir::Down) > sum);
        }
        drop(ws);
        drop(proxy);
        assert_no_leak(&server, baseline);
        stop(&server);
    }
}

test_all!(ordered_through_latency_and_jitter);
/// 10 ms ± 8 ms on every chunk, both ways.
fn ordered_through_latency_and_jitter(backend: Backend) {
    ordered_through(
        backend,
        &Faults {
            latency: Duration::from_millis(10),
            jitter: Duration::from_millis(8),
            ..Faults::default()
        },
    );
}

test_all!(ordered_through_a_bandwidth_limit);
/// 8 MB/s both ways.
fn ordered_through_a_bandwidth_limit(backend: Backend) {
    ordered_through(
        backend,
        &Faults {
            bandwidth: Some(8 << 20),
            ..Faults::default()
        },
    );
}

test_all!(ordered_through_one_byte_writes);
/// Every byte a write (and a TCP segment) of its own, both ways.
fn ordered_through_one_byte_writes(backend: Backend) {
    ordered_through(
        backend,
        &Faults {
            one_byte_writes: true,
            ..Faults::default()
        },
    );
}

/// A raw upgraded connection to `addr` (for bytes the client would not send).
fn raw_upgraded(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    s.write_all(&upgrade_head("/", &[]))
        .expect("upgrade request");
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut buf).expect("read the 101");
        assert!(n > 0, "closed during the handshake");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 101"), "upgraded");
    s
}

test_all!(reset_mid_frame_ends_only_that_connection);
/// The proxy resets the connection 1,000 bytes into a 100 KB frame: the server ends it
/// (abnormally, no handshake), while a direct connection keeps being served.
fn reset_mid_frame_ends_only_that_connection(backend: Backend) {
    let _serial = serial();
    let (server, seen) = server(backend, Server::builder().idle_timeout(None));
    let baseline = baseline(&server, &seen);
    let mut other = Client::connect(server.local_addr());
    let proxy = FaultProxy::start(server.local_addr());
    let mut victim = raw_upgraded(proxy.addr());
    assert!(seen.opened.wait_len(2));
    proxy.update(Dir::Up, |f| f.reset_after = Some(1000));
    // The write may fail once the reset comes back: that is the point.
    let _ = victim.write_all(&masked(true, 0x2, &vec![7u8; 100_000]));
    let (_, info) = closed(&seen);
    assert_eq!(info.code, CloseCode::ABNORMAL, "{info:?}");
    assert!(!info.clean);
    let mut buf = [0u8; 64];
    assert!(
        !matches!(victim.read(&mut buf), Ok(n) if n > 0),
        "the victim's connection is over"
    );
    other.send_text("still here");
    assert_eq!(other.recv(), Some(Ev::Text("still here".into())));
    assert!(wait_until(TIMEOUT, || server.stats().connections == 1));
    drop(victim);
    drop(other);
    drop(proxy);
    assert_no_leak(&server, baseline);
    stop(&server);
}

test_all!(half_close_after_the_close_frame);
/// The client sends its close frame and the proxy then shuts down the way up (a FIN right
/// after the frame): the server answers the close, the handshake completes, the connection
/// ends and is freed.
fn half_close_after_the_close_frame(backend: Backend) {
    let _serial = serial();
    let (server, seen) = server(backend, Server::builder().idle_timeout(None));
    let baseline = baseline(&server, &seen);
    let proxy = FaultProxy::start(server.local_addr());
    let mut client = Client::connect(proxy.addr());
    client.send_text("before");
    assert_eq!(client.recv(), Some(Ev::Text("before".into())));
    // A masked close frame with a 2-byte code and no reason: 2 + 4 + 2 bytes.
    proxy.update(Dir::Up, |f| f.half_close_after = Some(8));
    client.close(1000, "");
    assert_eq!(client.recv(), Some(Ev::Close(1000, String::new())));
    assert!(
        client.recv().is_some_and(|e| e.is_end()),
        "the connection ends after the handshake"
    );
    let (_, info) = closed(&seen);
    assert!(info.clean, "{info:?}");
    assert_eq!(info.code, CloseCode::NORMAL);
    drop(client);
    drop(proxy);
    assert_no_leak(&server, baseline);
    stop(&server);
}

test_all!(a_slow_but_live_peer_is_kept_by_heartbeats);
/// A peer behind 100 ms ± 50 ms of latency each way and 64 KiB/s answers every ping late, but
/// well within the idle timeout: the server keeps it through three pings (more than the idle
/// timeout in all) and it still echoes and closes cleanly.
fn a_slow_but_live_peer_is_kept_by_heartbeats(backend: Backend) {
    let _serial = serial();
    let idle = Duration::from_millis(1500);
    let (server, seen) = server(
        backend,
        Server::builder()
            .idle_timeout(Some(idle))
            .close_timeout(Duration::from_millis(500)),
    );
    let baseline = baseline(&server, &seen);
    let proxy = FaultProxy::start(server.local_addr());
    proxy.set_both(Faults {
        latency: Duration::from_millis(100),
        jitter: Duration::from_millis(50),
        bandwidth: Some(64 << 10),
        ..Faults::default()
    });
    let mut client = Client::connect(proxy.addr());
    let mut pings = 0;
    while pings < 3 {
        // The client answers each ping as it reads it; a close or an end here is the failure.
        match client.recv_within(idle * 2) {
            Some(Ev::Ping(_)) => pings += 1,
            other => panic!(
                "a slow but live peer got {other:?} after {pings} pings; server saw {:?}",
                seen.closed.snapshot()
            ),
        }
    }
    assert!(seen.closed.snapshot().is_empty(), "the server kept it");
    client.send_text("still here");
    assert_eq!(client.recv(), Some(Ev::Text("still here".into())));
    client.close(1000, "");
    assert_eq!(client.recv(), Some(Ev::Close(1000, String::new())));
    let (_, info) = closed(&seen);
    assert!(info.clean, "{info:?}");
    drop(client);
    drop(proxy);
    assert_no_leak(&server, baseline);
    stop(&server);
}

test_all!(a_reset_while_the_server_writes_ends_only_that_connection);
/// The proxy resets the connection 100 KB into the server's 4 MiB echo (the server is
/// mid-write, the kernel answers its writes with `ECONNRESET`/`EPIPE`): the server ends that
/// connection abnormally and frees it, while a direct connection is served meanwhile and after.
fn a_reset_while_the_server_writes_ends_only_that_connection(backend: Backend) {
    let _serial = serial();
    let (server, seen) = server(backend, Server::builder().idle_timeout(None));
    let baseline = baseline(&server, &seen);
    let mut other = Client::connect(server.local_addr());
    let proxy = FaultProxy::start(server.local_addr());
    let mut victim = raw_upgraded(proxy.addr());
    assert!(seen.opened.wait_len(2));
    proxy.update(Dir::Down, |f| f.reset_after = Some(100_000));
    // The whole message goes up before the echo starts coming down.
    victim
        .write_all(&masked(true, 0x2, &vec![9u8; 4 << 20]))
        .expect("the message goes up");
    let (_, info) = closed(&seen);
    assert_eq!(info.code, CloseCode::ABNORMAL, "{info:?}");
    assert!(!info.clean);
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 << 10];
    while let Ok(n @ 1..) = victim.read(&mut buf) {
        got += n;
    }
    assert!(got < 4 << 20, "the echo was cut ({got} bytes arrived)");
    other.send_text("still here");
    assert_eq!(other.recv(), Some(Ev::Text("still here".into())));
    assert!(wait_until(TIMEOUT, || server.stats().connections == 1));
    drop(victim);
    drop(other);
    drop(proxy);
    assert_no_leak(&server, baseline);
    stop(&server);
}

/// What the engine client's handler saw.
#[derive(Clone, Default)]
struct ClientSeen {
    /// Sequence numbers of the echoes that came back intact, in order; `u32::MAX` for one that
    /// did not.
    echoes: Shared<u32>,
    closed: Shared<CloseInfo>,
}

/// The engine client's side of [`engine_client_ordered_through_faults`]: sends `N` numbered
/// messages on open, checks each echo, closes after the last.
struct Numbers(ClientSeen);

const ENGINE_MESSAGES: u32 = 200;

impl Handler for Numbers {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        for seq in 0..ENGINE_MESSAGES {
            let status = conn.send_binary(&numbered(seq)).expect("queue a message");
            assert_ne!(status, wsx::SendStatus::Dropped, "message {seq} dropped");
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        let data = message.as_bytes();
        let seq = data
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .filter(|&seq| *data == numbered(seq)[..])
            .unwrap_or(u32::MAX);
        self.0.echoes.push(seq);
        if self.0.echoes.len() == ENGINE_MESSAGES as usize {
            conn.close(CloseCode::NORMAL, "done").expect("close");
        }
    }

    fn on_close(&mut self, _conn: &mut Conn<'_, ()>, close: &CloseInfo) {
        self.0.closed.push(close.clone());
    }
}

test_all!(engine_client_ordered_through_faults);
/// The engine's own client (`Client::builder()`, connections opened by a worker) through the
/// proxy: with latency and jitter and permessage-deflate, then with 1-byte writes, 200 numbered
/// messages go up and come back intact and in order, the close is clean on both sides, and
/// both engines end holding nothing.
fn engine_client_ordered_through_faults(backend: Backend) {
    let _serial = serial();
    let slow = Faults {
        latency: Duration::from_millis(5),
        jitter: Duration::from_millis(4),
        ..Faults::default()
    };
    let tiny = Faults {
        one_byte_writes: true,
        ..Faults::default()
    };
    for (faults, deflate) in [(slow, true), (tiny, false)] {
        let mut builder = Server::builder().idle_timeout(None);
        if deflate {
            builder = builder.deflate(DeflateOptions::default());
        }
        let (server, seen) = server(backend, builder);
        let baseline = baseline(&server, &seen);
        let proxy = FaultProxy::start(server.local_addr());
        proxy.set_both(faults);
        let client_seen = ClientSeen::default();
        let cs = client_seen.clone();
        let engine = wsx::Client::builder()
            .threads(1)
            .pin_threads(false)
            .backend(backend)
            .start(move |_| Numbers(cs.clone()))
            .expect("client engine starts");
        let mut options = wsx::client::ClientOptions::new().no_proxy();
        if deflate {
            options = options.deflate(DeflateOptions::default());
        }
        engine
            .connect(&format!("ws://{}/", proxy.addr()), options, 1)
            .expect("connect");
        // Bounded by progress, not by a total: each echo (or the close) within TIMEOUT, so
        // that a loaded machine slows the exchange down without failing it.
        let info = loop {
            if let Some(info) = client_seen.closed.snapshot().first().cloned() {
                break info;
            }
            let echoes = client_seen.echoes.len();
            assert!(
                wait_until(TIMEOUT, || {
                    client_seen.echoes.len() > echoes || client_seen.closed.len() > 0
                }),
                "no echo nor close within {TIMEOUT:?} after {echoes} echoes (deflate {deflate})"
            );
        };
        assert!(
            info.clean,
            "clean on the client (deflate {deflate}): {info:?}"
        );
        let want: Vec<u32> = (0..ENGINE_MESSAGES).collect();
        assert_eq!(client_seen.echoes.snapshot(), want, "every echo, in order");
        let (_, info) = closed(&seen);
        assert!(info.clean, "clean on the server: {info:?}");
        assert_eq!(seen.numbered.snapshot(), want, "every message, in order");
        assert!(wait_until(TIMEOUT, || engine.stats().connections == 0));
        engine.shutdown(Duration::from_secs(2));
        common::wait_for_workers(&engine, TIMEOUT);
        drop(engine);
        drop(proxy);
        assert_no_leak(&server, baseline);
        stop(&server);
    }
}

/// This process's resident set in KiB (the server runs in it).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

test_all!(faults_again_and_again_leak_no_memory);
/// 300 connections through the proxy, each reset in the middle of a 64 KB frame or cut by a
/// half-close mid-frame, after 50 of the same to warm up: the server ends each one, and the
/// process's resident set grows by less than 2 MiB over the 300 (a leak of 7 KiB or more per
/// connection would pass that), besides the connection and descriptor checks.
fn faults_again_and_again_leak_no_memory(backend: Backend) {
    let _serial = serial();
    let (server, seen) = server(backend, Server::builder().idle_timeout(None));
    let baseline = baseline(&server, &seen);
    let frame = masked(true, 0x2, &vec![3u8; 64_000]);
    let proxy = FaultProxy::start(server.local_addr());
    let cut = |i: usize| {
        let mut victim = raw_upgraded(proxy.addr());
        proxy.update(Dir::Up, |f| {
            if i % 2 == 0 {
                f.reset_after = Some(1000 + (i as u64 * 97) % 30_000);
                f.half_close_after = None;
            } else {
                f.reset_after = None;
                f.half_close_after = Some(1000 + (i as u64 * 97) % 30_000);
            }
        });
        let _ = victim.write_all(&frame);
        let mut buf = [0u8; 256];
        // The server ends it: EOF or a reset, within the read timeout.
        while let Ok(1..) = victim.read(&mut buf) {}
    };
    for i in 0..50 {
        cut(i);
    }
    assert!(wait_until(TIMEOUT, || server.stats().connections == 0));
    let before = rss_kib();
    for i in 50..350 {
        cut(i);
    }
    assert!(wait_until(TIMEOUT, || server.stats().connections == 0));
    let grown = rss_kib().saturating_sub(before);
    assert!(
        grown < 2 << 10,
        "RSS grew by {grown} KiB over 300 faulted connections"
    );
    assert_eq!(seen.closed.len(), 350, "every connection ended");
    drop(proxy);
    assert_no_leak(&server, baseline);
    stop(&server);
}

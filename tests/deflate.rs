//! permessage-deflate on real sockets: a wsx server and the blocking and engine clients.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;

use std::time::Duration;

use common::{start_server, stop, TIMEOUT};
use wsx::blocking::Message;
use wsx::client::ClientOptions;
use wsx::protocol::deflate::DeflateOptions;
use wsx::{Backend, Conn, Handler, Server};

/// Echoes, and answers "mode?" with whether compression is on for the connection.
struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: wsx::Message<'_>) {
        if message == wsx::Message::Text("mode?") {
            let on = conn.compression();
            let _ = conn.send_text(if on { "deflate" } else { "plain" });
            return;
        }
        let _ = conn.send(message);
    }
}

/// The server's counters once they show at least `read` messages read (bounded wait).
fn stats_after(server: &wsx::ServerHandle, read: u64) -> wsx::Stats {
    let mut stats = server.stats();
    let counted = common::wait_until(TIMEOUT, || {
        stats = server.stats();
        stats.messages_in >= read
    });
    assert!(counted, "{read} messages read: {stats:?}");
    stats
}

fn text(len: usize) -> String {
    "{\"px\":101.25,\"qty\":3,\"side\":\"ask\"},".repeat(len / 34 + 1)[..len].to_owned()
}

test_all!(compressed_echo_in_every_client_mode_and_plain_peers_still_served);
fn compressed_echo_in_every_client_mode_and_plain_peers_still_served(backend: Backend) {
    let server = start_server(
        backend,
        Server::builder()
            .threads(1)
            .deflate(DeflateOptions::default()),
        |_| Echo,
    );
    let url = format!("ws://{}/", server.local_addr());
    let modes = [
        Some(DeflateOptions::default()),
        Some(DeflateOptions {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            ..DeflateOptions::default()
        }),
        Some(DeflateOptions {
            client_max_window_bits: Some(9),
            server_max_window_bits: Some(10),
            ..DeflateOptions::default()
        }),
        None,
    ];
    // Messages the server has read so far. Counters are published once per worker loop turn:
    // those of the turn that read a message count every byte written before it.
    let mut read = 0;
    for mode in modes {
        let mut options = ClientOptions::new().no_proxy().handshake_timeout(TIMEOUT);
        if let Some(d) = mode {
            options = options.deflate(d);
        }
        let mut ws = wsx::blocking::connect_with(&url, &options).unwrap();
        ws.set_read_timeout(Some(TIMEOUT)).unwrap();
        ws.send_text("mode?").unwrap();
        let expected = if mode.is_some() { "deflate" } else { "plain" };
        assert_eq!(ws.recv().unwrap(), Message::Text(expected.into()));
        read += 1;
        let before = stats_after(&server, read);
        for len in [10, 1023, 1024, 70_000, 1 << 20] {
            let t = text(len);
            ws.send_text(&t).unwrap();
            assert_eq!(ws.recv().unwrap(), Message::Text(t));
        }
        // One more round trip: once the counters show it read, they hold every echo's bytes.
        ws.send_text("mode?").unwrap();
        assert_eq!(ws.recv().unwrap(), Message::Text(expected.into()));
        read += 6;
        let sent = stats_after(&server, read).bytes_out - before.bytes_out;
        if mode.is_some() {
            assert!(
                sent < 200_000,
                "echoes were compressed ({sent} bytes for ~1.1 MB)"
            );
        } else {
            assert!(
                sent > 1_000_000,
                "a plain client gets plain frames ({sent} bytes)"
            );
        }
        ws.close(wsx::CloseCode::NORMAL, "").unwrap();
    }
    stop(&server);
}

test_all!(a_decompression_bomb_closes_with_1009);
fn a_decompression_bomb_closes_with_1009(backend: Backend) {
    let server = start_server(
        backend,
        Server::builder()
            .threads(1)
            .max_payload(1 << 20)
            .deflate(DeflateOptions::default()),
        |_| Echo,
    );
    // The client compresses even this large message, so only inflating it crosses the limit.
    let deflate = DeflateOptions {
        max_compress_size: 64 << 20,
        ..DeflateOptions::default()
    };
    let options = ClientOptions::new().no_proxy().deflate(deflate);
    let mut ws =
        wsx::blocking::connect_with(&format!("ws://{}/", server.local_addr()), &options).unwrap();
    ws.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // 16 MiB of zeros: a few KiB on the wire, far over the server's 1 MiB limit once inflated.
    ws.send_binary(&vec![0u8; 16 << 20]).unwrap();
    match ws.recv() {
        Ok(Message::Close(code, _)) => assert_eq!(code, wsx::CloseCode::TOO_BIG),
        other => panic!("expected close 1009, got {other:?}"),
    }
    // A message read on a second connection, after the bomb: the counters of that turn count
    // every byte the server read of the bomb.
    let mut probe =
        wsx::blocking::connect_with(&format!("ws://{}/", server.local_addr()), &options).unwrap();
    probe.set_read_timeout(Some(TIMEOUT)).unwrap();
    probe.send_text("mode?").unwrap();
    assert_eq!(probe.recv().unwrap(), Message::Text("deflate".into()));
    let after = stats_after(&server, 1);
    assert!(
        after.bytes_in < 200_000,
        "the bomb went out compressed: {after:?}"
    );
    stop(&server);
}

/// A short description of a message, for assertion failures that would print megabytes.
fn brief(m: &Message) -> String {
    let (kind, bytes): (&str, &[u8]) = match m {
        Message::Text(t) => ("text", t.as_bytes()),
        Message::Binary(b) => ("binary", b),
        Message::Ping(p) => ("ping", p),
        Message::Pong(p) => ("pong", p),
        Message::Close(c, r) => return format!("close {} {r:?}", c.0),
    };
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(24)]).into_owned();
    format!("{kind} of {} bytes {head:?}", bytes.len())
}

/// Receives the next message and checks it is `want`.
fn expect(ws: &mut wsx::blocking::WebSocket, want: Message) {
    let got = ws.recv().unwrap();
    assert!(
        got == want,
        "got {}, expected {}",
        brief(&got),
        brief(&want)
    );
}

/// A distinct JSON-like text of `len` bytes for message `n`.
fn big(n: usize, len: usize) -> String {
    let mut s = format!("[{n}]");
    let mut i = 0;
    while s.len() < len {
        s.push_str(&format!(
            "{{\"n\":{n},\"i\":{i},\"px\":{}.5,\"side\":\"bid\"}},",
            i % 977
        ));
        i += 1;
    }
    s.truncate(len);
    s
}

/// On "go", sends small messages, pings and large ones (through the pool) interleaved, then
/// closes; records the connection's id for sends from the test thread.
struct Interleave(common::Shared<wsx::ConnId>);

impl Handler for Interleave {
    type State = ();

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: wsx::Message<'_>) {
        match message {
            wsx::Message::Text("id") => {
                self.0.push(conn.id());
                let _ = conn.send_text("id sent");
            }
            wsx::Message::Text("go") => {
                let _ = conn.send_text("a");
                let _ = conn.ping(b"p1");
                let before = conn.buffered_amount();
                let _ = conn.send_text(&big(1, 1 << 20));
                assert!(
                    conn.buffered_amount() >= before + (1 << 20),
                    "a pooled message counts in buffered_amount"
                );
                let _ = conn.ping(b"p2");
                let _ = conn.send_text("b");
                let _ = conn.send_binary(big(2, 3 << 20).as_bytes());
                let _ = conn.send_text("c");
            }
            wsx::Message::Text("bye") => {
                let _ = conn.send_text(&big(3, 300_000));
                let _ = conn.close(wsx::CloseCode::NORMAL, "done");
            }
            _ => {}
        }
    }
}

test_all!(a_pooled_message_keeps_its_place_among_small_messages_pings_and_the_close);
fn a_pooled_message_keeps_its_place_among_small_messages_pings_and_the_close(backend: Backend) {
    let ids = common::Shared::default();
    let h = ids.clone();
    let server = start_server(
        backend,
        Server::builder()
            .threads(1)
            .deflate_threads(1)
            .deflate(DeflateOptions::default()),
        move |_| Interleave(h.clone()),
    );
    let options = ClientOptions::new()
        .no_proxy()
        .deflate(DeflateOptions::default());
    let url = format!("ws://{}/", server.local_addr());
    let mut ws = wsx::blocking::connect_with(&url, &options).unwrap();
    ws.set_read_timeout(Some(TIMEOUT)).unwrap();
    ws.send_text("go").unwrap();
    let expected = [
        Message::Text("a".into()),
        Message::Ping(b"p1".to_vec()),
        Message::Text(big(1, 1 << 20)),
        Message::Ping(b"p2".to_vec()),
        Message::Text("b".into()),
        Message::Binary(big(2, 3 << 20).into_bytes()),
        Message::Text("c".into()),
    ];
    for want in expected {
        expect(&mut ws, want);
    }
    // From another thread through the handle: a shared payload goes to the pool too.
    ws.send_text("id").unwrap();
    assert_eq!(ws.recv().unwrap(), Message::Text("id sent".into()));
    let id = ids.snapshot()[0];
    server
        .send(id, wsx::MessageKind::Binary, big(4, 2 << 20).into_bytes())
        .unwrap();
    server.send_text(id, "after the handle's").unwrap();
    assert_eq!(
        ws.recv().unwrap(),
        Message::Binary(big(4, 2 << 20).into_bytes())
    );
    assert_eq!(
        ws.recv().unwrap(),
        Message::Text("after the handle's".into())
    );
    // The close frame leaves after the pooled message sent before it.
    ws.send_text("bye").unwrap();
    expect(&mut ws, Message::Text(big(3, 300_000)));
    expect(
        &mut ws,
        Message::Close(wsx::CloseCode::NORMAL, "done".into()),
    );
    let pool = server.deflate_pool_stats();
    assert_eq!(
        (pool.jobs + pool.queue_full, pool.discarded),
        (4, 0),
        "four messages over the threshold, none lost: {pool:?}"
    );
    assert!(pool.jobs >= 1, "the pool compressed: {pool:?}");
    // Compressed on the wire: ~6.3 MB of JSON-like text took far fewer bytes.
    let out = server.stats().bytes_out;
    assert!(
        out < 2_000_000,
        "pooled messages went out compressed ({out} bytes)"
    );
    stop(&server);
}

/// On "send N", sends N large messages then "end", each distinct per connection.
struct Burst;

impl Handler for Burst {
    type State = ();

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: wsx::Message<'_>) {
        if let wsx::Message::Text(t) = message {
            if let Some(rest) = t.strip_prefix("send ") {
                let (who, n) = rest.split_once(' ').unwrap_or(("0", "0"));
                let who: usize = who.parse().unwrap_or(0);
                for i in 0..n.parse::<usize>().unwrap_or(0) {
                    let _ = conn.send_text(&big(who * 100 + i, 200_000 + i * 1000));
                }
                let _ = conn.send_text("end");
            }
        }
    }
}

test_all!(many_connections_with_one_pool_thread_and_a_tiny_queue_lose_nothing);
fn many_connections_with_one_pool_thread_and_a_tiny_queue_lose_nothing(backend: Backend) {
    const CONNS: usize = 12;
    const EACH: usize = 4;
    let server = start_server(
        backend,
        Server::builder()
            .threads(2)
            .deflate_threads(1)
            .deflate_queue(1)
            .deflate(DeflateOptions::default()),
        |_| Burst,
    );
    let url = format!("ws://{}/", server.local_addr());
    let clients: Vec<_> = (0..CONNS)
        .map(|who| {
            let url = url.clone();
            std::thread::spawn(move || {
                let options = ClientOptions::new()
                    .no_proxy()
                    .deflate(DeflateOptions::default());
                let mut ws = wsx::blocking::connect_with(&url, &options).unwrap();
                ws.set_read_timeout(Some(TIMEOUT)).unwrap();
                ws.send_text(&format!("send {who} {EACH}")).unwrap();
                for i in 0..EACH {
                    let want = big(who * 100 + i, 200_000 + i * 1000);
                    assert_eq!(
                        ws.recv().unwrap(),
                        Message::Text(want),
                        "conn {who} msg {i}"
                    );
                }
                assert_eq!(ws.recv().unwrap(), Message::Text("end".into()));
                ws.close(wsx::CloseCode::NORMAL, "").unwrap();
            })
        })
        .collect();
    for c in clients {
        c.join().expect("every client got every message in order");
    }
    let pool = server.deflate_pool_stats();
    assert_eq!(
        pool.jobs + pool.queue_full,
        (CONNS * EACH) as u64,
        "every large message was pooled or compressed inline: {pool:?}"
    );
    assert_eq!(pool.discarded, 0);
    eprintln!("pool of 1, queue of 1: {pool:?}");
    stop(&server);
}

/// On "go", sends a large message and drops the connection at once, while its job runs.
struct SendAndDrop;

impl Handler for SendAndDrop {
    type State = ();

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: wsx::Message<'_>) {
        match message {
            wsx::Message::Text("go") => {
                let _ = conn.send_text(&big(7, 8 << 20));
                conn.terminate();
            }
            other => {
                let _ = conn.send(other);
            }
        }
    }
}

test_all!(a_connection_dropped_while_its_job_runs_discards_the_frame);
fn a_connection_dropped_while_its_job_runs_discards_the_frame(backend: Backend) {
    let server = start_server(
        backend,
        Server::builder()
            .threads(1)
            .deflate_threads(1)
            .deflate(DeflateOptions::default()),
        |_| SendAndDrop,
    );
    let options = ClientOptions::new()
        .no_proxy()
        .deflate(DeflateOptions::default());
    let url = format!("ws://{}/", server.local_addr());
    let mut ws = wsx::blocking::connect_with(&url, &options).unwrap();
    ws.set_read_timeout(Some(TIMEOUT)).unwrap();
    ws.send_text("go").unwrap();
    assert!(ws.recv().is_err(), "dropped without the message");
    // The job ends on the pool; its frame finds no connection and is dropped.
    let mut pool = server.deflate_pool_stats();
    let discarded = common::wait_until(TIMEOUT, || {
        pool = server.deflate_pool_stats();
        pool.discarded == 1
    });
    assert!(
        discarded,
        "the frame of the dropped connection was discarded: {pool:?}"
    );
    assert_eq!((pool.jobs, pool.threads), (1, 1));
    // The worker and the pool go on serving.
    let mut ws = wsx::blocking::connect_with(&url, &options).unwrap();
    ws.set_read_timeout(Some(TIMEOUT)).unwrap();
    let t = big(8, 500_000);
    ws.send_text(&t).unwrap();
    expect(&mut ws, Message::Text(t));
    assert_eq!(server.deflate_pool_stats().jobs, 2);
    assert_eq!(server.stats().connections, 1);
    stop(&server);
}

test_all!(the_pool_shuts_down_with_the_server);
fn the_pool_shuts_down_with_the_server(backend: Backend) {
    let server = start_server(
        backend,
        Server::builder()
            .threads(1)
            .deflate_threads(3)
            .deflate(DeflateOptions::default()),
        |_| Echo,
    );
    assert_eq!(server.deflate_pool_stats().threads, 3);
    let options = ClientOptions::new()
        .no_proxy()
        .deflate(DeflateOptions::default());
    let mut ws =
        wsx::blocking::connect_with(&format!("ws://{}/", server.local_addr()), &options).unwrap();
    ws.set_read_timeout(Some(TIMEOUT)).unwrap();
    let t = big(9, 1 << 20);
    ws.send_text(&t).unwrap();
    expect(&mut ws, Message::Text(t));
    assert_eq!(server.deflate_pool_stats().jobs, 1);
    // `stop` returns once `wait` has joined the workers and then the pool's threads.
    stop(&server);
    assert_eq!(
        server.deflate_pool_stats().threads,
        0,
        "no pool thread left"
    );
    // Without deflate (or with 0 threads) there is no pool at all.
    for builder in [
        Server::builder().threads(1),
        Server::builder()
            .threads(1)
            .deflate_threads(0)
            .deflate(DeflateOptions::default()),
    ] {
        let server = start_server(backend, builder, |_| Echo);
        assert_eq!(
            server.deflate_pool_stats(),
            wsx::DeflatePoolStats::default()
        );
        stop(&server);
    }
}

/// An engine client: on open sends a large message then a small one; reports what comes back.
struct BigClient(std::sync::mpsc::Sender<String>);

impl Handler for BigClient {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        let _ = conn.send_text(&big(11, 600_000));
        let _ = conn.send_text("small after");
    }

    fn on_message(&mut self, _conn: &mut Conn<'_, ()>, message: wsx::Message<'_>) {
        if let wsx::Message::Text(t) = message {
            let _ = self.0.send(t.to_owned());
        }
    }
}

test_all!(an_engine_client_masks_its_pooled_frames_and_both_pools_keep_order);
fn an_engine_client_masks_its_pooled_frames_and_both_pools_keep_order(backend: Backend) {
    let server = start_server(
        backend,
        Server::builder()
            .threads(1)
            .deflate(DeflateOptions::default()),
        |_| Echo,
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let engine = wsx::Client::builder()
        .threads(1)
        .pin_threads(false)
        .deflate_threads(1)
        .backend(backend)
        .start(move |_| BigClient(tx.clone()))
        .expect("client engine starts");
    backends::assert_runs_on(&engine, backend);
    let options = ClientOptions::new()
        .no_proxy()
        .deflate(DeflateOptions::default());
    engine
        .connect(&format!("ws://{}/", server.local_addr()), options, 1)
        .unwrap();
    // The server reads the client's masked, pooled frame (a bad mask or frame would close the
    // connection) and echoes it through its own pool, in order with the small message.
    let got = rx.recv_timeout(TIMEOUT).unwrap();
    assert!(
        got == big(11, 600_000),
        "got {} bytes {:?}",
        got.len(),
        &got[..got.len().min(24)]
    );
    assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), "small after");
    assert_eq!(
        engine.deflate_pool_stats().jobs,
        1,
        "the client's pool compressed"
    );
    let served = server.deflate_pool_stats();
    assert_eq!(served.jobs + served.queue_full, 1, "{served:?}");
    stop(&engine);
    stop(&server);
}

//! Broadcast and pub/sub on sockets: ordering, slow consumers under each policy, compressed
//! and plain subscribers of one topic, publishes from other threads and other workers,
//! unsubscribe on close, no allocation for a topic nobody wants, 10,000 subscribers.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{start_server, stop, wait_until, TIMEOUT};
use wsx::blocking::{self, Message as Got, WebSocket};
use wsx::broadcast::{TopicPolicy, SLOW_CONSUMER_CLOSE};
use wsx::client::ClientOptions;
use wsx::protocol::deflate::DeflateOptions;
use wsx::{Backend, Conn, Handler, Message, Server, ServerHandle, Upgrade};

/// Counts allocations made on the current thread (for the zero-subscriber publish).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: defers to `System`, only counting calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Commands, as text messages: `sub:T` subscribes (answers `ok:WORKER`), `unsub:T`,
/// `pub:T:P` publishes P to T, `others:T:P` publishes to the others, `key:T:K:P` publishes
/// with key K, `mix:T:I` sends `before-I`, publishes `pub-I`, sends `after-I`, `all:P`
/// broadcasts to every connection, `stats` answers `stats:DELIVERED:DROPPED:CONFLATED`.
/// A path `/sub/T` subscribes at open.
struct PubSub;

impl Handler for PubSub {
    type State = Option<String>;

    fn on_upgrade(&mut self, upgrade: &mut Upgrade<'_>) -> Result<Option<String>, wsx::Reject> {
        Ok(upgrade.path().strip_prefix("/sub/").map(str::to_owned))
    }

    fn on_open(&mut self, conn: &mut Conn<'_, Option<String>>) {
        if let Some(topic) = conn.state().clone() {
            conn.subscribe(&topic);
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_, Option<String>>, message: Message<'_>) {
        let Message::Text(text) = message else {
            return;
        };
        let mut parts = text.splitn(2, ':');
        let (verb, rest) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let (topic, arg) = rest.split_once(':').unwrap_or((rest, ""));
        match verb {
            "sub" => {
                conn.subscribe(topic);
                let worker = conn.id().worker();
                let _ = conn.send_text(&format!("ok:{worker}"));
            }
            "unsub" => {
                let was = conn.unsubscribe(topic);
                let _ = conn.send_text(&format!("unsub:{was}"));
            }
            "pub" => conn.publish(topic, Message::Text(arg)),
            "others" => conn.publish_to_others(topic, Message::Text(arg)),
            "key" => {
                let (key, payload) = arg.split_once(':').unwrap_or((arg, ""));
                conn.publish_keyed(topic, key, Message::Text(payload));
            }
            "mix" => {
                let _ = conn.send_text(&format!("before-{arg}"));
                conn.publish(topic, Message::Text(&format!("pub-{arg}")));
                let _ = conn.send_text(&format!("after-{arg}"));
            }
            "all" => conn.broadcast(Message::Text(rest)),
            "stats" => {
                let s = conn.subscriber_stats();
                let _ = conn.send_text(&format!(
                    "stats:{}:{}:{}",
                    s.delivered, s.dropped, s.conflated
                ));
            }
            _ => {}
        }
    }
}

fn connect(server: &ServerHandle, path: &str) -> WebSocket {
    connect_with(server, path, &ClientOptions::default())
}

fn connect_with(server: &ServerHandle, path: &str, options: &ClientOptions) -> WebSocket {
    let ws = blocking::connect_with(&format!("ws://{}{path}", server.local_addr()), options)
        .expect("connects");
    ws.set_read_timeout(Some(TIMEOUT)).unwrap();
    ws
}

fn text(ws: &mut WebSocket) -> String {
    loop {
        match ws.recv().expect("a message within the timeout") {
            Got::Text(t) => return t,
            Got::Ping(_) | Got::Pong(_) => {}
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// Subscribes `ws` to `topic` and returns the worker it is on.
fn subscribe(ws: &mut WebSocket, topic: &str) -> usize {
    ws.send_text(&format!("sub:{topic}")).unwrap();
    let reply = text(ws);
    reply
        .strip_prefix("ok:")
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("subscribe answered {reply:?}"))
}

/// Connections subscribed to `topic` until both workers of a 2-worker server have some (the
/// kernel spreads connections over the workers' listeners by hash).
fn subscribers_on_both_workers(
    server: &ServerHandle,
    topic: &str,
    at_least: usize,
) -> Vec<(usize, WebSocket)> {
    let mut subs = Vec::new();
    for _ in 0..64 {
        let mut ws = connect(server, "/");
        let worker = subscribe(&mut ws, topic);
        subs.push((worker, ws));
        let on = |w| subs.iter().filter(|(x, _)| *x == w).count();
        if subs.len() >= at_least && on(0) > 0 && on(1) > 0 {
            break;
        }
    }
    assert!(
        subs.iter().any(|(w, _)| *w == 0) && subs.iter().any(|(w, _)| *w == 1),
        "64 connections all landed on one worker"
    );
    subs
}

test_all!(every_subscriber_gets_every_message_in_order_from_handlers_and_threads);
fn every_subscriber_gets_every_message_in_order_from_handlers_and_threads(backend: Backend) {
    let server = start_server(backend, Server::builder().threads(2), |_| PubSub);
    let mut subs = subscribers_on_both_workers(&server, "t", 8);
    let mut publisher = connect(&server, "/");
    // Publishes from a foreign thread and from a handler, at the same time.
    let handle = server.clone();
    let thread = std::thread::spawn(move || {
        for i in 0..200 {
            handle
                .publish("t", Message::Text(&format!("H{i}")))
                .unwrap();
        }
    });
    for i in 0..200 {
        publisher.send_text(&format!("pub:t:C{i}")).unwrap();
    }
    thread.join().unwrap();
    for (worker, ws) in &mut subs {
        let (mut h, mut c) = (0, 0);
        while h < 200 || c < 200 {
            let t = text(ws);
            if let Some(n) = t.strip_prefix('H') {
                assert_eq!(
                    n.parse::<usize>().unwrap(),
                    h,
                    "worker {worker}: thread order"
                );
                h += 1;
            } else if let Some(n) = t.strip_prefix('C') {
                assert_eq!(
                    n.parse::<usize>().unwrap(),
                    c,
                    "worker {worker}: handler order"
                );
                c += 1;
            } else {
                panic!("unexpected {t:?}");
            }
        }
    }
    let n = subs.len() as u64;
    let stats = topic_stats_when(&server, "t", |s| s.delivered == 400 * n);
    assert_eq!(stats.subscribers, n);
    assert_eq!(stats.published, 400);
    assert_eq!(stats.dropped + stats.conflated + stats.closed, 0);
    stop(&server);
}

test_all!(a_send_and_a_publish_from_one_callback_arrive_in_call_order);
fn a_send_and_a_publish_from_one_callback_arrive_in_call_order(backend: Backend) {
    let server = start_server(backend, Server::builder().threads(1), |_| PubSub);
    let mut me = connect(&server, "/");
    subscribe(&mut me, "t");
    let mut other = connect(&server, "/");
    subscribe(&mut other, "t");
    let big = "x".repeat(5000); // large frames are chained, not copied: order still holds
    for i in 0..50 {
        let arg = if i % 2 == 0 {
            i.to_string()
        } else {
            format!("{i}{big}")
        };
        me.send_text(&format!("mix:t:{arg}")).unwrap();
        assert_eq!(text(&mut me), format!("before-{arg}"));
        assert_eq!(text(&mut me), format!("pub-{arg}"));
        assert_eq!(text(&mut me), format!("after-{arg}"));
        assert_eq!(text(&mut other), format!("pub-{arg}"));
    }
    // Excluding the sender.
    me.send_text("others:t:not-you").unwrap();
    assert_eq!(text(&mut other), "not-you");
    me.send_text("stats").unwrap();
    assert_eq!(
        text(&mut me),
        "stats:50:0:0",
        "the sender did not get its own"
    );
    stop(&server);
}

test_all!(broadcast_reaches_every_connection_on_every_worker);
fn broadcast_reaches_every_connection_on_every_worker(backend: Backend) {
    let server = start_server(backend, Server::builder().threads(2), |_| PubSub);
    let mut all = subscribers_on_both_workers(&server, "unused", 4);
    let mut sender = connect(&server, "/");
    sender.send_text("all:hello").unwrap();
    assert_eq!(text(&mut sender), "hello", "the sender included");
    for (_, ws) in &mut all {
        assert_eq!(text(ws), "hello");
    }
    server.broadcast(Message::Text("from the handle")).unwrap();
    assert_eq!(text(&mut sender), "from the handle");
    for (_, ws) in &mut all {
        assert_eq!(text(ws), "from the handle");
    }
    stop(&server);
}

/// Publishes `n` messages of `size` bytes (`"<seq>:"` then padding) to `topic` from the
/// handle, in rounds that `fast` reads before the next (so that only a subscriber that does not
/// read at all falls behind), checking that `fast` gets every one in order.
fn flood(
    server: &ServerHandle,
    topic: &str,
    fast: &mut WebSocket,
    n: usize,
    size: usize,
    key: impl Fn(usize) -> Option<String>,
) {
    const ROUND: usize = 32;
    for round in (0..n).step_by(ROUND) {
        let end = (round + ROUND).min(n);
        for i in round..end {
            let mut payload = format!("{i}:");
            payload.push_str(&"p".repeat(size.saturating_sub(payload.len())));
            let k = key(i);
            let options = wsx::broadcast::PublishOptions {
                key: k.as_deref(),
                ..Default::default()
            };
            server
                .publish_with(topic, Message::Text(&payload), &options)
                .unwrap();
        }
        for i in round..end {
            assert_eq!(
                seq(&text(fast)),
                i,
                "the fast subscriber gets everything, in order"
            );
        }
    }
}

/// Waits until the topic's counters satisfy `cond` (they are added after each batch's writes,
/// so a reader can see its message a moment before the count).
fn topic_stats_when(
    server: &ServerHandle,
    topic: &str,
    cond: impl Fn(&wsx::broadcast::TopicStats) -> bool,
) -> wsx::broadcast::TopicStats {
    let mut last = None;
    let ok = wait_until(TIMEOUT, || {
        last = server.topic_stats(topic);
        last.as_ref().is_some_and(&cond)
    });
    assert!(ok, "topic counters never matched: {last:?}");
    last.unwrap()
}

fn seq(t: &str) -> usize {
    t.split(':').next().unwrap().parse().unwrap()
}

const N: usize = 3000;
const SIZE: usize = 4096;

test_all!(a_stalled_subscriber_does_not_slow_the_others_and_loses_exactly_what_is_counted);
fn a_stalled_subscriber_does_not_slow_the_others_and_loses_exactly_what_is_counted(
    backend: Backend,
) {
    let server = start_server(
        backend,
        Server::builder()
            .threads(1)
            .topic_policy(TopicPolicy::drop_at(64 << 10)),
        |_| PubSub,
    );
    let mut stalled = connect(&server, "/sub/t");
    let mut fast = connect(&server, "/sub/t");
    assert!(wait_until(TIMEOUT, || server.subscribers("t") == 2));
    flood(&server, "t", &mut fast, N, SIZE, |_| None);
    let stats = topic_stats_when(&server, "t", |s| s.delivered + s.dropped == 2 * N as u64);
    assert!(
        stats.dropped > 0,
        "{stats:?}: 12 MiB to a non-reader over a 64 KiB limit"
    );
    let owed = N as u64 - stats.dropped;
    let mut last = None;
    for _ in 0..owed {
        let s = seq(&text(&mut stalled));
        assert!(last.map_or(true, |l| s > l), "in order, gaps only");
        last = Some(s);
    }
    stalled.send_text("stats").unwrap();
    assert_eq!(
        text(&mut stalled),
        format!("stats:{owed}:{}:0", stats.dropped)
    );
    assert_eq!(server.stats().delivery_dropped, stats.dropped);
    stop(&server);
}

test_all!(a_conflated_subscriber_ends_with_the_newest_value_of_every_key);
fn a_conflated_subscriber_ends_with_the_newest_value_of_every_key(backend: Backend) {
    const KEYS: usize = 10;
    let server = start_server(
        backend,
        Server::builder()
            .threads(1)
            .topic_policy_for("ticks.", TopicPolicy::conflate_at(64 << 10)),
        |_| PubSub,
    );
    let mut stalled = connect(&server, "/sub/ticks.all");
    let mut fast = connect(&server, "/sub/ticks.all");
    assert!(wait_until(TIMEOUT, || server.subscribers("ticks.all") == 2));
    flood(&server, "ticks.all", &mut fast, N, SIZE, |i| {
        Some(format!("K{}", i % KEYS))
    });
    // The stalled subscriber reads until it has the last value of every key.
    let mut newest: HashMap<usize, usize> = HashMap::new();
    let mut got = 0u64;
    while (0..KEYS).any(|k| newest.get(&k) != Some(&(N - KEYS + k))) {
        let s = seq(&text(&mut stalled));
        got += 1;
        if let Some(prev) = newest.insert(s % KEYS, s) {
            assert!(s > prev, "per key, newer only");
        }
    }
    let stats = topic_stats_when(&server, "ticks.all", |s| s.delivered == N as u64 + got);
    assert!(stats.conflated > 0, "{stats:?}");
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.delivered, N as u64 + got, "{stats:?}");
    assert_eq!(
        got + stats.conflated,
        N as u64,
        "each message delivered or replaced"
    );
    stalled.send_text("stats").unwrap();
    assert_eq!(
        text(&mut stalled),
        format!("stats:{got}:0:{}", stats.conflated)
    );
    stop(&server);
}

test_all!(a_slow_subscriber_under_the_close_policy_is_closed_with_1008);
fn a_slow_subscriber_under_the_close_policy_is_closed_with_1008(backend: Backend) {
    let server = start_server(
        backend,
        Server::builder()
            .threads(1)
            .topic_policy(TopicPolicy::close_at(64 << 10)),
        |_| PubSub,
    );
    let mut stalled = connect(&server, "/sub/t");
    let mut fast = connect(&server, "/sub/t");
    assert!(wait_until(TIMEOUT, || server.subscribers("t") == 2));
    flood(&server, "t", &mut fast, N, SIZE, |_| None);
    let close = loop {
        match stalled.recv().expect("messages, then the close") {
            Got::Text(_) => {}
            Got::Close(code, reason) => break (code, reason),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(close, (SLOW_CONSUMER_CLOSE, "slow consumer".to_owned()));
    topic_stats_when(&server, "t", |s| s.closed == 1);
    assert!(
        wait_until(TIMEOUT, || server.subscribers("t") == 1),
        "unsubscribed on close"
    );
    assert_eq!(server.stats().slow_closed, 1);
    stop(&server);
}

fn json(i: usize) -> String {
    format!("{{\"symbol\":\"AAPL\",\"seq\":{i},\"bid\":187.25,\"ask\":187.27,\"size\":300}}")
        .repeat(60)
}

test_all!(compressed_and_plain_subscribers_of_one_topic_each_get_valid_frames);
fn compressed_and_plain_subscribers_of_one_topic_each_get_valid_frames(backend: Backend) {
    let server = start_server(
        backend,
        Server::builder()
            .threads(1)
            .deflate(DeflateOptions::default()),
        |_| PubSub,
    );
    let deflate = ClientOptions::default().deflate(DeflateOptions::default());
    let mut plain = connect(&server, "/sub/t");
    let mut compressed = connect_with(&server, "/sub/t", &deflate);
    assert!(wait_until(TIMEOUT, || server.subscribers("t") == 2));
    let before = server.stats().bytes_out;
    for i in 0..20 {
        server.publish("t", Message::Text(&json(i))).unwrap();
    }
    for i in 0..20 {
        assert_eq!(text(&mut plain), json(i));
        assert_eq!(text(&mut compressed), json(i), "inflates to the message");
    }
    let raw: usize = (0..20).map(|i| json(i).len()).sum();
    assert!(wait_until(TIMEOUT, || server.stats().bytes_out - before > raw as u64));
    let sent = server.stats().bytes_out - before;
    assert!(
        sent < raw as u64 + raw as u64 / 4,
        "the compressed subscriber got compressed frames: {sent} bytes for 2 × {raw}"
    );
    let stats = topic_stats_when(&server, "t", |s| s.delivered == 40);
    assert_eq!(
        stats.compressed_per_subscriber, 0,
        "compressed once, shared"
    );
    // A large publish from the handle is compressed on the publishing thread, once.
    let big = json(7).repeat(60); // ~280 KiB, over the deflate pool's threshold
    let before = server.stats().bytes_out;
    server.publish("t", Message::Text(&big)).unwrap();
    assert_eq!(text(&mut plain), big);
    assert_eq!(text(&mut compressed), big);
    assert!(wait_until(TIMEOUT, || server.stats().bytes_out - before
        > big.len() as u64));
    let sent = server.stats().bytes_out - before;
    assert!(
        sent < big.len() as u64 + big.len() as u64 / 4,
        "{sent} for 2 × {}",
        big.len()
    );
    stop(&server);
}

test_all!(subscribers_that_keep_a_context_get_a_compression_each_and_it_is_counted);
fn subscribers_that_keep_a_context_get_a_compression_each_and_it_is_counted(backend: Backend) {
    let options = DeflateOptions {
        server_no_context_takeover: false,
        ..DeflateOptions::default()
    };
    let server = start_server(
        backend,
        Server::builder().threads(1).deflate(options),
        |_| PubSub,
    );
    let client = ClientOptions::default().deflate(DeflateOptions {
        server_no_context_takeover: false,
        ..DeflateOptions::default()
    });
    let mut a = connect_with(&server, "/sub/t", &client);
    let mut b = connect_with(&server, "/sub/t", &client);
    assert!(wait_until(TIMEOUT, || server.subscribers("t") == 2));
    for i in 0..5 {
        server.publish("t", Message::Text(&json(i))).unwrap();
    }
    for i in 0..5 {
        assert_eq!(text(&mut a), json(i));
        assert_eq!(text(&mut b), json(i));
    }
    topic_stats_when(&server, "t", |s| s.compressed_per_subscriber == 10);
    assert_eq!(server.stats().compressed_per_subscriber, 10);
    stop(&server);
}

test_all!(subscriptions_end_with_the_connection_and_topics_are_forgotten);
fn subscriptions_end_with_the_connection_and_topics_are_forgotten(backend: Backend) {
    let server = start_server(backend, Server::builder().threads(2), |_| PubSub);
    let mut subs = subscribers_on_both_workers(&server, "t", 4);
    subs[0].1.send_text("unsub:t").unwrap();
    assert_eq!(text(&mut subs[0].1), "unsub:true");
    assert_eq!(server.subscribers("t"), subs.len() as u64 - 1);
    for (_, ws) in &mut subs {
        ws.close(wsx::CloseCode::NORMAL, "").unwrap();
    }
    drop(subs);
    assert!(wait_until(TIMEOUT, || server.topic_stats("t").is_none()));
    assert!(wait_until(TIMEOUT, || server.footprint().topics == 0));
    stop(&server);
}

test_all!(a_publish_to_a_topic_nobody_wants_allocates_nothing);
fn a_publish_to_a_topic_nobody_wants_allocates_nothing(backend: Backend) {
    let server = start_server(backend, Server::builder().threads(1), |_| PubSub);
    let mut ws = connect(&server, "/sub/wanted");
    assert!(wait_until(TIMEOUT, || server.subscribers("wanted") == 1));
    let payload = "x".repeat(1000);
    server.publish("nobody", Message::Text(&payload)).unwrap(); // warm up
    let before = ALLOCATIONS.with(Cell::get);
    for _ in 0..100 {
        server.publish("nobody", Message::Text(&payload)).unwrap();
    }
    assert_eq!(ALLOCATIONS.with(Cell::get) - before, 0);
    server.publish("wanted", Message::Text("yes")).unwrap();
    assert_eq!(text(&mut ws), "yes");
    stop(&server);
}

/// Counts what an engine client's connections receive.
struct Count(Arc<AtomicU64>);

impl Handler for Count {
    type State = ();
    fn on_message(&mut self, _conn: &mut Conn<'_, ()>, _message: Message<'_>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

const WIDE_SUBS: u64 = 10_000;
const WIDE_MESSAGES: u64 = 20;

/// Raises the soft descriptor limit to the hard one and returns it (both ends of this test
/// hold 10,000 descriptors; a caller's `ulimit -n` may have lowered the soft limit).
#[allow(unsafe_code)]
fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a pointer to a valid local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

/// The subscribers' side of [`ten_thousand_subscribers_each_get_every_message`], run in a
/// child process (one process cannot hold both ends of 10,000 connections within a 20,000
/// descriptor limit): opens the connections on one engine-client worker and exits once every
/// one has received every message.
#[test]
#[ignore = "run by ten_thousand_subscribers_each_get_every_message in a child process"]
fn wide_subscribers_child() {
    let url = std::env::var("WSX_WIDE_URL").expect("WSX_WIDE_URL");
    let limit = raise_fd_limit();
    assert!(
        limit >= WIDE_SUBS + 256,
        "the subscribers' process needs {} descriptors, the hard limit allows {limit}",
        WIDE_SUBS + 256
    );
    let got = Arc::new(AtomicU64::new(0));
    let g = got.clone();
    // The parent passes its backend in `WSX_BACKEND`, which the engine reads.
    let clients = wsx::Client::builder()
        .threads(1)
        .pin_threads(false)
        .idle_timeout(None)
        .start(move |_| Count(g.clone()))
        .unwrap();
    if let Some(backend) = backends::from_env() {
        backends::assert_runs_on(&clients, backend);
    }
    for i in 0..WIDE_SUBS {
        clients.connect(&url, ClientOptions::default(), i).unwrap();
    }
    let all = WIDE_SUBS * WIDE_MESSAGES;
    assert!(
        wait_until(Duration::from_secs(120), || got.load(Ordering::Relaxed)
            >= all),
        "{} of {all} received",
        got.load(Ordering::Relaxed)
    );
    assert_eq!(got.load(Ordering::Relaxed), all, "no message twice");
    println!("WIDE-OK {}", got.load(Ordering::Relaxed));
}

test_all!(ten_thousand_subscribers_each_get_every_message);
fn ten_thousand_subscribers_each_get_every_message(backend: Backend) {
    // One twin at a time: each holds 10,000 descriptors in this process, and both at once would
    // pass a hard limit of 20,000.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let limit = raise_fd_limit();
    assert!(
        limit >= WIDE_SUBS + 1024,
        "the server side needs {} descriptors, the hard limit allows {limit}",
        WIDE_SUBS + 1024
    );
    let server = start_server(
        backend,
        Server::builder().threads(2).idle_timeout(None),
        |_| PubSub,
    );
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "wide_subscribers_child",
            "--ignored",
            "--nocapture",
        ])
        .env(
            "WSX_WIDE_URL",
            format!("ws://{}/sub/wide", server.local_addr()),
        )
        .env("WSX_BACKEND", backend.name())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let subscribed = wait_until(Duration::from_secs(120), || {
        server.subscribers("wide") == WIDE_SUBS || matches!(child.try_wait(), Ok(Some(_)))
    });
    assert!(
        subscribed && server.subscribers("wide") == WIDE_SUBS,
        "{} of {WIDE_SUBS} subscribed",
        server.subscribers("wide")
    );
    // The footprint is published once per timer tick: wait for the one after the subscribes.
    assert!(wait_until(TIMEOUT, || server.footprint().topic_heap >= 4 * WIDE_SUBS));
    let f = server.footprint();
    assert!(
        f.topic_heap <= 16 * WIDE_SUBS,
        "the topic index holds {} B for {WIDE_SUBS} subscriptions",
        f.topic_heap
    );
    eprintln!(
        "{WIDE_SUBS} subscribers: topic index {} B ({:.1} B per subscription)",
        f.topic_heap,
        f.topic_heap as f64 / WIDE_SUBS as f64
    );
    for i in 0..WIDE_MESSAGES {
        server
            .publish("wide", Message::Text(&format!("tick {i}")))
            .unwrap();
    }
    let mut status = None;
    wait_until(Duration::from_secs(120), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the subscribers' process did not finish");
    };
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(
        status.success() && out.contains("WIDE-OK"),
        "child: {status}\n{out}"
    );
    let stats = topic_stats_when(&server, "wide", |s| {
        s.delivered == WIDE_SUBS * WIDE_MESSAGES
    });
    assert_eq!(stats.dropped, 0);
    stop(&server);
}

/// Blocks its worker in `on_message` until the test lets it go.
struct Stuck {
    entered: std::sync::mpsc::SyncSender<()>,
    release: Arc<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>,
}

impl Handler for Stuck {
    type State = ();
    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        conn.subscribe("t");
    }
    fn on_message(&mut self, _conn: &mut Conn<'_, ()>, _message: Message<'_>) {
        let _ = self.entered.send(());
        let _ = self
            .release
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .recv_timeout(TIMEOUT);
    }
}

test_all!(a_publisher_faster_than_a_worker_is_refused_past_the_backlog_not_buffered);
fn a_publisher_faster_than_a_worker_is_refused_past_the_backlog_not_buffered(backend: Backend) {
    let (entered_tx, entered) = std::sync::mpsc::sync_channel(1);
    let (release_tx, release_rx) = std::sync::mpsc::channel();
    let release = Arc::new(std::sync::Mutex::new(release_rx));
    let server = start_server(
        backend,
        Server::builder().threads(1).publish_backlog(3),
        move |_| Stuck {
            entered: entered_tx.clone(),
            release: release.clone(),
        },
    );
    let mut ws = connect(&server, "/");
    assert!(wait_until(TIMEOUT, || server.subscribers("t") == 1));
    ws.send_text("block").unwrap();
    entered
        .recv_timeout(TIMEOUT)
        .expect("the worker is in its callback");
    // The worker takes nothing from its inbox now: three publishes fit, the fourth does not.
    for i in 0..3 {
        server
            .publish("t", Message::Text(&format!("m{i}")))
            .unwrap();
    }
    assert_eq!(
        server.publish("t", Message::Text("m3")),
        Err(wsx::HandleError::Backlogged)
    );
    assert_eq!(server.stats().publish_backlogged, 1);
    release_tx.send(()).unwrap();
    for i in 0..3 {
        assert_eq!(text(&mut ws), format!("m{i}"));
    }
    server.publish("t", Message::Text("after")).unwrap();
    assert_eq!(text(&mut ws), "after");
    stop(&server);
}

//! Last value per topic and key (`Builder::last_value_for`) on sockets: a new subscriber gets
//! the newest value of every key at once, oldest first, on either worker, from publishes made
//! by handlers and by threads; subscribers that join during a flood get each key in order,
//! never a value twice, never an older one after a newer, none missed after the first, and
//! end with the newest; the limits and `forget_last_value`.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;

use std::collections::HashMap;

use common::{start_server, stop, wait_until, TIMEOUT};
use wsx::blocking::{self, Message as Got, WebSocket};
use wsx::broadcast::{LastValue, PublishOptions};
use wsx::{Backend, Conn, Handler, Message, Server, ServerHandle};

/// Text commands: `sub:T` subscribes and answers `ok:WORKER` (behind the values the
/// subscription sent), `key:T:K:P` publishes P to T with key K, `pub:T:P` without a key.
struct Feed;

impl Handler for Feed {
    type State = ();

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        let Message::Text(text) = message else {
            return;
        };
        let mut parts = text.splitn(3, ':');
        let (verb, topic, arg) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        match verb {
            "sub" => {
                conn.subscribe(topic);
                let worker = conn.id().worker();
                let _ = conn.send_text(&format!("ok:{worker}"));
            }
            "key" => {
                let (key, payload) = arg.split_once(':').unwrap_or((arg, ""));
                conn.publish_keyed(topic, key, Message::Text(payload));
            }
            "pub" => conn.publish(topic, Message::Text(arg)),
            _ => {}
        }
    }
}

fn connect(server: &ServerHandle) -> WebSocket {
    let ws = blocking::connect(&format!("ws://{}/", server.local_addr())).expect("connects");
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

/// Subscribes `ws` to `topic`: the values it got on subscribing, and its worker.
fn subscribe(ws: &mut WebSocket, topic: &str) -> (Vec<String>, usize) {
    ws.send_text(&format!("sub:{topic}")).unwrap();
    let mut values = Vec::new();
    loop {
        let t = text(ws);
        match t.strip_prefix("ok:") {
            Some(w) => return (values, w.parse().unwrap()),
            None => values.push(t),
        }
    }
}

fn keyed(server: &ServerHandle, topic: &str, key: &str, text: &str) {
    let options = PublishOptions {
        key: Some(key),
        ..PublishOptions::default()
    };
    server
        .publish_with(topic, Message::Text(text), &options)
        .expect("published");
}

test_all!(a_new_subscriber_gets_the_newest_value_of_every_key_at_once_on_either_worker);
fn a_new_subscriber_gets_the_newest_value_of_every_key_at_once_on_either_worker(backend: Backend) {
    let server = start_server(
        backend,
        Server::builder()
            .threads(2)
            .last_value_for("ticks", LastValue::new()),
        |_| Feed,
    );
    // Nobody subscribes yet: the values are kept all the same.
    keyed(&server, "ticks", "A", "A=1");
    keyed(&server, "ticks", "B", "B=1");
    keyed(&server, "ticks", "A", "A=2");
    let mut publisher = connect(&server);
    publisher.send_text("key:ticks:C:C=1").unwrap(); // from a handler
    assert!(wait_until(TIMEOUT, || server.last_value_stats().values == 3));
    server
        .publish("ticks", Message::Text("status=open"))
        .unwrap(); // no key
    server.publish("chat", Message::Text("not kept")).unwrap();
    assert!(wait_until(TIMEOUT, || server.last_value_stats().values == 4));
    let expected = ["B=1", "A=2", "C=1", "status=open"];
    // Subscribers on both workers (the kernel spreads connections by hash).
    let mut subs = Vec::new();
    let mut workers = [false; 2];
    for _ in 0..64 {
        let mut ws = connect(&server);
        let (values, worker) = subscribe(&mut ws, "ticks");
        assert_eq!(
            values, expected,
            "worker {worker}: newest per key, oldest first"
        );
        let (chat, _) = subscribe(&mut ws, "chat");
        assert!(chat.is_empty(), "a topic without the rule keeps nothing");
        workers[worker] = true;
        subs.push(ws);
        if workers == [true, true] {
            break;
        }
    }
    assert_eq!(
        workers,
        [true, true],
        "64 connections all landed on one worker"
    );
    // Then what is published after, once.
    keyed(&server, "ticks", "B", "B=2");
    for ws in &mut subs {
        assert_eq!(text(ws), "B=2");
    }
    // Subscribing again is a no-op: nothing is sent twice.
    let (again, _) = subscribe(&mut subs[0], "ticks");
    assert!(again.is_empty(), "{again:?}");
    let stats = server.last_value_stats();
    assert_eq!((stats.topics, stats.values), (1, 4), "{stats:?}");
    assert_eq!(stats.recorded, 6);
    assert_eq!(stats.refused, 0);
    assert_eq!(stats.sent_on_subscribe, 4 * subs.len() as u64);
    stop(&server);
}

test_all!(subscribers_joining_during_a_flood_get_each_key_in_order_once_and_end_with_the_newest);
fn subscribers_joining_during_a_flood_get_each_key_in_order_once_and_end_with_the_newest(
    backend: Backend,
) {
    const KEYS: usize = 10;
    const ROUNDS: usize = 2_000;
    const SUBSCRIBERS: usize = 16;
    let server = start_server(
        backend,
        Server::builder()
            .threads(2)
            .last_value_for("ticks", LastValue::new()),
        |_| Feed,
    );
    // One publisher on a thread, one in a handler (on a topic key of its own), while
    // subscribers join on both workers.
    let handle = server.clone();
    let thread = std::thread::spawn(move || {
        for round in 1..=ROUNDS {
            for k in 0..KEYS {
                keyed(&handle, "ticks", &format!("K{k}"), &format!("K{k}={round}"));
            }
        }
    });
    let mut publisher = connect(&server);
    for round in 1..=ROUNDS / 10 {
        publisher
            .send_text(&format!("key:ticks:H:H={round}"))
            .unwrap();
    }
    let mut subs: Vec<WebSocket> = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let mut ws = connect(&server);
        ws.send_text("sub:ticks").unwrap();
        subs.push(ws);
    }
    thread.join().unwrap();
    // A last publish from each publisher: after it, each has seen everything of that one.
    keyed(&server, "ticks", "end", "end=1");
    publisher.send_text("key:ticks:hend:hend=1").unwrap();
    let mut last_of_all: HashMap<String, usize> = HashMap::new();
    for k in 0..KEYS {
        last_of_all.insert(format!("K{k}"), ROUNDS);
    }
    last_of_all.insert("H".into(), ROUNDS / 10);
    for (i, ws) in subs.iter_mut().enumerate() {
        let mut newest: HashMap<String, usize> = HashMap::new();
        let (mut end, mut hend) = (false, false);
        while !(end && hend) {
            let t = text(ws);
            if t.starts_with("ok:") {
                continue;
            }
            let (key, value) = t.split_once('=').unwrap();
            let value: usize = value.parse().unwrap();
            match key {
                "end" => end = true,
                "hend" => hend = true,
                _ => {
                    // The first value of a key is the newest when it subscribed (or the
                    // first ever); every publish after it follows, none missed.
                    if let Some(prev) = newest.insert(key.to_owned(), value) {
                        assert_eq!(
                            value,
                            prev + 1,
                            "subscriber {i}: {key} {prev} then {value}: twice, older after \
                             newer, or one missed"
                        );
                    }
                }
            }
        }
        assert_eq!(
            newest, last_of_all,
            "subscriber {i} ends with the newest of every key"
        );
    }
    let stats = server.last_value_stats();
    assert_eq!(stats.values, KEYS as u64 + 3, "{stats:?}");
    assert_eq!(
        stats.recorded,
        (KEYS * ROUNDS + ROUNDS / 10 + 2) as u64,
        "{stats:?}"
    );
    stop(&server);
}

test_all!(values_that_do_not_fit_are_not_kept_and_forgotten_ones_are_not_sent);
fn values_that_do_not_fit_are_not_kept_and_forgotten_ones_are_not_sent(backend: Backend) {
    let server = start_server(
        backend,
        Server::builder().threads(1).last_value_for(
            "ticks.",
            LastValue::new().max_topics(2).max_keys(2).max_bytes(64),
        ),
        |_| Feed,
    );
    keyed(&server, "ticks.a", "A", "A=1");
    keyed(&server, "ticks.a", "B", "B=1");
    keyed(&server, "ticks.a", "C", "C=1"); // a third key
    server.publish("ticks.b", Message::Text("b")).unwrap();
    server.publish("ticks.c", Message::Text("c")).unwrap(); // a third topic
    keyed(&server, "ticks.a", "B", &"B".repeat(100)); // over the bytes: B forgotten
    let stats = server.last_value_stats();
    assert_eq!(
        (stats.topics, stats.values, stats.refused),
        (2, 2, 3),
        "{stats:?}"
    );
    let mut ws = connect(&server);
    assert_eq!(subscribe(&mut ws, "ticks.a").0, ["A=1"]);
    assert_eq!(subscribe(&mut ws, "ticks.b").0, ["b"]);
    assert!(subscribe(&mut ws, "ticks.c").0.is_empty());
    assert!(server.forget_last_value("ticks.a", Some("A")));
    assert!(!server.forget_last_value("ticks.a", Some("A")));
    assert_eq!(server.forget_last_values("ticks.b"), 1);
    let mut late = connect(&server);
    assert!(subscribe(&mut late, "ticks.a").0.is_empty());
    assert!(subscribe(&mut late, "ticks.b").0.is_empty());
    // The places freed take new values.
    server.publish("ticks.c", Message::Text("c2")).unwrap();
    assert_eq!(text(&mut ws), "c2");
    let mut third = connect(&server);
    assert_eq!(subscribe(&mut third, "ticks.c").0, ["c2"]);
    let stats = server.last_value_stats();
    assert_eq!(
        (stats.topics, stats.values, stats.bytes),
        (1, 1, 2),
        "{stats:?}"
    );
    stop(&server);
}

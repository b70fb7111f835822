//! Pub/sub across wsx nodes over a real `nats-server` (feature `nats`): three nodes in this
//! process, subscribers spread over them, publishes from each; NATS killed and restarted under
//! them; a node that loses its last subscriber, or leaves, unsubscribes; hostile messages from
//! NATS refused and counted. Without `nats-server` (and no way to install it) the tests say so
//! and pass, except under `CI=true`, where they fail.
#![cfg(feature = "nats")]

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;
#[path = "support/nats.rs"]
mod nats;

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use common::{start_server, stop, wait_until};
use nats::{Nats, RawPublisher};
use wsx::blocking::{self, Message as Got, WebSocket};
use wsx::cluster::{BackplaneStats, NatsBackplane};
use wsx::{Backend, Conn, Handler, Message, Server, ServerHandle, Upgrade};

/// Bound on every wait of these tests (a reconnect included).
const WITHIN: Duration = Duration::from_secs(30);

/// A running `nats-server`, or `None` after saying why there is none (a failure under
/// `CI=true`).
fn nats_server() -> Option<Nats> {
    match nats::program() {
        Ok(program) => Some(Nats::start(program)),
        Err(why) => {
            assert!(!nats::in_ci(), "CI=true and nats-server cannot run: {why}");
            let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
            None
        }
    }
}

test_all!(a_token_authenticates_the_nodes);
/// Against a NATS server that asks for a token, nodes given it connect and share topics.
fn a_token_authenticates_the_nodes(backend: Backend) {
    let program = match nats::program() {
        Ok(p) => p,
        Err(why) => {
            assert!(!nats::in_ci(), "CI=true and nats-server cannot run: {why}");
            return;
        }
    };
    let nats = Nats::start_with(program, &["--auth", "s3cret"]);
    let prefix = format!("token{}", backend as u8);
    let with_token = |name: &str| {
        NatsBackplane::new([nats.url()])
            .prefix(&prefix)
            .node_name(name)
            .token("s3cret")
    };
    let a = node_with(backend, with_token("a"));
    let b = node_with(backend, with_token("b"));
    let mut on_b = subscriber(&b, "t");
    wait_nats_sub(&nats, "b", &format!("{prefix}.t"), true);
    a.publish("t", Message::Text("authenticated")).unwrap();
    assert_eq!(text(&mut on_b), "authenticated");
    stop(&a);
    stop(&b);
}

/// A path `/sub/T` subscribes at open; a text `pub:T:P` publishes P to T from the connection.
struct Node;

impl Handler for Node {
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
        if let Message::Text(text) = message {
            if let Some((topic, payload)) =
                text.strip_prefix("pub:").and_then(|r| r.split_once(':'))
            {
                conn.publish(topic, Message::Text(payload));
            }
        }
    }
}

/// A node named `name` on `nats` under subject prefix `prefix`, with two workers.
fn node(backend: Backend, nats: &Nats, prefix: &str, name: &str) -> ServerHandle {
    node_with(
        backend,
        NatsBackplane::new([nats.url()])
            .prefix(prefix)
            .node_name(name),
    )
}

fn node_with(backend: Backend, backplane: NatsBackplane) -> ServerHandle {
    let builder = Server::builder()
        .threads(2)
        .backplane(backplane.reconnect_delay_max(Duration::from_millis(50)));
    let server = start_server(backend, builder, |_| Node);
    assert!(
        wait_until(WITHIN, || stats(&server).connected),
        "the node connects to NATS"
    );
    server
}

fn stats(server: &ServerHandle) -> BackplaneStats {
    server.backplane_stats().expect("a node with a backplane")
}

/// A subscriber of `topic` on `server`, once the node counts it.
fn subscriber(server: &ServerHandle, topic: &str) -> WebSocket {
    let before = server.subscribers(topic);
    let ws = blocking::connect(&format!("ws://{}/sub/{topic}", server.local_addr()))
        .expect("client connects");
    ws.set_read_timeout(Some(WITHIN)).unwrap();
    assert!(
        wait_until(WITHIN, || server.subscribers(topic) > before),
        "subscribed"
    );
    ws
}

/// Waits until NATS has `subject` among the subscriptions of node `name` (`present`), or not.
fn wait_nats_sub(nats: &Nats, name: &str, subject: &str, present: bool) {
    let connection = format!("wsx/{name}");
    assert!(
        wait_until(WITHIN, || {
            let subs = nats.subscriptions_of(&connection).unwrap_or_default();
            subs.iter().any(|s| s == subject) == present
        }),
        "NATS sees {connection} {} {subject}: {:?}",
        if present {
            "subscribed to"
        } else {
            "unsubscribed from"
        },
        nats.subscriptions_of(&connection)
    );
}

fn text(ws: &mut WebSocket) -> String {
    match ws.recv().expect("a message within the bound") {
        Got::Text(t) => t,
        other => panic!("expected text, got {other:?}"),
    }
}

test_all!(every_subscriber_gets_every_message_once_in_order);
/// Three nodes, two subscribers on each: 200 publishes from each node, and a binary one; every
/// subscriber gets all 601, each exactly once, in order per publisher; the counters agree.
fn every_subscriber_gets_every_message_once_in_order(backend: Backend) {
    let Some(nats) = nats_server() else { return };
    let prefix = format!("order{}", backend as u8);
    let names = ["a", "b", "c"];
    let nodes: Vec<ServerHandle> = names
        .iter()
        .map(|n| node(backend, &nats, &prefix, n))
        .collect();
    let mut clients: Vec<(usize, WebSocket)> = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        for _ in 0..2 {
            clients.push((i, subscriber(n, "ticks")));
        }
    }
    // A subscriber of another topic gets none of it.
    let mut other = subscriber(&nodes[0], "other");
    for name in names {
        wait_nats_sub(&nats, name, &format!("{prefix}.ticks"), true);
    }
    const N: usize = 200;
    for i in 0..N {
        for (n, name) in nodes.iter().zip(names) {
            n.publish("ticks", Message::Text(&format!("{name}:{i}")))
                .unwrap();
        }
    }
    nodes[1]
        .publish("ticks", Message::Binary(&[0, 0xff, 7]))
        .unwrap();
    for n in &nodes {
        n.publish("ticks", Message::Text("end")).unwrap();
    }
    for (home, ws) in &mut clients {
        let mut next: HashMap<String, usize> = HashMap::new();
        let (mut binary, mut ends) = (0, 0);
        while ends < 3 {
            match ws.recv().expect("every message within the bound") {
                Got::Text(t) if t == "end" => ends += 1,
                Got::Text(t) => {
                    let (from, seq) = t.split_once(':').expect("name:seq");
                    let seq: usize = seq.parse().unwrap();
                    let expected = next.entry(from.to_owned()).or_insert(0);
                    assert_eq!(
                        seq, *expected,
                        "node {home}'s subscriber: in order, once, from {from}"
                    );
                    *expected += 1;
                }
                Got::Binary(b) => {
                    assert_eq!(b, [0, 0xff, 7], "binary stays binary");
                    binary += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        for name in names {
            assert_eq!(next.get(name).copied(), Some(N), "all of {name}'s");
        }
        assert_eq!(binary, 1);
    }
    // Every node sent each of its publishes to NATS once, and got the others' once each.
    for (i, n) in nodes.iter().enumerate() {
        let own = N as u64 + 1 + u64::from(i == 1);
        let s = stats(n);
        assert_eq!(s.published, own, "node {i}: {s:?}");
        let others = 3 * (N as u64 + 1) + 1 - own;
        assert!(
            wait_until(WITHIN, || stats(n).received == others),
            "node {i} received {others}: {:?}",
            stats(n)
        );
        let s = stats(n);
        assert_eq!(s.dropped_disconnected + s.dropped_backlog, 0, "{s:?}");
        assert_eq!(
            s.refused_invalid + s.refused_oversize + s.own_skipped,
            0,
            "{s:?}"
        );
        // Node 0 also has the subscriber of `other`.
        let topics = 1 + u64::from(i == 0);
        assert_eq!(
            s.subscriptions, topics,
            "node {i}: one subject per topic: {s:?}"
        );
    }
    // The first message `other` gets is one published to it after all of the above.
    nodes[2].publish("other", Message::Text("fence")).unwrap();
    assert_eq!(text(&mut other), "fence");
    for n in &nodes {
        stop(n);
    }
}

test_all!(nats_killed_and_restarted);
/// NATS dies under two nodes: local delivery goes on, cross-node publishes are dropped and
/// counted (not held back to be sent later), and once NATS is back the nodes reconnect,
/// subscribe again, and deliver across nodes.
fn nats_killed_and_restarted(backend: Backend) {
    let Some(mut nats) = nats_server() else {
        return;
    };
    let prefix = format!("restart{}", backend as u8);
    let a = node(backend, &nats, &prefix, "a");
    let b = node(backend, &nats, &prefix, "b");
    let mut on_a = subscriber(&a, "t");
    let mut on_b = subscriber(&b, "t");
    for name in ["a", "b"] {
        wait_nats_sub(&nats, name, &format!("{prefix}.t"), true);
    }
    a.publish("t", Message::Text("before")).unwrap();
    assert_eq!(text(&mut on_a), "before");
    assert_eq!(text(&mut on_b), "before");

    nats.kill();
    assert!(
        wait_until(WITHIN, || !stats(&a).connected && !stats(&b).connected),
        "both nodes see NATS gone"
    );
    const DOWN: u64 = 10;
    for i in 0..DOWN {
        a.publish("t", Message::Text(&format!("down-{i}"))).unwrap();
    }
    for i in 0..DOWN {
        assert_eq!(
            text(&mut on_a),
            format!("down-{i}"),
            "local delivery goes on"
        );
    }
    assert_eq!(stats(&a).dropped_disconnected, DOWN, "{:?}", stats(&a));

    nats.restart();
    assert!(
        wait_until(WITHIN, || {
            let (sa, sb) = (stats(&a), stats(&b));
            sa.connected && sb.connected && sa.reconnects >= 1 && sb.reconnects >= 1
        }),
        "both nodes reconnect: {:?} {:?}",
        stats(&a),
        stats(&b)
    );
    for name in ["a", "b"] {
        wait_nats_sub(&nats, name, &format!("{prefix}.t"), true);
    }
    a.publish("t", Message::Text("after-a")).unwrap();
    b.publish("t", Message::Text("after-b")).unwrap();
    // Order holds per publisher, not across them: a local and a remote one come in either
    // order. The next messages b's subscriber gets are the two after the restart: none of
    // the publishes made while NATS was down.
    for ws in [&mut on_a, &mut on_b] {
        let mut got = [text(ws), text(ws)];
        got.sort();
        assert_eq!(got, ["after-a", "after-b"], "across NATS again");
    }
    // `received` is counted once a message is handed to the workers, which may deliver it
    // first: wait for it.
    assert!(
        wait_until(WITHIN, || stats(&b).received == 2
            && stats(&a).received == 1),
        "b received before and after-a, a after-b: {:?} {:?}",
        stats(&a),
        stats(&b)
    );
    let (sa, sb) = (stats(&a), stats(&b));
    assert_eq!(sa.published, 2, "before and after-a: {sa:?}");
    assert_eq!(sb.published, 1, "{sb:?}");
    assert_eq!(sa.dropped_disconnected, DOWN, "{sa:?}");
    assert_eq!(
        sb.dropped_disconnected + sa.dropped_backlog + sb.dropped_backlog,
        0
    );
    stop(&a);
    stop(&b);
}

test_all!(a_node_unsubscribes_after_its_last_subscriber_and_when_it_leaves);
/// NATS sees a node subscribe with its first subscriber of a topic, unsubscribe after its
/// last, and the node's connection go when the node shuts down.
fn a_node_unsubscribes_after_its_last_subscriber_and_when_it_leaves(backend: Backend) {
    let Some(nats) = nats_server() else { return };
    let prefix = format!("leave{}", backend as u8);
    let a = node(backend, &nats, &prefix, "a");
    let subject = format!("{prefix}.room");
    assert!(
        wait_until(WITHIN, || nats.subscriptions_of("wsx/a")
            == Some(Vec::new())),
        "NATS knows the node, subscribed to nothing yet: {:?}",
        nats.subscriptions_of("wsx/a")
    );
    let mut first = subscriber(&a, "room");
    let mut second = subscriber(&a, "room");
    wait_nats_sub(&nats, "a", &subject, true);
    first.close(wsx::CloseCode::NORMAL, "").unwrap();
    assert!(wait_until(WITHIN, || a.subscribers("room") == 1));
    assert_eq!(
        nats.subscriptions_of("wsx/a"),
        Some(vec![subject.clone()]),
        "one subscriber left: still subscribed"
    );
    second.close(wsx::CloseCode::NORMAL, "").unwrap();
    wait_nats_sub(&nats, "a", &subject, false);
    assert!(wait_until(WITHIN, || stats(&a).subscriptions == 0));
    // Subscribed again, then the node leaves: its NATS connection goes with it.
    let _third = subscriber(&a, "room");
    wait_nats_sub(&nats, "a", &subject, true);
    stop(&a);
    assert!(
        wait_until(WITHIN, || nats.subscriptions_of("wsx/a").is_none()),
        "the node's NATS connection is closed"
    );
}

test_all!(hostile_messages_from_nats_are_refused_and_counted);
/// Whatever else publishes on NATS: a foreign message without headers arrives as binary; text
/// that is not UTF-8, an unknown kind, an over-long key, one over the max payload, or one
/// that claims to be the node's own never reach a subscriber, and each is counted.
fn hostile_messages_from_nats_are_refused_and_counted(backend: Backend) {
    let Some(nats) = nats_server() else { return };
    let prefix = format!("hostile{}", backend as u8);
    let a = node_with(
        backend,
        NatsBackplane::new([nats.url()])
            .prefix(&prefix)
            .node_name("a")
            .max_payload(64),
    );
    let mut ws = subscriber(&a, "t");
    let subject = format!("{prefix}.t");
    wait_nats_sub(&nats, "a", &subject, true);
    let mut raw = RawPublisher::connect(nats.port);
    let long_key = "k".repeat(300);
    raw.publish(
        &subject,
        &[("Wsx-Kind", "text"), ("Wsx-Origin", "x")],
        b"hello",
    );
    raw.publish(&subject, &[], b"{\"foreign\":1}");
    raw.publish(&subject, &[("Wsx-Kind", "text")], b"\xff\xfe not utf-8");
    raw.publish(&subject, &[("Wsx-Kind", "ping")], b"odd kind");
    raw.publish(&subject, &[("Wsx-Key", &long_key)], b"long key");
    raw.publish(&subject, &[("Wsx-Kind", "binary")], &[b'x'; 65]);
    raw.publish(
        &subject,
        &[("Wsx-Origin", "a"), ("Wsx-Kind", "text")],
        b"mine",
    );
    raw.publish(&subject, &[("Wsx-Kind", "text")], b"last");
    raw.flush();
    assert_eq!(text(&mut ws), "hello");
    match ws.recv().unwrap() {
        Got::Binary(b) => assert_eq!(b, b"{\"foreign\":1}"),
        other => panic!("expected binary, got {other:?}"),
    }
    assert_eq!(
        text(&mut ws),
        "last",
        "nothing refused reached the subscriber"
    );
    assert!(
        wait_until(WITHIN, || stats(&a).received == 3),
        "{:?}",
        stats(&a)
    );
    let s = stats(&a);
    assert_eq!(s.refused_invalid, 3, "{s:?}");
    assert_eq!(s.refused_oversize, 1, "{s:?}");
    assert_eq!(s.own_skipped, 1, "{s:?}");
    // A node's publish to a topic that is no NATS subject stays on the node.
    a.publish("no subject", Message::Text("x")).unwrap();
    assert_eq!(stats(&a).local_only, 1);
    stop(&a);
}

/// A backplane that cannot work fails `start`, with no NATS server needed to find out.
#[test]
fn a_bad_backplane_fails_start() {
    let start = |b: NatsBackplane| {
        Server::builder()
            .host("127.0.0.1")
            .port(0)
            .threads(1)
            .pin_threads(false)
            .backplane(b)
            .start(|_| Node)
    };
    let none: [&str; 0] = [];
    for (bad, why) in [
        (NatsBackplane::new(none), "no URL"),
        (
            NatsBackplane::new(["nats://127.0.0.1:1"]).prefix("a.*"),
            "wildcard prefix",
        ),
        (
            NatsBackplane::new(["nats://127.0.0.1:1"]).prefix(""),
            "empty prefix",
        ),
        (
            NatsBackplane::new(["nats://127.0.0.1:1"]).credentials_file("/nonexistent/x.creds"),
            "unreadable credentials",
        ),
    ] {
        let err = start(bad).expect_err(why);
        // The credentials file's own error (not found, here) comes through as it is.
        if why != "unreadable credentials" {
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{why}: {err}");
        } else {
            assert!(err.to_string().contains("x.creds"), "{err}");
        }
    }
}

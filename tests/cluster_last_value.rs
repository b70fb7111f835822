//! Last values across nodes through a JetStream bucket, against a real `nats-server -js`
//! (feature `nats`): a node that gets its first subscriber of a last-value topic reads the
//! newest value of every key that any node published, sends them to the subscriber right
//! after what it had itself (older local values replaced, none twice), and keeps them for
//! the next subscriber; a node that starts later (a restart) gets them too; live publishes
//! follow. A read that finds NATS down is tried again until it is back; a NATS server that
//! lost its store gets the bucket made again. Against a NATS server without JetStream, the
//! failure is reported and counted and live delivery goes on. Without `nats-server` the tests say so and pass, except under
//! `CI=true`, where they fail.
#![cfg(feature = "nats")]

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;
#[path = "support/nats.rs"]
mod nats;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use common::{start_server, stop, wait_until};
use nats::Nats;
use wsx::blocking::{self, Message as Got, WebSocket};
use wsx::broadcast::{LastValue, PublishOptions};
use wsx::cluster::{BackplaneStats, NatsBackplane};
use wsx::{Backend, Conn, Handler, Message, Server, ServerHandle, Upgrade};

/// Bound on every wait of these tests.
const WITHIN: Duration = Duration::from_secs(30);

/// A path `/sub/T` subscribes at open.
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
}

/// A running `nats-server` with `args`, or `None` after saying why there is none (a failure
/// under `CI=true`).
fn nats_server_with(args: &[&str]) -> Option<Nats> {
    match nats::program() {
        Ok(program) => Some(Nats::start_with(program, args)),
        Err(why) => {
            assert!(!nats::in_ci(), "CI=true and nats-server cannot run: {why}");
            let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
            None
        }
    }
}

/// A fresh JetStream store directory for one test.
fn store_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsx-js-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a store directory");
    dir
}

/// A node with two workers whose topic `ticks` keeps its last values in `bucket`.
fn node(backend: Backend, nats: &Nats, prefix: &str, name: &str, bucket: &str) -> ServerHandle {
    let backplane = NatsBackplane::new([nats.url()])
        .prefix(prefix)
        .node_name(name)
        .last_values_bucket(bucket)
        .reconnect_delay_max(Duration::from_millis(50));
    let builder = Server::builder()
        .threads(2)
        .last_value_for("ticks", LastValue::new())
        .backplane(backplane);
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

fn keyed(server: &ServerHandle, key: Option<&str>, text: &str) {
    let options = PublishOptions {
        key,
        ..PublishOptions::default()
    };
    server
        .publish_with("ticks", Message::Text(text), &options)
        .expect("published");
}

/// A subscriber of `ticks` on `server`, once the node counts it.
fn subscriber(server: &ServerHandle) -> WebSocket {
    let before = server.subscribers("ticks");
    let ws = blocking::connect(&format!("ws://{}/sub/ticks", server.local_addr()))
        .expect("client connects");
    ws.set_read_timeout(Some(WITHIN)).unwrap();
    assert!(
        wait_until(WITHIN, || server.subscribers("ticks") > before),
        "subscribed"
    );
    ws
}

fn texts(ws: &mut WebSocket, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| match ws.recv().expect("a message within the bound") {
            Got::Text(t) => t,
            other => panic!("expected text, got {other:?}"),
        })
        .collect()
}

/// A number from the NATS server's `/jsz` (JetStream's totals): `streams`, `messages`.
fn jsz(nats: &Nats, field: &str) -> u64 {
    let body: String = nats
        .monitor("/jsz")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let needle = format!("\"{field}\":");
    body.split_once(&needle)
        .and_then(|(_, rest)| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .unwrap_or_else(|| panic!("no {field} in /jsz: {body}"))
}

test_all!(a_node_that_subscribes_later_gets_every_nodes_newest_values_from_jetstream);
/// Node b publishes A=1 while nobody subscribes; node a then publishes A=2, B=1 and a value
/// without a key. b's first subscriber gets b's own A=1 at once, then the bucket's newer A=2
/// and the rest; a second subscriber on b gets the three newest at once; a node c started
/// afterwards gets them from the bucket; a live publish reaches all of them.
fn a_node_that_subscribes_later_gets_every_nodes_newest_values_from_jetstream(backend: Backend) {
    let dir = store_dir(&format!("later{}", backend as u8));
    let dir_arg = dir.to_string_lossy().into_owned();
    let Some(nats) = nats_server_with(&["-js", "-sd", &dir_arg]) else {
        return;
    };
    let prefix = format!("lv{}", backend as u8);
    let bucket = format!("last{}", backend as u8);
    let a = node(backend, &nats, &prefix, "a", &bucket);
    let b = node(backend, &nats, &prefix, "b", &bucket);
    assert!(
        wait_until(WITHIN, || stats(&a).bucket_ready && stats(&b).bucket_ready),
        "the nodes make the bucket: {:?}",
        a.backplane_error()
    );
    keyed(&b, Some("A"), "A=1");
    assert!(wait_until(WITHIN, || jsz(&nats, "messages") == 1));
    keyed(&a, Some("A"), "A=2");
    keyed(&a, Some("B"), "B=1");
    keyed(&a, None, "status=open");
    assert!(
        wait_until(WITHIN, || stats(&a).stored == 3
            && jsz(&nats, "messages") == 3),
        "one value per key in the bucket: {:?}",
        stats(&a)
    );
    assert_eq!(
        stats(&b).received,
        0,
        "b had no subscriber: it heard none of them"
    );

    let mut first = subscriber(&b);
    assert_eq!(
        texts(&mut first, 4),
        ["A=1", "A=2", "B=1", "status=open"],
        "its own value at once, then the bucket's, oldest first"
    );
    assert!(
        wait_until(WITHIN, || stats(&b).filled == 3),
        "{:?}",
        stats(&b)
    );
    let mut second = subscriber(&b);
    assert_eq!(texts(&mut second, 3), ["A=2", "B=1", "status=open"]);

    // A node that was not there (or restarted) gets them from the bucket.
    let c = node(backend, &nats, &prefix, "c", &bucket);
    assert_eq!(jsz(&nats, "streams"), 1, "one bucket for every node");
    let mut third = subscriber(&c);
    let mut got = texts(&mut third, 3);
    got.sort();
    assert_eq!(got, ["A=2", "B=1", "status=open"]);
    assert!(
        wait_until(WITHIN, || stats(&c).filled == 3),
        "{:?}",
        stats(&c)
    );

    // Live publishes follow, on every node, once.
    keyed(&a, Some("B"), "B=2");
    for ws in [&mut first, &mut second, &mut third] {
        assert_eq!(texts(ws, 1), ["B=2"]);
    }
    let lv = b.last_value_stats();
    assert_eq!(lv.values, 3, "{lv:?}");
    for n in [&a, &b, &c] {
        let s = stats(n);
        assert_eq!(s.fill_errors + s.fill_refused, 0, "{s:?}");
    }
    for n in [a, b, c] {
        stop(&n);
    }
    drop(nats);
    let _ = std::fs::remove_dir_all(dir);
}

test_all!(without_jetstream_the_failure_is_reported_and_live_delivery_goes_on);
/// A NATS server without JetStream: the bucket cannot be made, the node says why, counts each
/// failed read, and publishes still cross between the nodes.
fn without_jetstream_the_failure_is_reported_and_live_delivery_goes_on(backend: Backend) {
    let Some(nats) = nats_server_with(&[]) else {
        return;
    };
    let prefix = format!("nojs{}", backend as u8);
    let a = node(backend, &nats, &prefix, "a", "last");
    let b = node(backend, &nats, &prefix, "b", "last");
    let mut on_b = subscriber(&b);
    assert!(
        wait_until(WITHIN, || stats(&b).fill_errors > 0),
        "{:?}",
        stats(&b)
    );
    let error = b.backplane_error().unwrap_or_default();
    assert!(error.contains("JetStream"), "{error:?}");
    // Live delivery needs a's publish to reach b's subscription: retry until one does.
    let mut crossed = false;
    for i in 0..50 {
        keyed(&a, Some("A"), &format!("A={i}"));
        if wait_until(Duration::from_millis(200), || stats(&b).received > 0) {
            crossed = true;
            break;
        }
    }
    assert!(crossed, "a publish crosses: {:?}", stats(&b));
    let got = texts(&mut on_b, 1);
    assert!(got[0].starts_with("A="), "{got:?}");
    let s = stats(&a);
    assert_eq!(s.stored, 0, "nothing is stored without a bucket: {s:?}");
    assert!(s.not_stored > 0, "{s:?}");
    stop(&a);
    stop(&b);
}

test_all!(a_read_that_finds_nats_down_is_tried_again_until_it_is_back);
/// Values stored, then NATS killed: a node's first subscriber finds no bucket to read (counted
/// and retried); once NATS is back on its ports, with its JetStream store, the read goes
/// through and the subscriber gets the values.
fn a_read_that_finds_nats_down_is_tried_again_until_it_is_back(backend: Backend) {
    let dir = store_dir(&format!("down{}", backend as u8));
    let dir_arg = dir.to_string_lossy().into_owned();
    let Some(mut nats) = nats_server_with(&["-js", "-sd", &dir_arg]) else {
        return;
    };
    let prefix = format!("down{}", backend as u8);
    let bucket = format!("down{}", backend as u8);
    let a = node(backend, &nats, &prefix, "a", &bucket);
    let b = node(backend, &nats, &prefix, "b", &bucket);
    assert!(wait_until(WITHIN, || stats(&a).bucket_ready));
    keyed(&a, Some("A"), "A=1");
    keyed(&a, Some("B"), "B=1");
    assert!(wait_until(WITHIN, || jsz(&nats, "messages") == 2));
    nats.kill();
    assert!(wait_until(WITHIN, || !stats(&b).connected));
    let mut late = subscriber(&b);
    assert!(
        wait_until(WITHIN, || stats(&b).fill_errors > 0),
        "{:?}",
        stats(&b)
    );
    nats.restart();
    let mut got = texts(&mut late, 2);
    got.sort();
    assert_eq!(got, ["A=1", "B=1"]);
    assert!(
        wait_until(WITHIN, || stats(&b).filled == 2),
        "{:?}",
        stats(&b)
    );
    assert!(stats(&b).reconnects >= 1);
    stop(&a);
    stop(&b);
    drop(nats);
    let _ = std::fs::remove_dir_all(dir);
}

test_all!(a_nats_server_that_lost_its_store_gets_the_bucket_made_again);
/// NATS restarted with an empty JetStream store: the nodes make the bucket again once
/// reconnected, and values published after are stored and read as before.
fn a_nats_server_that_lost_its_store_gets_the_bucket_made_again(backend: Backend) {
    let dir = store_dir(&format!("lost{}", backend as u8));
    let dir_arg = dir.to_string_lossy().into_owned();
    let Some(mut nats) = nats_server_with(&["-js", "-sd", &dir_arg]) else {
        return;
    };
    let prefix = format!("lost{}", backend as u8);
    let bucket = format!("lost{}", backend as u8);
    let a = node(backend, &nats, &prefix, "a", &bucket);
    let b = node(backend, &nats, &prefix, "b", &bucket);
    assert!(wait_until(WITHIN, || stats(&a).bucket_ready));
    nats.kill();
    std::fs::remove_dir_all(&dir).expect("the store goes");
    std::fs::create_dir_all(&dir).expect("an empty store");
    nats.restart();
    assert!(
        wait_until(WITHIN, || jsz(&nats, "streams") == 1
            && stats(&a).bucket_ready),
        "the bucket is made again: {:?}",
        a.backplane_error()
    );
    assert!(wait_until(WITHIN, || stats(&a).connected && stats(&b).connected));
    keyed(&a, Some("C"), "C=1");
    assert!(
        wait_until(WITHIN, || jsz(&nats, "messages") == 1),
        "{:?}",
        stats(&a)
    );
    let mut late = subscriber(&b);
    assert_eq!(texts(&mut late, 1), ["C=1"]);
    stop(&a);
    stop(&b);
    drop(nats);
    let _ = std::fs::remove_dir_all(dir);
}

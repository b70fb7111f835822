//! What keeping last values costs a publisher (`cargo bench --bench publish`):
//! `ServerHandle::publish_with` of a 64-byte keyed tick to a topic nobody subscribes to, plain
//! (a directory lookup, nothing built) and under `Builder::last_value_for` (the frame built
//! once and kept: the store's lock, a hash lookup, an `Arc` swap), with one key and with 1,000
//! keys in turn. In one run, so they can be compared as ratios (docs/performance.md).

use std::hint::black_box;

use criterion::Criterion;
use wsx::broadcast::{LastValue, PublishOptions};
use wsx::{Handler, Message, Server};

struct Nobody;

impl Handler for Nobody {
    type State = ();
}

fn publish(c: &mut Criterion) {
    let server = Server::builder()
        .host("127.0.0.1")
        .port(0)
        .threads(1)
        .last_value_for("lv", LastValue::new().max_keys(1000))
        .start(|_| Nobody)
        .expect("server starts");
    let tick = "x".repeat(64);
    let keys: Vec<String> = (0..1000).map(|i| format!("S{i:04}")).collect();
    let mut g = c.benchmark_group("publish");
    let keyed = |key| PublishOptions {
        key: Some(key),
        ..PublishOptions::default()
    };
    g.bench_function("plain topic, no subscriber", |b| {
        let options = keyed("S0000");
        b.iter(|| server.publish_with(black_box("ticks"), Message::Text(&tick), &options))
    });
    g.bench_function("last-value topic, one key", |b| {
        let options = keyed("S0000");
        b.iter(|| server.publish_with(black_box("lv"), Message::Text(&tick), &options))
    });
    // Every key has a value before the measurement: each publish replaces one.
    for key in &keys {
        let _ = server.publish_with("lv", Message::Text(&tick), &keyed(key));
    }
    g.bench_function("last-value topic, 1000 keys in turn", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % keys.len();
            let options = keyed(&keys[i]);
            server.publish_with(black_box("lv"), Message::Text(&tick), &options)
        })
    });
    g.finish();
    assert_eq!(server.last_value_stats().values, 1000);
    server.shutdown(std::time::Duration::from_secs(1));
    server.wait();
}

fn main() {
    // By hand rather than `criterion_group!`, whose generated `pub fn` has no doc comment.
    let mut c = Criterion::default().configure_from_args();
    publish(&mut c);
    c.final_summary();
}

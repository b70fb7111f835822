//! Every mode against in-process wsx servers: the counts add up, a known delay shows in the
//! histogram, the coordinated-omission correction shows a stall that closed-loop timing
//! hides, and the JSON and SVG outputs hold what they should.

#[path = "support/servers.rs"]
mod servers;

use std::time::Duration;

use servers::loadtest;

#[test]
fn echo_closed_loop_counts_add_up() {
    let server = servers::echo();
    let url = server.url();
    let r = loadtest(&[
        "echo",
        "--url",
        &url,
        "-c",
        "8",
        "-d",
        "4",
        "-s",
        "100",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "-q",
        "--threads",
        "1",
    ]);
    assert_eq!(r.errors.total, 0, "errors: {:?}", r.errors);
    assert_eq!(r.connect.opened, 8);
    assert!(r.received_measured > 100, "{} replies", r.received_measured);
    assert_eq!(r.sent, r.received, "every message sent was echoed back");
    let latency = r.latency_us.as_ref().expect("latency recorded");
    assert_eq!(latency.count, r.received_measured);
    assert!(latency.p50 <= latency.p99 && latency.p99 <= latency.max);
    assert_eq!(r.bytes_sent, r.sent * 100);
    assert_eq!(r.bytes_received, r.bytes_sent);
    assert!(
        r.latency_uncorrected_us.is_none(),
        "closed loop has one latency"
    );
}

#[test]
fn echo_binary_on_two_threads() {
    let server = servers::echo();
    let url = server.url();
    let r = loadtest(&[
        "echo",
        "--url",
        &url,
        "-c",
        "6",
        "-d",
        "2",
        "-s",
        "5",
        "--binary",
        "--duration",
        "500ms",
        "--warmup",
        "100ms",
        "-q",
        "--threads",
        "2",
    ]);
    assert_eq!(r.errors.total, 0, "errors: {:?}", r.errors);
    assert_eq!(r.threads, 2);
    assert_eq!(r.sent, r.received);
    assert!(r.received_measured > 0);
}

#[test]
fn echo_fixed_rate_sends_the_schedule() {
    let server = servers::echo();
    let url = server.url();
    let r = loadtest(&[
        "echo",
        "--url",
        &url,
        "-c",
        "5",
        "-d",
        "64",
        "--rate",
        "500",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "-q",
    ]);
    assert_eq!(r.errors.total, 0, "errors: {:?}", r.errors);
    // 500/s over a 1 s window: the schedule has 500 slots in it (one more or less at each
    // end of the window per connection).
    assert!(
        (495..=505).contains(&r.sent_measured),
        "{} messages due in the window",
        r.sent_measured
    );
    assert_eq!(r.sent, r.received);
    assert!(r.latency_uncorrected_us.is_some());
}

#[test]
fn a_known_delay_lands_in_its_bucket() {
    let delay = Duration::from_millis(5);
    let server = servers::delayed(delay);
    let url = server.url();
    let r = loadtest(&[
        "echo",
        "--url",
        &url,
        "-c",
        "4",
        "-d",
        "1",
        "--duration",
        "1s",
        "--warmup",
        "100ms",
        "-q",
    ]);
    assert_eq!(r.errors.total, 0, "errors: {:?}", r.errors);
    let l = r.latency_us.expect("latency recorded");
    // Nothing can come back sooner than the delay; the upper bound only guards against a
    // histogram in the wrong unit (the server's 1 ms tick and scheduling add a little).
    assert!(l.min >= 5000.0, "min {} µs below the 5 ms hold", l.min);
    assert!(l.p50 >= 5000.0 && l.p50 < 15_000.0, "p50 {} µs", l.p50);
}

#[test]
fn coordinated_omission_correction_shows_a_stall() {
    // 200 messages/s on one connection, one in flight at most; the server's worker stalls
    // 500 ms once. The ~100 messages due during the stall cannot be sent: counted from when
    // they were due, they carry the stall; counted from when they were sent, they do not.
    let stall = Duration::from_millis(500);
    let server = servers::stalls_once(150, stall);
    let url = server.url();
    let r = loadtest(&[
        "echo",
        "--url",
        &url,
        "-c",
        "1",
        "-d",
        "1",
        "--rate",
        "200",
        "--duration",
        "2s",
        "--warmup",
        "200ms",
        "-q",
    ]);
    assert_eq!(r.errors.total, 0, "errors: {:?}", r.errors);
    let corrected = r.latency_us.expect("corrected latency");
    let uncorrected = r.latency_uncorrected_us.expect("uncorrected latency");
    assert!(
        corrected.max >= 450_000.0,
        "the stall: max {} µs",
        corrected.max
    );
    assert!(
        corrected.p90 >= 100_000.0,
        "corrected p90 {} µs should carry the stall",
        corrected.p90
    );
    assert!(
        uncorrected.p90 < 50_000.0,
        "uncorrected p90 {} µs hides it",
        uncorrected.p90
    );
    assert!(corrected.p90 > 5.0 * uncorrected.p90);
}

#[test]
fn broadcast_delivers_every_publish_to_every_subscriber() {
    let server = servers::broadcaster(2);
    let url = server.url();
    let r = loadtest(&[
        "broadcast",
        "--url",
        &url,
        "-c",
        "20",
        "--rate",
        "200",
        "-s",
        "48",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "-q",
        "--threads",
        "2",
    ]);
    assert_eq!(r.errors.total, 0, "errors: {:?}", r.errors);
    let b = r.broadcast.expect("broadcast figures");
    assert_eq!(b.subscribers, 20);
    assert!(
        (195..=205).contains(&b.publishes),
        "{} publishes",
        b.publishes
    );
    assert_eq!(b.expected_deliveries, b.publishes * 20);
    assert_eq!(b.deliveries, b.expected_deliveries);
    assert_eq!(b.lost, 0);
    let reach = b.reach_us.expect("reach");
    assert_eq!(reach.count, b.publishes, "every publish reached everyone");
    let delivery = r.latency_us.expect("delivery latency");
    assert!(
        reach.p50 >= delivery.p50,
        "the last subscriber is never before the median"
    );
}

#[test]
fn connect_storm_opens_every_connection() {
    let server = servers::echo();
    let url = server.url();
    let r = loadtest(&[
        "connect",
        "--url",
        &url,
        "-c",
        "300",
        "--concurrency",
        "50",
        "-q",
    ]);
    assert_eq!(r.errors.total, 0, "errors: {:?}", r.errors);
    assert_eq!(r.connect.opened, 300);
    assert_eq!(r.connect.failed, 0);
    let h = r.connect.handshake_us.expect("handshake latency");
    assert_eq!(h.count, 300);
    assert!(r.connect.handshakes_per_s > 0.0);
}

#[test]
fn idle_pings_every_connection() {
    let server = servers::echo();
    let url = server.url();
    let r = loadtest(&[
        "idle",
        "--url",
        &url,
        "-c",
        "40",
        "--ping",
        "250ms",
        "--duration",
        "1s",
        "-q",
    ]);
    assert_eq!(r.errors.total, 0, "errors: {:?}", r.errors);
    assert_eq!(r.connect.opened, 40);
    // 40 connections, a ping each every 250 ms, for 1 s: 160 due in the window.
    assert!(
        (150..=170).contains(&r.sent_measured),
        "{} pings",
        r.sent_measured
    );
    let pongs = r.pongs.expect("pongs counted");
    assert!(pongs + 40 >= r.sent, "{pongs} pongs for {} pings", r.sent);
    assert!(r.latency_us.is_some());
}

#[test]
fn json_and_svg_hold_the_run() {
    let server = servers::echo();
    let url = server.url();
    let dir = std::env::temp_dir().join(format!("wsx-loadtest-out-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("r.json");
    let svg = dir.join("r.svg");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsx-loadtest"))
        .args([
            "echo",
            "--url",
            &url,
            "-c",
            "4",
            "--duration",
            "2s",
            "--warmup",
            "100ms",
        ])
        .arg("--json")
        .arg(&json)
        .arg("--svg")
        .arg(&svg)
        .output()
        .expect("wsx-loadtest runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("p99.9") && table.contains("errors"),
        "{table}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["tool"], "wsx-loadtest");
    assert_eq!(v["mode"], "echo");
    assert_eq!(v["errors"]["total"], 0);
    assert!(v["latency_us"]["p99"].as_f64().unwrap() > 0.0);
    assert!(!v["series"].as_array().unwrap().is_empty());
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("valid XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let series: Vec<&str> = doc
        .descendants()
        .filter_map(|n| n.attribute("data-series"))
        .collect();
    for want in ["p50", "p99", "max", "echo", "msgs/s"] {
        assert!(series.contains(&want), "no {want} series in {series:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn inproc_sink_echoes_and_broadcasts() {
    let r = loadtest(&[
        "echo",
        "--url",
        "inproc",
        "-c",
        "4",
        "-d",
        "2",
        "--duration",
        "500ms",
        "--warmup",
        "100ms",
        "-q",
    ]);
    assert_eq!(r.errors.total, 0, "errors: {:?}", r.errors);
    assert_eq!(r.url, "inproc");
    assert_eq!(r.sent, r.received);
    assert!(r.received_measured > 0);
    let r = loadtest(&[
        "broadcast",
        "--url",
        "inproc",
        "-c",
        "5",
        "--rate",
        "100",
        "--duration",
        "500ms",
        "--warmup",
        "100ms",
        "-q",
    ]);
    assert_eq!(r.errors.total, 0, "errors: {:?}", r.errors);
    let b = r.broadcast.expect("broadcast figures");
    assert_eq!(b.deliveries, b.publishes * 5);
}

#[test]
fn sources_spread_connections_over_addresses() {
    let (server, peers) = servers::recording_peers();
    let url = server.url();
    let r = loadtest(&[
        "connect",
        "--url",
        &url,
        "-c",
        "40",
        "--sources",
        "127.0.0.2-127.0.0.5",
        "-q",
    ]);
    assert_eq!(r.errors.total, 0, "errors: {:?}", r.errors);
    assert_eq!(r.connect.opened, 40);
    let seen: Vec<String> = peers
        .lock()
        .unwrap()
        .iter()
        .map(|ip| ip.to_string())
        .collect();
    assert_eq!(seen, ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]);
}

//! `--close`: how the load generator ends its connections, seen from a minimal server that
//! tells a close frame from a TCP reset (`support/broken.rs`'s echo fixture).

#[path = "support/broken.rs"]
mod broken;
#[path = "support/servers.rs"]
mod servers;

use std::time::{Duration, Instant};

use servers::loadtest;

/// Connections of each run.
const CONNECTIONS: usize = 4;

/// Runs `echo` against the fixture with `--close how`, then waits (bounded) until the fixture
/// has seen every connection end, and returns (close frames, resets) it counted.
fn ends(how: &str) -> (usize, usize) {
    let fixture = broken::echo();
    let url = fixture.url();
    let c = CONNECTIONS.to_string();
    let r = loadtest(&[
        "echo",
        "--url",
        &url,
        "-c",
        &c,
        "--duration",
        "300ms",
        "--warmup",
        "0",
        "--threads",
        "1",
        "-q",
        "--close",
        how,
    ]);
    assert_eq!(r.errors.total, 0, "errors: {:?}", r.errors);
    assert_eq!(r.connect.opened, CONNECTIONS as u64);
    assert!(
        r.received > 0 && r.sent == r.received,
        "every message echoed"
    );
    // The fixture's threads notice the end on their next read: wait for the counts, not for a
    // time (the bound only keeps a broken run from hanging).
    let deadline = Instant::now() + Duration::from_secs(20);
    while fixture.close_frames() + fixture.resets() < CONNECTIONS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    (fixture.close_frames(), fixture.resets())
}

#[test]
fn clean_ends_every_connection_with_a_close_frame() {
    assert_eq!(ends("clean"), (CONNECTIONS, 0));
}

#[test]
fn reset_ends_every_connection_with_a_tcp_reset_and_no_close_frame() {
    assert_eq!(ends("reset"), (0, CONNECTIONS));
}

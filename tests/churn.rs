//! Connection churn leaves no memory behind: rounds of connections that handshake, echo one
//! message and go (closing cleanly or resetting) against a one-worker server, after which the
//! heap of the whole process (a counting global allocator) and the sizes of the worker's
//! structures are back where they were.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use common::{masked, start_server, stop, upgrade_head, wait_until, Echo, TIMEOUT};
use wsx::Backend;
use wsx::Server;

/// Counts the bytes the process has allocated and not freed.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; the counter is only bookkeeping.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract, which `System::alloc` shares.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `alloc` above (that is, by `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `realloc`'s contract, which `System::realloc` shares.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const ROUNDS: usize = 10;
const PER_ROUND: usize = 2_000;
const AT_ONCE: usize = 200;

/// Opens `n` connections, upgrades them, echoes one message on each, then closes every second
/// one with a close frame and resets the others. Panics if any step fails.
fn batch(addr: SocketAddr, n: usize, round: usize) {
    let head = upgrade_head("/", &[]);
    let mut socks: Vec<TcpStream> = (0..n)
        .map(|_| {
            let s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
            s.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
            s.set_nodelay(true).expect("nodelay");
            (&s).write_all(&head).expect("write the upgrade request");
            s
        })
        .collect();
    let message = masked(true, 0x1, b"churn");
    for s in &mut socks {
        // The 101 (nothing follows it until we send), then the echo.
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while !got.ends_with(b"\r\n\r\n") {
            // A signal may interrupt the read (seen under AddressSanitizer): read again, as
            // `read_exact` does.
            let k = match s.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => other.expect("read the 101"),
            };
            assert!(k > 0, "closed during the handshake");
            got.extend_from_slice(&buf[..k]);
        }
        assert!(got.starts_with(b"HTTP/1.1 101"), "{got:?}");
        s.write_all(&message).expect("send");
        let mut echo = [0u8; 7];
        s.read_exact(&mut echo).expect("read the echo");
        assert_eq!(&echo, b"\x81\x05churn");
    }
    for (i, s) in socks.into_iter().enumerate() {
        if (i + round) % 2 == 0 {
            let mut s = s;
            s.write_all(&masked(true, 0x8, &1000u16.to_be_bytes()))
                .expect("send close");
            let mut reply = [0u8; 4];
            s.read_exact(&mut reply).expect("read the close reply");
            assert_eq!(reply[0], 0x88);
        } else {
            // Linger 0: close sends a reset.
            socket2::SockRef::from(&s)
                .set_linger(Some(Duration::ZERO))
                .expect("linger");
        }
    }
}

test_all!(churn_leaves_memory_and_structures_flat);
fn churn_leaves_memory_and_structures_flat(backend: Backend) {
    // The heap counted is the whole process's: the two twins take turns.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    common::raise_fd_limit();
    // Short timeouts, so that the wheel's entries for connections that are gone fire within a
    // round and "nothing scheduled" is a state the test can wait for.
    let builder = Server::builder()
        .threads(1)
        .handshake_timeout(Duration::from_secs(2))
        .close_timeout(Duration::from_millis(500))
        .idle_timeout(None);
    let server = start_server(backend, builder, |_| Echo);
    let addr = server.local_addr();
    let mut samples = Vec::new();
    for round in 0..ROUNDS {
        for _ in 0..PER_ROUND / AT_ONCE {
            batch(addr, AT_ONCE, round);
        }
        let settled = wait_until(Duration::from_secs(10), || {
            server.stats().connections == 0 && server.footprint().timer_entries == 0
        });
        assert!(
            settled,
            "round {round}: the server still holds {:?} / {:?}",
            server.stats(),
            server.footprint()
        );
        let live = LIVE.load(Ordering::Relaxed);
        let footprint = server.footprint();
        eprintln!("round {round}: heap {live} B, {footprint:?}");
        samples.push((live, footprint));
    }
    let s = server.stats();
    let all = (ROUNDS * PER_ROUND) as u64;
    assert_eq!(
        (s.opened, s.closed, s.connections),
        (all, all, 0),
        "every connection is counted once opened and once closed: {s:?}"
    );
    stop(&server);
    // Round 0 warms up (read buffer, cork, slab, allocator caches of the test's own threads);
    // from round 1 on nothing may grow with the connections that came and went.
    let (first_live, first) = samples[1];
    let (last_live, last) = samples[ROUNDS - 1];
    let churned = (ROUNDS - 2) * PER_ROUND;
    assert_eq!(
        last.timer_capacity, 0,
        "the timer wheel holds room for {} entries with nothing scheduled (round 1: {})",
        last.timer_capacity, first.timer_capacity
    );
    assert!(
        last.slab_capacity <= first.slab_capacity,
        "the slab grew from {} to {} slots",
        first.slab_capacity,
        last.slab_capacity
    );
    // A leak grows the heap in every round (the timer wheel's was ~67 KB a round, 33 B per
    // connection); a buffer that grows once under a loaded machine's timing is not one. So:
    // the median growth per round stays near zero, and the total stays small.
    let mut deltas: Vec<isize> = samples[1..].windows(2).map(|w| w[1].0 - w[0].0).collect();
    deltas.sort_unstable();
    let median = deltas[deltas.len() / 2];
    let growth = last_live - first_live;
    assert!(
        median < 2 << 10,
        "the heap grows in every round: median {median} B per {PER_ROUND} connections ({deltas:?})"
    );
    assert!(
        growth < 64 << 10,
        "the heap grew by {growth} B over {churned} connections ({:.1} B each; per round {deltas:?})",
        growth as f64 / churned as f64
    );
}

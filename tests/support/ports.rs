//! Ports for peers that must be told which port to listen on (nats-server, HAProxy, nginx)
//! and cannot bind port 0 and report it back.
//!
//! A port taken from the kernel with a `:0` bind and then released can be handed out again at
//! once: to a parallel test's listener, or as the local port of some outgoing connection. The
//! peer would then fail to bind, or worse, the test would reach someone else's listener. These
//! ports come from below the kernel's ephemeral range instead, which the kernel never hands
//! out on its own, spread by process id so parallel test binaries start far apart, and each is
//! checked free with a bind before it is returned.

// Each test file that includes this module uses only part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out: above the well-known and most registered services' ports.
const LOW: u32 = 10_000;

/// Ports handed out so far in this process.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// The first port of the kernel's ephemeral range (`ip_local_port_range`), 32768 when it
/// cannot be read.
fn ephemeral_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .filter(|&start| start > LOW + 1_000)
        .unwrap_or(32_768)
}

/// A port on 127.0.0.1 that nothing listens on now and that the kernel does not hand out to
/// `:0` binds or outgoing connections.
pub(crate) fn unused_port() -> u16 {
    let span = ephemeral_start() - LOW;
    let base = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = LOW + (base + n) % span;
        if TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return port as u16;
        }
    }
    panic!("no free port below the ephemeral range");
}

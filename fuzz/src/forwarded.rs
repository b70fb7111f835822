//! `forwarded::client_addr` on arbitrary `Forwarded` and `X-Forwarded-For` values from a
//! trusted peer.
//!
//! Input: one seed byte (bit 0: the value is a `Forwarded` header, else `X-Forwarded-For`;
//! bit 1: trust everything, else only 10.0.0.0/8 and the peer), then the header value.
//! Invariants:
//!
//! - nothing panics;
//! - the answer is the peer itself or an address the header's own parse holds (the walk never
//!   invents one);
//! - from a peer that is not trusted, the answer is the peer, whatever the header says.
//!
//! `cargo +nightly fuzz run forwarded fuzz/corpus/forwarded fuzz/seeds/forwarded`

use std::net::SocketAddr;

use wsx::server::forwarded::{client_addr, forwarded, x_forwarded_for, Node};
use wsx::TrustedProxies;

/// Runs one input; panics when an invariant above breaks.
pub fn run(input: &[u8]) {
    let Some((&seed, value)) = input.split_first() else {
        return;
    };
    let (name, nodes) = if seed & 1 == 1 {
        ("forwarded", forwarded(value))
    } else {
        ("x-forwarded-for", x_forwarded_for(value))
    };
    let trusted = if seed & 2 == 2 {
        TrustedProxies::parse(["0.0.0.0/0", "::/0"]).unwrap()
    } else {
        TrustedProxies::parse(["10.0.0.0/8"]).unwrap()
    };
    let peer: SocketAddr = "10.0.0.1:4000".parse().unwrap();
    let got = client_addr(peer, [(name, value)], &trusted);
    let held = nodes.iter().any(|n| match n {
        Node::Addr(ip, port) => got == SocketAddr::new(*ip, port.unwrap_or(0)),
        _ => false,
    });
    assert!(got == peer || held, "{got} from {value:?}");

    let stranger: SocketAddr = "192.0.2.1:4000".parse().unwrap();
    let none = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
    assert_eq!(client_addr(stranger, [(name, value)], &none), stranger);
}

//! `ProxyHandshake::handle_read` on a proxy's replies: HTTP `CONNECT` and SOCKS5 with and
//! without username/password auth, the target a name, an IPv4 or an IPv6 address.
//!
//! Input: one seed byte, then the proxy's bytes. The seed's low 2 bits pick the proxy (HTTP,
//! HTTP with auth, SOCKS5, SOCKS5 with auth), bits 2-3 the target; the rest seeds the chunk sizes
//! (1 to 32 bytes). Invariants:
//!
//! - nothing panics;
//! - the handshake reads the same when the replies arrive whole or in pieces: the same bytes
//!   sent back, the same error, or `Done` at the same offset;
//! - `consumed` never passes the input, a reply is consumed only once, an error is sticky and
//!   `Done` stays `Done { consumed: 0 }`.
//!
//! `cargo +nightly fuzz run proxy_reply`

use super::steps::Steps;
use wsx::client::proxy::{Proxy, ProxyError, ProxyHandshake, ProxyStep};

fn handshake(seed: u8) -> ProxyHandshake {
    let auth = Some(("user".to_owned(), "secret".to_owned()));
    let (host, port) = ("proxy.example".to_owned(), 3128);
    let proxy = match seed & 3 {
        0 => Proxy::Http {
            host,
            port,
            auth: None,
        },
        1 => Proxy::Http { host, port, auth },
        2 => Proxy::Socks5 {
            host,
            port,
            auth: None,
        },
        _ => Proxy::Socks5 { host, port, auth },
    };
    let target = match (seed >> 2) & 3 {
        0 => "example.com",
        1 => "192.0.2.7",
        2 => "2001:db8::1",
        _ => "[::1]",
    };
    ProxyHandshake::new(&proxy, target, 443)
}

/// The outcome of feeding `data` in pieces of the sizes `steps` gives (`None`: the whole input).
fn feed(seed: u8, data: &[u8], mut steps: Option<Steps>) -> (Vec<u8>, Result<usize, ProxyError>) {
    let mut handshake = handshake(seed);
    let mut sent = Vec::new();
    handshake.start(&mut sent);
    let mut used = 0; // bytes of `data` consumed so far
    let mut end = 0; // bytes of `data` received so far
    loop {
        end = match steps.as_mut() {
            Some(s) => (end + s.next(32)).min(data.len()),
            None => data.len(),
        };
        match handshake.handle_read(&data[used..end], &mut sent) {
            Ok(ProxyStep::NeedMore { consumed }) => {
                assert!(used + consumed <= end);
                used += consumed;
                if end == data.len() {
                    return (sent, Ok(usize::MAX));
                }
            }
            Ok(ProxyStep::Done { consumed }) => {
                assert!(used + consumed <= end);
                let done = used + consumed;
                let again = handshake.handle_read(&data[done..], &mut sent);
                assert_eq!(again, Ok(ProxyStep::Done { consumed: 0 }));
                return (sent, Ok(done));
            }
            Err(e) => {
                assert_eq!(
                    handshake.handle_read(&data[used..], &mut sent),
                    Err(e.clone())
                );
                return (sent, Err(e));
            }
        }
    }
}

/// Runs one input; panics when an invariant above breaks.
pub fn run(input: &[u8]) {
    let Some((&seed, data)) = input.split_first() else {
        return;
    };
    let whole = feed(seed, data, None);
    let pieces = feed(seed, data, Some(Steps::new(seed)));
    assert_eq!(whole, pieces);
}

//! `ClientHandshake::parse_response` fed in random chunks, as a client reads the server's reply
//! to its upgrade request (offering subprotocols `chat` and `superchat` and permessage-deflate).
//!
//! Input: one seed byte, then the bytes. The seed picks the limits (top bit: tight limits) and
//! seeds the chunk sizes (1 to 64 bytes). Invariants:
//!
//! - nothing panics;
//! - a prefix never answers differently from the whole input once the head is complete
//!   (`Ok(None)` before, the same response or error after), and `consumed <= input`;
//! - every error is a 502 (the server's fault); a refusal (not 101) read in pieces differs from
//!   the whole only in holding fewer of the body's first bytes;
//! - an accepted response is a 101 whose `Sec-WebSocket-Accept` is the one expected, whose
//!   subprotocol and extensions were offered, and whose permessage-deflate answer (if any)
//!   negotiates to window sizes within 8..=15 or is refused without panicking.
//!
//! `cargo +nightly fuzz run parse_response`

use super::steps::{head_limits, Steps};
use wsx::protocol::deflate::negotiate::{client_accept, client_offer};
use wsx::protocol::deflate::DeflateOptions;
use wsx::protocol::handshake::{ClientHandshake, ClientRequest, UnexpectedStatus};
use wsx::HandshakeError as E;

/// The RFC 6455 §1.3 sample key; the seeds answer it with `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const PROTOCOLS: [&str; 2] = ["chat", "superchat"];

fn handshake(options: &DeflateOptions) -> ClientHandshake {
    let offers = [client_offer(options)];
    let mut request = ClientRequest::new("server.example.com", "/chat");
    request.protocols = &PROTOCOLS;
    request.extensions = &offers;
    request
        .write_with_key(KEY, &mut Vec::new())
        .expect("a valid request")
}

/// Runs one input; panics when an invariant above breaks.
pub fn run(input: &[u8]) {
    let Some((&seed, data)) = input.split_first() else {
        return;
    };
    let limits = head_limits(seed);
    let options = DeflateOptions::default();
    let handshake = handshake(&options);
    let whole = handshake.parse_response(data, &limits);

    let mut steps = Steps::new(seed);
    let mut end = 0;
    loop {
        end = (end + steps.next(64)).min(data.len());
        let prefix = &data[..end];
        match handshake.parse_response(prefix, &limits) {
            Ok(None) => {}
            Ok(Some((response, consumed))) => {
                assert!(consumed <= prefix.len());
                assert_eq!(response.status(), 101);
                let accept = response.header("sec-websocket-accept");
                assert_eq!(accept, Some(handshake.expected_accept().as_bytes()));
                if let Some(p) = response.protocol() {
                    assert!(PROTOCOLS.contains(&p), "{p:?} was not offered");
                }
                for answer in response.extensions() {
                    assert!(answer.name.eq_ignore_ascii_case("permessage-deflate"));
                    if let Ok(params) = client_accept(answer, &options) {
                        assert!((8..=15).contains(&params.send_window_bits));
                        assert!((8..=15).contains(&params.recv_window_bits));
                    }
                }
                assert_eq!(whole, Ok(Some((response, consumed))));
                return;
            }
            Err(error) => {
                assert_eq!(error.status(), 502, "{error:?}");
                match (&error, &whole) {
                    // A refusal keeps the body bytes already read: a prefix holds fewer.
                    (E::UnexpectedStatus(part), Err(E::UnexpectedStatus(all))) => {
                        assert_eq!(
                            (part.status, &part.reason, &part.location),
                            (all.status, &all.reason, &all.location)
                        );
                        assert!(all.body.starts_with(&part.body));
                        assert!(all.body.len() <= UnexpectedStatus::MAX_BODY);
                    }
                    _ => assert_eq!(whole, Err(error)),
                }
                return;
            }
        }
        if end == data.len() {
            assert!(matches!(whole, Ok(None)));
            return;
        }
    }
}

//! `UpgradeRequest::parse` fed in random chunks, as a server reads a socket.
//!
//! Input: one seed byte, then the bytes. The seed picks the limits (top bit: tight limits) and
//! seeds the chunk sizes (1 to 64 bytes). Invariants:
//!
//! - nothing panics;
//! - `consumed <= input`, and a prefix never answers differently from the whole input once the
//!   head is complete (`Ok(None)` before, the same request or error after);
//! - a parsed request has a valid key whose accept value a client accepts: the request
//!   round-trips through `write_accept` and `ClientHandshake::parse_response`.
//!
//! `cargo +nightly fuzz run parse_request fuzz/corpus/parse_request fuzz/seeds/parse_request`

use super::steps::{head_limits, Steps};
use wsx::protocol::handshake::{
    accept_key, is_valid_key, write_accept, write_error, AcceptOptions, ClientRequest,
    UpgradeRequest,
};

/// Runs one input; panics when an invariant above breaks.
pub fn run(input: &[u8]) {
    let Some((&seed, data)) = input.split_first() else {
        return;
    };
    let limits = head_limits(seed);
    let whole = UpgradeRequest::parse(data, &limits);

    // Grow the prefix by pseudo-random steps, as reads would.
    let mut steps = Steps::new(seed);
    let mut end = 0;
    loop {
        end = (end + steps.next(64)).min(data.len());
        let prefix = &data[..end];
        match UpgradeRequest::parse(prefix, &limits) {
            Ok(None) => {}
            Ok(Some((request, consumed))) => {
                assert!(consumed <= prefix.len());
                assert_eq!(whole, Ok(Some((request.clone(), consumed))));
                check_round_trip(&request);
                return;
            }
            Err(error) => {
                assert_eq!(whole, Err(error.clone()));
                assert!((400..500).contains(&error.status()), "{error:?}");
                let mut out = Vec::new();
                write_error(&error, &mut out);
                assert!(out.starts_with(b"HTTP/1.1 4"));
                return;
            }
        }
        if end == data.len() {
            assert_eq!(whole, Ok(None));
            return;
        }
    }
}

fn check_round_trip(request: &UpgradeRequest) {
    assert!(is_valid_key(request.key().as_bytes()));
    let accept = accept_key(request.key());
    assert_eq!(accept.len(), 28);

    // The server accepts with the client's first subprotocol and extension offer, if any.
    let extensions = request.extensions().get(..1).unwrap_or_default();
    let mut options = AcceptOptions::new().with_extensions(extensions);
    if let Some(protocol) = request.protocols().next() {
        options = options.with_protocol(protocol);
    }
    let mut response = Vec::new();
    // Extension parameters come from the peer and may not be writable back (a quoted value
    // with a byte we refuse to send); everything else must be accepted.
    if write_accept(request, &options, &mut response).is_err() {
        response.clear();
        let no_extensions = options.with_extensions(&[]);
        write_accept(request, &no_extensions, &mut response).expect("accept without extensions");
    }

    // A client that sent this key and these offers accepts the response.
    let protocols: Vec<&str> = request.protocols().collect();
    let mut client = ClientRequest::new("fuzz.example", "/");
    client.protocols = &protocols;
    client.extensions = request.extensions();
    let handshake = match client.write_with_key(request.key(), &mut Vec::new()) {
        Ok(handshake) => handshake,
        // Offers the client could not have written (e.g. a quoted value with odd bytes).
        Err(_) => return,
    };
    assert_eq!(handshake.expected_accept(), accept);
    let (response, consumed) = handshake
        .parse_response(&response, &wsx::Limits::DEFAULT)
        .expect("own response is valid")
        .expect("own response is complete");
    assert_eq!(response.protocol(), request.protocols().next());
    assert!(consumed > 0);
}

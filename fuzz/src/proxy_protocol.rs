//! `proxy_protocol::parse` fed in random chunks, as a server reads a socket before the HTTP
//! request.
//!
//! Input: one seed byte, then the bytes. The seed's top bit picks a tight v2 length bound (64
//! bytes) and seeds the chunk sizes (1 to 64 bytes). Invariants:
//!
//! - nothing panics;
//! - `consumed <= input`, and a prefix never answers differently from the whole input once the
//!   header is complete (`Ok(None)` before, the same header or error after);
//! - a v1 header is at most 107 bytes, a v2 header within the bound;
//! - a parsed header round-trips: its encoding parses back to the same header (a v1 `LOCAL`
//!   as `UNKNOWN`; v2 TLVs are not re-encoded, so the length may shrink).
//!
//! `cargo +nightly fuzz run proxy_protocol fuzz/corpus/proxy_protocol fuzz/seeds/proxy_protocol`

use super::steps::Steps;
use wsx::server::proxy_protocol::{parse_with_limit, Version, V1_MAX_LEN, V2_MAX_LEN};

/// Runs one input; panics when an invariant above breaks.
pub fn run(input: &[u8]) {
    let Some((&seed, data)) = input.split_first() else {
        return;
    };
    let limit = if seed & 0x80 == 0 { V2_MAX_LEN } else { 64 };
    let whole = parse_with_limit(data, limit);

    // Grow the prefix by pseudo-random steps, as reads would.
    let mut steps = Steps::new(seed);
    let mut end = 0;
    loop {
        end = (end + steps.next(64)).min(data.len());
        let prefix = &data[..end];
        match parse_with_limit(prefix, limit) {
            Ok(None) => {}
            Ok(Some((header, consumed))) => {
                assert!(consumed <= prefix.len());
                assert_eq!(whole, Ok(Some((header.clone(), consumed))));
                match header.version {
                    Version::V1 => assert!(consumed <= V1_MAX_LEN),
                    Version::V2 => assert!(consumed <= limit),
                }
                let mut encoded = Vec::new();
                header.encode(&mut encoded);
                let (again, n) = parse_with_limit(&encoded, V2_MAX_LEN)
                    .expect("own encoding parses")
                    .expect("own encoding is complete");
                assert_eq!(n, encoded.len());
                assert_eq!(again.source(), header.source());
                assert_eq!(again.command, header.command);
                return;
            }
            Err(error) => {
                assert_eq!(whole, Err(error));
                return;
            }
        }
        if end == data.len() {
            assert_eq!(whole, Ok(None));
            return;
        }
    }
}

//! `DeflateState::decompress` on untrusted compressed messages: the pooled one-shot path (no
//! context kept) and the streaming path (context kept across messages), under a size limit.
//!
//! Input: one seed byte, then up to 4 messages separated by the byte `0xA5`. The seed's low bits
//! pick the limit (16 bytes to 64 KiB), bit 7 the path. Invariants:
//!
//! - nothing panics;
//! - a message inflates to at most the limit, and a refused one leaves the output as it was;
//! - the state still works afterwards: a message compressed alone inflates back byte for byte
//!   (on the streaming path only when the last message failed, since an error resets the
//!   window; after a good one the peer's stream may legitimately continue mid-block).
//!
//! `cargo +nightly fuzz run inflate`

use wsx::protocol::deflate::codec::{compress_alone, DeflateState};
use wsx::protocol::deflate::{DeflateOptions, Params};

/// Runs one input; panics when an invariant above breaks.
pub fn run(input: &[u8]) {
    let Some((&seed, data)) = input.split_first() else {
        return;
    };
    let max = 16usize << (seed & 0x0f).min(12);
    let keep_context = seed & 0x80 != 0;
    let params = Params {
        send_window_bits: 15,
        recv_window_bits: 15,
        send_no_context_takeover: true,
        recv_no_context_takeover: !keep_context,
    };
    let mut state = DeflateState::new(params, &DeflateOptions::default());
    let mut out = b"before".to_vec();
    // Whether the stream state is fresh: always on the one-shot path, after an error (which
    // resets the window) on the streaming one.
    let mut fresh = true;
    for message in data.split(|&b| b == 0xA5).take(4) {
        let before = out.len();
        match state.decompress(message, max, &mut out) {
            Ok(()) => {
                assert!(out.len() - before <= max, "{} > {max}", out.len() - before);
                fresh = !keep_context;
            }
            Err(_) => {
                assert_eq!(out.len(), before, "a refused message left output");
                fresh = true;
            }
        }
    }
    if fresh {
        let plain = b"the state still inflates its own messages";
        let mut wire = Vec::new();
        compress_alone(6, plain, &mut wire);
        let mut back = Vec::new();
        state
            .decompress(&wire, plain.len(), &mut back)
            .expect("a valid message after a refused one");
        assert_eq!(back, plain);
    }
}

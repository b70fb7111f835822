//! The compressor's output, as browsers read it: messages compressed by `DeflateState` (every
//! send path: the pooled libdeflate one and the zlib-rs streaming one, with and without a kept
//! context, any level) and inflated through ONE raw inflate stream that is never reset, each
//! followed by the `00 00 ff ff` a receiver appends (RFC 7692 §7.2.2).
//!
//! Input: one seed byte (level, path), then the data, cut into up to 8 messages at bytes equal
//! to the seed's low bits. Invariants: every message comes back byte for byte, and no message
//! ends the stream (a final block would make the next one undecodable in a browser).
//!
//! `cargo +nightly fuzz run deflate_ending`

use flate2::{Decompress, FlushDecompress, Status};
use wsx::protocol::deflate::codec::{DeflateState, TAIL};
use wsx::protocol::deflate::{DeflateOptions, Params};

/// Runs one input; panics when an invariant above breaks.
pub fn run(input: &[u8]) {
    let Some((&seed, data)) = input.split_first() else {
        return;
    };
    let level = 1 + seed % 12;
    let (context, bits) = match (seed >> 4) & 3 {
        0 => (false, 15), // the pooled libdeflate path
        1 => (true, 15),  // streaming, context kept
        2 => (false, 10), // streaming, small window
        _ => (true, 9),
    };
    let params = Params {
        send_window_bits: bits,
        recv_window_bits: 15,
        send_no_context_takeover: !context,
        recv_no_context_takeover: true,
    };
    let options = DeflateOptions {
        level,
        threshold: 0,
        ..DeflateOptions::default()
    };
    let mut tx = DeflateState::new(params, &options);
    let mut rx = Decompress::new(false);
    let cut = seed & 0x0f;
    for message in data.split(|&b| b == cut).take(8) {
        let mut wire = Vec::new();
        tx.compress(message, &mut wire);
        wire.extend_from_slice(&TAIL);
        let mut out = Vec::with_capacity(message.len() + 64);
        let start = rx.total_in();
        loop {
            let used = (rx.total_in() - start) as usize;
            if out.len() == out.capacity() {
                out.reserve(4096);
            }
            let status = rx
                .decompress_vec(&wire[used..], &mut out, FlushDecompress::Sync)
                .expect("our own output inflates");
            assert_ne!(status, Status::StreamEnd, "a message ended the stream");
            let used = (rx.total_in() - start) as usize;
            if used == wire.len() && out.len() < out.capacity() {
                break;
            }
        }
        assert_eq!(out, message, "level {level} context {context} bits {bits}");
    }
}

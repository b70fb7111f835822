//! Compressing and inflating whole messages (RFC 7692 §7.2).
//!
//! Four paths, picked from [`Params`]:
//!
//! | direction | when                                              | engine                                   | per connection |
//! |-----------|---------------------------------------------------|------------------------------------------|----------------|
//! | send      | `send_no_context_takeover` and window 15          | libdeflate, whole message (pooled)       | nothing        |
//! | send      | otherwise (context kept, or window 9–14)          | zlib-rs `Compress`, sync flush           | a compressor   |
//! | receive   | `recv_no_context_takeover`                        | libdeflate, whole message (pooled)       | nothing        |
//! | receive   | otherwise                                         | zlib-rs `Decompress` (window 15)         | a decompressor |
//!
//! The libdeflate compressors (one per level in use) and the decompressor live in a pool per
//! thread: an engine worker is one thread, so they grow with workers, not connections. The
//! streaming engines are created on first use and kept in the [`DeflateState`].
//!
//! # Implementation notes
//!
//! - **Send, fast path.** libdeflate compresses the whole message into a stream that ends
//!   with a final block (`BFINAL = 1`). RFC 7692 §7.2.3.4 allows that, but browsers keep one
//!   inflate stream for the whole connection whatever was negotiated, and a stream that has
//!   ended cannot take the next message (Chromium fails the connection with 1002). So the
//!   output is re-ended with a sync flush (module `deflate::sync_end`): the final block's
//!   `BFINAL` is cleared and an empty stored block's header follows (in the padding bits, or
//!   one `00` byte), whose `00 00 ff ff` the receiver appends — the same ending a zlib sender's
//!   sync flush has, accepted by receivers that reset per message and by those that never
//!   reset. Finding the final block takes a walk over the Huffman symbols (no output is
//!   written), about a tenth of the compression time (`cargo bench --bench deflate`). The
//!   window is still reset per message (`send_no_context_takeover`): no match refers to an
//!   earlier message.
//! - **Send, streaming.** A sync flush ends the data with an empty stored block `00 00 ff ff`,
//!   which is removed (§7.2.1). With `send_no_context_takeover` the compressor is reset after each
//!   message. Window bits below 9 are raised to 9 (zlib has no 256-byte window; with window 8,
//!   [`DeflateState::should_compress`] is false anyway).
//! - **Receive, fast path.** libdeflate needs a final block, and a sync-flushed message has none:
//!   the input is followed by `00 00 ff ff` (completing the peer's empty stored block) and then
//!   `01 00 00 ff ff` (an empty *final* stored block). A message that already ended with a final
//!   block stops there. libdeflate needs the whole input in one slice, so it is copied into a
//!   per-thread scratch buffer (the memory bound is `max` + twice the input). The output buffer
//!   starts at `min(max, max(8 × input, 4096))` bytes (JSON often inflates 5–10×, and
//!   libdeflate cannot resume, so a buffer too small costs a second pass) and doubles up to `max`; when the data does
//!   not fit in `max` bytes the result is [`InflateError::TooBig`], having allocated no more than
//!   `max` bytes of output.
//! - **Receive, streaming.** Input then `00 00 ff ff` go through a zlib-rs inflater with a 32 KiB
//!   window (any smaller window the peer uses fits in it). Output grows geometrically with
//!   `reserve_exact` and stops as soon as it passes `max`. If the peer ended the message with a
//!   final block, the inflater is reset for the next message. After an error the inflater is reset
//!   (the connection is failing anyway). A message cut short inside a block is not detected on this
//!   path (as with every zlib-based implementation); the fast path reports it as corrupt.
//! - An empty compressed payload (not something a conforming sender produces: the empty message
//!   compresses to `00`) inflates to the empty message on both paths without touching the
//!   inflater's state.
//! - Levels: libdeflate takes `level` clamped to 1–12 (10–12 are its slow, near-optimal levels,
//!   and their compressor holds about 9 MiB per thread, against 200 KiB at level 1 and 660 KiB at
//!   2–9); zlib-rs takes it clamped to 1–9.

use std::cell::RefCell;
use std::cmp::{max as max_of, min};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use libdeflater::{CompressionLvl, Compressor, DecompressionError, Decompressor};

use super::{sync_end, DeflateOptions, Params};

/// The sync-flush marker removed by the sender and appended by the receiver (RFC 7692 §7.2.2).
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// What the libdeflate inflater appends: the [`TAIL`] completing the peer's empty stored block,
/// then an empty final stored block, so that a sync-flushed message ends the stream.
const FAST_TAIL: [u8; 9] = [0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff];

/// The per-thread scratch buffer is dropped after a message larger than this.
const SCRATCH_KEEP: usize = 256 * 1024;

/// zlib-rs's `lit_bufsize` for flate2's memory level 8.
const LIT_BUFSIZE: usize = 1 << (8 + 6);

/// Approximate heap size of a zlib-rs deflate stream (plus flate2's wrapper) with `window_bits`,
/// from zlib-rs 0.6's `DeflateAllocOffsets`: window (2 × 2^w), `prev` (2 × 2^w), `head` (64 Ki ×
/// 2), pending (4 × 16 Ki), symbol buffer (3 × 16 Ki), and the state (about 3 KiB). Measured
/// with a counting allocator: 251,152 bytes for window 9, 380,176 for window 15.
pub fn compressor_heap_size(window_bits: u8) -> usize {
    let w = 1usize << window_bits.clamp(9, 15);
    2 * w + 2 * w + 65_536 * 2 + 4 * LIT_BUFSIZE + 3 * LIT_BUFSIZE + 3 * 1024
}

/// Approximate heap size of a zlib-rs inflate stream (plus flate2's wrapper): a 32 KiB window
/// and the state (about 14.5 KiB), whatever the peer's window. Measured with a counting
/// allocator: 47,704 bytes.
pub fn decompressor_heap_size() -> usize {
    (1 << 15) + 29 * 512
}

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InflateError {
    /// The inflated message would exceed the limit (1009).
    #[error("inflated message exceeds {max} bytes")]
    TooBig {
        /// The limit.
        max: usize,
    },
    /// Not valid deflate data (1007).
    #[error("invalid compressed data")]
    Corrupt,
}

/// One connection's compression state: empty on the fast path (no context kept, full window),
/// a streaming compressor or decompressor where the parameters need one.
#[derive(Debug)]
pub struct DeflateState {
    params: Params,
    options: DeflateOptions,
    /// The streaming compressor, created on the first message that needs it.
    compress: Option<Box<Compress>>,
    /// The streaming decompressor, created on the first message that needs it.
    decompress: Option<Box<Decompress>>,
}

impl DeflateState {
    /// The state for a connection with `params`.
    pub fn new(params: Params, options: &DeflateOptions) -> Self {
        DeflateState {
            params,
            options: *options,
            compress: None,
            decompress: None,
        }
    }

    /// The parameters in force.
    pub fn params(&self) -> Params {
        self.params
    }

    /// Whether a message of `len` bytes should be compressed (threshold, size cap, window).
    pub fn should_compress(&self, len: usize) -> bool {
        len >= self.options.threshold
            && len <= self.options.max_compress_size
            && self.params.send_window_bits >= 9
    }

    /// Whether [`compress`](Self::compress) uses the pooled libdeflate compressor (nothing kept
    /// per connection).
    pub fn fast_send(&self) -> bool {
        self.params.send_no_context_takeover && self.params.send_window_bits >= 15
    }

    /// Whether [`decompress`](Self::decompress) uses the pooled libdeflate decompressor (nothing
    /// kept per connection).
    pub fn fast_recv(&self) -> bool {
        self.params.recv_no_context_takeover
    }

    /// Appends the compressed form of the whole message `input` to `out`, without the final
    /// `00 00 ff ff` (RFC 7692 §7.2.1).
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if input.is_empty() {
            // The empty message of RFC 7692 §7.2.3.6: an empty stored block's header, whose
            // `00 00 ff ff` the receiver appends; valid in any stream state, since every message
            // before it ended byte-aligned. (libdeflate would write an empty *final* block, and
            // a zlib-rs sync flush with no new input writes nothing and reports `BufError`.)
            out.push(0x00);
            return;
        }
        if self.fast_send() {
            return compress_alone(self.options.level, input, out);
        }
        let level = u32::from(self.options.level.clamp(1, 9));
        let bits = self.params.send_window_bits.clamp(9, 15);
        let c = self.compress.get_or_insert_with(|| {
            Box::new(Compress::new_with_window_bits(
                Compression::new(level),
                false,
                bits,
            ))
        });
        if !compress_stream(c, input, out) {
            debug_assert!(false, "zlib-rs compression failed");
            c.reset();
            stored(input, out);
        }
        if self.params.send_no_context_takeover {
            c.reset();
        }
    }

    /// Inflates a whole compressed message (all fragments' payloads concatenated, without the
    /// tail) into `out`, producing at most `max` bytes.
    ///
    /// On error, `out` is left as it was.
    ///
    /// # Errors
    ///
    /// [`InflateError::TooBig`] when the message inflates to more than `max` bytes,
    /// [`InflateError::Corrupt`] when it is not valid deflate data.
    pub fn decompress(
        &mut self,
        input: &[u8],
        max: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), InflateError> {
        if input.is_empty() {
            return Ok(());
        }
        if self.fast_recv() {
            return with_pool(|pool| pool.inflate(input, max, out));
        }
        let d = self
            .decompress
            .get_or_insert_with(|| Box::new(Decompress::new_with_window_bits(false, 15)));
        let start = out.len();
        let res = inflate_stream(d, input, max, out);
        match res {
            Ok(true) => {}
            Ok(false) => d.reset(false),
            Err(_) => {
                d.reset(false);
                out.truncate(start);
            }
        }
        res.map(|_| ())
    }

    /// Heap bytes this connection's state holds (0 on the fast path): the streaming compressor
    /// and decompressor, once created.
    pub fn heap_size(&self) -> usize {
        let c = match self.compress {
            Some(_) => compressor_heap_size(self.params.send_window_bits),
            None => 0,
        };
        let d = match self.decompress {
            Some(_) => decompressor_heap_size(),
            None => 0,
        };
        c + d
    }
}

/// Appends the compressed form of the whole message `input` to `out`, compressed alone (no
/// context from earlier messages, window 15), without the final `00 00 ff ff`: the fast path of
/// [`DeflateState::compress`], free of any connection, so that it can run on another thread
/// (the engine's deflate pool) and its output be sent to every peer whose parameters allow it
/// (`send_no_context_takeover`, window 15). `level` is clamped to 1–12. Uses this thread's
/// pooled libdeflate compressor.
pub fn compress_alone(level: u8, input: &[u8], out: &mut Vec<u8>) {
    if input.is_empty() {
        // As in `DeflateState::compress`: the empty message is an empty stored block's header.
        out.push(0x00);
        return;
    }
    let level = i32::from(level.clamp(1, 12));
    let done = with_pool(|pool| pool.compress(level, input, out));
    if !done {
        debug_assert!(false, "libdeflate output exceeded its own bound");
        stored(input, out);
    }
}

/// Compresses `input` with a sync flush and removes the trailing `00 00 ff ff`. False if zlib-rs
/// reported an error (it does not, with valid parameters); `out` is then as it was.
fn compress_stream(c: &mut Compress, input: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    let in_before = c.total_in();
    // Room for most messages in one call; more is added below when needed. zlib wants more than
    // 6 bytes free for a sync flush, so the data is never cut just before the marker.
    out.reserve(input.len() / 2 + 64);
    loop {
        let consumed = usize::try_from(c.total_in() - in_before).unwrap_or(input.len());
        let rest = input.get(consumed..).unwrap_or_default();
        if out.capacity() - out.len() < 64 {
            out.reserve(max_of(rest.len() / 2, 4096));
        }
        if c.compress_vec(rest, out, FlushCompress::Sync).is_err() {
            out.truncate(start);
            return false;
        }
        let consumed = usize::try_from(c.total_in() - in_before).unwrap_or(input.len());
        if consumed >= input.len() && out.len() < out.capacity() {
            break;
        }
    }
    debug_assert!(
        out[start..].ends_with(&TAIL),
        "a sync flush ends with 00 00 ff ff"
    );
    if out[start..].ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    }
    true
}

/// Inflates `input` and then [`TAIL`] into `out`. `Ok(true)`: the stream goes on; `Ok(false)`:
/// the peer ended it with a final block, reset before the next message.
fn inflate_stream(
    d: &mut Decompress,
    input: &[u8],
    max: usize,
    out: &mut Vec<u8>,
) -> Result<bool, InflateError> {
    let start = out.len();
    // One more byte than allowed, to tell "exactly max" from "more than max".
    let limit = max.saturating_add(1);
    let first = max_of(input.len().saturating_mul(4), 4096);
    for part in [input, &TAIL[..]] {
        let mut pos = 0;
        loop {
            let produced = out.len() - start;
            if produced > max {
                return Err(InflateError::TooBig { max });
            }
            if out.len() == out.capacity() {
                out.reserve_exact(min(limit - produced, max_of(produced, first)));
            }
            let (in_before, out_before) = (d.total_in(), d.total_out());
            let status = d
                .decompress_vec(
                    part.get(pos..).unwrap_or_default(),
                    out,
                    FlushDecompress::Sync,
                )
                .map_err(|_| InflateError::Corrupt)?;
            let n_in = usize::try_from(d.total_in() - in_before).unwrap_or(usize::MAX);
            let n_out = d.total_out() - out_before;
            pos = pos.saturating_add(n_in);
            if out.len() - start > max {
                return Err(InflateError::TooBig { max });
            }
            if status == Status::StreamEnd {
                return Ok(false);
            }
            if pos >= part.len() && out.len() < out.capacity() {
                break;
            }
            if n_in == 0 && n_out == 0 && out.len() < out.capacity() {
                // No progress with room to write: the inflater wants input that is not there.
                break;
            }
        }
    }
    Ok(true)
}

/// The message as stored blocks (no compression), ending like a sync flush without its
/// `00 00 ff ff`: valid in any context. A fallback for compressor failures that do not happen.
fn stored(input: &[u8], out: &mut Vec<u8>) {
    for block in input.chunks(0xffff) {
        let len = block.len() as u16;
        out.push(0x00);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.push(0x00);
}

/// libdeflate engines and scratch space for one thread.
struct Pool {
    /// One compressor per level in use (at most a few).
    compressors: Vec<(i32, Compressor)>,
    decompressor: Option<Decompressor>,
    /// The input followed by [`FAST_TAIL`], for libdeflate.
    scratch: Vec<u8>,
}

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool::new()) };
}

/// Runs `f` with this thread's pool; with a temporary one if the pool is unavailable (borrowed,
/// or the thread is exiting).
fn with_pool<R>(mut f: impl FnMut(&mut Pool) -> R) -> R {
    POOL.try_with(|cell| cell.try_borrow_mut().ok().map(|mut pool| f(&mut pool)))
        .ok()
        .flatten()
        .unwrap_or_else(|| f(&mut Pool::new()))
}

impl Pool {
    const fn new() -> Self {
        Pool {
            compressors: Vec::new(),
            decompressor: None,
            scratch: Vec::new(),
        }
    }

    /// libdeflate-compresses `input` (one final block) onto `out`. False if it did not fit the
    /// bound (never); `out` is then as it was.
    fn compress(&mut self, level: i32, input: &[u8], out: &mut Vec<u8>) -> bool {
        let i = match self.compressors.iter().position(|(l, _)| *l == level) {
            Some(i) => i,
            None => {
                let lvl = CompressionLvl::new(level).unwrap_or_default();
                self.compressors.push((level, Compressor::new(lvl)));
                self.compressors.len() - 1
            }
        };
        let Some((_, c)) = self.compressors.get_mut(i) else {
            return false;
        };
        let start = out.len();
        let bound = c.deflate_compress_bound(input.len());
        out.reserve_exact(bound);
        out.resize(start + bound, 0);
        match c.deflate_compress(input, &mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                if sync_end::end_with_sync_flush(out, start).is_err() {
                    out.truncate(start);
                    return false;
                }
                true
            }
            Err(_) => {
                out.truncate(start);
                false
            }
        }
    }

    /// libdeflate-inflates the whole message `input` onto `out`, at most `max` bytes.
    fn inflate(&mut self, input: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), InflateError> {
        self.scratch.clear();
        self.scratch.extend_from_slice(input);
        self.scratch.extend_from_slice(&FAST_TAIL);
        let d = self.decompressor.get_or_insert_with(Decompressor::new);
        let start = out.len();
        let mut size = min(max, max_of(input.len().saturating_mul(8), 4096));
        let res = loop {
            out.truncate(start);
            out.reserve_exact(size);
            out.resize(start + size, 0);
            match d.deflate_decompress(&self.scratch, &mut out[start..]) {
                Ok(n) => {
                    out.truncate(start + n);
                    break Ok(());
                }
                Err(DecompressionError::BadData) => break Err(InflateError::Corrupt),
                Err(DecompressionError::InsufficientSpace) => {
                    if size >= max {
                        break Err(InflateError::TooBig { max });
                    }
                    size = min(max, size.saturating_mul(2));
                }
            }
        };
        if res.is_err() {
            out.truncate(start);
        }
        if self.scratch.capacity() > SCRATCH_KEEP {
            self.scratch = Vec::new();
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;
    use proptest::collection::vec;
    use proptest::prelude::*;

    const SIZES: [usize; 11] = [
        0,
        1,
        100,
        1023,
        1024,
        1025,
        32767,
        32768,
        32769,
        100_000,
        1 << 20,
    ];
    const WINDOWS: [u8; 4] = [9, 10, 12, 15];

    /// xorshift64*: deterministic test data without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    /// JSON-like text: records with repeated keys and varying values.
    fn json(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = Rng(seed | 1);
        let mut s = String::with_capacity(len + 128);
        let names = ["alice", "bob", "carol", "dave", "eve", "mallory"];
        while s.len() < len {
            let r = rng.next();
            s.push_str(&format!(
                r#"{{"id":{},"user":"{}","price":{}.{:02},"tags":["x{}","y"],"ok":{}}},"#,
                r % 100_000,
                names[(r >> 20) as usize % names.len()],
                (r >> 30) % 1000,
                (r >> 40) % 100,
                (r >> 48) % 16,
                r & 1 == 0
            ));
        }
        s.truncate(len);
        s.into_bytes()
    }

    fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = Rng(seed | 1);
        (0..len).map(|_| (rng.next() >> 32) as u8).collect()
    }

    /// Sender and receiver states for one direction: the receiver's `recv_*` mirror the
    /// sender's `send_*`.
    fn pair(context_takeover: bool, bits: u8) -> (DeflateState, DeflateState) {
        let opts = DeflateOptions {
            threshold: 0,
            ..DeflateOptions::default()
        };
        let tx = Params {
            send_window_bits: bits,
            recv_window_bits: 15,
            send_no_context_takeover: !context_takeover,
            recv_no_context_takeover: true,
        };
        let rx = Params {
            send_window_bits: 15,
            recv_window_bits: bits,
            send_no_context_takeover: true,
            recv_no_context_takeover: !context_takeover,
        };
        (DeflateState::new(tx, &opts), DeflateState::new(rx, &opts))
    }

    fn compressed(tx: &mut DeflateState, msg: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        tx.compress(msg, &mut out);
        assert!(
            !msg.is_empty() || !out.is_empty(),
            "the empty message still has a block"
        );
        assert!(
            !out.ends_with(&TAIL) || out.len() < 5,
            "tail left at the end: {:02x?}",
            &out[out.len().saturating_sub(8)..]
        );
        out
    }

    fn inflated(rx: &mut DeflateState, data: &[u8], max: usize) -> Result<Vec<u8>, InflateError> {
        let mut out = b"prefix".to_vec();
        rx.decompress(data, max, &mut out)?;
        assert_eq!(&out[..6], b"prefix", "decompress appends");
        Ok(out.split_off(6))
    }

    /// Every size through one sender/receiver pair, in a row (so context takeover carries the
    /// window from message to message).
    fn round_trips(context_takeover: bool, gen: fn(usize, u64) -> Vec<u8>) {
        for bits in WINDOWS {
            let (mut tx, mut rx) = pair(context_takeover, bits);
            assert_eq!(tx.fast_send(), !context_takeover && bits == 15);
            assert_eq!(rx.fast_recv(), !context_takeover);
            for (i, &size) in SIZES.iter().enumerate() {
                let msg = gen(size, i as u64 + 7);
                let data = compressed(&mut tx, &msg);
                let back = inflated(&mut rx, &data, size).unwrap_or_else(|e| {
                    panic!("ctx {context_takeover} bits {bits} size {size}: {e}")
                });
                assert!(
                    back == msg,
                    "ctx {context_takeover} bits {bits} size {size}: round trip differs"
                );
            }
        }
    }

    #[test]
    fn round_trip_json_context_takeover() {
        round_trips(true, json);
    }

    #[test]
    fn round_trip_json_no_context_takeover() {
        round_trips(false, json);
    }

    #[test]
    fn round_trip_random_context_takeover() {
        round_trips(true, random);
    }

    #[test]
    fn round_trip_random_no_context_takeover() {
        round_trips(false, random);
    }

    #[test]
    fn context_takeover_keeps_the_window() {
        for bits in WINDOWS {
            // zlib matches within the window less 262 bytes of lookahead.
            let msg = json(min(2000, (1 << bits) - 272), 1);
            let (mut tx, mut rx) = pair(true, bits);
            let first = compressed(&mut tx, &msg);
            let second = compressed(&mut tx, &msg);
            assert!(
                second.len() * 4 < first.len(),
                "bits {bits}: {} then {}",
                first.len(),
                second.len()
            );
            assert_eq!(inflated(&mut rx, &first, msg.len()).unwrap(), msg);
            assert_eq!(inflated(&mut rx, &second, msg.len()).unwrap(), msg);
            // Without the first message's window the second does not inflate to the message.
            let (_, mut fresh) = pair(false, bits);
            assert_ne!(
                inflated(&mut fresh, &second, 1 << 20).ok(),
                Some(msg.clone())
            );
            let (_, mut fresh) = pair(true, bits);
            assert_ne!(
                inflated(&mut fresh, &second, 1 << 20).ok(),
                Some(msg.clone())
            );
            assert!(tx.heap_size() > 0 && rx.heap_size() > 0);
        }
    }

    #[test]
    fn heap_size_per_mode() {
        let msg = json(5000, 4);
        for (ctx, bits) in [(true, 15), (true, 9), (false, 12), (false, 15)] {
            let (mut tx, mut rx) = pair(ctx, bits);
            assert_eq!((tx.heap_size(), rx.heap_size()), (0, 0), "created lazily");
            let data = compressed(&mut tx, &msg);
            inflated(&mut rx, &data, msg.len()).unwrap();
            let streaming_tx = ctx || bits < 15;
            assert_eq!(
                tx.heap_size(),
                if streaming_tx {
                    compressor_heap_size(bits)
                } else {
                    0
                }
            );
            assert_eq!(
                rx.heap_size(),
                if ctx { decompressor_heap_size() } else { 0 }
            );
        }
        assert!((370_000..390_000).contains(&compressor_heap_size(15)));
        assert!((245_000..260_000).contains(&compressor_heap_size(9)));
        assert!((45_000..50_000).contains(&decompressor_heap_size()));
    }

    #[test]
    fn no_context_takeover_repeats_the_size() {
        let msg = json(2000, 1);
        for bits in WINDOWS {
            let (mut tx, _) = pair(false, bits);
            let first = compressed(&mut tx, &msg);
            let second = compressed(&mut tx, &msg);
            assert_eq!(first, second, "bits {bits}");
        }
    }

    #[test]
    fn fast_paths_hold_nothing() {
        let (mut tx, mut rx) = pair(false, 15);
        let msg = json(5000, 3);
        let data = compressed(&mut tx, &msg);
        assert_eq!(inflated(&mut rx, &data, msg.len()).unwrap(), msg);
        assert_eq!((tx.heap_size(), rx.heap_size()), (0, 0));
    }

    #[test]
    fn should_compress_bounds() {
        let opts = DeflateOptions {
            threshold: 10,
            max_compress_size: 100,
            ..DeflateOptions::default()
        };
        let p = Params {
            send_window_bits: 15,
            recv_window_bits: 15,
            send_no_context_takeover: true,
            recv_no_context_takeover: true,
        };
        let s = DeflateState::new(p, &opts);
        assert_eq!(s.params(), p);
        assert!(
            !s.should_compress(9)
                && s.should_compress(10)
                && s.should_compress(100)
                && !s.should_compress(101)
        );
        let s = DeflateState::new(
            Params {
                send_window_bits: 8,
                ..p
            },
            &opts,
        );
        assert!(!s.should_compress(50));
    }

    /// The RFC 7692 §7.2.3 samples inflate on both paths.
    #[test]
    fn rfc_samples() {
        let samples: [&[u8]; 3] = [
            &hex!("f248cdc9c90700"),            // §7.2.3.1
            &hex!("0005 00faff 48656c6c6f 00"), // §7.2.3.3, stored block
            &hex!("f348cdc9c90700 00"),         // §7.2.3.4, BFINAL = 1
        ];
        for ctx in [false, true] {
            for data in samples {
                let (_, mut rx) = pair(ctx, 15);
                assert_eq!(inflated(&mut rx, data, 5).unwrap(), b"Hello");
                // The next message still inflates (after BFINAL the stream is reset).
                assert_eq!(
                    inflated(&mut rx, &hex!("f248cdc9c90700"), 5).unwrap(),
                    b"Hello"
                );
            }
        }
        // §7.2.3.2: the second "Hello" refers to the first.
        let (_, mut rx) = pair(true, 15);
        assert_eq!(
            inflated(&mut rx, &hex!("f248cdc9c90700"), 5).unwrap(),
            b"Hello"
        );
        assert_eq!(inflated(&mut rx, &hex!("f200110000"), 5).unwrap(), b"Hello");
        // Empty messages: `00` (§7.2.3.6) and, leniently, an empty payload.
        for ctx in [false, true] {
            let (_, mut rx) = pair(ctx, 15);
            assert_eq!(inflated(&mut rx, &hex!("00"), 0).unwrap(), b"");
            assert_eq!(inflated(&mut rx, &[], 0).unwrap(), b"");
            assert_eq!(
                inflated(&mut rx, &hex!("f248cdc9c90700"), 5).unwrap(),
                b"Hello"
            );
        }
    }

    #[test]
    fn zlib_rs_matches_rfc_bytes() {
        let (mut tx, _) = pair(true, 15);
        assert_eq!(compressed(&mut tx, b"Hello"), hex!("f248cdc9c90700"));
        assert_eq!(compressed(&mut tx, b"Hello"), hex!("f200110000"));
    }

    /// Why the fast receive path appends an empty final block: libdeflate rejects a stream
    /// without one.
    #[test]
    fn libdeflate_needs_a_final_block() {
        let mut d = Decompressor::new();
        let mut out = [0u8; 16];
        let with_tail = hex!("f248cdc9c90700 0000ffff");
        assert!(d.deflate_decompress(&with_tail, &mut out).is_err());
        let with_final = hex!("f248cdc9c90700 0000ffff 010000ffff");
        assert_eq!(d.deflate_decompress(&with_final, &mut out).ok(), Some(5));
        assert_eq!(&out[..5], b"Hello");
    }

    #[test]
    fn exact_limit() {
        let msg = json(50_000, 9);
        for ctx in [false, true] {
            let (mut tx, mut rx) = pair(ctx, 15);
            let data = compressed(&mut tx, &msg);
            assert_eq!(inflated(&mut rx, &data, msg.len()).unwrap(), msg);
            let data = compressed(&mut tx, &msg);
            let mut out = Vec::new();
            assert_eq!(
                rx.decompress(&data, msg.len() - 1, &mut out),
                Err(InflateError::TooBig { max: msg.len() - 1 })
            );
            assert!(out.is_empty());
        }
    }

    /// 10 MiB of zeros (about 10 KiB compressed) against a 1 MiB limit.
    #[test]
    fn bomb_is_too_big() {
        let zeros = vec![0u8; 10 << 20];
        let max = 1 << 20;
        let mut peer = Compress::new(Compression::new(9), false);
        let mut sync = Vec::with_capacity(64 << 10);
        peer.compress_vec(&zeros, &mut sync, FlushCompress::Sync)
            .unwrap();
        assert!(
            sync.ends_with(&TAIL) && sync.len() < 32 << 10,
            "{}",
            sync.len()
        );
        sync.truncate(sync.len() - 4);
        let (mut tx, _) = pair(false, 15);
        let fast = compressed(&mut tx, &zeros);
        for data in [&sync, &fast] {
            for ctx in [false, true] {
                let (_, mut rx) = pair(ctx, 15);
                let mut out = Vec::new();
                assert_eq!(
                    rx.decompress(data, max, &mut out),
                    Err(InflateError::TooBig { max })
                );
                assert!(out.is_empty());
                assert!(
                    out.capacity() <= max + 1,
                    "ctx {ctx}: capacity {}",
                    out.capacity()
                );
            }
        }
    }

    #[test]
    fn corrupt_inputs() {
        let cases: [&[u8]; 4] = [
            &hex!("ff"), // reserved block type 11
            &hex!("ffffffffffffffff"),
            &hex!("0005 0000 48656c6c6f"), // stored block, NLEN wrong
            &hex!("030200"),               // fixed block, a match at distance 1 with no output yet
        ];
        for ctx in [false, true] {
            for data in cases {
                let (_, mut rx) = pair(ctx, 15);
                let mut out = b"kept".to_vec();
                assert_eq!(
                    rx.decompress(data, 1 << 20, &mut out),
                    Err(InflateError::Corrupt),
                    "ctx {ctx} {data:02x?}"
                );
                assert_eq!(out, b"kept");
            }
        }
    }

    /// A peer's zlib: raw deflate with a sync flush, the tail removed; and its inflater reading
    /// what we send, with the tail appended.
    #[test]
    fn flate2_peer_interop() {
        for bits in WINDOWS {
            for ctx in [false, true] {
                let mut peer_tx = Compress::new_with_window_bits(Compression::new(6), false, bits);
                let mut peer_rx = Decompress::new_with_window_bits(false, 15);
                let (mut tx, _) = pair(ctx, bits);
                let (_, mut rx) = pair(ctx, bits);
                for i in 0..4u64 {
                    let msg = json(3000 + i as usize * 1000, i);
                    // peer → us
                    let mut data = Vec::with_capacity(msg.len() + 64);
                    peer_tx
                        .compress_vec(&msg, &mut data, FlushCompress::Sync)
                        .unwrap();
                    assert!(data.ends_with(&TAIL));
                    data.truncate(data.len() - 4);
                    assert_eq!(
                        inflated(&mut rx, &data, msg.len()).unwrap(),
                        msg,
                        "bits {bits} ctx {ctx} msg {i}"
                    );
                    if !ctx {
                        peer_tx.reset();
                    }
                    // us → peer
                    let mut data = compressed(&mut tx, &msg);
                    data.extend_from_slice(&TAIL);
                    let mut back = Vec::with_capacity(msg.len() + 16);
                    let st = peer_rx
                        .decompress_vec(&data, &mut back, FlushDecompress::Sync)
                        .unwrap();
                    assert_eq!(back, msg, "bits {bits} ctx {ctx} msg {i}");
                    // Every message ends with a sync flush, on every path: the stream goes on.
                    assert_ne!(st, Status::StreamEnd, "bits {bits} ctx {ctx} msg {i}");
                    if !ctx && i % 2 == 0 {
                        // Some peers reset after each message when no context is kept (ws);
                        // others never do (browsers). Both must work.
                        peer_rx.reset(false);
                    }
                }
            }
        }
    }

    #[test]
    fn the_empty_message_after_others_on_every_path() {
        use flate2::{Decompress, FlushDecompress, Status};
        for (ctx, bits) in [(false, 15), (true, 15), (false, 10), (true, 9)] {
            let (mut tx, _) = pair(ctx, bits);
            let mut peer = Decompress::new(false);
            for (i, msg) in [
                json(5000, 1),
                Vec::new(),
                json(3000, 2),
                Vec::new(),
                Vec::new(),
            ]
            .iter()
            .enumerate()
            {
                let mut data = compressed(&mut tx, msg);
                if msg.is_empty() {
                    assert_eq!(data, [0x00], "ctx {ctx} bits {bits} message {i}");
                }
                data.extend_from_slice(&TAIL);
                let mut back = Vec::with_capacity(msg.len() + 64);
                let st = peer
                    .decompress_vec(&data, &mut back, FlushDecompress::Sync)
                    .unwrap();
                assert_ne!(st, Status::StreamEnd);
                assert_eq!(back, *msg, "ctx {ctx} bits {bits} message {i}");
            }
        }
    }

    /// Node's zlib (what ws uses) inflates our output and we inflate its; skipped without node
    /// (a failure under `CI=true`).
    #[test]
    fn node_interop() {
        if std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "node_interop: `node` is not on PATH (CI=true: a missing peer is a failure)"
            );
            eprintln!("SKIPPED: node_interop: no `node` on PATH");
            return;
        }
        let dir = std::env::temp_dir().join(format!("wsx-deflate-node-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let msg = json(100_000, 5);
        std::fs::write(dir.join("msg"), &msg).unwrap();
        let (mut fast, _) = pair(false, 15);
        std::fs::write(dir.join("fast"), compressed(&mut fast, &msg)).unwrap();
        let (mut streaming, _) = pair(false, 10);
        std::fs::write(dir.join("stream"), compressed(&mut streaming, &msg)).unwrap();
        let script = r#"
            const zlib = require('zlib'), fs = require('fs'), path = require('path');
            const dir = process.argv[1];
            const msg = fs.readFileSync(path.join(dir, 'msg'));
            const tail = Buffer.from([0, 0, 0xff, 0xff]);
            for (const name of ['fast', 'stream']) {
                const data = fs.readFileSync(path.join(dir, name));
                const out = zlib.inflateRawSync(Buffer.concat([data, tail]), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
                if (!out.equals(msg)) { console.error(name + ': differs'); process.exit(1); }
            }
            const ours = zlib.deflateRawSync(msg, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
            if (!ours.subarray(ours.length - 4).equals(tail)) { console.error('no tail'); process.exit(1); }
            fs.writeFileSync(path.join(dir, 'node'), ours.subarray(0, ours.length - 4));
            console.log('ok');
        "#;
        let out = std::process::Command::new("node")
            .arg("-e")
            .arg(script)
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "node: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let from_node = std::fs::read(dir.join("node")).unwrap();
        for ctx in [false, true] {
            let (_, mut rx) = pair(ctx, 15);
            assert_eq!(inflated(&mut rx, &from_node, msg.len()).unwrap(), msg);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn stored_fallback_inflates() {
        for size in [0, 1, 0xffff, 0x10000, 200_000] {
            let msg = random(size, 3);
            let mut data = Vec::new();
            stored(&msg, &mut data);
            for ctx in [false, true] {
                let (_, mut rx) = pair(ctx, 15);
                assert_eq!(inflated(&mut rx, &data, size).unwrap(), msg);
            }
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in vec(any::<u8>(), 0..2048), ctx in any::<bool>(), max in 0usize..100_000) {
            let (_, mut rx) = pair(ctx, 15);
            let mut out = Vec::new();
            match rx.decompress(&data, max, &mut out) {
                Ok(()) => prop_assert!(out.len() <= max),
                Err(_) => prop_assert!(out.is_empty()),
            }
            // The state stays usable.
            let mut out = Vec::new();
            let _ = rx.decompress(&hex!("f248cdc9c90700"), 5, &mut out);
        }

        #[test]
        fn mutated_messages_never_panic(pos in any::<usize>(), xor in 1u8.., ctx in any::<bool>()) {
            let msg = json(4000, 2);
            let (mut tx, mut rx) = pair(ctx, 15);
            let mut data = compressed(&mut tx, &msg);
            let i = pos % data.len();
            data[i] ^= xor;
            let mut out = Vec::new();
            match rx.decompress(&data, msg.len(), &mut out) {
                Ok(()) => prop_assert!(out.len() <= msg.len()),
                Err(_) => prop_assert!(out.is_empty()),
            }
        }
    }
}

//! The portable path and the oracle the SIMD paths are tested against: one `u64` XOR per 8 bytes.
//!
//! Always compiled. Safe code only: the word loads are `u64::from_ne_bytes` on 8-byte chunks.
//! A long buffer gets an unaligned head first so that, when the allocator allows, the words are
//! aligned; a short one (the small frames of chat-like traffic) is not worth the detour.

/// From this length on, [`apply`] aligns its words first (a byte loop of up to 7 steps); below
/// it unaligned words are cheaper than the head.
const ALIGN_FROM: usize = 64;

/// The key as seen from payload position `offset`: byte `i` masks payload byte `offset + i`.
#[inline]
pub(super) fn rotate(key: [u8; 4], offset: usize) -> [u8; 4] {
    // Little-endian view: rotating right by one byte moves key[1] to index 0.
    let shift = ((offset & 3) * 8) as u32;
    u32::from_le_bytes(key).rotate_right(shift).to_le_bytes()
}

/// Byte-at-a-time: for heads and the last 0–3 bytes. `key` is already rotated to `buf[0]`.
#[inline]
fn bytes(buf: &mut [u8], key: [u8; 4]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// XORs `buf` with `key` word by word, `key` already rotated to `buf[0]`: `u64` words, then
/// one `u32`, then the last bytes. Every step is a multiple of 4 bytes, so the key phase holds
/// throughout. Also the tail of the vector paths (whose steps are multiples of 4 too). Always
/// inlined: [`super::apply_mask`] runs it in the caller for small frames.
#[inline(always)]
pub(super) fn words(buf: &mut [u8], key: [u8; 4]) {
    let half = u32::from_ne_bytes(key);
    // Both halves are the same 4 bytes, so the word is right in either byte order.
    let word = u64::from(half) * 0x1_0000_0001;
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        // Always 8 bytes long; the `if let` leaves no panic path behind.
        if let Ok(chunk) = <&mut [u8; 8]>::try_from(chunk) {
            *chunk = (u64::from_ne_bytes(*chunk) ^ word).to_ne_bytes();
        }
    }
    let rest = chunks.into_remainder();
    let (four, last) = rest.split_at_mut(rest.len() & 4);
    if let Ok(four) = <&mut [u8; 4]>::try_from(four) {
        *four = (u32::from_ne_bytes(*four) ^ half).to_ne_bytes();
    }
    bytes(last, key);
}

/// XORs `buf` with `key`, `buf[0]` being payload position `offset`.
#[inline]
pub(super) fn apply(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate(key, offset);
    if buf.len() < ALIGN_FROM {
        words(buf, key);
        return;
    }
    // `align_offset` may answer usize::MAX; correctness never depends on it, only speed.
    let head = buf.as_ptr().align_offset(8).min(buf.len());
    let (head_bytes, rest) = buf.split_at_mut(head);
    bytes(head_bytes, key);
    words(rest, rotate(key, head));
}

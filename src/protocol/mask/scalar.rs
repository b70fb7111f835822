//! The portable path and the oracle the SIMD paths are tested against: one `u64` XOR per 8 bytes.
//!
//! Always compiled. Safe code only: the word loads are `u64::from_ne_bytes` on 8-byte chunks,
//! after an unaligned head so that, when the allocator allows, the words are aligned.

/// The key as seen from payload position `offset`: byte `i` masks payload byte `offset + i`.
#[inline]
pub(super) fn rotate(key: [u8; 4], offset: usize) -> [u8; 4] {
    // Little-endian view: rotating right by one byte moves key[1] to index 0.
    let shift = ((offset & 3) * 8) as u32;
    u32::from_le_bytes(key).rotate_right(shift).to_le_bytes()
}

/// Byte-at-a-time: for heads, tails and tiny buffers. `key` is already rotated to `buf[0]`.
#[inline]
fn bytes(buf: &mut [u8], key: [u8; 4]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// XORs `buf` with `key`, `buf[0]` being payload position `offset`.
#[inline]
pub(super) fn apply(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate(key, offset);
    if buf.len() < 16 {
        bytes(buf, key);
        return;
    }
    // `align_offset` may answer usize::MAX; correctness never depends on it, only speed.
    let head = buf.as_ptr().align_offset(8).min(buf.len());
    let (head_bytes, rest) = buf.split_at_mut(head);
    bytes(head_bytes, key);
    let key = rotate(key, head);
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut words = rest.chunks_exact_mut(8);
    for chunk in &mut words {
        // Always 8 bytes long; the `if let` leaves no panic path behind.
        if let Ok(chunk) = <&mut [u8; 8]>::try_from(chunk) {
            *chunk = (u64::from_ne_bytes(*chunk) ^ word).to_ne_bytes();
        }
    }
    // A multiple of 8 bytes went by, so the key phase is unchanged for the tail.
    bytes(words.into_remainder(), key);
}

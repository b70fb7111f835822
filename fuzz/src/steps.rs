//! What a target's seed byte decides besides the input: pseudo-random read sizes, so that one
//! input also tries the chunking a socket could impose on it, and the handshake limits.

use wsx::Limits;

/// An xorshift32 sequence seeded by one byte.
pub struct Steps(u32);

impl Steps {
    /// The sequence for `seed`.
    pub fn new(seed: u8) -> Steps {
        Steps(u32::from(seed) | 0x100)
    }

    /// The next read size, 1 to `max` bytes.
    pub fn next(&mut self, max: u32) -> usize {
        let mut s = self.0;
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        self.0 = s;
        1 + (s % max) as usize
    }
}

/// The handshake limits for `seed`: the defaults, or (top bit set) a 256-byte head of at most 8
/// header lines, so that the limits are reached often.
pub fn head_limits(seed: u8) -> Limits {
    if seed & 0x80 == 0 {
        Limits::DEFAULT
    } else {
        Limits {
            max_head_size: 256,
            max_headers: 8,
            ..Limits::DEFAULT
        }
    }
}

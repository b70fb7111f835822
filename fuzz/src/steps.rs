//! Pseudo-random read sizes from a target's seed byte, so that one input also tries the chunking
//! a socket could impose on it (makeChunked in the libFuzzer sense).

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

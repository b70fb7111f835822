//! Frame payload masking (RFC 6455 §5.3): XOR with a 4-byte key, vectorised.
//!
//! STUB: the SIMD helper replaces this file (scalar.rs, x86.rs, neon.rs + dispatch).

/// XORs `buf` in place with `key`, starting at byte `offset` of the key
/// (`offset` is the payload position of `buf[0]`, taken modulo 4).
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(offset + i) & 3];
    }
}

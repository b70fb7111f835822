//! x86-64 paths: SSE2 (16 bytes a step) and AVX2 (32 bytes a step), unrolled 4×.
//!
//! Both XOR the middle with the key broadcast to a vector and leave the tail (< one vector) to
//! [`scalar::words`]. A buffer of [`ALIGN_FROM`] bytes or more aligns the destination first (the
//! scalar head); a shorter one (a small frame) goes unaligned from its first byte, which costs
//! less than the head. Every step is a multiple of 4 bytes, so the key phase after the head
//! holds for the whole middle and the tail.
//!
//! Intrinsics are called only inside the `unsafe` blocks that also do the pointer loads, which
//! keeps the code valid both before Rust 1.87 (when every intrinsic was an `unsafe fn`) and after.

use core::arch::x86_64::{
    __m128i, __m256i, _mm256_loadu_si256, _mm256_storeu_si256, _mm256_xor_si256, _mm_loadu_si128,
    _mm_storeu_si128, _mm_xor_si128,
};

use super::scalar;

/// From this length on the vector paths align the destination first.
const ALIGN_FROM: usize = 256;

/// The rotated key repeated over `N` 4-byte lanes, ready for an unaligned vector load.
#[inline(always)]
fn broadcast<const N: usize>(key: [u8; 4]) -> [u32; N] {
    [u32::from_ne_bytes(key); N]
}

/// How many bytes of `buf` the scalar head takes: up to `lanes` alignment for a long buffer,
/// none for a short one.
#[inline(always)]
fn head_len(buf: &[u8], lanes: usize) -> usize {
    if buf.len() < ALIGN_FROM {
        return 0;
    }
    buf.as_ptr().align_offset(lanes).min(buf.len())
}

/// Masks `buf` with SSE2.
///
/// # Safety
/// The CPU must support SSE2 (every x86-64 CPU does; the dispatcher still asks
/// `is_x86_feature_detected!("sse2")`).
#[target_feature(enable = "sse2")]
pub(super) unsafe fn sse2(buf: &mut [u8], key: [u8; 4], offset: usize) {
    const LANES: usize = 16;
    if buf.len() < LANES {
        scalar::apply(buf, key, offset);
        return;
    }
    let head = head_len(buf, LANES);
    let (head_bytes, rest) = buf.split_at_mut(head);
    scalar::apply(head_bytes, key, offset);
    let key = scalar::rotate(key, offset + head);
    let pattern = broadcast::<{ LANES / 4 }>(key);
    // SAFETY: `pattern` is 16 readable bytes (4 lanes of 4); `loadu` has no alignment
    // requirement; SSE2 is enabled on this function.
    let k: __m128i = unsafe { _mm_loadu_si128(pattern.as_ptr().cast()) };

    let mut blocks = rest.chunks_exact_mut(4 * LANES);
    for block in &mut blocks {
        let p = block.as_mut_ptr().cast::<__m128i>();
        // SAFETY: `block` is exactly 64 bytes we borrow mutably, so `p.add(0..4)` are four
        // in-bounds 16-byte vectors; `loadu`/`storeu` accept any alignment; SSE2 is enabled.
        unsafe {
            let (a, b, c, d) = (
                _mm_loadu_si128(p),
                _mm_loadu_si128(p.add(1)),
                _mm_loadu_si128(p.add(2)),
                _mm_loadu_si128(p.add(3)),
            );
            _mm_storeu_si128(p, _mm_xor_si128(a, k));
            _mm_storeu_si128(p.add(1), _mm_xor_si128(b, k));
            _mm_storeu_si128(p.add(2), _mm_xor_si128(c, k));
            _mm_storeu_si128(p.add(3), _mm_xor_si128(d, k));
        }
    }
    let mut vectors = blocks.into_remainder().chunks_exact_mut(LANES);
    for vector in &mut vectors {
        let p = vector.as_mut_ptr().cast::<__m128i>();
        // SAFETY: `vector` is exactly 16 bytes we borrow mutably; any alignment; SSE2 enabled.
        unsafe { _mm_storeu_si128(p, _mm_xor_si128(_mm_loadu_si128(p), k)) };
    }
    scalar::words(vectors.into_remainder(), key);
}

/// Masks `buf` with AVX2.
///
/// # Safety
/// The CPU must support AVX2 (`is_x86_feature_detected!("avx2")`).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn avx2(buf: &mut [u8], key: [u8; 4], offset: usize) {
    const LANES: usize = 32;
    if buf.len() < LANES {
        scalar::apply(buf, key, offset);
        return;
    }
    let head = head_len(buf, LANES);
    let (head_bytes, rest) = buf.split_at_mut(head);
    scalar::apply(head_bytes, key, offset);
    let key = scalar::rotate(key, offset + head);
    let pattern = broadcast::<{ LANES / 4 }>(key);
    // SAFETY: `pattern` is 32 readable bytes (8 lanes of 4); `loadu` has no alignment
    // requirement; AVX2 is enabled on this function.
    let k: __m256i = unsafe { _mm256_loadu_si256(pattern.as_ptr().cast()) };

    let mut blocks = rest.chunks_exact_mut(4 * LANES);
    for block in &mut blocks {
        let p = block.as_mut_ptr().cast::<__m256i>();
        // SAFETY: `block` is exactly 128 bytes we borrow mutably, so `p.add(0..4)` are four
        // in-bounds 32-byte vectors; `loadu`/`storeu` accept any alignment; AVX2 is enabled.
        unsafe {
            let (a, b, c, d) = (
                _mm256_loadu_si256(p),
                _mm256_loadu_si256(p.add(1)),
                _mm256_loadu_si256(p.add(2)),
                _mm256_loadu_si256(p.add(3)),
            );
            _mm256_storeu_si256(p, _mm256_xor_si256(a, k));
            _mm256_storeu_si256(p.add(1), _mm256_xor_si256(b, k));
            _mm256_storeu_si256(p.add(2), _mm256_xor_si256(c, k));
            _mm256_storeu_si256(p.add(3), _mm256_xor_si256(d, k));
        }
    }
    let mut vectors = blocks.into_remainder().chunks_exact_mut(LANES);
    for vector in &mut vectors {
        let p = vector.as_mut_ptr().cast::<__m256i>();
        // SAFETY: `vector` is exactly 32 bytes we borrow mutably; any alignment; AVX2 enabled.
        unsafe { _mm256_storeu_si256(p, _mm256_xor_si256(_mm256_loadu_si256(p), k)) };
    }
    scalar::words(vectors.into_remainder(), key);
}

//! aarch64 path: NEON, 16 bytes a step, unrolled 4×.
//!
//! Same shape as the x86 paths: scalar head up to 16-byte alignment, vector middle, scalar tail.
//! Every step is a multiple of 4 bytes, so the key phase after the head holds to the end.
//!
//! Intrinsics are called only inside the `unsafe` blocks that also do the pointer loads, which
//! keeps the code valid both before Rust 1.87 (when every intrinsic was an `unsafe fn`) and after.

use core::arch::aarch64::{uint8x16_t, veorq_u8, vld1q_u8, vst1q_u8};

use super::scalar;

/// Masks `buf` with NEON.
///
/// # Safety
/// The CPU must support NEON (`std::arch::is_aarch64_feature_detected!("neon")`; every
/// aarch64 Linux target has it).
#[target_feature(enable = "neon")]
pub(super) unsafe fn neon(buf: &mut [u8], key: [u8; 4], offset: usize) {
    const LANES: usize = 16;
    if buf.len() < LANES {
        scalar::apply(buf, key, offset);
        return;
    }
    let head = buf.as_ptr().align_offset(LANES).min(buf.len());
    let (head_bytes, rest) = buf.split_at_mut(head);
    scalar::apply(head_bytes, key, offset);
    let offset = offset + head;
    let r = scalar::rotate(key, offset);
    let mut pattern = [0u8; LANES];
    for (i, b) in pattern.iter_mut().enumerate() {
        *b = r[i & 3];
    }
    // SAFETY: `pattern` is 16 readable bytes; `vld1q_u8` has no alignment requirement beyond
    // `u8`; NEON is enabled on this function.
    let k: uint8x16_t = unsafe { vld1q_u8(pattern.as_ptr()) };

    let mut blocks = rest.chunks_exact_mut(4 * LANES);
    for block in &mut blocks {
        let p = block.as_mut_ptr();
        // SAFETY: `block` is exactly 64 bytes we borrow mutably, so the four 16-byte vectors at
        // `p`, `p + 16`, `p + 32`, `p + 48` are in bounds; `u8` alignment suffices; NEON enabled.
        unsafe {
            let (a, b, c, d) = (
                vld1q_u8(p),
                vld1q_u8(p.add(LANES)),
                vld1q_u8(p.add(2 * LANES)),
                vld1q_u8(p.add(3 * LANES)),
            );
            vst1q_u8(p, veorq_u8(a, k));
            vst1q_u8(p.add(LANES), veorq_u8(b, k));
            vst1q_u8(p.add(2 * LANES), veorq_u8(c, k));
            vst1q_u8(p.add(3 * LANES), veorq_u8(d, k));
        }
    }
    let mut vectors = blocks.into_remainder().chunks_exact_mut(LANES);
    for vector in &mut vectors {
        let p = vector.as_mut_ptr();
        // SAFETY: `vector` is exactly 16 bytes we borrow mutably; `u8` alignment; NEON enabled.
        unsafe { vst1q_u8(p, veorq_u8(vld1q_u8(p), k)) };
    }
    scalar::apply(vectors.into_remainder(), key, offset);
}

//! The vector path: `simdutf8::basic` (AVX2 or SSE4.2 on x86-64, NEON on aarch64, picked at run
//! time by simdutf8 itself and cached in a function pointer; std below 64 bytes).
//!
//! `basic` only says yes or no, which is all [`super::Utf8Validator`] needs: it finds the one
//! place a valid prefix may stop short (the last ≤ 3 bytes) itself, so the error positions of
//! `simdutf8::compat` never pay for a second pass.

/// `bytes` as `str` when they are complete, valid UTF-8.
#[inline]
pub(super) fn as_str(bytes: &[u8]) -> Option<&str> {
    simdutf8::basic::from_utf8(bytes).ok()
}

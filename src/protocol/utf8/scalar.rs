//! The portable path and the oracle: `core::str::from_utf8` (a word-at-a-time ASCII skip, then
//! a byte-at-a-time state machine). Used under `--cfg wsx_disable_simd` and Miri.

/// `bytes` as `str` when they are complete, valid UTF-8.
// With SIMD on, only the tests call this (as the oracle); it stays compiled so it cannot rot.
#[cfg_attr(not(any(wsx_disable_simd, miri, test)), allow(dead_code))]
#[inline]
pub(super) fn as_str(bytes: &[u8]) -> Option<&str> {
    core::str::from_utf8(bytes).ok()
}

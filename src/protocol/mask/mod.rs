//! Frame payload masking (RFC 6455 §5.3): XOR with a 4-byte key, vectorised.
//!
//! [`apply_mask`] is the one entry point the crate uses. It picks an implementation once per
//! process and caches the choice in an `AtomicU8` ([`selected`] says which):
//!
//! | [`Impl`]        | where                          | step                        |
//! |-----------------|--------------------------------|-----------------------------|
//! | [`Impl::Avx2`]  | x86-64 with AVX2               | 4 × 32 bytes                |
//! | [`Impl::Sse2`]  | any x86-64                     | 4 × 16 bytes                |
//! | [`Impl::Neon`]  | aarch64                        | 4 × 16 bytes                |
//! | [`Impl::Scalar`]| everywhere; the tests' oracle  | one `u64` XOR per 8 bytes   |
//!
//! Every path takes any length, any alignment and any starting key offset, because a frame's
//! payload arrives in pieces: `offset` is the payload position of `buf[0]`. The vector paths do the
//! unaligned head and the sub-vector tail with the scalar code.
//!
//! `--cfg wsx_disable_simd` (e.g. `RUSTFLAGS="--cfg wsx_disable_simd"`) and Miri compile the
//! vector paths out: only [`Impl::Scalar`] is then available.
//!
//! A single path can be driven directly, for tests and benchmarks, through [`Masker::new`], which
//! answers `None` when the CPU (or the build) lacks it.

// The vector paths are `#[target_feature] unsafe fn`s over raw vector loads and stores; this
// module and its children are the only place the crate-wide `deny(unsafe_code)` is lifted.
// Each `unsafe` block says why it holds (`// SAFETY:`), each `unsafe fn` has a `# Safety` section.
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::sync::atomic::{AtomicU8, Ordering};

#[cfg(all(target_arch = "aarch64", not(any(wsx_disable_simd, miri))))]
mod neon;
mod scalar;
#[cfg(all(target_arch = "x86_64", not(any(wsx_disable_simd, miri))))]
mod x86;

/// A masking implementation. Which ones exist on this CPU and build: [`Impl::is_available`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum Impl {
    /// Portable word-at-a-time code; always available.
    Scalar = 0,
    /// x86-64 SSE2, 128-bit vectors.
    Sse2 = 1,
    /// x86-64 AVX2, 256-bit vectors.
    Avx2 = 2,
    /// aarch64 NEON (Advanced SIMD), 128-bit vectors.
    Neon = 3,
}

impl Impl {
    /// Every implementation, available or not.
    pub const ALL: &'static [Impl] = &[Impl::Scalar, Impl::Sse2, Impl::Avx2, Impl::Neon];

    /// A short lower-case name (`"avx2"`), for test and benchmark output.
    pub fn name(self) -> &'static str {
        match self {
            Impl::Scalar => "scalar",
            Impl::Sse2 => "sse2",
            Impl::Avx2 => "avx2",
            Impl::Neon => "neon",
        }
    }

    /// Whether this build was compiled with the path and this CPU can run it.
    pub fn is_available(self) -> bool {
        match self {
            Impl::Scalar => true,
            #[cfg(all(target_arch = "x86_64", not(any(wsx_disable_simd, miri))))]
            Impl::Sse2 => std::arch::is_x86_feature_detected!("sse2"),
            #[cfg(all(target_arch = "x86_64", not(any(wsx_disable_simd, miri))))]
            Impl::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(all(target_arch = "aarch64", not(any(wsx_disable_simd, miri))))]
            Impl::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)] // reachable exactly when some path is compiled out
            _ => false,
        }
    }

    /// The implementation whose discriminant is `v` (a `match`, not a search: it runs on every
    /// dispatched call).
    #[inline]
    fn from_u8(v: u8) -> Option<Impl> {
        match v {
            0 => Some(Impl::Scalar),
            1 => Some(Impl::Sse2),
            2 => Some(Impl::Avx2),
            3 => Some(Impl::Neon),
            _ => None,
        }
    }
}

/// Buffers shorter than this are masked by [`scalar`] without dispatch: its word loop beats
/// the call into a `#[target_feature]` path (never inlined) for the small frames of chat-like
/// and market-data traffic.
const SMALL: usize = 64;

/// Not yet detected.
const UNKNOWN: u8 = u8::MAX;

/// INVARIANT: `UNKNOWN` or the discriminant of an `Impl` that `detect()` found available.
static SELECTED: AtomicU8 = AtomicU8::new(UNKNOWN);

fn detect() -> Impl {
    [Impl::Avx2, Impl::Sse2, Impl::Neon]
        .into_iter()
        .find(|imp| imp.is_available())
        .unwrap_or(Impl::Scalar)
}

/// The implementation [`apply_mask`] uses: the widest available, detected on first use and cached.
#[inline]
pub fn selected() -> Impl {
    if let Some(imp) = Impl::from_u8(SELECTED.load(Ordering::Relaxed)) {
        return imp;
    }
    // Racing threads detect the same answer; `Relaxed` is enough for a value that never changes.
    let imp = detect();
    SELECTED.store(imp as u8, Ordering::Relaxed);
    imp
}

/// XORs `buf` in place with `key`, starting at byte `offset` of the key
/// (`offset` is the payload position of `buf[0]`, taken modulo 4).
///
/// Masking and unmasking are the same operation. Runs on [`selected`].
///
/// # Examples
/// ```
/// use wsx::protocol::mask::apply_mask;
///
/// // RFC 6455 §5.7: a masked "Hello", unmasked in two pieces.
/// let key = [0x37, 0xfa, 0x21, 0x3d];
/// let mut payload = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
/// let (a, b) = payload.split_at_mut(3);
/// apply_mask(a, key, 0);
/// apply_mask(b, key, 3);
/// assert_eq!(&payload, b"Hello");
/// ```
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    if buf.len() < SMALL {
        // Inline in the caller: a few word XORs, no call.
        scalar::words(buf, scalar::rotate(key, offset));
        return;
    }
    apply_dispatched(buf, key, offset);
}

/// [`apply_mask`] from [`SMALL`] bytes on: through the cached choice, one call away.
#[inline(never)]
fn apply_dispatched(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let imp = selected();
    // SAFETY: `selected()` only returns an implementation `detect()` found available.
    unsafe { apply_unchecked(imp, buf, key, offset) }
}

/// Runs `imp` on `buf`.
///
/// # Safety
/// `imp.is_available()` must be true: the vector paths execute instructions the CPU may lack.
#[inline]
unsafe fn apply_unchecked(imp: Impl, buf: &mut [u8], key: [u8; 4], offset: usize) {
    // Only the phase matters; reducing it here keeps `offset + head` in the paths from overflowing.
    let offset = offset & 3;
    match imp {
        #[cfg(all(target_arch = "x86_64", not(any(wsx_disable_simd, miri))))]
        // SAFETY: the caller guarantees `Impl::Avx2.is_available()`, i.e. the CPU has AVX2.
        Impl::Avx2 => unsafe { x86::avx2(buf, key, offset) },
        #[cfg(all(target_arch = "x86_64", not(any(wsx_disable_simd, miri))))]
        // SAFETY: the caller guarantees `Impl::Sse2.is_available()`, i.e. the CPU has SSE2.
        Impl::Sse2 => unsafe { x86::sse2(buf, key, offset) },
        #[cfg(all(target_arch = "aarch64", not(any(wsx_disable_simd, miri))))]
        // SAFETY: the caller guarantees `Impl::Neon.is_available()`, i.e. the CPU has NEON.
        Impl::Neon => unsafe { neon::neon(buf, key, offset) },
        // `Scalar`, and paths not compiled here (never available, so never passed).
        _ => scalar::apply(buf, key, offset),
    }
}

/// One masking implementation, checked to be runnable: for tests and benchmarks that compare
/// paths. Everything else calls [`apply_mask`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Masker {
    /// INVARIANT: `imp.is_available()`.
    imp: Impl,
}

impl Masker {
    /// A handle on `imp`, or `None` when this CPU or build lacks it.
    pub fn new(imp: Impl) -> Option<Masker> {
        imp.is_available().then_some(Masker { imp })
    }

    /// The handle [`apply_mask`] itself uses.
    pub fn selected() -> Masker {
        Masker { imp: selected() }
    }

    /// Which implementation this handle runs.
    pub fn implementation(&self) -> Impl {
        self.imp
    }

    /// Same contract as [`apply_mask`], on this handle's implementation.
    #[inline]
    pub fn apply(&self, buf: &mut [u8], key: [u8; 4], offset: usize) {
        // SAFETY: `Masker`'s invariant: `new` and `selected` only build available ones.
        unsafe { apply_unchecked(self.imp, buf, key, offset) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    /// A masking path under test, or the oracle it is compared with.
    type MaskFn<'a> = &'a dyn Fn(&mut [u8], [u8; 4], usize);

    /// The definition, byte by byte: what every path must equal.
    fn naive(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[offset.wrapping_add(i) & 3];
        }
    }

    /// Deterministic filler (xorshift64*), so a case is just a few numbers and shrinks well.
    fn fill(buf: &mut [u8], mut seed: u64) {
        seed |= 1;
        for b in buf {
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            *b = (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8;
        }
    }

    /// `path` and `oracle` agree on `buf[start..start + len]`, and leave the bytes around it alone.
    fn agree(
        path: MaskFn<'_>,
        oracle: MaskFn<'_>,
        (len, offset, start, key, seed): (usize, usize, usize, [u8; 4], u64),
    ) -> Result<(), TestCaseError> {
        let mut original = vec![0u8; start + len + 64];
        fill(&mut original, seed);
        let mut got = original.clone();
        let mut want = original.clone();
        path(&mut got[start..start + len], key, offset);
        oracle(&mut want[start..start + len], key, offset);
        prop_assert_eq!(&got[..start], &original[..start], "wrote before the slice");
        prop_assert_eq!(
            &got[start + len..],
            &original[start + len..],
            "wrote after the slice"
        );
        prop_assert_eq!(&got[start..start + len], &want[start..start + len]);
        Ok(())
    }

    fn case() -> impl Strategy<Value = (usize, usize, usize, [u8; 4], u64)> {
        (
            0usize..=4096,
            0usize..=3,
            0usize..=63,
            any::<[u8; 4]>(),
            any::<u64>(),
        )
    }

    /// Every length up to 300, every offset, every start alignment up to 64 — then the property.
    fn check(path: MaskFn<'_>, oracle: MaskFn<'_>) {
        for len in 0..=300 {
            for offset in 0..4 {
                for start in 0..64 {
                    let seed = (len * 256 + offset * 64 + start) as u64;
                    agree(path, oracle, (len, offset, start, hex!("a1b2c3d4"), seed))
                        .unwrap_or_else(|e| panic!("len {len} offset {offset} start {start}: {e}"));
                }
            }
        }
        let mut runner = TestRunner::new(Config {
            cases: 512,
            ..Config::default()
        });
        runner.run(&case(), |c| agree(path, oracle, c)).unwrap();
    }

    /// One property test per ISA: the path equals `scalar.rs`, or the test says why it skipped.
    macro_rules! isa_matches_scalar {
        ($name:ident, $imp:expr) => {
            #[test]
            fn $name() {
                let imp: Impl = $imp;
                let Some(m) = Masker::new(imp) else {
                    eprintln!(
                        "mask: SKIPPED {}: not compiled in (arch / wsx_disable_simd / miri) \
                         or this CPU lacks it",
                        imp.name()
                    );
                    return;
                };
                check(&|b, k, o| m.apply(b, k, o), &scalar::apply);
                eprintln!("mask paths tested: {} == scalar", imp.name());
            }
        };
    }

    isa_matches_scalar!(sse2_matches_scalar, Impl::Sse2);
    isa_matches_scalar!(avx2_matches_scalar, Impl::Avx2);
    isa_matches_scalar!(neon_matches_scalar, Impl::Neon);

    #[test]
    fn scalar_matches_definition() {
        check(&scalar::apply, &naive);
        eprintln!("mask paths tested: scalar == byte-at-a-time definition");
    }

    #[test]
    fn dispatched_matches_definition() {
        check(&apply_mask, &naive);
        eprintln!(
            "mask paths tested: dispatched ({}) == definition",
            selected().name()
        );
    }

    #[test]
    fn selection_is_cached_and_available() {
        let first = selected();
        assert!(first.is_available());
        assert_eq!(selected(), first);
        assert_eq!(Masker::selected().implementation(), first);
        assert!(Impl::Scalar.is_available());
        if cfg!(any(wsx_disable_simd, miri)) {
            assert_eq!(
                first,
                Impl::Scalar,
                "wsx_disable_simd / miri must force scalar"
            );
        }
        if cfg!(all(
            target_arch = "x86_64",
            not(any(wsx_disable_simd, miri))
        )) {
            assert_ne!(first, Impl::Scalar, "every x86-64 has SSE2");
        }
        let available: Vec<_> = Impl::ALL
            .iter()
            .copied()
            .filter(|i| i.is_available())
            .map(Impl::name)
            .collect();
        eprintln!(
            "mask paths available: {}; selected: {}",
            available.join(", "),
            first.name()
        );
    }

    #[test]
    fn every_implementation_round_trips_through_its_discriminant() {
        for imp in Impl::ALL.iter().copied() {
            assert_eq!(Impl::from_u8(imp as u8), Some(imp), "{}", imp.name());
        }
        assert_eq!(Impl::from_u8(UNKNOWN), None);
    }

    #[test]
    fn huge_offsets_only_count_modulo_4() {
        for imp in Impl::ALL.iter().copied().filter(|i| i.is_available()) {
            let m = Masker::new(imp).unwrap();
            for offset in [
                usize::MAX,
                usize::MAX - 1,
                usize::MAX - 2,
                usize::MAX - 3,
                1 << 40,
            ] {
                for len in [0, 5, 31, 32, 100, 300] {
                    let mut got: Vec<u8> = (0..len as u8).collect();
                    let mut want = got.clone();
                    m.apply(&mut got, hex!("a1b2c3d4"), offset);
                    naive(&mut want, hex!("a1b2c3d4"), offset);
                    assert_eq!(got, want, "{} offset {offset:#x} len {len}", imp.name());
                }
            }
        }
    }

    #[test]
    fn rfc6455_hello() {
        // RFC 6455 §5.7, "A single-frame masked text message", unmasked in every two-piece split.
        let masked = hex!("7f9f4d5158");
        for imp in Impl::ALL.iter().copied().filter(|i| i.is_available()) {
            let m = Masker::new(imp).unwrap();
            for split in 0..=masked.len() {
                let mut p = masked;
                let (a, b) = p.split_at_mut(split);
                m.apply(a, hex!("37fa213d"), 0);
                m.apply(b, hex!("37fa213d"), split);
                assert_eq!(&p, b"Hello", "{} split {split}", imp.name());
            }
        }
    }

    proptest! {
        /// Masking a payload in arbitrary pieces equals masking it whole (frames arrive split).
        #[test]
        fn pieces_compose(seed in any::<u64>(), len in 0usize..=2048, key in any::<[u8; 4]>(),
                          cuts in proptest::collection::vec(0usize..=2048, 0..8)) {
            let mut whole = vec![0u8; len];
            fill(&mut whole, seed);
            let mut pieces = whole.clone();
            apply_mask(&mut whole, key, 0);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(len)).collect();
            cuts.push(0);
            cuts.push(len);
            cuts.sort_unstable();
            for w in cuts.windows(2) {
                apply_mask(&mut pieces[w[0]..w[1]], key, w[0]);
            }
            prop_assert_eq!(pieces, whole);
        }
    }
}

//! Incremental UTF-8 validation across reads and fragments.
//!
//! A text message arrives in pieces — several frames, each read in several chunks — and RFC 6455
//! §8.1 wants an invalid one failed as soon as it is seen, not at its end (Autobahn 6.*
//! "fail fast"). [`Utf8Validator::feed`] therefore answers, for every piece, whether all bytes
//! seen so far can still begin valid UTF-8, and [`Utf8Validator::finish`] whether they ended on a
//! code point boundary. A code point split between two pieces is carried over in a 4-byte array:
//! no allocation, no copy of the piece.
//!
//! The bulk of each piece goes through [`selected`]: `simdutf8` (SIMD, runtime-detected by that
//! crate) or, under `--cfg wsx_disable_simd` and Miri, `core::str::from_utf8`.
//!
//! # Implementation notes
//! A piece is cut where its last code point starts if that one is incomplete (found by looking at
//! no more than its last 3 bytes). Everything before the cut must be complete UTF-8, checked in
//! one vector pass; the ≤ 3 bytes after it must be a valid *beginning* of a code point, checked by
//! `core::str::from_utf8` on those bytes alone, whose `error_len() == None` means exactly "cut off
//! early" (it rejects `F5`, `E0 80`, `ED A0`, `F4 90`… at once). The piece is a valid prefix if and
//! only if both hold, so no error position is ever needed.

use core::fmt;

mod scalar;
#[cfg(not(any(wsx_disable_simd, miri)))]
mod simd;

#[cfg(not(any(wsx_disable_simd, miri)))]
use simd as fast;

#[cfg(any(wsx_disable_simd, miri))]
use scalar as fast;

/// The bytes seen so far cannot be the start of valid UTF-8 (close code 1007).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Error;

impl fmt::Display for Utf8Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid utf-8")
    }
}

impl std::error::Error for Utf8Error {}

/// Which validator runs the bulk of the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Impl {
    /// `core::str::from_utf8`.
    Scalar,
    /// `simdutf8::basic` (AVX2 / SSE4.2 / NEON, chosen at run time by simdutf8).
    Simd,
}

impl Impl {
    /// A short lower-case name, for test and benchmark output.
    pub fn name(self) -> &'static str {
        match self {
            Impl::Scalar => "scalar",
            Impl::Simd => "simdutf8",
        }
    }
}

/// The validator this build uses: [`Impl::Simd`] unless built with `--cfg wsx_disable_simd` or
/// under Miri.
pub fn selected() -> Impl {
    if cfg!(any(wsx_disable_simd, miri)) {
        Impl::Scalar
    } else {
        Impl::Simd
    }
}

/// Validates a message that arrives in pieces.
///
/// # Examples
/// ```
/// use wsx::protocol::utf8::Utf8Validator;
///
/// let mut v = Utf8Validator::new();
/// // "€" (E2 82 AC) split across two frames is fine…
/// assert!(v.feed(b"price: \xE2\x82").is_ok());
/// assert!(v.feed(b"\xAC").is_ok());
/// assert!(v.finish().is_ok());
/// // …but a surrogate (ED A0 …) fails at the piece that shows it, before the message ends.
/// assert!(v.feed(b"ok \xED\xA0").is_err());
/// ```
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    /// The start of a code point cut off by the end of the previous piece.
    /// INVARIANT: `carry[..len]` is a valid, incomplete UTF-8 prefix, so `len <= 3` and
    /// `carry[0]` is a lead byte of width `len + 1 ..= 4`.
    carry: [u8; 4],
    len: u8,
    /// A feed failed; sticky until [`Utf8Validator::finish`] or [`Utf8Validator::reset`].
    failed: bool,
}

/// How many bytes the code point led by `lead` takes, for any lead that can start a valid one;
/// 1 for anything else (which validation then rejects).
#[inline]
fn width(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

/// `bytes` are the valid beginning of one code point, cut off before its end.
#[inline]
fn is_cut_short(bytes: &[u8]) -> bool {
    // `error_len() == None`: "the end of the input was reached unexpectedly" — every byte given
    // so far fits (overlongs, surrogates and > U+10FFFF are refused from their second byte).
    matches!(core::str::from_utf8(bytes), Err(e) if e.error_len().is_none())
}

/// Where `bytes` should be cut: before a trailing, incomplete code point, else at the end.
#[inline]
fn cut(bytes: &[u8]) -> usize {
    let n = bytes.len();
    for i in (n.saturating_sub(3)..n).rev() {
        let b = bytes[i];
        if b & 0xC0 != 0x80 {
            // The last non-continuation byte: the start of the last code point, if any.
            return if width(b) > n - i { i } else { n };
        }
    }
    n
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next piece.
    ///
    /// # Errors
    /// [`Utf8Error`] as soon as the bytes seen so far cannot be the prefix of valid UTF-8. The
    /// error is sticky: later feeds and [`finish`](Self::finish) fail too, until a reset.
    #[inline]
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), Utf8Error> {
        self.feed_with(bytes, fast::as_str)
    }

    /// [`feed`](Self::feed) with `complete` validating the bulk: lets the tests run every path.
    #[inline]
    fn feed_with<F>(&mut self, mut bytes: &[u8], complete: F) -> Result<(), Utf8Error>
    where
        F: for<'a> Fn(&'a [u8]) -> Option<&'a str>,
    {
        if self.failed {
            return Err(Utf8Error);
        }
        if self.len > 0 {
            // Finish the carried code point from the front of this piece.
            let have = usize::from(self.len);
            let want = width(self.carry[0]);
            debug_assert!((2..=4).contains(&want) && have < want, "carry invariant");
            let take = want.saturating_sub(have).min(bytes.len());
            let (front, rest) = bytes.split_at(take);
            let Some(slot) = self.carry.get_mut(have..have + take) else {
                return self.fail();
            };
            slot.copy_from_slice(front);
            let now = &self.carry[..have + take];
            if core::str::from_utf8(now).is_ok() {
                self.len = 0;
            } else if is_cut_short(now) {
                // Still short, so the piece was used up (`take < want - have` only then).
                self.len = (have + take) as u8;
                return Ok(());
            } else {
                return self.fail();
            }
            bytes = rest;
        }
        let (body, tail) = bytes.split_at(cut(bytes));
        if complete(body).is_none() {
            return self.fail();
        }
        debug_assert_eq!(self.len, 0, "any carry was completed above");
        if !tail.is_empty() {
            if !is_cut_short(tail) {
                return self.fail();
            }
            // `cut` leaves at most 3 bytes after the cut.
            for (slot, &b) in self.carry.iter_mut().zip(tail) {
                *slot = b;
            }
            self.len = tail.len() as u8;
        }
        Ok(())
    }

    #[cold]
    fn fail(&mut self) -> Result<(), Utf8Error> {
        self.failed = true;
        self.len = 0;
        Err(Utf8Error)
    }

    /// Whether the last piece ended inside a code point (its start is carried).
    pub fn is_partial(&self) -> bool {
        self.len > 0
    }

    /// Ends the message and resets the validator.
    ///
    /// # Errors
    /// [`Utf8Error`] when a code point is left incomplete, or a feed had failed.
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        let ok = !self.failed && self.len == 0;
        self.reset();
        if ok {
            Ok(())
        } else {
            Err(Utf8Error)
        }
    }

    /// Forgets any partial code point and any failure: the start of a new message.
    pub fn reset(&mut self) {
        self.len = 0;
        self.failed = false;
    }
}

/// Validates a complete buffer.
///
/// # Errors
/// [`Utf8Error`] when `bytes` are not valid UTF-8 (including when they end inside a code point).
#[inline]
pub fn validate(bytes: &[u8]) -> Result<(), Utf8Error> {
    as_str(bytes).map(|_| ())
}

/// Borrows a complete buffer as `str`, validating it.
///
/// # Errors
/// [`Utf8Error`] when `bytes` are not valid UTF-8 (including when they end inside a code point).
#[inline]
// The one `unsafe` here: ASCII, checked word by word, borrowed without a second validation.
#[allow(unsafe_code)]
pub fn as_str(bytes: &[u8]) -> Result<&str, Utf8Error> {
    if bytes.len() < SHORT && bytes.is_ascii() {
        // SAFETY: every byte is below 0x80, and ASCII is valid UTF-8.
        return Ok(unsafe { core::str::from_utf8_unchecked(bytes) });
    }
    fast::as_str(bytes).ok_or(Utf8Error)
}

/// Below this length [`as_str`] tries ASCII first (`<[u8]>::is_ascii`, a word at a time):
/// `simdutf8` hands short inputs to `core::str::from_utf8`, which spends ~4 instructions a byte
/// on a 32-byte message that does not start aligned.
const SHORT: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;
    use proptest::collection::vec;
    use proptest::prelude::*;

    type Bulk = for<'a> fn(&'a [u8]) -> Option<&'a str>;

    /// Every bulk path this build has.
    fn paths() -> Vec<(&'static str, Bulk)> {
        #[allow(unused_mut)] // one path only under wsx_disable_simd / miri
        let mut p: Vec<(&'static str, Bulk)> = vec![("scalar", scalar::as_str)];
        #[cfg(not(any(wsx_disable_simd, miri)))]
        p.push(("simdutf8", simd::as_str));
        p
    }

    fn report(test: &str) {
        let names: Vec<_> = paths().into_iter().map(|(n, _)| n).collect();
        eprintln!("utf8 paths tested ({test}): {}", names.join(", "));
        if cfg!(any(wsx_disable_simd, miri)) {
            eprintln!("utf8: SKIPPED simdutf8: compiled out (wsx_disable_simd / miri)");
        }
    }

    /// What RFC 3629 says of a byte string, written out independently of std and simdutf8.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Verdict {
        Valid,
        /// Every byte fits, but the last code point is incomplete.
        Truncated,
        /// `bytes[..i]` can begin valid UTF-8, `bytes[..=i]` cannot.
        BadAt(usize),
    }
    use Verdict::*;

    fn oracle(bytes: &[u8]) -> Verdict {
        let mut i = 0;
        while i < bytes.len() {
            // (continuation bytes, allowed range of the first of them)
            let (n, lo, hi) = match bytes[i] {
                0x00..=0x7f => (0, 0, 0),
                0xc2..=0xdf => (1, 0x80, 0xbf),
                0xe0 => (2, 0xa0, 0xbf),
                0xe1..=0xec | 0xee..=0xef => (2, 0x80, 0xbf),
                0xed => (2, 0x80, 0x9f),
                0xf0 => (3, 0x90, 0xbf),
                0xf1..=0xf3 => (3, 0x80, 0xbf),
                0xf4 => (3, 0x80, 0x8f),
                _ => return BadAt(i),
            };
            for k in 1..=n {
                let Some(&c) = bytes.get(i + k) else {
                    return Truncated;
                };
                let (lo, hi) = if k == 1 { (lo, hi) } else { (0x80, 0xbf) };
                if !(lo..=hi).contains(&c) {
                    return BadAt(i + k);
                }
            }
            i += n + 1;
        }
        Valid
    }

    fn std_is_prefix(bytes: &[u8]) -> bool {
        match std::str::from_utf8(bytes) {
            Ok(_) => true,
            Err(e) => e.error_len().is_none(),
        }
    }

    /// Feeds `bytes` in the pieces that `cuts` (sorted, ≤ len) mark, through `bulk`, and checks
    /// the validator against the oracle: the first failing feed is the piece holding the first
    /// bad byte, failure is sticky, and `finish` accepts exactly the valid whole.
    fn check(bytes: &[u8], cuts: &[usize], bulk: Bulk, path: &str) {
        let verdict = oracle(bytes);
        let mut v = Utf8Validator::new();
        let mut start = 0;
        let mut failed_at = None;
        for (k, &end) in cuts.iter().chain([bytes.len()].iter()).enumerate() {
            let r = v.feed_with(&bytes[start..end], bulk);
            match (failed_at, r) {
                (None, Err(_)) => failed_at = Some((k, start, end)),
                (Some(_), Ok(())) => panic!("{path}: error not sticky, {bytes:02x?} cuts {cuts:?}"),
                _ => {}
            }
            if failed_at.is_none() {
                assert_eq!(
                    v.is_partial(),
                    std::str::from_utf8(&bytes[..end]).is_err(),
                    "{path}: is_partial after {end} of {bytes:02x?}"
                );
            }
            start = end;
        }
        let fin = v.finish();
        let ctx = || format!("{path}: {bytes:02x?} cuts {cuts:?} verdict {verdict:?}");
        match verdict {
            Valid => assert_eq!((failed_at, fin), (None, Ok(())), "{}", ctx()),
            Truncated => assert_eq!((failed_at, fin), (None, Err(Utf8Error)), "{}", ctx()),
            BadAt(i) => {
                let (_, s, e) = failed_at.unwrap_or_else(|| panic!("never failed: {}", ctx()));
                assert!(
                    s <= i && i < e,
                    "failed in piece {s}..{e}, bad byte {i}: {}",
                    ctx()
                );
                assert_eq!(fin, Err(Utf8Error), "{}", ctx());
            }
        }
        // Fresh after finish: an empty message is valid.
        assert_eq!(v.feed_with(b"", bulk).and_then(|()| v.finish()), Ok(()));
    }

    /// The oracle agrees with std (the independent definition and the reference one).
    fn check_oracle(bytes: &[u8]) {
        match oracle(bytes) {
            Valid => assert!(std::str::from_utf8(bytes).is_ok(), "{bytes:02x?}"),
            Truncated => {
                assert!(
                    std::str::from_utf8(bytes).is_err() && std_is_prefix(bytes),
                    "{bytes:02x?}"
                )
            }
            BadAt(i) => assert!(
                std_is_prefix(&bytes[..i]) && !std_is_prefix(&bytes[..=i]),
                "{bytes:02x?} bad at {i}"
            ),
        }
    }

    /// Whole, byte by byte, every single cut, every pair of cuts (when short enough).
    fn check_all_splits(bytes: &[u8]) {
        check_oracle(bytes);
        let n = bytes.len();
        let bytewise: Vec<usize> = (1..n).collect();
        for (name, bulk) in paths() {
            check(bytes, &[], bulk, name);
            check(bytes, &bytewise, bulk, name);
            for a in 0..=n {
                check(bytes, &[a], bulk, name);
                if n <= 64 {
                    for b in a..=n {
                        check(bytes, &[a, b], bulk, name);
                    }
                }
            }
        }
    }

    /// Autobahn TestSuite 6.x payloads (`case name: hex => verdict;`), and the issue's examples.
    macro_rules! cases {
        ($($name:literal: $hex:literal => $verdict:expr;)*) => {
            &[$(($name, &hex!($hex) as &[u8], $verdict)),*]
        };
    }

    #[rustfmt::skip]
    const AUTOBAHN: &[(&str, &[u8], Verdict)] = cases! {
        "6.1.1": "" => Valid;
        "6.2.1": "48656c6c6f2dc2b540c39fc3b6c3a4c3bcc3a0c3a12d5554462d382121" => Valid;
        "6.3.1": "cebae1bdb9cf83cebcceb5eda080656469746564" => BadAt(12);
        "6.4.1": "cebae1bdb9cf83cebcceb5f4908080656469746564" => BadAt(12);
        "6.5.1": "cebae1bdb9cf83cebcceb5" => Valid;
        "6.6.1": "ce" => Truncated;
        "6.6.3": "cebae1" => Truncated;
        "6.6.4": "cebae1bd" => Truncated;
        "6.7.1": "00" => Valid;
        "6.7.2": "c280" => Valid;
        "6.7.3": "e0a080" => Valid;
        "6.7.4": "f0908080" => Valid;
        "6.8.1": "f888808080" => BadAt(0);
        "6.8.2": "fc8480808080" => BadAt(0);
        "6.9.1": "7f" => Valid;
        "6.9.2": "dfbf" => Valid;
        "6.9.3": "efbfbf" => Valid;
        "6.9.4": "f48fbfbf" => Valid;
        "6.10.1": "f7bfbfbf" => BadAt(0);
        "6.10.2": "fbbfbfbfbf" => BadAt(0);
        "6.10.3": "fdbfbfbfbfbf" => BadAt(0);
        "6.11.1": "ed9fbf" => Valid;
        "6.11.2": "ee8080" => Valid;
        "6.11.3": "efbfbd" => Valid;
        "6.11.4": "f48fbfbf" => Valid;
        "6.11.5": "f4908080" => BadAt(1);
        "6.12.1": "80" => BadAt(0);
        "6.12.2": "bf" => BadAt(0);
        "6.12.3": "80bf" => BadAt(0);
        "6.12.4": "80bf80" => BadAt(0);
        "6.12.8": "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f\
                   a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf" => BadAt(0);
        "6.13.1": "c020c120c220c320" => BadAt(0);
        "6.13.2": "e020e120e220" => BadAt(1);
        "6.13.3": "f020f120f220" => BadAt(1);
        "6.13.4": "f820f920" => BadAt(0);
        "6.13.5": "fc20fd20" => BadAt(0);
        "6.14.1": "c0" => BadAt(0);
        "6.14.2": "e080" => BadAt(1);
        "6.14.3": "f08080" => BadAt(1);
        "6.14.4": "f8808080" => BadAt(0);
        "6.14.5": "fc80808080" => BadAt(0);
        "6.14.6": "df" => Truncated;
        "6.14.7": "efbf" => Truncated;
        "6.14.8": "f7bfbf" => BadAt(0);
        "6.14.9": "fbbfbfbf" => BadAt(0);
        "6.14.10": "fdbfbfbfbf" => BadAt(0);
        "6.15.1": "c0e080f08080f8808080fc80808080dfefbff7bfbffbbfbfbffdbfbfbfbf" => BadAt(0);
        "6.16.1": "fe" => BadAt(0);
        "6.16.2": "ff" => BadAt(0);
        "6.16.3": "fefeffff" => BadAt(0);
        "6.17.1": "c0af" => BadAt(0);
        "6.17.2": "e080af" => BadAt(1);
        "6.17.3": "f08080af" => BadAt(1);
        "6.17.4": "f8808080af" => BadAt(0);
        "6.17.5": "fc80808080af" => BadAt(0);
        "6.18.1": "c1bf" => BadAt(0);
        "6.18.2": "e09fbf" => BadAt(1);
        "6.18.3": "f08fbfbf" => BadAt(1);
        "6.18.4": "f887bfbfbf" => BadAt(0);
        "6.18.5": "fc83bfbfbfbf" => BadAt(0);
        "6.19.1": "c080" => BadAt(0);
        "6.19.2": "e08080" => BadAt(1);
        "6.19.3": "f0808080" => BadAt(1);
        "6.19.4": "f880808080" => BadAt(0);
        "6.19.5": "fc8080808080" => BadAt(0);
        "6.20.1": "eda080" => BadAt(1);
        "6.20.2": "edadbf" => BadAt(1);
        "6.20.3": "edae80" => BadAt(1);
        "6.20.4": "edafbf" => BadAt(1);
        "6.20.5": "edb080" => BadAt(1);
        "6.20.6": "edbe80" => BadAt(1);
        "6.20.7": "edbfbf" => BadAt(1);
        "6.21.1": "eda080edb080" => BadAt(1);
        "6.21.8": "edafbfedbfbf" => BadAt(1);
        "6.22.1": "efbfbe" => Valid;
        "6.22.2": "efbfbf" => Valid;
        "6.22.3": "f09fbfbe" => Valid;
        "6.22.34": "f48fbfbf" => Valid;
        "6.23.1": "efbfbd" => Valid;
        // The issue's fail-fast examples, and the same after valid text.
        "F5": "f5" => BadAt(0);
        "E0 80": "e080" => BadAt(1);
        "ED A0 (surrogate)": "eda0" => BadAt(1);
        "F4 90 (> U+10FFFF)": "f490" => BadAt(1);
        "text + F4 90": "68656c6c6fcebaf490" => BadAt(8);
        "text + truncated 4-byte": "68656c6c6ff09f98" => Truncated;
        "emoji": "f09f9880f09f8e89" => Valid;
    };

    #[test]
    fn autobahn_6_cases_every_split() {
        for &(name, bytes, verdict) in AUTOBAHN {
            assert_eq!(
                oracle(bytes),
                verdict,
                "case {name}: table disagrees with the oracle"
            );
            check_all_splits(bytes);
        }
        report("autobahn_6_cases_every_split");
    }

    #[test]
    fn fails_at_the_feed_that_shows_it() {
        // The issue's four prefixes, each complete in the feed that must fail, after a valid one.
        for bad in [&[0xf5][..], &[0xe0, 0x80], &[0xed, 0xa0], &[0xf4, 0x90]] {
            for (name, bulk) in paths() {
                let mut v = Utf8Validator::new();
                assert_eq!(v.feed_with("κόσμε ".as_bytes(), bulk), Ok(()), "{name}");
                assert_eq!(v.feed_with(bad, bulk), Err(Utf8Error), "{name}: {bad:02x?}");
                assert_eq!(v.feed_with(b"ok", bulk), Err(Utf8Error), "{name}: sticky");
                assert_eq!(v.finish(), Err(Utf8Error), "{name}");
                // The lead alone is still a fine prefix; the second byte decides.
                if bad.len() == 2 {
                    assert_eq!(v.feed_with(&bad[..1], bulk), Ok(()), "{name}: {bad:02x?}");
                    assert!(v.is_partial());
                    assert_eq!(v.feed_with(&bad[1..], bulk), Err(Utf8Error), "{name}");
                    v.reset();
                }
            }
        }
        report("fails_at_the_feed_that_shows_it");
    }

    #[test]
    fn every_code_point_split_everywhere() {
        // All of U+0000..=U+10FFFF but the surrogates, between ASCII neighbours, cut at every
        // byte; a truncated copy must fail at finish only.
        let mut buf = [0u8; 6];
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            buf[0] = b'<';
            let n = c.encode_utf8(&mut buf[1..]).len() + 2;
            buf[n - 1] = b'>';
            let text = &buf[..n];
            for (name, bulk) in paths() {
                for cut in 1..n {
                    check(text, &[cut], bulk, name);
                }
                if n > 3 {
                    check(&text[..n - 2], &[], bulk, name);
                }
            }
        }
        report("every_code_point_split_everywhere");
    }

    #[test]
    fn texts_split_at_every_pair_of_positions() {
        let texts = [
            "Hello-µ@ßöäüàá-UTF-8!!",
            "κόσμε",
            "Ünïcödé: ελληνικά, 中文字符, 日本語, 한국어, emoji 😀🎉👍🏽, 𝄞 end",
        ];
        for t in texts {
            check_all_splits(t.as_bytes());
            let mut bytes = t.as_bytes().to_vec();
            // Corrupt each position in turn: the oracle says where it must fail.
            for i in 0..bytes.len() {
                let keep = bytes[i];
                for b in [0x80, 0xbf, 0xc0, 0xe0, 0xed, 0xf4, 0xf5, 0xff] {
                    bytes[i] = b;
                    for (name, bulk) in paths() {
                        for cut in [i, i + 1, bytes.len() / 2] {
                            check(&bytes, &[cut.min(bytes.len())], bulk, name);
                        }
                    }
                }
                bytes[i] = keep;
            }
        }
        report("texts_split_at_every_pair_of_positions");
    }

    #[test]
    fn every_two_byte_prefix_and_three_byte_edges() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                check_oracle(&[a, b]);
                for (name, bulk) in paths() {
                    check(&[a, b], &[1], bulk, name);
                    check(&[a, b], &[], bulk, name);
                }
                if a >= 0xe0 {
                    for c in [0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff] {
                        check_oracle(&[a, b, c]);
                        for (name, bulk) in paths() {
                            check(&[a, b, c], &[1, 2], bulk, name);
                        }
                    }
                }
            }
        }
        report("every_two_byte_prefix_and_three_byte_edges");
    }

    #[test]
    fn reset_and_finish_start_a_new_message() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xe2\x82"), Ok(()));
        assert!(v.is_partial());
        assert_eq!(v.finish(), Err(Utf8Error), "truncated at the end");
        assert!(!v.is_partial());
        assert_eq!(
            v.feed(b"\xac"),
            Err(Utf8Error),
            "finish forgot the carried bytes"
        );
        v.reset();
        assert_eq!(v.feed(b"\xe2\x82"), Ok(()));
        v.reset();
        assert_eq!(v.feed(b"plain"), Ok(()));
        assert_eq!(v.finish(), Ok(()));
        assert_eq!(Utf8Error.to_string(), "invalid utf-8");
        assert_eq!(validate("κόσμε".as_bytes()), Ok(()));
        assert_eq!(as_str(b"\xce"), Err(Utf8Error));
        eprintln!("utf8 selected path: {}", selected().name());
    }

    /// Bytes that are mostly text, with the interesting ways of not being text mixed in.
    fn texty() -> impl Strategy<Value = Vec<u8>> {
        let chars = vec(any::<char>(), 0..200).prop_map(|cs| cs.into_iter().collect::<String>());
        let pieces = vec(
            prop_oneof![
                Just(&b"a"[..]),
                Just(&b"\xce\xba"[..]),
                Just(&b"\xe1\xbd\xb9"[..]),
                Just(&b"\xf0\x9f\x98\x80"[..]),
                Just(&b"\xed\xa0\x80"[..]),
                Just(&b"\xf4\x90\x80\x80"[..]),
                Just(&b"\xe0\x80"[..]),
                Just(&b"\xc0"[..]),
                Just(&b"\x80"[..]),
                Just(&b"\xf5"[..]),
                Just(&b"\xf0\x9f"[..]),
            ],
            0..40,
        )
        .prop_map(|ps| ps.concat());
        prop_oneof![
            vec(any::<u8>(), 0..80),
            chars.clone().prop_map(String::into_bytes),
            (chars.clone(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(s, i, b)| {
                let mut v = s.into_bytes();
                if !v.is_empty() {
                    let i = i.index(v.len());
                    v[i] = b;
                }
                v
            }),
            (chars, any::<prop::sample::Index>()).prop_map(|(s, i)| {
                let v = s.into_bytes();
                let n = i.index(v.len() + 1);
                v[..n].to_vec()
            }),
            pieces,
        ]
    }

    fn texty_with_cuts() -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
        texty().prop_flat_map(|bytes| {
            let n = bytes.len();
            (Just(bytes), vec(0..=n, 0..12)).prop_map(|(b, mut cuts)| {
                cuts.sort_unstable();
                (b, cuts)
            })
        })
    }

    #[test]
    fn short_buffers_take_the_ascii_path_or_the_validator_with_the_same_verdict() {
        // Every length around the cut-off, ASCII and not, every position of the one non-ASCII
        // byte (valid two-byte sequence, lone continuation, high byte).
        for len in 0..=SHORT + 8 {
            let ascii: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            assert_eq!(
                as_str(&ascii).map(str::as_bytes),
                Ok(&ascii[..]),
                "{len} ASCII"
            );
            for at in 0..len {
                for bad in [&b"\xce\xba"[..], b"\x80", b"\xff", b"\x7f"] {
                    let mut v = ascii.clone();
                    v.splice(at..(at + bad.len()).min(len), bad.iter().copied());
                    let want = std::str::from_utf8(&v).map_err(|_| Utf8Error);
                    assert_eq!(as_str(&v), want, "{len} bytes, {bad:?} at {at}");
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        /// Fed in any pieces, the verdict is `std::str::from_utf8` on the whole.
        #[test]
        fn incremental_equals_from_utf8_on_the_whole((bytes, cuts) in texty_with_cuts()) {
            for (name, bulk) in paths() {
                let mut v = Utf8Validator::new();
                let mut start = 0;
                let mut ok = true;
                for &end in cuts.iter().chain([bytes.len()].iter()) {
                    ok &= v.feed_with(&bytes[start..end], bulk).is_ok();
                    start = end;
                }
                ok &= v.finish().is_ok();
                prop_assert_eq!(ok, std::str::from_utf8(&bytes).is_ok(), "{}", name);
                prop_assert_eq!(
                    (bulk)(&bytes).is_some(), std::str::from_utf8(&bytes).is_ok(), "{}", name
                );
            }
        }

        /// Feed k fails exactly when the bytes up to its end stop being a valid prefix (std's
        /// judgement), and not before.
        #[test]
        fn fails_at_feed_k_iff_prefix_invalid((bytes, cuts) in texty_with_cuts()) {
            check_oracle(&bytes);
            for (name, bulk) in paths() {
                let mut v = Utf8Validator::new();
                let mut start = 0;
                for &end in cuts.iter().chain([bytes.len()].iter()) {
                    let failed = v.feed_with(&bytes[start..end], bulk).is_err();
                    prop_assert_eq!(failed, !std_is_prefix(&bytes[..end]), "{} at {}", name, end);
                    if failed {
                        break;
                    }
                    start = end;
                }
                check(&bytes, &cuts, bulk, name);
            }
        }
    }
}

//! UTF-8 validation throughput (`cargo bench --bench utf8`): the incremental [`Utf8Validator`]
//! (one feed, and 4 KiB feeds) against `std::str::from_utf8` and raw `simdutf8::basic`, on ASCII
//! and on mixed multibyte text (Latin, Greek, CJK, emoji), all in one run.

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use wsx::protocol::utf8::Utf8Validator;

const SIZES: [(usize, &str); 3] = [(1024, "1KiB"), (64 * 1024, "64KiB"), (1024 * 1024, "1MiB")];

const ASCII: &str = "The quick brown fox jumps over the lazy dog; {\"id\": 42, \"ok\": true}\n";
const MIXED: &str = "Latin: Größe, naïve café, œuvre. Ελληνικά: Καλημέρα κόσμε. \
                     中文：你好，世界。日本語：こんにちは。한국어: 안녕하세요. \
                     Emoji: 😀🎉🚀👍🏽🇺🇳. ";

/// `sample` repeated to at most `size` bytes, cut on a character boundary.
fn text(sample: &str, size: usize) -> Vec<u8> {
    let mut s = String::with_capacity(size + sample.len());
    while s.len() < size {
        s.push_str(sample);
    }
    let mut end = size;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.into_bytes()
}

fn feed_chunks(bytes: &[u8], chunk: usize) -> bool {
    let mut v = Utf8Validator::new();
    bytes.chunks(chunk).all(|c| v.feed(c).is_ok()) && v.finish().is_ok()
}

fn utf8(c: &mut Criterion) {
    for (kind, sample) in [("ascii", ASCII), ("mixed", MIXED)] {
        for (size, label) in SIZES {
            let bytes = text(sample, size);
            let mut g = c.benchmark_group(format!("utf8/{kind}/{label}"));
            g.throughput(Throughput::Bytes(bytes.len() as u64));
            g.bench_function("std_from_utf8", |b| {
                b.iter(|| std::str::from_utf8(black_box(&bytes)).is_ok())
            });
            g.bench_function("simdutf8_basic", |b| {
                b.iter(|| simdutf8::basic::from_utf8(black_box(&bytes)).is_ok())
            });
            g.bench_function("validator_one_feed", |b| {
                b.iter(|| feed_chunks(black_box(&bytes), usize::MAX))
            });
            g.bench_function("validator_4KiB_feeds", |b| {
                b.iter(|| feed_chunks(black_box(&bytes), 4096))
            });
            g.finish();
        }
    }
}

fn main() {
    // By hand rather than `criterion_group!`, whose generated `pub fn` has no doc comment.
    let mut c = Criterion::default().configure_from_args();
    utf8(&mut c);
    c.final_summary();
}

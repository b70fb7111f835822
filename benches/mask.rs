//! Masking throughput (`cargo bench --bench mask`): the dispatched [`apply_mask`], every ISA path
//! this CPU has, a naive byte loop, a byte loop the compiler cannot vectorise, and a `memcpy` of
//! the same buffer — all in one run, so they can be compared as ratios.

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use wsx::protocol::mask::{apply_mask, Impl, Masker};

const SIZES: [(usize, &str); 4] = [
    (16, "16B"),
    (1024, "1KiB"),
    (64 * 1024, "64KiB"),
    (1024 * 1024, "1MiB"),
];
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The naive loop, as written. LLVM may vectorise it; see docs/performance.md.
#[inline(never)]
fn naive(buf: &mut [u8], key: [u8; 4]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// The same loop with every byte passed through `black_box`: a true byte-at-a-time baseline.
#[inline(never)]
fn naive_black_box(buf: &mut [u8], key: [u8; 4]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = black_box(*b ^ key[i & 3]);
    }
}

fn mask(c: &mut Criterion) {
    let paths: Vec<Masker> = Impl::ALL.iter().copied().filter_map(Masker::new).collect();
    for (size, label) in SIZES {
        let mut g = c.benchmark_group(format!("mask/{label}"));
        g.throughput(Throughput::Bytes(size as u64));
        let mut buf: Vec<u8> = (0..size).map(|i| i as u8).collect();
        g.bench_function("dispatched", |b| {
            b.iter(|| apply_mask(black_box(&mut buf), black_box(KEY), 0))
        });
        for m in &paths {
            g.bench_function(m.implementation().name(), |b| {
                b.iter(|| m.apply(black_box(&mut buf), black_box(KEY), 0))
            });
        }
        g.bench_function("naive", |b| {
            b.iter(|| naive(black_box(&mut buf), black_box(KEY)))
        });
        g.bench_function("naive_black_box", |b| {
            b.iter(|| naive_black_box(black_box(&mut buf), black_box(KEY)))
        });
        let src = buf.clone();
        g.bench_function("memcpy", |b| {
            b.iter(|| black_box(&mut buf[..]).copy_from_slice(black_box(&src)))
        });
        g.finish();
    }
}

fn main() {
    // By hand rather than `criterion_group!`, whose generated `pub fn` has no doc comment.
    let mut c = Criterion::default().configure_from_args();
    mask(&mut c);
    c.final_summary();
}

//! permessage-deflate throughput (`cargo bench --bench deflate`): JSON-like messages of 64 B,
//! 1, 4, 16 and 64 KiB and 1 MiB compressed and inflated through [`DeflateState`] — the libdeflate fast
//! path (no context takeover) and the zlib-rs streaming path (context takeover) — against flate2
//! with zlib-rs used directly at the same level, as a peer without the fast path would, and
//! against libdeflate alone (what the fast path costs over it: re-ending the stream with a sync
//! flush).
//! Throughput is in bytes of the uncompressed message, all variants in one run.

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use wsx::protocol::deflate::codec::{DeflateState, TAIL};
use wsx::protocol::deflate::{DeflateOptions, Params};

const SIZES: [(usize, &str); 6] = [
    (64, "64B"),
    (1024, "1KiB"),
    (4 * 1024, "4KiB"),
    (16 * 1024, "16KiB"),
    (64 * 1024, "64KiB"),
    (1024 * 1024, "1MiB"),
];
/// The default level (`DeflateOptions::default().level`).
const LEVEL: u8 = 5;

/// JSON-like text: records with repeated keys and varying values (xorshift64*).
fn json(len: usize) -> Vec<u8> {
    json_seeded(len, 0)
}

fn json_seeded(len: usize, seed: u64) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0xff51_afd7_ed55_8ccd);
    let names = ["alice", "bob", "carol", "dave", "eve", "mallory"];
    let mut s = String::with_capacity(len + 128);
    while s.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        s.push_str(&format!(
            r#"{{"id":{},"user":"{}","price":{}.{:02},"tags":["x{}","y"],"ok":{}}},"#,
            r % 100_000,
            names[(r >> 20) as usize % names.len()],
            (r >> 30) % 1000,
            (r >> 40) % 100,
            (r >> 48) % 16,
            r & 1 == 0
        ));
    }
    s.truncate(len);
    s.into_bytes()
}

fn state(context_takeover: bool) -> DeflateState {
    let params = Params {
        send_window_bits: 15,
        recv_window_bits: 15,
        send_no_context_takeover: !context_takeover,
        recv_no_context_takeover: !context_takeover,
    };
    DeflateState::new(
        params,
        &DeflateOptions {
            level: LEVEL,
            threshold: 0,
            ..DeflateOptions::default()
        },
    )
}

/// flate2/zlib-rs as a peer uses it: raw deflate, sync flush, tail removed, reset per message.
fn flate2_compress(c: &mut Compress, msg: &[u8], out: &mut Vec<u8>) {
    out.reserve(msg.len() / 2 + 64);
    loop {
        let done = c.total_in() as usize;
        if out.capacity() - out.len() < 64 {
            out.reserve(4096);
        }
        c.compress_vec(&msg[done..], out, FlushCompress::Sync)
            .expect("compress");
        if c.total_in() as usize == msg.len() && out.len() < out.capacity() {
            break;
        }
    }
    out.truncate(out.len() - TAIL.len());
    c.reset();
}

/// flate2/zlib-rs inflating a message and its tail, reset per message.
fn flate2_decompress(d: &mut Decompress, data: &[u8], out: &mut Vec<u8>) {
    for part in [data, &TAIL[..]] {
        let start = d.total_in();
        loop {
            let done = (d.total_in() - start) as usize;
            if out.len() == out.capacity() {
                out.reserve(out.len().max(4096));
            }
            d.decompress_vec(&part[done..], out, FlushDecompress::Sync)
                .expect("inflate");
            if (d.total_in() - start) as usize == part.len() && out.len() < out.capacity() {
                break;
            }
        }
    }
    d.reset(false);
}

fn compress(c: &mut Criterion) {
    for (size, label) in SIZES {
        let msg = json(size);
        let mut g = c.benchmark_group(format!("compress/{label}"));
        g.throughput(Throughput::Bytes(size as u64));
        let mut out = Vec::with_capacity(2 * size + 1024);
        let mut fast = state(false);
        g.bench_function("wsx_fast_libdeflate", |b| {
            b.iter(|| {
                out.clear();
                fast.compress(black_box(&msg), &mut out);
                black_box(out.len())
            })
        });
        // libdeflate alone, the stream left finished (`BFINAL = 1`): the fast path before it
        // re-ended every message with a sync flush, the cost that re-ending adds to.
        let mut raw = libdeflater::Compressor::new(
            libdeflater::CompressionLvl::new(i32::from(LEVEL)).expect("level"),
        );
        let mut raw_out = vec![0; raw.deflate_compress_bound(size)];
        g.bench_function("libdeflate_finished_stream", |b| {
            b.iter(|| {
                black_box(
                    raw.deflate_compress(black_box(&msg), &mut raw_out)
                        .expect("fits"),
                )
            })
        });
        // Context takeover: 16 different messages in turn (one message repeated would compress
        // to a reference to its previous copy).
        let msgs: Vec<Vec<u8>> = (1..=16).map(|seed| json_seeded(size, seed)).collect();
        let mut streaming = state(true);
        let mut i = 0;
        g.bench_function("wsx_context_takeover", |b| {
            b.iter(|| {
                out.clear();
                i = (i + 1) % msgs.len();
                streaming.compress(black_box(&msgs[i]), &mut out);
                black_box(out.len())
            })
        });
        let mut z = Compress::new(Compression::new(u32::from(LEVEL)), false);
        g.bench_function("flate2_zlib_rs", |b| {
            b.iter(|| {
                out.clear();
                flate2_compress(&mut z, black_box(&msg), &mut out);
                black_box(out.len())
            })
        });
        g.finish();
    }
}

fn decompress(c: &mut Criterion) {
    for (size, label) in SIZES {
        let msg = json(size);
        let mut data = Vec::new();
        flate2_compress(
            &mut Compress::new(Compression::new(u32::from(LEVEL)), false),
            &msg,
            &mut data,
        );
        let mut g = c.benchmark_group(format!("decompress/{label}"));
        g.throughput(Throughput::Bytes(size as u64));
        let mut out = Vec::with_capacity(size + 1024);
        let mut fast = state(false);
        g.bench_function("wsx_fast_libdeflate", |b| {
            b.iter(|| {
                out.clear();
                fast.decompress(black_box(&data), size, &mut out)
                    .expect("inflate");
                black_box(out.len())
            })
        });
        let mut z = Decompress::new(false);
        g.bench_function("flate2_zlib_rs", |b| {
            b.iter(|| {
                out.clear();
                flate2_decompress(&mut z, black_box(&data), &mut out);
                black_box(out.len())
            })
        });
        g.finish();
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    compress(&mut c);
    decompress(&mut c);
    c.final_summary();
}

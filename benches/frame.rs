//! Frame header decode, whole-session read throughput, and the read-and-echo of a batch of small
//! messages.
//!
//! `cargo bench --bench frame`

use criterion::{black_box, BenchmarkId, Criterion, Throughput};
use wsx::protocol::frame::{FrameHeader, OpCode};
use wsx::protocol::{Config, Connection, Event, Role};

fn header_bytes(len: u64, mask: bool) -> Vec<u8> {
    let h = FrameHeader {
        fin: true,
        rsv: 0,
        opcode: OpCode::BINARY,
        mask: mask.then_some([1, 2, 3, 4]),
        payload_len: len,
    };
    let mut out = Vec::new();
    h.encode_into(&mut out);
    out
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_header_decode");
    g.throughput(Throughput::Elements(1));
    for (name, len, mask) in [
        ("7bit_unmasked", 32, false),
        ("7bit_masked", 32, true),
        ("16bit_masked", 1000, true),
        ("64bit_masked", 1 << 20, true),
    ] {
        let bytes = header_bytes(len, mask);
        g.bench_function(name, |b| {
            b.iter(|| FrameHeader::decode(black_box(&bytes)).unwrap())
        });
    }
    g.finish();
}

/// A server session reading a batch of masked 32-byte text frames (what an echo server does per
/// read), in ns per frame; and 64 KiB binary frames in GB/s.
fn session_read(c: &mut Criterion) {
    let mut g = c.benchmark_group("session_read");
    for (size, count) in [(32usize, 256usize), (65_536, 4)] {
        let mut client = Connection::new(Role::Client, Config::default());
        let mut wire = Vec::new();
        let payload = "x".repeat(size);
        for _ in 0..count {
            client.send_text(&payload, &mut wire).unwrap();
        }
        g.throughput(Throughput::Bytes(wire.len() as u64));
        g.bench_with_input(BenchmarkId::new("text", size), &wire, |b, wire| {
            let mut server = Connection::new(Role::Server, Config::default());
            let mut buf = wire.clone();
            b.iter(|| {
                buf.copy_from_slice(wire);
                let mut pos = 0;
                let mut n = 0;
                while let Ok(read) = server.handle_read(&mut buf[pos..]) {
                    pos += read.consumed;
                    match read.event {
                        Some(Event::Text(t)) => n += t.len(),
                        Some(_) => {}
                        None => break,
                    }
                }
                assert_eq!(n, size * count);
            })
        });
    }
    g.finish();
}

/// What an echo server does per read in the harness's scenario b (16 messages in flight per
/// socket): a batch of 16 masked 32-byte binary frames read by a server session, each echoed into
/// one cork buffer. Elements are messages, so the figure is time per echoed message.
fn session_echo(c: &mut Criterion) {
    let mut g = c.benchmark_group("session_echo");
    let (size, count) = (32usize, 16usize);
    let mut client = Connection::new(Role::Client, Config::default());
    let mut wire = Vec::new();
    let payload: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
    for _ in 0..count {
        client.send_binary(&payload, &mut wire).unwrap();
    }
    g.throughput(Throughput::Elements(count as u64));
    g.bench_with_input(BenchmarkId::new("binary", size), &wire, |b, wire| {
        let mut server = Connection::new(Role::Server, Config::default());
        let mut buf = wire.clone();
        let mut cork = Vec::with_capacity(4096);
        b.iter(|| {
            buf.copy_from_slice(wire);
            cork.clear();
            let mut pos = 0;
            loop {
                let (rx, tx) = server.split();
                let read = rx.handle_read(tx, &mut buf[pos..]).unwrap();
                pos += read.consumed;
                let _ = tx.poll_transmit(&mut cork);
                match read.event {
                    Some(Event::Binary(m)) => tx.send_binary(m, &mut cork).unwrap(),
                    Some(_) => {}
                    None => break,
                }
            }
            assert_eq!(cork.len(), count * (size + 2));
            black_box(&cork);
        })
    });
    g.finish();
}

fn main() {
    // By hand rather than `criterion_group!`, whose generated `pub fn` has no doc comment.
    let mut c = Criterion::default().configure_from_args();
    decode(&mut c);
    session_read(&mut c);
    session_echo(&mut c);
    c.final_summary();
}

//! Opening handshake: server request parse (a Chrome-like upgrade request and a minimal one),
//! server response writing, and the client's request writing and response check.
//!
//! `cargo bench --bench handshake -- --warm-up-time 1 --measurement-time 3`

// `criterion_group!` defines an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::SeedableRng;
use wsx::protocol::handshake::{
    write_accept, write_error, AcceptOptions, ClientRequest, ExtensionOffer, UpgradeRequest,
};
use wsx::{HandshakeError, Limits};

/// What Chrome 124 sends to `ws://localhost:9001/ws?token=abc` from a page on :8080.
const CHROME: &[u8] = b"GET /ws?token=abc HTTP/1.1\r\n\
Host: localhost:9001\r\n\
Connection: Upgrade\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
Upgrade: websocket\r\n\
Origin: http://localhost:8080\r\n\
Sec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Cookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\n\
Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
\r\n";

/// The fewest headers RFC 6455 allows.
const MINIMAL: &[u8] = b"GET / HTTP/1.1\r\n\
Host: a\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\
\r\n";

fn parse(buf: &[u8]) -> UpgradeRequest {
    match UpgradeRequest::parse(buf, &Limits::DEFAULT) {
        Ok(Some((req, _))) => req,
        other => panic!("fixture does not parse: {other:?}"),
    }
}

fn server(c: &mut Criterion) {
    let mut group = c.benchmark_group("handshake/parse_request");
    for (name, buf) in [("chrome", CHROME), ("minimal", MINIMAL)] {
        group.throughput(Throughput::Bytes(buf.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| UpgradeRequest::parse(black_box(buf), &Limits::DEFAULT))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("handshake/write_response");
    let chrome = parse(CHROME);
    let minimal = parse(MINIMAL);
    let deflate =
        [ExtensionOffer::new("permessage-deflate")
            .with_param("client_max_window_bits", Some("15"))];
    let mut out = Vec::with_capacity(512);
    group.bench_function("accept_minimal", |b| {
        b.iter(|| {
            out.clear();
            write_accept(black_box(&minimal), &AcceptOptions::new(), &mut out)
        })
    });
    let options = AcceptOptions::new().with_extensions(&deflate);
    group.bench_function("accept_deflate", |b| {
        b.iter(|| {
            out.clear();
            write_accept(black_box(&chrome), &options, &mut out)
        })
    });
    group.bench_function("error_426", |b| {
        b.iter(|| {
            out.clear();
            write_error(black_box(&HandshakeError::UnsupportedVersion), &mut out)
        })
    });
    group.finish();
}

fn client(c: &mut Criterion) {
    let mut group = c.benchmark_group("handshake/client");
    let deflate =
        [ExtensionOffer::new("permessage-deflate").with_param("client_max_window_bits", None)];
    let mut request = ClientRequest::new("localhost", "/ws?token=abc");
    request.port = 9001;
    request.extensions = &deflate;
    request.origin = Some("http://localhost:8080");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut out = Vec::with_capacity(512);
    group.bench_function("write_request", |b| {
        b.iter(|| {
            out.clear();
            black_box(&request).write(&mut rng, &mut out)
        })
    });

    let mut wire = Vec::new();
    let handshake = match request.write(&mut rng, &mut wire) {
        Ok(h) => h,
        Err(e) => panic!("{e}"),
    };
    let mut response = Vec::new();
    let accept = AcceptOptions::new().with_extensions(&deflate);
    if let Err(e) = write_accept(&parse(&wire), &accept, &mut response) {
        panic!("{e}");
    }
    group.throughput(Throughput::Bytes(response.len() as u64));
    group.bench_function("parse_response", |b| {
        b.iter(|| handshake.parse_response(black_box(&response), &Limits::DEFAULT))
    });
    group.finish();
}

criterion_group!(benches, server, client);
criterion_main!(benches);

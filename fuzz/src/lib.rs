//! The bodies of wsx's fuzz targets, one module per parser or state machine. Three runners share
//! them: the cargo-fuzz binaries in `fuzz/fuzz_targets/` (libFuzzer, nightly), the time-boxed
//! mutation driver in [`driver`] (stable), and the corpus replay test `tests/fuzz_corpus.rs`,
//! which runs every committed input (`fuzz/seeds/`, `fuzz/regressions/`) under `cargo test`.
//!
//! Each target is a `run(&[u8])` that panics when one of its invariants breaks.

pub mod driver;
pub mod steps;

pub mod client_connection;
pub mod connection;
pub mod deflate_ending;
pub mod extensions;
pub mod forwarded;
pub mod frame_decode;
pub mod inflate;
pub mod parse_request;
pub mod parse_response;
pub mod proxy_protocol;
pub mod proxy_reply;
pub mod url;

/// One fuzz target: its name (the cargo-fuzz binary and the corpus folders) and its body.
pub struct Target {
    /// The name: `fuzz/fuzz_targets/<name>.rs`, `fuzz/seeds/<name>/`.
    pub name: &'static str,
    /// Runs one input.
    pub run: fn(&[u8]),
}

/// Every target, in the order the runners take them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "parse_request",
        run: parse_request::run,
    },
    Target {
        name: "parse_response",
        run: parse_response::run,
    },
    Target {
        name: "extensions",
        run: extensions::run,
    },
    Target {
        name: "frame_decode",
        run: frame_decode::run,
    },
    Target {
        name: "connection",
        run: connection::run,
    },
    Target {
        name: "client_connection",
        run: client_connection::run,
    },
    Target {
        name: "inflate",
        run: inflate::run,
    },
    Target {
        name: "deflate_ending",
        run: deflate_ending::run,
    },
    Target {
        name: "proxy_reply",
        run: proxy_reply::run,
    },
    Target {
        name: "proxy_protocol",
        run: proxy_protocol::run,
    },
    Target {
        name: "forwarded",
        run: forwarded::run,
    },
    Target {
        name: "url",
        run: url::run,
    },
];

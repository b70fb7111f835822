//! `parse_extensions` on any `Sec-WebSocket-Extensions` value: never panics, and what it
//! accepts formats to a value that parses back to the same offers.
//!
//! `cargo +nightly fuzz run extensions`

use wsx::protocol::handshake::{format_extensions, parse_extensions};

/// Runs one input; panics when an invariant above breaks.
pub fn run(data: &[u8]) {
    if let Ok(offers) = parse_extensions(data) {
        let mut value = String::new();
        format_extensions(&offers, &mut value).expect("parsed offers format");
        assert_eq!(
            parse_extensions(value.as_bytes()).expect("formatted offers parse"),
            offers
        );
    }
}

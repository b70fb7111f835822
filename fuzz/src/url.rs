//! `client::Url::parse` on any string: never panics; a URL it accepts has a host, a port from
//! 1 to 65535 and a resource starting with `/`, and its printed form parses back to itself.
//!
//! `cargo +nightly fuzz run url`

use wsx::client::Url;

/// Runs one input; panics when an invariant above breaks.
pub fn run(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(url) = Url::parse(s) {
        assert!(!url.host().is_empty());
        assert_ne!(url.port(), 0);
        assert!(url.resource().starts_with('/'));
        let again = Url::parse(&url.to_string()).expect("a printed URL parses");
        assert_eq!(again, url);
    }
}

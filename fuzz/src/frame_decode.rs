//! `FrameHeader::decode` on any bytes: never panics, and a decoded header never claims more
//! bytes than it was given.
//!
//! `cargo +nightly fuzz run frame_decode`

use wsx::protocol::frame::FrameHeader;

/// Runs one input; panics when an invariant above breaks.
pub fn run(data: &[u8]) {
    if let Ok(Some((_header, len))) = FrameHeader::decode(data) {
        assert!(len <= data.len() && len <= 14);
    }
}

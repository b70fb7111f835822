//! `FrameHeader::decode` on any bytes: never panics, and a decoded header never claims more
//! bytes than it was given.
//!
//! `cargo +nightly fuzz run frame_decode`

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsx::protocol::frame::FrameHeader;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((_header, len))) = FrameHeader::decode(data) {
        assert!(len <= data.len() && len <= 14);
    }
});

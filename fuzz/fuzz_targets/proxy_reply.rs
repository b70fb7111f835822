//! libFuzzer entry for `wsx_fuzz::proxy_reply` (the target and its invariants are documented there).

#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| wsx_fuzz::proxy_reply::run(input));

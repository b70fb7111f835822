//! `Connection::handle_read` (server role here, client role in `client_connection`;
//! permessage-deflate on or off) fed in random chunks,
//! as the engine reads a socket.
//!
//! Input: one seed byte, then the bytes. The seed's top bit turns permessage-deflate on (with
//! the peer keeping its context when bit 6 is set); the rest seeds the chunk sizes. Invariants:
//!
//! - nothing panics;
//! - what `handle_read` leaves unconsumed never exceeds a frame header plus a control frame
//!   (139 bytes) — the caller's residue bound;
//! - every event's payload is within the message limit, and text is valid UTF-8;
//! - an error is sticky and leaves a close frame with the error's code to send.
//!
//! `cargo +nightly fuzz run connection`

use super::steps::Steps;
use std::sync::Arc;

use wsx::protocol::deflate::{DeflateOptions, Params};
use wsx::protocol::{CloseState, Config, Connection, Event, Role};
use wsx::Limits;

/// Runs one input in the server role; panics when an invariant above breaks.
pub fn run(input: &[u8]) {
    run_as(Role::Server, input);
}

/// Runs one input in `role` (the `client_connection` target is the client role).
pub fn run_as(role: Role, input: &[u8]) {
    let Some((&seed, data)) = input.split_first() else {
        return;
    };
    let limits = Limits {
        max_message_size: 1 << 20,
        max_frame_size: 1 << 20,
        ..Limits::DEFAULT
    };
    let config = Config {
        limits,
        dangerous_accept_unmasked_frames: seed & 1 == 1,
        ..Config::default()
    };
    let mut conn = Connection::new(role, config);
    if seed & 0x80 != 0 {
        let params = Params {
            send_window_bits: 15,
            recv_window_bits: 15,
            send_no_context_takeover: true,
            recv_no_context_takeover: seed & 0x40 == 0,
        };
        conn.set_deflate(params, Arc::new(DeflateOptions::default()));
    }
    let mut pending: Vec<u8> = Vec::new();
    let mut steps = Steps::new(seed);
    let mut start = 0;
    while start < data.len() {
        let end = (start + steps.next(200)).min(data.len());
        pending.extend_from_slice(&data[start..end]);
        start = end;
        let mut pos = 0;
        loop {
            match conn.handle_read(&mut pending[pos..]) {
                Ok(read) => {
                    pos += read.consumed;
                    match read.event {
                        None => break,
                        Some(Event::Text(t)) => assert!(t.len() as u64 <= limits.max_message_size),
                        Some(Event::Binary(b)) => {
                            assert!(b.len() as u64 <= limits.max_message_size)
                        }
                        Some(Event::Ping(p) | Event::Pong(p)) => assert!(p.len() <= 125),
                        Some(Event::Close { .. }) => {}
                    }
                }
                Err(e) => {
                    assert_eq!(conn.close_state(), CloseState::Failed);
                    assert_eq!(conn.handle_read(&mut []).unwrap_err(), e);
                    return;
                }
            }
        }
        pending.drain(..pos);
        assert!(
            pending.len() <= 14 + 125,
            "residue of {} bytes",
            pending.len()
        );
    }
}

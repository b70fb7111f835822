//! `Connection::handle_read` in the client role (frames from a server: unmasked, a masked one is
//! an error), permessage-deflate on or off; the input and invariants of `connection`.
//!
//! `cargo +nightly fuzz run client_connection`

use wsx::protocol::Role;

/// Runs one input; panics when an invariant of `connection` breaks.
pub fn run(input: &[u8]) {
    super::connection::run_as(Role::Client, input);
}

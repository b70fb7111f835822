//! The sans-IO protocol core: bytes in, events and bytes out. No sockets, threads or clocks.
//!
//! ```text
//! socket bytes ─► handle_read ─► frame header ─► unmask (SIMD) ─► UTF-8 (SIMD, incremental)
//!                                   │                       ─► fragment assembly ─► Event
//!                                   └─► control frames ─► automatic pong / close reply ─► poll_transmit
//! send_* ─► frame header + payload (masked by a client) ─► caller's buffer
//! ```
//!
//! The opening handshake lives in [`handshake`]; once it is done, a [`Connection`] per socket
//! carries the frames. See [`Connection`] for the calling contract.

pub mod close;
mod connection;
pub mod deflate;
pub mod frame;
pub mod handshake;
pub mod mask;
mod message;
pub mod utf8;

#[cfg(test)]
mod tests;

pub use close::CloseCode;
pub use connection::{
    CloseState, Config, Connection, DetachedFrame, EncodedHeader, Event, Read, ReadHalf, WriteHalf,
};
pub use message::MessageKind;

/// Which end of the connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Accepts connections; receives masked frames, sends unmasked ones.
    Server,
    /// Opens connections; masks every frame it sends.
    Client,
}

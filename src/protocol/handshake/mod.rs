//! The opening handshake (RFC 6455 §4): server and client sides, sans-IO.
//!
//! STUB: the handshake helper replaces this module (request.rs, response.rs, accept.rs,
//! extensions.rs).

/// Why an opening handshake failed, with the HTTP status a server answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The request head is malformed.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
}

impl HandshakeError {
    /// The HTTP status a server answers with.
    pub fn status(&self) -> u16 {
        400
    }
}

//! Errors, each carrying its wire code: [`ProtocolError`] maps to a close code,
//! [`HandshakeError`] to an HTTP status.

pub use crate::protocol::handshake::HandshakeError;
use crate::protocol::CloseCode;

/// The peer broke RFC 6455 (or a limit) after the handshake. Fatal and sticky: the connection
/// sends a close frame with [`ProtocolError::close_code`] and accepts nothing more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// An opcode in 0x3–0x7 or 0xB–0xF.
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// RSV1, RSV2 or RSV3 set without an extension that owns the bit.
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
    /// A control frame with more than 125 bytes of payload.
    #[error("control frame longer than 125 bytes")]
    ControlFrameTooLong,
    /// A control frame without FIN.
    #[error("fragmented control frame")]
    FragmentedControlFrame,
    /// A server received an unmasked frame.
    #[error("unmasked frame from a client")]
    UnmaskedFrame,
    /// A client received a masked frame.
    #[error("masked frame from a server")]
    MaskedFrame,
    /// A 64-bit payload length with its most significant bit set.
    #[error("64-bit payload length with the top bit set")]
    LengthOverflow,
    /// A continuation frame with no message in progress.
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is in progress.
    #[error("new data frame while a fragmented message is in progress")]
    ExpectedContinuation,
    /// A text message (or close reason) that is not UTF-8.
    #[error("invalid utf-8 in text")]
    InvalidUtf8,
    /// A close frame with a one-byte payload.
    #[error("close frame with a one-byte payload")]
    InvalidClosePayload,
    /// A close frame with a code that may not appear on the wire.
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// A frame larger than [`crate::Limits::max_frame_size`].
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// Announced payload length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A message larger than [`crate::Limits::max_message_size`].
    #[error("message exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// The limit.
        max: u64,
    },
    /// A message with more than [`crate::Limits::max_fragments`] frames.
    #[error("message exceeds the limit of {max} fragments")]
    TooManyFragments {
        /// The limit.
        max: u32,
    },
    /// A compressed message (permessage-deflate) that does not inflate.
    #[error("invalid compressed data")]
    InvalidCompressedData,
    /// A data frame after the peer's close frame.
    #[error("frame after the close frame")]
    FrameAfterClose,
    /// The local side broke an internal invariant; a bug in wsx, never the peer's fault.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl ProtocolError {
    /// The close code this error is answered with.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCompressedData => {
                CloseCode::INVALID_PAYLOAD
            }
            ProtocolError::FrameTooLarge { .. }
            | ProtocolError::MessageTooLarge { .. }
            | ProtocolError::TooManyFragments { .. } => CloseCode::TOO_BIG,
            ProtocolError::Internal(_) => CloseCode::INTERNAL,
            _ => CloseCode::PROTOCOL,
        }
    }
}

/// Misuse of a [`crate::protocol::Connection`] by the local application (not the peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// A close frame was already sent or the connection failed: nothing more may be sent.
    #[error("connection is closing")]
    Closing,
    /// A control frame payload over 125 bytes.
    #[error("control frame payload over 125 bytes")]
    ControlTooLong,
    /// A close code that may not be sent on the wire.
    #[error("close code {0} may not be sent")]
    InvalidCloseCode(u16),
    /// A data frame while a fragmented message of another kind is being sent, or a continuation
    /// without a message started.
    #[error("fragmented send out of order")]
    FragmentOrder,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes() {
        assert_eq!(ProtocolError::InvalidUtf8.close_code(), CloseCode(1007));
        assert_eq!(
            ProtocolError::MessageTooLarge { max: 1 }.close_code(),
            CloseCode(1009)
        );
        assert_eq!(
            ProtocolError::FrameTooLarge { len: 2, max: 1 }.close_code(),
            CloseCode(1009)
        );
        assert_eq!(
            ProtocolError::TooManyFragments { max: 1 }.close_code(),
            CloseCode(1009)
        );
        assert_eq!(ProtocolError::ReservedBits.close_code(), CloseCode(1002));
        assert_eq!(ProtocolError::Internal("x").close_code(), CloseCode(1011));
        assert_eq!(
            ProtocolError::ReservedOpcode(3).to_string(),
            "reserved opcode 0x3"
        );
    }
}

//! RFC 7692 §7 negotiation. (Placeholder with the final API.)

use super::{DeflateOptions, Params};
use crate::protocol::handshake::ExtensionOffer;

/// Why a server's answer breaks the client's offer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiationError {
    /// A parameter the answer may not carry, a duplicate, or a bad value.
    #[error("invalid permessage-deflate response: {0}")]
    InvalidResponse(&'static str),
}

/// Server: the first acceptable offer, as the answer to send and the parameters in force;
/// `None` declines (no acceptable offer).
pub fn server_accept(
    offers: &[ExtensionOffer],
    options: &DeflateOptions,
) -> Option<(ExtensionOffer, Params)> {
    let _ = (offers, options);
    None
}

/// Client: the offer to send.
pub fn client_offer(options: &DeflateOptions) -> ExtensionOffer {
    let _ = options;
    ExtensionOffer::new(super::NAME)
}

/// Client: checks the server's answer against the offer made with `options`.
///
/// # Errors
///
/// [`NegotiationError`] when the answer breaks the offer.
pub fn client_accept(
    answer: &ExtensionOffer,
    options: &DeflateOptions,
) -> Result<Params, NegotiationError> {
    let _ = (answer, options);
    Err(NegotiationError::InvalidResponse("not implemented"))
}

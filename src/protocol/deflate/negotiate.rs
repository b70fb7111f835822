//! RFC 7692 §7 negotiation: offers, answers and the [`Params`] they put in force.
//!
//! The four parameters and their values:
//!
//! | parameter                    | in an offer           | in an answer          |
//! |------------------------------|-----------------------|-----------------------|
//! | `server_no_context_takeover` | no value              | no value              |
//! | `client_no_context_takeover` | no value              | no value              |
//! | `server_max_window_bits`     | `8`..=`15`            | `8`..=`15`            |
//! | `client_max_window_bits`     | no value or `8..=15`  | `8`..=`15`            |
//!
//! A window size is a decimal integer without sign or leading zero, possibly quoted (the
//! header parser has already removed the quotes). Parameter names are compared ASCII
//! case-insensitively, like the extension name; each may appear once.
//!
//! # Implementation notes
//!
//! A window of 8 bits (256 bytes) is accepted in both directions although zlib cannot deflate
//! with it: the codec then sends every message uncompressed, which RFC 7692 §6.1 allows (an
//! endpoint may always send a message without RSV1). Inflating never depends on the window
//! size: a 32 KiB window inflates anything a smaller one produced.
//!
//! Window sizes in [`DeflateOptions`] outside 8..=15 are clamped into that range before use, so
//! neither side ever sends a value its peer must reject.

use super::{DeflateOptions, Params, NAME};
use crate::protocol::handshake::ExtensionOffer;

const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";

/// The largest LZ77 window, in bits (32 KiB); what an absent `*_max_window_bits` means.
const MAX_WINDOW_BITS: u8 = 15;
/// The smallest window RFC 7692 allows (256 bytes).
const MIN_WINDOW_BITS: u8 = 8;

/// Why a server's answer breaks the client's offer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiationError {
    /// A parameter the answer may not carry, a duplicate, or a bad value.
    #[error("invalid permessage-deflate response: {0}")]
    InvalidResponse(&'static str),
}

/// The permessage-deflate parameters of one offer or answer, checked for syntax.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Parsed {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    /// `Some(n)`: present with `n` (always 8..=15).
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value; `Some(Some(n))`: with `n` (8..=15).
    client_max_window_bits: Option<Option<u8>>,
}

impl Parsed {
    /// Checks names and values of `ext`'s parameters (not its name): each known, once, with
    /// a valid value. `client_max_window_bits` may be bare here; an answer checks that itself.
    fn from_params(ext: &ExtensionOffer) -> Result<Self, &'static str> {
        let mut parsed = Parsed::default();
        let mut seen = [false; 4];
        for (name, value) in &ext.params {
            let slot = [
                SERVER_NO_CONTEXT_TAKEOVER,
                CLIENT_NO_CONTEXT_TAKEOVER,
                SERVER_MAX_WINDOW_BITS,
                CLIENT_MAX_WINDOW_BITS,
            ]
            .iter()
            .position(|known| name.eq_ignore_ascii_case(known))
            .ok_or("unknown parameter")?;
            if let Some(seen) = seen.get_mut(slot) {
                if *seen {
                    return Err("duplicate parameter");
                }
                *seen = true;
            }
            let value = value.as_deref();
            match slot {
                0 | 1 => {
                    if value.is_some() {
                        return Err("unexpected value for no_context_takeover");
                    }
                    if slot == 0 {
                        parsed.server_no_context_takeover = true;
                    } else {
                        parsed.client_no_context_takeover = true;
                    }
                }
                2 => {
                    let bits = value.ok_or("missing window bits")?;
                    parsed.server_max_window_bits = Some(window_bits(bits)?);
                }
                _ => {
                    parsed.client_max_window_bits = Some(value.map(window_bits).transpose()?);
                }
            }
        }
        Ok(parsed)
    }
}

/// `8`..=`15` written in decimal without sign or leading zero.
fn window_bits(value: &str) -> Result<u8, &'static str> {
    let bad = Err("bad window bits");
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > 2 || bytes.first() == Some(&b'0') {
        return bad;
    }
    if !bytes.iter().all(u8::is_ascii_digit) {
        return bad;
    }
    let n = bytes.iter().fold(0u8, |n, &d| n * 10 + (d - b'0'));
    if (MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&n) {
        Ok(n)
    } else {
        bad
    }
}

/// An option's window size clamped into 8..=15; `None` is 15.
fn clamp_bits(bits: Option<u8>) -> u8 {
    bits.unwrap_or(MAX_WINDOW_BITS)
        .clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS)
}

/// Server: answers the first acceptable offer; `None` declines them all.
///
/// Offers are taken in order. One is skipped when its name is not `permessage-deflate`
/// (ASCII case-insensitive) or when it is not acceptable: an unknown or repeated parameter, a
/// value on a `*_no_context_takeover`, a `server_max_window_bits` without a value 8..=15, or a
/// `client_max_window_bits` with a value outside 8..=15. The answer to the first acceptable
/// offer carries:
///
/// - `server_no_context_takeover` when offered or when `options.server_no_context_takeover`
///   (a server may always promise it);
/// - `client_no_context_takeover` when offered (the offer's is a hint the server may echo) or
///   when `options.client_no_context_takeover`;
/// - `server_max_window_bits=min(N, ours)` when offered with `N`, where ours is
///   `options.server_max_window_bits` or 15; when not offered, `=ours` if ours < 15;
/// - `client_max_window_bits=min(V, L)` only when the offer has the parameter, with `V` its
///   value or 15 and `L` `options.client_max_window_bits` or 15, and only when either is set:
///   a bare offer is left unanswered when the server sets no limit. A limit the client did not
///   offer to obey cannot be imposed: the connection then inflates a 15-bit window.
///
/// The returned [`Params`] are the server's: it sends with the answered
/// `server_max_window_bits` (or 15) and receives with the answered `client_max_window_bits`
/// (or 15); the `*_no_context_takeover` flags are the answered ones. A window of 8 is accepted
/// although zlib cannot deflate with it (see the module's implementation notes).
///
/// # Examples
///
/// ```
/// use wsx::protocol::deflate::{negotiate::server_accept, DeflateOptions};
/// use wsx::protocol::handshake::{format_extensions, parse_extensions};
/// let offers = parse_extensions(b"permessage-deflate; client_max_window_bits")?;
/// let (answer, params) = server_accept(&offers, &DeflateOptions::default()).unwrap();
/// let mut value = String::new();
/// format_extensions(&[answer], &mut value)?;
/// assert_eq!(value, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
/// assert_eq!((params.send_window_bits, params.recv_window_bits), (15, 15));
/// # Ok::<(), wsx::HandshakeError>(())
/// ```
pub fn server_accept(
    offers: &[ExtensionOffer],
    options: &DeflateOptions,
) -> Option<(ExtensionOffer, Params)> {
    let offer = offers
        .iter()
        .filter(|offer| offer.name.eq_ignore_ascii_case(NAME))
        .find_map(|offer| Parsed::from_params(offer).ok())?;

    let server_no_context_takeover =
        offer.server_no_context_takeover || options.server_no_context_takeover;
    let client_no_context_takeover =
        offer.client_no_context_takeover || options.client_no_context_takeover;
    let ours = clamp_bits(options.server_max_window_bits);
    let server_max_window_bits = match offer.server_max_window_bits {
        Some(n) => Some(n.min(ours)),
        None => (ours < MAX_WINDOW_BITS).then_some(ours),
    };
    let client_max_window_bits = match offer.client_max_window_bits {
        Some(offered) if offered.is_some() || options.client_max_window_bits.is_some() => Some(
            offered
                .unwrap_or(MAX_WINDOW_BITS)
                .min(clamp_bits(options.client_max_window_bits)),
        ),
        _ => None,
    };

    let mut answer = ExtensionOffer::new(NAME);
    if server_no_context_takeover {
        answer = answer.with_param(SERVER_NO_CONTEXT_TAKEOVER, None);
    }
    if client_no_context_takeover {
        answer = answer.with_param(CLIENT_NO_CONTEXT_TAKEOVER, None);
    }
    if let Some(n) = server_max_window_bits {
        answer = answer.with_param(SERVER_MAX_WINDOW_BITS, Some(&n.to_string()));
    }
    if let Some(n) = client_max_window_bits {
        answer = answer.with_param(CLIENT_MAX_WINDOW_BITS, Some(&n.to_string()));
    }
    let params = Params {
        send_window_bits: server_max_window_bits.unwrap_or(MAX_WINDOW_BITS),
        recv_window_bits: client_max_window_bits.unwrap_or(MAX_WINDOW_BITS),
        send_no_context_takeover: server_no_context_takeover,
        recv_no_context_takeover: client_no_context_takeover,
    };
    Some((answer, params))
}

/// Client: the offer to send.
///
/// `permessage-deflate`, then, in this order: `client_no_context_takeover` when
/// `options.client_no_context_takeover` (a promise); `server_no_context_takeover` when
/// `options.server_no_context_takeover` (a demand the server must accept or decline);
/// `server_max_window_bits=N` when `options.server_max_window_bits` is `Some(N)`; and
/// `client_max_window_bits` always, bare or `=N` when `options.client_max_window_bits` is
/// `Some(N)`. Offering `client_max_window_bits` tells the server this client can compress with
/// any window it asks for. Window sizes are clamped into 8..=15.
///
/// # Examples
///
/// ```
/// use wsx::protocol::deflate::{negotiate::client_offer, DeflateOptions};
/// use wsx::protocol::handshake::format_extensions;
/// let options = DeflateOptions { server_no_context_takeover: false, ..DeflateOptions::default() };
/// let mut value = String::new();
/// format_extensions(&[client_offer(&options)], &mut value)?;
/// assert_eq!(value, "permessage-deflate; client_no_context_takeover; client_max_window_bits");
/// # Ok::<(), wsx::HandshakeError>(())
/// ```
pub fn client_offer(options: &DeflateOptions) -> ExtensionOffer {
    let mut offer = ExtensionOffer::new(NAME);
    if options.client_no_context_takeover {
        offer = offer.with_param(CLIENT_NO_CONTEXT_TAKEOVER, None);
    }
    if options.server_no_context_takeover {
        offer = offer.with_param(SERVER_NO_CONTEXT_TAKEOVER, None);
    }
    if options.server_max_window_bits.is_some() {
        let n = clamp_bits(options.server_max_window_bits).to_string();
        offer = offer.with_param(SERVER_MAX_WINDOW_BITS, Some(&n));
    }
    let client_bits = options
        .client_max_window_bits
        .map(|_| clamp_bits(options.client_max_window_bits).to_string());
    offer.with_param(CLIENT_MAX_WINDOW_BITS, client_bits.as_deref())
}

/// Client: checks the server's answer against the offer [`client_offer`] made with
/// `options`, and returns the parameters in force.
///
/// The answer must be `permessage-deflate` (ASCII case-insensitive) with known parameters,
/// each at most once, and:
///
/// - `server_no_context_takeover`, without a value, must be there when the offer asked for it;
/// - `client_no_context_takeover`, without a value, is always allowed;
/// - `server_max_window_bits` must be 8..=15 and, when the offer asked for `N`, at most `N`
///   (an absent one means 15, so it must be there when `N` < 15);
/// - `client_max_window_bits` must have a value 8..=15 (the offer always carries this
///   parameter), at most `N` when the offer sent `=N`.
///
/// The returned [`Params`] are the client's: it sends with the smaller of the answered
/// `client_max_window_bits` (or 15) and its own option, and receives with the answered
/// `server_max_window_bits` (or 15); it resets its compressor after each message when the
/// answer says `client_no_context_takeover` or it promised to; the server does when the answer
/// says `server_no_context_takeover`.
///
/// # Errors
///
/// [`NegotiationError::InvalidResponse`] when the answer breaks the offer; the connection must
/// then be failed (RFC 7692 §5.1).
///
/// # Examples
///
/// ```
/// use wsx::protocol::deflate::{negotiate::client_accept, DeflateOptions};
/// use wsx::protocol::handshake::parse_extensions;
/// let answer = &parse_extensions(b"permessage-deflate; server_no_context_takeover")?[0];
/// let params = client_accept(answer, &DeflateOptions::default()).unwrap();
/// assert!(params.recv_no_context_takeover && params.send_no_context_takeover);
/// # Ok::<(), wsx::HandshakeError>(())
/// ```
pub fn client_accept(
    answer: &ExtensionOffer,
    options: &DeflateOptions,
) -> Result<Params, NegotiationError> {
    let invalid = NegotiationError::InvalidResponse;
    if !answer.name.eq_ignore_ascii_case(NAME) {
        return Err(invalid("not permessage-deflate"));
    }
    let parsed = Parsed::from_params(answer).map_err(invalid)?;

    if options.server_no_context_takeover && !parsed.server_no_context_takeover {
        return Err(invalid("missing server_no_context_takeover"));
    }
    let recv_window_bits = parsed.server_max_window_bits.unwrap_or(MAX_WINDOW_BITS);
    if options.server_max_window_bits.is_some()
        && recv_window_bits > clamp_bits(options.server_max_window_bits)
    {
        return Err(invalid("server window larger than offered"));
    }
    let ours = clamp_bits(options.client_max_window_bits);
    let send_window_bits = match parsed.client_max_window_bits {
        None => ours,
        Some(None) => return Err(invalid("client_max_window_bits without a value")),
        Some(Some(m)) if options.client_max_window_bits.is_some() && m > ours => {
            return Err(invalid("client window larger than offered"));
        }
        Some(Some(m)) => m.min(ours),
    };
    Ok(Params {
        send_window_bits,
        recv_window_bits,
        send_no_context_takeover: parsed.client_no_context_takeover
            || options.client_no_context_takeover,
        recv_no_context_takeover: parsed.server_no_context_takeover,
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::handshake::{format_extensions, parse_extensions};
    use proptest::prelude::*;

    /// Options with the four negotiated knobs set and the rest at their defaults.
    fn opts(
        server_no_context_takeover: bool,
        client_no_context_takeover: bool,
        server_max_window_bits: Option<u8>,
        client_max_window_bits: Option<u8>,
    ) -> DeflateOptions {
        DeflateOptions {
            server_no_context_takeover,
            client_no_context_takeover,
            server_max_window_bits,
            client_max_window_bits,
            ..DeflateOptions::default()
        }
    }

    /// `Params` in the order send bits, recv bits, send reset, recv reset.
    fn p(send: u8, recv: u8, send_reset: bool, recv_reset: bool) -> Params {
        Params {
            send_window_bits: send,
            recv_window_bits: recv,
            send_no_context_takeover: send_reset,
            recv_no_context_takeover: recv_reset,
        }
    }

    fn header(ext: &ExtensionOffer) -> String {
        let mut s = String::new();
        format_extensions(std::slice::from_ref(ext), &mut s).unwrap();
        s
    }

    /// The server's answer to a header value, formatted, with its params.
    fn answer(offers: &str, options: &DeflateOptions) -> Option<(String, Params)> {
        let offers = parse_extensions(offers.as_bytes()).unwrap();
        server_accept(&offers, options).map(|(a, params)| (header(&a), params))
    }

    fn accepted(answer: &str, params: Params) -> Option<(String, Params)> {
        Some((answer.to_owned(), params))
    }

    const DECLINED: Option<(String, Params)> = None;

    /// `server! { options => { "offers" => expected, ... } }`
    macro_rules! server {
        ($($options:expr => { $($offers:literal => $expected:expr),* $(,)? })*) => {$($(
            assert_eq!(answer($offers, &$options), $expected, "offers {:?}", $offers);
        )*)*};
    }

    /// `client! { options => { "answer" => Ok(params) | Err("fragment"), ... } }`
    macro_rules! client {
        ($($options:expr => { $($answer:literal => $expected:expr),* $(,)? })*) => {$($(
            let answers = parse_extensions($answer.as_bytes()).unwrap();
            let got = client_accept(&answers[0], &$options)
                .map_err(|NegotiationError::InvalidResponse(why)| why);
            assert_eq!(got, $expected, "answer {:?}", $answer);
        )*)*};
    }

    #[test]
    fn server_answers_first_acceptable_offer() {
        server! {
            opts(false, false, None, None) => {
                "permessage-deflate" => accepted("permessage-deflate", p(15, 15, false, false)),
                "PerMessage-Deflate; Server_No_Context_Takeover" => accepted(
                    "permessage-deflate; server_no_context_takeover", p(15, 15, true, false)),
                "permessage-deflate; client_no_context_takeover" => accepted(
                    "permessage-deflate; client_no_context_takeover", p(15, 15, false, true)),
                "permessage-deflate; server_max_window_bits=10" => accepted(
                    "permessage-deflate; server_max_window_bits=10", p(10, 15, false, false)),
                "permessage-deflate; server_max_window_bits=\"9\"" => accepted(
                    "permessage-deflate; server_max_window_bits=9", p(9, 15, false, false)),
                "permessage-deflate; client_max_window_bits=9" => accepted(
                    "permessage-deflate; client_max_window_bits=9", p(15, 9, false, false)),
                "permessage-deflate; client_max_window_bits=\"15\"" => accepted(
                    "permessage-deflate; client_max_window_bits=15", p(15, 15, false, false)),
                "x-webkit-deflate-frame, permessage-deflate" =>
                    accepted("permessage-deflate", p(15, 15, false, false)),
                "permessage-deflate; x=1, permessage-deflate; server_max_window_bits=12" =>
                    accepted("permessage-deflate; server_max_window_bits=12", p(12, 15, false, false)),
                "permessage-deflate; server_max_window_bits=7, \
                 permessage-deflate; server_max_window_bits=8, permessage-deflate" =>
                    accepted("permessage-deflate; server_max_window_bits=8", p(8, 15, false, false)),
                "" => DECLINED,
                "x-webkit-deflate-frame" => DECLINED,
                "permessage-deflate-x" => DECLINED,
            }
        }
    }

    #[test]
    fn server_declines_invalid_offers() {
        server! {
            DeflateOptions::default() => {
                "permessage-deflate; x" => DECLINED,
                "permessage-deflate; x=1" => DECLINED,
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover" => DECLINED,
                "permessage-deflate; client_max_window_bits; Client_Max_Window_Bits" => DECLINED,
                "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10" => DECLINED,
                "permessage-deflate; server_max_window_bits" => DECLINED,
                "permessage-deflate; server_max_window_bits=7" => DECLINED,
                "permessage-deflate; server_max_window_bits=16" => DECLINED,
                "permessage-deflate; server_max_window_bits=010" => DECLINED,
                "permessage-deflate; server_max_window_bits=abc" => DECLINED,
                "permessage-deflate; server_max_window_bits=+9" => DECLINED,
                "permessage-deflate; server_max_window_bits=\"\"" => DECLINED,
                "permessage-deflate; server_max_window_bits=\" 9\"" => DECLINED,
                "permessage-deflate; server_max_window_bits=255" => DECLINED,
                "permessage-deflate; client_max_window_bits=0" => DECLINED,
                "permessage-deflate; client_max_window_bits=16" => DECLINED,
                "permessage-deflate; client_max_window_bits=09" => DECLINED,
                "permessage-deflate; client_no_context_takeover=1" => DECLINED,
                "permessage-deflate; server_no_context_takeover=\"\"" => DECLINED,
            }
        }
    }

    #[test]
    fn browser_and_library_offers() {
        let both = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
        server! {
            // Server defaults: both no_context_takeover flags, no window limits.
            DeflateOptions::default() => {
                // Chrome, and Node ws's default offer.
                "permessage-deflate; client_max_window_bits" =>
                    accepted(both, p(15, 15, true, true)),
                // Firefox and Safari.
                "permessage-deflate" => accepted(both, p(15, 15, true, true)),
                // Older Safari also offers the pre-RFC extension first.
                "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits" =>
                    accepted(both, p(15, 15, true, true)),
            }
            opts(false, false, None, None) => {
                "permessage-deflate; client_max_window_bits" =>
                    accepted("permessage-deflate", p(15, 15, false, false)),
            }
        }
    }

    #[test]
    fn autobahn_offers() {
        for n in 8..=15u8 {
            for (snct, cnct) in [(false, false), (true, false), (false, true), (true, true)] {
                let mut offer = ExtensionOffer::new(NAME);
                if snct {
                    offer = offer.with_param(SERVER_NO_CONTEXT_TAKEOVER, None);
                }
                if cnct {
                    offer = offer.with_param(CLIENT_NO_CONTEXT_TAKEOVER, None);
                }
                let offer = offer
                    .with_param(SERVER_MAX_WINDOW_BITS, Some(&n.to_string()))
                    .with_param(CLIENT_MAX_WINDOW_BITS, Some(&n.to_string()));
                let (got, params) = server_accept(
                    std::slice::from_ref(&offer),
                    &opts(false, false, None, None),
                )
                .unwrap();
                assert_eq!(got, offer, "the answer echoes an acceptable offer");
                assert_eq!(params, p(n, n, snct, cnct));
                // Also offered bare on the client window, as Autobahn's
                // `accept_max_window_bits`.
                let bare = header(&offer).replace(
                    &format!("client_max_window_bits={n}"),
                    "client_max_window_bits",
                );
                let (_, params) = server_accept(
                    &parse_extensions(bare.as_bytes()).unwrap(),
                    &DeflateOptions::default(),
                )
                .unwrap();
                assert_eq!(params, p(n, 15, true, true), "{bare}");
            }
        }
    }

    #[test]
    fn server_options_limit_windows() {
        server! {
            opts(false, false, Some(10), Some(12)) => {
                // Our window is answered unasked; the client's limit cannot be imposed.
                "permessage-deflate" => accepted(
                    "permessage-deflate; server_max_window_bits=10", p(10, 15, false, false)),
                "permessage-deflate; client_max_window_bits" => accepted(
                    "permessage-deflate; server_max_window_bits=10; client_max_window_bits=12",
                    p(10, 12, false, false)),
                "permessage-deflate; server_max_window_bits=9; client_max_window_bits=14" => accepted(
                    "permessage-deflate; server_max_window_bits=9; client_max_window_bits=12",
                    p(9, 12, false, false)),
                "permessage-deflate; server_max_window_bits=15; client_max_window_bits=11" => accepted(
                    "permessage-deflate; server_max_window_bits=10; client_max_window_bits=11",
                    p(10, 11, false, false)),
            }
            opts(true, false, Some(15), None) => {
                "permessage-deflate" => accepted(
                    "permessage-deflate; server_no_context_takeover", p(15, 15, true, false)),
            }
            // Out-of-range options are clamped to 8..=15.
            opts(false, false, Some(3), Some(40)) => {
                "permessage-deflate; client_max_window_bits" => accepted(
                    "permessage-deflate; server_max_window_bits=8; client_max_window_bits=15",
                    p(8, 15, false, false)),
            }
        }
    }

    #[test]
    fn client_offer_bytes() {
        for (options, expected) in [
            (
                opts(false, true, None, None),
                "permessage-deflate; client_no_context_takeover; client_max_window_bits",
            ),
            (
                opts(false, false, None, None),
                "permessage-deflate; client_max_window_bits",
            ),
            (
                opts(true, true, Some(10), Some(9)),
                "permessage-deflate; client_no_context_takeover; server_no_context_takeover; \
                 server_max_window_bits=10; client_max_window_bits=9",
            ),
            (
                opts(false, false, Some(20), Some(2)),
                "permessage-deflate; server_max_window_bits=15; client_max_window_bits=8",
            ),
        ] {
            assert_eq!(header(&client_offer(&options)), expected);
        }
    }

    #[test]
    fn client_accepts_valid_answers() {
        client! {
            opts(false, false, None, None) => {
                "permessage-deflate" => Ok(p(15, 15, false, false)),
                "permessage-deflate; server_no_context_takeover" => Ok(p(15, 15, false, true)),
                "permessage-deflate; client_no_context_takeover" => Ok(p(15, 15, true, false)),
                "permessage-deflate; server_max_window_bits=8" => Ok(p(15, 8, false, false)),
                "permessage-deflate; client_max_window_bits=10" => Ok(p(10, 15, false, false)),
                "PERMESSAGE-DEFLATE; SERVER_MAX_WINDOW_BITS=\"12\"" => Ok(p(15, 12, false, false)),
                "permessage-deflate; client_no_context_takeover; server_no_context_takeover; \
                 client_max_window_bits=8; server_max_window_bits=9" => Ok(p(8, 9, true, true)),
            }
            // Client defaults: we promise client_no_context_takeover whatever the answer.
            opts(false, true, None, None) => {
                "permessage-deflate" => Ok(p(15, 15, true, false)),
            }
            opts(true, true, Some(10), Some(12)) => {
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=10" =>
                    Ok(p(12, 10, true, true)),
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; \
                 client_max_window_bits=11" => Ok(p(11, 9, true, true)),
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; \
                 client_max_window_bits=12" => Ok(p(12, 10, true, true)),
            }
        }
    }

    #[test]
    fn client_rejects_invalid_answers() {
        client! {
            opts(false, false, None, None) => {
                "x-webkit-deflate-frame" => Err("not permessage-deflate"),
                "permessage-deflate; x" => Err("unknown parameter"),
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover" =>
                    Err("duplicate parameter"),
                "permessage-deflate; client_max_window_bits=9; CLIENT_MAX_WINDOW_BITS=9" =>
                    Err("duplicate parameter"),
                "permessage-deflate; server_max_window_bits" => Err("missing window bits"),
                "permessage-deflate; server_max_window_bits=7" => Err("bad window bits"),
                "permessage-deflate; server_max_window_bits=16" => Err("bad window bits"),
                "permessage-deflate; server_max_window_bits=010" => Err("bad window bits"),
                "permessage-deflate; server_max_window_bits=abc" => Err("bad window bits"),
                "permessage-deflate; client_max_window_bits=16" => Err("bad window bits"),
                "permessage-deflate; client_max_window_bits" =>
                    Err("client_max_window_bits without a value"),
                "permessage-deflate; client_no_context_takeover=1" =>
                    Err("unexpected value for no_context_takeover"),
                "permessage-deflate; server_no_context_takeover=\"\"" =>
                    Err("unexpected value for no_context_takeover"),
            }
            opts(true, true, Some(10), Some(12)) => {
                "permessage-deflate; server_max_window_bits=10" =>
                    Err("missing server_no_context_takeover"),
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=11" =>
                    Err("server window larger than offered"),
                "permessage-deflate; server_no_context_takeover" =>
                    Err("server window larger than offered"),
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; \
                 client_max_window_bits=13" => Err("client window larger than offered"),
            }
        }
        assert_eq!(
            NegotiationError::InvalidResponse("unknown parameter").to_string(),
            "invalid permessage-deflate response: unknown parameter"
        );
    }

    fn options_strategy() -> impl Strategy<Value = DeflateOptions> {
        // Mostly 8..=15, sometimes out of range to exercise clamping.
        let bits = || proptest::option::of(prop_oneof![4 => 8u8..=15, 1 => any::<u8>()]);
        (any::<bool>(), any::<bool>(), bits(), bits())
            .prop_map(|(snct, cnct, smwb, cmwb)| opts(snct, cnct, smwb, cmwb))
    }

    fn offer_strategy() -> impl Strategy<Value = ExtensionOffer> {
        let name = prop_oneof![
            Just(NAME.to_owned()),
            Just("PERMESSAGE-DEFLATE".to_owned()),
            "[a-z-]{1,8}",
        ];
        let param = prop_oneof![
            Just(SERVER_NO_CONTEXT_TAKEOVER.to_owned()),
            Just(CLIENT_NO_CONTEXT_TAKEOVER.to_owned()),
            Just(SERVER_MAX_WINDOW_BITS.to_owned()),
            Just(CLIENT_MAX_WINDOW_BITS.to_owned()),
            "[a-z_]{1,8}",
        ];
        let value = proptest::option::of(prop_oneof![
            (0u16..300).prop_map(|n| n.to_string()),
            "[0-9+ -]{0,4}",
            ".{0,4}",
        ]);
        (name, proptest::collection::vec((param, value), 0..5))
            .prop_map(|(name, params)| ExtensionOffer { name, params })
    }

    /// The two ends agree: what one sends with, the other receives with.
    fn mirror(server: Params, client: Params) -> Result<(), TestCaseError> {
        prop_assert_eq!(client.send_window_bits, server.recv_window_bits);
        prop_assert_eq!(client.recv_window_bits, server.send_window_bits);
        prop_assert_eq!(
            client.send_no_context_takeover,
            server.recv_no_context_takeover
        );
        prop_assert_eq!(
            client.recv_no_context_takeover,
            server.send_no_context_takeover
        );
        Ok(())
    }

    proptest! {
        #[test]
        fn our_offer_is_accepted_and_params_mirror(
            client in options_strategy(),
            server in options_strategy(),
        ) {
            let offer = client_offer(&client);
            let (answer, server_params) = server_accept(&[offer], &server)
                .expect("the server accepts our offer");
            let client_params = client_accept(&answer, &client);
            prop_assert!(client_params.is_ok(), "{:?} for {:?}", client_params, header(&answer));
            mirror(server_params, client_params.unwrap())?;
            for bits in [server_params.send_window_bits, server_params.recv_window_bits] {
                prop_assert!((MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&bits));
            }
        }

        #[test]
        fn arbitrary_offers_never_panic(
            offers in proptest::collection::vec(offer_strategy(), 0..4),
            server in options_strategy(),
        ) {
            if let Some((answer, server_params)) = server_accept(&offers, &server) {
                // The answer is well-formed for a client that asked for nothing in particular.
                let client = client_accept(&answer, &opts(false, false, None, None));
                prop_assert!(client.is_ok(), "{:?} for {:?}", client, header(&answer));
                mirror(server_params, client.unwrap())?;
            }
        }

        #[test]
        fn arbitrary_answers_never_panic(
            answer in offer_strategy(),
            client in options_strategy(),
        ) {
            let _ = client_accept(&answer, &client);
        }
    }
}

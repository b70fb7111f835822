//! Close codes (RFC 6455 §7.4) and the close frame payload.

use std::fmt;

use crate::error::ProtocolError;

/// A close status code. The associated constants name the registered ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL: CloseCode = CloseCode(1002);
    /// 1003: the endpoint cannot accept this kind of data.
    pub const UNSUPPORTED: CloseCode = CloseCode(1003);
    /// 1005: no code was present (never sent on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection dropped without a close frame (never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: a text message was not valid UTF-8, or similar inconsistent data.
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message broke the endpoint's policy.
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: a message or frame was too big.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting.
    pub const RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later.
    pub const TRY_AGAIN: CloseCode = CloseCode(1013);
    /// 1014: a gateway got a bad response upstream.
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);

    /// Whether this code may appear in a close frame on the wire: 1000–1003, 1007–1014 and
    /// 3000–4999. 1004–1006, 1015, 0–999, 1016–2999 and 5000 and above may not.
    pub const fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

/// Longest close reason that fits a control frame (125 − 2 bytes of code).
pub const MAX_REASON_LEN: usize = 123;

/// Parses a received close frame payload (already unmasked).
///
/// An empty payload is `(NO_STATUS, "")`. A one-byte payload, a code that may not be on the wire,
/// or a reason that is not UTF-8 is a protocol error (1002, or 1007 for the reason).
///
/// # Errors
///
/// [`ProtocolError::InvalidClosePayload`], [`ProtocolError::InvalidCloseCode`] or
/// [`ProtocolError::InvalidUtf8`].
pub fn parse_close_payload(payload: &[u8]) -> Result<(CloseCode, &str), ProtocolError> {
    match payload {
        [] => Ok((CloseCode::NO_STATUS, "")),
        [_] => Err(ProtocolError::InvalidClosePayload),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_valid_on_wire() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok((code, reason))
        }
    }
}

/// Appends a close payload to `out`: nothing for [`CloseCode::NO_STATUS`], else the code and the
/// reason cut to [`MAX_REASON_LEN`] bytes on a character boundary.
pub fn write_close_payload(code: CloseCode, reason: &str, out: &mut Vec<u8>) {
    if code == CloseCode::NO_STATUS {
        return;
    }
    out.extend_from_slice(&code.0.to_be_bytes());
    out.extend_from_slice(truncate_reason(reason).as_bytes());
}

/// `reason` cut to at most [`MAX_REASON_LEN`] bytes without splitting a character.
pub fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_LEN {
        return reason;
    }
    let mut end = MAX_REASON_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_validity_matches_rfc_ranges() {
        for code in 0..=u16::MAX {
            let expected = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            assert_eq!(CloseCode(code).is_valid_on_wire(), expected, "code {code}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            let payload = u16::to_be_bytes(bad);
            assert_eq!(
                parse_close_payload(&payload),
                Err(ProtocolError::InvalidCloseCode(bad))
            );
        }
    }

    #[test]
    fn parse_payload_shapes() {
        assert_eq!(parse_close_payload(&[]), Ok((CloseCode::NO_STATUS, "")));
        assert_eq!(
            parse_close_payload(&[3]),
            Err(ProtocolError::InvalidClosePayload)
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xe8]),
            Ok((CloseCode::NORMAL, ""))
        );
        assert_eq!(
            parse_close_payload(b"\x0f\xa0bye"),
            Ok((CloseCode(4000), "bye"))
        );
        assert_eq!(
            parse_close_payload(b"\x03\xe8\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"),
            Ok((CloseCode::NORMAL, "\u{3ba}\u{1f79}\u{3c3}\u{3bc}\u{3b5}"))
        );
        assert_eq!(
            parse_close_payload(b"\x03\xe8\xff"),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn write_truncates_on_char_boundary() {
        let long = "é".repeat(100); // 200 bytes
        let mut out = Vec::new();
        write_close_payload(CloseCode::GOING_AWAY, &long, &mut out);
        assert!(out.len() <= 125);
        let (code, reason) = parse_close_payload(&out).unwrap();
        assert_eq!(code, CloseCode::GOING_AWAY);
        assert_eq!(reason.len(), 122);
        let mut out = Vec::new();
        write_close_payload(CloseCode::NO_STATUS, "ignored", &mut out);
        assert!(out.is_empty());
    }
}

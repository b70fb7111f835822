//! Header grammar: tokens, comma lists (RFC 9110 §5.6) and `Sec-WebSocket-Extensions`
//! (RFC 6455 §9.1, RFC 7692 §5).
//!
//! ```text
//! extension-list = 1#extension
//! extension      = extension-token *( ";" extension-param )
//! extension-param = token [ "=" ( token | quoted-string ) ]
//! ```
//!
//! Whitespace (space, tab) is allowed around every `,`, `;` and `=`; empty list elements
//! (`a, , b`) are skipped, as RFC 9110 §5.6.1 asks of recipients. RFC 6455 wants an unescaped
//! quoted value to be a token; this parser accepts any quoted-string and leaves that rule to the
//! extension that reads the parameter (RFC 7692 checks its own values).

use super::HandshakeError;

/// One element of a `Sec-WebSocket-Extensions` list: an extension name and its parameters, in
/// order. A parameter without `=` has no value (`None`); quoted values are stored unescaped.
///
/// # Examples
///
/// ```
/// use wsx::protocol::handshake::ExtensionOffer;
/// let offer = ExtensionOffer::new("permessage-deflate").with_param("client_max_window_bits", None);
/// assert_eq!(offer.param("Client_Max_Window_Bits"), Some(None));
/// assert_eq!(offer.param("server_max_window_bits"), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ExtensionOffer {
    /// The extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// `(name, value)` pairs in the order they were written.
    pub params: Vec<(String, Option<String>)>,
}

impl ExtensionOffer {
    /// An offer with no parameters.
    pub fn new(name: impl Into<String>) -> Self {
        ExtensionOffer {
            name: name.into(),
            params: Vec::new(),
        }
    }

    /// This offer with one more parameter.
    #[must_use]
    pub fn with_param(mut self, name: impl Into<String>, value: Option<&str>) -> Self {
        self.params.push((name.into(), value.map(str::to_owned)));
        self
    }

    /// The first parameter called `name` (ASCII case-insensitive): `Some(None)` when it has no
    /// value, `None` when absent.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }
}

/// Parses one `Sec-WebSocket-Extensions` header value into its offers, in order. Several header
/// lines are equivalent to their values joined with `,`: parse each and concatenate.
///
/// # Errors
///
/// [`HandshakeError::InvalidExtensions`] (400) when the value breaks the grammar.
///
/// # Examples
///
/// ```
/// use wsx::protocol::handshake::parse_extensions;
/// let offers = parse_extensions(b"permessage-deflate; client_max_window_bits, x; a=\"1\"")?;
/// assert_eq!(offers.len(), 2);
/// assert_eq!(offers[0].param("client_max_window_bits"), Some(None));
/// assert_eq!(offers[1].param("a"), Some(Some("1")));
/// # Ok::<(), wsx::HandshakeError>(())
/// ```
pub fn parse_extensions(value: &[u8]) -> Result<Vec<ExtensionOffer>, HandshakeError> {
    let mut out = Vec::new();
    parse_extensions_into(value, &mut out)?;
    Ok(out)
}

/// [`parse_extensions`], appending to `out` (left as it was on error).
pub(super) fn parse_extensions_into(
    value: &[u8],
    out: &mut Vec<ExtensionOffer>,
) -> Result<(), HandshakeError> {
    let before = out.len();
    let result = Cursor {
        bytes: value,
        pos: 0,
    }
    .extension_list(out);
    if result.is_err() {
        out.truncate(before);
    }
    result
}

/// Writes offers as a header value (`a; p; q=1, b`), quoting values that are not tokens.
/// `out` is left as it was on error.
///
/// # Errors
///
/// [`HandshakeError::InvalidHeader`] when a name is not a token or a value holds a control
/// byte (CR and LF included).
///
/// # Examples
///
/// ```
/// use wsx::protocol::handshake::{format_extensions, ExtensionOffer};
/// let offers = [
///     ExtensionOffer::new("permessage-deflate").with_param("client_max_window_bits", None),
///     ExtensionOffer::new("x-test").with_param("note", Some("two words")),
/// ];
/// let mut value = String::new();
/// format_extensions(&offers, &mut value)?;
/// assert_eq!(value, "permessage-deflate; client_max_window_bits, x-test; note=\"two words\"");
/// # Ok::<(), wsx::HandshakeError>(())
/// ```
pub fn format_extensions(
    offers: &[ExtensionOffer],
    out: &mut String,
) -> Result<(), HandshakeError> {
    let before = out.len();
    let result = format_into(offers, out);
    if result.is_err() {
        out.truncate(before);
    }
    result
}

fn format_into(offers: &[ExtensionOffer], out: &mut String) -> Result<(), HandshakeError> {
    for (i, offer) in offers.iter().enumerate() {
        if !is_token(offer.name.as_bytes()) {
            return Err(HandshakeError::InvalidHeader(
                "extension name is not a token",
            ));
        }
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&offer.name);
        for (name, value) in &offer.params {
            if !is_token(name.as_bytes()) {
                return Err(HandshakeError::InvalidHeader(
                    "extension parameter is not a token",
                ));
            }
            out.push_str("; ");
            out.push_str(name);
            match value {
                None => {}
                Some(v) if is_token(v.as_bytes()) => {
                    out.push('=');
                    out.push_str(v);
                }
                Some(v) => {
                    if v.bytes().any(|b| is_ctl(b) && b != b'\t') {
                        return Err(HandshakeError::InvalidHeader(
                            "extension parameter value has a control byte",
                        ));
                    }
                    out.push_str("=\"");
                    for c in v.chars() {
                        if c == '"' || c == '\\' {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                    out.push('"');
                }
            }
        }
    }
    Ok(())
}

/// `tchar` of RFC 9110 §5.6.2.
pub(super) const fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
        | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+'
        | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
}

/// A control byte: 0x00–0x1F or DEL.
const fn is_ctl(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// `token` of RFC 9110 §5.6.2: one or more `tchar`.
pub(super) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// A field value we may send: no control bytes but HTAB (so no CR, LF or NUL).
pub(super) fn is_valid_value(v: &[u8]) -> bool {
    v.iter().all(|&b| !is_ctl(b) || b == b'\t')
}

/// `s` without leading and trailing spaces and tabs.
pub(super) fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or_default()
}

/// The non-empty elements of a comma list, trimmed.
pub(super) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// Whether any of `values` (comma lists) holds `token`, ASCII case-insensitively.
pub(super) fn lists_contain<'a>(values: impl IntoIterator<Item = &'a [u8]>, token: &str) -> bool {
    values
        .into_iter()
        .any(|v| list_elements(v).any(|e| e.eq_ignore_ascii_case(token.as_bytes())))
}

/// A position in a header value; every read is bounds-checked.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

type PResult<T> = Result<T, HandshakeError>;

fn malformed<T>(what: &'static str) -> PResult<T> {
    Err(HandshakeError::InvalidExtensions(what))
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn token(&mut self, what: &'static str) -> PResult<String> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        match self.bytes.get(start..self.pos) {
            Some(t) if !t.is_empty() => Ok(t.iter().map(|&b| char::from(b)).collect()),
            _ => malformed(what),
        }
    }

    /// After the opening quote: up to and including the closing quote, unescaped.
    fn quoted(&mut self) -> PResult<String> {
        let mut value = Vec::new();
        loop {
            let b = match self.peek() {
                Some(b) => b,
                None => return malformed("unterminated quoted string"),
            };
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => match self.peek() {
                    Some(e) if !is_ctl(e) || e == b'\t' => {
                        value.push(e);
                        self.pos += 1;
                    }
                    _ => return malformed("bad escape in quoted string"),
                },
                b if is_ctl(b) && b != b'\t' => return malformed("control byte in quoted string"),
                b => value.push(b),
            }
        }
        String::from_utf8(value).or_else(|_| malformed("quoted string is not utf-8"))
    }

    fn extension_list(&mut self, out: &mut Vec<ExtensionOffer>) -> PResult<()> {
        loop {
            self.skip_ows();
            match self.peek() {
                None => return Ok(()),
                Some(b',') => {
                    self.pos += 1;
                    continue;
                }
                Some(_) => {}
            }
            let mut offer = ExtensionOffer::new(self.token("expected an extension name")?);
            loop {
                self.skip_ows();
                match self.peek() {
                    None | Some(b',') => break,
                    Some(b';') => self.pos += 1,
                    Some(_) => return malformed("expected ';' or ','"),
                }
                self.skip_ows();
                let name = self.token("expected a parameter name")?;
                self.skip_ows();
                let value = if self.peek() == Some(b'=') {
                    self.pos += 1;
                    self.skip_ows();
                    if self.peek() == Some(b'"') {
                        self.pos += 1;
                        Some(self.quoted()?)
                    } else {
                        Some(self.token("expected a parameter value")?)
                    }
                } else {
                    None
                };
                offer.params.push((name, value));
            }
            out.push(offer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `ext!(name; (param, value)...)` builds an [`ExtensionOffer`].
    macro_rules! ext {
        ($name:literal $(; $p:literal $(= $v:literal)?)*) => {
            ExtensionOffer {
                name: $name.into(),
                params: vec![$(($p.to_string(), None::<&str> $(.or(Some($v)))?.map(str::to_owned))),*],
            }
        };
    }

    /// `parses! { input => [offers], ... }` and `parses! { input => err, ... }`.
    macro_rules! parses {
        ($($input:literal => [$($offer:expr),* $(,)?]),* $(,)?) => {$(
            assert_eq!(parse_extensions($input), Ok(vec![$($offer),*]), "{:?}", $input);
        )*};
    }

    macro_rules! rejects {
        ($($input:literal),* $(,)?) => {$(
            assert!(
                matches!(parse_extensions($input), Err(HandshakeError::InvalidExtensions(_))),
                "{:?} should be rejected", $input,
            );
        )*};
    }

    #[test]
    fn valid_values() {
        parses! {
            b"" => [],
            b" , ,, " => [],
            b"permessage-deflate" => [ext!("permessage-deflate")],
            b"permessage-deflate; client_max_window_bits" =>
                [ext!("permessage-deflate"; "client_max_window_bits")],
            b"permessage-deflate;client_max_window_bits=10;server_no_context_takeover" =>
                [ext!("permessage-deflate"; "client_max_window_bits" = "10"; "server_no_context_takeover")],
            b" a ; b = 1 ;\tc=\"2\" , d " => [ext!("a"; "b" = "1"; "c" = "2"), ext!("d")],
            b"x; q=\"quoted value\"" => [ext!("x"; "q" = "quoted value")],
            b"x; q=\"a\\\"b\\\\c\"" => [ext!("x"; "q" = "a\"b\\c")],
            b"x; q=\"\"" => [ext!("x"; "q" = "")],
            b"x; q=\"caf\xc3\xa9\"" => [ext!("x"; "q" = "caf\u{e9}")],
            b"a,b,,c," => [ext!("a"), ext!("b"), ext!("c")],
            b"permessage-deflate; client_max_window_bits, permessage-deflate" =>
                [ext!("permessage-deflate"; "client_max_window_bits"), ext!("permessage-deflate")],
        }
    }

    #[test]
    fn malformed_values() {
        rejects! {
            b";",
            b"a;",
            b"a;;b",
            b"a; =1",
            b"a; b=",
            b"a; b=,",
            b"a; b=\"unterminated",
            b"a; b=\"bad\\",
            b"a; b=\"ctl\x01\"",
            b"a; b=\"cr\r\"",
            b"a; b=\"\xff\"",
            b"a b",
            b"a; b c",
            b"a; b=1 2",
            b"a; b=\"1\"2",
            b"\"a\"",
            b"a=1",
            b"a\r\n; b",
            b"caf\xc3\xa9",
        }
    }

    #[test]
    fn several_header_lines_concatenate() {
        let mut out = Vec::new();
        parse_extensions_into(b"a; x=1", &mut out).unwrap();
        parse_extensions_into(b"b, c", &mut out).unwrap();
        assert_eq!(out, vec![ext!("a"; "x" = "1"), ext!("b"), ext!("c")]);
        assert!(parse_extensions_into(b"d, ;", &mut out).is_err());
        assert_eq!(out.len(), 3, "a failed value appends nothing");
    }

    #[test]
    fn format_round_trip() {
        let offers = vec![
            ext!("permessage-deflate"; "client_max_window_bits"; "server_max_window_bits" = "10"),
            ext!("x"; "q" = "a \"b\" \\c"; "e" = ""),
        ];
        let mut s = String::from("prefix");
        format_extensions(&offers, &mut s).unwrap();
        assert_eq!(
            s,
            "prefixpermessage-deflate; client_max_window_bits; server_max_window_bits=10, \
             x; q=\"a \\\"b\\\" \\\\c\"; e=\"\""
        );
        assert_eq!(
            parse_extensions(&s.as_bytes()["prefix".len()..]),
            Ok(offers)
        );
    }

    #[test]
    fn format_rejects_injection() {
        for offers in [
            vec![ext!("a\r\nX-Evil: 1")],
            vec![ext!("")],
            vec![ext!("a"; "b c")],
            vec![ext!("a"; "b" = "1\r\nX-Evil: 1")],
            vec![ext!("a"; "b" = "\0")],
        ] {
            let mut s = String::from("keep");
            assert!(
                matches!(
                    format_extensions(&offers, &mut s),
                    Err(HandshakeError::InvalidHeader(_))
                ),
                "{offers:?}"
            );
            assert_eq!(s, "keep");
        }
    }

    #[test]
    fn list_helpers() {
        assert_eq!(trim_ows(b" \t a b\t "), b"a b");
        assert_eq!(trim_ows(b"  "), b"");
        assert_eq!(
            list_elements(b" a, ,b ,").collect::<Vec<_>>(),
            [&b"a"[..], b"b"]
        );
        assert!(lists_contain([&b"keep-alive, Upgrade"[..]], "upgrade"));
        assert!(lists_contain([&b"keep-alive"[..], b"UPGRADE"], "upgrade"));
        assert!(!lists_contain([&b"upgrades"[..]], "upgrade"));
        assert!(is_token(b"permessage-deflate") && !is_token(b"") && !is_token(b"a b"));
        assert!(is_valid_value(b"a\tb \xff") && !is_valid_value(b"a\rb") && !is_valid_value(b"\n"));
    }

    fn offer_strategy() -> impl Strategy<Value = ExtensionOffer> {
        let token = "[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,8}";
        let value = proptest::option::of(prop_oneof![
            token.prop_map(String::from),
            "[ -~\t\u{80}-\u{2000}]{0,8}".prop_map(String::from),
        ]);
        (token, proptest::collection::vec((token, value), 0..4))
            .prop_map(|(name, params)| ExtensionOffer { name, params })
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_extensions(&bytes);
        }

        #[test]
        fn formatted_offers_parse_back(offers in proptest::collection::vec(offer_strategy(), 0..4)) {
            let mut s = String::new();
            format_extensions(&offers, &mut s).unwrap();
            prop_assert_eq!(parse_extensions(s.as_bytes()), Ok(offers));
        }
    }
}

//! Text in the document: XML escaping and cutting to length.

/// `s` cut to `max` characters, the last of them an ellipsis, when longer.
pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut cut: String = s.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// `s` escaped for XML character data.
pub(super) fn text(s: &str) -> String {
    escape(s, false)
}

/// `s` escaped for a double-quoted XML attribute, white space kept as it is.
pub(super) fn attr(s: &str) -> String {
    escape(s, true)
}

pub(super) fn escape(s: &str, in_attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // A parser turns a raw CR (and, in attributes, tabs and newlines) into something else.
            '\r' => out.push_str("&#13;"),
            '\n' if in_attribute => out.push_str("&#10;"),
            '\t' if in_attribute => out.push_str("&#9;"),
            '\t' | '\n' => out.push(c),
            // Not allowed anywhere in XML 1.0, not even as a reference.
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => out.push('\u{fffd}'),
            _ => out.push(c),
        }
    }
    out
}

//! The wire contract between wsx nodes on NATS, sans-IO: topic ↔ subject, the headers a
//! publish carries, and the checks a message from NATS passes before any subscriber sees it.
//! A message from NATS is untrusted input: its subject, headers and size are checked here.
//!
//! A publish to topic `T` goes to subject `<prefix>.T` with the headers
//!
//! | header        | value                                          |
//! |---------------|------------------------------------------------|
//! | `Wsx-Origin`  | the publishing node's name (its own are skipped) |
//! | `Wsx-Kind`    | `text` or `binary` (absent: binary)            |
//! | `Wsx-Key`     | the conflation key, if the publish had one     |

use crate::handler::Message;
use crate::protocol::MessageKind;

/// The publishing node's name.
pub(crate) const ORIGIN: &str = "Wsx-Origin";
/// `text` or `binary`.
pub(crate) const KIND: &str = "Wsx-Kind";
/// The conflation key.
pub(crate) const KEY: &str = "Wsx-Key";

/// Longest subject wsx publishes or subscribes to (NATS's own control line is 4 KiB).
pub(crate) const MAX_SUBJECT: usize = 1024;
/// Longest conflation key accepted from NATS: a hostile publisher's keys fill a slow
/// subscriber's held-back list, so each is bounded.
pub(crate) const MAX_KEY: usize = 256;

/// Whether `s` is a run of NATS subject tokens wsx can use literally: non-empty tokens
/// separated by `.`, without whitespace, control characters or the wildcards `*` and `>`.
fn literal_subject(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|token| {
            !token.is_empty()
                && !token
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '*' || c == '>')
        })
}

/// Whether `prefix` can start the subjects of a backplane.
pub(crate) fn valid_prefix(prefix: &str) -> bool {
    literal_subject(prefix) && prefix.len() < MAX_SUBJECT / 2
}

/// The subject of `topic`, or `None` when the topic cannot be one (it stays local to each
/// node: empty, with whitespace, wildcards or empty tokens, or too long).
pub(crate) fn subject(prefix: &str, topic: &str) -> Option<String> {
    if !literal_subject(topic) || prefix.len() + 1 + topic.len() > MAX_SUBJECT {
        return None;
    }
    let mut s = String::with_capacity(prefix.len() + 1 + topic.len());
    s.push_str(prefix);
    s.push('.');
    s.push_str(topic);
    Some(s)
}

/// The topic of `subject` under `prefix`, if it is one.
pub(crate) fn topic_of<'a>(prefix: &str, subject: &'a str) -> Option<&'a str> {
    let topic = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    literal_subject(topic).then_some(topic)
}

/// The `Wsx-Kind` value of `kind`.
pub(crate) fn kind_name(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Text => "text",
        MessageKind::Binary => "binary",
    }
}

/// A message from NATS, as received: the subject and the headers wsx reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Incoming<'a> {
    pub(crate) subject: &'a str,
    pub(crate) origin: Option<&'a str>,
    pub(crate) kind: Option<&'a str>,
    pub(crate) key: Option<&'a str>,
    pub(crate) payload: &'a [u8],
}

/// What to do with a message from NATS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict<'a> {
    /// Fan it out to this node's subscribers of `topic`.
    Deliver {
        topic: &'a str,
        key: Option<&'a str>,
        message: Message<'a>,
    },
    /// This node published it.
    Own,
    /// Larger than the node's max payload.
    Oversize,
    /// Not a message wsx delivers: a subject outside the prefix or other than the one
    /// subscribed to, an unknown kind, text that is not UTF-8, an over-long key.
    Invalid,
}

/// Checks a message received on the subscription to `expected` (a topic), by a node named
/// `node` that accepts messages of at most `max_payload` bytes.
pub(crate) fn check<'a>(
    prefix: &str,
    node: &str,
    expected: &str,
    max_payload: u64,
    m: Incoming<'a>,
) -> Verdict<'a> {
    if m.origin == Some(node) {
        return Verdict::Own;
    }
    if m.payload.len() as u64 > max_payload {
        return Verdict::Oversize;
    }
    let Some(topic) = topic_of(prefix, m.subject).filter(|t| *t == expected) else {
        return Verdict::Invalid;
    };
    if m.key.is_some_and(|k| k.len() > MAX_KEY) {
        return Verdict::Invalid;
    }
    let message = match m.kind {
        None | Some("binary") => Message::Binary(m.payload),
        Some("text") => match simdutf8::basic::from_utf8(m.payload) {
            Ok(text) => Message::Text(text),
            Err(_) => return Verdict::Invalid,
        },
        Some(_) => return Verdict::Invalid,
    };
    Verdict::Deliver {
        topic,
        key: m.key,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_that_are_literal_subjects_map_both_ways() {
        assert_eq!(subject("wsx", "ticks").as_deref(), Some("wsx.ticks"));
        assert_eq!(
            subject("app.wsx", "ticks.AAPL").as_deref(),
            Some("app.wsx.ticks.AAPL")
        );
        assert_eq!(
            topic_of("app.wsx", "app.wsx.ticks.AAPL"),
            Some("ticks.AAPL")
        );
        assert_eq!(subject("wsx", "été").as_deref(), Some("wsx.été"));
        for local_only in [
            "", "a b", "a..b", ".a", "a.", "*", "a.>", "x*", "tab\t", "nl\n",
        ] {
            assert_eq!(subject("wsx", local_only), None, "{local_only:?}");
        }
        assert_eq!(subject("wsx", &"x".repeat(MAX_SUBJECT)), None);
        assert_eq!(topic_of("wsx", "wsxticks"), None);
        assert_eq!(topic_of("wsx", "other.ticks"), None);
        assert_eq!(topic_of("wsx", "wsx."), None);
        assert!(valid_prefix("wsx") && valid_prefix("a.b"));
        assert!(!valid_prefix("") && !valid_prefix("a.*") && !valid_prefix("a."));
    }

    fn incoming<'a>(payload: &'a [u8]) -> Incoming<'a> {
        Incoming {
            subject: "wsx.t",
            origin: Some("other"),
            kind: Some("text"),
            key: None,
            payload,
        }
    }

    #[test]
    fn a_message_from_nats_is_checked_before_delivery() {
        let check = |m| check("wsx", "me", "t", 8, m);
        assert_eq!(
            check(incoming(b"hi")),
            Verdict::Deliver {
                topic: "t",
                key: None,
                message: Message::Text("hi")
            }
        );
        let binary = Incoming {
            kind: Some("binary"),
            key: Some("AAPL"),
            ..incoming(b"\xff")
        };
        assert_eq!(
            check(binary),
            Verdict::Deliver {
                topic: "t",
                key: Some("AAPL"),
                message: Message::Binary(b"\xff")
            }
        );
        // A publisher that is not wsx: no headers at all, delivered as binary.
        let foreign = Incoming {
            origin: None,
            kind: None,
            ..incoming(b"{}")
        };
        assert!(matches!(
            check(foreign),
            Verdict::Deliver {
                message: Message::Binary(b"{}"),
                ..
            }
        ));
        let own = Incoming {
            origin: Some("me"),
            ..incoming(b"hi")
        };
        assert_eq!(check(own), Verdict::Own);
        assert_eq!(check(incoming(b"123456789")), Verdict::Oversize);
        assert_eq!(check(incoming(b"12345678")).clone(), {
            Verdict::Deliver {
                topic: "t",
                key: None,
                message: Message::Text("12345678"),
            }
        });
        assert_eq!(check(incoming(b"\xff\xfe")), Verdict::Invalid, "not UTF-8");
        let odd_kind = Incoming {
            kind: Some("ping"),
            ..incoming(b"hi")
        };
        assert_eq!(check(odd_kind), Verdict::Invalid);
        let long_key = "k".repeat(MAX_KEY + 1);
        let keyed = Incoming {
            key: Some(&long_key),
            ..incoming(b"hi")
        };
        assert_eq!(check(keyed), Verdict::Invalid);
        for subject in ["wsx.u", "other.t", "wsx.t.deeper", "wsx"] {
            let m = Incoming {
                subject,
                ..incoming(b"hi")
            };
            assert_eq!(check(m), Verdict::Invalid, "{subject}");
        }
    }
}

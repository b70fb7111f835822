//! What happens to a published message when a subscriber is slow.

use crate::protocol::CloseCode;

/// What a publish does for a subscriber whose unwritten bytes are over its topic's limit.
///
/// Control frames (pongs, close) are never dropped by any policy, and direct sends
/// ([`Conn::send`](crate::Conn::send)) follow [`Builder::max_buffered`](crate::ServerBuilder::max_buffered), not this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SlowConsumer {
    /// The subscriber does not get the message (counted as dropped). The default.
    Drop,
    /// The subscriber is closed with [`SLOW_CONSUMER_CLOSE`] (1008) and reason
    /// `"slow consumer"`; the close frame goes behind what is queued, and the close timeout
    /// drops a peer that still does not read.
    Close,
    /// Only the newest message per topic and key is kept for the subscriber (the key given
    /// with [`Conn::publish_keyed`](crate::Conn::publish_keyed), or none: one per topic) and
    /// sent when its queue has drained; each message replaced unsent counts as conflated.
    Conflate,
}

/// The close code of [`SlowConsumer::Close`]: policy violation.
pub const SLOW_CONSUMER_CLOSE: CloseCode = CloseCode::POLICY;

/// A topic's policy: when a subscriber counts as slow and what is done then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TopicPolicy {
    /// Unwritten bytes (already queued, before this message) at or above which the subscriber
    /// is slow for this topic. Capped by [`Builder::max_buffered`](crate::ServerBuilder::max_buffered).
    pub limit: usize,
    /// What is done with a message for a slow subscriber.
    pub slow: SlowConsumer,
}

impl TopicPolicy {
    /// Drop messages for subscribers with `limit` or more unwritten bytes.
    pub const fn drop_at(limit: usize) -> Self {
        TopicPolicy {
            limit,
            slow: SlowConsumer::Drop,
        }
    }

    /// Close subscribers with `limit` or more unwritten bytes.
    pub const fn close_at(limit: usize) -> Self {
        TopicPolicy {
            limit,
            slow: SlowConsumer::Close,
        }
    }

    /// Keep only the newest message per key for subscribers with `limit` or more unwritten
    /// bytes.
    pub const fn conflate_at(limit: usize) -> Self {
        TopicPolicy {
            limit,
            slow: SlowConsumer::Conflate,
        }
    }
}

impl Default for TopicPolicy {
    /// [`SlowConsumer::Drop`] at the server's `max_buffered`.
    fn default() -> Self {
        TopicPolicy::drop_at(usize::MAX)
    }
}

/// The server's policies: one default, and overrides by topic-name prefix (the longest
/// matching prefix wins).
#[derive(Debug, Clone, Default)]
pub(crate) struct Policies {
    pub(crate) default: TopicPolicy,
    pub(crate) by_prefix: Vec<(String, TopicPolicy)>,
}

impl Policies {
    pub(crate) fn for_topic(&self, name: &str) -> TopicPolicy {
        self.by_prefix
            .iter()
            .filter(|(p, _)| name.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .map_or(self.default, |(_, policy)| *policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_prefix_wins() {
        let p = Policies {
            default: TopicPolicy::drop_at(10),
            by_prefix: vec![
                ("ticks.".into(), TopicPolicy::conflate_at(20)),
                ("ticks.fx.".into(), TopicPolicy::close_at(30)),
            ],
        };
        assert_eq!(p.for_topic("chat"), TopicPolicy::drop_at(10));
        assert_eq!(p.for_topic("ticks.AAPL"), TopicPolicy::conflate_at(20));
        assert_eq!(p.for_topic("ticks.fx.EURUSD"), TopicPolicy::close_at(30));
    }
}

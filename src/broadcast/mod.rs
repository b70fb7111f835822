//! Broadcast and pub/sub: a message framed once, compressed at most once, and fanned out to
//! every subscriber on every worker without a copy per recipient.
//!
//! ```text
//! Conn::publish / ServerHandle::publish
//!   └─► Published (Arc): the frame (header + payload) built once
//!         ├─► this worker: after the loop turn, each local subscriber's writev points at it
//!         └─► every other worker with subscribers (Directory): one inbox push per worker
//!               └─► the same, there
//! subscribers that negotiated permessage-deflate and compress each message alone share one
//! compressed frame (built by the first worker that needs it); those with a context of their
//! own get a compression each (counted in TopicStats::compressed_per_subscriber)
//! ```
//!
//! - **Topics** are strings. A connection subscribes with [`Conn::subscribe`](crate::Conn::subscribe); it is
//!   unsubscribed from everything when it closes. Each worker keeps topic → subscriber list
//!   for its own connections, so a publish costs O(subscribers on that worker); the shared
//!   topic directory says which workers have subscribers, so a worker with none
//!   receives nothing.
//! - **Ordering**: messages from one publisher to one topic arrive in publish order; a send and
//!   a publish made in the same callback reach the publishing connection in call order.
//! - **Slow consumers** follow the topic's [`TopicPolicy`]: drop, close, or conflate (the newest
//!   message per topic and key, sent once the socket drains). Counters are exact, per topic
//!   ([`TopicStats`]) and per connection ([`SubscriberStats`]).
//!
//! See `docs/broadcast.md`.

pub(crate) mod directory;
pub(crate) mod frame;
pub(crate) mod last_value;
pub(crate) mod local;
mod policy;
pub(crate) mod remote;

pub use directory::TopicStats;
pub use last_value::{LastValue, LastValueStats};
pub use local::SubscriberStats;
pub(crate) use policy::Policies;
pub use policy::{SlowConsumer, TopicPolicy, SLOW_CONSUMER_CLOSE};

/// Options of one publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishOptions<'a> {
    /// The conflation key (an instrument symbol, say): under
    /// [`SlowConsumer::Conflate`] a slow subscriber keeps only the newest message per key.
    /// `None`: one per topic.
    pub key: Option<&'a str>,
    /// Whether the publishing connection gets the message too, when it is a recipient
    /// (subscribed, or any open connection for a broadcast). Ignored outside a connection.
    pub include_self: bool,
    /// Whether recipients that negotiated permessage-deflate get it compressed (when it is
    /// over the threshold): ws's `compress` option.
    pub compress: bool,
}

impl Default for PublishOptions<'_> {
    /// No key, the publisher included, compressed where negotiated.
    fn default() -> Self {
        PublishOptions {
            key: None,
            include_self: true,
            compress: true,
        }
    }
}

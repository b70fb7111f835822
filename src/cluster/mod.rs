//! Pub/sub across several wsx nodes over NATS (feature `nats`): the backplane.
//!
//! ```text
//!  node A                                   NATS                          node B
//!  publish(T, m) ─► A's subscribers of T                                  
//!        └─► <prefix>.T (once per publish) ─► server ─► <prefix>.T ─► fan-in ─► B's subscribers of T
//!                                                   (only to nodes that SUB to it)
//! ```
//!
//! - A publish to topic `T` reaches this node's subscribers at once (the local path, untouched)
//!   and goes to NATS subject `<prefix>.T` once, whatever the number of subscribers anywhere.
//! - A node subscribes on NATS to `<prefix>.T` when it gets its first subscriber of `T` and
//!   unsubscribes when its last one leaves (the topic directory tells it; the workers pay
//!   nothing per message for it).
//! - A message from NATS is checked (subject, kind, size, key) and fanned out to this node's
//!   subscribers through the same encode-once path as a local publish; it is never published
//!   again. A node never delivers its own publishes twice (it asks NATS not to echo them, and
//!   skips any that carry its own name).
//! - Delivery is at most once (NATS core): while NATS is unreachable, publishes are dropped and
//!   counted (never buffered without bound), local delivery goes on, the client reconnects with
//!   backoff and restores the node's subscriptions.
//!
//! See `docs/cluster.md`.

mod jetstream;
mod link;
mod options;
mod subject;
mod tls;

pub(crate) use link::Link;
pub use options::NatsBackplane;

/// Counters of a node's backplane since it started: exact, except `slow_consumer`, which
/// counts the NATS client's events; those travel through a bounded channel that drops events
/// when full (during a flood of them), so it is a lower bound. The exact number of messages
/// dropped at the receive queues (or waiting in them, at most
/// [`NatsBackplane::receive_queue`] per subscribed topic) is `from_nats` minus `received`,
/// `own_skipped`, `refused_oversize`, `refused_invalid` and `unsubscribed` — without a
/// last-values bucket: with one, `from_nats` also counts JetStream's answers and the values
/// read from the bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackplaneStats {
    /// Whether the NATS connection is up now.
    pub connected: bool,
    /// Times the connection came back after it was lost (the NATS client's count of
    /// connections made, less the first).
    pub reconnects: u64,
    /// Messages NATS delivered to this node's connection (the NATS client's count): every
    /// message counted below as fanned in, skipped or refused, and those the client dropped
    /// at a full receive queue (and, with a last-values bucket, JetStream's answers and the
    /// values read from it).
    pub from_nats: u64,
    /// Subjects this node subscribes to now (topics it has local subscribers of).
    pub subscriptions: u64,
    /// Publishes sent to NATS.
    pub published: u64,
    /// Messages from NATS fanned out to this node's subscribers.
    pub received: u64,
    /// Publishes not sent because NATS was unreachable.
    pub dropped_disconnected: u64,
    /// Publishes not sent because the queue to the NATS thread was full, or NATS did not take
    /// them (a payload over the NATS server's `max_payload`, a write that did not finish).
    pub dropped_backlog: u64,
    /// Publishes to topics that are no NATS subject (empty tokens, whitespace, wildcards): they
    /// stay on this node.
    pub local_only: u64,
    /// Messages from NATS over the node's max payload, refused.
    pub refused_oversize: u64,
    /// Messages from NATS refused as malformed: text that is not UTF-8, an unknown kind, an
    /// over-long key, a subject other than the one subscribed to.
    pub refused_invalid: u64,
    /// Messages from NATS this node had published itself, skipped.
    pub own_skipped: u64,
    /// Messages from NATS that arrived after this node's last subscriber of their topic left.
    pub unsubscribed: u64,
    /// Messages from NATS the NATS client dropped because the topic's receive queue
    /// ([`NatsBackplane::receive_queue`]) was full: the node fell behind what NATS sent it.
    pub slow_consumer: u64,
    /// Whether the JetStream bucket of the last values was found or made
    /// ([`NatsBackplane::last_values_bucket`]); until it is, values are not stored.
    pub bucket_ready: bool,
    /// Publishes to last-value topics also put into the JetStream bucket
    /// ([`NatsBackplane::last_values_bucket`]).
    pub stored: u64,
    /// Publishes to last-value topics not put into the bucket: it was not there yet (NATS
    /// without JetStream, or JetStream not answering), or NATS did not take them.
    pub not_stored: u64,
    /// Values read from the bucket that this node kept and sent to its subscribers (it had
    /// no newer value of their key).
    pub filled: u64,
    /// Values read from the bucket and refused: stored under another topic's or key's name,
    /// oversize, malformed.
    pub fill_refused: u64,
    /// Reads of the bucket that failed (NATS away, JetStream not enabled or not answering);
    /// each is tried again every 500 ms while the topic has subscribers.
    pub fill_errors: u64,
}

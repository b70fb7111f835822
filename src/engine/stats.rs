//! Counters: what each worker publishes once per loop turn, and the sums a
//! [`ServerHandle`](crate::ServerHandle) reads.

use std::sync::atomic::AtomicU64;

/// Counters one worker publishes.
#[derive(Debug, Default)]
pub(crate) struct WorkerStats {
    pub(crate) connections: AtomicU64,
    pub(crate) opened: AtomicU64,
    pub(crate) closed: AtomicU64,
    pub(crate) messages_in: AtomicU64,
    pub(crate) messages_out: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) shed: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) queued_bytes: AtomicU64,
    pub(crate) queued_peak: AtomicU64,
    pub(crate) conn_queued_peak: AtomicU64,
    pub(crate) paused: AtomicU64,
    pub(crate) timer_entries: AtomicU64,
    pub(crate) timer_capacity: AtomicU64,
    pub(crate) slab_capacity: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) delivery_dropped: AtomicU64,
    pub(crate) conflated: AtomicU64,
    pub(crate) slow_closed: AtomicU64,
    pub(crate) compressed_per_subscriber: AtomicU64,
    pub(crate) topics: AtomicU64,
    pub(crate) topic_heap: AtomicU64,
}

/// Server-wide counters, summed over the workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Open connections (handshaking ones included).
    pub connections: u64,
    /// Connections taken in since the start: accepted from the listener (not shed), adopted,
    /// or opened by the client side. `opened - closed` is `connections`; a server whose peers
    /// have all gone has `opened == closed`.
    pub opened: u64,
    /// Connections that ended since the start, however they ended (closing handshake, reset,
    /// timeout, handshake refused).
    pub closed: u64,
    /// Messages received.
    pub messages_in: u64,
    /// Messages sent.
    pub messages_out: u64,
    /// Bytes read from sockets.
    pub bytes_in: u64,
    /// Bytes written to sockets.
    pub bytes_out: u64,
    /// Connections closed as soon as accepted, without a handshake: over
    /// [`Builder::max_connections`](crate::server::Builder::max_connections), or shed while the process was out of descriptors (see
    /// `docs/server.md`, "Descriptor limits").
    pub shed: u64,
    /// Published messages accepted into a recipient's queue (or written at once), over all
    /// topics and broadcasts.
    pub delivered: u64,
    /// Published messages a slow recipient did not get ([`SlowConsumer::Drop`](crate::broadcast::SlowConsumer::Drop)).
    pub delivery_dropped: u64,
    /// Published messages replaced unsent by a newer one for a slow recipient
    /// ([`SlowConsumer::Conflate`](crate::broadcast::SlowConsumer::Conflate)).
    pub conflated: u64,
    /// Recipients closed for being slow ([`SlowConsumer::Close`](crate::broadcast::SlowConsumer::Close)).
    pub slow_closed: u64,
    /// Deliveries compressed for one recipient alone instead of sharing the frame compressed
    /// once (recipients that keep a compression context, or use a smaller window).
    pub compressed_per_subscriber: u64,
    /// Publishes that skipped a worker whose inbox was over
    /// [`Builder::publish_backlog`](crate::server::Builder::publish_backlog), once per worker skipped.
    pub publish_backlogged: u64,
    /// Sends dropped by backpressure ([`SendStatus::Dropped`](crate::SendStatus::Dropped)), from
    /// [`Conn`](crate::Conn) and from [`ServerHandle`](crate::ServerHandle) alike. Exact.
    pub dropped: u64,
}

/// Sizes of the engine's per-worker structures, summed over the workers: for tests that check
/// they stay flat under churn. Not a stable interface.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Entries in the timer wheels (stale ones included).
    pub timer_entries: u64,
    /// Entries the timer wheels have room for: what they hold in memory.
    pub timer_capacity: u64,
    /// Slots the connection slabs have room for.
    pub slab_capacity: u64,
    /// Topics with local subscribers, summed over the workers.
    pub topics: u64,
    /// Heap bytes of the workers' topic indexes (subscriber lists and topic entries).
    pub topic_heap: u64,
    /// Unwritten bytes in the connections' queues now (what the kernel did not take).
    pub queued_bytes: u64,
    /// The most each worker's queues held at once, summed over the workers.
    pub queued_peak: u64,
    /// The most one connection's queue ever held (the largest over the workers): what the
    /// per-connection memory bound of `docs/server.md` ("Backpressure") caps.
    pub conn_queued_peak: u64,
    /// Connections whose reading is paused because their queue is full.
    pub paused: u64,
}

//! Fan-out: what a published message becomes for one recipient (the shared frame, the shared
//! compressed frame, or a frame of its own), the slow-consumer policy applied to it, and the
//! [`Hub`] that reaches every worker.
//!
//! The worker side (walking subscribers, the vectored writes) is in `worker/fanout.rs`; the
//! `Conn` methods that subscribe and publish are in `engine/publish.rs`.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::broadcast::directory::Directory;
use crate::broadcast::frame::{Audience, Published};
use crate::broadcast::local::Subscriptions;
use crate::broadcast::{SlowConsumer, TopicPolicy, SLOW_CONSUMER_CLOSE};
use crate::engine::inbox::{Command, InboxSender, Refused};
use crate::protocol::deflate::DeflateOptions;
use crate::protocol::{Role, WriteHalf};

/// Every worker's inbox and the topic directory: what a publish needs to reach the workers
/// with subscribers. One per server, shared by its workers and its handles.
#[derive(Debug)]
pub(crate) struct Hub {
    pub(crate) inboxes: Vec<InboxSender>,
    pub(crate) directory: Arc<Directory>,
    /// Most publishes waiting in one worker's inbox; past it a publish skips that worker.
    pub(crate) backlog: usize,
    /// Publishes that skipped a worker whose inbox was full (once per worker skipped).
    pub(crate) refused: AtomicU64,
}

/// What became of a publish on its way to the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Queued for every worker that should see it.
    All,
    /// At least one worker's inbox was over the backlog limit: it does not get this one.
    Backlogged,
    /// At least one worker has stopped.
    ShutDown,
}

impl Hub {
    /// Sends `message` to every worker that should see it but `except` (the publishing
    /// worker, which delivers its own share): one inbox push per worker.
    pub(crate) fn send_to_workers(&self, message: &Arc<Published>, except: Option<usize>) -> Reach {
        let mut reach = Reach::All;
        let mut push = |w: usize| {
            if Some(w) == except {
                return;
            }
            let Some(inbox) = self.inboxes.get(w) else {
                return;
            };
            match inbox.send_bounded(Command::Publish(message.clone()), self.backlog) {
                Ok(()) => {}
                Err(Refused::Full) => {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    if reach == Reach::All {
                        reach = Reach::Backlogged;
                    }
                }
                Err(Refused::Gone) => reach = Reach::ShutDown,
            }
        };
        match &message.audience {
            Audience::All => (0..self.inboxes.len()).for_each(&mut push),
            Audience::Topic(name) => {
                if let Some(topic) = self.directory.get(name) {
                    topic.workers().for_each(&mut push);
                }
            }
        }
        reach
    }
}

/// One piece of what a recipient is sent: a shared frame, or bytes of its own in the scratch
/// buffer.
#[derive(Debug, Clone)]
pub(crate) enum Piece {
    Shared(Bytes),
    Own(Range<usize>),
}

/// Outcomes of a fan-out, added to the counters once per batch.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counts {
    pub(crate) delivered: u64,
    pub(crate) dropped: u64,
    pub(crate) conflated: u64,
    pub(crate) closed: u64,
    pub(crate) compressed_per_subscriber: u64,
}

impl Counts {
    pub(crate) fn add(&mut self, other: &Counts) {
        self.delivered += other.delivered;
        self.dropped += other.dropped;
        self.conflated += other.conflated;
        self.closed += other.closed;
        self.compressed_per_subscriber += other.compressed_per_subscriber;
    }
}

/// What became of one message for one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Sent (or held, dropped, conflated): go on with the next message.
    Next,
    /// The recipient was closed for being slow: send it nothing more.
    Closed,
}

/// One recipient's side of a fan-out: its write half, subscriptions, what it has queued.
pub(crate) struct Recipient<'a> {
    pub(crate) tx: &'a mut WriteHalf,
    pub(crate) role: Role,
    pub(crate) subs: Option<&'a mut Subscriptions>,
    /// Unwritten bytes before this message (queue, cork, what this fan-out added).
    pub(crate) queued: usize,
    /// The recipient's limit for this topic (policy limit capped by `max_buffered`).
    pub(crate) limit: usize,
    pub(crate) slow: SlowConsumer,
}

impl Recipient<'_> {
    /// Decides what `message` becomes for this recipient and appends it to `pieces` (frames of
    /// its own are written to `own`). `topic`: the local topic id (for conflation).
    pub(crate) fn plan(
        &mut self,
        message: &Arc<Published>,
        topic: Option<u32>,
        deflate: &DeflateOptions,
        own: &mut Vec<u8>,
        pieces: &mut Vec<Piece>,
        counts: &mut Counts,
    ) -> Step {
        let seq = message.last_value_seq();
        if seq != 0 {
            if let (Some(subs), Some(topic)) = (self.subs.as_deref(), topic) {
                if subs.had(topic, seq) {
                    // It got this value, or a newer one of its key, when it subscribed.
                    return Step::Next;
                }
            }
        }
        if !self.tx.can_send_message() {
            if self.tx.close_state() == crate::protocol::CloseState::Open {
                // In the middle of a fragmented message of its own: a frame cannot go between.
                counts.dropped += 1;
                self.count(|s| s.dropped += 1);
            }
            return Step::Next;
        }
        let holding = self.subs.as_ref().is_some_and(|s| s.holding());
        let slow = self.queued >= self.limit;
        if (slow || holding) && self.slow == SlowConsumer::Conflate {
            if let (Some(subs), Some(topic)) = (self.subs.as_deref_mut(), topic) {
                if subs.hold(topic, message.clone()) {
                    counts.conflated += 1;
                    subs.stats.conflated += 1;
                }
                return Step::Next;
            }
        }
        if slow {
            match self.slow {
                SlowConsumer::Close => {
                    let start = own.len();
                    if self
                        .tx
                        .send_close(SLOW_CONSUMER_CLOSE, "slow consumer", own)
                        .is_ok()
                    {
                        pieces.push(Piece::Own(start..own.len()));
                        counts.closed += 1;
                    }
                    return Step::Closed;
                }
                // Conflate without a topic (a broadcast to all) drops like Drop.
                SlowConsumer::Drop | SlowConsumer::Conflate => {
                    counts.dropped += 1;
                    self.count(|s| s.dropped += 1);
                    return Step::Next;
                }
            }
        }
        let len = self.push_frame(message, deflate, own, pieces, counts);
        self.queued += len;
        counts.delivered += 1;
        self.count(|s| s.delivered += 1);
        Step::Next
    }

    /// Appends the frame this recipient gets; returns its length.
    fn push_frame(
        &mut self,
        message: &Published,
        deflate: &DeflateOptions,
        own: &mut Vec<u8>,
        pieces: &mut Vec<Piece>,
        counts: &mut Counts,
    ) -> usize {
        let payload = message.payload();
        let compress = message.compress && self.tx.would_compress(payload.len());
        if self.role == Role::Server && !compress {
            let frame = message.plain().clone();
            let len = frame.len();
            pieces.push(Piece::Shared(frame));
            return len;
        }
        if self.role == Role::Server && self.tx.compresses_alone() {
            let frame = message.deflated(deflate).clone();
            let len = frame.len();
            pieces.push(Piece::Shared(frame));
            return len;
        }
        // A client masks each frame with a key of its own; a context-keeping compressor
        // compresses for this connection alone.
        if compress {
            counts.compressed_per_subscriber += 1;
        }
        let start = own.len();
        let _ = self
            .tx
            .send_message_with(message.kind, payload, compress, own);
        pieces.push(Piece::Own(start..own.len()));
        own.len() - start
    }

    fn count(&mut self, f: impl FnOnce(&mut crate::broadcast::SubscriberStats)) {
        if let Some(subs) = self.subs.as_deref_mut() {
            f(&mut subs.stats);
        }
    }
}

/// The limit a topic's policy puts on a recipient.
pub(crate) fn limit_of(policy: &TopicPolicy, max_buffered: usize) -> usize {
    policy.limit.min(max_buffered)
}

//! Delivering publishes to this worker's recipients: the loop turn's publishes in batches
//! (consecutive publishes to one audience become one vectored write per recipient), messages
//! held back for slow subscribers once they drain, and unsubscribing a connection that ends.

use std::sync::Arc;

use super::lifecycle::abnormal;
use super::{Ending, Stage, Worker};
use crate::broadcast::frame::{Audience, Published};
use crate::broadcast::TopicPolicy;
use crate::engine::fanout::{limit_of, Counts, Piece, Recipient, Step};
use crate::engine::handler::Handler;
use crate::engine::outbound::Part;
use crate::engine::publish::{add_topic_counts, deflate_options};
use crate::protocol::Role;

/// Most publishes in one batch (one iovec each per recipient).
const MAX_BATCH: usize = 64;
/// A recipient's frames of one batch that add up to less than this are copied into one buffer
/// and sent with one `send`; larger ones go as a `writev` of the shared frames.
const FLATTEN_BELOW: usize = 16 << 10;

/// Buffers a fan-out reuses, so that delivering allocates nothing per recipient.
#[derive(Debug, Default)]
pub(super) struct FanScratch {
    /// Frames of recipients' own (masked, or compressed with their context).
    own: Vec<u8>,
    pieces: Vec<Piece>,
    /// Recipients whose write failed, ended after the batch.
    failed: Vec<usize>,
    /// Recipients closed for being slow, rescheduled after the batch.
    closed: Vec<usize>,
    keys: Vec<u32>,
    /// Small frames of one recipient, copied together.
    flat: Vec<u8>,
}

impl<H: Handler> Worker<H> {
    /// Delivers every publish of this loop turn to the local recipients.
    pub(in crate::engine::worker) fn flush_outgoing(&mut self) {
        let mut batch = std::mem::take(&mut self.ctx.outgoing);
        while !batch.is_empty() {
            let mut start = 0;
            while start < batch.len() {
                let first = &batch[start];
                let mut end = start + 1;
                while end < batch.len()
                    && end - start < MAX_BATCH
                    && batch[end].audience == first.audience
                    && batch[end].exclude == first.exclude
                {
                    end += 1;
                }
                self.fan_out(&batch[start..end]);
                start = end;
                if start < batch.len() && self.io.completes() {
                    // io_uring: the batch's sends go now, so that the next batch judges the
                    // subscribers by what their sockets took, as under epoll.
                    self.sync_sends();
                }
            }
            batch.clear();
            // Callbacks run by the batch (on_close of a failed recipient) may have published.
            std::mem::swap(&mut batch, &mut self.ctx.outgoing);
        }
        self.ctx.outgoing = batch;
    }

    /// Delivers `group` (same audience, same exclusion) to every local recipient.
    fn fan_out(&mut self, group: &[Arc<Published>]) {
        let mut scratch = std::mem::take(&mut self.fan);
        scratch.keys.clear();
        let (topic, policy) = match &group[0].audience {
            Audience::Topic(name) => {
                let Some(id) = self.ctx.topics.id(name) else {
                    self.fan = scratch;
                    return; // the last local subscriber left meanwhile
                };
                let Some(t) = self.ctx.topics.get(id) else {
                    self.fan = scratch;
                    return;
                };
                scratch.keys.extend_from_slice(&t.subscribers);
                (Some(id), t.policy)
            }
            Audience::All => {
                scratch.keys.extend(
                    self.conns
                        .iter()
                        .filter(|(_, s)| {
                            s.io.role == Role::Server && matches!(s.stage, Stage::Open { .. })
                        })
                        .map(|(k, _)| k as u32),
                );
                (None, self.settings.policies.default)
            }
        };
        let exclude = group[0].exclude;
        let mut counts = Counts::default();
        let keys = std::mem::take(&mut scratch.keys);
        for &key in &keys {
            let key = key as usize;
            let Some(slot) = self.conns.get_mut(key) else {
                continue;
            };
            if Some(slot.io.id) == exclude {
                continue;
            }
            self.deliver(key, group, topic, &policy, &mut scratch, &mut counts);
        }
        scratch.keys = keys;
        if let Some(id) = topic {
            if let Some(t) = self.ctx.topics.get(id) {
                add_topic_counts(&t.shared, &counts);
            }
        }
        self.ctx.published.add(&counts);
        self.ctx.messages_out += counts.delivered;
        self.finish(&mut scratch);
        self.fan = scratch;
    }

    /// Plans and writes `messages` for one recipient.
    fn deliver(
        &mut self,
        key: usize,
        messages: &[Arc<Published>],
        topic: Option<u32>,
        policy: &TopicPolicy,
        scratch: &mut FanScratch,
        counts: &mut Counts,
    ) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let Stage::Open { proto, .. } = &mut slot.stage else {
            return;
        };
        if slot.io.terminate {
            return;
        }
        let (_, tx) = proto.split();
        let deflate = deflate_options(&self.settings);
        let subs = slot.io.subs.as_deref_mut();
        let mut sent = slot.io.rare.as_deref_mut().map(|r| &mut r.sent);
        let mut recipient = Recipient {
            tx,
            role: slot.io.role,
            subs,
            queued: slot.io.out.len(),
            limit: limit_of(policy, self.settings.max_buffered),
            slow: policy.slow,
        };
        let out = &mut slot.io.out;
        let mut closed = false;
        let mut next = 0;
        while next < messages.len() && !closed {
            // Plan until the limit is reached, write, and judge the rest by what is really
            // left unwritten: "slow" means the socket did not take it.
            scratch.own.clear();
            scratch.pieces.clear();
            if self.io.completes() && !out.is_empty() && next > 0 && slot.tls.is_none() {
                // io_uring: what this turn queued has not been offered to the kernel yet;
                // offer it before judging the subscriber by what is left.
                self.io.send_now(key, out);
            }
            recipient.queued = out.len();
            while next < messages.len() {
                if recipient.queued >= recipient.limit && !scratch.pieces.is_empty() {
                    break;
                }
                let step = recipient.plan(
                    &messages[next],
                    topic,
                    deflate,
                    &mut scratch.own,
                    &mut scratch.pieces,
                    counts,
                );
                next += 1;
                if step == Step::Closed {
                    closed = true;
                    break;
                }
            }
            if scratch.pieces.is_empty() {
                continue;
            }
            let mut parts = [Part::Copy(&[]); MAX_BATCH + 1];
            let total: usize = scratch
                .pieces
                .iter()
                .map(|p| match p {
                    Piece::Shared(b) => b.len(),
                    Piece::Own(r) => r.len(),
                })
                .sum();
            let n = if scratch.pieces.len() > 1 && total <= FLATTEN_BELOW {
                // Several small frames: one copy into a flat buffer and one `send` cost less
                // in the kernel than a `writev` of many small pieces (perf: ~15 % of the
                // fan-out went to iovec handling).
                scratch.flat.clear();
                for piece in &scratch.pieces {
                    match piece {
                        Piece::Shared(b) => scratch.flat.extend_from_slice(b),
                        Piece::Own(r) => scratch.flat.extend_from_slice(&scratch.own[r.clone()]),
                    }
                }
                parts[0] = Part::Copy(&scratch.flat);
                1
            } else {
                for (part, piece) in parts.iter_mut().zip(&scratch.pieces) {
                    *part = match piece {
                        Piece::Shared(b) => Part::Shared(b),
                        Piece::Own(r) => Part::Copy(&scratch.own[r.clone()]),
                    };
                }
                scratch.pieces.len().min(MAX_BATCH + 1)
            };
            if let Some(tls) = slot.tls.as_deref_mut() {
                // TLS: the frames are sealed for this recipient (its own keys), the records
                // written or sent like a plain queue.
                out.queue_parts(&parts[..n]);
                let r = super::tls::flush(
                    tls,
                    out,
                    &mut slot.sock,
                    &mut self.io,
                    key,
                    &mut self.tls_scratch,
                );
                let written = tls.take_sealed();
                self.local.bytes_out += written as u64;
                if let Some(sent) = sent.as_deref_mut() {
                    sent.wrote(written);
                }
                if r.is_err() {
                    scratch.failed.push(key);
                    return;
                }
                if !out.is_empty() || (!tls.wire.is_empty() && !self.io.completes()) {
                    slot.io.backpressured = true;
                }
                continue;
            }
            if self.io.completes() {
                // io_uring: queued (shared frames by reference) and sent at the end of the turn.
                out.queue_parts(&parts[..n]);
                self.io.want_send(key);
                continue;
            }
            let was_empty = out.is_empty();
            match out.write_parts(&mut slot.sock, &parts[..n]) {
                Ok(written) => {
                    self.local.bytes_out += written as u64;
                    if let Some(sent) = sent.as_deref_mut() {
                        sent.wrote(written);
                    }
                    if !out.is_empty() && was_empty {
                        slot.io.backpressured = true;
                    }
                }
                Err(_) => {
                    scratch.failed.push(key);
                    return;
                }
            }
        }
        if closed {
            slot.io.since = self.now;
            scratch.closed.push(key);
        }
    }

    /// After a batch: end the recipients whose write failed, start the close timers of those
    /// closed for being slow.
    fn finish(&mut self, scratch: &mut FanScratch) {
        for key in std::mem::take(&mut scratch.failed) {
            self.end(key, abnormal("write failed"), Ending::Drop);
        }
        for key in std::mem::take(&mut scratch.closed) {
            self.schedule(key);
        }
    }

    /// The connection's queue drained: send what was held back for it, newest per key.
    pub(in crate::engine::worker) fn flush_held(&mut self, key: usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let Some(subs) = slot.io.subs_mut() else {
            return;
        };
        if !subs.holding() {
            return;
        }
        let held = subs.take_held();
        let mut scratch = std::mem::take(&mut self.fan);
        let mut counts = Counts::default();
        let mut start = 0;
        while start < held.len() {
            // Runs of one topic go in one vectored write.
            let topic = held[start].topic;
            let mut end = start + 1;
            while end < held.len() && end - start < MAX_BATCH && held[end].topic == topic {
                end += 1;
            }
            let messages: Vec<Arc<Published>> =
                held[start..end].iter().map(|h| h.message.clone()).collect();
            // The queue has just drained: nothing is slow now. What does not fit is held
            // again (the topic conflates) as the limit is passed.
            let policy = self
                .ctx
                .topics
                .get(topic)
                .map_or_else(TopicPolicy::default, |t| t.policy);
            let mut one = Counts::default();
            self.deliver(key, &messages, Some(topic), &policy, &mut scratch, &mut one);
            if let Some(t) = self.ctx.topics.get(topic) {
                add_topic_counts(&t.shared, &one);
            }
            counts.add(&one);
            start = end;
        }
        self.ctx.published.add(&counts);
        self.ctx.messages_out += counts.delivered;
        self.finish(&mut scratch);
        self.fan = scratch;
    }

    /// The connection ended: it leaves every topic.
    pub(in crate::engine::worker) fn leave_topics(&mut self, key: usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        if let Some(subs) = slot.io.take_subs() {
            self.ctx.topics.unsubscribe_all(key as u32, subs);
        }
    }
}

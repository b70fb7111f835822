//! Flow control: the read pause that bounds what a peer that does not read can make us hold,
//! and the `on_sent` reports of tracked sends as their bytes reach the kernel.
//!
//! A connection is paused (its input left unread, in the kernel, where the peer's TCP window
//! stops it) when, after its callbacks, its queue holds more than `max_buffered` bytes or a
//! send to it was just dropped with bytes still queued: its requests would only queue more
//! answers, or be answered with drops. Reading resumes once the queue drains to half the limit
//! (or when the connection starts closing: the peer's close frame must be read), at once,
//! since the readiness edge came while paused. While paused, writes the peer takes count as
//! signs of life for the idle timeout; a paused peer that never reads is dropped by it.

use super::{Stage, Worker};
use crate::engine::conn::Conn;
use crate::engine::handler::Handler;
use crate::protocol::CloseState;

impl<H: Handler> Worker<H> {
    /// After callbacks: pauses reading from `key` if its queue is over the limit (a dropped
    /// send paused it already); resumes it if it is closing, or if the write after the
    /// callbacks emptied the queue.
    pub(super) fn pause_if_full(&mut self, key: usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let open = !slot.io.terminate
            && matches!(&slot.stage, Stage::Open { proto, .. } if proto.close_state() == CloseState::Open);
        let queued = slot.io.out.len();
        if slot.io.paused {
            if !open || queued == 0 {
                self.resume(key);
            } else {
                // Paused by a dropped send during the callbacks: stop receiving (io_uring).
                self.io.pause(key);
            }
        } else if open && queued > self.settings.max_buffered {
            slot.io.paused = true;
            self.ctx.paused += 1;
            self.io.pause(key);
        }
    }

    /// After a write that took `n` bytes: resumes reading once the queue is down to half the
    /// limit; while paused, the peer's reading keeps it alive.
    pub(super) fn resume_if_drained(&mut self, key: usize, n: usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        if !slot.io.paused {
            return;
        }
        if n > 0 {
            slot.io.last_read = self.now;
        }
        if slot.io.out.len() <= self.settings.max_buffered / 2 {
            self.resume(key);
        }
    }

    /// Reads again: at once, since what arrived while paused brought its edge then.
    pub(super) fn resume(&mut self, key: usize) {
        if let Some(slot) = self.conns.get_mut(key) {
            if std::mem::take(&mut slot.io.paused) {
                self.ctx.paused -= 1;
                self.io.resume(key);
                self.pending.push(key);
            }
        }
    }

    /// Calls `on_sent` for the tracked messages of `key` now fully written. Returns whether
    /// any was reported (the handler may have sent more).
    pub(super) fn report_sent(&mut self, key: usize) -> bool {
        let Some(slot) = self.conns.get_mut(key) else {
            return false;
        };
        let Some(sent) = slot.io.sent_mut() else {
            return false;
        };
        if !sent.has_due() {
            return false;
        }
        let due = sent.take_due();
        let Stage::Open { proto, user } = &mut slot.stage else {
            return false;
        };
        let (_, tx) = proto.split();
        let mut conn = Conn {
            tx,
            io: &mut slot.io,
            user,
            ctx: &mut self.ctx,
        };
        for token in due {
            self.handler.on_sent(&mut conn, token);
        }
        true
    }
}

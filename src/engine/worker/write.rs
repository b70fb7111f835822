//! Writing: the cork buffer after callbacks, the queue when the socket is writable again, and
//! the step after callbacks that moves a closing connection on.

use std::io::{self, Write};

use super::lifecycle::abnormal;
use super::{Ending, Stage, Worker, CORK_KEEP, CORK_MOVE};
use crate::broadcast::local::Subscriptions;
use crate::engine::conn::Conn;
use crate::engine::handler::Handler;
use crate::engine::outbound::Part;
use crate::handler::CloseInfo;
use crate::protocol::{CloseCode, CloseState, Role};

impl<H: Handler> Worker<H> {
    /// Writes what the callbacks sent and moves the connection on if it is closing.
    pub(super) fn after_callbacks(&mut self, key: usize) {
        loop {
            if self.uncork(key).is_err() {
                self.end(key, abnormal("write failed"), Ending::Drop);
                return;
            }
            // `on_sent` for what that write completed; what it sends is written in turn.
            if !self.report_sent(key) {
                break;
            }
        }
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        match &mut slot.stage {
            Stage::Handshake(_) | Stage::Connecting { .. } => {}
            Stage::Open { proto, .. } => {
                if slot.io.terminate {
                    return self.end(key, abnormal("terminated"), Ending::Drop);
                }
                match proto.close_state() {
                    CloseState::Open => {}
                    CloseState::CloseSent => {}
                    CloseState::Closed => {
                        let (code, reason) = slot
                            .io
                            .take_peer_close()
                            .unwrap_or((CloseCode::NO_STATUS, String::new()));
                        let info = CloseInfo {
                            code,
                            reason,
                            clean: true,
                            error: None,
                        };
                        // The server closes the TCP connection first (RFC 6455 §7.1.1).
                        let ending = match slot.io.role {
                            Role::Server => Ending::Flush,
                            Role::Client => Ending::AwaitEof,
                        };
                        return self.end(key, info, ending);
                    }
                    CloseState::Failed => {
                        let error = proto.error().cloned();
                        let info = CloseInfo {
                            code: error
                                .as_ref()
                                .map_or(CloseCode::PROTOCOL, |e| e.close_code()),
                            reason: error.as_ref().map(ToString::to_string).unwrap_or_default(),
                            clean: false,
                            error,
                        };
                        return self.end(key, info, Ending::Linger);
                    }
                }
            }
            Stage::Draining { .. } => return self.drain_step(key),
        }
        self.pause_if_full(key);
        self.schedule(key);
    }

    /// Writes the cork buffer for `key`: straight to the socket when nothing waits, else behind
    /// the queue; what the socket does not take is queued.
    pub(super) fn uncork(&mut self, key: usize) -> io::Result<()> {
        if self.conns.get(key).is_some_and(|s| s.tls.is_some()) {
            return self.uncork_tls(key);
        }
        if self.io.completes() {
            self.uncork_later(key);
            return Ok(());
        }
        let queued = std::mem::take(&mut self.ctx.queued);
        if !self.ctx.chain.is_empty() {
            return self.uncork_chain(key);
        }
        let cork = &mut self.ctx.cork;
        if cork.is_empty() && !queued {
            return Ok(());
        }
        let Some(slot) = self.conns.get_mut(key) else {
            cork.clear();
            return Ok(());
        };
        let result = if slot.io.out.is_empty() {
            loop {
                match slot.sock.write(cork) {
                    Ok(n) => {
                        self.local.bytes_out += n as u64;
                        slot.io.wrote(n);
                        if n < cork.len() {
                            slot.io.out.push_copy(&cork[n..]);
                            slot.io.backpressured = true;
                        }
                        break Ok(());
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        slot.io.out.push_copy(cork);
                        slot.io.backpressured = true;
                        break Ok(());
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            }
        } else {
            slot.io.out.push_copy(cork);
            slot.io.backpressured = true;
            slot.io.out.write_to(&mut slot.sock).map(|n| {
                self.local.bytes_out += n as u64;
                slot.io.wrote(n);
            })
        };
        cork.clear();
        if cork.capacity() > CORK_KEEP {
            cork.shrink_to(CORK_KEEP / 16);
        }
        result
    }

    /// io_uring: the cork (and the shared frames chained behind it) goes into the queue, and
    /// the connection gets a send at the end of the turn.
    fn uncork_later(&mut self, key: usize) {
        self.ctx.queued = false;
        if self.queue_cork(key) && self.conns.get(key).is_some_and(|s| !s.io.out.is_empty()) {
            self.io.want_send(key);
        }
    }

    /// The cork and the shared frames chained behind it go into `key`'s queue, in order (a
    /// large cork is moved, not copied). Returns whether the connection is there.
    pub(super) fn queue_cork(&mut self, key: usize) -> bool {
        self.ctx.chain_len = 0;
        let cork = &mut self.ctx.cork;
        let Some(slot) = self.conns.get_mut(key) else {
            cork.clear();
            self.ctx.chain.clear();
            return false;
        };
        let out = &mut slot.io.out;
        if self.ctx.chain.is_empty() {
            if cork.len() >= CORK_MOVE {
                // The next cork starts with the room this one needed, not from nothing.
                let room = cork.capacity().min(CORK_KEEP);
                out.push_owned(std::mem::replace(cork, Vec::with_capacity(room)));
            } else {
                out.push_copy(cork);
                cork.clear();
            }
        } else {
            let mut at = 0;
            for (offset, frame) in self.ctx.chain.drain(..) {
                if offset > at {
                    out.push_copy(&cork[at..offset]);
                }
                out.push_shared(frame);
                at = offset;
            }
            out.push_copy(&cork[at..]);
            cork.clear();
        }
        true
    }

    /// The socket is writable (epoll): writes the queue (or, for a client connection still
    /// connecting, checks that the connect is done).
    pub(super) fn writable(&mut self, key: usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        if matches!(slot.stage, Stage::Connecting { started: false, .. }) {
            return self.on_connect_writable(key);
        }
        if slot.tls.is_some() {
            return self.writable_tls(key);
        }
        if slot.io.out.is_empty() || self.io.completes() {
            return;
        }
        let n = match slot.io.out.write_to(&mut slot.sock) {
            Ok(n) => n,
            Err(_) => return self.end(key, abnormal("write failed"), Ending::Drop),
        };
        self.after_write(key, n);
    }

    /// io_uring: a send of `submitted` bytes completed with `result` (bytes written or
    /// `-errno`); `accounted`: the queue knows already. A short send is backpressure, as a
    /// short `write` is under epoll.
    pub(super) fn sent(&mut self, key: usize, result: i32, submitted: usize, accounted: bool) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let n = result.max(0) as usize;
        if !accounted {
            match &mut slot.tls {
                Some(tls) => tls.wire.complete(n),
                None => slot.io.out.complete(n),
            }
        }
        if result == -libc::EAGAIN {
            // A non-blocking socket with a full buffer (sockets are blocking under io_uring,
            // so only one handed over that way): nothing went; try again.
            slot.io.backpressured = true;
            self.io.want_send(key);
            return;
        }
        if result < 0 {
            return self.end(key, abnormal("write failed"), Ending::Drop);
        }
        if n < submitted {
            slot.io.backpressured = true;
        }
        if slot.tls.is_some() {
            return self.sent_tls(key);
        }
        self.after_write(key, n);
        if self.conns.get(key).is_some_and(|s| !s.io.out.is_empty()) {
            self.io.want_send(key);
        }
    }

    /// Queued bytes may go (a frame came back from the deflate pool): epoll writes now,
    /// io_uring sends at the end of the turn.
    pub(super) fn flush_queue(&mut self, key: usize) {
        if self.io.completes() {
            self.io.want_send(key);
        } else {
            self.writable(key);
        }
    }

    /// After `n` queued bytes went: resume reading, report tracked sends, send held-back
    /// messages, and call `on_drain` (or move a closing connection on) once the queue is empty.
    pub(super) fn after_write(&mut self, key: usize, n: usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        self.local.bytes_out += n as u64;
        slot.io.wrote(n);
        self.resume_if_drained(key, n);
        let reported = self.report_sent(key);
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        if !slot.all_written() {
            if reported {
                self.after_callbacks(key);
            }
            return;
        }
        if slot.io.subs().is_some_and(Subscriptions::holding) {
            // Messages held back for a slow subscriber go now; drain comes when they are out.
            self.flush_held(key);
            let Some(slot) = self.conns.get_mut(key) else {
                return;
            };
            if !slot.io.out.is_empty() {
                return;
            }
        }
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        match &mut slot.stage {
            Stage::Open { proto, user } if slot.io.backpressured => {
                slot.io.backpressured = false;
                let (_, tx) = proto.split();
                let mut conn = Conn {
                    tx,
                    io: &mut slot.io,
                    user,
                    ctx: &mut self.ctx,
                };
                self.handler.on_drain(&mut conn);
                self.after_callbacks(key);
            }
            Stage::Draining { .. } => self.drain_step(key),
            _ if reported => self.after_callbacks(key),
            _ => {}
        }
    }

    /// [`Worker::uncork`] when shared frames were corked: the cork's pieces and the frames in
    /// their order, in one vectored write, the rest queued without copying the frames.
    fn uncork_chain(&mut self, key: usize) -> io::Result<()> {
        let chain = std::mem::take(&mut self.ctx.chain);
        self.ctx.chain_len = 0;
        let cork = &mut self.ctx.cork;
        let result = match self.conns.get_mut(key) {
            None => Ok(()),
            Some(slot) => {
                // On the stack for the usual few chained frames, on the heap past that.
                const ON_STACK: usize = 31;
                let mut stack = [Part::Copy(&[]); ON_STACK];
                let mut heap = Vec::new();
                let mut count = 0;
                let mut add = |part| {
                    if count < ON_STACK {
                        stack[count] = part;
                    } else {
                        if heap.is_empty() {
                            heap.extend_from_slice(&stack);
                        }
                        heap.push(part);
                    }
                    count += 1;
                };
                let mut at = 0;
                for (offset, frame) in &chain {
                    if *offset > at {
                        add(Part::Copy(&cork[at..*offset]));
                    }
                    add(Part::Shared(frame));
                    at = *offset;
                }
                if cork.len() > at {
                    add(Part::Copy(&cork[at..]));
                }
                let parts = if count <= ON_STACK {
                    &stack[..count]
                } else {
                    &heap[..]
                };
                let was_empty = slot.io.out.is_empty();
                let r = slot
                    .io
                    .out
                    .write_parts(&mut slot.sock, parts)
                    .and_then(|n| {
                        if was_empty {
                            Ok(n)
                        } else {
                            slot.io.out.write_to(&mut slot.sock).map(|m| n + m)
                        }
                    });
                if !slot.io.out.is_empty() {
                    slot.io.backpressured = true;
                }
                r.map(|n| {
                    self.local.bytes_out += n as u64;
                    slot.io.wrote(n);
                })
            }
        };
        cork.clear();
        let mut chain = chain;
        chain.clear();
        self.ctx.chain = chain;
        result
    }
}

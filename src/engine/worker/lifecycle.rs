//! How a connection ends: end of input, the closing handshake and its drain, removal from the
//! slab, and the worker's graceful shutdown.

use std::net::Shutdown;
use std::time::{Duration, Instant};

use super::{Ending, Stage, Worker};
use crate::client::ClientError;
use crate::engine::conn::Conn;
use crate::engine::handler::Handler;
use crate::handler::{CloseInfo, ConnId};
use crate::protocol::{CloseCode, CloseState};

impl<H: Handler> Worker<H> {
    pub(super) fn on_eof(&mut self, key: usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let written = slot.all_written();
        match &mut slot.stage {
            Stage::Open { proto, .. } if proto.close_state() == CloseState::Closed => {
                // The handshake completed in the same read; after_callbacks already ended it.
                self.remove(key);
            }
            Stage::Open { .. } => self.end(key, abnormal("connection dropped"), Ending::Drop),
            Stage::Draining { ending, .. } if !written => {
                // A half-close: the peer is done sending, maybe not reading. Write what is
                // queued (a close reply, a refusal), then drop; there is nothing to linger for.
                *ending = Ending::Flush;
            }
            Stage::Connecting { .. } => self.fail_connect(key, ClientError::Closed),
            Stage::Handshake(_) | Stage::Draining { .. } => self.remove(key),
        }
    }

    /// The connection is over: tell the handler (once), then drop or drain the socket.
    pub(super) fn end(&mut self, key: usize, info: CloseInfo, ending: Ending) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        slot.io.terminate = true;
        if let Stage::Open { proto, user } = &mut slot.stage {
            let (_, tx) = proto.split();
            let mut conn = Conn {
                tx,
                io: &mut slot.io,
                user,
                ctx: &mut self.ctx,
            };
            // Tracked messages already written are reported before the close; the rest are
            // `unsent_tokens` in `on_close`, and nothing is reported after it.
            let due = conn.io.sent_mut().map(|s| s.take_due());
            for token in due.into_iter().flatten() {
                self.handler.on_sent(&mut conn, token);
            }
            self.handler.on_close(&mut conn, &info);
            self.ctx.cork.clear();
            self.ctx.chain.clear();
            self.ctx.chain_len = 0;
        }
        if let Some(subs) = slot.io.take_subs() {
            self.ctx.topics.unsubscribe_all(key as u32, subs);
        }
        slot.io.forget_sent();
        if std::mem::take(&mut slot.io.paused) {
            self.ctx.paused -= 1;
            self.io.resume(key);
            self.pending.push(key); // a draining connection reads until the peer's FIN
        }
        slot.stage = Stage::Draining {
            ending,
            shut: false,
        };
        slot.io.since = self.now;
        slot.io.residue = Vec::new();
        self.drain_step(key);
    }

    pub(super) fn drain_step(&mut self, key: usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let Stage::Draining { ending, .. } = slot.stage else {
            return;
        };
        if ending != Ending::Drop && slot.io.out.is_empty() {
            if let Some(tls) = slot.tls.as_deref_mut().filter(|t| !t.notified()) {
                // Everything is sealed: the TLS session ends before the TCP connection does.
                tls.notify_close(&mut self.tls_scratch);
                if !self.tls_flush(key) {
                    return;
                }
                return self.drain_step(key);
            }
        }
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let written = slot.all_written();
        let Stage::Draining { ending, shut } = &mut slot.stage else {
            return;
        };
        match ending {
            Ending::Drop => return self.remove(key),
            _ if !written => {}
            Ending::Flush => return self.remove(key),
            Ending::AwaitEof => {}
            Ending::Linger => {
                if !*shut {
                    *shut = true;
                    let _ = slot.sock.shutdown(Shutdown::Write);
                }
            }
        }
        self.schedule(key);
    }

    pub(super) fn remove(&mut self, key: usize) {
        self.leave_topics(key);
        if self.conns.contains(key) {
            let mut slot = self.conns.remove(key);
            self.local.closed += 1;
            if slot.io.reset {
                // The descriptor closes when `slot` drops: with a zero linger, as RST.
                let _ = socket2::SockRef::from(&slot.sock).set_linger(Some(Duration::ZERO));
            }
            // io_uring: the kernel may still read the records a send in flight points at.
            let out = match slot.tls.as_deref_mut() {
                Some(tls) => &mut tls.wire,
                None => &mut slot.io.out,
            };
            self.io.remove(key, &slot.sock, out);
        }
    }

    pub(super) fn begin_shutdown(&mut self, deadline: Instant) {
        if self.acceptor.take().is_some() {
            self.io.stop_accepting();
        }
        self.shutdown = Some(deadline);
        let keys: Vec<(usize, u32)> = self.conns.iter().map(|(k, s)| (k, s.gen)).collect();
        for (key, gen) in keys {
            let Some(slot) = self.conns.get(key) else {
                continue;
            };
            match slot.stage {
                Stage::Handshake(_) => self.remove(key),
                Stage::Connecting { .. } => self.fail_connect(key, ClientError::Closed),
                Stage::Open { .. } => {
                    let id = ConnId {
                        worker: self.index,
                        key: key as u32,
                        gen,
                    };
                    self.with_conn(id, |conn| {
                        let _ = conn.close(CloseCode::GOING_AWAY, "server shutting down");
                    });
                }
                Stage::Draining { .. } => {}
            }
        }
    }
}

pub(super) fn abnormal(reason: &str) -> CloseInfo {
    CloseInfo {
        code: CloseCode::ABNORMAL,
        reason: reason.to_owned(),
        clean: false,
        error: None,
    }
}

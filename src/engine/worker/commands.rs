//! Commands from other threads, taken from the inbox.

use super::{Stage, Worker};
use crate::client::ClientError;
use crate::engine::conn::Conn;
use crate::engine::handler::Handler;
use crate::engine::inbox::Command;
use crate::error::SendError;
use crate::handler::{ConnId, DropReason, SendStatus};

/// Commands taken from the inbox per loop turn.
const MAX_COMMANDS: usize = 4096;

impl<H: Handler> Worker<H> {
    /// Runs up to [`MAX_COMMANDS`] commands; if more wait, the loop comes back for them next
    /// turn without sleeping, after serving its sockets and timers.
    pub(super) fn drain_inbox(&mut self) {
        let mut commands = std::mem::take(&mut self.commands);
        self.inbox_more = self.inbox.drain(&mut commands, MAX_COMMANDS);
        for cmd in commands.drain(..) {
            match cmd {
                Command::Send {
                    id,
                    kind,
                    payload,
                    token,
                } => {
                    let outcome = self.with_conn(id, |conn| match token {
                        None => conn.send_shared(kind, payload),
                        Some(_) => conn.send_shared_tracked(kind, payload, token),
                    });
                    if let Some(token) = token {
                        let reason = match outcome {
                            Some(Ok(SendStatus::Dropped)) => Some(DropReason::Backpressure),
                            Some(Ok(_)) => None,
                            None | Some(Err(SendError::Closing)) => Some(DropReason::Closed),
                            Some(Err(e)) => Some(DropReason::Refused(e)),
                        };
                        if let Some(reason) = reason {
                            self.handler.on_send_dropped(id, token, reason);
                        }
                    }
                }
                Command::Close { id, code, reason } => {
                    self.with_conn(id, |conn| {
                        let _ = conn.close(code, &reason);
                    });
                }
                Command::Publish(message) => self.ctx.outgoing.push(message),
                Command::Terminate { id } => {
                    self.with_conn(id, |conn| conn.terminate());
                }
                Command::Adopt(adoption) => self.adopt(*adoption),
                Command::Connect { connector, tag } => {
                    if self.shutdown.is_some() {
                        self.handler
                            .on_connect_error(connector.url(), tag, &ClientError::Closed);
                    } else {
                        self.open_client(connector, tag);
                    }
                }
                Command::Resolved(answer) => self.resolved(*answer),
                Command::Deflated { id, ticket, frame } => self.deflated(id, ticket, frame),
                Command::Shutdown { deadline } => {
                    self.cancel_resolutions();
                    self.begin_shutdown(deadline);
                }
            }
        }
        self.commands = commands;
    }

    /// Puts a frame compressed on the deflate pool in its place and writes what it held back.
    /// The frame is discarded if its connection is gone (closed, dropped, or its slot reused);
    /// a closing connection still gets it, before its close frame.
    fn deflated(&mut self, id: ConnId, ticket: u64, frame: Vec<u8>) {
        let key = id.key as usize;
        let filled = match self.conns.get_mut(key) {
            Some(slot) if slot.gen == id.gen => match slot.io.out.fill(ticket, frame) {
                Some((before, change)) => {
                    if let Some(sent) = slot.io.sent_mut() {
                        sent.shift_after(before, change);
                    }
                    true
                }
                None => false,
            },
            _ => false,
        };
        if !filled {
            if let Some(pool) = &self.ctx.pool {
                pool.pool.count_discarded();
            }
            return;
        }
        self.flush_queue(key);
    }

    /// Runs `f` on the open connection `id`, if it still exists, then writes what it sent.
    /// `None` when there is no such open connection.
    pub(super) fn with_conn<R>(
        &mut self,
        id: ConnId,
        f: impl FnOnce(&mut Conn<'_, H::State>) -> R,
    ) -> Option<R> {
        let key = id.key as usize;
        let slot = self.conns.get_mut(key)?;
        if slot.gen != id.gen {
            return None;
        }
        let Stage::Open { proto, user } = &mut slot.stage else {
            return None;
        };
        let (_, tx) = proto.split();
        let mut conn = Conn {
            tx,
            io: &mut slot.io,
            user,
            ctx: &mut self.ctx,
        };
        let r = f(&mut conn);
        self.after_callbacks(key);
        Some(r)
    }
}

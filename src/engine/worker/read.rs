//! Reading: from the socket into the worker's buffer, through the protocol core, into the
//! handler (the hot path), and opening a connection once its handshake is done.

use std::io::{self, Read};

use super::{Slot, Stage, Worker, MAX_READS_PER_EVENT, READ_BUF, RESIDUE_ROOM};
use crate::engine::conn::Conn;
use crate::engine::handler::Handler;
use crate::engine::sys::Driver;
use crate::handler::Message;
use crate::protocol::{CloseState, Connection, Event};

impl<H: Handler> Worker<H> {
    /// Reads what the socket holds. `read_closed`: the peer's FIN is already in (it brings no
    /// new edge), so a short read does not mean drained; read on until EOF or `WouldBlock`.
    pub(super) fn readable(&mut self, key: usize, read_closed: bool) {
        if self.io.completes() {
            // io_uring: nothing to read here; bytes kept while paused are due.
            return self.feed_residue(key);
        }
        if self.conns.get(key).is_some_and(|s| s.tls.is_some()) {
            return self.readable_tls(key, read_closed);
        }
        for _ in 0..MAX_READS_PER_EVENT {
            let Some(slot) = self.conns.get_mut(key) else {
                return;
            };
            if slot.io.paused {
                return; // see flow.rs: resumed (and read) once the queue drains
            }
            if slot.tls.is_some() {
                // A PROXY protocol header was read in plaintext; TLS begins behind it.
                return self.readable_tls(key, read_closed);
            }
            let r = slot.io.residue.len();
            self.rbuf[..r].copy_from_slice(&slot.io.residue);
            let limit = read_limit(&slot.stage, self.settings.limits.max_head_size, r);
            match slot.sock.read(&mut self.rbuf[r..r + limit]) {
                Ok(0) => {
                    self.on_eof(key);
                    return;
                }
                Ok(n) => {
                    if r > 0 {
                        slot.io.residue = Vec::new();
                    }
                    self.local.bytes_in += n as u64;
                    slot.io.last_read = self.now;
                    slot.io.ping_sent = false;
                    self.on_data(key, r + n);
                    if n < limit && !read_closed {
                        return; // drained: the next bytes bring a new edge
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.on_eof(key);
                    return;
                }
            }
        }
        self.pending.push(key);
    }

    /// io_uring: `len` bytes for `key` arrived in receive buffer `buf`. They are copied behind
    /// the connection's residue in the read buffer and the receive buffer goes back to the
    /// kernel at once; bytes that come while the connection is paused (before the cancel of
    /// its receive lands) are kept as residue, fed in once it resumes.
    pub(super) fn received(
        &mut self,
        key: usize,
        gen: u32,
        (buf, offset, last): (u16, u32, bool),
        len: usize,
    ) {
        let Driver::Uring(u) = &mut self.io else {
            return;
        };
        let data = u.buffer(buf, offset, len);
        let Some(slot) = self
            .conns
            .get_mut(key)
            .filter(|s| crate::engine::sys::same_gen(s.gen, gen))
        else {
            u.release(buf, last);
            return;
        };
        self.local.bytes_in += len as u64;
        slot.io.last_read = self.now;
        slot.io.ping_sent = false;
        if slot.tls.is_some() {
            return self.received_tls(key, (buf, offset, last), len);
        }
        let r = slot.io.residue.len();
        if slot.io.paused || r + len > self.rbuf.len() {
            slot.io.residue.extend_from_slice(data);
            u.release(buf, last);
            if !slot.io.paused {
                self.pending.push(key);
            }
            return;
        }
        self.rbuf[..r].copy_from_slice(&slot.io.residue);
        self.rbuf[r..r + len].copy_from_slice(data);
        u.release(buf, last);
        if r > 0 {
            slot.io.residue = Vec::new();
        }
        self.on_data(key, r + len);
    }

    /// io_uring: `key`'s input ended. If bytes before the end wait (the connection is paused),
    /// the end waits for them.
    pub(super) fn closed(&mut self, key: usize) {
        let Some(slot) = self.conns.get(key) else {
            return;
        };
        let tls_held = slot.tls.as_ref().is_some_and(|t| t.has_pending());
        if slot.io.paused || slot.io.residue.len() > RESIDUE_ROOM || tls_held {
            self.eof_after_residue.push((key, slot.gen));
            return;
        }
        self.on_eof(key);
    }

    /// io_uring: feeds bytes kept in `key`'s residue (while it was paused) through the read
    /// buffer, a buffer's worth at a time, until they are used (what is left is part of a
    /// frame, waiting for more) or it is paused again; then an end of input that waited for
    /// them is due.
    fn feed_residue(&mut self, key: usize) {
        if self.conns.get(key).is_some_and(|s| s.tls.is_some()) {
            // The residue goes in front of the plaintext rustls holds (see tls.rs).
            if self.drain_plain(key) {
                self.eof_if_waiting(key);
            }
            return;
        }
        loop {
            let Some(slot) = self.conns.get_mut(key) else {
                return;
            };
            if slot.io.paused {
                return;
            }
            let before = slot.io.residue.len();
            if before > 0 {
                let mut kept = std::mem::take(&mut slot.io.residue);
                let take = kept.len().min(self.rbuf.len());
                self.rbuf[..take].copy_from_slice(&kept[..take]);
                kept.drain(..take);
                self.on_data(key, take);
                let Some(slot) = self.conns.get_mut(key) else {
                    return;
                };
                if !kept.is_empty() {
                    // What the protocol left unconsumed comes before what was kept.
                    let mut residue = std::mem::take(&mut slot.io.residue);
                    residue.extend_from_slice(&kept);
                    slot.io.residue = residue;
                    continue;
                }
                if slot.io.residue.len() < before && !slot.io.residue.is_empty() {
                    continue;
                }
            }
            return self.eof_if_waiting(key);
        }
    }

    /// io_uring: an end of input that waited for bytes kept before it is due now, unless the
    /// connection is paused again.
    fn eof_if_waiting(&mut self, key: usize) {
        let Some(slot) = self.conns.get(key) else {
            return;
        };
        if slot.io.paused {
            return;
        }
        let gen = slot.gen;
        if let Some(i) = self
            .eof_after_residue
            .iter()
            .position(|&(k, g)| k == key && g == gen)
        {
            self.eof_after_residue.swap_remove(i);
            self.on_eof(key);
        }
    }

    pub(super) fn on_data(&mut self, key: usize, len: usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        match &mut slot.stage {
            Stage::Handshake(buf) => {
                buf.extend_from_slice(&self.rbuf[..len]);
                self.on_handshake(key);
            }
            Stage::Connecting { buf, .. } => {
                buf.extend_from_slice(&self.rbuf[..len]);
                self.on_connecting(key);
            }
            Stage::Open { .. } => self.on_frames(key, len),
            Stage::Draining { .. } => {}
        }
    }

    /// A handshake succeeded (either role): the slot becomes an open connection, the handler
    /// hears `on_open`, and the `leftover` frames that followed the handshake (already copied
    /// to the front of `rbuf`) are processed.
    pub(super) fn open(
        &mut self,
        key: usize,
        proto: Connection,
        user: H::State,
        protocol: Option<Box<str>>,
        leftover: usize,
    ) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        slot.io.protocol = protocol;
        slot.io.last_read = self.now;
        slot.stage = Stage::Open { proto, user };
        if let Stage::Open { proto, user } = &mut slot.stage {
            let (_, tx) = proto.split();
            let mut conn = Conn {
                tx,
                io: &mut slot.io,
                user,
                ctx: &mut self.ctx,
            };
            self.handler.on_open(&mut conn);
        }
        if leftover > 0 {
            self.on_frames(key, leftover);
        } else {
            self.after_callbacks(key);
        }
    }

    /// The hot path: frames from `rbuf[..len]` through the protocol core into the handler.
    pub(super) fn on_frames(&mut self, key: usize, len: usize) {
        let Worker {
            conns,
            handler,
            ctx,
            rbuf,
            local,
            ..
        } = self;
        let Some(slot) = conns.get_mut(key) else {
            return;
        };
        let Slot { io, stage, .. } = slot;
        let Stage::Open { proto, user } = stage else {
            return;
        };
        let data = &mut rbuf[..len];
        let mut pos = 0;
        loop {
            let (rx, tx) = proto.split();
            match rx.handle_read(tx, &mut data[pos..]) {
                Ok(read) => {
                    pos += read.consumed;
                    // Every ping is answered: a peer that pings without reading is paused
                    // once its pongs pass the limit (flow.rs), so they stay bounded.
                    let _ = tx.poll_transmit(&mut ctx.cork);
                    let Some(event) = read.event else { break };
                    let mut conn = Conn {
                        tx,
                        io: &mut *io,
                        user: &mut *user,
                        ctx: &mut *ctx,
                    };
                    match event {
                        Event::Text(text) => {
                            local.messages_in += 1;
                            handler.on_message(&mut conn, Message::Text(text));
                        }
                        Event::Binary(bytes) => {
                            local.messages_in += 1;
                            handler.on_message(&mut conn, Message::Binary(bytes));
                        }
                        Event::Ping(payload) => handler.on_ping(&mut conn, payload),
                        Event::Pong(payload) => handler.on_pong(&mut conn, payload),
                        Event::Close { code, reason } => {
                            conn.io.set_peer_close(code, reason);
                        }
                    }
                    if io.terminate {
                        break;
                    }
                }
                Err(_) => {
                    let _ = tx.poll_transmit(&mut ctx.cork);
                    break;
                }
            }
        }
        if pos < len && proto.close_state() != CloseState::Failed && !io.terminate {
            io.residue.extend_from_slice(&data[pos..]);
        }
        self.after_callbacks(key);
    }
}

/// How many bytes to read behind `residue` bytes of residue: during the handshake no more than
/// the head may hold, so that what follows the head always fits the read buffer; after it, the
/// read buffer's room.
pub(super) fn read_limit<S>(stage: &Stage<S>, max_head_size: usize, residue: usize) -> usize {
    match stage {
        Stage::Handshake(buf) | Stage::Connecting { buf, .. } => (max_head_size + 1)
            .saturating_sub(buf.len())
            .clamp(1, READ_BUF),
        _ => RESIDUE_ROOM + READ_BUF - residue,
    }
}

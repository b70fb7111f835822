//! The worker's side of TLS connections (the session itself is `engine/tls.rs`): ciphertext in
//! from either backend, plaintext out into the same path plain connections take, and the
//! sealed records written as a plain connection's queue is (epoll `writev`, io_uring send).

use std::io::{self, Read};
use std::net::TcpStream;

use super::lifecycle::abnormal;
use super::read::read_limit;
use super::{Ending, Stage, Worker, MAX_READS_PER_EVENT};
use crate::client::ClientError;
use crate::engine::handler::Handler;
use crate::engine::outbound::Outbound;
use crate::engine::sys::Driver;
use crate::engine::tls::{Plain, Tls, TlsFailure};

/// Ciphertext read from a socket at once (epoll).
const TLS_READ: usize = 64 << 10;

/// Seals what `out` holds and writes the records: epoll writes them now, io_uring sends them at
/// the end of the turn. The plaintext taken is left in [`Tls::take_sealed`] for the caller to
/// count as written.
///
/// # Errors
///
/// A write failed (not `WouldBlock`).
pub(super) fn flush(
    tls: &mut Tls,
    out: &mut Outbound,
    sock: &mut TcpStream,
    driver: &mut Driver,
    key: usize,
    scratch: &mut Vec<u8>,
) -> io::Result<()> {
    loop {
        tls.seal(out, scratch);
        if tls.wire.is_empty() {
            return Ok(());
        }
        if driver.completes() {
            driver.want_send(key);
            return Ok(());
        }
        tls.wire.write_to(sock)?;
        if !tls.wire.is_empty() || out.is_empty() || out.blocked() {
            return Ok(());
        }
    }
}

impl<H: Handler> Worker<H> {
    /// Seals and writes what `key` has queued (see [`flush`]): whether the write went, and
    /// the plaintext sealed since it was last counted; `None` for no TLS connection in `key`.
    fn flush_slot(&mut self, key: usize) -> Option<(io::Result<()>, usize)> {
        let slot = self.conns.get_mut(key)?;
        let tls = slot.tls.as_deref_mut()?;
        let r = flush(
            tls,
            &mut slot.io.out,
            &mut slot.sock,
            &mut self.io,
            key,
            &mut self.tls_scratch,
        );
        Some((r, tls.take_sealed()))
    }

    /// Seals and writes what `key` has queued; the plaintext taken counts as written. Returns
    /// false when the write failed (the connection is dropped) or the connection is gone.
    pub(super) fn tls_flush(&mut self, key: usize) -> bool {
        let Some((r, n)) = self.flush_slot(key) else {
            return self.conns.contains(key);
        };
        self.local.bytes_out += n as u64;
        if let Some(slot) = self.conns.get_mut(key) {
            slot.io.wrote(n);
        }
        if r.is_err() {
            self.end(key, abnormal("write failed"), Ending::Drop);
            return false;
        }
        true
    }

    /// The cork (and the frames chained to it) of a TLS connection: into its plaintext queue,
    /// sealed and written as far as the socket takes it.
    pub(super) fn uncork_tls(&mut self, key: usize) -> io::Result<()> {
        self.ctx.queued = false;
        if !self.queue_cork(key) {
            return Ok(());
        }
        if !self.tls_flush(key) {
            return Ok(()); // ended
        }
        if let Some(slot) = self.conns.get_mut(key) {
            let waits = slot.tls.as_ref().is_some_and(|t| !t.wire.is_empty());
            if !slot.io.out.is_empty() || (waits && !self.io.completes()) {
                slot.io.backpressured = true;
            }
        }
        Ok(())
    }

    /// The socket of a TLS connection is writable (epoll): records, then what waits behind
    /// them.
    pub(super) fn writable_tls(&mut self, key: usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let Some(tls) = slot.tls.as_deref_mut() else {
            return;
        };
        if tls.wire.is_empty() && slot.io.out.is_empty() {
            return;
        }
        let Some((r, n)) = self.flush_slot(key) else {
            return;
        };
        if r.is_err() {
            return self.end(key, abnormal("write failed"), Ending::Drop);
        }
        self.after_write(key, n);
    }

    /// io_uring: a send of a TLS connection's records completed (`n` bytes, already taken from
    /// its wire queue): seal more, send again, and count the plaintext sealed since.
    pub(super) fn sent_tls(&mut self, key: usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let Some(tls) = slot.tls.as_deref_mut() else {
            return;
        };
        tls.seal(&mut slot.io.out, &mut self.tls_scratch);
        if !tls.wire.is_empty() {
            self.io.want_send(key);
        }
        let n = tls.take_sealed();
        self.after_write(key, n);
    }

    /// Reads ciphertext from a TLS connection's socket (epoll) and hands its plaintext on;
    /// `read_closed` as for [`Worker::readable`].
    pub(super) fn readable_tls(&mut self, key: usize, read_closed: bool) {
        if self.tls_in.is_empty() {
            self.tls_in = vec![0; TLS_READ];
        }
        for _ in 0..MAX_READS_PER_EVENT {
            // Plaintext decrypted earlier (held while paused) goes first.
            if !self.drain_plain(key) {
                return;
            }
            let Some(slot) = self.conns.get_mut(key) else {
                return;
            };
            let Some(tls) = slot.tls.as_deref_mut() else {
                return;
            };
            if tls.has_pending() {
                return; // rustls holds all it takes: read on once it is read
            }
            match slot.sock.read(&mut self.tls_in) {
                Ok(0) => return self.on_eof(key),
                Ok(n) => {
                    self.local.bytes_in += n as u64;
                    slot.io.last_read = self.now;
                    slot.io.ping_sent = false;
                    let r = tls.feed(&self.tls_in[..n], &mut self.tls_scratch);
                    if !self.after_feed(key, r) || !self.drain_plain(key) {
                        return;
                    }
                    if n < TLS_READ && !read_closed {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.on_eof(key),
            }
        }
        self.pending.push(key);
    }

    /// io_uring: ciphertext for a TLS connection arrived in receive buffer `buf`.
    pub(super) fn received_tls(
        &mut self,
        key: usize,
        (buf, offset, last): (u16, u32, bool),
        len: usize,
    ) {
        let Driver::Uring(u) = &mut self.io else {
            return;
        };
        let data = u.buffer(buf, offset, len);
        let Some(tls) = self.conns.get_mut(key).and_then(|s| s.tls.as_deref_mut()) else {
            u.release(buf, last);
            return;
        };
        let r = tls.feed(data, &mut self.tls_scratch);
        u.release(buf, last);
        if self.after_feed(key, r) {
            self.drain_plain(key);
        }
    }

    /// After ciphertext was fed in: writes what rustls answered (handshake messages); on a
    /// failure, writes the alert (or the plain answer to a plain request) and ends the
    /// connection. Returns whether it goes on.
    pub(super) fn after_feed(&mut self, key: usize, r: Result<(), TlsFailure>) -> bool {
        let failure = match r {
            Ok(()) => return self.tls_flush(key),
            Err(f) => f,
        };
        if !self.tls_flush(key) {
            return false;
        }
        let Some(slot) = self.conns.get(key) else {
            return false;
        };
        match &slot.stage {
            Stage::Connecting { .. } => {
                let error = match failure {
                    TlsFailure::Tls(e) => ClientError::Tls(e),
                    other => ClientError::Tls(rustls::Error::General(other.to_string())),
                };
                self.fail_connect(key, error);
            }
            Stage::Draining { .. } => {}
            _ => self.end(key, abnormal(&failure.to_string()), Ending::Linger),
        }
        false
    }

    /// Hands the plaintext rustls holds for `key` to the protocol (through the read buffer,
    /// behind the connection's residue), feeding ciphertext kept earlier as room comes. Returns
    /// false when the connection is gone, paused or at its end.
    pub(super) fn drain_plain(&mut self, key: usize) -> bool {
        loop {
            let Some(slot) = self.conns.get_mut(key) else {
                return false;
            };
            if slot.io.paused {
                return false;
            }
            let Some(tls) = slot.tls.as_deref_mut() else {
                return true;
            };
            let r = slot.io.residue.len();
            let limit = read_limit(&slot.stage, self.settings.limits.max_head_size, r);
            match tls.read_plain(&mut self.rbuf[r..r + limit]) {
                Plain::Bytes(n) => {
                    if r > 0 {
                        self.rbuf[..r].copy_from_slice(&slot.io.residue);
                        slot.io.residue = Vec::new();
                    }
                    self.on_data(key, r + n);
                }
                Plain::Empty if tls.has_pending() => {
                    let before = tls.pending_len();
                    let res = tls.refeed(&mut self.tls_scratch);
                    let stuck = tls.pending_len() == before;
                    if !self.after_feed(key, res) {
                        return false;
                    }
                    if stuck {
                        return true;
                    }
                }
                Plain::Empty => return true,
                Plain::Closed => {
                    self.on_eof(key);
                    return false;
                }
            }
        }
    }
}

//! `Conn`, the handle callbacks get, over the per-connection IO state kept in the slab.

use std::net::SocketAddr;

use std::sync::Arc;

use bytes::Bytes;

use crate::broadcast::frame::Published;
use crate::broadcast::local::{Subscriptions, Topics};
use crate::engine::deflate_pool::{DeflatePool, Task};
use crate::engine::fanout::{Counts, Hub};
use crate::engine::inbox::{Command, InboxSender};
use crate::engine::outbound::Outbound;
use crate::engine::sent::Sent;
use crate::engine::Settings;
use crate::error::SendError;
use crate::handler::{ConnId, Message, SendStatus};
use crate::protocol::{CloseCode, CloseState, DetachedFrame, MessageKind, Role, WriteHalf};

/// Per-connection IO state (everything but the protocol session and the user's state).
#[derive(Debug)]
pub(crate) struct ConnIo {
    pub(crate) id: ConnId,
    pub(crate) peer: SocketAddr,
    /// Which end we are.
    pub(crate) role: Role,
    /// The caller's tag of a client connection (0 for accepted ones).
    pub(crate) tag: u64,
    pub(crate) protocol: Option<Box<str>>,
    pub(crate) out: Outbound,
    /// Unconsumed input (part of a frame header or of a control frame), at most 139 bytes.
    pub(crate) residue: Vec<u8>,
    /// Tick of the last bytes read.
    pub(crate) last_read: u64,
    /// Tick the current stage (handshake, closing, draining) began.
    pub(crate) since: u64,
    /// Tick of the wheel entry in force.
    pub(crate) deadline: u64,
    pub(crate) ping_sent: bool,
    pub(crate) terminate: bool,
    /// Terminated with a TCP reset: `SO_LINGER` 0 before the descriptor closes.
    pub(crate) reset: bool,
    /// Unwritten bytes waited in `out` (so `on_drain` is due when it empties).
    pub(crate) backpressured: bool,
    /// Reading is paused: the queue is full (see `worker/flow.rs`).
    pub(crate) paused: bool,
    /// The route the connection was accepted on (see `engine/route.rs`); 0: the server-wide
    /// options.
    pub(crate) route: u16,
    /// What few connections need, allocated on first use: one pointer on an idle connection.
    pub(crate) rare: Option<Box<Rare>>,
    /// Topics, counters and held-back messages, from the first subscribe on (a box of its own,
    /// so that a subscription does not pay for the rest of `Rare`).
    pub(crate) subs: Option<Box<Subscriptions>>,
}

/// Per-connection state that most connections never need.
#[derive(Debug, Default)]
pub(crate) struct Rare {
    /// The peer's close frame, once it arrived.
    pub(crate) peer_close: Option<(CloseCode, String)>,
    /// Tracked sends, from the first one on (see `engine/sent.rs`).
    pub(crate) sent: Sent,
    /// Behind a proxy: the TCP peer's own address (`ConnIo::peer` is the client's).
    pub(crate) tcp_peer: Option<SocketAddr>,
    /// A PROXY protocol header is owed (see `worker/proxied.rs`).
    pub(crate) await_proxy: Option<crate::engine::worker::proxied::AwaitingHeader>,
}

impl ConnIo {
    pub(crate) fn new(id: ConnId, peer: SocketAddr, now: u64) -> Self {
        ConnIo {
            id,
            peer,
            role: Role::Server,
            tag: 0,
            protocol: None,
            out: Outbound::default(),
            residue: Vec::new(),
            last_read: now,
            since: now,
            deadline: 0,
            ping_sent: false,
            terminate: false,
            reset: false,
            backpressured: false,
            paused: false,
            route: 0,
            rare: None,
            subs: None,
        }
    }

    /// The TCP peer's own address: a proxy's, behind one; else `peer`.
    pub(crate) fn tcp_peer(&self) -> SocketAddr {
        self.rare
            .as_ref()
            .and_then(|r| r.tcp_peer)
            .unwrap_or(self.peer)
    }

    pub(crate) fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// The connection's subscriptions, if it ever subscribed.
    pub(crate) fn subs(&self) -> Option<&Subscriptions> {
        self.subs.as_deref()
    }

    /// The connection's subscriptions, if it ever subscribed, mutably.
    pub(crate) fn subs_mut(&mut self) -> Option<&mut Subscriptions> {
        self.subs.as_deref_mut()
    }

    /// Takes the subscriptions (the connection ended).
    pub(crate) fn take_subs(&mut self) -> Option<Subscriptions> {
        self.subs.take().map(|b| *b)
    }

    /// Keeps the peer's close frame.
    pub(crate) fn set_peer_close(&mut self, code: CloseCode, reason: &str) {
        self.rare_mut().peer_close = Some((code, reason.to_owned()));
    }

    /// Takes the peer's close frame, if one arrived.
    pub(crate) fn take_peer_close(&mut self) -> Option<(CloseCode, String)> {
        self.rare.as_mut()?.peer_close.take()
    }

    /// The tracked sends, if any was ever made.
    pub(crate) fn sent_mut(&mut self) -> Option<&mut Sent> {
        self.rare.as_mut().map(|r| &mut r.sent)
    }

    /// Forgets the tracked sends (once the connection ended: nothing is reported after it).
    pub(crate) fn forget_sent(&mut self) {
        if let Some(r) = &mut self.rare {
            r.sent = Sent::default();
        }
    }

    /// `n` bytes of this connection's output were written to the kernel.
    pub(crate) fn wrote(&mut self, n: usize) {
        if let Some(sent) = self.sent_mut() {
            sent.wrote(n);
        }
    }
}

/// The most bytes a data frame of `len` payload bytes can take on the wire: the longest header,
/// plus, when it may be compressed, deflate's worst case on incompressible input (stored blocks
/// cost 5 bytes per 64 KiB; libdeflate's and zlib's bounds are within `len / 512 + 64`).
fn frame_bound(len: usize, compressed: bool) -> usize {
    let expansion = if compressed { len / 512 + 64 } else { 0 };
    crate::protocol::frame::MAX_HEADER_LEN + len + expansion
}

/// Per-worker state a `Conn` writes to: the cork buffer and local counters.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) cork: Vec<u8>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) messages_out: u64,
    /// Sends dropped by backpressure.
    pub(crate) dropped: u64,
    /// Connections whose reading is paused.
    pub(crate) paused: u64,
    /// The worker's current tick.
    pub(crate) now: u64,
    /// A send put bytes straight into the connection's queue: write it even if the cork is
    /// empty.
    pub(crate) queued: bool,
    /// Shared frames corked without a copy: `(offset, frame)` goes after `cork[..offset]`.
    pub(crate) chain: Vec<(usize, Bytes)>,
    /// Bytes in `chain`.
    pub(crate) chain_len: usize,
    /// This worker's index.
    pub(crate) index: usize,
    /// This worker's topics.
    pub(crate) topics: Topics,
    /// Every worker, for publishes.
    pub(crate) hub: Arc<Hub>,
    /// Publishes of this loop turn, delivered to local recipients at its end.
    pub(crate) outgoing: Vec<Arc<Published>>,
    /// Counters of this worker's deliveries.
    pub(crate) published: Counts,
    /// The deflate pool, when the server has one.
    pub(crate) pool: Option<PoolCtx>,
}

/// What a worker needs to hand large messages to the deflate pool.
#[derive(Debug)]
pub(crate) struct PoolCtx {
    pub(crate) pool: Arc<DeflatePool>,
    /// The worker's own inbox, where compressed frames come back.
    pub(crate) inbox: InboxSender,
    pub(crate) threshold: usize,
    pub(crate) max_size: usize,
    /// Names the pending places in outbound queues.
    pub(crate) next_ticket: u64,
}

/// A message compressed on the pool, whose frame goes back to its connection's worker.
struct FrameJob {
    frame: DetachedFrame,
    payload: Bytes,
    id: ConnId,
    ticket: u64,
    inbox: InboxSender,
}

impl Task for FrameJob {
    fn run(self: Box<Self>) {
        let mut out = Vec::new();
        self.frame.encode(&self.payload, &mut out);
        drop(self.payload);
        // A worker that is gone has no connection to write it to.
        let _ = self.inbox.send(Command::Deflated {
            id: self.id,
            ticket: self.ticket,
            frame: out,
        });
    }
}

impl Ctx {
    /// Moves what is corked and chained into `out`, in order (before something that must
    /// follow it there, such as a pending place of the deflate pool).
    pub(crate) fn spill(&mut self, out: &mut Outbound) {
        let mut at = 0;
        for (offset, frame) in self.chain.drain(..) {
            out.push_copy(&self.cork[at..offset]);
            out.push_shared(frame);
            at = offset;
        }
        out.push_copy(&self.cork[at..]);
        self.cork.clear();
        self.chain_len = 0;
        self.queued = true;
    }
}

/// A connection, inside a [`crate::Handler`] callback: send, ping, close, and the connection's
/// own state.
///
/// Sends are corked: every frame sent during the callbacks of one read leaves in one write
/// when they return.
pub struct Conn<'a, S> {
    pub(crate) tx: &'a mut WriteHalf,
    pub(crate) io: &'a mut ConnIo,
    pub(crate) user: &'a mut S,
    pub(crate) ctx: &'a mut Ctx,
}

impl<S> std::fmt::Debug for Conn<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.io.id)
            .field("peer", &self.io.peer)
            .finish_non_exhaustive()
    }
}

impl<S> Conn<'_, S> {
    /// The connection's id, valid across threads with [`crate::ServerHandle`].
    pub fn id(&self) -> ConnId {
        self.io.id
    }

    /// The client's address: the TCP peer's, or behind a proxy the real client's, from a
    /// PROXY protocol header (`Builder::proxy_protocol`) or from the `Forwarded` /
    /// `X-Forwarded-For` headers of a trusted proxy (`Builder::trusted_proxies`). The same in
    /// every callback. A header that gives no port gives port 0. See docs/client-ip.md.
    pub fn peer_addr(&self) -> SocketAddr {
        self.io.peer
    }

    /// The TCP peer's own address: the proxy's, behind one (the same as [`Conn::peer_addr`]
    /// when no proxy spoke for the client).
    pub fn tcp_peer_addr(&self) -> SocketAddr {
        self.io.tcp_peer()
    }

    /// Server (accepted) or client (opened with [`crate::ServerHandle::connect`]).
    pub fn role(&self) -> Role {
        self.io.role
    }

    /// The tag given to [`crate::ServerHandle::connect`] for a client connection; 0 for an
    /// accepted one.
    pub fn tag(&self) -> u64 {
        self.io.tag
    }

    /// The subprotocol chosen at the upgrade, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.io.protocol.as_deref()
    }

    /// The connection's state.
    pub fn state(&self) -> &S {
        self.user
    }

    /// The connection's state, mutably.
    pub fn state_mut(&mut self) -> &mut S {
        self.user
    }

    /// Bytes sent but not yet written to the socket (corked in this callback or queued). A
    /// message still being compressed on the deflate pool counts with its uncompressed size.
    pub fn buffered_amount(&self) -> usize {
        self.io.out.len() + self.ctx.cork.len() + self.ctx.chain_len
    }

    /// Whether the connection is open for sending (no close frame sent or received).
    pub fn is_open(&self) -> bool {
        self.tx.close_state() == CloseState::Open && !self.io.terminate
    }

    /// Admits a data frame of at most `frame` bytes: when what is unwritten (queued and
    /// corked) plus the frame fits in `max_buffered`, or when nothing at all is unwritten (so one
    /// message larger than the limit still goes to a peer that keeps up); else it is dropped.
    fn admit(&mut self, frame: usize) -> Result<SendStatus, SendError> {
        if !self.is_open() {
            return Err(SendError::Closing);
        }
        let waiting = self.io.out.len();
        let unwritten = waiting + self.ctx.cork.len() + self.ctx.chain_len;
        if unwritten > 0 && unwritten.saturating_add(frame) > self.ctx.settings.max_buffered {
            self.ctx.dropped += 1;
            // The queue is full: stop reading from the peer (see worker/flow.rs).
            if !std::mem::replace(&mut self.io.paused, true) {
                self.ctx.paused += 1;
            }
            return Ok(SendStatus::Dropped);
        }
        Ok(if waiting > 0 {
            SendStatus::Queued
        } else {
            SendStatus::Sent
        })
    }

    /// Control frames (pings, pongs) are never dropped by backpressure: the read pause bounds
    /// what a peer can make us queue.
    fn admit_control(&self) -> Result<SendStatus, SendError> {
        if !self.is_open() {
            return Err(SendError::Closing);
        }
        Ok(if self.io.out.is_empty() {
            SendStatus::Sent
        } else {
            SendStatus::Queued
        })
    }

    /// Records `token` for the message just encoded (its last byte is the last unwritten one).
    fn track(&mut self, token: Option<u64>) {
        if let Some(token) = token {
            let unwritten = self.io.out.len() + self.ctx.cork.len() + self.ctx.chain_len;
            self.io.rare_mut().sent.track(unwritten, token);
        }
    }

    /// Sends a message.
    ///
    /// # Errors
    ///
    /// [`SendError::Closing`] once a close frame was sent or received.
    pub fn send(&mut self, message: Message<'_>) -> Result<SendStatus, SendError> {
        self.send_with(message, true)
    }

    /// Sends a message, compressed only if `compress` is true and permessage-deflate was
    /// negotiated (and the message is within the threshold and cap): ws's `compress` option.
    ///
    /// # Errors
    ///
    /// As [`Conn::send`].
    pub fn send_with(
        &mut self,
        message: Message<'_>,
        compress: bool,
    ) -> Result<SendStatus, SendError> {
        self.send_whole(message.kind(), message.as_bytes(), compress, None)
    }

    /// Sends a message and reports back when it has gone: [`crate::Handler::on_sent`] gets
    /// `token` once the message's last byte has been written to the kernel (Node ws's send
    /// callback). Tokens are the caller's; they are reported in send order, each once.
    ///
    /// A send dropped by backpressure returns [`SendStatus::Dropped`] and is not tracked (no
    /// `on_sent` follows). A tracked message still unwritten when the connection ends is
    /// listed by [`Conn::unsent_tokens`] in [`crate::Handler::on_close`], and no `on_sent`
    /// follows for it.
    ///
    /// A connection holds no tracking state until its first tracked send.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use wsx::{Conn, Handler, Message, SendStatus, Server};
    ///
    /// /// Sends each message on, numbered, and logs when it has left.
    /// struct Relay {
    ///     next: u64,
    /// }
    ///
    /// impl Handler for Relay {
    ///     type State = ();
    ///
    ///     fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
    ///         self.next += 1;
    ///         if let Ok(SendStatus::Dropped) = conn.send_tracked(message, self.next) {
    ///             eprintln!("message {} dropped: the peer is not reading", self.next);
    ///         }
    ///     }
    ///
    ///     fn on_sent(&mut self, _conn: &mut Conn<'_, ()>, token: u64) {
    ///         eprintln!("message {token} written");
    ///     }
    ///
    ///     fn on_close(&mut self, conn: &mut Conn<'_, ()>, _close: &wsx::CloseInfo) {
    ///         for token in conn.unsent_tokens() {
    ///             eprintln!("message {token} never went");
    ///         }
    ///     }
    /// }
    ///
    /// let server = Server::builder().port(9001).start(|_| Relay { next: 0 })?;
    /// server.wait();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Conn::send`] (the token is not tracked).
    pub fn send_tracked(
        &mut self,
        message: Message<'_>,
        token: u64,
    ) -> Result<SendStatus, SendError> {
        self.send_whole(message.kind(), message.as_bytes(), true, Some(token))
    }

    /// The tokens of tracked sends ([`Conn::send_tracked`],
    /// [`crate::ServerHandle::send_tracked`]) not yet reported by
    /// [`crate::Handler::on_sent`], in send order. In [`crate::Handler::on_close`]: the
    /// tracked messages that never went (they may or may not reach the peer; no `on_sent`
    /// follows for them).
    pub fn unsent_tokens(&self) -> impl Iterator<Item = u64> + '_ {
        self.io.rare.iter().flat_map(|r| r.sent.unsent())
    }

    fn send_whole(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        compress: bool,
        token: Option<u64>,
    ) -> Result<SendStatus, SendError> {
        let compressed = compress && self.tx.would_compress(payload.len());
        let status = self.admit(frame_bound(payload.len(), compressed))?;
        if status == SendStatus::Dropped {
            return Ok(status);
        }
        if compress {
            let copy = || Bytes::copy_from_slice(payload);
            if let Some(pooled) = self.offload(kind, payload.len(), copy)? {
                // A pooled message's token counts its uncompressed size until the frame comes
                // back (`Sent::shrink_after`).
                self.track(token);
                return Ok(if pooled { SendStatus::Queued } else { status });
            }
        }
        self.tx
            .send_message_with(kind, payload, compress, &mut self.ctx.cork)?;
        self.ctx.messages_out += 1;
        self.track(token);
        Ok(status)
    }

    /// Hands a whole message to the deflate pool when there is one, the message is large
    /// enough and the connection's parameters let it be compressed alone: its place is kept in
    /// the queue (what is corked goes first, what is sent later waits behind it) and the frame
    /// is written when it comes back. When the pool's queue is full, the message is compressed
    /// here, in its place. `Some(true)`: sent through the pool; `Some(false)`: sent, compressed
    /// here; `None` (nothing done): send it inline.
    fn offload(
        &mut self,
        kind: MessageKind,
        len: usize,
        payload: impl FnOnce() -> Bytes,
    ) -> Result<Option<bool>, SendError> {
        let Some(pool) = &mut self.ctx.pool else {
            return Ok(None);
        };
        if len < pool.threshold || len > pool.max_size {
            return Ok(None);
        }
        let Some(frame) = self.tx.detach_compressed(kind, len)? else {
            return Ok(None);
        };
        pool.next_ticket += 1;
        let job = FrameJob {
            frame,
            payload: payload(),
            id: self.io.id,
            ticket: pool.next_ticket,
            inbox: pool.inbox.clone(),
        };
        let pooled = match pool.pool.try_run(job) {
            Ok(()) => {
                let ticket = pool.next_ticket;
                // What is corked (and chained) goes first, then the pending place.
                self.ctx.spill(&mut self.io.out);
                self.io.out.push_pending(ticket, len);
                self.ctx.queued = true;
                true
            }
            // The pool is behind: compressing here is the backpressure (this worker reads no
            // more until it is done), and nothing is dropped.
            Err(job) => {
                job.frame.encode(&job.payload, &mut self.ctx.cork);
                false
            }
        };
        self.ctx.messages_out += 1;
        Ok(Some(pooled))
    }

    /// Whether permessage-deflate is in force on this connection.
    pub fn compression(&self) -> bool {
        self.tx.deflate_on()
    }

    /// Sends a text message.
    ///
    /// # Errors
    ///
    /// As [`Conn::send`].
    pub fn send_text(&mut self, text: &str) -> Result<SendStatus, SendError> {
        self.send(Message::Text(text))
    }

    /// Sends a binary message.
    ///
    /// # Errors
    ///
    /// As [`Conn::send`].
    pub fn send_binary(&mut self, data: &[u8]) -> Result<SendStatus, SendError> {
        self.send(Message::Binary(data))
    }

    /// Sends one fragment: `Some(kind)` starts a message, `None` continues it, `fin` ends it
    /// (ws's `fin` send option).
    ///
    /// # Errors
    ///
    /// As [`Conn::send`], and [`SendError::FragmentOrder`] out of order.
    pub fn send_fragment(
        &mut self,
        kind: Option<MessageKind>,
        payload: &[u8],
        fin: bool,
    ) -> Result<SendStatus, SendError> {
        let status = self.admit(frame_bound(payload.len(), false))?;
        if status == SendStatus::Dropped {
            return Ok(status);
        }
        self.tx
            .send_fragment(kind, payload, fin, &mut self.ctx.cork)?;
        if fin {
            self.ctx.messages_out += 1;
        }
        Ok(status)
    }

    /// Sends a message whose payload is shared (`Bytes`): on a server, a large payload is
    /// queued as a slice of the caller's buffer instead of being copied into the cork buffer.
    pub(crate) fn send_shared(
        &mut self,
        kind: MessageKind,
        payload: Bytes,
    ) -> Result<SendStatus, SendError> {
        self.send_shared_tracked(kind, payload, None)
    }

    /// [`Conn::send_shared`], reporting `token` (if any) through `on_sent`.
    pub(crate) fn send_shared_tracked(
        &mut self,
        kind: MessageKind,
        payload: Bytes,
        token: Option<u64>,
    ) -> Result<SendStatus, SendError> {
        /// Below this a copy into the cork buffer is cheaper than another iovec.
        const SHARE_FROM: usize = 1024;
        let status = self.admit(frame_bound(
            payload.len(),
            self.tx.would_compress(payload.len()),
        ))?;
        if status == SendStatus::Dropped {
            return Ok(status);
        }
        let len = payload.len();
        let mut shared = Some(payload);
        if let Some(pooled) = self.offload(kind, len, || shared.take().unwrap_or_default())? {
            self.track(token);
            return Ok(if pooled { SendStatus::Queued } else { status });
        }
        let payload = shared.unwrap_or_default();
        if self.tx.would_compress(payload.len()) {
            self.tx
                .send_message_with(kind, &payload, true, &mut self.ctx.cork)?;
            self.ctx.messages_out += 1;
            self.track(token);
            return Ok(status);
        }
        let header = self
            .tx
            .encode_data_header(Some(kind), true, payload.len())?;
        let cork = &mut self.ctx.cork;
        cork.extend_from_slice(header.bytes());
        match header.mask() {
            None if payload.len() >= SHARE_FROM => {
                // Chained behind what is corked: one vectored write of `[cork, payload]` when
                // the callbacks end, no copy, no queue unless the socket does not take it.
                self.ctx.chain_len += payload.len();
                self.ctx.chain.push((cork.len(), payload));
            }
            None => cork.extend_from_slice(&payload),
            Some(key) => {
                let start = cork.len();
                cork.extend_from_slice(&payload);
                crate::protocol::mask::apply_mask(&mut cork[start..], key, 0);
            }
        }
        self.ctx.messages_out += 1;
        self.track(token);
        Ok(status)
    }

    /// Sends a ping (at most 125 bytes). Control frames are never dropped by backpressure:
    /// the status is `Sent` or `Queued`.
    ///
    /// # Errors
    ///
    /// [`SendError::ControlTooLong`], [`SendError::Closing`].
    pub fn ping(&mut self, payload: &[u8]) -> Result<SendStatus, SendError> {
        let status = self.admit_control()?;
        self.tx.send_ping(payload, &mut self.ctx.cork)?;
        Ok(status)
    }

    /// Sends an unsolicited pong (at most 125 bytes), never dropped by backpressure.
    ///
    /// # Errors
    ///
    /// As [`Conn::ping`].
    pub fn pong(&mut self, payload: &[u8]) -> Result<SendStatus, SendError> {
        let status = self.admit_control()?;
        self.tx.send_pong(payload, &mut self.ctx.cork)?;
        Ok(status)
    }

    /// Starts the closing handshake; [`crate::Handler::on_close`] follows when the peer answers
    /// (or the close timeout passes).
    ///
    /// # Errors
    ///
    /// [`SendError::InvalidCloseCode`], [`SendError::Closing`].
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), SendError> {
        if self.io.terminate {
            return Err(SendError::Closing);
        }
        self.tx.send_close(code, reason, &mut self.ctx.cork)?;
        self.io.since = self.ctx.now;
        Ok(())
    }

    /// Drops the connection without a closing handshake once the callback returns (what is
    /// corked is still written first, if the socket takes it at once).
    pub fn terminate(&mut self) {
        self.io.terminate = true;
    }

    /// Drops the connection with a TCP reset once the callback returns: no closing handshake,
    /// and `SO_LINGER` 0 makes the kernel discard what is unsent and answer with RST instead of
    /// FIN (what a crashed or killed peer looks like to the other end). [`Handler::on_close`]
    /// follows with 1006, as for [`Conn::terminate`].
    ///
    /// [`Handler::on_close`]: crate::Handler::on_close
    pub fn reset(&mut self) {
        self.io.terminate = true;
        self.io.reset = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Idle connections pay for tracking with one pointer, nothing more (the slab slot was 455 B
    /// with a 168-byte `ConnIo` before tokens and the read pause).
    #[test]
    fn tracking_and_subscriptions_cost_an_idle_connection_one_pointer_each() {
        assert!(
            // 168 before send tokens and subscriptions (one pointer each) and the io_uring
            // backend's count of queue segments a send in flight reads (one word).
            size_of::<ConnIo>() <= 168 + 16 + 8,
            "ConnIo is {} bytes",
            size_of::<ConnIo>()
        );
    }
}

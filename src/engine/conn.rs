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
    /// Unwritten bytes waited in `out` (so `on_drain` is due when it empties).
    pub(crate) backpressured: bool,
    /// The peer's close frame, once it arrived.
    pub(crate) peer_close: Option<Box<(CloseCode, String)>>,
    /// Topics, counters and held-back messages, from the first subscribe on.
    pub(crate) subs: Option<Box<Subscriptions>>,
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
            backpressured: false,
            peer_close: None,
            subs: None,
        }
    }
}

/// Per-worker state a `Conn` writes to: the cork buffer and local counters.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) cork: Vec<u8>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) messages_out: u64,
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

    /// The TCP peer address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.io.peer
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

    fn admit(&self) -> Result<SendStatus, SendError> {
        if !self.is_open() {
            return Err(SendError::Closing);
        }
        let waiting = self.io.out.len();
        if waiting + self.ctx.cork.len() > self.ctx.settings.max_buffered {
            return Ok(SendStatus::Dropped);
        }
        Ok(if waiting > 0 {
            SendStatus::Queued
        } else {
            SendStatus::Sent
        })
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
        self.send_whole(message.kind(), message.as_bytes(), compress)
    }

    fn send_whole(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        compress: bool,
    ) -> Result<SendStatus, SendError> {
        let status = self.admit()?;
        if status == SendStatus::Dropped {
            return Ok(status);
        }
        if compress {
            let copy = || Bytes::copy_from_slice(payload);
            match self.offload(kind, payload.len(), copy)? {
                Some(true) => return Ok(SendStatus::Queued),
                Some(false) => return Ok(status),
                None => {}
            }
        }
        self.tx
            .send_message_with(kind, payload, compress, &mut self.ctx.cork)?;
        self.ctx.messages_out += 1;
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
                let cork = &mut self.ctx.cork;
                self.io.out.push_copy(cork);
                cork.clear();
                self.io.out.push_pending(pool.next_ticket, len);
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
        let status = self.admit()?;
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
        /// Below this a copy into the cork buffer is cheaper than another iovec.
        const SHARE_FROM: usize = 1024;
        let status = self.admit()?;
        if status == SendStatus::Dropped {
            return Ok(status);
        }
        let len = payload.len();
        let mut shared = Some(payload);
        match self.offload(kind, len, || shared.take().unwrap_or_default())? {
            Some(true) => return Ok(SendStatus::Queued),
            Some(false) => return Ok(status),
            None => {}
        }
        let payload = shared.unwrap_or_default();
        if self.tx.would_compress(payload.len()) {
            return self.send_whole(kind, &payload, true);
        }
        let header = self
            .tx
            .encode_data_header(Some(kind), true, payload.len())?;
        let cork = &mut self.ctx.cork;
        cork.extend_from_slice(header.bytes());
        match header.mask() {
            None if payload.len() >= SHARE_FROM => {
                // Keep the order: what is corked goes first, then the shared slice.
                self.io.out.push_copy(cork);
                cork.clear();
                self.io.out.push_shared(payload);
                self.ctx.queued = true;
            }
            None => cork.extend_from_slice(&payload),
            Some(key) => {
                let start = cork.len();
                cork.extend_from_slice(&payload);
                crate::protocol::mask::apply_mask(&mut cork[start..], key, 0);
            }
        }
        self.ctx.messages_out += 1;
        Ok(status)
    }

    /// Sends a ping (at most 125 bytes).
    ///
    /// # Errors
    ///
    /// [`SendError::ControlTooLong`], [`SendError::Closing`].
    pub fn ping(&mut self, payload: &[u8]) -> Result<SendStatus, SendError> {
        let status = self.admit()?;
        self.tx.send_ping(payload, &mut self.ctx.cork)?;
        Ok(status)
    }

    /// Sends an unsolicited pong (at most 125 bytes).
    ///
    /// # Errors
    ///
    /// As [`Conn::ping`].
    pub fn pong(&mut self, payload: &[u8]) -> Result<SendStatus, SendError> {
        let status = self.admit()?;
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
}

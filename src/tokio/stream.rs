//! [`WebSocketStream`]: one WebSocket connection over any tokio byte stream, as a
//! `Stream<Item = Result<Message, Error>>` and a `Sink<Message>` on the sans-IO core.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_core::{FusedStream, Stream};
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::blocking::Message;
use crate::client::ClientError as Error;
use crate::limits::Limits;
use crate::protocol::deflate::{DeflateOptions, Params};
use crate::protocol::{CloseCode, CloseState, Config, Connection, Role};

/// Bytes read from the transport at a time.
const READ_CHUNK: usize = 64 << 10;

/// Options of a [`WebSocketStream`], beyond the handshake.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let config = wsx::tokio::WebSocketConfig {
///     write_buffer_limit: 1 << 20,
///     close_timeout: Duration::from_secs(2),
///     ..wsx::tokio::WebSocketConfig::default()
/// };
/// assert_eq!(config.limits, wsx::Limits::DEFAULT);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebSocketConfig {
    /// Size limits on what the peer sends (frame, message, fragments), enforced by the core:
    /// crossing one fails the stream with [`Error::Protocol`] after a close frame with 1009.
    pub limits: Limits,
    /// Bytes that may wait in the write buffer before `poll_ready` (and so `send`) waits for
    /// the transport to take some. Default 4 MiB. Stops a peer that does not read from making
    /// this side buffer without bound; one message may take the buffer past it.
    pub write_buffer_limit: usize,
    /// How long a close waits for the peer's close frame (and the transport to take ours)
    /// before it shuts the transport anyway. Default 5 s. Stops a peer that never answers a
    /// close from holding the connection open.
    pub close_timeout: Duration,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            limits: Limits::DEFAULT,
            write_buffer_limit: 4 << 20,
            close_timeout: Duration::from_secs(5),
        }
    }
}

/// The wakers of the two directions. The transport is always polled with a waker that wakes
/// both, so that a read half that flushes pongs and a write half waiting for room never take
/// each other's wake-up (tokio keeps one waker per direction of a socket).
#[derive(Default)]
struct Wakers {
    /// `[read, write]`.
    slots: Mutex<[Option<Waker>; 2]>,
}

const READER: usize = 0;
const WRITER: usize = 1;

impl Wakers {
    fn register(&self, who: usize, waker: &Waker) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get_mut(who) {
            match slot {
                Some(old) if old.will_wake(waker) => {}
                _ => *slot = Some(waker.clone()),
            }
        }
    }
}

impl Wake for Wakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let taken = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            [slots[READER].take(), slots[WRITER].take()]
        };
        for waker in taken.into_iter().flatten() {
            waker.wake();
        }
    }
}

/// Where the stream stands, past the core's own close state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Frames flow.
    Open,
    /// The stream failed or the transport ended; the error (if any) was handed out.
    Failed,
    /// The transport is shut down: nothing more is read or written.
    Done,
}

/// A WebSocket connection over the byte stream `S`: a
/// [`Stream`] of received [`Message`]s and a [`Sink`] of messages to send, on the same
/// sans-IO [`Connection`] as the engine and the blocking client (permessage-deflate, limits,
/// UTF-8 checks, the closing handshake).
///
/// Make one with [`connect`](super::connect), [`accept`](super::accept) or, over a stream
/// another library has upgraded, [`WebSocketStream::from_raw_socket`].
///
/// # Reading
///
/// The stream yields text, binary, ping and pong messages (pings are answered with pongs by
/// the stream itself, as soon as they are read), then the peer's
/// [`Message::Close`] once, then `None`. When the peer started the closing handshake, the
/// reply is queued and written before `None`: keep polling until `None` (or call
/// [`close`](WebSocketStream::close)) so that it goes out. A peer that breaks the protocol
/// gives one `Err(Error::Protocol(..))` (our close frame with the error's code, such as 1009
/// for a message over [`Limits::max_message_size`], is written first), then `None`. A
/// transport that ends without a close frame gives one `Err(Error::Io(UnexpectedEof))`.
///
/// # Writing
///
/// `Sink::start_send` encodes the message into the write buffer (compressed when
/// permessage-deflate is on and the message is over the threshold); `poll_flush` writes it out.
/// `poll_ready` waits while the buffer holds more than
/// [`WebSocketConfig::write_buffer_limit`]. Sending [`Message::Close`] starts the closing
/// handshake with its code and reason; `Sink::poll_close` (and [`WebSocketStream::close`])
/// sends a close frame (1000 unless one was sent), waits up to
/// [`WebSocketConfig::close_timeout`] for the peer's, and shuts the transport down. Messages
/// that arrive while `poll_close` itself waits for the peer's close frame are dropped; the
/// peer's close frame is still yielded by the stream.
///
/// # Two tasks
///
/// `futures_util::StreamExt::split` gives a read half and a write half that work from two
/// tasks: each direction has its own wake-up, a reader waiting for data never holds the writer
/// up, and pings read by the read half are answered from it.
pub struct WebSocketStream<S> {
    io: S,
    conn: Connection,
    config: WebSocketConfig,
    /// Received bytes not yet given to the core: `rbuf[start..end]`.
    rbuf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes to write: `wbuf[wpos..]`.
    wbuf: Vec<u8>,
    wpos: usize,
    phase: Phase,
    /// The peer's close frame, read by `poll_close`, for the stream to hand out.
    peer_close: Option<Message>,
    /// Whether the peer's close frame was handed out (or an error took its place).
    close_seen: bool,
    /// The transport said EOF.
    eof: bool,
    /// Bounds the wait for the peer's close frame, from the first close poll.
    close_deadline: Option<Pin<Box<Sleep>>>,
    wakers: Arc<Wakers>,
}

impl<S> fmt::Debug for WebSocketStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketStream")
            .field("role", &self.conn.role())
            .field("close_state", &self.conn.close_state())
            .field("buffered", &self.buffered_amount())
            .finish_non_exhaustive()
    }
}

impl<S> WebSocketStream<S> {
    /// A stream over `io`, whose opening handshake is already done (by hyper, say:
    /// `hyper::upgrade::on` and `hyper_util::rt::TokioIo`), in `role`, with no extension.
    /// Call [`WebSocketStream::with_deflate`] when permessage-deflate was negotiated.
    pub fn from_raw_socket(io: S, role: Role, config: WebSocketConfig) -> Self {
        Self::from_partially_read(io, Vec::new(), role, config)
    }

    /// As [`WebSocketStream::from_raw_socket`], where `read` holds bytes already read from
    /// `io` after the handshake (the first frames): they are processed first.
    pub fn from_partially_read(io: S, read: Vec<u8>, role: Role, config: WebSocketConfig) -> Self {
        let conn = Connection::new(
            role,
            Config {
                limits: config.limits,
                ..Config::default()
            },
        );
        Self::from_connection(io, conn, read, config)
    }

    /// A stream over `io` for a session the handshake opened, with bytes already read after it.
    pub(super) fn from_connection(
        io: S,
        conn: Connection,
        read: Vec<u8>,
        config: WebSocketConfig,
    ) -> Self {
        let end = read.len();
        let mut rbuf = read;
        rbuf.resize(end.max(READ_CHUNK), 0);
        WebSocketStream {
            io,
            conn,
            config,
            rbuf,
            start: 0,
            end,
            wbuf: Vec::new(),
            wpos: 0,
            phase: Phase::Open,
            peer_close: None,
            close_seen: false,
            eof: false,
            close_deadline: None,
            wakers: Arc::default(),
        }
    }

    /// Turns on permessage-deflate with the `params` the handshake settled on and the
    /// `options` that compress outgoing messages (threshold, level). Call it before any frame
    /// flows.
    #[must_use]
    pub fn with_deflate(mut self, params: Params, options: DeflateOptions) -> Self {
        self.conn.set_deflate(params, Arc::new(options));
        self
    }

    /// The transport.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The transport, mutably (writing to it directly breaks the framing).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// The options in force.
    pub fn config(&self) -> &WebSocketConfig {
        &self.config
    }

    /// Sets [`WebSocketConfig::write_buffer_limit`].
    pub fn set_write_buffer_limit(&mut self, bytes: usize) {
        self.config.write_buffer_limit = bytes;
    }

    /// Sets [`WebSocketConfig::close_timeout`].
    pub fn set_close_timeout(&mut self, timeout: Duration) {
        self.config.close_timeout = timeout;
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.conn.role()
    }

    /// Where the closing handshake stands.
    pub fn close_state(&self) -> CloseState {
        self.conn.close_state()
    }

    /// The permessage-deflate parameters in force, if negotiated.
    pub fn deflate_params(&self) -> Option<Params> {
        self.conn.deflate_params()
    }

    /// Bytes encoded but not yet taken by the transport.
    pub fn buffered_amount(&self) -> usize {
        self.wbuf.len() - self.wpos
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocketStream<S> {
    /// Sends a close frame (`frame`'s code and reason, or 1000 when `None`), waits up to
    /// [`WebSocketConfig::close_timeout`] for the peer's, and shuts the transport down; as
    /// `Sink::poll_close`.
    ///
    /// # Errors
    ///
    /// [`Error::Send`] for a code that may not be sent (1005, 1006, 1015, out of range) or a
    /// reason over 123 bytes; [`Error::Io`] when the transport fails.
    pub async fn close(&mut self, frame: Option<(CloseCode, &str)>) -> Result<(), Error> {
        if let Some((code, reason)) = frame {
            if self.conn.close_state() == CloseState::Open {
                self.conn.send_close(code, reason, &mut self.wbuf)?;
            }
        }
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_close_inner(cx)).await
    }

    /// A waker for the transport that wakes both directions, with `cx`'s registered as `who`.
    fn io_waker(&self, who: usize, cx: &Context<'_>) -> Waker {
        self.wakers.register(who, cx.waker());
        Waker::from(self.wakers.clone())
    }

    /// Writes the buffer out until it is empty or the transport is full.
    fn poll_write_buf(&mut self, who: usize, cx: &Context<'_>) -> Poll<io::Result<()>> {
        if self.wpos == self.wbuf.len() {
            return Poll::Ready(Ok(()));
        }
        let waker = self.io_waker(who, cx);
        let mut io_cx = Context::from_waker(&waker);
        let result = loop {
            if self.wpos == self.wbuf.len() {
                break Poll::Ready(Ok(()));
            }
            match Pin::new(&mut self.io).poll_write(&mut io_cx, &self.wbuf[self.wpos..]) {
                Poll::Ready(Ok(0)) => break Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.wpos += n,
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => break Poll::Ready(Err(e)),
                Poll::Pending => break Poll::Pending,
            }
        };
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        } else if self.wpos > READ_CHUNK && self.wpos * 2 > self.wbuf.len() {
            self.wbuf.drain(..self.wpos);
            self.wpos = 0;
        }
        result
    }

    /// Writes the buffer out and flushes the transport.
    fn poll_flush_all(&mut self, who: usize, cx: &Context<'_>) -> Poll<io::Result<()>> {
        match self.poll_write_buf(who, cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let waker = self.io_waker(who, cx);
        Pin::new(&mut self.io).poll_flush(&mut Context::from_waker(&waker))
    }

    /// Moves the core's automatic replies (pongs, the close reply) to the write buffer and
    /// writes what the transport takes now.
    fn transmit(&mut self, who: usize, cx: &Context<'_>) -> io::Result<()> {
        let _ = self.conn.poll_transmit(&mut self.wbuf);
        match self.poll_flush_all(who, cx) {
            Poll::Ready(Err(e)) => Err(e),
            _ => Ok(()),
        }
    }

    /// Reads more bytes from the transport into the buffer. `Ready(Ok(false))` at EOF.
    fn poll_fill(&mut self, who: usize, cx: &Context<'_>) -> Poll<io::Result<bool>> {
        // Keep the unconsumed residue (a partial header or control frame) at the front.
        if self.start > 0 {
            self.rbuf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.rbuf.len() {
            self.rbuf.resize(self.end + READ_CHUNK, 0);
        }
        let waker = self.io_waker(who, cx);
        let mut io_cx = Context::from_waker(&waker);
        let mut buf = ReadBuf::new(&mut self.rbuf[self.end..]);
        match Pin::new(&mut self.io).poll_read(&mut io_cx, &mut buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len();
                self.end += n;
                Poll::Ready(Ok(n > 0))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The next message from the peer, for the read half (`who` = reader) or for a close that
    /// waits for the peer's close frame (`who` = writer).
    fn poll_message(
        &mut self,
        who: usize,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Message, Error>>> {
        loop {
            if self.phase != Phase::Open {
                return Poll::Ready(None);
            }
            if self.start < self.end {
                let result = self.conn.handle_read(&mut self.rbuf[self.start..self.end]);
                match result {
                    Ok(read) => {
                        self.start += read.consumed;
                        let message = read.event.map(Message::from);
                        let progressed = read.consumed > 0 || message.is_some();
                        if let Err(e) = self.transmit(who, cx) {
                            self.phase = Phase::Failed;
                            return Poll::Ready(Some(Err(io_error(e))));
                        }
                        if let Some(message) = message {
                            return Poll::Ready(Some(Ok(message)));
                        }
                        if progressed {
                            continue;
                        }
                    }
                    Err(e) => {
                        // Our close frame with the error's code is queued: try to get it out.
                        let _ = self.transmit(who, cx);
                        self.phase = Phase::Failed;
                        self.close_seen = true;
                        return Poll::Ready(Some(Err(Error::Protocol(e))));
                    }
                }
            }
            if self.conn.close_state() == CloseState::Closed {
                return Poll::Ready(None);
            }
            if self.eof {
                self.phase = Phase::Failed;
                self.close_seen = true;
                return Poll::Ready(Some(Err(Error::Io(io::ErrorKind::UnexpectedEof.into()))));
            }
            // Replies the peer waits for go out before we wait for more of its bytes; a full
            // write buffer (pongs a peer does not read) stops reading until it drains.
            match self.poll_write_buf(who, cx) {
                Poll::Ready(Err(e)) => {
                    self.phase = Phase::Failed;
                    return Poll::Ready(Some(Err(io_error(e))));
                }
                Poll::Pending if self.buffered_amount() > self.config.write_buffer_limit => {
                    return Poll::Pending;
                }
                _ => {}
            }
            match self.poll_fill(who, cx) {
                Poll::Ready(Ok(true)) => {}
                Poll::Ready(Ok(false)) => self.eof = true,
                Poll::Ready(Err(e)) => {
                    self.phase = Phase::Failed;
                    return Poll::Ready(Some(Err(io_error(e))));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Flushes what is left and shuts the transport down (TLS: close_notify; TCP: FIN).
    fn poll_shutdown(&mut self, who: usize, cx: &Context<'_>) -> Poll<Result<(), Error>> {
        if self.phase == Phase::Done {
            return Poll::Ready(Ok(()));
        }
        match self.poll_write_buf(who, cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(_)) => {
                // The peer is gone: there is nobody to shut down for.
                self.phase = Phase::Done;
                return Poll::Ready(Ok(()));
            }
            Poll::Pending => return Poll::Pending,
        }
        let waker = self.io_waker(who, cx);
        match Pin::new(&mut self.io).poll_shutdown(&mut Context::from_waker(&waker)) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => {
                self.phase = Phase::Done;
                match r {
                    Ok(()) => Poll::Ready(Ok(())),
                    Err(e) if is_gone(&e) => Poll::Ready(Ok(())),
                    Err(e) => Poll::Ready(Err(io_error(e))),
                }
            }
        }
    }

    /// `Sink::poll_close`: close frame out, the peer's in (bounded), transport shut down.
    fn poll_close_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.phase == Phase::Done {
            return Poll::Ready(Ok(()));
        }
        if self.conn.close_state() == CloseState::Open {
            self.conn
                .send_close(CloseCode::NORMAL, "", &mut self.wbuf)?;
        }
        if self.close_deadline.is_none() {
            self.close_deadline = Some(Box::pin(tokio::time::sleep(self.config.close_timeout)));
        }
        let timed_out = self
            .close_deadline
            .as_mut()
            .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready());
        if !timed_out {
            // Our close frame goes out first.
            match self.poll_write_buf(WRITER, cx) {
                Poll::Ready(Err(_)) => {
                    self.phase = Phase::Done;
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => {}
            }
            // Then the peer's, read here unless the read half already saw it.
            while self.phase == Phase::Open && self.conn.close_state() == CloseState::CloseSent {
                match self.poll_message(WRITER, cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(close @ Message::Close(..)))) => {
                        if !self.close_seen {
                            self.peer_close = Some(close);
                        }
                    }
                    // Messages after our close are dropped; an error ends the wait.
                    Poll::Ready(Some(Ok(_))) => {}
                    Poll::Ready(Some(Err(_)) | None) => break,
                }
            }
        }
        let done = self.poll_shutdown(WRITER, cx);
        if done.is_ready() {
            // A read half waiting in another task learns of the end (and of the peer's close
            // frame read here) now, not at the transport's next event.
            Wake::wake_by_ref(&self.wakers);
        }
        done
    }
}

/// Whether `e` says the peer is already gone (nothing to do about it at close).
fn is_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotConnected | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}

/// An IO error, or the TLS error it carries (rustls reports through `io::Error`).
pub(super) fn io_error(e: io::Error) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
        if let Some(inner) = e.into_inner() {
            if let Ok(tls) = inner.downcast::<rustls::Error>() {
                return Error::Tls(*tls);
            }
        }
        return Error::Io(io::Error::other("tls error"));
    }
    Error::Io(e)
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocketStream<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(close) = this.peer_close.take() {
            this.close_seen = true;
            return Poll::Ready(Some(Ok(close)));
        }
        match this.poll_message(READER, cx) {
            Poll::Ready(Some(Ok(message))) => {
                if matches!(message, Message::Close(..)) {
                    this.close_seen = true;
                }
                Poll::Ready(Some(Ok(message)))
            }
            Poll::Ready(None) => {
                // The closing handshake is over (or the stream failed): the reply, if any,
                // goes out and the transport is shut down before the end.
                match this.poll_shutdown(READER, cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(_) => Poll::Ready(None),
                }
            }
            other => other,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> FusedStream for WebSocketStream<S> {
    fn is_terminated(&self) -> bool {
        self.phase == Phase::Done && self.peer_close.is_none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocketStream<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if this.phase != Phase::Open || this.conn.close_state() != CloseState::Open {
            return Poll::Ready(Err(Error::Closed));
        }
        while this.buffered_amount() >= this.config.write_buffer_limit.max(1) {
            match this.poll_write_buf(WRITER, cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(io_error(e))),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        let this = self.get_mut();
        if this.phase != Phase::Open {
            return Err(Error::Closed);
        }
        let out = &mut this.wbuf;
        match &message {
            Message::Text(text) => this.conn.send_text(text, out)?,
            Message::Binary(data) => this.conn.send_binary(data, out)?,
            Message::Ping(data) => this.conn.send_ping(data, out)?,
            Message::Pong(data) => this.conn.send_pong(data, out)?,
            Message::Close(code, reason) => this.conn.send_close(*code, reason, out)?,
        }
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if this.phase == Phase::Done {
            return Poll::Ready(Ok(()));
        }
        this.poll_flush_all(WRITER, cx).map_err(io_error)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_close_inner(cx)
    }
}

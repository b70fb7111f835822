//! The per-connection session: frames in, events out; messages in, frames out.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::error::{ProtocolError, SendError};
use crate::limits::Limits;
use crate::protocol::close::{self, CloseCode};
use crate::protocol::deflate::codec::{DeflateState, InflateError};
use crate::protocol::deflate::{DeflateOptions, Params};
use crate::protocol::frame::{
    Control, Data, FrameHeader, FrameRules, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, RSV1,
};
use crate::protocol::mask::apply_mask;
use crate::protocol::message::{Assembler, MessageKind};
use crate::protocol::{utf8, Role};

mod write_half;

/// Options of one [`Connection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Size limits; see [`Limits`] for each default.
    pub limits: Limits,
    /// Answer every ping with a pong automatically (default `true`, as RFC 6455 §5.5.2 asks).
    pub auto_pong: bool,
    /// Accept unmasked frames from clients. Breaks RFC 6455 §5.1; only for trusted peers
    /// (default `false`).
    pub dangerous_accept_unmasked_frames: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: Limits::DEFAULT,
            auto_pong: true,
            dangerous_accept_unmasked_frames: false,
        }
    }
}

/// Something the peer said, borrowed from the input buffer (a message that arrived in one frame,
/// any control frame) or from the connection's assembly buffer (a fragmented message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete text message, validated as UTF-8.
    Text(&'a str),
    /// A complete binary message.
    Binary(&'a [u8]),
    /// A ping; the pong is already queued when [`Config::auto_pong`] is on.
    Ping(&'a [u8]),
    /// A pong.
    Pong(&'a [u8]),
    /// The peer's close frame. When the peer started the closing handshake the reply is already
    /// queued; either way the handshake is now complete.
    Close {
        /// The peer's code ([`CloseCode::NO_STATUS`] when its frame had none).
        code: CloseCode,
        /// The peer's reason, possibly empty.
        reason: &'a str,
    },
}

/// What one [`Connection::handle_read`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Read<'a> {
    /// Bytes consumed from the front of the input. The rest must be presented again, with more
    /// bytes appended, on the next call.
    pub consumed: usize,
    /// The event that stopped the call, or `None` when the input is used up (or holds only part
    /// of a frame header or of a control frame).
    pub event: Option<Event<'a>>,
}

/// Where the closing handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseState {
    /// Open in both directions.
    Open,
    /// We sent a close frame and wait for the peer's.
    CloseSent,
    /// Close frames went both ways: the closing handshake is complete. A server closes the TCP
    /// connection now; a client waits for the server to close it (RFC 6455 §7.1.1).
    Closed,
    /// The peer broke the protocol: a close frame with the error's code is queued and the
    /// connection should be closed once it is written.
    Failed,
}

/// A frame header encoded for sending: write `bytes()`, then the payload, masked with `mask()`
/// when it is `Some` (client role).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EncodedHeader {
    buf: [u8; MAX_HEADER_LEN],
    len: u8,
    mask: Option<[u8; 4]>,
}

impl EncodedHeader {
    /// The header bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// The masking key the payload must be masked with (client role), from payload offset 0.
    pub fn mask(&self) -> Option<[u8; 4]> {
        self.mask
    }
}

impl fmt::Debug for EncodedHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncodedHeader")
            .field("bytes", &self.bytes())
            .field("mask", &self.mask)
            .finish()
    }
}

/// A compressed data frame whose payload is compressed apart from its connection: the opcode,
/// the masking key (client role) and the level were fixed when it was sent
/// ([`WriteHalf::detach_compressed`]), so [`DetachedFrame::encode`] needs nothing of the
/// connection and may run on another thread, later. The frame must then be written in the
/// place of the send (the caller keeps the order of frames).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetachedFrame {
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    level: u8,
}

impl DetachedFrame {
    /// Appends the whole frame to `out`: the header (RSV1 set) and `payload` compressed alone
    /// ([`compress_alone`](crate::protocol::deflate::codec::compress_alone)), masked in the
    /// client role. `payload` must be the message whose length was given to
    /// [`WriteHalf::detach_compressed`] (the header is sized from the compressed length, so
    /// another payload still makes a valid frame, of another message).
    pub fn encode(&self, payload: &[u8], out: &mut Vec<u8>) {
        write_compressed_frame(self.opcode, self.mask, out, |out| {
            crate::protocol::deflate::codec::compress_alone(self.level, payload, out);
        });
    }

    /// The compression level the payload is compressed with.
    pub fn level(&self) -> u8 {
        self.level
    }
}

/// Appends a compressed data frame: `compress` appends the compressed payload behind room for
/// the longest header, then the payload slides down to the header's real length (no scratch
/// buffer), and is masked with `mask` when given.
fn write_compressed_frame(
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    out: &mut Vec<u8>,
    compress: impl FnOnce(&mut Vec<u8>),
) {
    let room = if mask.is_some() {
        MAX_HEADER_LEN
    } else {
        MAX_HEADER_LEN - 4
    };
    let start = out.len();
    out.resize(start + room, 0);
    compress(out);
    let clen = out.len() - start - room;
    let header = FrameHeader {
        fin: true,
        rsv: RSV1,
        opcode,
        mask,
        payload_len: clen as u64,
    };
    let mut head = [0u8; MAX_HEADER_LEN];
    let hlen = header.encode(&mut head);
    out.copy_within(start + room.., start + hlen);
    out.truncate(start + hlen + clen);
    out[start..start + hlen].copy_from_slice(&head[..hlen]);
    if let Some(key) = mask {
        apply_mask(&mut out[start + hlen..], key, 0);
    }
}

/// Where a client's masking keys come from.
enum Masker {
    /// A cryptographically strong generator seeded from the OS (RFC 6455 §5.3 asks for
    /// unpredictable keys).
    Rng(Box<StdRng>),
    /// A caller's generator (tests; Node ws's `generateMask`).
    Custom(Box<dyn FnMut() -> [u8; 4] + Send>),
}

impl Masker {
    fn next(&mut self) -> [u8; 4] {
        match self {
            Masker::Rng(rng) => rng.next_u32().to_ne_bytes(),
            Masker::Custom(f) => f(),
        }
    }
}

/// Frame writing: the client's masking keys and the queue of automatic replies.
struct Output {
    masker: Option<Masker>,
    transmit: Vec<u8>,
}

impl Output {
    fn next_mask(&mut self) -> Option<[u8; 4]> {
        self.masker.as_mut().map(Masker::next)
    }

    /// Appends one frame to `dst`, masked in the client role. A server's small frame (the
    /// common case, one per echoed message) takes a 2-byte header built in place, inline.
    #[inline]
    fn write_frame(
        &mut self,
        opcode: OpCode,
        fin: bool,
        rsv: u8,
        payload: &[u8],
        dst: &mut Vec<u8>,
    ) {
        if self.masker.is_none() && payload.len() <= 125 {
            let b0 = (u8::from(fin) << 7) | ((rsv & 0b111) << 4) | opcode.as_u8();
            dst.reserve(2 + payload.len());
            dst.extend_from_slice(&[b0, payload.len() as u8]);
            dst.extend_from_slice(payload);
            return;
        }
        self.write_long_or_masked_frame(opcode, fin, rsv, payload, dst);
    }

    /// [`Output::write_frame`] for everything but a server's small frame.
    fn write_long_or_masked_frame(
        &mut self,
        opcode: OpCode,
        fin: bool,
        rsv: u8,
        payload: &[u8],
        dst: &mut Vec<u8>,
    ) {
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask: self.next_mask(),
            payload_len: payload.len() as u64,
        };
        dst.reserve(header.encoded_len() + payload.len());
        header.encode_into(dst);
        let start = dst.len();
        dst.extend_from_slice(payload);
        if let Some(key) = header.mask {
            apply_mask(&mut dst[start..], key, 0);
        }
    }

    /// Queues an automatic reply (control frame) for `poll_transmit`.
    fn queue(&mut self, opcode: OpCode, payload: &[u8]) {
        let mut transmit = std::mem::take(&mut self.transmit);
        self.write_frame(opcode, true, 0, payload, &mut transmit);
        self.transmit = transmit;
    }
}

/// The receiving side of permessage-deflate.
#[derive(Debug)]
enum Inflate {
    /// The peer resets its compressor per message: inflate with the thread's pooled inflater;
    /// nothing is kept per connection.
    Fast(Params),
    /// The peer keeps its context: the connection keeps a streaming inflater.
    Stream(Box<DeflateState>),
}

/// The sending side of permessage-deflate: the options (shared by every connection of a
/// server), the parameters, and a streaming compressor only where the parameters need one.
#[derive(Debug)]
struct Deflate {
    options: Arc<DeflateOptions>,
    params: Params,
    stream: Option<Box<DeflateState>>,
}

impl Deflate {
    fn should_compress(&self, len: usize) -> bool {
        DeflateState::new(self.params, &self.options).should_compress(len)
    }

    /// Whether a message of `len` bytes may be compressed alone, away from this connection:
    /// above the threshold, and parameters that keep no context and use the full window.
    fn detachable(&self, len: usize) -> bool {
        let state = DeflateState::new(self.params, &self.options);
        state.fast_send() && len >= self.options.threshold
    }

    fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut fresh = DeflateState::new(self.params, &self.options);
        if fresh.fast_send() {
            return fresh.compress(input, out);
        }
        self.stream
            .get_or_insert_with(|| Box::new(fresh))
            .compress(input, out);
    }
}

/// Inflates one compressed message into `out`, bounded by the message size limit.
fn inflate(
    inflater: Option<&mut Inflate>,
    compressed: &[u8],
    config: &Config,
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    let max = usize::try_from(config.limits.max_message_size).unwrap_or(usize::MAX);
    let result = match inflater.ok_or(ProtocolError::ReservedBits)? {
        Inflate::Fast(params) => {
            DeflateState::new(*params, &DeflateOptions::default()).decompress(compressed, max, out)
        }
        Inflate::Stream(state) => state.decompress(compressed, max, out),
    };
    result.map_err(|e| match e {
        InflateError::TooBig { .. } => ProtocolError::MessageTooLarge {
            max: config.limits.max_message_size,
        },
        _ => ProtocolError::InvalidCompressedData,
    })
}

/// A data frame whose payload is still arriving.
#[derive(Debug, Clone, Copy)]
struct PartialFrame {
    fin: bool,
    mask: Option<[u8; 4]>,
    remaining: u64,
    /// Payload bytes of this frame seen so far (for the mask phase).
    seen: u64,
}

/// Where an event's payload lies, before it is borrowed.
#[derive(Debug, Clone)]
enum Src {
    Input(Range<usize>),
    Assembly,
}

#[derive(Debug, Clone)]
enum Pending {
    Message(MessageKind, Src),
    Ping(Range<usize>),
    Pong(Range<usize>),
    Close(CloseCode, Range<usize>),
}

/// One WebSocket connection after the opening handshake, in either role, without IO.
///
/// # Calling contract
///
/// 1. Bytes read from the socket go to [`Connection::handle_read`], which unmasks them in place
///    and returns how many it consumed and at most one [`Event`]. Call it again with the
///    unconsumed rest until it returns no event; keep what it did not consume and present it
///    again with the next bytes appended. It never needs more than the longest frame header
///    plus a control frame (139 bytes) of unconsumed input: data frame payloads are consumed as
///    they arrive.
/// 2. Sends (`send_*`) append whole frames to the caller's buffer.
/// 3. After each `handle_read`, [`Connection::poll_transmit`] moves the automatic replies
///    (pongs, the close reply, the close frame of a protocol error) to the caller's buffer.
/// 4. [`Connection::close_state`] says when the closing handshake is done or the connection
///    failed; the caller then closes the transport.
///
/// A protocol error is sticky: every later `handle_read` returns it again.
///
/// To send while an event still borrows the connection (an echo, say), split it:
/// [`Connection::split`] gives the [`ReadHalf`] that events borrow and the [`WriteHalf`] that
/// sends.
///
/// # Examples
///
/// ```
/// use wsx::protocol::{Config, Connection, Event, Role};
///
/// let mut client = Connection::new(Role::Client, Config::default());
/// let mut server = Connection::new(Role::Server, Config::default());
/// let mut wire = Vec::new();
/// client.send_text("hello", &mut wire).unwrap();
///
/// // Echo without copying the message: the event borrows the read half, the write half sends.
/// let (rx, tx) = server.split();
/// let read = rx.handle_read(tx, &mut wire).unwrap();
/// let mut reply = Vec::new();
/// if let Some(Event::Text(text)) = read.event {
///     tx.send_text(text, &mut reply).unwrap();
/// }
/// assert_eq!(client.handle_read(&mut reply).unwrap().event, Some(Event::Text("hello")));
/// ```
#[derive(Debug)]
pub struct Connection {
    rx: ReadHalf,
    tx: WriteHalf,
}

/// The receiving half of a [`Connection`]: frame decoding and message assembly. Events borrow it.
#[derive(Debug)]
pub struct ReadHalf {
    config: Config,
    frame: Option<PartialFrame>,
    assembler: Assembler,
    /// permessage-deflate, receiving side (when negotiated).
    inflater: Option<Inflate>,
    /// RSV bits an extension owns on data frames (RSV1 once permessage-deflate is on).
    allowed_rsv: u8,
}

/// The sending half of a [`Connection`]: close state, frame encoding, masking keys and the
/// queue of automatic replies.
pub struct WriteHalf {
    role: Role,
    state: CloseState,
    /// The kind of the fragmented message being sent, if any.
    sending: Option<MessageKind>,
    error: Option<ProtocolError>,
    out: Output,
    /// permessage-deflate, sending side (when negotiated).
    deflater: Option<Deflate>,
}

impl fmt::Debug for WriteHalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteHalf")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// Forwards `WriteHalf` methods so that a whole `Connection` can send too.
macro_rules! forward_to_write_half {
    ($($(#[$doc:meta])* fn $name:ident(&mut self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(&mut self $(, $arg: $ty)*) -> $ret {
                self.tx.$name($($arg),*)
            }
        )*
    };
}

impl Connection {
    /// A connection in `role`. A client draws its masking keys from a generator seeded from the
    /// operating system.
    ///
    /// # Panics
    ///
    /// When the operating system cannot provide random bytes (client role only).
    pub fn new(role: Role, config: Config) -> Self {
        let masker = match role {
            Role::Client => Some(Masker::Rng(Box::new(StdRng::from_os_rng()))),
            Role::Server => None,
        };
        Connection {
            rx: ReadHalf {
                inflater: None,
                allowed_rsv: 0,
                config,
                frame: None,
                assembler: Assembler::default(),
            },
            tx: WriteHalf {
                role,
                state: CloseState::Open,
                sending: None,
                error: None,
                deflater: None,
                out: Output {
                    masker,
                    transmit: Vec::new(),
                },
            },
        }
    }

    /// The two halves, to send while an event borrows the read half.
    pub fn split(&mut self) -> (&mut ReadHalf, &mut WriteHalf) {
        (&mut self.rx, &mut self.tx)
    }

    /// Processes bytes read from the peer; see the calling contract on [`Connection`].
    ///
    /// # Errors
    ///
    /// A [`ProtocolError`] when the peer broke the protocol or a limit; a close frame with its
    /// code is then queued for [`Connection::poll_transmit`] and the error is sticky.
    pub fn handle_read<'a>(&'a mut self, input: &'a mut [u8]) -> Result<Read<'a>, ProtocolError> {
        self.rx.handle_read(&mut self.tx, input)
    }

    /// [`Connection::handle_read`] without its fast path, for the tests that hold the two to the
    /// same outcome.
    #[cfg(test)]
    pub(super) fn handle_read_general<'a>(
        &'a mut self,
        input: &'a mut [u8],
    ) -> Result<Read<'a>, ProtocolError> {
        self.rx.handle_read_general(&mut self.tx, input)
    }

    /// [`Output::write_frame`] without its fast path, for the tests that hold the two to the
    /// same bytes.
    #[cfg(test)]
    pub(super) fn write_frame_general(
        &mut self,
        opcode: OpCode,
        fin: bool,
        payload: &[u8],
        dst: &mut Vec<u8>,
    ) {
        self.tx
            .out
            .write_long_or_masked_frame(opcode, fin, 0, payload, dst);
    }

    /// The options in force.
    pub fn config(&self) -> &Config {
        &self.rx.config
    }

    /// Heap bytes this connection holds (assembly and reply buffers), for memory accounting.
    pub fn heap_size(&self) -> usize {
        self.rx.assembler.capacity()
            + self.tx.out.transmit.capacity()
            + match &self.rx.inflater {
                Some(Inflate::Stream(d)) => size_of::<DeflateState>() + d.heap_size(),
                _ => 0,
            }
            + self
                .tx
                .deflater
                .as_ref()
                .and_then(|d| d.stream.as_ref())
                .map_or(0, |d| size_of::<DeflateState>() + d.heap_size())
    }

    /// Turns on permessage-deflate with the negotiated `params` (RSV1 becomes legal on the first
    /// frame of a message; such messages are inflated before they are handed out, within
    /// [`crate::Limits::max_message_size`]; outgoing messages are compressed per
    /// [`DeflateOptions`]).
    ///
    /// The options are shared (a server hands every connection the same `Arc`); a connection
    /// allocates nothing for compression unless a side keeps its context across messages or
    /// uses a window under 32 KiB.
    pub fn set_deflate(&mut self, params: Params, options: Arc<DeflateOptions>) {
        self.rx.allowed_rsv |= RSV1;
        self.rx.inflater = Some(if params.recv_no_context_takeover {
            Inflate::Fast(params)
        } else {
            Inflate::Stream(Box::new(DeflateState::new(params, &options)))
        });
        self.tx.deflater = Some(Deflate {
            options,
            params,
            stream: None,
        });
    }

    /// The permessage-deflate parameters in force, if negotiated.
    pub fn deflate_params(&self) -> Option<Params> {
        self.tx.deflater.as_ref().map(|d| d.params)
    }

    /// Replaces the client's masking key generator; see
    /// [`WriteHalf::dangerous_set_mask_generator`].
    pub fn dangerous_set_mask_generator(
        &mut self,
        generator: impl FnMut() -> [u8; 4] + Send + 'static,
    ) {
        self.tx.dangerous_set_mask_generator(generator);
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.tx.role
    }

    /// Where the closing handshake stands.
    pub fn close_state(&self) -> CloseState {
        self.tx.state
    }

    /// The error that failed the connection, if any.
    pub fn error(&self) -> Option<&ProtocolError> {
        self.tx.error.as_ref()
    }

    /// Whether automatic replies wait in [`Connection::poll_transmit`].
    pub fn wants_transmit(&self) -> bool {
        self.tx.wants_transmit()
    }

    forward_to_write_half! {
        /// See [`WriteHalf::poll_transmit`].
        fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize;
        /// See [`WriteHalf::send_text`].
        fn send_text(&mut self, text: &str, out: &mut Vec<u8>) -> Result<(), SendError>;
        /// See [`WriteHalf::send_binary`].
        fn send_binary(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), SendError>;
        /// See [`WriteHalf::send_message`].
        fn send_message(&mut self, kind: MessageKind, payload: &[u8], out: &mut Vec<u8>) -> Result<(), SendError>;
        /// See [`WriteHalf::send_message_with`].
        fn send_message_with(&mut self, kind: MessageKind, payload: &[u8], compress: bool, out: &mut Vec<u8>) -> Result<(), SendError>;
        /// See [`WriteHalf::send_fragment`].
        fn send_fragment(&mut self, kind: Option<MessageKind>, payload: &[u8], fin: bool, out: &mut Vec<u8>) -> Result<(), SendError>;
        /// See [`WriteHalf::encode_data_header`].
        fn encode_data_header(&mut self, kind: Option<MessageKind>, fin: bool, len: usize) -> Result<EncodedHeader, SendError>;
        /// See [`WriteHalf::detach_compressed`].
        fn detach_compressed(&mut self, kind: MessageKind, len: usize) -> Result<Option<DetachedFrame>, SendError>;
        /// See [`WriteHalf::send_ping`].
        fn send_ping(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), SendError>;
        /// See [`WriteHalf::send_pong`].
        fn send_pong(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), SendError>;
        /// See [`WriteHalf::send_close`].
        fn send_close(&mut self, code: CloseCode, reason: &str, out: &mut Vec<u8>) -> Result<(), SendError>;
    }
}

impl ReadHalf {
    /// Processes bytes read from the peer, queueing automatic replies on `tx`; see the calling
    /// contract on [`Connection`]. `tx` must be the other half of the same connection.
    ///
    /// # Errors
    ///
    /// As [`Connection::handle_read`].
    ///
    /// # Implementation notes
    ///
    /// The fast path (a whole small message, see `ReadHalf::small_message`) is inlined into
    /// the caller's loop; everything else goes through one call.
    #[inline]
    pub fn handle_read<'a>(
        &'a mut self,
        tx: &mut WriteHalf,
        input: &'a mut [u8],
    ) -> Result<Read<'a>, ProtocolError> {
        if tx.error.is_none() {
            self.assembler.release();
            if let Some((kind, range)) = self.small_message(tx, input) {
                let consumed = range.end;
                let payload = &input[range];
                let event = match kind {
                    MessageKind::Binary => Event::Binary(payload),
                    MessageKind::Text => match utf8::as_str(payload) {
                        Ok(text) => Event::Text(text),
                        Err(_) => return Err(tx.fail(ProtocolError::InvalidUtf8)),
                    },
                };
                return Ok(Read {
                    consumed,
                    event: Some(event),
                });
            }
            if input.is_empty() {
                // The end of every read: nothing to decode (the general path would say the same).
                return Ok(Read {
                    consumed: 0,
                    event: None,
                });
            }
        }
        self.handle_read_general(tx, input)
    }

    /// [`ReadHalf::handle_read`] past its fast path: any frame, any split, every error.
    #[inline(never)]
    fn handle_read_general<'a>(
        &'a mut self,
        tx: &mut WriteHalf,
        input: &'a mut [u8],
    ) -> Result<Read<'a>, ProtocolError> {
        if let Some(e) = &tx.error {
            return Err(e.clone());
        }
        self.assembler.release();
        let (consumed, pending) = match self.read_until_event(tx, input) {
            Ok(step) => step,
            Err(e) => return Err(tx.fail(e)),
        };
        let event = match pending {
            None => None,
            Some(Pending::Message(MessageKind::Binary, Src::Input(r))) => {
                Some(Event::Binary(&input[r]))
            }
            Some(Pending::Message(MessageKind::Binary, Src::Assembly)) => {
                Some(Event::Binary(self.assembler.payload()))
            }
            Some(Pending::Message(MessageKind::Text, src)) => {
                // A message handed out in place is validated here, once. Assembled text was
                // validated as it arrived (to fail fast) and is checked again to borrow it as str.
                let bytes = match src {
                    Src::Input(r) => &input[r],
                    Src::Assembly => self.assembler.payload(),
                };
                match utf8::as_str(bytes) {
                    Ok(text) => Some(Event::Text(text)),
                    Err(_) => return Err(tx.fail(ProtocolError::InvalidUtf8)),
                }
            }
            Some(Pending::Ping(r)) => Some(Event::Ping(&input[r])),
            Some(Pending::Pong(r)) => Some(Event::Pong(&input[r])),
            Some(Pending::Close(code, r)) => match std::str::from_utf8(&input[r]) {
                Ok(reason) => Some(Event::Close { code, reason }),
                Err(_) => return Err(tx.fail(ProtocolError::InvalidUtf8)),
            },
        };
        Ok(Read { consumed, event })
    }

    /// Whether a message is partly received (fragments or part of a frame seen).
    pub fn message_in_progress(&self) -> bool {
        self.assembler.in_progress()
    }

    fn rules(&self, role: Role) -> FrameRules {
        FrameRules {
            role,
            allowed_rsv: self.allowed_rsv,
            max_frame_size: self.config.limits.max_frame_size,
            dangerous_accept_unmasked_frames: self.config.dangerous_accept_unmasked_frames,
        }
    }

    /// The fast path for the many small messages of chat-like and market-data traffic: a whole
    /// message in one frame of at most 125 bytes at the front of `input` (FIN, no RSV bit, text
    /// or binary, masked exactly when the peer is a client, within the size limits), while no
    /// frame or message is in progress and the peer has not closed. Unmasks it in place and
    /// returns its kind and payload range. Anything else is `None`, untouched, for
    /// [`ReadHalf::read_until_event`], which also reports every error.
    #[inline]
    fn small_message(
        &self,
        tx: &WriteHalf,
        input: &mut [u8],
    ) -> Option<(MessageKind, Range<usize>)> {
        let [b0, b1, ..] = *input else {
            return None;
        };
        let kind = match b0 {
            0x81 => MessageKind::Text,
            0x82 => MessageKind::Binary,
            _ => return None,
        };
        let len = b1 & 0x7f;
        let masked = b1 & 0x80 != 0;
        if len > 125
            || masked != (tx.role == Role::Server)
            || self.frame.is_some()
            || self.assembler.in_progress()
            || tx.state == CloseState::Closed
            || u64::from(len) > self.config.limits.max_frame_size
            || u64::from(len) > self.config.limits.max_message_size
        {
            return None;
        }
        let start = if masked { 6 } else { 2 };
        let range = start..start + usize::from(len);
        let (head, rest) = input.split_at_mut_checked(start)?;
        let payload = rest.get_mut(..usize::from(len))?;
        if let [_, _, k0, k1, k2, k3] = *head {
            apply_mask(payload, [k0, k1, k2, k3], 0);
        }
        Some((kind, range))
    }

    fn read_until_event(
        &mut self,
        tx: &mut WriteHalf,
        input: &mut [u8],
    ) -> Result<(usize, Option<Pending>), ProtocolError> {
        let mut pos = 0;
        loop {
            if let Some(frame) = &mut self.frame {
                let avail = input.len() - pos;
                let take = usize::try_from(frame.remaining).map_or(avail, |r| r.min(avail));
                let chunk = &mut input[pos..pos + take];
                if let Some(key) = frame.mask {
                    apply_mask(chunk, key, (frame.seen & 3) as usize);
                }
                self.assembler.push(chunk)?;
                pos += take;
                frame.remaining -= take as u64;
                frame.seen += take as u64;
                if frame.remaining > 0 {
                    return Ok((pos, None));
                }
                let fin = frame.fin;
                self.frame = None;
                if fin {
                    let (kind, compressed) = self.assembler.finish()?;
                    if compressed {
                        let z = self.assembler.take_payload();
                        let out = self.assembler.inflate_buffer();
                        inflate(self.inflater.as_mut(), &z, &self.config, out)?;
                    }
                    return Ok((pos, Some(Pending::Message(kind, Src::Assembly))));
                }
                continue;
            }
            if tx.state == CloseState::Closed {
                // Nothing may follow the peer's close frame; discard whatever does.
                return Ok((input.len(), None));
            }
            let Some((header, hlen)) = FrameHeader::decode(&input[pos..])? else {
                return Ok((pos, None));
            };
            header.check(&self.rules(tx.role))?;
            let avail = (input.len() - pos - hlen) as u64;
            let start = pos + hlen;
            let kind = match header.opcode {
                OpCode::Control(control) => {
                    if avail < header.payload_len {
                        // Control frames are consumed whole (they are at most 139 bytes).
                        return Ok((pos, None));
                    }
                    let range = start..start + header.payload_len as usize; // <= 125, checked
                    if let Some(key) = header.mask {
                        apply_mask(&mut input[range.clone()], key, 0);
                    }
                    let end = range.end;
                    let pending = tx.on_control(control, range, input, self.config.auto_pong)?;
                    return Ok((end, Some(pending)));
                }
                OpCode::Data(Data::Text) => Some(MessageKind::Text),
                OpCode::Data(Data::Binary) => Some(MessageKind::Binary),
                OpCode::Data(_) => None,
            };
            let compressed = header.rsv & RSV1 != 0;
            // The fast path: a whole unfragmented message in the input is handed out in place.
            if let Some(kind) = kind {
                if header.fin && !self.assembler.in_progress() && avail >= header.payload_len {
                    if header.payload_len > self.config.limits.max_message_size {
                        return Err(ProtocolError::MessageTooLarge {
                            max: self.config.limits.max_message_size,
                        });
                    }
                    let range = start..start + header.payload_len as usize;
                    if let Some(key) = header.mask {
                        apply_mask(&mut input[range.clone()], key, 0);
                    }
                    if compressed {
                        let out = self.assembler.inflate_buffer();
                        inflate(
                            self.inflater.as_mut(),
                            &input[range.clone()],
                            &self.config,
                            out,
                        )?;
                        return Ok((range.end, Some(Pending::Message(kind, Src::Assembly))));
                    }
                    return Ok((range.end, Some(Pending::Message(kind, Src::Input(range)))));
                }
            }
            self.assembler.begin_frame(
                kind,
                compressed,
                header.payload_len,
                &self.config.limits,
            )?;
            pos = start;
            self.frame = Some(PartialFrame {
                fin: header.fin,
                mask: header.mask,
                remaining: header.payload_len,
                seen: 0,
            });
        }
    }
}

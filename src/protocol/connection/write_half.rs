//! The sending half's methods: frame encoding, masking, automatic replies and the close
//! handshake's sending side (the type itself is in the parent module).

use super::*;

impl WriteHalf {
    /// Replaces the client's masking key generator (for tests and reproducible captures; the
    /// counterpart of Node ws's `generateMask`). Predictable keys break RFC 6455 §5.3 on the
    /// open web. No effect on a server.
    pub fn dangerous_set_mask_generator(
        &mut self,
        generator: impl FnMut() -> [u8; 4] + Send + 'static,
    ) {
        if self.role == Role::Client {
            self.out.masker = Some(Masker::Custom(Box::new(generator)));
        }
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Where the closing handshake stands.
    pub fn close_state(&self) -> CloseState {
        self.state
    }

    /// The error that failed the connection, if any.
    pub fn error(&self) -> Option<&ProtocolError> {
        self.error.as_ref()
    }

    /// Whether automatic replies wait in [`WriteHalf::poll_transmit`].
    pub fn wants_transmit(&self) -> bool {
        !self.out.transmit.is_empty()
    }

    /// Moves queued automatic replies to `out` and returns how many bytes were appended.
    #[must_use = "the appended bytes must be written to the peer"]
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        let transmit = &mut self.out.transmit;
        let n = transmit.len();
        if n == 0 {
            return 0; // the common case, once per event: touch nothing
        }
        out.append(transmit);
        if transmit.capacity() > 1024 {
            *transmit = Vec::new();
        }
        n
    }

    /// Drops the queued automatic replies (an engine that must not queue more for a peer that
    /// does not read). A queued close reply is kept.
    pub fn discard_transmit(&mut self) {
        if self.state == CloseState::Open {
            // Freed rather than kept when large, as `poll_transmit` does (which no longer looks
            // at the capacity when nothing waits).
            self.out.transmit = Vec::new();
        }
    }

    pub(super) fn on_control(
        &mut self,
        control: Control,
        range: Range<usize>,
        input: &[u8],
        auto_pong: bool,
    ) -> Result<Pending, ProtocolError> {
        match control {
            Control::Ping => {
                if auto_pong && self.state == CloseState::Open {
                    self.out.queue(OpCode::PONG, &input[range.clone()]);
                }
                Ok(Pending::Ping(range))
            }
            Control::Pong => Ok(Pending::Pong(range)),
            Control::Close => {
                let (code, reason) = close::parse_close_payload(&input[range.clone()])?;
                let reason_start = range.end - reason.len();
                if self.state == CloseState::Open {
                    // Echo the code (RFC 6455 §5.5.1); an empty close is answered with an empty one.
                    let mut payload = Vec::with_capacity(2);
                    close::write_close_payload(code, "", &mut payload);
                    self.out.queue(OpCode::CLOSE, &payload);
                }
                self.state = CloseState::Closed;
                Ok(Pending::Close(code, reason_start..range.end))
            }
            Control::Reserved(b) => Err(ProtocolError::ReservedOpcode(b)),
        }
    }

    /// Records a protocol error, queues the close frame that reports it, returns it.
    pub(super) fn fail(&mut self, error: ProtocolError) -> ProtocolError {
        if self.state == CloseState::Open {
            let mut payload = Vec::new();
            close::write_close_payload(error.close_code(), &error.to_string(), &mut payload);
            self.out.queue(OpCode::CLOSE, &payload);
        }
        self.state = CloseState::Failed;
        self.error = Some(error.clone());
        error
    }

    #[inline]
    pub(super) fn check_open(&self) -> Result<(), SendError> {
        match self.state {
            CloseState::Open => Ok(()),
            _ => Err(SendError::Closing),
        }
    }

    /// Appends a text message in one frame.
    ///
    /// # Errors
    ///
    /// [`SendError::Closing`] after a close frame was sent or received, or after a failure;
    /// [`SendError::FragmentOrder`] while a fragmented message is being sent.
    pub fn send_text(&mut self, text: &str, out: &mut Vec<u8>) -> Result<(), SendError> {
        self.send_message(MessageKind::Text, text.as_bytes(), out)
    }

    /// Appends a binary message in one frame.
    ///
    /// # Errors
    ///
    /// As [`WriteHalf::send_text`].
    pub fn send_binary(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), SendError> {
        self.send_message(MessageKind::Binary, data, out)
    }

    /// Appends a message in one frame.
    ///
    /// # Errors
    ///
    /// As [`WriteHalf::send_text`].
    pub fn send_message(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        self.send_message_with(kind, payload, true, out)
    }

    /// Appends one fragment: `Some(kind)` starts a message, `None` continues the one started;
    /// `fin` ends it. Control frames may be sent between fragments.
    ///
    /// # Errors
    ///
    /// [`SendError::FragmentOrder`] for a start while a message is open or a continuation
    /// without one; [`SendError::Closing`] as in [`WriteHalf::send_text`].
    #[inline]
    pub fn send_fragment(
        &mut self,
        kind: Option<MessageKind>,
        payload: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        let opcode = self.begin_send(kind, fin)?;
        self.out.write_frame(opcode, fin, 0, payload, out);
        Ok(())
    }

    /// Whether permessage-deflate was negotiated.
    pub fn deflate_on(&self) -> bool {
        self.deflater.is_some()
    }

    /// Whether a whole message may be sent now: open, and not in the middle of a fragmented
    /// message (a frame built elsewhere, such as a broadcast's, may then be written as is).
    pub fn can_send_message(&self) -> bool {
        self.state == CloseState::Open && self.sending.is_none()
    }

    /// Whether this side compresses each message alone with a 32 KiB window
    /// (`send_no_context_takeover`, window 15): a message compressed once for many such
    /// connections is valid on each of them.
    pub fn compresses_alone(&self) -> bool {
        self.deflater
            .as_ref()
            .is_some_and(|d| d.params.send_no_context_takeover && d.params.send_window_bits >= 15)
    }

    /// Whether a whole message of `len` bytes would be compressed (permessage-deflate
    /// negotiated, size within the threshold and cap).
    #[inline]
    pub fn would_compress(&self, len: usize) -> bool {
        self.deflater
            .as_ref()
            .is_some_and(|d| d.should_compress(len))
    }

    /// Appends a whole message in one frame, compressed when permessage-deflate is negotiated,
    /// `compress` is true and the size is within the threshold and cap (ws's `compress` send
    /// option). Fragments ([`WriteHalf::send_fragment`]) are never compressed.
    ///
    /// # Errors
    ///
    /// As [`WriteHalf::send_fragment`].
    #[inline(always)]
    pub fn send_message_with(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        compress: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        if !(compress && self.would_compress(payload.len())) {
            return self.send_fragment(Some(kind), payload, true, out);
        }
        self.send_compressed(kind, payload, out)
    }

    /// [`WriteHalf::send_message_with`] for a message that is compressed: one call away, so that
    /// the plain send stays small enough to inline.
    #[inline(never)]
    pub(super) fn send_compressed(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        let opcode = self.begin_send(Some(kind), true)?;
        let Some(deflater) = self.deflater.as_mut() else {
            return Err(SendError::FragmentOrder); // unreachable: would_compress checked it
        };
        let mask = self.out.next_mask();
        write_compressed_frame(opcode, mask, out, |out| deflater.compress(payload, out));
        Ok(())
    }

    /// Takes the next frame's place for a whole message of `len` bytes to be compressed away
    /// from this connection (on another thread): `Some` when permessage-deflate is negotiated,
    /// `len` is at or above the threshold and the parameters let each message be compressed
    /// alone (`send_no_context_takeover`, window 15). The connection then counts the message as
    /// sent; the caller encodes it with [`DetachedFrame::encode`] and writes it in this place,
    /// before any frame sent after this call. `None` (nothing changed): send it with
    /// [`WriteHalf::send_message_with`]. The size cap of
    /// [`DeflateOptions::max_compress_size`] is not applied: the caller bounds what it detaches.
    ///
    /// # Errors
    ///
    /// As [`WriteHalf::send_fragment`].
    pub fn detach_compressed(
        &mut self,
        kind: MessageKind,
        len: usize,
    ) -> Result<Option<DetachedFrame>, SendError> {
        let Some(level) = self
            .deflater
            .as_ref()
            .filter(|d| d.detachable(len))
            .map(|d| d.options.level)
        else {
            return Ok(None);
        };
        let opcode = self.begin_send(Some(kind), true)?;
        Ok(Some(DetachedFrame {
            opcode,
            mask: self.out.next_mask(),
            level,
        }))
    }

    /// Checks a data frame may be sent now and returns its opcode.
    #[inline]
    pub(super) fn begin_send(
        &mut self,
        kind: Option<MessageKind>,
        fin: bool,
    ) -> Result<OpCode, SendError> {
        self.check_open()?;
        let opcode = match (kind, self.sending) {
            (Some(MessageKind::Text), None) => OpCode::TEXT,
            (Some(MessageKind::Binary), None) => OpCode::BINARY,
            (None, Some(_)) => OpCode::CONTINUE,
            _ => return Err(SendError::FragmentOrder),
        };
        self.sending = if fin { None } else { kind.or(self.sending) };
        Ok(opcode)
    }

    /// Encodes the header of a data frame of `len` bytes without copying the payload, for
    /// callers that write the payload from their own (possibly shared) buffer. In the client
    /// role the caller must mask the payload with [`EncodedHeader::mask`].
    ///
    /// # Errors
    ///
    /// As [`WriteHalf::send_fragment`].
    pub fn encode_data_header(
        &mut self,
        kind: Option<MessageKind>,
        fin: bool,
        len: usize,
    ) -> Result<EncodedHeader, SendError> {
        let opcode = self.begin_send(kind, fin)?;
        let header = FrameHeader {
            fin,
            rsv: 0,
            opcode,
            mask: self.out.next_mask(),
            payload_len: len as u64,
        };
        let mut buf = [0u8; MAX_HEADER_LEN];
        let len = header.encode(&mut buf) as u8;
        Ok(EncodedHeader {
            buf,
            len,
            mask: header.mask,
        })
    }

    /// Appends a ping.
    ///
    /// # Errors
    ///
    /// [`SendError::ControlTooLong`] over 125 bytes; [`SendError::Closing`].
    pub fn send_ping(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), SendError> {
        self.send_control(OpCode::PING, payload, out)
    }

    /// Appends a pong (unsolicited pongs serve as heartbeats, RFC 6455 §5.5.3).
    ///
    /// # Errors
    ///
    /// As [`WriteHalf::send_ping`].
    pub fn send_pong(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), SendError> {
        self.send_control(OpCode::PONG, payload, out)
    }

    pub(super) fn send_control(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        self.check_open()?;
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlTooLong);
        }
        self.out.write_frame(opcode, true, 0, payload, out);
        Ok(())
    }

    /// Starts the closing handshake: appends a close frame with `code` and `reason` (cut to 123
    /// bytes on a character boundary). [`CloseCode::NO_STATUS`] sends a close frame without a
    /// code. The peer's close frame then arrives as [`Event::Close`].
    ///
    /// # Errors
    ///
    /// [`SendError::InvalidCloseCode`] for a code that may not be sent;
    /// [`SendError::Closing`] when a close frame was already sent or received.
    pub fn send_close(
        &mut self,
        code: CloseCode,
        reason: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        if code != CloseCode::NO_STATUS && !code.is_valid_on_wire() {
            return Err(SendError::InvalidCloseCode(code.0));
        }
        self.check_open()?;
        let mut payload = Vec::with_capacity(2 + reason.len().min(close::MAX_REASON_LEN));
        close::write_close_payload(code, reason, &mut payload);
        self.out.write_frame(OpCode::CLOSE, true, 0, &payload, out);
        self.state = CloseState::CloseSent;
        Ok(())
    }
}

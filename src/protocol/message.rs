//! Message assembly: fragments (with control frames between them) into whole messages.

use crate::error::ProtocolError;
use crate::limits::Limits;
use crate::protocol::utf8::Utf8Validator;

/// The kind of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// UTF-8 text.
    Text,
    /// Arbitrary bytes.
    Binary,
}

/// A fragmented (or partially received) message in progress.
///
/// Payload bytes are appended as they arrive, so a frame split across reads is never buffered
/// twice, and text is validated as it arrives so that invalid UTF-8 fails at once.
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    /// The message in progress, if any.
    kind: Option<MessageKind>,
    /// RSV1 of the first frame (permessage-deflate).
    compressed: bool,
    /// Frames received so far for this message.
    fragments: u32,
    /// Payload bytes announced so far (headers seen, not only bytes received).
    announced: u64,
    /// Payload received so far.
    buf: Vec<u8>,
    utf8: Utf8Validator,
    /// The last delivered message still lives in `buf`; clear before the next use.
    delivered: bool,
}

/// Above this capacity the buffer is freed after a message rather than kept for the next one,
/// so that one large message does not pin memory on an idle connection.
const KEEP_CAPACITY: usize = 64 << 10;

impl Assembler {
    /// Whether a message is in progress (a frame without FIN was seen, or a frame is partial).
    #[inline]
    pub(crate) fn in_progress(&self) -> bool {
        self.kind.is_some()
    }

    /// Forgets a message that was handed out.
    #[inline]
    pub(crate) fn release(&mut self) {
        if self.delivered {
            self.delivered = false;
            self.buf.clear();
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf = Vec::new();
            }
        }
    }

    /// Accounts for a new data frame header of `len` payload bytes and checks ordering and limits.
    /// `kind` is `None` for a continuation frame.
    pub(crate) fn begin_frame(
        &mut self,
        kind: Option<MessageKind>,
        compressed: bool,
        len: u64,
        limits: &Limits,
    ) -> Result<(), ProtocolError> {
        match (kind, self.kind) {
            (None, None) => return Err(ProtocolError::UnexpectedContinuation),
            (Some(_), Some(_)) => return Err(ProtocolError::ExpectedContinuation),
            (Some(kind), None) => {
                self.kind = Some(kind);
                self.compressed = compressed;
                self.fragments = 0;
                self.announced = 0;
                self.utf8.reset();
            }
            (None, Some(_)) => {
                if compressed {
                    // RSV1 is only set on the first frame of a compressed message (RFC 7692 §6.1).
                    return Err(ProtocolError::ReservedBits);
                }
            }
        }
        self.fragments += 1;
        if self.fragments > limits.max_fragments {
            return Err(ProtocolError::TooManyFragments {
                max: limits.max_fragments,
            });
        }
        self.announced = self.announced.saturating_add(len);
        if self.announced > limits.max_message_size {
            return Err(ProtocolError::MessageTooLarge {
                max: limits.max_message_size,
            });
        }
        Ok(())
    }

    /// Appends received (unmasked) payload bytes of the current message.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<(), ProtocolError> {
        if self.kind == Some(MessageKind::Text) && !self.compressed {
            self.utf8
                .feed(bytes)
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// Ends the message after its FIN frame was fully received. The payload stays in the
    /// buffer until [`Assembler::release`].
    pub(crate) fn finish(&mut self) -> Result<(MessageKind, bool), ProtocolError> {
        let kind = self
            .kind
            .take()
            .ok_or(ProtocolError::Internal("finish without message"))?;
        if kind == MessageKind::Text && !self.compressed {
            self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        self.delivered = true;
        Ok((kind, self.compressed))
    }

    /// Takes the assembled payload out (a compressed message about to be inflated).
    pub(crate) fn take_payload(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// The buffer to inflate a message into: emptied, and handed out like an assembled message
    /// (freed or cleared on the next [`Assembler::release`]). No message may be in progress.
    pub(crate) fn inflate_buffer(&mut self) -> &mut Vec<u8> {
        self.delivered = true;
        self.release();
        self.delivered = true;
        &mut self.buf
    }

    /// The assembled payload (valid after [`Assembler::finish`]).
    pub(crate) fn payload(&self) -> &[u8] {
        &self.buf
    }

    /// Heap bytes held.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_rules() {
        let limits = Limits::default();
        let mut a = Assembler::default();
        assert_eq!(
            a.begin_frame(None, false, 1, &limits),
            Err(ProtocolError::UnexpectedContinuation)
        );
        a.begin_frame(Some(MessageKind::Text), false, 1, &limits)
            .unwrap();
        assert_eq!(
            a.begin_frame(Some(MessageKind::Binary), false, 1, &limits),
            Err(ProtocolError::ExpectedContinuation)
        );
        assert_eq!(
            a.begin_frame(None, true, 1, &limits),
            Err(ProtocolError::ReservedBits)
        );
    }

    #[test]
    fn limits_are_checked_on_headers() {
        let limits = Limits {
            max_message_size: 10,
            max_fragments: 3,
            ..Limits::default()
        };
        let mut a = Assembler::default();
        a.begin_frame(Some(MessageKind::Binary), false, 6, &limits)
            .unwrap();
        assert_eq!(
            a.begin_frame(None, false, 5, &limits),
            Err(ProtocolError::MessageTooLarge { max: 10 })
        );
        let mut a = Assembler::default();
        a.begin_frame(Some(MessageKind::Binary), false, 0, &limits)
            .unwrap();
        a.begin_frame(None, false, 0, &limits).unwrap();
        a.begin_frame(None, false, 0, &limits).unwrap();
        assert_eq!(
            a.begin_frame(None, false, 0, &limits),
            Err(ProtocolError::TooManyFragments { max: 3 })
        );
    }

    #[test]
    fn text_fails_fast_and_at_finish() {
        let limits = Limits::default();
        let mut a = Assembler::default();
        a.begin_frame(Some(MessageKind::Text), false, 10, &limits)
            .unwrap();
        a.push(b"ok \xce").unwrap();
        assert_eq!(a.push(b"\xff"), Err(ProtocolError::InvalidUtf8));
        let mut a = Assembler::default();
        a.begin_frame(Some(MessageKind::Text), false, 1, &limits)
            .unwrap();
        a.push(b"\xe2\x82").unwrap();
        assert_eq!(a.finish(), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn large_buffer_is_freed_after_release() {
        let limits = Limits::default();
        let mut a = Assembler::default();
        a.begin_frame(Some(MessageKind::Binary), false, 100_000, &limits)
            .unwrap();
        a.push(&vec![7; 100_000]).unwrap();
        assert_eq!(a.finish(), Ok((MessageKind::Binary, false)));
        assert_eq!(a.payload().len(), 100_000);
        a.release();
        assert_eq!(a.capacity(), 0);
        assert!(!a.in_progress());
    }
}

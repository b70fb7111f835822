//! A published message: its frame built once, compressed at most once, shared by every
//! recipient's queue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::{BufMut, Bytes, BytesMut};

use crate::handler::{ConnId, Message};
use crate::protocol::deflate::codec::DeflateState;
use crate::protocol::deflate::{DeflateOptions, Params};
use crate::protocol::frame::{FrameHeader, OpCode, MAX_HEADER_LEN, RSV1};
use crate::protocol::MessageKind;

/// Where a publish goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Audience {
    /// The subscribers of one topic.
    Topic(Arc<str>),
    /// Every open accepted connection of the server.
    All,
}

/// One publish, shared (`Arc`) by the workers that deliver it.
///
/// `plain` is the whole unmasked frame (header and payload) that a server sends: recipients
/// that do not compress get a slice of it, no copy. `deflated` is the frame compressed once
/// (RSV1 set), built by the first worker that has a recipient compressing messages alone; every
/// other such recipient gets the same bytes.
#[derive(Debug)]
pub(crate) struct Published {
    pub(crate) audience: Audience,
    /// The conflation key the publisher gave, if any.
    pub(crate) key: Option<Arc<str>>,
    pub(crate) kind: MessageKind,
    /// Whether recipients that negotiated permessage-deflate get it compressed.
    pub(crate) compress: bool,
    /// A connection that does not get it (the publisher, when it is excluded or already has
    /// its copy).
    pub(crate) exclude: Option<ConnId>,
    /// Its number in the last-value store (`broadcast/last_value.rs`), set before it goes to
    /// any worker; 0 for a topic that keeps no last value.
    pub(crate) last_value_seq: AtomicU64,
    plain: Bytes,
    header_len: usize,
    deflated: OnceLock<Bytes>,
}

impl Published {
    /// Builds the frame once: one allocation for header and payload together.
    pub(crate) fn new(
        audience: Audience,
        key: Option<Arc<str>>,
        message: Message<'_>,
        compress: bool,
        exclude: Option<ConnId>,
    ) -> Arc<Self> {
        let payload = message.as_bytes();
        let kind = message.kind();
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: opcode(kind),
            mask: None,
            payload_len: payload.len() as u64,
        };
        let mut head = [0u8; MAX_HEADER_LEN];
        let header_len = header.encode(&mut head);
        let mut buf = BytesMut::with_capacity(header_len + payload.len());
        buf.put_slice(&head[..header_len]);
        buf.put_slice(payload);
        Arc::new(Published {
            audience,
            key,
            kind,
            compress,
            exclude,
            last_value_seq: AtomicU64::new(0),
            plain: buf.freeze(),
            header_len,
            deflated: OnceLock::new(),
        })
    }

    /// Its number in the last-value store; 0 if it has none.
    pub(crate) fn last_value_seq(&self) -> u64 {
        self.last_value_seq.load(Ordering::Relaxed)
    }

    /// The uncompressed, unmasked frame.
    pub(crate) fn plain(&self) -> &Bytes {
        &self.plain
    }

    /// The message payload.
    pub(crate) fn payload(&self) -> &[u8] {
        &self.plain[self.header_len..]
    }

    /// The message payload, sharing the frame's bytes (for the backplane).
    pub(crate) fn payload_bytes(&self) -> Bytes {
        self.plain.slice(self.header_len..)
    }

    /// The frame compressed on its own with a 32 KiB window (valid for every recipient whose
    /// side compresses each message alone), built on the first call and shared after it.
    pub(crate) fn deflated(&self, options: &DeflateOptions) -> &Bytes {
        self.deflated.get_or_init(|| {
            let params = Params {
                send_window_bits: 15,
                recv_window_bits: 15,
                send_no_context_takeover: true,
                recv_no_context_takeover: true,
            };
            let mut body = Vec::with_capacity(self.payload().len() / 2 + 64);
            DeflateState::new(params, options).compress(self.payload(), &mut body);
            let header = FrameHeader {
                fin: true,
                rsv: RSV1,
                opcode: opcode(self.kind),
                mask: None,
                payload_len: body.len() as u64,
            };
            let mut head = [0u8; MAX_HEADER_LEN];
            let n = header.encode(&mut head);
            let mut buf = BytesMut::with_capacity(n + body.len());
            buf.put_slice(&head[..n]);
            buf.put_slice(&body);
            buf.freeze()
        })
    }

    /// Whether the compressed frame was built.
    #[cfg(test)]
    pub(crate) fn is_deflated(&self) -> bool {
        self.deflated.get().is_some()
    }
}

fn opcode(kind: MessageKind) -> OpCode {
    match kind {
        MessageKind::Text => OpCode::TEXT,
        MessageKind::Binary => OpCode::BINARY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Config, Connection, Event, Role};

    fn client_with_deflate() -> Connection {
        let mut c = Connection::new(Role::Client, Config::default());
        let params = Params {
            send_window_bits: 15,
            recv_window_bits: 15,
            send_no_context_takeover: true,
            // As browsers do: one inflate stream, never reset.
            recv_no_context_takeover: false,
        };
        c.set_deflate(params, Arc::new(DeflateOptions::default()));
        c
    }

    #[test]
    fn the_plain_frame_is_a_valid_server_frame() {
        for len in [0usize, 5, 125, 126, 65_535, 65_536, 200_000] {
            let text = "x".repeat(len);
            let p = Published::new(Audience::All, None, Message::Text(&text), false, None);
            assert_eq!(p.payload(), text.as_bytes());
            let mut client = Connection::new(Role::Client, Config::default());
            let mut wire = p.plain().to_vec();
            let n = wire.len();
            let read = client.handle_read(&mut wire).unwrap();
            assert_eq!(read.consumed, n);
            assert_eq!(read.event, Some(Event::Text(&text)));
        }
    }

    #[test]
    fn the_compressed_frame_is_built_once_and_inflates_on_a_stream_that_never_resets() {
        let mut client = client_with_deflate();
        let options = DeflateOptions::default();
        for i in 0..5 {
            let text = format!("{{\"symbol\":\"AAPL\",\"seq\":{i},\"px\":1}}").repeat(100);
            let p = Published::new(
                Audience::Topic("t".into()),
                None,
                Message::Text(&text),
                true,
                None,
            );
            assert!(!p.is_deflated());
            let first = p.deflated(&options).clone();
            let again = p.deflated(&options).clone();
            assert_eq!(first.as_ptr(), again.as_ptr(), "compressed once, shared");
            assert!(first.len() < p.plain().len() / 4);
            assert_eq!(first[0] & 0x40, 0x40, "RSV1 set");
            let mut wire = first.to_vec();
            let read = client.handle_read(&mut wire).unwrap();
            assert_eq!(read.event, Some(Event::Text(&text)));
        }
    }
}

//! A connection's TLS layer, between its socket and the worker: ciphertext read from the socket
//! is fed in and plaintext comes out for the protocol core; plaintext from the connection's
//! queue is sealed into records that wait in a queue of their own (`wire`) for the socket.
//!
//! The layer does no IO itself, so both backends drive it the same way: epoll writes `wire`
//! with `writev`, io_uring sends it as it sends a plain connection's queue. Plaintext leaves the
//! connection's queue only as fast as `wire` drains (at most [`WIRE_MAX`] bytes of records
//! wait), so backpressure, `on_drain` and the read pause work on the plaintext queue as they do
//! without TLS.

use std::io::{self, Read, Write};

use crate::engine::outbound::Outbound;

/// Sealed records waiting for the socket, at most (plus one record): more plaintext is taken
/// from the connection's queue only below it.
pub(crate) const WIRE_MAX: usize = 64 << 10;
/// Ciphertext fed in before its plaintext is read, at most (rustls stops taking records once
/// 16 KiB of plaintext wait; what a read brought beyond that is kept here until then).
const PENDING_MAX: usize = 256 << 10;

/// The answer to a plain HTTP request on a TLS port.
const HTTP_ON_TLS_PORT: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\
Content-Length: 54\r\nConnection: close\r\n\r\nThis port speaks TLS: use https:// or wss:// for it.\r\n";

/// What feeding ciphertext in found wrong.
#[derive(Debug)]
pub(crate) enum TlsFailure {
    /// The first bytes are no TLS record (a plain HTTP request, most likely): the answer is
    /// queued in plain text.
    NotTls,
    /// The TLS session failed (a bad record, a refused certificate, an alert from the peer):
    /// the alert for the peer, if any, is queued.
    Tls(rustls::Error),
    /// More ciphertext than [`PENDING_MAX`] waits unread.
    Overfull,
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsFailure::NotTls => f.write_str("tls: the peer spoke no TLS"),
            TlsFailure::Tls(e) => write!(f, "tls: {e}"),
            TlsFailure::Overfull => f.write_str("tls: too much unread input"),
        }
    }
}

/// What reading plaintext gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Plain {
    /// `n` bytes.
    Bytes(usize),
    /// Nothing now.
    Empty,
    /// The peer closed the TLS session (`close_notify`): end of input.
    Closed,
}

/// One connection's TLS session and its sealed records.
pub(crate) struct Tls {
    conn: rustls::Connection,
    /// Sealed records (and handshake messages) not yet written to the socket.
    pub(crate) wire: Outbound,
    /// Ciphertext read but not yet taken by rustls.
    pending: Vec<u8>,
    /// Plaintext bytes taken from the connection's queue since [`Tls::take_sealed`].
    sealed: usize,
    /// No byte was fed yet (the check for a plain request).
    fresh: bool,
    /// `close_notify` is queued.
    notified: bool,
    /// The session failed (an alert was queued, or the peer spoke no TLS): nothing more is
    /// fed in or sealed.
    failed: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("handshaking", &self.conn.is_handshaking())
            .field("wire", &self.wire.len())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

/// Writes plaintext into rustls: at most `left` bytes, gathered into one record where they fit.
struct Sealer<'a> {
    conn: &'a mut rustls::Connection,
    left: usize,
    gather: &'a mut Vec<u8>,
}

impl Write for Sealer<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // Small pieces (a frame header, a short broadcast frame) are gathered so that they
        // share records instead of paying for one each.
        let first = bufs.iter().find(|b| !b.is_empty()).map_or(0, |b| b.len());
        let n = if first >= 16 << 10 || bufs.len() == 1 {
            let b = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            self.conn.writer().write(&b[..b.len().min(self.left)])?
        } else {
            self.gather.clear();
            for b in bufs {
                let room = self.left.min(64 << 10) - self.gather.len();
                if room == 0 {
                    break;
                }
                self.gather.extend_from_slice(&b[..b.len().min(room)]);
            }
            self.conn.writer().write(self.gather)?
        };
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.left -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Tls {
    /// A server session for a connection just accepted.
    pub(crate) fn server(
        config: &std::sync::Arc<rustls::ServerConfig>,
    ) -> Result<Tls, rustls::Error> {
        let conn = rustls::ServerConnection::new(config.clone())?;
        Ok(Tls::new(conn.into()))
    }

    /// A server session another server began (its TLS handshake done, perhaps plaintext
    /// already buffered), moved onto a worker by `ServerHandle::adopt`.
    pub(crate) fn adopted(conn: rustls::ServerConnection) -> Tls {
        let mut tls = Tls::new(conn.into());
        tls.fresh = false;
        tls
    }

    /// A client session (made by the connector, for the URL's host).
    pub(crate) fn client(conn: rustls::ClientConnection) -> Tls {
        let mut tls = Tls::new(conn.into());
        tls.fresh = false;
        // The ClientHello waits in rustls: move it out now.
        tls.encode(&mut Vec::new());
        tls
    }

    fn new(mut conn: rustls::Connection) -> Tls {
        // Sealed records leave rustls at once (into `wire`); this bounds what the handshake
        // may buffer before it is done.
        conn.set_buffer_limit(Some(WIRE_MAX));
        Tls {
            conn,
            wire: Outbound::default(),
            pending: Vec::new(),
            sealed: 0,
            fresh: true,
            notified: false,
            failed: false,
        }
    }

    /// Whether the TLS handshake is still going on.
    #[cfg(test)]
    pub(crate) fn handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Feeds ciphertext the socket gave. What rustls answers (handshake messages, alerts) is
    /// moved into `wire`; plaintext is read with [`Tls::read_plain`].
    pub(crate) fn feed(&mut self, data: &[u8], scratch: &mut Vec<u8>) -> Result<(), TlsFailure> {
        if self.failed {
            return Ok(());
        }
        let r = self.feed_inner(data, scratch);
        self.failed = r.is_err();
        r
    }

    fn feed_inner(&mut self, data: &[u8], scratch: &mut Vec<u8>) -> Result<(), TlsFailure> {
        if self.fresh && !data.is_empty() {
            self.fresh = false;
            // A TLS connection starts with a handshake record (content type 22).
            if data[0] != 0x16 {
                self.wire.push_copy(HTTP_ON_TLS_PORT);
                return Err(TlsFailure::NotTls);
            }
        }
        if !self.pending.is_empty() {
            if self.pending.len() + data.len() > PENDING_MAX {
                return Err(TlsFailure::Overfull);
            }
            self.pending.extend_from_slice(data);
            return self.refeed(scratch);
        }
        let mut rest = data;
        let r = self.take(&mut rest, scratch);
        if !rest.is_empty() {
            self.pending.extend_from_slice(rest);
        }
        r
    }

    /// Feeds ciphertext kept earlier, as far as rustls takes it now.
    pub(crate) fn refeed(&mut self, scratch: &mut Vec<u8>) -> Result<(), TlsFailure> {
        if self.pending.is_empty() || self.failed {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let mut rest = &pending[..];
        let r = self.take(&mut rest, scratch);
        if !rest.is_empty() {
            self.pending = rest.to_vec();
        }
        self.failed = r.is_err();
        r
    }

    /// Ciphertext bytes waiting for rustls to take them.
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Whether ciphertext waits for rustls to take it.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn take(&mut self, rest: &mut &[u8], scratch: &mut Vec<u8>) -> Result<(), TlsFailure> {
        let result = loop {
            if rest.is_empty() {
                break Ok(());
            }
            match self.conn.read_tls(rest) {
                Ok(0) => break Ok(()),
                Ok(_) => {}
                // Its plaintext buffer is full (read it first) or a record is too long.
                Err(e) if e.kind() == io::ErrorKind::Other => break Ok(()),
                Err(e) => {
                    break Err(TlsFailure::Tls(rustls::Error::General(e.to_string())));
                }
            }
            if let Err(e) = self.conn.process_new_packets() {
                break Err(TlsFailure::Tls(e));
            }
        };
        // Handshake messages, or the alert that tells the peer why it failed.
        self.encode(scratch);
        result
    }

    /// Reads plaintext into `buf`.
    pub(crate) fn read_plain(&mut self, buf: &mut [u8]) -> Plain {
        match self.conn.reader().read(buf) {
            Ok(0) if buf.is_empty() => Plain::Empty,
            Ok(0) => Plain::Closed,
            Ok(n) => Plain::Bytes(n),
            // WouldBlock: nothing now; UnexpectedEof: TCP ended without close_notify, which
            // the socket reports by itself.
            Err(_) => Plain::Empty,
        }
    }

    /// Seals plaintext from the head of `out` while fewer than [`WIRE_MAX`] bytes of records
    /// wait, and moves the records into `wire`. Returns the plaintext bytes taken.
    pub(crate) fn seal(&mut self, out: &mut Outbound, scratch: &mut Vec<u8>) -> usize {
        let mut taken = 0;
        while !self.failed && !out.is_empty() && self.wire.len() < WIRE_MAX {
            let mut sealer = Sealer {
                conn: &mut self.conn,
                left: WIRE_MAX - self.wire.len(),
                gather: scratch,
            };
            let n = out.write_to(&mut sealer).unwrap_or(0);
            self.encode(scratch);
            if n == 0 {
                break;
            }
            taken += n;
        }
        self.sealed += taken;
        taken
    }

    /// Plaintext sealed since the last call (what the connection's queue counts as written).
    pub(crate) fn take_sealed(&mut self) -> usize {
        std::mem::take(&mut self.sealed)
    }

    /// Whether `close_notify` is queued, or cannot be (the session failed).
    pub(crate) fn notified(&self) -> bool {
        self.notified || self.failed
    }

    /// Queues `close_notify` (once), sealed behind everything before it.
    pub(crate) fn notify_close(&mut self, scratch: &mut Vec<u8>) {
        if !self.failed && !std::mem::replace(&mut self.notified, true) {
            self.conn.send_close_notify();
            self.encode(scratch);
        }
    }

    /// Moves what rustls has to send into `wire`.
    fn encode(&mut self, scratch: &mut Vec<u8>) {
        while self.conn.wants_write() {
            scratch.clear();
            match self.conn.write_tls(scratch) {
                Ok(0) | Err(_) => break,
                Ok(_) if scratch.len() >= 4096 => {
                    self.wire.push_owned(std::mem::take(scratch));
                }
                Ok(_) => self.wire.push_copy(scratch),
            }
        }
        scratch.clear();
    }
}

/// The alert a plain server answers a TLS ClientHello with (fatal `protocol_version`), so that
/// the client reports a TLS error instead of waiting or reading an HTTP answer as a record.
pub(crate) const TLS_ON_PLAIN_PORT: &[u8] = &[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46];

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Tls, Tls) {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = key.cert.pem();
        let pem = key.key_pair.serialize_pem();
        let server = crate::tls::ServerTls::from_pem(cert.as_bytes(), pem.as_bytes()).unwrap();
        let client = crate::tls::ClientTls::with_ca_pem(cert.as_bytes()).unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let c = rustls::ClientConnection::new(client.config().clone(), name).unwrap();
        (Tls::server(server.config()).unwrap(), Tls::client(c))
    }

    /// Moves what `from` has for the wire into `to`.
    fn carry(from: &mut Tls, to: &mut Tls, scratch: &mut Vec<u8>) -> Result<(), TlsFailure> {
        let mut bytes = Vec::new();
        from.wire.write_to(&mut bytes).unwrap();
        to.feed(&bytes, scratch)
    }

    fn read_all(t: &mut Tls, scratch: &mut Vec<u8>) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = vec![0; 4096];
        loop {
            match t.read_plain(&mut buf) {
                Plain::Bytes(n) => got.extend_from_slice(&buf[..n]),
                _ if t.has_pending() => t.refeed(scratch).unwrap(),
                _ => return got,
            }
        }
    }

    #[test]
    fn handshake_then_queued_plaintext_arrives_whole_and_in_order() {
        let (mut s, mut c) = pair();
        let mut scratch = Vec::new();
        // The client's request is queued before its handshake is done.
        let mut out = Outbound::default();
        out.push_copy(b"GET / HTTP/1.1\r\n\r\n");
        c.seal(&mut out, &mut scratch);
        for _ in 0..4 {
            carry(&mut c, &mut s, &mut scratch).unwrap();
            carry(&mut s, &mut c, &mut scratch).unwrap();
        }
        assert!(!s.handshaking() && !c.handshaking());
        assert_eq!(read_all(&mut s, &mut scratch), b"GET / HTTP/1.1\r\n\r\n");
        // 1 MiB of numbered pieces, more than the wire holds at once.
        let data: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
        let mut out = Outbound::default();
        for chunk in data.chunks(1000) {
            out.push_copy(chunk);
        }
        let mut got = Vec::new();
        let mut sealed = 0;
        while !out.is_empty() || !s.wire.is_empty() {
            sealed += s.seal(&mut out, &mut scratch);
            assert!(s.wire.len() <= WIRE_MAX + (17 << 10), "{}", s.wire.len());
            carry(&mut s, &mut c, &mut scratch).unwrap();
            got.extend(read_all(&mut c, &mut scratch));
        }
        assert_eq!(sealed, data.len());
        assert_eq!(s.take_sealed(), data.len());
        assert_eq!(got, data);
        s.notify_close(&mut scratch);
        carry(&mut s, &mut c, &mut scratch).unwrap();
        assert_eq!(c.read_plain(&mut [0; 16]), Plain::Closed);
    }

    #[test]
    fn a_plain_request_is_answered_in_plain_text() {
        let (mut s, _) = pair();
        let mut scratch = Vec::new();
        let r = s.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &mut scratch);
        assert!(matches!(r, Err(TlsFailure::NotTls)));
        let mut bytes = Vec::new();
        s.wire.write_to(&mut bytes).unwrap();
        assert!(bytes.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
        let body = &bytes[bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
        assert_eq!(body.len(), 54, "{:?}", String::from_utf8_lossy(body));
    }

    #[test]
    fn a_malformed_hello_fails_with_an_alert() {
        let (mut s, _) = pair();
        let mut scratch = Vec::new();
        // A ClientHello record whose hello is empty.
        let r = s.feed(&[0x16, 3, 1, 0, 4, 1, 0, 0, 0], &mut scratch);
        assert!(matches!(r, Err(TlsFailure::Tls(_))), "{r:?}");
        let mut bytes = Vec::new();
        s.wire.write_to(&mut bytes).unwrap();
        assert_eq!(
            bytes.first(),
            Some(&0x15),
            "an alert record: {bytes:?} after {r:?}"
        );
    }
}

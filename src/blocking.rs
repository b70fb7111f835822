//! A small blocking client for scripts, tests and examples: one thread, one socket.
//! `docs/client.md` describes its options, redirects and errors.
//!
//! ```no_run
//! let mut ws = wsx::blocking::connect("ws://127.0.0.1:9001/")?;
//! ws.send_text("hello")?;
//! if let wsx::blocking::Message::Text(reply) = ws.recv()? {
//!     println!("{reply}");
//! }
//! ws.close(wsx::CloseCode::NORMAL, "bye")?;
//! # Ok::<(), wsx::client::ClientError>(())
//! ```

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::client::{ClientError, ClientOptions, ConnectStep, Connector, Url};
use crate::protocol::handshake::UpgradeResponse;
use crate::protocol::{CloseCode, CloseState, Connection, Event, MessageKind};

/// Read buffer size.
const BUF: usize = 64 << 10;

/// A received message or control frame, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping (already answered).
    Ping(Vec<u8>),
    /// A pong.
    Pong(Vec<u8>),
    /// The peer's close frame; the closing handshake is complete once this is returned.
    Close(CloseCode, String),
}

impl From<Event<'_>> for Message {
    fn from(e: Event<'_>) -> Self {
        match e {
            Event::Text(t) => Message::Text(t.to_owned()),
            Event::Binary(b) => Message::Binary(b.to_vec()),
            Event::Ping(p) => Message::Ping(p.to_vec()),
            Event::Pong(p) => Message::Pong(p.to_vec()),
            Event::Close { code, reason } => Message::Close(code, reason.to_owned()),
        }
    }
}

/// The byte stream under a connection: TCP, or TLS over TCP for `wss://`.
#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => match s.read(buf) {
                // A peer that closes TCP without close_notify ends the stream all the same.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                r => r,
            },
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// An IO error, or the TLS error it carries (rustls reports TLS failures through `io::Error`).
fn io_error(e: io::Error) -> ClientError {
    if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
        let inner = e.into_inner().expect("checked above");
        return ClientError::Tls(*inner.downcast::<rustls::Error>().expect("checked above"));
    }
    if is_timeout(&e) {
        return ClientError::Timeout;
    }
    ClientError::Io(e)
}

/// Runs the TLS handshake over a plain `stream` to its end within the deadline (already set on
/// the socket); `early` holds bytes of the server's already read from the socket.
fn tls_handshake(
    mut session: rustls::ClientConnection,
    stream: Stream,
    mut early: &[u8],
) -> Result<Stream, ClientError> {
    let mut tcp = match stream {
        Stream::Plain(tcp) => tcp,
        tls @ Stream::Tls(_) => return Ok(tls),
    };
    while !early.is_empty() {
        session.read_tls(&mut early).map_err(io_error)?;
        session.process_new_packets()?;
    }
    while session.is_handshaking() {
        match session.complete_io(&mut tcp) {
            Ok((0, 0)) if session.is_handshaking() && !session.wants_write() => {
                return Err(ClientError::Closed)
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(ClientError::Closed),
            Err(e) => return Err(io_error(e)),
        }
    }
    Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(
        session, tcp,
    ))))
}

/// An open client connection.
#[derive(Debug)]
pub struct WebSocket {
    stream: Stream,
    conn: Connection,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    out: Vec<u8>,
    response: UpgradeResponse,
    url: Url,
    eof: bool,
}

/// Connects to `url` with default options.
///
/// # Errors
///
/// A [`ClientError`] saying what failed: the URL, the TCP connection, the proxy, or the
/// handshake (a non-101 answer carries its status and the first bytes of its body).
pub fn connect(url: &str) -> Result<WebSocket, ClientError> {
    connect_with(url, &ClientOptions::default())
}

/// Connects to `url` with `options`, following redirects as they allow.
///
/// # Errors
///
/// As [`connect`]; [`ClientError::Timeout`] when it takes longer than
/// [`ClientOptions::handshake_timeout`].
pub fn connect_with(url: &str, options: &ClientOptions) -> Result<WebSocket, ClientError> {
    let deadline = Instant::now() + options.handshake_timeout;
    let mut connector = Connector::new(Url::parse(url)?, options.clone())?;
    loop {
        let tcp = open_tcp(&connector.connect_addr(), options, deadline)?;
        // For wss://, TLS carries the upgrade: from the start without a proxy, from
        // `ConnectStep::Tunnel` on with one (the tunnel carries TLS end to end).
        let mut tls = connector.tls_session()?;
        let mut stream = Stream::Plain(tcp);
        set_deadline(stream.tcp(), deadline)?;
        if !connector.proxied() {
            if let Some(session) = tls.take() {
                stream = tls_handshake(session, stream, &[])?;
            }
        }
        let mut out = Vec::new();
        connector.start(&mut out)?;
        stream.write_all(&out).map_err(io_error)?;
        let mut buf = vec![0u8; BUF];
        let mut end = 0;
        loop {
            set_deadline(stream.tcp(), deadline)?;
            if end == buf.len() {
                return Err(ClientError::Handshake(
                    crate::HandshakeError::InvalidResponse("response head too large"),
                ));
            }
            let n = match stream.read(&mut buf[end..]) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(e)),
            };
            end += n;
            out.clear();
            let step = connector.handle_read(&buf[..end], &mut out)?;
            if !out.is_empty() {
                stream.write_all(&out).map_err(io_error)?;
            }
            match step {
                ConnectStep::NeedMore { consumed } => {
                    buf.copy_within(consumed..end, 0);
                    end -= consumed;
                }
                ConnectStep::Tunnel { consumed } => {
                    let Some(session) = tls.take() else {
                        return Err(ClientError::Handshake(
                            crate::HandshakeError::InvalidResponse("a tunnel without TLS"),
                        ));
                    };
                    // What followed the proxy's answer is the server's first TLS records.
                    stream = tls_handshake(session, stream, &buf[consumed..end])?;
                    end = 0;
                    out.clear();
                    connector.start_upgrade(&mut out)?;
                    stream.write_all(&out).map_err(io_error)?;
                }
                ConnectStep::Open {
                    consumed,
                    connection,
                    response,
                } => {
                    stream.tcp().set_read_timeout(None)?;
                    stream.tcp().set_write_timeout(None)?;
                    return Ok(WebSocket {
                        stream,
                        conn: connection,
                        buf,
                        start: consumed,
                        end,
                        out: Vec::new(),
                        response,
                        url: connector.url().clone(),
                        eof: false,
                    });
                }
                ConnectStep::Redirect { url } => {
                    connector = connector.follow(url)?;
                    break;
                }
            }
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn set_deadline(stream: &TcpStream, deadline: Instant) -> Result<(), ClientError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(ClientError::Timeout);
    }
    stream.set_read_timeout(Some(left))?;
    stream.set_write_timeout(Some(left))?;
    Ok(())
}

fn open_tcp(
    addr: &str,
    options: &ClientOptions,
    deadline: Instant,
) -> Result<TcpStream, ClientError> {
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    connect_any(addr, &addrs, options.local_addr, deadline)
}

/// Connects to the first of `addrs` that accepts, from `local` if given.
fn connect_any(
    name: &str,
    addrs: &[SocketAddr],
    local: Option<IpAddr>,
    deadline: Instant,
) -> Result<TcpStream, ClientError> {
    let mut last: Option<io::Error> = None;
    let mut skipped = false;
    for &target in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ClientError::Timeout);
        }
        if local.is_some_and(|local| local.is_ipv4() != target.is_ipv4()) {
            // A local address of one family cannot reach the other: try the next target.
            skipped = true;
            continue;
        }
        let socket = Socket::new(
            Domain::for_address(target),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        if let Some(local) = local {
            socket.bind(&SocketAddr::new(local, 0).into())?;
        }
        match socket.connect_timeout(&target.into(), left) {
            Ok(()) => {
                let stream: TcpStream = socket.into();
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) if is_timeout(&e) => return Err(ClientError::Timeout),
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .unwrap_or_else(|| {
            if skipped {
                io::Error::new(
                    io::ErrorKind::AddrNotAvailable,
                    format!("{name} has no address of the local address's family"),
                )
            } else {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{name} resolves to no address"),
                )
            }
        })
        .into())
}

impl WebSocket {
    /// The server's `101` response: chosen subprotocol, extensions, headers.
    pub fn response(&self) -> &UpgradeResponse {
        &self.response
    }

    /// The subprotocol the server chose, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.response.protocol()
    }

    /// The URL finally connected to (after redirects).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The local socket address.
    ///
    /// # Errors
    ///
    /// As [`TcpStream::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.tcp().local_addr()
    }

    /// Limits how long [`WebSocket::recv`] waits (`None`: forever).
    ///
    /// # Errors
    ///
    /// As [`TcpStream::set_read_timeout`].
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.tcp().set_read_timeout(timeout)
    }

    /// For `wss://`, the TLS session (peer certificates, protocol version, ALPN); `None` for
    /// `ws://`.
    pub fn tls(&self) -> Option<&rustls::ClientConnection> {
        match &self.stream {
            Stream::Plain(_) => None,
            Stream::Tls(s) => Some(&s.conn),
        }
    }

    fn flush_out(&mut self) -> Result<(), ClientError> {
        let _ = self.conn.poll_transmit(&mut self.out);
        if !self.out.is_empty() {
            let r = self.stream.write_all(&self.out);
            self.out.clear();
            r.map_err(io_error)?;
        }
        Ok(())
    }

    /// Sends a text message.
    ///
    /// # Errors
    ///
    /// [`ClientError::Send`] once closing; [`ClientError::Io`].
    pub fn send_text(&mut self, text: &str) -> Result<(), ClientError> {
        self.conn.send_text(text, &mut self.out)?;
        self.flush_out()
    }

    /// Sends a binary message.
    ///
    /// # Errors
    ///
    /// As [`WebSocket::send_text`].
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), ClientError> {
        self.conn.send_binary(data, &mut self.out)?;
        self.flush_out()
    }

    /// Sends one fragment (`Some(kind)` starts a message, `None` continues it).
    ///
    /// # Errors
    ///
    /// As [`WebSocket::send_text`].
    pub fn send_fragment(
        &mut self,
        kind: Option<MessageKind>,
        payload: &[u8],
        fin: bool,
    ) -> Result<(), ClientError> {
        self.conn.send_fragment(kind, payload, fin, &mut self.out)?;
        self.flush_out()
    }

    /// Sends a ping.
    ///
    /// # Errors
    ///
    /// As [`WebSocket::send_text`].
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        self.conn.send_ping(payload, &mut self.out)?;
        self.flush_out()
    }

    /// Sends a pong.
    ///
    /// # Errors
    ///
    /// As [`WebSocket::send_text`].
    pub fn pong(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        self.conn.send_pong(payload, &mut self.out)?;
        self.flush_out()
    }

    /// Receives the next message or control frame (pings are answered automatically).
    ///
    /// # Errors
    ///
    /// [`ClientError::Protocol`] when the server broke the protocol (our close frame with the
    /// error's code is sent); [`ClientError::Closed`] after the close or at EOF;
    /// [`ClientError::Timeout`] past the read timeout; [`ClientError::Io`].
    pub fn recv(&mut self) -> Result<Message, ClientError> {
        loop {
            if self.start < self.end {
                let result = self.conn.handle_read(&mut self.buf[self.start..self.end]);
                match result {
                    Ok(read) => {
                        self.start += read.consumed;
                        let message = read.event.map(Message::from);
                        self.flush_out()?;
                        if let Some(message) = message {
                            return Ok(message);
                        }
                    }
                    Err(e) => {
                        let _ = self.flush_out();
                        return Err(e.into());
                    }
                }
            }
            if self.eof || self.conn.close_state() == CloseState::Closed {
                return Err(ClientError::Closed);
            }
            // Keep the unconsumed residue (a partial header or control frame) at the front.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e)),
            }
        }
    }

    /// Starts the closing handshake and waits (up to the read timeout, if one is set) for the
    /// server's close frame, discarding messages that arrive before it; then closes the socket.
    ///
    /// # Errors
    ///
    /// [`ClientError::Send`] for an invalid code or when already closed; others as
    /// [`WebSocket::recv`].
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), ClientError> {
        if self.conn.close_state() == CloseState::Open {
            self.conn.send_close(code, reason, &mut self.out)?;
            self.flush_out()?;
        }
        loop {
            match self.recv() {
                Ok(Message::Close(..)) | Err(ClientError::Closed) => break,
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        if let Stream::Tls(s) = &mut self.stream {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        let _ = self.stream.tcp().shutdown(std::net::Shutdown::Both);
        Ok(())
    }

    /// Where the closing handshake stands.
    pub fn close_state(&self) -> CloseState {
        self.conn.close_state()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};

    use super::*;

    #[test]
    fn a_local_address_skips_targets_of_the_other_family() {
        // A name that resolves to ::1 first and 127.0.0.1 second (as `localhost` does on many
        // systems), with an IPv4 local address: the IPv6 target is skipped, not fatal.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let v4 = listener.local_addr().unwrap();
        let v6 = SocketAddr::new(Ipv6Addr::LOCALHOST.into(), v4.port());
        let local = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
        let deadline = Instant::now() + Duration::from_secs(5);
        let stream = connect_any("dual", &[v6, v4], Some(local), deadline).unwrap();
        assert_eq!(stream.peer_addr().unwrap(), v4);
        // Only the other family: an error that says so.
        let err = connect_any("v6 only", &[v6], Some(local), deadline).unwrap_err();
        match err {
            ClientError::Io(e) => assert_eq!(e.kind(), io::ErrorKind::AddrNotAvailable, "{e}"),
            other => panic!("{other:?}"),
        }
    }
}

//! The client side of a worker: opening a connection (a first attempt or a redirect's next hop),
//! host names resolved off the worker (`engine/resolve.rs`), the non-blocking connect, the proxy
//! phase and the client upgrade through the sans-IO `Connector`, and connect failures reported
//! to the handler.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use std::net::TcpStream;

use super::{ticks, Slot, Stage, Worker};
use crate::client::{ClientError, ConnectStep, Connector};
use crate::engine::conn::ConnIo;
use crate::engine::handler::Handler;
use crate::engine::resolve::{self, Answer};
use crate::engine::tls::Tls;
use crate::protocol::Role;

impl<H: Handler> Worker<H> {
    /// Opens a client connection for `connector` (a first attempt or a redirect's next hop):
    /// an IP literal connects at once, a host name goes to the engine's resolver and comes
    /// back as [`Command::Resolved`](crate::engine::inbox::Command::Resolved) (see
    /// `engine/resolve.rs`), so that no lookup blocks this worker.
    pub(super) fn open_client(&mut self, connector: Box<Connector>, tag: u64) {
        if let Some(target) = resolve::literal(&connector) {
            let left = connector.options().handshake_timeout;
            return self.connect_to(connector, tag, target, left);
        }
        let inbox = self.ctx.hub.inboxes[usize::from(self.index)].clone();
        let resolver = self.settings.resolver.clone();
        if let Err((connector, tag, e)) =
            resolver.submit(usize::from(self.index), connector, tag, inbox)
        {
            self.handler.on_connect_error(connector.url(), tag, &e);
        }
    }

    /// The resolver answered (or its watchdog timed the name out).
    pub(super) fn resolved(&mut self, answer: Answer) {
        let Answer {
            connector,
            tag,
            result,
            left,
        } = answer;
        if self.shutdown.is_some() {
            return self
                .handler
                .on_connect_error(connector.url(), tag, &ClientError::Closed);
        }
        match result {
            Ok(target) => self.connect_to(connector, tag, target, left),
            Err(e) => self.handler.on_connect_error(connector.url(), tag, &e),
        }
    }

    /// The worker shuts down: the names still being resolved for it fail with `Closed`.
    pub(super) fn cancel_resolutions(&mut self) {
        let resolver = self.settings.resolver.clone();
        for (connector, tag) in resolver.cancel(usize::from(self.index)) {
            self.handler
                .on_connect_error(connector.url(), tag, &ClientError::Closed);
        }
    }

    /// Starts the TCP connect to `target` and puts the connection in the slab; the handshake
    /// has `left` to complete.
    fn connect_to(
        &mut self,
        connector: Box<Connector>,
        tag: u64,
        target: SocketAddr,
        left: Duration,
    ) {
        let sock = match connect_nonblocking(&connector, target) {
            Ok(pair) => pair,
            Err(e) => {
                self.handler.on_connect_error(connector.url(), tag, &e);
                return;
            }
        };
        let (sock, peer) = sock;
        let id = match self.register(&sock, true) {
            Ok(id) => id,
            Err(e) => {
                self.handler
                    .on_connect_error(connector.url(), tag, &e.into());
                return;
            }
        };
        let key = id.key as usize;
        let mut io = ConnIo::new(id, peer, self.now);
        io.role = Role::Client;
        io.tag = tag;
        let timeout = ticks(left);
        let inserted = self.conns.insert(Slot {
            sock,
            gen: id.gen,
            io,
            stage: Stage::Connecting {
                connector,
                buf: Vec::new(),
                started: false,
                timeout,
            },
            tls: None,
        });
        debug_assert_eq!(
            inserted, key,
            "the slot takes the key its socket was registered under"
        );
        self.local.opened += 1;
        self.schedule(key);
    }

    /// A client connection's transport became writable: once connected, send the first bytes.
    pub(super) fn on_connect_writable(&mut self, key: usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let Stage::Connecting {
            connector, started, ..
        } = &mut slot.stage
        else {
            return;
        };
        if *started {
            return;
        }
        match slot.sock.take_error() {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => return self.fail_connect(key, e.into()),
        }
        match slot.sock.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                return self.io.still_connecting(key); // not yet
            }
            Err(e) => return self.fail_connect(key, e.into()),
        }
        *started = true;
        self.io.connected(key, &slot.sock);
        if !connector.proxied() {
            // wss:// straight to the server: TLS carries everything from the first byte.
            match connector.tls_session() {
                Ok(None) => {}
                Ok(Some(session)) => slot.tls = Some(Box::new(Tls::client(session))),
                Err(e) => return self.fail_connect(key, e),
            }
        }
        if let Err(e) = connector.start(&mut self.ctx.cork) {
            self.ctx.cork.clear();
            return self.fail_connect(key, e);
        }
        self.after_callbacks(key);
    }

    /// Bytes for a client connection still opening.
    pub(super) fn on_connecting(&mut self, key: usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let Stage::Connecting { connector, buf, .. } = &mut slot.stage else {
            return;
        };
        match connector.handle_read(buf, &mut self.ctx.cork) {
            Err(e) => self.fail_connect(key, e),
            Ok(ConnectStep::NeedMore { consumed }) => {
                buf.drain(..consumed);
                self.after_callbacks(key);
            }
            Ok(ConnectStep::Tunnel { consumed }) => {
                // wss:// through a proxy: TLS starts over the tunnel, and the upgrade goes
                // through it. The server speaks only after our hello, so nothing follows the
                // proxy's answer yet.
                buf.drain(..consumed);
                let early = std::mem::take(buf);
                let session = match connector.tls_session() {
                    Ok(Some(session)) => session,
                    Ok(None) => unreachable!("Tunnel comes only for wss://"),
                    Err(e) => return self.fail_connect(key, e),
                };
                if let Err(e) = connector.start_upgrade(&mut self.ctx.cork) {
                    self.ctx.cork.clear();
                    return self.fail_connect(key, e);
                }
                slot.tls = Some(Box::new(Tls::client(session)));
                if !early.is_empty() {
                    let r = slot
                        .tls
                        .as_deref_mut()
                        .map_or(Ok(()), |t| t.feed(&early, &mut self.tls_scratch));
                    if !self.after_feed(key, r) {
                        return;
                    }
                }
                self.after_callbacks(key);
            }
            Ok(ConnectStep::Redirect { url }) => {
                let next = connector.follow(url);
                let tag = slot.io.tag;
                let from = connector.url().clone();
                self.ctx.cork.clear();
                self.remove(key);
                match next {
                    Ok(next) => self.open_client(Box::new(next), tag),
                    Err(e) => self.handler.on_connect_error(&from, tag, &e),
                }
            }
            Ok(ConnectStep::Open {
                consumed,
                connection,
                response,
            }) => {
                // What follows the head are frames; the read limit keeps them within rbuf.
                let leftover = buf.len() - consumed;
                self.rbuf[..leftover].copy_from_slice(&buf[consumed..]);
                let protocol = response.protocol().map(Into::into);
                let (url, tag) = (connector.url().clone(), slot.io.tag);
                let Some(state) = self.handler.client_state(&url, tag) else {
                    return self.fail_connect(key, ClientError::NoState);
                };
                self.open(key, connection, state, protocol, leftover);
            }
        }
    }

    /// A client connection failed before it opened: tell the handler, drop the socket.
    pub(super) fn fail_connect(&mut self, key: usize, error: ClientError) {
        let Some(slot) = self.conns.get(key) else {
            return;
        };
        if let Stage::Connecting { connector, .. } = &slot.stage {
            self.handler
                .on_connect_error(connector.url(), slot.io.tag, &error);
        }
        self.remove(key);
    }
}

/// Starts a non-blocking TCP connect to `target` (the proxy's or the server's address), bound
/// to the options' local address if any.
fn connect_nonblocking(
    connector: &Connector,
    target: SocketAddr,
) -> Result<(TcpStream, SocketAddr), ClientError> {
    let socket = Socket::new(
        Domain::for_address(target),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    if let Some(local) = connector.options().local_addr {
        socket.bind(&SocketAddr::new(local, 0).into())?;
    }
    match socket.connect(&target.into()) {
        Ok(()) => {}
        Err(e)
            if e.raw_os_error() == Some(libc_einprogress())
                || e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e.into()),
    }
    Ok((socket.into(), target))
}

/// `EINPROGRESS` on Linux.
const fn libc_einprogress() -> i32 {
    115
}

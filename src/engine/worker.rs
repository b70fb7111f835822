//! One worker: a thread with its own poller, listener, slab of connections, timer wheel and
//! inbox. All protocol decisions for its connections are made here, above the backend.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::client::{ClientError, ConnectStep, Connector};
use crate::engine::accept::Acceptor;
use crate::engine::conn::{Conn, ConnIo, Ctx};
use crate::engine::inbox::{self, Command, Inbox, InboxSender};
use crate::engine::timer::{Entry, TimerWheel};
use crate::engine::Settings;
use crate::protocol::deflate::negotiate;
use crate::protocol::handshake::{self, AcceptOptions, ExtensionOffer, UpgradeRequest};
use crate::protocol::{CloseCode, CloseState, Config, Connection, Event, Role};
use crate::server::{CloseInfo, ConnId, Handler, Message, Reject, Upgrade, WorkerStats};
use socket2::{Domain, Protocol, Socket, Type};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
/// Timer resolution.
const TICK: Duration = Duration::from_millis(100);
/// Wheel size: 2^12 ticks of 100 ms, about 7 minutes before an entry is parked.
const WHEEL_SLOTS: usize = 4096;
/// The worker's read buffer (plus room for a connection's residue in front).
const READ_BUF: usize = 256 << 10;
const RESIDUE_ROOM: usize = 256;
/// Reads per readiness event before the worker moves on to other connections (fairness).
const MAX_READS_PER_EVENT: usize = 8;
/// A cork buffer that grew past this (one huge send) is shrunk back after use.
const CORK_KEEP: usize = 1 << 20;

/// Starts worker `index` on its own thread. `factory` makes the handler on that thread.
pub(crate) fn spawn<H, F>(
    index: usize,
    settings: Arc<Settings>,
    listener: Option<std::net::TcpListener>,
    factory: F,
    core: Option<core_affinity::CoreId>,
    stats: Arc<WorkerStats>,
) -> io::Result<(InboxSender, JoinHandle<()>)>
where
    H: Handler,
    F: FnOnce(usize) -> H + Send + 'static,
{
    let poll = Poll::new()?;
    let waker = Waker::new(poll.registry(), WAKER)?;
    let (sender, inbox) = inbox::inbox(waker);
    let mut acceptor = listener.map(|l| Acceptor::new(TcpListener::from_std(l)));
    if let Some(acceptor) = &mut acceptor {
        poll.registry()
            .register(acceptor.listener_mut(), LISTENER, Interest::READABLE)?;
    }
    let thread = std::thread::Builder::new()
        .name(format!("wsx-worker-{index}"))
        .spawn(move || {
            if let Some(core) = core {
                core_affinity::set_for_current(core);
            }
            let handler = factory(index);
            let mut worker = Worker::new(index, poll, acceptor, handler, settings, inbox, stats);
            worker.run();
        })?;
    Ok((sender, thread))
}

/// How a connection ends once it is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Drop the socket now.
    Drop,
    /// Write what is queued, then drop (the closing handshake is complete).
    Flush,
    /// Write what is queued, then wait for the server to close the TCP connection (a client
    /// after the closing handshake, RFC 6455 §7.1.1) until the close timeout.
    AwaitEof,
    /// Write what is queued, shut down our side, read until the peer closes or the close
    /// timeout passes (after a protocol error or a refused handshake, so that the peer reads
    /// our close frame or HTTP answer instead of a reset).
    Linger,
}

// Most slots are open connections, so the slot is sized for `Open` anyway; boxing it would add an
// allocation and a pointer chase per connection for nothing.
#[allow(clippy::large_enum_variant)]
enum Stage<S> {
    Handshake(Vec<u8>),
    /// A client connection on its way: TCP connect, proxy, upgrade.
    Connecting {
        connector: Box<Connector>,
        buf: Vec<u8>,
        /// The TCP connection is established and the first bytes were written.
        started: bool,
        /// Handshake timeout, in ticks.
        timeout: u64,
    },
    Open {
        proto: Connection,
        user: S,
    },
    Draining {
        ending: Ending,
        shut: bool,
    },
}

struct Slot<S> {
    sock: TcpStream,
    gen: u32,
    io: ConnIo,
    stage: Stage<S>,
}

#[derive(Debug, Default)]
struct LocalStats {
    messages_in: u64,
    bytes_in: u64,
    bytes_out: u64,
}

struct Worker<H: Handler> {
    index: u16,
    poll: Poll,
    acceptor: Option<Acceptor>,
    conns: Slab<Slot<H::State>>,
    handler: H,
    ctx: Ctx,
    settings: Arc<Settings>,
    proto_config: Config,
    rbuf: Vec<u8>,
    wheel: TimerWheel,
    start: Instant,
    now: u64,
    inbox: Inbox,
    commands: Vec<Command>,
    stats: Arc<WorkerStats>,
    local: LocalStats,
    next_gen: u32,
    /// Connections with more to read than one event's share.
    pending: Vec<usize>,
    shutdown: Option<Instant>,
}

/// Ticks to wait for `d`: rounded up, plus one because the current tick began up to one tick
/// ago, so that a timeout never fires early (it fires at most two ticks late).
fn ticks(d: Duration) -> u64 {
    d.as_millis().div_ceil(TICK.as_millis()) as u64 + 1
}

impl<H: Handler> Worker<H> {
    fn new(
        index: usize,
        poll: Poll,
        acceptor: Option<Acceptor>,
        handler: H,
        settings: Arc<Settings>,
        inbox: Inbox,
        stats: Arc<WorkerStats>,
    ) -> Self {
        let proto_config = Config {
            limits: settings.limits,
            ..Config::default()
        };
        Worker {
            index: index as u16,
            poll,
            acceptor,
            conns: Slab::new(),
            handler,
            ctx: Ctx {
                cork: Vec::new(),
                settings: settings.clone(),
                messages_out: 0,
                now: 0,
                queued: false,
            },
            settings,
            proto_config,
            rbuf: vec![0; RESIDUE_ROOM + READ_BUF],
            wheel: TimerWheel::new(WHEEL_SLOTS, 0),
            start: Instant::now(),
            now: 0,
            inbox,
            commands: Vec::new(),
            stats,
            local: LocalStats::default(),
            next_gen: 0,
            pending: Vec::new(),
            shutdown: None,
        }
    }

    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        let mut due = Vec::new();
        loop {
            let timeout = if self.pending.is_empty() {
                Some(TICK)
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The poller itself failed: nothing more can be done on this worker.
                break;
            }
            let before = self.now;
            self.now = (self.start.elapsed().as_millis() / TICK.as_millis()) as u64;
            self.ctx.now = self.now;
            let ticked = self.now != before;
            if ticked && self.acceptor.as_ref().is_some_and(Acceptor::stalled) {
                // No readiness event follows a failed accept (see engine/accept.rs).
                self.accept();
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => self.drain_inbox(),
                    Token(key) => {
                        if event.is_writable() {
                            self.writable(key);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.readable(key, event.is_read_closed());
                        }
                    }
                }
            }
            for key in std::mem::take(&mut self.pending) {
                // The event that put it here may have carried the peer's FIN: read to the end.
                self.readable(key, true);
            }
            due.clear();
            self.wheel.advance(self.now, &mut due);
            for entry in &due {
                self.on_timer(*entry);
            }
            self.publish_stats();
            if ticked {
                self.publish_footprint();
            }
            if let Some(deadline) = self.shutdown {
                if self.conns.is_empty() {
                    break;
                }
                if Instant::now() >= deadline {
                    let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                    for key in keys {
                        self.end(key, abnormal("server shut down"), Ending::Drop);
                    }
                    break;
                }
            }
        }
        self.publish_stats();
    }

    fn publish_stats(&mut self) {
        let s = &self.stats;
        s.connections
            .store(self.conns.len() as u64, Ordering::Relaxed);
        s.messages_in
            .store(self.local.messages_in, Ordering::Relaxed);
        s.messages_out
            .store(self.ctx.messages_out, Ordering::Relaxed);
        s.bytes_in.store(self.local.bytes_in, Ordering::Relaxed);
        s.bytes_out.store(self.local.bytes_out, Ordering::Relaxed);
        if let Some(acceptor) = &self.acceptor {
            s.shed.store(acceptor.shed(), Ordering::Relaxed);
        }
    }

    /// Sizes of the worker's structures, for the tests that check they stay flat.
    fn publish_footprint(&self) {
        let s = &self.stats;
        s.timer_entries
            .store(self.wheel.len() as u64, Ordering::Relaxed);
        s.timer_capacity
            .store(self.wheel.capacity() as u64, Ordering::Relaxed);
        s.slab_capacity
            .store(self.conns.capacity() as u64, Ordering::Relaxed);
    }

    /// Accepts what is queued (see engine/accept.rs for what happens when descriptors run out).
    fn accept(&mut self) {
        loop {
            let Some(acceptor) = &mut self.acceptor else {
                return;
            };
            let Some((mut sock, peer)) = acceptor.accept() else {
                return;
            };
            if self.conns.len() >= self.settings.max_connections {
                acceptor.refuse(sock);
                continue;
            }
            if self.settings.nodelay {
                let _ = sock.set_nodelay(true);
            }
            let entry = self.conns.vacant_entry();
            let key = entry.key();
            if self
                .poll
                .registry()
                .register(
                    &mut sock,
                    Token(key),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_err()
            {
                continue;
            }
            self.next_gen = self.next_gen.wrapping_add(1);
            let id = ConnId {
                worker: self.index,
                key: key as u32,
                gen: self.next_gen,
            };
            entry.insert(Slot {
                sock,
                gen: self.next_gen,
                io: ConnIo::new(id, peer, self.now),
                stage: Stage::Handshake(Vec::new()),
            });
            self.schedule(key);
        }
    }

    /// Reads what the socket holds. `read_closed`: the peer's FIN is already in (it brings no
    /// new edge), so a short read does not mean drained; read on until EOF or `WouldBlock`.
    fn readable(&mut self, key: usize, read_closed: bool) {
        for _ in 0..MAX_READS_PER_EVENT {
            let Some(slot) = self.conns.get_mut(key) else {
                return;
            };
            let r = slot.io.residue.len();
            self.rbuf[..r].copy_from_slice(&slot.io.residue);
            // During the handshake read no more than the head may hold, so that what follows
            // the head always fits the read buffer.
            let limit = match &slot.stage {
                Stage::Handshake(buf) | Stage::Connecting { buf, .. } => {
                    (self.settings.limits.max_head_size + 1)
                        .saturating_sub(buf.len())
                        .clamp(1, READ_BUF)
                }
                _ => self.rbuf.len() - r,
            };
            match slot.sock.read(&mut self.rbuf[r..r + limit]) {
                Ok(0) => {
                    self.on_eof(key);
                    return;
                }
                Ok(n) => {
                    if r > 0 {
                        slot.io.residue = Vec::new();
                    }
                    self.local.bytes_in += n as u64;
                    slot.io.last_read = self.now;
                    slot.io.ping_sent = false;
                    self.on_data(key, r + n);
                    if n < limit && !read_closed {
                        return; // drained: the next bytes bring a new edge
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.on_eof(key);
                    return;
                }
            }
        }
        self.pending.push(key);
    }

    fn on_data(&mut self, key: usize, len: usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        match &mut slot.stage {
            Stage::Handshake(buf) => {
                buf.extend_from_slice(&self.rbuf[..len]);
                self.on_handshake(key);
            }
            Stage::Connecting { buf, .. } => {
                buf.extend_from_slice(&self.rbuf[..len]);
                self.on_connecting(key);
            }
            Stage::Open { .. } => self.on_frames(key, len),
            Stage::Draining { .. } => {}
        }
    }

    /// Opens a client connection for `connector` (a first attempt or a redirect's next hop).
    fn open_client(&mut self, connector: Box<Connector>, tag: u64) {
        let sock = match connect_nonblocking(&connector) {
            Ok(pair) => pair,
            Err(e) => {
                self.handler.on_connect_error(connector.url(), tag, &e);
                return;
            }
        };
        let (mut sock, peer) = sock;
        if self.settings.nodelay {
            let _ = sock.set_nodelay(true);
        }
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self.poll.registry().register(
            &mut sock,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.handler
                .on_connect_error(connector.url(), tag, &e.into());
            return;
        }
        self.next_gen = self.next_gen.wrapping_add(1);
        let id = ConnId {
            worker: self.index,
            key: key as u32,
            gen: self.next_gen,
        };
        let mut io = ConnIo::new(id, peer, self.now);
        io.role = Role::Client;
        io.tag = tag;
        let timeout = ticks(connector.options().handshake_timeout);
        entry.insert(Slot {
            sock,
            gen: self.next_gen,
            io,
            stage: Stage::Connecting {
                connector,
                buf: Vec::new(),
                started: false,
                timeout,
            },
        });
        self.schedule(key);
    }

    /// A client connection's transport became writable: once connected, send the first bytes.
    fn on_connect_writable(&mut self, key: usize) {
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
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return, // not yet
            Err(e) => return self.fail_connect(key, e.into()),
        }
        *started = true;
        if let Err(e) = connector.start(&mut self.ctx.cork) {
            self.ctx.cork.clear();
            return self.fail_connect(key, e);
        }
        self.after_callbacks(key);
    }

    /// Bytes for a client connection still opening.
    fn on_connecting(&mut self, key: usize) {
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
                self.open(key, connection, H::State::default(), protocol, leftover);
            }
        }
    }

    /// A client connection failed before it opened: tell the handler, drop the socket.
    fn fail_connect(&mut self, key: usize, error: ClientError) {
        let Some(slot) = self.conns.get(key) else {
            return;
        };
        if let Stage::Connecting { connector, .. } = &slot.stage {
            self.handler
                .on_connect_error(connector.url(), slot.io.tag, &error);
        }
        self.remove(key);
    }

    fn on_handshake(&mut self, key: usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let Stage::Handshake(buf) = &mut slot.stage else {
            return;
        };
        let (request, consumed) = match UpgradeRequest::parse(buf, &self.settings.limits) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return,
            Err(e) => {
                handshake::write_error(&e, &mut self.ctx.cork);
                return self.refuse(key);
            }
        };
        if let Some(path) = &self.settings.path {
            if request.path() != path {
                write_status(
                    &Reject::new(404).body("no websocket service at this path"),
                    &mut self.ctx.cork,
                );
                return self.refuse(key);
            }
        }
        let mut upgrade = Upgrade {
            request: &request,
            peer: slot.io.peer,
            protocol: None,
            headers: Vec::new(),
        };
        let user = match self.handler.on_upgrade(&mut upgrade) {
            Ok(user) => user,
            Err(reject) => {
                write_status(&reject, &mut self.ctx.cork);
                return self.refuse(key);
            }
        };
        let Upgrade {
            protocol, headers, ..
        } = upgrade;
        let header_refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let deflate = self.settings.deflate.as_ref().and_then(|options| {
            negotiate::server_accept(request.extensions(), options)
                .map(|(answer, params)| (answer, params, options))
        });
        let answer: Vec<ExtensionOffer> = deflate.iter().map(|(a, _, _)| a.clone()).collect();
        let options = AcceptOptions::new()
            .with_headers(&header_refs)
            .with_extensions(&answer);
        let options = match protocol.as_deref() {
            Some(p) => options.with_protocol(p),
            None => options,
        };
        if let Err(e) = handshake::write_accept(&request, &options, &mut self.ctx.cork) {
            handshake::write_error(&e, &mut self.ctx.cork);
            return self.refuse(key);
        }
        // Bytes after the head are the first frames; they fit the read buffer (see `readable`).
        let leftover = buf.len() - consumed;
        self.rbuf[..leftover].copy_from_slice(&buf[consumed..]);
        let mut proto = Connection::new(Role::Server, self.proto_config);
        if let Some((_, params, options)) = deflate {
            proto.set_deflate(params, options.clone());
        }
        self.open(
            key,
            proto,
            user,
            protocol.map(String::into_boxed_str),
            leftover,
        );
    }

    /// A handshake succeeded (either role): the slot becomes an open connection, the handler
    /// hears `on_open`, and the `leftover` frames that followed the handshake (already copied
    /// to the front of `rbuf`) are processed.
    fn open(
        &mut self,
        key: usize,
        proto: Connection,
        user: H::State,
        protocol: Option<Box<str>>,
        leftover: usize,
    ) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        slot.io.protocol = protocol;
        slot.io.last_read = self.now;
        slot.stage = Stage::Open { proto, user };
        if let Stage::Open { proto, user } = &mut slot.stage {
            let (_, tx) = proto.split();
            let mut conn = Conn {
                tx,
                io: &mut slot.io,
                user,
                ctx: &mut self.ctx,
            };
            self.handler.on_open(&mut conn);
        }
        if leftover > 0 {
            self.on_frames(key, leftover);
        } else {
            self.after_callbacks(key);
        }
    }

    /// Answers a handshake that failed (the answer is in the cork) and closes.
    fn refuse(&mut self, key: usize) {
        if let Some(slot) = self.conns.get_mut(key) {
            slot.stage = Stage::Draining {
                ending: Ending::Linger,
                shut: false,
            };
            slot.io.since = self.now;
        }
        self.after_callbacks(key);
    }

    /// The hot path: frames from `rbuf[..len]` through the protocol core into the handler.
    fn on_frames(&mut self, key: usize, len: usize) {
        let Worker {
            conns,
            handler,
            ctx,
            rbuf,
            local,
            ..
        } = self;
        let Some(slot) = conns.get_mut(key) else {
            return;
        };
        let Slot { io, stage, .. } = slot;
        let Stage::Open { proto, user } = stage else {
            return;
        };
        let data = &mut rbuf[..len];
        let mut pos = 0;
        loop {
            let (rx, tx) = proto.split();
            match rx.handle_read(tx, &mut data[pos..]) {
                Ok(read) => {
                    pos += read.consumed;
                    // A peer that pings without reading would grow our queue with pongs: past
                    // the backpressure limit its pings go unanswered (RFC 6455 §5.5.3 lets an
                    // endpoint answer only the latest of several pings).
                    let flooding = matches!(read.event, Some(Event::Ping(_)))
                        && io.out.len() + ctx.cork.len() > ctx.settings.max_buffered;
                    if flooding {
                        tx.discard_transmit();
                    } else {
                        let _ = tx.poll_transmit(&mut ctx.cork);
                    }
                    let Some(event) = read.event else { break };
                    let mut conn = Conn {
                        tx,
                        io: &mut *io,
                        user: &mut *user,
                        ctx: &mut *ctx,
                    };
                    match event {
                        Event::Text(text) => {
                            local.messages_in += 1;
                            handler.on_message(&mut conn, Message::Text(text));
                        }
                        Event::Binary(bytes) => {
                            local.messages_in += 1;
                            handler.on_message(&mut conn, Message::Binary(bytes));
                        }
                        Event::Ping(payload) => handler.on_ping(&mut conn, payload),
                        Event::Pong(payload) => handler.on_pong(&mut conn, payload),
                        Event::Close { code, reason } => {
                            conn.io.peer_close = Some(Box::new((code, reason.to_owned())));
                        }
                    }
                    if io.terminate {
                        break;
                    }
                }
                Err(_) => {
                    let _ = tx.poll_transmit(&mut ctx.cork);
                    break;
                }
            }
        }
        if pos < len && proto.close_state() != CloseState::Failed && !io.terminate {
            io.residue.extend_from_slice(&data[pos..]);
        }
        self.after_callbacks(key);
    }

    /// Writes what the callbacks sent and moves the connection on if it is closing.
    fn after_callbacks(&mut self, key: usize) {
        if self.uncork(key).is_err() {
            self.end(key, abnormal("write failed"), Ending::Drop);
            return;
        }
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        match &mut slot.stage {
            Stage::Handshake(_) | Stage::Connecting { .. } => {}
            Stage::Open { proto, .. } => {
                if slot.io.terminate {
                    return self.end(key, abnormal("terminated"), Ending::Drop);
                }
                match proto.close_state() {
                    CloseState::Open => {}
                    CloseState::CloseSent => {}
                    CloseState::Closed => {
                        let (code, reason) = slot
                            .io
                            .peer_close
                            .take()
                            .map_or((CloseCode::NO_STATUS, String::new()), |b| *b);
                        let info = CloseInfo {
                            code,
                            reason,
                            clean: true,
                            error: None,
                        };
                        // The server closes the TCP connection first (RFC 6455 §7.1.1).
                        let ending = match slot.io.role {
                            Role::Server => Ending::Flush,
                            Role::Client => Ending::AwaitEof,
                        };
                        return self.end(key, info, ending);
                    }
                    CloseState::Failed => {
                        let error = proto.error().cloned();
                        let info = CloseInfo {
                            code: error
                                .as_ref()
                                .map_or(CloseCode::PROTOCOL, |e| e.close_code()),
                            reason: error.as_ref().map(ToString::to_string).unwrap_or_default(),
                            clean: false,
                            error,
                        };
                        return self.end(key, info, Ending::Linger);
                    }
                }
            }
            Stage::Draining { .. } => return self.drain_step(key),
        }
        self.schedule(key);
    }

    /// Writes the cork buffer for `key`: straight to the socket when nothing waits, else behind
    /// the queue; what the socket does not take is queued.
    fn uncork(&mut self, key: usize) -> io::Result<()> {
        let queued = std::mem::take(&mut self.ctx.queued);
        let cork = &mut self.ctx.cork;
        if cork.is_empty() && !queued {
            return Ok(());
        }
        let Some(slot) = self.conns.get_mut(key) else {
            cork.clear();
            return Ok(());
        };
        let result = if slot.io.out.is_empty() {
            loop {
                match slot.sock.write(cork) {
                    Ok(n) => {
                        self.local.bytes_out += n as u64;
                        if n < cork.len() {
                            slot.io.out.push_copy(&cork[n..]);
                            slot.io.backpressured = true;
                        }
                        break Ok(());
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        slot.io.out.push_copy(cork);
                        slot.io.backpressured = true;
                        break Ok(());
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            }
        } else {
            slot.io.out.push_copy(cork);
            slot.io.backpressured = true;
            slot.io
                .out
                .write_to(&mut slot.sock)
                .map(|n| self.local.bytes_out += n as u64)
        };
        cork.clear();
        if cork.capacity() > CORK_KEEP {
            cork.shrink_to(CORK_KEEP / 16);
        }
        result
    }

    fn writable(&mut self, key: usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        if matches!(slot.stage, Stage::Connecting { started: false, .. }) {
            return self.on_connect_writable(key);
        }
        if slot.io.out.is_empty() {
            return;
        }
        match slot.io.out.write_to(&mut slot.sock) {
            Ok(n) => self.local.bytes_out += n as u64,
            Err(_) => return self.end(key, abnormal("write failed"), Ending::Drop),
        }
        if !slot.io.out.is_empty() {
            return;
        }
        match &mut slot.stage {
            Stage::Open { proto, user } if slot.io.backpressured => {
                slot.io.backpressured = false;
                let (_, tx) = proto.split();
                let mut conn = Conn {
                    tx,
                    io: &mut slot.io,
                    user,
                    ctx: &mut self.ctx,
                };
                self.handler.on_drain(&mut conn);
                self.after_callbacks(key);
            }
            Stage::Draining { .. } => self.drain_step(key),
            _ => {}
        }
    }

    fn on_eof(&mut self, key: usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        match &mut slot.stage {
            Stage::Open { proto, .. } if proto.close_state() == CloseState::Closed => {
                // The handshake completed in the same read; after_callbacks already ended it.
                self.remove(key);
            }
            Stage::Open { .. } => self.end(key, abnormal("connection dropped"), Ending::Drop),
            Stage::Draining { ending, .. } if !slot.io.out.is_empty() => {
                // A half-close: the peer is done sending, maybe not reading. Write what is
                // queued (a close reply, a refusal), then drop; there is nothing to linger for.
                *ending = Ending::Flush;
            }
            Stage::Connecting { .. } => self.fail_connect(key, ClientError::Closed),
            Stage::Handshake(_) | Stage::Draining { .. } => self.remove(key),
        }
    }

    /// The connection is over: tell the handler (once), then drop or drain the socket.
    fn end(&mut self, key: usize, info: CloseInfo, ending: Ending) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        slot.io.terminate = true;
        if let Stage::Open { proto, user } = &mut slot.stage {
            let (_, tx) = proto.split();
            let mut conn = Conn {
                tx,
                io: &mut slot.io,
                user,
                ctx: &mut self.ctx,
            };
            self.handler.on_close(&mut conn, &info);
            self.ctx.cork.clear();
        }
        slot.stage = Stage::Draining {
            ending,
            shut: false,
        };
        slot.io.since = self.now;
        slot.io.residue = Vec::new();
        self.drain_step(key);
    }

    fn drain_step(&mut self, key: usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let Stage::Draining { ending, shut } = &mut slot.stage else {
            return;
        };
        match ending {
            Ending::Drop => return self.remove(key),
            _ if !slot.io.out.is_empty() => {}
            Ending::Flush => return self.remove(key),
            Ending::AwaitEof => {}
            Ending::Linger => {
                if !*shut {
                    *shut = true;
                    let _ = slot.sock.shutdown(Shutdown::Write);
                }
            }
        }
        self.schedule(key);
    }

    fn remove(&mut self, key: usize) {
        if self.conns.contains(key) {
            let mut slot = self.conns.remove(key);
            let _ = self.poll.registry().deregister(&mut slot.sock);
        }
    }

    fn schedule(&mut self, key: usize) {
        let Some(slot) = self.conns.get(key) else {
            return;
        };
        let Some(deadline) = deadline_of(&self.settings, slot) else {
            return;
        };
        let deadline = deadline.max(self.now + 1);
        let gen = slot.gen;
        let slot = &mut self.conns[key];
        if slot.io.deadline > self.now && slot.io.deadline <= deadline {
            return; // an earlier entry is pending; it reschedules when it fires
        }
        slot.io.deadline = deadline;
        self.wheel.schedule(Entry {
            key,
            gen,
            tick: deadline,
        });
    }

    fn on_timer(&mut self, entry: Entry) {
        let now = self.now;
        let Some(slot) = self.conns.get_mut(entry.key) else {
            return;
        };
        if slot.gen != entry.gen || slot.io.deadline != entry.tick {
            return; // stale
        }
        slot.io.deadline = 0;
        let due = deadline_of(&self.settings, slot).is_some_and(|d| d <= now);
        if due {
            let key = entry.key;
            match &mut slot.stage {
                Stage::Handshake(_) | Stage::Draining { .. } => return self.remove(key),
                Stage::Connecting { .. } => return self.fail_connect(key, ClientError::Timeout),
                Stage::Open { proto, user } => {
                    if proto.close_state() != CloseState::Open {
                        return self.end(key, abnormal("close timeout"), Ending::Drop);
                    }
                    if self.settings.auto_ping && !slot.io.ping_sent {
                        slot.io.ping_sent = true;
                        let (_, tx) = proto.split();
                        let mut conn = Conn {
                            tx,
                            io: &mut slot.io,
                            user,
                            ctx: &mut self.ctx,
                        };
                        let _ = conn.ping(b"");
                        return self.after_callbacks(key);
                    }
                    return self.end(key, abnormal("idle timeout"), Ending::Drop);
                }
            }
        }
        self.schedule(entry.key);
    }

    fn drain_inbox(&mut self) {
        let mut commands = std::mem::take(&mut self.commands);
        self.inbox.drain(&mut commands);
        for cmd in commands.drain(..) {
            match cmd {
                Command::Send { id, kind, payload } => self.with_conn(id, |conn| {
                    let _ = conn.send_shared(kind, payload);
                }),
                Command::Close { id, code, reason } => self.with_conn(id, |conn| {
                    let _ = conn.close(code, &reason);
                }),
                Command::Terminate { id } => self.with_conn(id, |conn| conn.terminate()),
                Command::Connect { connector, tag } => {
                    if self.shutdown.is_some() {
                        self.handler
                            .on_connect_error(connector.url(), tag, &ClientError::Closed);
                    } else {
                        self.open_client(connector, tag);
                    }
                }
                Command::Shutdown { deadline } => self.begin_shutdown(deadline),
            }
        }
        self.commands = commands;
    }

    /// Runs `f` on the open connection `id`, if it still exists, then writes what it sent.
    fn with_conn(&mut self, id: ConnId, f: impl FnOnce(&mut Conn<'_, H::State>)) {
        let key = id.key as usize;
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        if slot.gen != id.gen {
            return;
        }
        let Stage::Open { proto, user } = &mut slot.stage else {
            return;
        };
        let (_, tx) = proto.split();
        let mut conn = Conn {
            tx,
            io: &mut slot.io,
            user,
            ctx: &mut self.ctx,
        };
        f(&mut conn);
        self.after_callbacks(key);
    }

    fn begin_shutdown(&mut self, deadline: Instant) {
        if let Some(mut acceptor) = self.acceptor.take() {
            let _ = self.poll.registry().deregister(acceptor.listener_mut());
        }
        self.shutdown = Some(deadline);
        let keys: Vec<(usize, u32)> = self.conns.iter().map(|(k, s)| (k, s.gen)).collect();
        for (key, gen) in keys {
            let Some(slot) = self.conns.get(key) else {
                continue;
            };
            match slot.stage {
                Stage::Handshake(_) => self.remove(key),
                Stage::Connecting { .. } => self.fail_connect(key, ClientError::Closed),
                Stage::Open { .. } => {
                    let id = ConnId {
                        worker: self.index,
                        key: key as u32,
                        gen,
                    };
                    self.with_conn(id, |conn| {
                        let _ = conn.close(CloseCode::GOING_AWAY, "server shutting down");
                    });
                }
                Stage::Draining { .. } => {}
            }
        }
    }
}

/// The tick the connection next needs attention, if any.
fn deadline_of<S>(s: &Settings, slot: &Slot<S>) -> Option<u64> {
    match &slot.stage {
        Stage::Handshake(_) => Some(slot.io.since + ticks(s.handshake_timeout)),
        Stage::Connecting { timeout, .. } => Some(slot.io.since + timeout),
        Stage::Open { proto, .. } => match proto.close_state() {
            CloseState::Open => s.idle_timeout.map(|idle| {
                let idle = ticks(idle);
                if s.auto_ping && !slot.io.ping_sent {
                    slot.io.last_read + (idle / 2).max(1)
                } else {
                    slot.io.last_read + idle
                }
            }),
            _ => Some(slot.io.since + ticks(s.close_timeout)),
        },
        Stage::Draining { .. } => Some(slot.io.since + ticks(s.close_timeout)),
    }
}

fn abnormal(reason: &str) -> CloseInfo {
    CloseInfo {
        code: CloseCode::ABNORMAL,
        reason: reason.to_owned(),
        clean: false,
        error: None,
    }
}

/// Appends a complete HTTP error response for a refused upgrade.
fn write_status(reject: &Reject, out: &mut Vec<u8>) {
    let phrase = handshake::reason_phrase(reject.status);
    let body = if reject.body.is_empty() {
        phrase
    } else {
        reject.body.as_str()
    };
    out.extend_from_slice(format!("HTTP/1.1 {} {}\r\n", reject.status, phrase).as_bytes());
    for (name, value) in &reject.headers {
        let bad = |s: &str| s.bytes().any(|b| b == b'\r' || b == b'\n') || s.is_empty();
        if bad(name) || value.bytes().any(|b| b == b'\r' || b == b'\n') || name.contains(':') {
            continue;
        }
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{}",
            body.len(),
            body
        )
        .as_bytes(),
    );
}

/// Starts a non-blocking TCP connect to the connector's first address (the proxy's or the
/// server's), bound to the options' local address if any.
fn connect_nonblocking(
    connector: &Connector,
) -> Result<(TcpStream, std::net::SocketAddr), ClientError> {
    use std::net::ToSocketAddrs;
    let target = connector
        .connect_addr()
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "host resolves to no address"))?;
    let socket = Socket::new(
        Domain::for_address(target),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    if let Some(local) = connector.options().local_addr {
        socket.bind(&std::net::SocketAddr::new(local, 0).into())?;
    }
    match socket.connect(&target.into()) {
        Ok(()) => {}
        Err(e)
            if e.raw_os_error() == Some(libc_einprogress())
                || e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e.into()),
    }
    Ok((TcpStream::from_std(socket.into()), target))
}

/// `EINPROGRESS` on Linux.
const fn libc_einprogress() -> i32 {
    115
}

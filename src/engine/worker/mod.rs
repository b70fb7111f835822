//! One worker: a thread with its own poller, listener, slab of connections, timer wheel and
//! inbox. All protocol decisions for its connections are made here, above the backend.
//!
//! This file is the loop (poll, read, frames and callbacks, writes, timers, the inbox); the
//! other stages of a connection's life have a file each: `upgrade.rs` (the server handshake),
//! `connect.rs` (the client side: connect, proxy phase, client handshake) and `lifecycle.rs`
//! (end of input, closing, drain, removal, shutdown).

use std::io::{self, Read, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::client::{ClientError, Connector};
use crate::engine::accept::Acceptor;
use crate::engine::conn::{Conn, ConnIo, Ctx};
use crate::engine::handler::Handler;
use crate::engine::inbox::{self, Command, Inbox, InboxSender};
use crate::engine::stats::WorkerStats;
use crate::engine::timer::{Entry, TimerWheel};
use crate::engine::Settings;
use crate::handler::{CloseInfo, ConnId, Message};
use crate::protocol::{CloseCode, CloseState, Config, Connection, Event, Role};

mod connect;
mod lifecycle;
mod upgrade;

use lifecycle::abnormal;

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

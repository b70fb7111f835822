//! One worker: a thread with its own poller, listener, slab of connections, timer wheel and
//! inbox. All protocol decisions for its connections are made here, above the backend.
//!
//! This file is the loop (poll, dispatch, stats); each concern has a file of its own:
//! `read.rs` (socket to protocol core to handler: the hot path), `write.rs` (cork, queue, the
//! step after callbacks), `timers.rs` (deadlines), `commands.rs` (the inbox), `upgrade.rs` (the
//! server handshake), `connect.rs` (the client side: connect, proxy phase, client handshake),
//! `lifecycle.rs` (end of input, closing, drain, removal, shutdown) and `tick.rs` (the
//! handler's own periodic turn, `on_tick`).

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::net::TcpStream;

use slab::Slab;

use crate::broadcast::local::Topics;
use crate::client::Connector;
use crate::engine::accept::Acceptor;
use crate::engine::conn::{ConnIo, Ctx, PoolCtx};
use crate::engine::fanout::{Counts, Hub};
use crate::engine::handler::Handler;
use crate::engine::inbox::{self, Command, Inbox, InboxSender};
use crate::engine::stats::WorkerStats;
use crate::engine::sys::waker::Waker;
use crate::engine::sys::{same_gen, Driver, Event};
use crate::engine::timer::TimerWheel;
use crate::engine::Settings;
use crate::handler::ConnId;
use crate::protocol::{Config, Connection};

mod adopt;
mod commands;
mod connect;
mod fanout;
mod flow;
mod lifecycle;
mod read;
mod tick;
mod timers;
mod tls;
// Behind proxies: PROXY protocol header and forwarding headers (proxied.rs).
pub(crate) mod proxied;
mod upgrade;
mod write;

use lifecycle::abnormal;

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
/// io_uring: a cork at least this large is moved into the queue instead of copied.
const CORK_MOVE: usize = 64 << 10;

/// A worker made but not started: its listener and inbox exist, so that every worker's inbox
/// can be known (the [`Hub`]) before any of them runs. The backend is made on the worker's own
/// thread (an io_uring ring with `SINGLE_ISSUER` belongs to the thread that makes it).
pub(crate) struct Prepared {
    backend: crate::Backend,
    acceptor: Option<Acceptor>,
    inbox: Inbox,
    waker: Arc<Waker>,
}

/// Makes a worker's listener and inbox for a backend of kind `backend` (resolved); the sender
/// goes into the [`Hub`].
pub(crate) fn prepare(
    listener: Option<std::net::TcpListener>,
    backend: crate::Backend,
) -> io::Result<(Prepared, InboxSender)> {
    let waker = Arc::new(Waker::new()?);
    let acceptor = listener.map(|l| Acceptor::new(mio::net::TcpListener::from_std(l)));
    let (sender, inbox) = inbox::inbox(waker.clone());
    Ok((
        Prepared {
            backend,
            acceptor,
            inbox,
            waker,
        },
        sender,
    ))
}

/// The worker's backend, made on its thread; an io_uring ring that cannot be made there (the
/// probe at start succeeded, so this is rare: a memory limit) falls back to epoll, saying so.
fn make_driver(index: usize, p: &Prepared) -> io::Result<Driver> {
    let listener = p.acceptor.as_ref().map(Acceptor::raw_fd);
    match Driver::new(p.backend, listener, p.waker.raw_fd()) {
        Err(e) if p.backend == crate::Backend::IoUring => {
            eprintln!("wsx: worker {index}: io_uring ring failed ({e}); using epoll");
            Driver::new(crate::Backend::Epoll, listener, p.waker.raw_fd())
        }
        r => r,
    }
}

/// Starts worker `index` on its own thread. `factory` makes the handler on that thread.
pub(crate) fn spawn<H, F>(
    index: usize,
    prepared: Prepared,
    settings: Arc<Settings>,
    hub: Arc<Hub>,
    factory: F,
    core: Option<core_affinity::CoreId>,
    stats: Arc<WorkerStats>,
) -> io::Result<JoinHandle<()>>
where
    H: Handler,
    F: FnOnce(usize) -> H + Send + 'static,
{
    std::thread::Builder::new()
        .name(format!("wsx-worker-{index}"))
        .spawn(move || {
            if let Some(core) = core {
                core_affinity::set_for_current(core);
            }
            let io = match make_driver(index, &prepared) {
                Ok(io) => io,
                Err(e) => {
                    eprintln!("wsx: worker {index} cannot start: {e}");
                    return;
                }
            };
            let handler = factory(index);
            let mut worker = Worker::new(index, prepared, io, handler, settings, hub, stats);
            worker.ctx.pool = worker.settings.deflate_pool.clone().map(|pool| PoolCtx {
                pool,
                // The worker's own inbox, where compressed frames come back.
                inbox: worker.ctx.hub.inboxes[index].clone(),
                threshold: worker.settings.pool.threshold,
                max_size: worker.settings.pool.max_size,
                next_ticket: 0,
            });
            worker.run();
        })
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

/// A connection's place in the worker's slab (its fields are the worker's own).
pub(crate) struct Slot<S> {
    sock: TcpStream,
    gen: u32,
    io: ConnIo,
    stage: Stage<S>,
    /// The TLS session of a `wss://` connection (see `tls.rs`).
    tls: Option<Box<crate::engine::tls::Tls>>,
}

impl<S> Slot<S> {
    /// Whether every byte queued for the peer is written (the TLS records too).
    fn all_written(&self) -> bool {
        self.io.out.is_empty() && !matches!(&self.tls, Some(t) if !t.wire.is_empty())
    }
}

#[derive(Debug, Default)]
struct LocalStats {
    /// Connections taken into the slab (accepted, adopted, connecting out).
    opened: u64,
    /// Connections removed from it.
    closed: u64,
    messages_in: u64,
    bytes_in: u64,
    bytes_out: u64,
}

struct Worker<H: Handler> {
    index: u16,
    io: Driver,
    /// The inbox's wake-up (the epoll backend resets it after each wake).
    waker: Arc<Waker>,
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
    fan: fanout::FanScratch,
    /// Commands were left in the inbox last turn.
    inbox_more: bool,
    /// io_uring: connections whose input ended while they were paused; the end is theirs once
    /// the bytes kept before it are used (epoll sees it then by itself).
    eof_after_residue: Vec<(usize, u32)>,
    /// The handler's tick, when the engine was built with one.
    tick: Option<tick::TickClock>,
    /// Connections an `on_tick` sent to, kept for the next tick's (no allocation per tick).
    tick_touched: Vec<(usize, u32)>,
    /// TLS: records on their way into a connection's wire queue, and gathered plaintext.
    tls_scratch: Vec<u8>,
    /// TLS under epoll: ciphertext read from a socket (allocated on the first TLS read).
    tls_in: Vec<u8>,
}

/// Ticks to wait for `d`: rounded up, plus one because the current tick began up to one tick
/// ago, so that a timeout never fires early (it fires at most two ticks late).
fn ticks(d: Duration) -> u64 {
    d.as_millis().div_ceil(TICK.as_millis()) as u64 + 1
}

impl<H: Handler> Worker<H> {
    fn new(
        index: usize,
        prepared: Prepared,
        io: Driver,
        handler: H,
        settings: Arc<Settings>,
        hub: Arc<Hub>,
        stats: Arc<WorkerStats>,
    ) -> Self {
        let Prepared {
            acceptor,
            inbox,
            waker,
            ..
        } = prepared;
        let topics = Topics::new(index, hub.directory.clone(), settings.policies.clone());
        let proto_config = Config {
            limits: settings.limits,
            ..Config::default()
        };
        Worker {
            index: index as u16,
            io,
            waker,
            acceptor,
            conns: Slab::new(),
            handler,
            ctx: Ctx {
                cork: Vec::new(),
                settings: settings.clone(),
                messages_out: 0,
                dropped: 0,
                paused: 0,
                now: 0,
                queued: false,
                chain: Vec::new(),
                chain_len: 0,
                index,
                topics,
                hub,
                outgoing: Vec::new(),
                published: Counts::default(),
                pool: None,
            },
            tick: settings.tick.map(tick::TickClock::new),
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
            fan: fanout::FanScratch::default(),
            inbox_more: false,
            eof_after_residue: Vec::new(),
            tick_touched: Vec::new(),
            tls_scratch: Vec::new(),
            tls_in: Vec::new(),
        }
    }

    fn run(&mut self) {
        let mut events = Vec::with_capacity(1024);
        let mut due = Vec::new();
        loop {
            // io_uring: the turn's sends go with the wait, in one system call.
            self.submit_sends();
            let timeout = if self.pending.is_empty() && !self.inbox_more {
                TICK
            } else {
                Duration::ZERO
            };
            let timeout = self.until_tick(timeout);
            events.clear();
            if self.io.wait(timeout, &mut events).is_err() {
                // The backend itself failed: nothing more can be done on this worker.
                break;
            }
            let before = self.now;
            self.now = (self.start.elapsed().as_millis() / TICK.as_millis()) as u64;
            self.ctx.now = self.now;
            let ticked = self.now != before;
            if ticked && self.acceptor.as_ref().is_some_and(Acceptor::stalled) {
                // No readiness event follows a failed accept (see engine/accept.rs).
                self.retry_accept();
            }
            if self.inbox_more {
                self.drain_inbox();
            }
            for event in events.drain(..) {
                match event {
                    Event::Ready {
                        key,
                        readable,
                        writable,
                        read_closed,
                    } => {
                        if writable {
                            self.writable(key);
                        }
                        if readable {
                            self.readable(key, read_closed);
                        }
                    }
                    Event::Received {
                        key,
                        gen,
                        buf,
                        offset,
                        len,
                        last,
                    } => self.received(key, gen, (buf, offset, last), len),
                    Event::Sent {
                        key,
                        gen,
                        result,
                        submitted,
                        accounted,
                    } => {
                        if self.current(key, gen) {
                            self.sent(key, result, submitted, accounted);
                        }
                    }
                    Event::Closed { key, gen } => {
                        if self.current(key, gen) {
                            self.closed(key);
                        }
                    }
                    Event::Writable { key, gen } => {
                        if self.current(key, gen) {
                            self.writable(key);
                        }
                    }
                    Event::Acceptable => self.accept(),
                    Event::Accepted(sock) => self.accepted(sock),
                    Event::AcceptFailed(e) => {
                        if let Some(acceptor) = &mut self.acceptor {
                            acceptor.failed(&e);
                        }
                    }
                    Event::Wake => {
                        if !self.io.completes() {
                            self.waker.reset();
                        }
                        self.drain_inbox();
                    }
                }
            }
            for key in std::mem::take(&mut self.pending) {
                // The event that put it here may have carried the peer's FIN: read to the end.
                self.readable(key, true);
            }
            self.run_tick();
            if !self.ctx.outgoing.is_empty() {
                // Every publish of this turn, batched: one vectored write per subscriber.
                self.flush_outgoing();
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
        s.opened.store(self.local.opened, Ordering::Relaxed);
        s.closed.store(self.local.closed, Ordering::Relaxed);
        s.messages_in
            .store(self.local.messages_in, Ordering::Relaxed);
        s.messages_out
            .store(self.ctx.messages_out, Ordering::Relaxed);
        s.bytes_in.store(self.local.bytes_in, Ordering::Relaxed);
        s.bytes_out.store(self.local.bytes_out, Ordering::Relaxed);
        s.dropped.store(self.ctx.dropped, Ordering::Relaxed);
        let queued = crate::engine::outbound::queued();
        s.queued_bytes.store(queued.bytes as u64, Ordering::Relaxed);
        s.queued_peak.store(queued.peak as u64, Ordering::Relaxed);
        s.conn_queued_peak
            .store(queued.conn_peak as u64, Ordering::Relaxed);
        // Release: a reader that sees a connection paused sees the bytes read before it.
        s.paused.store(self.ctx.paused, Ordering::Release);
        if let Some(acceptor) = &self.acceptor {
            s.shed.store(acceptor.shed(), Ordering::Relaxed);
        }
        let p = &self.ctx.published;
        s.delivered.store(p.delivered, Ordering::Relaxed);
        s.delivery_dropped.store(p.dropped, Ordering::Relaxed);
        s.conflated.store(p.conflated, Ordering::Relaxed);
        s.slow_closed.store(p.closed, Ordering::Relaxed);
        s.compressed_per_subscriber
            .store(p.compressed_per_subscriber, Ordering::Relaxed);
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
        s.topics
            .store(self.ctx.topics.len() as u64, Ordering::Relaxed);
        s.topic_heap
            .store(self.ctx.topics.heap_size() as u64, Ordering::Relaxed);
    }

    /// Accepts what is queued (epoll; see engine/accept.rs for what happens when descriptors
    /// run out).
    fn accept(&mut self) {
        loop {
            let Some(acceptor) = &mut self.acceptor else {
                return;
            };
            let Some((sock, peer)) = acceptor.accept() else {
                return;
            };
            self.admit(sock, peer);
        }
    }

    /// A connection the io_uring backend accepted.
    fn accepted(&mut self, sock: TcpStream) {
        match sock.peer_addr() {
            Ok(peer) => self.admit(sock, peer),
            Err(_) => drop(sock), // reset before we saw it
        }
    }

    /// Accepting failed earlier: try again (epoll: accept now; io_uring: re-arm the accept).
    fn retry_accept(&mut self) {
        if self.io.completes() {
            if let Some(acceptor) = &mut self.acceptor {
                acceptor.clear_stall();
            }
            self.io.resume_accepting();
        } else {
            self.accept();
        }
    }

    /// Takes an accepted connection into the slab, or refuses it over the connection limit.
    fn admit(&mut self, sock: TcpStream, peer: std::net::SocketAddr) {
        if self.conns.len() >= self.settings.max_connections {
            if let Some(acceptor) = &mut self.acceptor {
                acceptor.refuse(sock);
            }
            return;
        }
        let tls = match &self.settings.tls {
            None => None,
            Some(t) => match crate::engine::tls::Tls::server(t.config()) {
                Ok(tls) => Some(Box::new(tls)),
                Err(_) => return, // rustls refused its own configuration: nothing to serve
            },
        };
        let Ok(id) = self.register(&sock, false) else {
            return;
        };
        let key = id.key as usize;
        let inserted = self.conns.insert(Slot {
            sock,
            gen: id.gen,
            io: ConnIo::new(id, peer, self.now),
            stage: Stage::Handshake(Vec::new()),
            tls,
        });
        debug_assert_eq!(
            inserted, key,
            "the slot takes the key its socket was registered under"
        );
        self.local.opened += 1;
        self.await_proxy_header(key); // proxied.rs: a PROXY listener reads its header first
        self.schedule(key);
    }

    /// Sets a new connection's socket up (`TCP_NODELAY` as configured) and hands it to the
    /// backend under the slab key its slot will get (`connecting`: a client connect in
    /// progress). Returns the connection's id; the caller inserts its slot next.
    fn register(&mut self, sock: &TcpStream, connecting: bool) -> io::Result<ConnId> {
        if self.settings.nodelay {
            let _ = sock.set_nodelay(true);
        }
        let key = self.conns.vacant_key();
        let gen = self.next_gen.wrapping_add(1);
        self.io.add(key, gen, sock, connecting)?;
        self.next_gen = gen;
        Ok(ConnId {
            worker: self.index,
            key: key as u32,
            gen,
        })
    }

    /// Whether the connection in `key` is the one an io_uring event names.
    fn current(&self, key: usize, gen: u32) -> bool {
        self.conns.get(key).is_some_and(|s| same_gen(s.gen, gen))
    }

    /// io_uring: the sends asked for so far go now, in one submission, and those the kernel
    /// completed at once are applied to their queues (their events come with the next wait).
    fn sync_sends(&mut self) {
        self.submit_sends();
        let Driver::Uring(u) = &mut self.io else {
            return;
        };
        let from = u.submit_early();
        for ev in &mut u.early_mut()[from..] {
            if let Event::Sent {
                key,
                gen,
                result,
                accounted,
                ..
            } = ev
            {
                let slot = self.conns.get_mut(*key);
                if let Some(slot) = slot.filter(|s| !*accounted && same_gen(s.gen, *gen)) {
                    let n = (*result).max(0) as usize;
                    match &mut slot.tls {
                        Some(tls) => tls.wire.complete(n),
                        None => slot.io.out.complete(n),
                    }
                    *accounted = true;
                }
            }
        }
    }

    /// io_uring: one send per connection that queued bytes this turn, queued for the next
    /// submission.
    fn submit_sends(&mut self) {
        let Driver::Uring(u) = &mut self.io else {
            return;
        };
        let list = u.take_sends();
        for &key in &list {
            if let Some(slot) = self.conns.get_mut(key) {
                match &mut slot.tls {
                    Some(tls) => {
                        // Plaintext queued since (a frame back from the deflate pool) is
                        // sealed first; `sent` reports it as written.
                        tls.seal(&mut slot.io.out, &mut self.tls_scratch);
                        u.send(key, &mut tls.wire);
                    }
                    None => u.send(key, &mut slot.io.out),
                }
            }
        }
        u.sends_done(list);
    }
}

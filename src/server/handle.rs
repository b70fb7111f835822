//! [`ServerHandle`]: a running server or client engine, controlled from any thread, and
//! [`HandleError`].

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{ConnId, DeflatePoolStats, Footprint, Message, Stats, WorkerStats};
use crate::broadcast::directory::Directory;
use crate::broadcast::frame::{Audience, Published};
use crate::broadcast::{LastValueStats, PublishOptions, TopicStats};
use crate::client::{ClientError, ClientOptions, Connector, Url};
use crate::engine::fanout::{Hub, Reach};
use crate::engine::handler::Handler;
use crate::engine::inbox::{Command, InboxSender};
use crate::engine::{self, Settings};
use crate::protocol::{CloseCode, MessageKind};

#[derive(Debug)]
struct HandleInner {
    settings: Arc<Settings>,
    hub: Arc<Hub>,
    stats: Vec<Arc<WorkerStats>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// The deflate pool, stopped once the workers have ended.
    pool: Option<Arc<engine::deflate_pool::DeflatePool>>,
    local_addr: SocketAddr,
    /// Round-robin over workers for client connections.
    next_worker: AtomicUsize,
    /// The NATS backplane, closed once the workers have ended.
    #[cfg(feature = "nats")]
    backplane: Option<Arc<crate::cluster::Link>>,
}

/// Controls a running server from any thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    inner: Arc<HandleInner>,
}

/// A [`ServerHandle`] that does not keep the server's state alive (held by the backplane's
/// thread, which the handle owns).
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "nats"), allow(dead_code))]
pub(crate) struct WeakHandle(Weak<HandleInner>);

#[cfg_attr(not(feature = "nats"), allow(dead_code))]
impl WeakHandle {
    /// The handle, while the server's state lives.
    pub(crate) fn upgrade(&self) -> Option<ServerHandle> {
        self.0.upgrade().map(|inner| ServerHandle { inner })
    }
}

/// A [`ServerHandle`] command could not be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandleError {
    /// The id names no worker of this server.
    #[error("no such connection")]
    NoSuchConnection,
    /// The worker has stopped.
    #[error("server is shut down")]
    ShutDown,
    /// A publish did not reach a worker whose inbox holds more than
    /// [`Builder::publish_backlog`](super::Builder::publish_backlog) publishes already (the publisher is faster than that
    /// worker delivers); that worker's subscribers miss it. Counted in
    /// [`Stats::publish_backlogged`].
    #[error("a worker's publish backlog is full")]
    Backlogged,
}

fn reach_result(reach: Reach) -> Result<(), HandleError> {
    match reach {
        Reach::All => Ok(()),
        Reach::Backlogged => Err(HandleError::Backlogged),
        Reach::ShutDown => Err(HandleError::ShutDown),
    }
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The IO backend the workers run on: [`Backend::Epoll`](crate::Backend::Epoll) or
    /// [`Backend::IoUring`](crate::Backend::IoUring), never `Auto`.
    pub fn backend(&self) -> crate::Backend {
        self.inner.settings.backend
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.inner.hub.inboxes.len()
    }

    fn inbox(&self, id: ConnId) -> Result<&InboxSender, HandleError> {
        self.inner
            .hub
            .inboxes
            .get(id.worker())
            .ok_or(HandleError::NoSuchConnection)
    }

    fn command(&self, id: ConnId, cmd: Command) -> Result<(), HandleError> {
        if self.inbox(id)?.send(cmd) {
            Ok(())
        } else {
            Err(HandleError::ShutDown)
        }
    }

    /// Sends a message to connection `id` from any thread. Delivery is asynchronous: a
    /// connection that is gone by the time the worker looks is skipped, and a send the
    /// connection's backpressure refuses is dropped (counted in [`Stats::dropped`]); use
    /// [`ServerHandle::send_tracked`] to hear of either.
    ///
    /// # Errors
    ///
    /// [`HandleError`] when the command cannot reach the worker.
    pub fn send(
        &self,
        id: ConnId,
        kind: MessageKind,
        payload: impl Into<Bytes>,
    ) -> Result<(), HandleError> {
        self.command(
            id,
            Command::Send {
                id,
                kind,
                payload: payload.into(),
                token: None,
            },
        )
    }

    /// Sends a message to connection `id` from any thread and reports what became of it to
    /// the worker's [`Handler`]: [`Handler::on_sent`] with `token` once its last byte has been
    /// written to the kernel, or [`Handler::on_send_dropped`] with `token` and a
    /// [`DropReason`](super::DropReason) if it did not go (backpressure, or the connection was closing or gone).
    /// A message accepted but still unwritten when the connection ends is listed by
    /// [`Conn::unsent_tokens`](super::Conn::unsent_tokens) in [`Handler::on_close`] instead.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use wsx::{Conn, ConnId, DropReason, Handler, MessageKind, Server};
    ///
    /// struct Report;
    /// impl Handler for Report {
    ///     type State = ();
    ///     fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
    ///         println!("open: {}", conn.id());
    ///     }
    ///     fn on_sent(&mut self, conn: &mut Conn<'_, ()>, token: u64) {
    ///         println!("{token} went to {}", conn.id());
    ///     }
    ///     fn on_send_dropped(&mut self, id: ConnId, token: u64, reason: DropReason) {
    ///         println!("{token} did not go to {id}: {reason:?}");
    ///     }
    /// }
    ///
    /// let server = Server::builder().port(0).start(|_| Report)?;
    /// // Later, with an id the application kept (from `on_open`):
    /// # fn later(server: &wsx::ServerHandle, id: ConnId) {
    /// server.send_tracked(id, MessageKind::Text, "tick", 7).unwrap();
    /// # }
    /// # let _ = (later, server);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`HandleError`] when the command cannot reach the worker (no callback follows then).
    pub fn send_tracked(
        &self,
        id: ConnId,
        kind: MessageKind,
        payload: impl Into<Bytes>,
        token: u64,
    ) -> Result<(), HandleError> {
        self.command(
            id,
            Command::Send {
                id,
                kind,
                payload: payload.into(),
                token: Some(token),
            },
        )
    }

    /// Sends a text message to connection `id`.
    ///
    /// # Errors
    ///
    /// As [`ServerHandle::send`].
    pub fn send_text(&self, id: ConnId, text: impl Into<String>) -> Result<(), HandleError> {
        self.send(id, MessageKind::Text, Bytes::from(text.into()))
    }

    /// Starts the closing handshake of connection `id`.
    ///
    /// # Errors
    ///
    /// As [`ServerHandle::send`].
    pub fn close(
        &self,
        id: ConnId,
        code: CloseCode,
        reason: impl Into<String>,
    ) -> Result<(), HandleError> {
        self.command(
            id,
            Command::Close {
                id,
                code,
                reason: reason.into(),
            },
        )
    }

    /// Drops connection `id` without a closing handshake.
    ///
    /// # Errors
    ///
    /// As [`ServerHandle::send`].
    pub fn terminate(&self, id: ConnId) -> Result<(), HandleError> {
        self.command(id, Command::Terminate { id })
    }

    /// Opens a client connection to `url` on one of the workers (round-robin), driven by that
    /// worker's [`Handler`] like an accepted one: `on_open`, `on_message`… with
    /// [`Conn::role`](super::Conn::role) `Client` and [`Conn::tag`](super::Conn::tag) `tag`, and [`Handler::client_state`] (by default
    /// `State::default()`) as its state. A
    /// failure before the connection opens goes to [`Handler::on_connect_error`].
    ///
    /// An IP literal (the server's, or the proxy's) is connected at once; a host name is
    /// resolved off the workers, by two resolver threads that the engine shares, and counts
    /// against the handshake timeout: a name still unresolved then fails with
    /// [`ClientError::Timeout`], and one that does not resolve with [`ClientError::Io`].
    ///
    /// # Errors
    ///
    /// An invalid URL, a `wss://` URL whose TLS configuration fails, or a stopped engine, at
    /// once.
    pub fn connect(&self, url: &str, options: ClientOptions, tag: u64) -> Result<(), ClientError> {
        let connector = Connector::new(Url::parse(url)?, options)?;
        let cmd = Command::Connect {
            connector: Box::new(connector),
            tag,
        };
        if self.send_next(cmd) {
            Ok(())
        } else {
            Err(ClientError::Closed)
        }
    }

    /// Sends `cmd` to the workers in turn (round robin); false when that worker has stopped.
    pub(super) fn send_next(&self, cmd: Command) -> bool {
        let n = self.inner.hub.inboxes.len();
        let worker = self.inner.next_worker.fetch_add(1, Ordering::Relaxed) % n;
        self.inner.hub.inboxes[worker].send(cmd)
    }

    /// The settings the workers run with.
    pub(super) fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Publishes `message` to every subscriber of `topic` on every worker: the frame is built
    /// once on this thread, and each worker with subscribers gets one inbox push. A topic
    /// nobody subscribes to costs a lookup and no allocation (unless it keeps its last values,
    /// [`Builder::last_value_for`](crate::ServerBuilder::last_value_for)). Outcomes per subscriber are
    /// counted in [`ServerHandle::topic_stats`].
    ///
    /// # Errors
    ///
    /// [`HandleError::ShutDown`] when a worker that should get it has stopped.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use wsx::{Message, Server};
    ///
    /// struct Subscriber;
    /// impl wsx::Handler for Subscriber {
    ///     type State = ();
    ///     fn on_open(&mut self, conn: &mut wsx::Conn<'_, ()>) {
    ///         conn.subscribe("ticks");
    ///     }
    /// }
    /// let server = Server::builder().start(|_| Subscriber)?;
    /// std::thread::spawn(move || loop {
    ///     let _ = server.publish("ticks", Message::Text("{\"px\":1}"));
    ///     std::thread::sleep(std::time::Duration::from_millis(100));
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn publish(&self, topic: &str, message: Message<'_>) -> Result<(), HandleError> {
        self.publish_with(topic, message, &PublishOptions::default())
    }

    /// [`ServerHandle::publish`] with `options` (`include_self` does not apply here).
    ///
    /// # Errors
    ///
    /// As [`ServerHandle::publish`].
    pub fn publish_with(
        &self,
        topic: &str,
        message: Message<'_>,
        options: &PublishOptions<'_>,
    ) -> Result<(), HandleError> {
        let directory = &self.inner.hub.directory;
        let shared = directory.get(topic);
        let built = directory.build(
            topic,
            shared.as_ref(),
            options.key,
            message,
            options.compress,
            None,
        );
        let Some(built) = built else {
            // No subscriber on this node; other nodes may have some.
            if let Some(remote) = directory.remote() {
                let payload = Bytes::copy_from_slice(message.as_bytes());
                remote.publish(topic, options.key, message.kind(), payload, false);
            }
            return Ok(());
        };
        if let Some(shared) = &shared {
            shared.published.fetch_add(1, Ordering::Relaxed);
        }
        let message = built.message;
        if let Some(remote) = directory.remote() {
            let payload = message.payload_bytes();
            remote.publish(topic, options.key, message.kind, payload, built.keeps);
        }
        self.compress_large(&message);
        reach_result(self.inner.hub.send_to_workers(&message, None))
    }

    /// Delivers a message that came from the backplane to this node's subscribers of `topic`,
    /// through the same encode-once path as [`ServerHandle::publish`], and to nobody else (it
    /// is never published again). Returns false when this node has no subscriber of `topic`
    /// any more.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn fan_in(&self, topic: &str, key: Option<&str>, message: Message<'_>) -> bool {
        let directory = &self.inner.hub.directory;
        let shared = directory.get(topic);
        // A publish made on another node is this node's newest value too.
        let Some(built) = directory.build(topic, shared.as_ref(), key, message, true, None) else {
            return false;
        };
        let message = built.message;
        self.compress_large(&message);
        // A worker whose inbox is over the backlog misses it (counted in Stats). Sent even
        // when no worker had subscribers a moment ago: one that joined since, after this was
        // recorded, must get it.
        let _ = self.inner.hub.send_to_workers(&message, None);
        shared.is_some()
    }

    /// Keeps `message`, a value of last-value topic `topic` read back from the backplane's
    /// bucket, unless this node has a value of its key recorded after `since` (newer than
    /// what was read) or the same one; a value kept goes to this node's subscribers of
    /// `topic` as a publish. True if kept.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn fill_last_value(
        &self,
        topic: &str,
        key: Option<&str>,
        message: Message<'_>,
        since: u64,
    ) -> bool {
        let directory = &self.inner.hub.directory;
        let Some(last) = directory.last_values() else {
            return false;
        };
        let name: Arc<str> = directory
            .get(topic)
            .map_or_else(|| topic.into(), |s| s.name.clone());
        let message = Published::new(
            Audience::Topic(name.clone()),
            key.map(Into::into),
            message,
            true,
            None,
        );
        if !last.fill(&name, &message, since) {
            return false;
        }
        self.compress_large(&message);
        // A worker whose inbox is over the backlog misses it (counted in Stats).
        let _ = self.inner.hub.send_to_workers(&message, None);
        true
    }

    /// Sends `message` to every open accepted connection on every worker (ws's
    /// `wss.clients.forEach(c => c.send(m))`), framed once.
    ///
    /// # Errors
    ///
    /// As [`ServerHandle::publish`].
    pub fn broadcast(&self, message: Message<'_>) -> Result<(), HandleError> {
        let message = Published::new(Audience::All, None, message, true, None);
        self.compress_large(&message);
        reach_result(self.inner.hub.send_to_workers(&message, None))
    }

    /// A large publish from outside the workers is compressed here, once, on the publishing
    /// thread (when the server offers permessage-deflate), so that no worker stalls its other
    /// connections on it; smaller ones are compressed by the first worker that needs them.
    fn compress_large(&self, message: &Published) {
        let s = &self.inner.settings;
        if let Some(options) = &s.deflate {
            let len = message.payload().len();
            // (Recipients compress a publish only within `max_compress_size`.)
            if message.compress && len >= s.pool.threshold && len <= options.max_compress_size {
                let _ = message.deflated(options);
            }
        }
    }

    /// The counters of the last-value store ([`Builder::last_value_for`](crate::ServerBuilder::last_value_for));
    /// all zero when no prefix keeps values.
    pub fn last_value_stats(&self) -> LastValueStats {
        self.inner
            .hub
            .directory
            .last_values()
            .map(|l| l.stats())
            .unwrap_or_default()
    }

    /// Forgets the last value of `key` in `topic` (`None`: the one published without a key),
    /// so that new subscribers no longer get it (a delisted symbol, say). True if there was one.
    pub fn forget_last_value(&self, topic: &str, key: Option<&str>) -> bool {
        self.inner
            .hub
            .directory
            .last_values()
            .is_some_and(|l| l.forget(topic, key))
    }

    /// Forgets every last value of `topic`; returns how many there were.
    pub fn forget_last_values(&self, topic: &str) -> usize {
        self.inner
            .hub
            .directory
            .last_values()
            .map_or(0, |l| l.forget_topic(topic))
    }

    /// Connections subscribed to `topic`, over all workers.
    pub fn subscribers(&self, topic: &str) -> u64 {
        self.topic_stats(topic).map_or(0, |s| s.subscribers)
    }

    /// The counters of `topic`, while it has subscribers (a topic is forgotten, counters and
    /// all, when its last subscriber leaves).
    pub fn topic_stats(&self, topic: &str) -> Option<TopicStats> {
        self.inner.hub.directory.get(topic).map(|t| t.stats())
    }

    /// Counters summed over the workers.
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        for w in &self.inner.stats {
            s.connections += w.connections.load(Ordering::Relaxed);
            s.opened += w.opened.load(Ordering::Relaxed);
            s.closed += w.closed.load(Ordering::Relaxed);
            s.messages_in += w.messages_in.load(Ordering::Relaxed);
            s.messages_out += w.messages_out.load(Ordering::Relaxed);
            s.bytes_in += w.bytes_in.load(Ordering::Relaxed);
            s.bytes_out += w.bytes_out.load(Ordering::Relaxed);
            s.shed += w.shed.load(Ordering::Relaxed);
            s.delivered += w.delivered.load(Ordering::Relaxed);
            s.delivery_dropped += w.delivery_dropped.load(Ordering::Relaxed);
            s.conflated += w.conflated.load(Ordering::Relaxed);
            s.slow_closed += w.slow_closed.load(Ordering::Relaxed);
            s.compressed_per_subscriber += w.compressed_per_subscriber.load(Ordering::Relaxed);
            s.dropped += w.dropped.load(Ordering::Relaxed);
        }
        s.publish_backlogged = self.inner.hub.refused.load(Ordering::Relaxed);
        s
    }

    /// Sizes of the workers' structures: the wheel and slab sizes published once per timer
    /// tick (100 ms), the queue counts once per turn of each worker's loop.
    #[doc(hidden)]
    pub fn footprint(&self) -> Footprint {
        let mut f = Footprint::default();
        for w in &self.inner.stats {
            f.paused += w.paused.load(Ordering::Acquire);
            f.timer_entries += w.timer_entries.load(Ordering::Relaxed);
            f.timer_capacity += w.timer_capacity.load(Ordering::Relaxed);
            f.slab_capacity += w.slab_capacity.load(Ordering::Relaxed);
            f.topics += w.topics.load(Ordering::Relaxed);
            f.topic_heap += w.topic_heap.load(Ordering::Relaxed);
            f.queued_bytes += w.queued_bytes.load(Ordering::Relaxed);
            f.queued_peak += w.queued_peak.load(Ordering::Relaxed);
            f.conn_queued_peak = f
                .conn_queued_peak
                .max(w.conn_queued_peak.load(Ordering::Relaxed));
        }
        f
    }

    /// Graceful shutdown: stop accepting, send close 1001 to every connection, wait for the
    /// closing handshakes (and for queued messages to be written) up to `grace`, then drop what
    /// is left. Returns at once; [`ServerHandle::wait`] waits for the end.
    pub fn shutdown(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        for w in &self.inner.hub.inboxes {
            let _ = w.send(Command::Shutdown { deadline });
        }
    }

    /// Blocks until every worker has ended (after [`ServerHandle::shutdown`]), then stops the
    /// deflate pool and joins its threads.
    pub fn wait(&self) {
        let threads =
            std::mem::take(&mut *self.inner.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
        if let Some(pool) = &self.inner.pool {
            pool.shutdown();
        }
        #[cfg(feature = "nats")]
        if let Some(link) = &self.inner.backplane {
            link.close();
        }
    }

    /// The counters of this node's NATS backplane; `None` without one.
    #[cfg(feature = "nats")]
    pub fn backplane_stats(&self) -> Option<crate::cluster::BackplaneStats> {
        self.inner.backplane.as_ref().map(|l| l.stats())
    }

    /// What the backplane's NATS client last reported going wrong — `"NATS server:
    /// authorization violation"`, a TLS error, a refused connection — while it has not
    /// connected since; `None` once connected, and without a backplane.
    #[cfg(feature = "nats")]
    pub fn backplane_error(&self) -> Option<String> {
        self.inner.backplane.as_ref().and_then(|l| l.last_error())
    }

    /// This node's name on NATS (sent with each of its publishes); `None` without a
    /// backplane.
    #[cfg(feature = "nats")]
    pub fn backplane_node(&self) -> Option<&str> {
        self.inner.backplane.as_ref().map(|l| l.node())
    }

    /// The deflate pool's counters (all zero when the server has no pool).
    pub fn deflate_pool_stats(&self) -> DeflatePoolStats {
        self.inner
            .pool
            .as_ref()
            .map_or_else(DeflatePoolStats::default, |p| p.stats())
    }
}

/// Starts `workers` workers for a server or a client engine: the first ones with the
/// `listeners` (a client engine has none), each making its [`Handler`] with `factory`; with
/// `start_pool`, the deflate pool too.
pub(crate) fn launch<H, F>(
    listeners: Vec<TcpListener>,
    local_addr: SocketAddr,
    workers: usize,
    pin: bool,
    settings: Settings,
    start_pool: bool,
    factory: F,
) -> io::Result<ServerHandle>
where
    H: Handler,
    F: Fn(usize, &ServerHandle) -> H + Send + Sync + 'static,
{
    let mut listeners: Vec<Option<TcpListener>> = listeners.into_iter().map(Some).collect();
    listeners.resize_with(workers, || None);
    let cores = if pin {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut settings = settings;
    settings.backend = engine::sys::select(settings.backend)?;
    if start_pool {
        let pool =
            engine::deflate_pool::DeflatePool::new(settings.pool.threads, settings.pool.queue)?;
        settings.deflate_pool = Some(Arc::new(pool));
    }
    let pool = settings.deflate_pool.clone();
    // Every worker's inbox exists before any worker runs, so that each can publish to all.
    let mut prepared = Vec::new();
    let mut inboxes = Vec::new();
    for listener in listeners {
        let (p, inbox) = engine::worker::prepare(listener, settings.backend)?;
        prepared.push(p);
        inboxes.push(inbox);
    }
    #[cfg(feature = "nats")]
    let backplane = match &settings.backplane {
        Some(config) => Some(crate::cluster::Link::start(
            config,
            settings.limits.max_message_size,
        )?),
        None => None,
    };
    #[cfg(feature = "nats")]
    let remote = backplane
        .clone()
        .map(|l| l as Arc<dyn crate::broadcast::remote::Remote>);
    #[cfg(not(feature = "nats"))]
    let remote = None;
    let hub = Arc::new(Hub {
        directory: Arc::new(
            Directory::new(inboxes.len(), remote).with_last_values(&settings.last_values),
        ),
        inboxes,
        backlog: settings.publish_backlog,
        refused: AtomicU64::new(0),
    });
    let stats: Vec<Arc<WorkerStats>> = (0..prepared.len())
        .map(|_| Arc::new(WorkerStats::default()))
        .collect();
    let settings = Arc::new(settings);
    let handle = ServerHandle {
        inner: Arc::new(HandleInner {
            settings: settings.clone(),
            hub: hub.clone(),
            stats: stats.clone(),
            threads: Mutex::new(Vec::new()),
            pool,
            local_addr,
            next_worker: AtomicUsize::new(0),
            #[cfg(feature = "nats")]
            backplane: backplane.clone(),
        }),
    };
    #[cfg(feature = "nats")]
    if let Some(link) = &backplane {
        link.attach(WeakHandle(Arc::downgrade(&handle.inner)));
    }
    let factory = Arc::new(factory);
    let mut threads = Vec::new();
    for (i, p) in prepared.into_iter().enumerate() {
        let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
        let f = factory.clone();
        let h = handle.clone();
        let thread = engine::worker::spawn(
            i,
            p,
            settings.clone(),
            hub.clone(),
            move |i| f(i, &h),
            core,
            stats[i].clone(),
        )?;
        threads.push(thread);
    }
    *handle
        .inner
        .threads
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = threads;
    Ok(handle)
}

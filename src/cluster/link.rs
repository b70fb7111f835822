//! The NATS thread of a node: one async-nats client on a current-thread tokio runtime of its
//! own, so that the workers never run async code and never wait on NATS.
//!
//! ```text
//! workers / handles ── Link::publish ──► bounded queue ──► NATS thread ──► PUB <prefix>.T
//! directory ── Link::interest ──► pending set (topic → wanted) ──► NATS thread ──► SUB / UNSUB
//! NATS ──► one task per subscribed topic ──► subject::check ──► ServerHandle::fan_in
//! JetStream bucket (last-value topics, jetstream.rs) ──► one read per first subscription
//!   ──► ServerHandle::fill_last_value
//! ```
//!
//! Pending interest is a set, not a queue: a topic that comes and goes a million times while
//! the thread is busy costs one entry, and the thread applies only the last state.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::{Client, ConnectOptions, Event, HeaderMap, Subscriber};
use bytes::Bytes;
use tokio::sync::{mpsc, Notify};

use super::jetstream::{self, Bucket};
use super::options::NatsBackplane;
use super::subject::{self, Incoming, Verdict};
use super::tls;
use super::BackplaneStats;
use crate::broadcast::remote::Remote;
use crate::protocol::MessageKind;
use crate::server::handle::WeakHandle;

/// How long the thread waits for NATS to take one publish before it drops it.
const PUBLISH_WAIT: Duration = Duration::from_secs(1);
/// How long closing waits for NATS to take what was published.
const FLUSH_WAIT: Duration = Duration::from_secs(2);
/// How often the thread reads the client's connection state into [`Shared::connected`]. The
/// client's events set it at once, but they travel through a bounded channel that a flood of
/// slow-consumer events can fill, and a lost `Disconnected` or `Connected` would leave the flag
/// wrong until the next one: the state itself is the authority.
const STATE_POLL: Duration = Duration::from_millis(100);

/// How long a failed read of a topic's last values waits before the next try.
const FILL_RETRY: Duration = Duration::from_millis(500);

/// One publish on its way to NATS.
#[derive(Debug)]
struct Outgoing {
    subject: String,
    /// The bucket's subject for it too (a last-value topic, with a bucket).
    stored: Option<String>,
    key: Option<String>,
    kind: MessageKind,
    payload: Bytes,
}

#[derive(Debug, Default)]
struct Counters {
    subscriptions: AtomicU64,
    published: AtomicU64,
    received: AtomicU64,
    dropped_disconnected: AtomicU64,
    dropped_backlog: AtomicU64,
    local_only: AtomicU64,
    refused_oversize: AtomicU64,
    refused_invalid: AtomicU64,
    own_skipped: AtomicU64,
    unsubscribed: AtomicU64,
    slow_consumer: AtomicU64,
    stored: AtomicU64,
    not_stored: AtomicU64,
    filled: AtomicU64,
    fill_refused: AtomicU64,
    fill_errors: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A topic's wanted state: subscribed or not, and for a last-value topic the last-value
/// store's sequence number when it was wanted.
type Wanted = (bool, Option<u64>);

/// What the NATS thread and the node's threads share.
#[derive(Debug)]
struct Shared {
    prefix: String,
    node: String,
    max_payload: u64,
    connected: AtomicBool,
    /// What the NATS client last reported going wrong (an authorization violation, a TLS
    /// error, a refused connection); cleared when it connects.
    last_error: Mutex<Option<String>>,
    counters: Counters,
    /// Topics whose wanted state changed since the thread last looked: true, subscribe; with
    /// the last-value store's number then, for a last-value topic.
    interest: Mutex<HashMap<Arc<str>, Wanted>>,
    /// The JetStream bucket of the last values, if configured.
    bucket: Option<Bucket>,
    /// Interest changed.
    wake: Notify,
    /// Close was asked for.
    stop: Notify,
    /// The node, to fan messages in; set once the node runs.
    handle: OnceLock<WeakHandle>,
    /// The NATS client's own counters (connections made, messages read), exact; set once
    /// the client is set up.
    client: OnceLock<Arc<async_nats::Statistics>>,
}

/// A node's link to NATS, held by the topic directory (as its [`Remote`]) and by the handle.
#[derive(Debug)]
pub(crate) struct Link {
    shared: Arc<Shared>,
    queue: mpsc::Sender<Outgoing>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Link {
    /// Starts the NATS thread for `config`; messages from NATS over `max_payload` (unless the
    /// config sets its own) are refused. Returns once the client is set up: connecting goes on
    /// in the background (the node starts while NATS is down, and counts what it drops).
    ///
    /// # Errors
    ///
    /// An invalid prefix, no URL or an invalid one, a credentials file that cannot be read, a
    /// thread or runtime that cannot start.
    pub(crate) fn start(config: &NatsBackplane, max_payload: u64) -> io::Result<Arc<Link>> {
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
        if !subject::valid_prefix(&config.prefix) {
            return Err(invalid(format!(
                "invalid NATS subject prefix {:?}",
                config.prefix
            )));
        }
        if config.urls.is_empty() {
            return Err(invalid("no NATS server URL".into()));
        }
        if let Some(seed) = &config.nkey {
            tls::check_nkey(seed)?;
        }
        if let Some(bucket) = &config.last_values_bucket {
            if !jetstream::valid_bucket(bucket) {
                return Err(invalid(format!(
                    "invalid JetStream bucket name {bucket:?} (letters, digits, _ and -)"
                )));
            }
        }
        let tls = tls::client_config(config)?;
        let node = config.node.clone().unwrap_or_else(|| {
            use rand::{RngCore, SeedableRng};
            format!("{:016x}", rand::rngs::StdRng::from_os_rng().next_u64())
        });
        let max_payload = config.max_payload.unwrap_or(max_payload);
        let shared = Arc::new(Shared {
            prefix: config.prefix.clone(),
            node,
            max_payload,
            bucket: Bucket::of(config, max_payload),
            connected: AtomicBool::new(false),
            last_error: Mutex::new(None),
            counters: Counters::default(),
            interest: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            stop: Notify::new(),
            handle: OnceLock::new(),
            client: OnceLock::new(),
        });
        let (queue, rx) = mpsc::channel(config.queue);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let config = config.clone();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("wsx-nats".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let client = match connect(&config, tls, &thread_shared).await {
                        Ok(c) => {
                            let _ = thread_shared.client.set(c.statistics());
                            let _ = ready_tx.send(Ok(()));
                            c
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    run(client, thread_shared, rx).await;
                });
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(io::Error::other("the NATS thread ended while starting"));
            }
        }
        Ok(Arc::new(Link {
            shared,
            queue,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// Lets messages from NATS in, to `handle`'s subscribers.
    pub(crate) fn attach(&self, handle: WeakHandle) {
        let _ = self.shared.handle.set(handle);
    }

    /// The counters now.
    pub(crate) fn stats(&self) -> BackplaneStats {
        let c = &self.shared.counters;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let client = self.shared.client.get();
        let from_client = |pick: fn(&async_nats::Statistics) -> u64| client.map_or(0, |s| pick(s));
        BackplaneStats {
            connected: self.shared.connected.load(Ordering::Relaxed),
            // The first connection is no reconnect.
            reconnects: from_client(|s| s.connects.load(Ordering::Relaxed)).saturating_sub(1),
            from_nats: from_client(|s| s.in_messages.load(Ordering::Relaxed)),
            subscriptions: get(&c.subscriptions),
            published: get(&c.published),
            received: get(&c.received),
            dropped_disconnected: get(&c.dropped_disconnected),
            dropped_backlog: get(&c.dropped_backlog),
            local_only: get(&c.local_only),
            refused_oversize: get(&c.refused_oversize),
            refused_invalid: get(&c.refused_invalid),
            own_skipped: get(&c.own_skipped),
            unsubscribed: get(&c.unsubscribed),
            slow_consumer: get(&c.slow_consumer),
            bucket_ready: self.shared.bucket.as_ref().is_some_and(Bucket::ready),
            stored: get(&c.stored),
            not_stored: get(&c.not_stored),
            filled: get(&c.filled),
            fill_refused: get(&c.fill_refused),
            fill_errors: get(&c.fill_errors),
        }
    }

    /// What the NATS client last reported going wrong, while it has not connected since.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.shared
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// This node's name on NATS.
    pub(crate) fn node(&self) -> &str {
        &self.shared.node
    }

    /// Flushes what was published (for up to 2 s), closes the NATS connection and joins the
    /// thread. Publishes after it are dropped.
    pub(crate) fn close(&self) {
        self.shared.stop.notify_one();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Remote for Link {
    fn interest(&self, topic: &Arc<str>, on: bool, last_values: Option<u64>) {
        self.shared
            .interest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(topic.clone(), (on, last_values));
        self.shared.wake.notify_one();
    }

    fn publish(
        &self,
        topic: &str,
        key: Option<&str>,
        kind: MessageKind,
        payload: Bytes,
        keeps: bool,
    ) {
        let c = &self.shared.counters;
        if !self.shared.connected.load(Ordering::Relaxed) {
            bump(&c.dropped_disconnected);
            return;
        }
        let Some(subject) = subject::subject(&self.shared.prefix, topic) else {
            bump(&c.local_only);
            return;
        };
        let stored = match &self.shared.bucket {
            Some(bucket) if keeps => jetstream::subject_of(bucket.name(), topic, key),
            _ => None,
        };
        let out = Outgoing {
            subject,
            stored,
            key: key.map(str::to_owned),
            kind,
            payload,
        };
        if self.queue.try_send(out).is_err() {
            bump(&c.dropped_backlog);
        }
    }
}

/// The client, set up; connecting goes on in the background.
async fn connect(
    config: &NatsBackplane,
    tls: Option<rustls::ClientConfig>,
    shared: &Arc<Shared>,
) -> io::Result<Client> {
    let mut options = ConnectOptions::new()
        .name(format!("wsx/{}", shared.node))
        .no_echo()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .subscription_capacity(config.receive_queue)
        .require_tls(config.require_tls);
    let max = config.reconnect_delay_max;
    options = options.reconnect_delay_callback(move |attempts| {
        let exp = u32::try_from(attempts.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(30);
        Duration::from_millis(1u64 << exp).min(max)
    });
    if let Some(token) = &config.token {
        options = options.token(token.clone());
    }
    if let Some((user, password)) = &config.user_password {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(seed) = &config.nkey {
        options = options.nkey(seed.clone());
    }
    if let Some(path) = &config.credentials_file {
        options = options.credentials_file(path).await?;
    }
    if let Some(tls) = tls {
        options = options.tls_client_config(tls);
    }
    let events = shared.clone();
    options = options.event_callback(move |event| {
        let shared = events.clone();
        async move {
            let c = &shared.counters;
            let note = |error: String| {
                *shared.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
            };
            match event {
                Event::Connected => {
                    shared.connected.store(true, Ordering::Relaxed);
                    *shared.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
                }
                Event::ServerError(e) => note(format!("NATS server: {e}")),
                Event::ClientError(e) => note(format!("NATS client: {e}")),
                Event::Disconnected | Event::Closed => {
                    shared.connected.store(false, Ordering::Relaxed);
                }
                Event::SlowConsumer(_) => bump(&c.slow_consumer),
                _ => {}
            }
        }
    });
    options
        .connect(config.urls.clone())
        .await
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("NATS: {e}")))
}

/// The thread's loop: publishes in order, interest as it changes, until closed.
async fn run(client: Client, shared: Arc<Shared>, mut rx: mpsc::Receiver<Outgoing>) {
    let mut subscribed: HashMap<Arc<str>, Subscribed> = HashMap::new();
    // The bucket exists before the first value is stored in it, if NATS lets it be made.
    let ensure = shared
        .bucket
        .is_some()
        .then(|| tokio::spawn(ensure_bucket(client.clone(), shared.clone())));
    let mut poll = tokio::time::interval(STATE_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shared.stop.notified() => break,
            _ = poll.tick() => {
                read_state(&client, &shared);
            }
            _ = shared.wake.notified() => reconcile(&client, &shared, &mut subscribed).await,
            out = rx.recv() => match out {
                Some(out) => send(&client, &shared, out).await,
                None => break,
            },
        }
    }
    // What is queued still goes, if NATS takes it soon.
    rx.close();
    while let Ok(out) = rx.try_recv() {
        send(&client, &shared, out).await;
    }
    // A client that is not connected would hold the flush until it connects: only wait when
    // there is a connection to flush to.
    if read_state(&client, &shared) {
        let _ = tokio::time::timeout(FLUSH_WAIT, client.flush()).await;
    }
    for (_, sub) in subscribed.drain() {
        sub.abort();
    }
    if let Some(task) = ensure {
        task.abort();
    }
    shared.connected.store(false, Ordering::Relaxed);
}

/// Sets [`Shared::connected`] from the client's connection state; returns it.
fn read_state(client: &Client, shared: &Shared) -> bool {
    let connected = client.connection_state() == State::Connected;
    shared.connected.store(connected, Ordering::Relaxed);
    connected
}

/// Sends one publish, or counts it dropped.
async fn send(client: &Client, shared: &Shared, out: Outgoing) {
    let c = &shared.counters;
    if !read_state(client, shared) {
        bump(&c.dropped_disconnected);
        return;
    }
    let mut headers = HeaderMap::new();
    headers.insert(subject::ORIGIN, shared.node.as_str());
    headers.insert(subject::KIND, subject::kind_name(out.kind));
    if let Some(key) = &out.key {
        headers.insert(subject::KEY, key.as_str());
    }
    let stored = out
        .stored
        .map(|subject| (subject, headers.clone(), out.payload.clone()));
    let publish = client.publish_with_headers(out.subject, headers, out.payload);
    match tokio::time::timeout(PUBLISH_WAIT, publish).await {
        Ok(Ok(())) => bump(&c.published),
        Ok(Err(_)) | Err(_) => {
            bump(&c.dropped_backlog);
            return;
        }
    }
    if let Some((subject, headers, payload)) = stored {
        if !shared.bucket.as_ref().is_some_and(Bucket::ready) {
            bump(&c.not_stored);
            return;
        }
        // Into the bucket too (no acknowledgement asked: at most once, as the live one).
        let publish = client.publish_with_headers(subject, headers, payload);
        match tokio::time::timeout(PUBLISH_WAIT, publish).await {
            Ok(Ok(())) => bump(&c.stored),
            Ok(Err(_)) | Err(_) => bump(&c.not_stored),
        }
    }
}

/// A topic this node subscribes to on NATS: the task that fans its messages in, and the one
/// that reads its last values from the bucket, while it runs.
#[derive(Debug)]
struct Subscribed {
    receive: tokio::task::JoinHandle<()>,
    fill: Option<tokio::task::JoinHandle<()>>,
}

impl Subscribed {
    fn abort(self) {
        // Dropping the subscriber sends UNSUB.
        self.receive.abort();
        if let Some(fill) = self.fill {
            fill.abort();
        }
    }
}

/// Finds or creates the bucket, trying again while NATS is away or refuses, and again after
/// each new connection (a NATS server restarted without its store has lost it), for as long as
/// the thread runs.
async fn ensure_bucket(client: Client, shared: Arc<Shared>) {
    let Some(bucket) = &shared.bucket else {
        return;
    };
    let connects = || {
        shared
            .client
            .get()
            .map_or(0, |s| s.connects.load(Ordering::Relaxed))
    };
    let mut checked = 0;
    loop {
        if read_state(&client, &shared) {
            let now = connects();
            if now != checked && bucket.ready() {
                bucket.forget().await;
            }
            if bucket.ready() {
                checked = now;
            } else {
                match bucket.store(&client).await {
                    Ok(_) => checked = now,
                    Err(e) => {
                        *shared.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                    }
                }
            }
        }
        tokio::time::sleep(FILL_RETRY).await;
    }
}

/// Reads the last values of `topic` from the bucket into the node, trying again until one
/// read succeeds (NATS away, JetStream not answering) or the topic is unsubscribed.
async fn fill(client: Client, topic: Arc<str>, since: u64, shared: Arc<Shared>) {
    let Some(bucket) = &shared.bucket else {
        return;
    };
    let c = &shared.counters;
    loop {
        let node = shared.handle.get().and_then(|h| h.upgrade());
        let Some(node) = node else {
            if shared.handle.get().is_some() {
                return; // the node is gone
            }
            tokio::time::sleep(FILL_RETRY).await; // not running yet
            continue;
        };
        let deliver = |key: Option<&str>, message: crate::Message<'_>| {
            if node.fill_last_value(&topic, key, message, since) {
                bump(&c.filled);
            }
        };
        match bucket
            .read(&client, &shared.prefix, &topic, shared.max_payload, deliver)
            .await
        {
            Ok(read) => {
                c.fill_refused.fetch_add(read.refused, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                bump(&c.fill_errors);
                *shared.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                // The server may have lost the bucket (restarted without its store): find
                // or make it again on the next try.
                bucket.forget().await;
            }
        }
        drop(node);
        tokio::time::sleep(FILL_RETRY).await;
    }
}

/// Brings the NATS subscriptions in line with the topics that have local subscribers.
async fn reconcile(
    client: &Client,
    shared: &Arc<Shared>,
    subscribed: &mut HashMap<Arc<str>, Subscribed>,
) {
    let changes: Vec<(Arc<str>, Wanted)> = shared
        .interest
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain()
        .collect();
    for (topic, (on, last_values)) in changes {
        if on && !subscribed.contains_key(&topic) {
            let Some(subject) = subject::subject(&shared.prefix, &topic) else {
                continue; // a topic that is no subject stays local
            };
            match client.subscribe(subject).await {
                Ok(sub) => {
                    let receive = tokio::spawn(receive(sub, topic.clone(), shared.clone()));
                    // After the SUB: a value stored from now on also arrives live, and the
                    // store keeps the newer of the two (broadcast/last_value.rs).
                    let fill = match (last_values, &shared.bucket) {
                        (Some(since), Some(_)) => Some(tokio::spawn(fill(
                            client.clone(),
                            topic.clone(),
                            since,
                            shared.clone(),
                        ))),
                        _ => None,
                    };
                    subscribed.insert(topic, Subscribed { receive, fill });
                }
                // Only when the client has closed; nothing to subscribe with then.
                Err(_) => continue,
            }
        } else if !on {
            if let Some(sub) = subscribed.remove(&topic) {
                sub.abort();
            }
        }
    }
    shared
        .counters
        .subscriptions
        .store(subscribed.len() as u64, Ordering::Relaxed);
}

/// Fans in the messages of one subscription until it is dropped.
async fn receive(mut sub: Subscriber, topic: Arc<str>, shared: Arc<Shared>) {
    let c = &shared.counters;
    while let Some(m) =
        std::future::poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut sub), cx)).await
    {
        let header = |name: &str| {
            m.headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str())
        };
        let incoming = Incoming {
            subject: m.subject.as_str(),
            origin: header(subject::ORIGIN),
            kind: header(subject::KIND),
            key: header(subject::KEY),
            payload: &m.payload,
        };
        match subject::check(
            &shared.prefix,
            &shared.node,
            &topic,
            shared.max_payload,
            incoming,
        ) {
            Verdict::Deliver {
                topic,
                key,
                message,
            } => {
                let Some(node) = shared.handle.get() else {
                    // Not running yet: nobody to deliver to.
                    bump(&c.unsubscribed);
                    continue;
                };
                let Some(h) = node.upgrade() else {
                    return; // the node is gone
                };
                if h.fan_in(topic, key, message) {
                    bump(&c.received);
                } else {
                    bump(&c.unsubscribed);
                }
            }
            Verdict::Own => bump(&c.own_skipped),
            Verdict::Oversize => bump(&c.refused_oversize),
            Verdict::Invalid => bump(&c.refused_invalid),
        }
    }
}

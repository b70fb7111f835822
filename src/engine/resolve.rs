//! Name resolution off the worker threads.
//!
//! `getaddrinfo` blocks, for as long as the name servers take; on a worker it would stall every
//! connection of that worker. A client connection whose transport address (the server's, or
//! the proxy's) is an IP literal connects at once; a host name goes to this resolver, shared by
//! the engine's workers:
//!
//! ```text
//! worker ─ submit ─► bounded queue ─► resolver threads (RESOLVERS, started on first use)
//!    ▲                    │                       │ getaddrinfo (or the options' hook)
//!    │                    ▼                       ▼
//!    └── Command::Resolved ◄── first of: the answer │ the watchdog (handshake timeout)
//! ```
//!
//! Each request is pending until exactly one of three things takes it: its answer, the
//! watchdog thread at its deadline (the connection's handshake timeout, counted from the
//! `connect` call, so a stuck name server ends in [`ClientError::Timeout`] in time), or the
//! worker's shutdown ([`Resolver::cancel`]). Whatever comes later is dropped. Nobody joins the
//! threads: a shutdown never waits on a stuck resolution; the threads end when they next wake
//! after the engine is gone.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::client::{ClientError, Connector, Resolver as ResolveFn};
use crate::engine::inbox::{Command, InboxSender};

/// Threads that call `getaddrinfo`: two, so that one stuck name does not hold up the others.
const RESOLVERS: usize = 2;
/// Most resolutions waiting or running, all workers together; past it `connect` fails at once.
const MAX_PENDING: usize = 16_384;

/// What comes back to the worker through its inbox.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The attempt, as the worker gave it.
    pub(crate) connector: Box<Connector>,
    /// The tag given to `connect`.
    pub(crate) tag: u64,
    /// The address to connect to, or why there is none.
    pub(crate) result: Result<SocketAddr, ClientError>,
    /// The handshake time left for the TCP connect, proxy and upgrade.
    pub(crate) left: Duration,
}

/// The transport address of `connector` when it is an IP literal (`1.2.3.4:80`, `[::1]:80`),
/// which needs no resolution.
pub(crate) fn literal(connector: &Connector) -> Option<SocketAddr> {
    connector.connect_addr().parse().ok()
}

/// The engine's resolver: a bounded queue, [`RESOLVERS`] threads and a watchdog, started on
/// the first name to resolve (an engine that connects only to IP literals starts none).
pub(crate) struct Resolver {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Resolver threads wait here for requests.
    work: Condvar,
    /// The watchdog waits here for an earlier deadline.
    watch: Condvar,
}

#[derive(Default)]
struct State {
    started: bool,
    stopped: bool,
    next: u64,
    /// Requests not yet taken by a resolver thread.
    queue: VecDeque<Request>,
    /// Every request not yet answered, timed out or cancelled.
    pending: HashMap<u64, Pending>,
    /// Deadlines of pending requests, earliest first (stale entries are skipped).
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
}

struct Request {
    id: u64,
    name: String,
    hook: Option<ResolveFn>,
}

struct Pending {
    worker: usize,
    connector: Box<Connector>,
    tag: u64,
    inbox: InboxSender,
    deadline: Instant,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.shared.lock();
        f.debug_struct("Resolver")
            .field("started", &s.started)
            .field("pending", &s.pending.len())
            .finish_non_exhaustive()
    }
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                work: Condvar::new(),
                watch: Condvar::new(),
            }),
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        s.stopped = true;
        s.queue.clear();
        s.pending.clear();
        s.deadlines.clear();
        drop(s);
        self.shared.work.notify_all();
        self.shared.watch.notify_all();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Resolver {
    /// Resolves the transport host of `connector` for worker `worker`; the answer (or the
    /// timeout) comes back through `inbox` as [`Command::Resolved`].
    ///
    /// # Errors
    ///
    /// Too many resolutions pending, or no thread could be started: the connector comes back
    /// with the error, for `on_connect_error`.
    pub(crate) fn submit(
        &self,
        worker: usize,
        connector: Box<Connector>,
        tag: u64,
        inbox: InboxSender,
    ) -> Result<(), (Box<Connector>, u64, ClientError)> {
        let mut s = self.shared.lock();
        if s.pending.len() >= MAX_PENDING {
            let e = io::Error::other("too many host names waiting for resolution");
            return Err((connector, tag, e.into()));
        }
        if !s.started {
            if let Err(e) = self.start() {
                return Err((connector, tag, e.into()));
            }
            s.started = true;
        }
        let id = s.next;
        s.next += 1;
        let deadline = Instant::now() + connector.options().handshake_timeout;
        let request = Request {
            id,
            name: connector.connect_addr(),
            hook: connector.options().dangerous_resolver.clone(),
        };
        let earliest = s
            .deadlines
            .peek()
            .map_or(true, |Reverse((first, _))| deadline < *first);
        s.deadlines.push(Reverse((deadline, id)));
        s.pending.insert(
            id,
            Pending {
                worker,
                connector,
                tag,
                inbox,
                deadline,
            },
        );
        s.queue.push_back(request);
        drop(s);
        self.shared.work.notify_one();
        if earliest {
            self.shared.watch.notify_one();
        }
        Ok(())
    }

    /// Takes every resolution still pending for `worker` (it is shutting down), so that it
    /// reports them itself; their answers, when they come, are dropped.
    pub(crate) fn cancel(&self, worker: usize) -> Vec<(Box<Connector>, u64)> {
        let mut s = self.shared.lock();
        let ids: Vec<u64> = s
            .pending
            .iter()
            .filter(|(_, p)| p.worker == worker)
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| s.pending.remove(&id))
            .map(|p| (p.connector, p.tag))
            .collect()
    }

    /// Starts the resolver threads and the watchdog. They hold only the shared state, so the
    /// [`Resolver`]'s drop (the engine gone) stops them.
    fn start(&self) -> io::Result<()> {
        for i in 0..RESOLVERS {
            let shared = self.shared.clone();
            std::thread::Builder::new()
                .name(format!("wsx-resolve-{i}"))
                .spawn(move || resolve_loop(&shared))?;
        }
        let shared = self.shared.clone();
        std::thread::Builder::new()
            .name("wsx-resolve-watch".into())
            .spawn(move || watch_loop(&shared))?;
        Ok(())
    }
}

/// One resolver thread: takes a request, resolves it with the lock released, and answers it
/// unless the watchdog or a shutdown took it meanwhile.
fn resolve_loop(shared: &Shared) {
    let mut s = shared.lock();
    loop {
        if s.stopped {
            return;
        }
        let Some(request) = s.queue.pop_front() else {
            s = shared.work.wait(s).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        if !s.pending.contains_key(&request.id) {
            continue; // timed out or cancelled while queued: not worth a lookup
        }
        drop(s);
        let result = lookup(&request);
        s = shared.lock();
        if let Some(p) = s.pending.remove(&request.id) {
            // (Its deadline entry stays in the heap; the watchdog skips it.)
            drop(s);
            let left = p.deadline.saturating_duration_since(Instant::now());
            answer(p, result, left);
            s = shared.lock();
        }
    }
}

/// Resolves `request.name` (`host:port`) with the hook or `getaddrinfo`, to its first address.
fn lookup(request: &Request) -> Result<SocketAddr, ClientError> {
    let addrs: Vec<SocketAddr> = match &request.hook {
        Some(hook) => hook(&request.name)?,
        None => request.name.to_socket_addrs()?.collect(),
    };
    addrs.first().copied().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} resolves to no address", request.name),
        )
        .into()
    })
}

/// The watchdog: fails each request still pending at its deadline with a timeout.
fn watch_loop(shared: &Shared) {
    let mut s = shared.lock();
    loop {
        if s.stopped {
            return;
        }
        let now = Instant::now();
        let mut expired = Vec::new();
        let mut next = None;
        while let Some(&Reverse((deadline, id))) = s.deadlines.peek() {
            if !s.pending.contains_key(&id) {
                s.deadlines.pop();
                continue;
            }
            if deadline > now {
                next = Some(deadline);
                break;
            }
            s.deadlines.pop();
            if let Some(p) = s.pending.remove(&id) {
                expired.push(p);
            }
        }
        if !expired.is_empty() {
            drop(s);
            for p in expired {
                answer(p, Err(ClientError::Timeout), Duration::ZERO);
            }
            s = shared.lock();
            continue;
        }
        s = match next {
            Some(deadline) => {
                let wait = deadline.saturating_duration_since(now);
                shared
                    .watch
                    .wait_timeout(s, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => shared.watch.wait(s).unwrap_or_else(|e| e.into_inner()),
        };
    }
}

/// Sends the outcome to the worker; a worker that is gone has nobody left to tell.
fn answer(p: Pending, result: Result<SocketAddr, ClientError>, left: Duration) {
    let Pending {
        connector,
        tag,
        inbox,
        ..
    } = p;
    let _ = inbox.send(Command::Resolved(Box::new(Answer {
        connector,
        tag,
        result,
        left,
    })));
}

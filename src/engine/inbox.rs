//! Commands from other threads to a worker, and the wake-up that makes it look.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

use crate::engine::sys::waker::Waker;
use bytes::Bytes;

use crate::broadcast::frame::Published;
use crate::client::Connector;
use crate::handler::ConnId;
use crate::protocol::{CloseCode, MessageKind};

/// What another thread asks a worker to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send a message to one connection; with a token, report what became of it
    /// (`on_sent` or `on_send_dropped`).
    Send {
        id: ConnId,
        kind: MessageKind,
        payload: Bytes,
        token: Option<u64>,
    },
    /// Start the closing handshake of one connection.
    Close {
        id: ConnId,
        code: CloseCode,
        reason: String,
    },
    /// Deliver a published message to this worker's recipients.
    Publish(Arc<Published>),
    /// Drop one connection without a closing handshake.
    Terminate { id: ConnId },
    /// Take a connection another server accepted (see `engine/adopt.rs`).
    Adopt(Box<crate::engine::adopt::Adoption>),
    /// Open a client connection; `tag` comes back through `Conn::tag`.
    Connect { connector: Box<Connector>, tag: u64 },
    /// The resolver's answer for a client connection to a host name: connect now, or report.
    Resolved(Box<crate::engine::resolve::Answer>),
    /// A frame compressed on the deflate pool, for the place `ticket` keeps in connection
    /// `id`'s queue.
    Deflated {
        id: ConnId,
        ticket: u64,
        frame: Vec<u8>,
    },
    /// Stop accepting, close every connection with 1001, wait for the closing handshakes until
    /// the deadline, then terminate what is left and end the worker.
    Shutdown { deadline: Instant },
}

/// The sending end of a worker's inbox.
#[derive(Debug, Clone)]
pub(crate) struct InboxSender {
    tx: Sender<Command>,
    waker: Arc<Waker>,
    /// Set when a wake-up is in flight, so that a burst of commands costs one wake-up.
    woken: Arc<AtomicBool>,
    /// Commands queued and not yet taken.
    depth: Arc<AtomicUsize>,
}

/// Why a bounded send did not queue its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The worker has more than the limit waiting.
    Full,
    /// The worker is gone.
    Gone,
}

/// The receiving end, owned by the worker.
#[derive(Debug)]
pub(crate) struct Inbox {
    rx: Receiver<Command>,
    woken: Arc<AtomicBool>,
    depth: Arc<AtomicUsize>,
}

/// A connected inbox pair.
pub(crate) fn inbox(waker: Arc<Waker>) -> (InboxSender, Inbox) {
    let (tx, rx) = std::sync::mpsc::channel();
    let woken = Arc::new(AtomicBool::new(false));
    let depth = Arc::new(AtomicUsize::new(0));
    (
        InboxSender {
            tx,
            waker,
            woken: woken.clone(),
            depth: depth.clone(),
        },
        Inbox { rx, woken, depth },
    )
}

impl InboxSender {
    /// Queues `cmd` and wakes the worker. False when the worker is gone.
    pub(crate) fn send(&self, cmd: Command) -> bool {
        self.depth.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(cmd).is_err() {
            self.depth.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        if !self.woken.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
        true
    }

    /// Queues `cmd` unless more than `limit` commands wait already (publishes: a publisher
    /// faster than the worker delivers must not grow its inbox without bound).
    pub(crate) fn send_bounded(&self, cmd: Command, limit: usize) -> Result<(), Refused> {
        if self.depth.load(Ordering::Relaxed) >= limit {
            return Err(Refused::Full);
        }
        if self.send(cmd) {
            Ok(())
        } else {
            Err(Refused::Gone)
        }
    }
}

impl Inbox {
    /// Takes up to `max` queued commands; returns whether more wait. Clears the wake-up flag
    /// first so that a command sent while draining wakes the worker again.
    pub(crate) fn drain(&self, out: &mut Vec<Command>, max: usize) -> bool {
        self.woken.store(false, Ordering::Release);
        let before = out.len();
        out.extend(self.rx.try_iter().take(max));
        let taken = out.len() - before;
        self.depth.fetch_sub(taken, Ordering::Relaxed) > taken
    }
}

//! Commands from other threads to a worker, and the wake-up that makes it look.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use mio::Waker;

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
    /// Drop one connection without a closing handshake.
    Terminate { id: ConnId },
    /// Open a client connection; `tag` comes back through `Conn::tag`.
    Connect { connector: Box<Connector>, tag: u64 },
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
}

/// The receiving end, owned by the worker.
#[derive(Debug)]
pub(crate) struct Inbox {
    rx: Receiver<Command>,
    woken: Arc<AtomicBool>,
}

/// A connected inbox pair.
pub(crate) fn inbox(waker: Waker) -> (InboxSender, Inbox) {
    let (tx, rx) = std::sync::mpsc::channel();
    let woken = Arc::new(AtomicBool::new(false));
    (
        InboxSender {
            tx,
            waker: Arc::new(waker),
            woken: woken.clone(),
        },
        Inbox { rx, woken },
    )
}

impl InboxSender {
    /// Queues `cmd` and wakes the worker. False when the worker is gone.
    pub(crate) fn send(&self, cmd: Command) -> bool {
        if self.tx.send(cmd).is_err() {
            return false;
        }
        if !self.woken.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
        true
    }
}

impl Inbox {
    /// Takes every queued command. Clears the wake-up flag first so that a command sent while
    /// draining wakes the worker again.
    pub(crate) fn drain(&self, out: &mut Vec<Command>) {
        self.woken.store(false, Ordering::Release);
        out.extend(self.rx.try_iter());
    }
}

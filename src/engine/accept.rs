//! Accepting connections: a worker's listener and what it does when the process runs out of
//! descriptors.
//!
//! The listener is edge-triggered (mio): one readiness event says "connections arrived", and the
//! worker must accept until `WouldBlock` to get another. When `accept` fails for want of a
//! descriptor (`EMFILE`, `ENFILE`) or of kernel memory (`ENOBUFS`, `ENOMEM`), the connections
//! stay queued, and once the accept queue is full the kernel drops new SYNs: no new edge comes,
//! ever, and a server that waited for one would accept nothing again even after descriptors
//! free up. Two things stop that, and both are needed:
//!
//! - **A reserved descriptor** (libuv's trick): each acceptor keeps `/dev/null` open. On
//!   `EMFILE`/`ENFILE` it closes it, accepts the queued connections one by one and closes each
//!   at once (the clients see the connection end instead of hanging on a server that cannot
//!   take them, and the queue cannot stay full), then reopens it. Shed connections are counted
//!   in [`crate::server::Stats::shed`].
//! - **A retry on every timer tick** while accepting is stalled: `ENOBUFS`/`ENOMEM` have no
//!   descriptor to give back, another thread of the process may take the one the reserve freed
//!   before this one's `accept` does, and the reserve may not reopen. Any error that ends an
//!   accept loop before `WouldBlock` marks the acceptor stalled, and the worker accepts again at
//!   its next tick (100 ms) until an `accept` returns a connection or `WouldBlock`.

use std::fs::File;
use std::io;
use std::net::SocketAddr;

use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};

use mio::net::TcpListener;

/// `EMFILE` and `ENFILE` on Linux: the process's or the system's descriptor table is full.
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;
/// Most queued connections shed per call, so that a flood that outruns the shedding cannot hold
/// the worker in this loop; the rest wait for the next tick.
const MAX_SHED_PER_CALL: usize = 4096;

/// A worker's listener, its reserved descriptor and whether accepting is stalled.
#[derive(Debug)]
pub(crate) struct Acceptor {
    listener: TcpListener,
    /// `/dev/null`, held open to be given back when descriptors run out.
    reserve: Option<File>,
    /// An `accept` failed with an error that no readiness event will follow: retry on a tick.
    stalled: bool,
    /// Connections closed as soon as accepted (shed, or over the connection limit).
    shed: u64,
}

impl Acceptor {
    /// Wraps `listener` and opens the reserved descriptor.
    pub(crate) fn new(listener: TcpListener) -> Self {
        Acceptor {
            listener,
            reserve: open_reserve(),
            stalled: false,
            shed: 0,
        }
    }

    /// The listener's descriptor, for the backend to watch (epoll) or accept on (io_uring).
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// The io_uring backend's accept failed with `e`: as [`Acceptor::accept`] does on an
    /// error, sheds the queue if descriptors ran out, and stalls (retried on a tick).
    pub(crate) fn failed(&mut self, e: &io::Error) {
        if matches!(e.raw_os_error(), Some(EMFILE | ENFILE)) {
            self.shed_queue();
        }
        self.stalled = true;
    }

    /// The worker retries accepting (io_uring: the accept is armed again).
    pub(crate) fn clear_stall(&mut self) {
        self.stalled = false;
    }

    /// Whether the last accept loop ended on an error: the worker retries at its next tick.
    pub(crate) fn stalled(&self) -> bool {
        self.stalled
    }

    /// Connections closed as soon as accepted so far.
    pub(crate) fn shed(&self) -> u64 {
        self.shed
    }

    /// Closes a connection just accepted that the worker will not serve (over its limit).
    pub(crate) fn refuse(&mut self, sock: TcpStream) {
        drop(sock);
        self.shed += 1;
    }

    /// The next queued connection, or `None` when the queue is empty (`WouldBlock`) or
    /// accepting failed; after a failure [`Acceptor::stalled`] is true. On `EMFILE`/`ENFILE`
    /// the queued connections are shed first (see the module doc).
    pub(crate) fn accept(&mut self) -> Option<(TcpStream, SocketAddr)> {
        loop {
            match self.listener.accept() {
                Ok((sock, peer)) => {
                    self.stalled = false;
                    if self.reserve.is_none() {
                        self.reserve = open_reserve();
                    }
                    return Some((sock.into(), peer));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.stalled = false;
                    return None;
                }
                // A connection that failed while queued (Linux reports its pending error from
                // `accept`): the next one may be fine.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                    ) => {}
                Err(e) => {
                    if matches!(e.raw_os_error(), Some(EMFILE | ENFILE)) {
                        self.shed_queue();
                    }
                    self.stalled = true;
                    return None;
                }
            }
        }
    }

    /// Gives back the reserved descriptor, accepts and closes what is queued, takes the
    /// descriptor again.
    fn shed_queue(&mut self) {
        let Some(reserve) = self.reserve.take() else {
            return;
        };
        drop(reserve);
        for _ in 0..MAX_SHED_PER_CALL {
            match self.listener.accept() {
                Ok((sock, _)) => {
                    drop(sock);
                    self.shed += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // WouldBlock (the queue is empty), or the freed descriptor went to another
                // thread: the tick retry takes over.
                Err(_) => break,
            }
        }
        self.reserve = open_reserve();
    }
}

/// Opens the reserved descriptor; `None` when even that fails (it is retried after the next
/// successful accept).
fn open_reserve() -> Option<File> {
    File::open("/dev/null").ok()
}

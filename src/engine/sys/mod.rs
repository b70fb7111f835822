//! The IO backend contract, and the two backends behind it.
//!
//! Every backend gives a worker the same six things; the worker (`engine/worker/`) owns all
//! protocol logic above them, so both backends behave the same:
//!
//! 1. **accept**: sockets accepted on the worker's listener (close-on-exec; non-blocking for
//!    epoll, blocking for io_uring, which waits for room to send itself);
//!    `TCP_NODELAY` and the connection limit are the worker's;
//! 2. **receive into buffers the backend owns**: bytes come to the worker as a slice it may
//!    read and unmask in place until it hands the buffer back; end of input and errors come as
//!    [`Event::Closed`]. Receiving can be paused per connection (the read pause that bounds
//!    what a peer can make the worker hold);
//! 3. **vectored send of a connection's queued segments**: the connection's outbound queue
//!    (owned bytes and shared broadcast frames) is sent without copying the shared frames;
//!    partial sends are reported, never hidden;
//! 4. **close**: a connection's requests end with it; memory the kernel may still use is
//!    kept until it is done with it;
//! 5. **timers**: the wait for events takes the timer wheel's tick as its timeout;
//! 6. **the cross-thread wake-up** ([`waker::Waker`]): other threads' commands end the wait.
//!
//! Where an operation differs, the two halves sit side by side in the worker (one `match` on
//! [`Driver`]): epoll reports readiness and the worker makes the `read`/`write` call at once
//! (`Event::Ready`); io_uring reports completions (`Event::Received`, `Event::Sent`), and the
//! worker's sends are queued and submitted together at the end of the loop turn.

pub(crate) mod deadline;
pub(crate) mod epoll;
pub(crate) mod listen;
pub(crate) mod uring;
pub(crate) mod waker;

use std::io;
use std::net::TcpStream;
use std::os::fd::RawFd;
use std::sync::OnceLock;
use std::time::Duration;

use crate::backend::Backend;
use crate::engine::outbound::Outbound;

/// What the backend tells the worker. io_uring's events name the connection's generation (its
/// low 24 bits, see [`same_gen`]) as well as its slot: an event taken in the same batch as the
/// end of a connection must not be applied to the next one in that slot.
#[derive(Debug)]
pub(crate) enum Event {
    /// epoll: the listener has connections to accept (the worker accepts until none is left).
    Acceptable,
    /// io_uring: an accepted connection.
    Accepted(TcpStream),
    /// io_uring: accepting failed (descriptors ran out); accepting stays off until the worker
    /// resumes it.
    AcceptFailed(io::Error),
    /// Another thread woke the worker (its inbox).
    Wake,
    /// epoll: the socket in `key` is ready.
    Ready {
        key: usize,
        readable: bool,
        writable: bool,
        read_closed: bool,
    },
    /// io_uring: `len` bytes for `key` are in receive buffer `buf` from `offset`; `last`: the
    /// buffer goes back to the kernel once they are used (see `Uring::release`).
    Received {
        key: usize,
        gen: u32,
        buf: u16,
        offset: u32,
        len: usize,
        last: bool,
    },
    /// io_uring: `key`'s input ended (the peer's FIN, a reset or another error).
    Closed { key: usize, gen: u32 },
    /// io_uring: the connecting socket in `key` became writable.
    Writable { key: usize, gen: u32 },
    /// io_uring: a send of `submitted` bytes for `key` completed: `result` bytes went, or
    /// `-errno`.
    Sent {
        key: usize,
        gen: u32,
        result: i32,
        submitted: usize,
        /// The queue already knows (the completion came during a fan-out, see
        /// [`Driver::send_now`]): only the steps after a write are left to do.
        accounted: bool,
    },
}

/// Whether an event's generation (`gen`, 24 bits) is that of the connection now in the slot.
#[inline]
pub(crate) fn same_gen(slot_gen: u32, gen: u32) -> bool {
    slot_gen & 0xFF_FFFF == gen
}

/// A worker's backend.
pub(crate) enum Driver {
    Epoll(epoll::Epoll),
    Uring(Box<uring::Uring>),
}

impl Driver {
    /// A backend of kind `backend` (resolved by [`select`]) watching `waker` and the listener.
    pub(crate) fn new(backend: Backend, listener: Option<RawFd>, waker: RawFd) -> io::Result<Self> {
        Ok(match backend {
            Backend::IoUring => Driver::Uring(Box::new(uring::Uring::new(listener, waker)?)),
            _ => Driver::Epoll(epoll::Epoll::new(listener, waker)?),
        })
    }

    /// Whether sends complete later (io_uring): the worker queues them and asks for a send.
    #[inline]
    pub(crate) fn completes(&self) -> bool {
        matches!(self, Driver::Uring(_))
    }

    /// Watches (epoll) or starts receiving on (io_uring) a new connection's socket;
    /// `connecting`: a client socket whose connect is in progress.
    pub(crate) fn add(
        &mut self,
        key: usize,
        gen: u32,
        sock: &TcpStream,
        connecting: bool,
    ) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        match self {
            Driver::Epoll(e) => e.add(key, sock.as_raw_fd()),
            Driver::Uring(u) => {
                u.add(key, gen, sock.as_raw_fd(), connecting);
                Ok(())
            }
        }
    }

    /// A connecting socket is not connected yet: wait for it again (io_uring; epoll's edge
    /// comes by itself).
    pub(crate) fn still_connecting(&mut self, key: usize) {
        if let Driver::Uring(u) = self {
            u.poll_out(key);
        }
    }

    /// A client connection is connected: it starts receiving (io_uring, which wants a
    /// blocking socket from here on, as accepted ones are).
    pub(crate) fn connected(&mut self, key: usize, sock: &TcpStream) {
        if let Driver::Uring(u) = self {
            let _ = sock.set_nonblocking(false);
            u.connected(key);
        }
    }

    /// The connection in `key` is gone; the caller closes `sock` right after. `out` is taken
    /// when the kernel may still read from it.
    pub(crate) fn remove(&mut self, key: usize, sock: &TcpStream, out: &mut Outbound) {
        use std::os::fd::AsRawFd;
        match self {
            Driver::Epoll(e) => e.remove(sock.as_raw_fd()),
            Driver::Uring(u) => u.remove(key, out),
        }
    }

    /// Stops receiving for `key` (io_uring; epoll leaves the bytes unread in the kernel by not
    /// reading).
    pub(crate) fn pause(&mut self, key: usize) {
        if let Driver::Uring(u) = self {
            u.pause(key);
        }
    }

    /// Receives again for `key` (io_uring).
    pub(crate) fn resume(&mut self, key: usize) {
        if let Driver::Uring(u) = self {
            u.resume(key);
        }
    }

    /// io_uring: `key` has queued bytes to send at the end of the turn.
    #[inline]
    pub(crate) fn want_send(&mut self, key: usize) {
        if let Driver::Uring(u) = self {
            u.want_send(key);
        }
    }

    /// io_uring: sends `key`'s queue now (one submission) and, if the kernel took it at once,
    /// applies the completion to `out`; the [`Event::Sent`] comes with the next wait. Used
    /// when the worker must know what the socket took before it queues more (a fan-out that
    /// passes a subscriber's limit within one turn).
    pub(crate) fn send_now(&mut self, key: usize, out: &mut Outbound) {
        if let Driver::Uring(u) = self {
            u.send_now(key, out);
        }
    }

    /// Stops accepting (shutdown).
    pub(crate) fn stop_accepting(&mut self) {
        match self {
            Driver::Epoll(e) => e.stop_accepting(),
            Driver::Uring(u) => u.stop_accepting(),
        }
    }

    /// Accepts again after [`Event::AcceptFailed`] (io_uring; epoll's worker retries itself).
    pub(crate) fn resume_accepting(&mut self) {
        if let Driver::Uring(u) = self {
            u.resume_accepting();
        }
    }

    /// Waits up to `timeout` (submitting the turn's requests first, io_uring) and appends
    /// what happened to `out`.
    pub(crate) fn wait(&mut self, timeout: Duration, out: &mut Vec<Event>) -> io::Result<()> {
        match self {
            Driver::Epoll(e) => e.wait(timeout, out),
            Driver::Uring(u) => u.wait(timeout, out),
        }
    }
}

/// Why io_uring cannot run here, probed once per process.
///
/// The probe's ring is made and dropped on a thread of its own: the kernel tears a ring down
/// later and then sends its creator task work that interrupts a blocking call in progress
/// (`EINTR` from a `recv` with `SO_RCVTIMEO`); that must not be the caller's thread, which is
/// the user's (`Server::builder().start()`).
fn uring_refusal() -> Option<&'static str> {
    static PROBE: OnceLock<Option<String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            std::thread::Builder::new()
                .name("wsx-uring-probe".into())
                .spawn(|| uring::probe().err().map(|e| e.to_string()))
                .map_err(|e| format!("cannot start the io_uring probe: {e}"))
                .and_then(|t| t.join().map_err(|_| "the io_uring probe panicked".into()))
                .unwrap_or_else(Some)
        })
        .as_deref()
}

/// Resolves the backend asked for (`Auto`: `WSX_BACKEND`, then what the kernel supports) to
/// the one the workers will run. An automatic choice that falls back to epoll says why, once
/// per process, on standard error.
///
/// # Errors
///
/// `WSX_BACKEND` names no backend (`InvalidInput`), or io_uring was forced and the kernel
/// refuses it (`Unsupported`).
pub(crate) fn select(requested: Backend) -> io::Result<Backend> {
    let requested = match requested {
        Backend::Auto => {
            Backend::from_env().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
        }
        b => b,
    };
    match requested {
        Backend::Epoll => Ok(Backend::Epoll),
        Backend::IoUring => match uring_refusal() {
            None => Ok(Backend::IoUring),
            Some(why) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("io_uring backend unavailable: {why}"),
            )),
        },
        Backend::Auto => match uring_refusal() {
            None => Ok(Backend::IoUring),
            Some(why) => {
                static SAID: OnceLock<()> = OnceLock::new();
                SAID.get_or_init(|| {
                    eprintln!("wsx: io_uring unavailable ({why}); using epoll");
                });
                Ok(Backend::Epoll)
            }
        },
    }
}

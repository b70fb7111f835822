//! The IO backend contract.
//!
//! A backend gives each worker:
//!
//! - **listen**: its own listening socket on the server's address (`SO_REUSEPORT`, so the kernel
//!   spreads new connections over the workers; a port that something else listens on is
//!   refused with `AddrInUse`), or a duplicate of a listener the user supplied;
//! - **accept**: non-blocking accepted sockets with `TCP_NODELAY` set as configured;
//! - **readiness or completion**: a way to learn that a socket has bytes to read or room to
//!   write, and that another thread woke the worker (its inbox);
//! - **read** into the worker's read buffer and **vectored write** from a connection's outbound
//!   queue, both non-blocking, partial results and `WouldBlock` reported, never hidden.
//!
//! The worker above it (`engine/worker/`) owns all protocol logic: it sees bytes read, room to
//! write, and time, so every backend behaves the same. `epoll` (through mio) is the portable
//! backend.

pub(crate) mod epoll;

use std::io;

use crate::backend::Backend;

/// Resolves the backend asked for (`Auto`: `WSX_BACKEND`, then what the kernel supports) to
/// the one the workers will run.
///
/// # Errors
///
/// `WSX_BACKEND` names no backend (`InvalidInput`), or the backend forced is not available
/// (`Unsupported`).
pub(crate) fn select(requested: Backend) -> io::Result<Backend> {
    let requested = match requested {
        Backend::Auto => Backend::from_env()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        b => b,
    };
    match requested {
        Backend::Epoll | Backend::Auto => Ok(Backend::Epoll),
        Backend::IoUring => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the io_uring backend is not available",
        )),
    }
}

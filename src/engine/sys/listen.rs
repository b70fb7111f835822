//! Listening sockets, shared by both backends.
//!
//! Each worker binds its own listener with `SO_REUSEPORT`, so that the kernel spreads new
//! connections over the workers' accept queues. `SO_REUSEPORT` alone would also let any other
//! socket of the same user join the port: a second server started on a port in use would come
//! up without an error and take part of the first one's connections. [`listen_group`] binds
//! the group so that a port something already listens on fails with `AddrInUse`.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Opens a non-blocking listener on `addr` with `SO_REUSEADDR` and, when `reuse_port`, with
/// `SO_REUSEPORT` so that each worker can bind its own.
pub(crate) fn listen(
    addr: SocketAddr,
    backlog: i32,
    reuse_port: bool,
) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(false).ok();
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Opens `count` listeners (at least one) on `addr` that share the port with `SO_REUSEPORT`,
/// one per worker, failing with [`io::ErrorKind::AddrInUse`] when anything already listens on
/// it (a plain listener, another process's `SO_REUSEPORT` group, another `Server`).
///
/// # Implementation notes
///
/// With a given port, a probe socket is bound there first *without* `SO_REUSEPORT` (but with
/// `SO_REUSEADDR`, so connections of an earlier run in `TIME_WAIT` do not count): the kernel
/// refuses it when any socket listens on the port, whatever that socket's options, which is
/// exactly the check `SO_REUSEPORT` skips. The probe is closed and the group bound. What
/// remains is a race window of two system calls between the probe's close and the first
/// listener's bind: another server that probes in that instant also succeeds, and the two
/// share the port. A socket that binds later with `SO_REUSEPORT` (same user) can still join;
/// a `wsx` server that comes later probes and fails.
///
/// With port 0 no probe is needed: the kernel picks a port that no socket, `SO_REUSEPORT` or
/// not, is bound to (`inet_csk_find_open_port` does not share ports), and the other listeners
/// join that port by number.
pub(crate) fn listen_group(
    addr: SocketAddr,
    backlog: i32,
    count: usize,
) -> io::Result<Vec<std::net::TcpListener>> {
    if addr.port() != 0 {
        probe(addr)?;
    }
    let first = listen(addr, backlog, true)?;
    let local = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..count {
        listeners.push(listen(local, backlog, true)?);
    }
    Ok(listeners)
}

/// Binds (and closes) a socket on `addr` without `SO_REUSEPORT`: `AddrInUse` if something
/// listens there.
fn probe(addr: SocketAddr) -> io::Result<()> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(false).ok();
    }
    socket.bind(&addr.into())
}

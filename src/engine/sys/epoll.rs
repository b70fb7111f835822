//! The epoll backend (through mio): listener set-up.

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

//! Connections that end while the backend has operations in flight for them: receivers that
//! reset while the server's sends to them wait for room (io_uring: a send in flight, its
//! segments frozen in the queue; epoll: a queue behind a full socket), and connections the
//! server terminates mid-send. Other connections keep working, the server ends every one of
//! them and lets go of every queued byte. Run under AddressSanitizer for io_uring by
//! `scripts/memcheck.sh`.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{masked, start_server, stop, upgrade_head, wait_until, Client, Ev, TIMEOUT};
use wsx::{Backend, Conn, Handler, Message, Server};

/// On "flood", sends 32 × 256 KiB (more than loopback's socket buffers hold, so sends wait for
/// room); on "flood-then-bye", the same and then ends the connection at once, with whatever is
/// queued; on "reset", resets the connection ([`Conn::reset`]); echoes anything else.
struct Flooder;

const CHUNK: usize = 256 << 10;

impl Handler for Flooder {
    type State = ();

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        match message {
            Message::Text("flood") => {
                for i in 0..32u8 {
                    let _ = conn.send_binary(&vec![i; CHUNK]);
                }
            }
            Message::Text("flood-then-bye") => {
                for i in 0..32u8 {
                    let _ = conn.send_binary(&vec![i; CHUNK]);
                }
                conn.terminate();
            }
            Message::Text("reset") => conn.reset(),
            other => {
                let _ = conn.send(other);
            }
        }
    }
}

fn upgraded(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    s.write_all(&upgrade_head("/", &[]))
        .expect("upgrade request");
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut buf).expect("read the 101");
        assert!(n > 0, "closed during the handshake");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 101"), "{got:?}");
    s
}

fn reset(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .expect("linger 0");
    drop(s);
}

test_all!(resets_and_terminations_with_sends_in_flight_free_everything);
fn resets_and_terminations_with_sends_in_flight_free_everything(backend: Backend) {
    let server = start_server(
        backend,
        Server::builder().threads(1).idle_timeout(None),
        |_| Flooder,
    );
    let addr = server.local_addr();
    let mut watcher = Client::connect(addr);
    for round in 0..20 {
        let mut socks: Vec<TcpStream> = (0..10).map(|_| upgraded(addr)).collect();
        for (i, s) in socks.iter_mut().enumerate() {
            let what: &[u8] = if i % 2 == 0 {
                b"flood"
            } else {
                b"flood-then-bye"
            };
            s.write_all(&masked(true, 0x1, what)).expect("send");
        }
        // Read a little of some (so sends are partly done), none of the others, then reset
        // every one while the server still has megabytes queued for it.
        for s in socks.iter_mut().step_by(3) {
            let mut some = [0u8; 4096];
            let _ = s.read(&mut some);
        }
        for s in socks {
            reset(s);
        }
        // The server keeps serving the connection that behaves.
        watcher.send_text(&format!("still here {round}"));
        assert_eq!(
            watcher.recv(),
            Some(Ev::Text(format!("still here {round}"))),
            "round {round}"
        );
    }
    assert!(
        wait_until(TIMEOUT, || server.stats().connections == 1),
        "the reset connections are ended: {:?}",
        server.stats()
    );
    assert!(
        wait_until(TIMEOUT, || server.footprint().queued_bytes == 0),
        "their queues are let go: {:?}",
        server.footprint()
    );
    watcher.close(1000, "");
    assert_eq!(watcher.recv(), Some(Ev::Close(1000, String::new())));
    stop(&server);
}

test_all!(a_reset_from_the_server_reaches_the_peer_as_a_tcp_reset);
/// [`Conn::reset`] ends the connection with RST, not FIN and not a close frame, and the server
/// counts it closed; the other connections keep working.
fn a_reset_from_the_server_reaches_the_peer_as_a_tcp_reset(backend: Backend) {
    let server = start_server(
        backend,
        Server::builder().threads(1).idle_timeout(None),
        |_| Flooder,
    );
    let addr = server.local_addr();
    let mut watcher = Client::connect(addr);
    for round in 0..5 {
        let mut client = Client::connect(addr);
        client.send_text("reset");
        assert_eq!(
            client.recv_until_end().last(),
            Some(&Ev::Reset),
            "round {round}"
        );
        watcher.send_text("still here");
        assert_eq!(watcher.recv(), Some(Ev::Text("still here".into())));
    }
    assert!(
        wait_until(TIMEOUT, || {
            let s = server.stats();
            (s.connections, s.opened, s.closed) == (1, 6, 5)
        }),
        "five resets counted closed: {:?}",
        server.stats()
    );
    stop(&server);
}

//! A server refuses a port that something already listens on (`AddrInUse`) instead of sharing
//! it through `SO_REUSEPORT`, while the workers of one server still share their port.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;

use std::collections::BTreeSet;
use std::io;
use std::net::TcpListener;
use std::time::Duration;

use common::{start_server, stop, wait_for_workers, Client, Echo, Ev, TIMEOUT};
use wsx::{Backend, Conn, Handler, Message, Server};

/// Answers every message with the index of the worker that owns the connection.
struct WhichWorker;

impl Handler for WhichWorker {
    type State = ();

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, _message: Message<'_>) {
        let worker = conn.id().worker().to_string();
        let _ = conn.send_text(&worker);
    }
}

fn start_on(backend: Backend, port: u16, threads: usize) -> io::Result<wsx::ServerHandle> {
    let server = Server::builder()
        .host("127.0.0.1")
        .port(port)
        .threads(threads)
        .pin_threads(false)
        .backend(backend)
        .start(|_| Echo)?;
    backends::assert_runs_on(&server, backend);
    Ok(server)
}

fn echo_once(addr: std::net::SocketAddr, text: &str) {
    let mut client = Client::connect(addr);
    client.send_text(text);
    assert_eq!(client.recv_data(), Some(Ev::Text(text.into())));
}

test_all!(a_second_server_on_the_port_fails_with_addr_in_use);
fn a_second_server_on_the_port_fails_with_addr_in_use(backend: Backend) {
    let first = start_server(backend, Server::builder().threads(2), |_| Echo);
    let port = first.local_addr().port();
    for threads in [1, 2] {
        match start_on(backend, port, threads) {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}"),
            Ok(second) => {
                stop(&second);
                panic!("a second server ({threads} threads) started on port {port} in use");
            }
        }
    }
    // The first one is unharmed and serves every connection.
    for i in 0..8 {
        echo_once(first.local_addr(), &format!("still mine {i}"));
    }
    stop(&first);
}

test_all!(a_port_held_by_a_plain_listener_fails_with_addr_in_use);
fn a_port_held_by_a_plain_listener_fails_with_addr_in_use(backend: Backend) {
    let holder = TcpListener::bind("127.0.0.1:0").expect("bind a plain listener");
    let port = holder.local_addr().expect("local address").port();
    match start_on(backend, port, 2) {
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}"),
        Ok(server) => {
            stop(&server);
            panic!("a server started on port {port}, which a plain listener holds");
        }
    }
}

test_all!(the_port_is_free_again_once_the_server_stopped);
fn the_port_is_free_again_once_the_server_stopped(backend: Backend) {
    let first = start_on(backend, 0, 2).expect("first server starts");
    let addr = first.local_addr();
    // Leave server-side connections in TIME_WAIT: the server closes first after the handshake.
    for i in 0..4 {
        let mut client = Client::connect(addr);
        client.send_text("x");
        assert_eq!(client.recv_data(), Some(Ev::Text("x".into())), "echo {i}");
        client.close(1000, "");
        let _ = client.recv_until_end();
    }
    first.shutdown(Duration::ZERO);
    wait_for_workers(&first, TIMEOUT);
    let second =
        start_on(backend, addr.port(), 2).expect("the port is free once the first server ended");
    echo_once(second.local_addr(), "second");
    stop(&second);
}

test_all!(workers_of_one_server_share_a_port_zero_listener);
fn workers_of_one_server_share_a_port_zero_listener(backend: Backend) {
    const WORKERS: usize = 4;
    const CLIENTS: usize = 32;
    let server = start_server(backend, Server::builder().threads(WORKERS), |_| WhichWorker);
    let mut seen = BTreeSet::new();
    let clients: Vec<Client> = (0..CLIENTS)
        .map(|_| Client::connect(server.local_addr()))
        .collect();
    for mut client in clients {
        client.send_text("which?");
        match client.recv_data() {
            Some(Ev::Text(w)) => {
                let w: usize = w.parse().expect("a worker index");
                assert!(w < WORKERS, "worker {w}");
                seen.insert(w);
            }
            other => panic!("no answer: {other:?}"),
        }
    }
    // The kernel hashes each connection to one of the workers' listeners: 32 connections all
    // on one of four would have odds of 4^-31.
    assert!(
        seen.len() > 1,
        "every connection went to worker {seen:?}: the listeners do not share the port"
    );
    stop(&server);
}

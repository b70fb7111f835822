//! Scale: 1,000 connections open at once on two workers, each sending one message before any
//! echo is read; every echo arrives on its own connection, and `stats()` counts the
//! connections and the messages both ways, then drops back to zero.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;

use std::time::Duration;

use common::{start_server, stop, Client, Echo, Ev, TIMEOUT};
use wsx::Backend;
use wsx::Server;

const THREADS: usize = 4;
const PER_THREAD: usize = 250;
const TOTAL: usize = THREADS * PER_THREAD;

test_all!(a_thousand_connections_echo_at_once);
fn a_thousand_connections_echo_at_once(backend: Backend) {
    common::raise_fd_limit();
    let server = start_server(backend, Server::builder().threads(2), |_| Echo);
    let addr = server.local_addr();
    let drivers: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                let mut clients: Vec<Client> =
                    (0..PER_THREAD).map(|_| Client::connect(addr)).collect();
                // Every message is out before any echo is read.
                for (i, client) in clients.iter_mut().enumerate() {
                    client.send_text(&format!("{t}/{i}"));
                }
                for (i, client) in clients.iter_mut().enumerate() {
                    assert_eq!(
                        client.recv(),
                        Some(Ev::Text(format!("{t}/{i}"))),
                        "echo on connection {t}/{i}"
                    );
                }
                clients
            })
        })
        .collect();
    let clients: Vec<Client> = drivers
        .into_iter()
        .flat_map(|d| d.join().expect("driver thread"))
        .collect();
    assert_eq!(clients.len(), TOTAL);

    let counted = common::wait_until(TIMEOUT, || {
        let s = server.stats();
        s.connections == TOTAL as u64
            && s.messages_in == TOTAL as u64
            && s.messages_out == TOTAL as u64
    });
    let stats = server.stats();
    assert!(counted, "{stats:?}");
    assert!(stats.bytes_in > 0 && stats.bytes_out > 0, "{stats:?}");

    drop(clients);
    assert!(
        common::wait_until(Duration::from_secs(10), || server.stats().connections == 0),
        "{:?}",
        server.stats()
    );
    stop(&server);
}

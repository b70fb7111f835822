//! One connection that sends as fast as it can does not starve the others of its worker: under
//! epoll a readiness event reads at most a bounded number of times before the worker moves on;
//! under io_uring completions are handled in the order the kernel posted them and a receive
//! that finds the buffer ring empty is re-armed after the turn gave buffers back.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::{masked, start_server, stop, upgrade_head, wait_until, Client, Ev, TIMEOUT};
use wsx::{Backend, Conn, Handler, Message, Server};

/// Counts binary messages (the flood) and echoes text.
struct Sink {
    flood: Arc<AtomicU64>,
}

impl Handler for Sink {
    type State = ();

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        match message {
            Message::Binary(_) => {
                self.flood.fetch_add(1, Ordering::Relaxed);
            }
            other => {
                let _ = conn.send(other);
            }
        }
    }
}

test_all!(a_flooding_connection_does_not_starve_its_neighbours);
fn a_flooding_connection_does_not_starve_its_neighbours(backend: Backend) {
    let flood = Arc::new(AtomicU64::new(0));
    let f = flood.clone();
    let server = start_server(
        backend,
        Server::builder().threads(1).idle_timeout(None),
        move |_| Sink { flood: f.clone() },
    );
    let addr = server.local_addr();
    let mut neighbour = Client::connect(addr);
    let stop_flag = Arc::new(AtomicBool::new(false));
    let flooder = {
        let stop_flag = stop_flag.clone();
        std::thread::spawn(move || {
            let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
            s.write_all(&upgrade_head("/", &[])).expect("upgrade");
            // The 101 is never read: the flood only sends. 64 KiB frames, bounded in count.
            let frame = masked(true, 0x2, &vec![7u8; 64 << 10]);
            for _ in 0..20_000 {
                if stop_flag.load(Ordering::Relaxed) || s.write_all(&frame).is_err() {
                    break;
                }
            }
        })
    };
    assert!(
        wait_until(TIMEOUT, || flood.load(Ordering::Relaxed) > 100),
        "the flood reaches the server"
    );
    for i in 0..50 {
        neighbour.send_text(&format!("ping {i}"));
        assert_eq!(
            neighbour.recv(),
            Some(Ev::Text(format!("ping {i}"))),
            "the neighbour is answered while the flood goes on (message {i})"
        );
    }
    let during = flood.load(Ordering::Relaxed);
    stop_flag.store(true, Ordering::Relaxed);
    flooder.join().expect("flooder");
    assert!(
        during > 100,
        "the flood was being served meanwhile ({during})"
    );
    stop(&server);
}

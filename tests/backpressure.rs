//! Backpressure: a client that does not read while the handler sends big messages sees its
//! sends go `Sent`, then `Queued` (with `buffered_amount` growing), then `Dropped` once the next
//! one would not fit in `max_buffered`; another client on the same worker still gets prompt
//! echoes; once the slow client reads, every message that was not dropped arrives in order and
//! `on_drain` fires. (The read pause, the memory bound and ping floods: `tests/memory_bound.rs`.)

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;

use std::time::Duration;

use common::{start_server, stop, Client, Ev, Shared};
use wsx::{Backend, Conn, ConnId, Handler, Message, SendStatus, Server};

const CHUNK: usize = 256 << 10;
const MAX_BUFFERED: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rec {
    Open(ConnId),
    /// A `more` request was answered: sequence number, status, `buffered_amount` after it.
    Sent(ConnId, u8, SendStatus, usize),
    Drain(ConnId),
}

/// On `more`, sends one `CHUNK`-byte binary message filled with its sequence number; echoes
/// anything else.
struct Flood {
    log: Shared<Rec>,
}

impl Handler for Flood {
    /// The next sequence number.
    type State = u8;

    fn on_open(&mut self, conn: &mut Conn<'_, u8>) {
        self.log.push(Rec::Open(conn.id()));
    }

    fn on_message(&mut self, conn: &mut Conn<'_, u8>, message: Message<'_>) {
        if message != Message::Text("more") {
            let _ = conn.send(message);
            return;
        }
        let seq = *conn.state();
        *conn.state_mut() = seq.wrapping_add(1);
        let status = conn.send_binary(&vec![seq; CHUNK]).expect("open");
        self.log
            .push(Rec::Sent(conn.id(), seq, status, conn.buffered_amount()));
    }

    fn on_drain(&mut self, conn: &mut Conn<'_, u8>) {
        self.log.push(Rec::Drain(conn.id()));
    }
}

fn sends(log: &Shared<Rec>, id: ConnId) -> Vec<(u8, SendStatus, usize)> {
    log.snapshot()
        .into_iter()
        .filter_map(|r| match r {
            Rec::Sent(c, seq, status, buffered) if c == id => Some((seq, status, buffered)),
            _ => None,
        })
        .collect()
}

fn drains(log: &Shared<Rec>, id: ConnId) -> usize {
    log.snapshot()
        .iter()
        .filter(|r| **r == Rec::Drain(id))
        .count()
}

test_all!(a_slow_reader_gets_queued_then_dropped_and_drains_once_it_reads);
fn a_slow_reader_gets_queued_then_dropped_and_drains_once_it_reads(backend: Backend) {
    let log = Shared::default();
    let l = log.clone();
    // One worker: both clients share it, so "unaffected" means the worker never blocks.
    let server = start_server(
        backend,
        Server::builder().threads(1).max_buffered(MAX_BUFFERED),
        move |_| Flood { log: l.clone() },
    );
    let mut slow = Client::connect(server.local_addr());
    let slow_id = match log.wait_for(|r| matches!(r, Rec::Open(_))) {
        Some(Rec::Open(id)) => id,
        other => panic!("{other:?}"),
    };
    let mut fast = Client::connect(server.local_addr());

    // Ask for one message at a time (each in its own read, so each is written on its own)
    // until the server starts dropping. The kernel's buffers take a few MiB first.
    let mut dropped = false;
    for i in 0..200 {
        slow.send_text("more");
        assert!(
            common::wait_until(common::TIMEOUT, || sends(&log, slow_id).len() > i),
            "the handler answered request {i}"
        );
        if sends(&log, slow_id)
            .last()
            .is_some_and(|s| s.1 == SendStatus::Dropped)
        {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "never dropped: {:?}", sends(&log, slow_id));
    let record = sends(&log, slow_id);
    let statuses: Vec<SendStatus> = record.iter().map(|s| s.1).collect();

    // Sent while the socket kept up, then Queued, then Dropped: never back, since nobody reads.
    let first_queued = statuses
        .iter()
        .position(|s| *s == SendStatus::Queued)
        .expect("some sends were queued");
    assert!(
        first_queued > 0
            && statuses[..first_queued]
                .iter()
                .all(|s| *s == SendStatus::Sent),
        "{statuses:?}"
    );
    let queued = &record[first_queued..record.len() - 1];
    assert!(
        queued.iter().all(|s| s.1 == SendStatus::Queued),
        "{statuses:?}"
    );
    // buffered_amount grows with each queued message, never past the limit, and a drop
    // comes when the next message would not fit.
    for pair in queued.windows(2) {
        assert!(pair[1].2 > pair[0].2, "buffered_amount grows: {record:?}");
    }
    assert!(
        record.iter().all(|s| s.2 <= MAX_BUFFERED),
        "within the limit: {record:?}"
    );
    let (_, _, at_drop) = *record.last().unwrap();
    assert!(
        at_drop + CHUNK > MAX_BUFFERED,
        "dropped at {at_drop} buffered bytes"
    );
    assert!(
        common::wait_until(common::TIMEOUT, || server.stats().dropped == 1),
        "the drop is counted: {:?}",
        server.stats()
    );

    // Another client on the same worker is served promptly meanwhile.
    for i in 0..5 {
        let text = format!("fast {i}");
        fast.send_text(&text);
        assert_eq!(
            fast.recv_within(Duration::from_secs(2)),
            Some(Ev::Text(text))
        );
    }

    // Now read: exactly the messages that were not dropped, in order, intact.
    let drains_before = drains(&log, slow_id);
    let expected: Vec<u8> = record
        .iter()
        .filter(|s| s.1 != SendStatus::Dropped)
        .map(|s| s.0)
        .collect();
    for &seq in &expected {
        match slow.recv() {
            Some(Ev::Binary(data)) => {
                assert_eq!(data.len(), CHUNK);
                assert!(
                    data.iter().all(|b| *b == seq),
                    "message {seq} intact and in order"
                );
            }
            other => panic!("expected message {seq}, got {other:?}"),
        }
    }
    // Nothing that was dropped arrives: an echo asked for now comes next on the stream.
    slow.send_text("after the last");
    assert_eq!(
        slow.recv(),
        Some(Ev::Text("after the last".into())),
        "nothing that was dropped arrives"
    );
    assert!(
        common::wait_until(common::TIMEOUT, || drains(&log, slow_id) > drains_before),
        "on_drain fires once everything is written"
    );

    // Drained: sends go straight out again.
    slow.send_text("more");
    assert!(common::wait_until(common::TIMEOUT, || sends(&log, slow_id)
        .len()
        > record.len()));
    assert_eq!(
        sends(&log, slow_id).last().map(|s| s.1),
        Some(SendStatus::Sent)
    );
    assert!(matches!(slow.recv(), Some(Ev::Binary(d)) if d.len() == CHUNK));
    stop(&server);
}

test_all!(a_close_with_a_backlog_still_delivers_the_backlog);
fn a_close_with_a_backlog_still_delivers_the_backlog(backend: Backend) {
    for gap in [Duration::ZERO, Duration::from_millis(50)] {
        close_with_a_backlog(backend, gap);
    }
}

fn close_with_a_backlog(backend: Backend, gap: Duration) {
    let log = Shared::default();
    let l = log.clone();
    let server = start_server(backend, Server::builder().threads(1), move |_| Flood {
        log: l.clone(),
    });
    let mut client = Client::connect(server.local_addr());
    let id = match log.wait_for(|r| matches!(r, Rec::Open(_))) {
        Some(Rec::Open(id)) => id,
        other => panic!("{other:?}"),
    };
    // A backlog of several MiB that the kernel cannot hold while we do not read.
    let n = 24;
    for i in 0..n {
        client.send_text("more");
        assert!(common::wait_until(common::TIMEOUT, || sends(&log, id)
            .len()
            > i));
    }
    assert!(
        sends(&log, id).iter().any(|s| s.1 == SendStatus::Queued),
        "{:?}",
        sends(&log, id)
    );
    // Close and half-close: we are done sending, not reading. The FIN comes right behind the
    // close frame, or (in the second round) apart from it.
    client.close(1000, "done");
    std::thread::sleep(gap);
    client.shutdown_write();
    for seq in 0..n as u8 {
        match client.recv() {
            Some(Ev::Binary(data)) => assert!(
                data.len() == CHUNK && data.iter().all(|b| *b == seq),
                "message {seq}"
            ),
            other => panic!("expected message {seq}, got {other:?}"),
        }
    }
    assert_eq!(client.recv(), Some(Ev::Close(1000, String::new())));
    assert_eq!(client.recv(), Some(Ev::Eof));
    stop(&server);
}

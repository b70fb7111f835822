//! Send tokens: `on_sent` fires exactly once per tracked message, in send order, only once its
//! last byte was written (with a reader that does not read: not before it reads); the tokens
//! still unwritten when a connection ends are in `unsent_tokens()` at `on_close`; tracked sends
//! from a `ServerHandle` that do not go (backpressure, a closed connection) are reported by
//! `on_send_dropped` and counted in `Stats::dropped`.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;

use common::{start_server, stop, Client, Ev, Shared};
use wsx::{
    Backend, CloseInfo, Conn, ConnId, DropReason, Handler, Message, MessageKind, SendStatus, Server,
};

const CHUNK: usize = 256 << 10;
/// Bytes of one `CHUNK` message on the wire (header included).
const FRAME: usize = CHUNK + 10;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rec {
    Open(ConnId),
    /// A tracked send from the handler: token and status.
    Status(ConnId, u64, SendStatus),
    /// `on_sent`: token, and `buffered_amount()` then.
    Sent(ConnId, u64, usize),
    /// `unsent_tokens()` on request.
    Unsent(ConnId, Vec<u64>),
    /// `unsent_tokens()` in `on_close`.
    Closed(ConnId, Vec<u64>),
    Dropped(ConnId, u64, DropReason),
}

/// `go N BASE` sends N tracked `CHUNK`-byte messages with tokens BASE+1..=BASE+N, each filled
/// with its token's low byte; `status` records the unsent tokens.
struct Tracker {
    log: Shared<Rec>,
}

impl Handler for Tracker {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        self.log.push(Rec::Open(conn.id()));
    }

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        let Message::Text(text) = message else {
            return;
        };
        if text == "status" {
            let unsent = conn.unsent_tokens().collect();
            self.log.push(Rec::Unsent(conn.id(), unsent));
            return;
        }
        let mut words = text.split(' ').skip(1).map(|w| w.parse::<u64>().unwrap());
        let (n, base) = (words.next().unwrap(), words.next().unwrap());
        for token in base + 1..=base + n {
            let data = vec![token as u8; CHUNK];
            let status = conn
                .send_tracked(Message::Binary(&data), token)
                .expect("open");
            self.log.push(Rec::Status(conn.id(), token, status));
        }
    }

    fn on_sent(&mut self, conn: &mut Conn<'_, ()>, token: u64) {
        self.log
            .push(Rec::Sent(conn.id(), token, conn.buffered_amount()));
    }

    fn on_send_dropped(&mut self, id: ConnId, token: u64, reason: DropReason) {
        self.log.push(Rec::Dropped(id, token, reason));
    }

    fn on_close(&mut self, conn: &mut Conn<'_, ()>, _close: &CloseInfo) {
        let unsent = conn.unsent_tokens().collect();
        self.log.push(Rec::Closed(conn.id(), unsent));
    }
}

fn opened(log: &Shared<Rec>, n: usize) -> ConnId {
    let opens: Vec<ConnId> = {
        assert!(
            common::wait_until(common::TIMEOUT, || log
                .snapshot()
                .iter()
                .filter(|r| matches!(r, Rec::Open(_)))
                .count()
                > n),
            "connection {n} opened"
        );
        log.snapshot()
            .into_iter()
            .filter_map(|r| match r {
                Rec::Open(id) => Some(id),
                _ => None,
            })
            .collect()
    };
    opens[n]
}

/// The `on_sent` tokens of `id` among `records`, with `buffered_amount()` at each.
fn sent(records: &[Rec], id: ConnId) -> Vec<(u64, usize)> {
    records
        .iter()
        .filter_map(|r| match r {
            Rec::Sent(c, t, b) if *c == id => Some((*t, *b)),
            _ => None,
        })
        .collect()
}

fn tokens(records: &[Rec], id: ConnId) -> Vec<u64> {
    sent(records, id).into_iter().map(|(t, _)| t).collect()
}

fn start(backend: Backend, max_buffered: usize) -> (wsx::ServerHandle, Shared<Rec>) {
    let log = Shared::default();
    let l = log.clone();
    let server = start_server(
        backend,
        Server::builder().threads(1).max_buffered(max_buffered),
        move |_| Tracker { log: l.clone() },
    );
    (server, log)
}

test_all!(on_sent_fires_once_per_token_in_order_after_the_bytes_are_written);
fn on_sent_fires_once_per_token_in_order_after_the_bytes_are_written(backend: Backend) {
    const N: u64 = 64; // 16 MiB: more than the kernel's socket buffers hold
    let (server, log) = start(backend, 64 << 20);
    let mut client = Client::connect(server.local_addr());
    let id = opened(&log, 0);
    client.send_text(&format!("go {N} 0"));
    client.send_text("status");
    let unsent = match log.wait_for(|r| matches!(r, Rec::Unsent(..))) {
        Some(Rec::Unsent(_, unsent)) => unsent,
        other => panic!("{other:?}"),
    };
    let records = log.snapshot();
    let at = records
        .iter()
        .position(|r| matches!(r, Rec::Unsent(..)))
        .unwrap();
    let statuses: Vec<SendStatus> = records
        .iter()
        .filter_map(|r| match r {
            Rec::Status(_, _, s) => Some(*s),
            _ => None,
        })
        .collect();
    assert_eq!(statuses.len() as u64, N);
    assert!(statuses.iter().all(|s| *s != SendStatus::Dropped));
    // Before the client reads: what was reported and what was not make up every token once,
    // in order, and the kernel could not take them all.
    let before = tokens(&records[..at], id);
    assert!(!unsent.is_empty(), "all reported before the client read");
    let all: Vec<u64> = before.iter().chain(&unsent).copied().collect();
    assert_eq!(all, (1..=N).collect::<Vec<_>>());

    // Read: every message arrives, and every token is reported once, in order.
    for token in 1..=N {
        match client.recv() {
            Some(Ev::Binary(data)) => {
                assert!(data.len() == CHUNK && data.iter().all(|b| *b == token as u8));
            }
            other => panic!("message {token}: {other:?}"),
        }
    }
    assert!(
        common::wait_until(common::TIMEOUT, || tokens(&log.snapshot(), id).len() as u64
            >= N),
        "{:?}",
        tokens(&log.snapshot(), id)
    );
    let reports = sent(&log.snapshot(), id);
    assert_eq!(
        reports.iter().map(|r| r.0).collect::<Vec<_>>(),
        (1..=N).collect::<Vec<_>>()
    );
    // When token t is reported, only the messages after it can still be unwritten.
    for (token, buffered) in reports {
        assert!(
            buffered <= (N - token) as usize * FRAME,
            "token {token} reported with {buffered} bytes unwritten"
        );
    }
    let n = log.len();
    client.send_text("status");
    assert!(log.wait_len(n + 1));
    assert_eq!(
        log.snapshot().last(),
        Some(&Rec::Unsent(id, Vec::new())),
        "nothing left unsent"
    );
    stop(&server);
}

test_all!(tokens_never_sent_are_reported_at_close_and_late_handle_sends_are_dropped);
fn tokens_never_sent_are_reported_at_close_and_late_handle_sends_are_dropped(backend: Backend) {
    const N: u64 = 64;
    let (server, log) = start(backend, 64 << 20);
    let mut client = Client::connect(server.local_addr());
    let id = opened(&log, 0);
    client.send_text(&format!("go {N} 100"));
    assert!(common::wait_until(common::TIMEOUT, || log
        .snapshot()
        .iter()
        .filter(|r| matches!(r, Rec::Status(..)))
        .count()
        as u64
        == N));
    // The client goes away without reading.
    client.reset();
    let unsent = match log.wait_for(|r| matches!(r, Rec::Closed(..))) {
        Some(Rec::Closed(_, unsent)) => unsent,
        other => panic!("{other:?}"),
    };
    assert!(!unsent.is_empty(), "some were never written");
    let reported = tokens(&log.snapshot(), id);
    let all: Vec<u64> = reported.iter().chain(&unsent).copied().collect();
    assert_eq!(all, (101..=100 + N).collect::<Vec<_>>(), "each token once");

    // A tracked send from another thread to the closed connection is reported as dropped.
    server
        .send_tracked(id, MessageKind::Text, "late", 7)
        .expect("the worker runs");
    assert_eq!(
        log.wait_for(|r| matches!(r, Rec::Dropped(..))),
        Some(Rec::Dropped(id, 7, DropReason::Closed))
    );
    // Nothing was reported for the connection after its close.
    let records = log.snapshot();
    let closed_at = records
        .iter()
        .position(|r| matches!(r, Rec::Closed(..)))
        .unwrap();
    assert!(tokens(&records[closed_at..], id).is_empty());
    assert_eq!(
        server.stats().dropped,
        0,
        "a closed connection is not backpressure"
    );
    stop(&server);
}

test_all!(handle_sends_report_each_token_once_sent_or_dropped);
fn handle_sends_report_each_token_once_sent_or_dropped(backend: Backend) {
    // 16 MiB: more than loopback's socket buffers (at most 4 MiB to send, 6 MiB to receive
    // by default) and the 1 MiB queue hold together, so some must be dropped.
    const N: u64 = 64;
    let (server, log) = start(backend, 1 << 20);
    let mut client = Client::connect(server.local_addr());
    let id = opened(&log, 0);
    for token in 1..=N {
        server
            .send_tracked(id, MessageKind::Binary, vec![token as u8; CHUNK], token)
            .expect("the worker runs");
    }
    let dropped = |records: &[Rec]| -> Vec<u64> {
        records
            .iter()
            .filter_map(|r| match r {
                Rec::Dropped(c, t, DropReason::Backpressure) if *c == id => Some(*t),
                _ => None,
            })
            .collect()
    };
    assert!(
        log.wait_for(|r| matches!(r, Rec::Dropped(..))).is_some(),
        "64 x 256 KiB to a client that does not read: some are dropped"
    );
    // Read what comes until every token is accounted for.
    let mut got = Vec::new();
    while (got.len() + dropped(&log.snapshot()).len()) < N as usize {
        match client.recv() {
            Some(Ev::Binary(data)) => {
                assert_eq!(data.len(), CHUNK);
                got.push(u64::from(data[0]));
            }
            other => panic!("after {got:?}: {other:?}"),
        }
    }
    assert!(common::wait_until(common::TIMEOUT, || tokens(
        &log.snapshot(),
        id
    )
    .len()
        == got.len()));
    let records = log.snapshot();
    let dropped = dropped(&records);
    assert_eq!(
        tokens(&records, id),
        got,
        "on_sent for each message that went, in order"
    );
    let mut all: Vec<u64> = got.iter().chain(&dropped).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (1..=N).collect::<Vec<_>>(), "each token once");
    assert!(
        common::wait_until(common::TIMEOUT, || server.stats().dropped
            == dropped.len() as u64),
        "Stats::dropped counts them: {:?}",
        server.stats()
    );
    stop(&server);
}

//! The handler's tick (`Builder::tick`, `ClientBuilder::tick`, `Handler::on_tick`): ticks keep
//! coming on every worker, what `on_tick` sends through `Tick::with` reaches its connections
//! in order, `with` refuses ids that are not this worker's open connections, and a client
//! engine ticks too.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{start_server, stop, wait_until, Client, Echo, Ev, Shared, TIMEOUT};
use wsx::client::ClientOptions;
use wsx::{Backend, CloseInfo, Conn, ConnId, Handler, Message, Server, Tick};

/// Counts its worker's ticks, and the ticks that named another worker than its own.
struct Counter {
    worker: usize,
    ticks: Arc<Vec<AtomicU64>>,
    wrong_worker: Arc<AtomicU64>,
}

impl Handler for Counter {
    type State = ();

    fn on_tick(&mut self, tick: &mut Tick<'_, ()>) {
        if tick.worker() != self.worker {
            self.wrong_worker.fetch_add(1, Ordering::Relaxed);
        }
        self.ticks[self.worker].fetch_add(1, Ordering::Relaxed);
    }

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        let _ = conn.send(message);
    }
}

test_all!(ticks_keep_coming_on_every_worker);
/// Two workers with a 1 ms tick: each ticks again and again (at least 20 times each, within
/// the bound), and every tick names its own worker.
fn ticks_keep_coming_on_every_worker(backend: Backend) {
    let ticks = Arc::new(vec![AtomicU64::new(0), AtomicU64::new(0)]);
    let wrong_worker = Arc::new(AtomicU64::new(0));
    let (t, w) = (ticks.clone(), wrong_worker.clone());
    let server = start_server(
        backend,
        Server::builder().threads(2).tick(Duration::from_millis(1)),
        move |worker| Counter {
            worker,
            ticks: t.clone(),
            wrong_worker: w.clone(),
        },
    );
    assert!(
        wait_until(TIMEOUT, || ticks
            .iter()
            .all(|n| n.load(Ordering::Relaxed) >= 20)),
        "both workers tick: {ticks:?}"
    );
    // Ticks go on while connections are served.
    let before: Vec<u64> = ticks.iter().map(|n| n.load(Ordering::Relaxed)).collect();
    let mut client = Client::connect(server.local_addr());
    client.send_text("between ticks");
    assert_eq!(client.recv(), Some(Ev::Text("between ticks".into())));
    assert!(
        wait_until(TIMEOUT, || ticks
            .iter()
            .zip(&before)
            .all(|(n, b)| n.load(Ordering::Relaxed) > *b)),
        "ticks keep coming: {before:?} then {ticks:?}"
    );
    assert_eq!(wrong_worker.load(Ordering::Relaxed), 0);
    stop(&server);
}

test_all!(no_tick_without_the_setting);
/// A server built without `tick` never calls `on_tick`, while it serves a connection.
fn no_tick_without_the_setting(backend: Backend) {
    let ticks = Arc::new(vec![AtomicU64::new(0)]);
    let wrong_worker = Arc::new(AtomicU64::new(0));
    let (t, w) = (ticks.clone(), wrong_worker.clone());
    let server = start_server(backend, Server::builder().threads(1), move |worker| {
        Counter {
            worker,
            ticks: t.clone(),
            wrong_worker: w.clone(),
        }
    });
    let mut client = Client::connect(server.local_addr());
    for i in 0..20 {
        client.send_text(&format!("m{i}"));
        assert_eq!(client.recv(), Some(Ev::Text(format!("m{i}"))));
    }
    stop(&server);
    assert_eq!(ticks[0].load(Ordering::Relaxed), 0, "no tick was asked for");
}

/// Holds every message and echoes it from `on_tick`: a server with a delay of its own. Each
/// message is recorded with the tick count when it arrived.
struct DelayedEcho {
    held: Vec<(ConnId, Vec<u8>, bool)>,
    ticks: Arc<AtomicU64>,
    /// (text, ticks when it arrived)
    arrived: Shared<(Vec<u8>, u64)>,
}

impl Handler for DelayedEcho {
    type State = ();

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        let text = matches!(message, Message::Text(_));
        let bytes = message.as_bytes().to_vec();
        self.arrived
            .push((bytes.clone(), self.ticks.load(Ordering::SeqCst)));
        self.held.push((conn.id(), bytes, text));
    }

    fn on_tick(&mut self, tick: &mut Tick<'_, ()>) {
        self.ticks.fetch_add(1, Ordering::SeqCst);
        for (id, bytes, text) in self.held.drain(..) {
            let sent = tick.with(id, |conn| {
                if text {
                    conn.send_text(std::str::from_utf8(&bytes).expect("text is UTF-8"))
                } else {
                    conn.send_binary(&bytes)
                }
            });
            assert!(
                matches!(sent, Some(Ok(_))),
                "the connection is open: {sent:?}"
            );
        }
    }
}

test_all!(a_delayed_echo_returns_every_message_in_order_after_a_tick);
/// Three connections on one worker, each sending interleaved text and binary messages (one of
/// them larger than a socket write takes at once): every message comes back to its sender,
/// in order, and each echo leaves at a tick after the one its message arrived in.
fn a_delayed_echo_returns_every_message_in_order_after_a_tick(backend: Backend) {
    let ticks = Arc::new(AtomicU64::new(0));
    let arrived = Shared::default();
    let (t, a) = (ticks.clone(), arrived.clone());
    let server = start_server(
        backend,
        Server::builder().threads(1).tick(Duration::from_millis(2)),
        move |_| DelayedEcho {
            held: Vec::new(),
            ticks: t.clone(),
            arrived: a.clone(),
        },
    );
    let mut clients: Vec<Client> = (0..3)
        .map(|_| Client::connect(server.local_addr()))
        .collect();
    const ROUNDS: usize = 40;
    let message = |c: usize, i: usize| -> Ev {
        if i % 10 == 9 {
            Ev::Binary(vec![(c * 7 + i) as u8; 300 << 10])
        } else if i % 2 == 0 {
            Ev::Text(format!("client {c} message {i}"))
        } else {
            Ev::Binary(format!("client {c} binary {i}").into_bytes())
        }
    };
    for i in 0..ROUNDS {
        for (c, client) in clients.iter_mut().enumerate() {
            match message(c, i) {
                Ev::Text(t) => client.send_text(&t),
                Ev::Binary(b) => client.send_binary(&b),
                other => unreachable!("{other:?}"),
            }
        }
    }
    let mut echoed_at: HashMap<Vec<u8>, u64> = HashMap::new();
    for i in 0..ROUNDS {
        for (c, client) in clients.iter_mut().enumerate() {
            let got = client.recv_data();
            let now = ticks.load(Ordering::SeqCst);
            let want = message(c, i);
            assert_eq!(got.as_ref(), Some(&want), "client {c}, message {i}");
            let bytes = match want {
                Ev::Text(t) => t.into_bytes(),
                Ev::Binary(b) => b,
                _ => unreachable!(),
            };
            echoed_at.insert(bytes, now);
        }
    }
    let arrived = arrived.snapshot();
    assert_eq!(arrived.len(), ROUNDS * 3, "every message arrived once");
    for (bytes, at) in &arrived {
        let echoed = echoed_at[bytes];
        assert!(
            echoed > *at,
            "an echo left only at a tick after its message arrived (arrived at tick {at}, \
             seen at {echoed})"
        );
    }
    stop(&server);
}

/// What the prober saw: ids of open connections of every worker, and what went wrong.
#[derive(Default)]
struct Seen {
    open: Vec<ConnId>,
    closed: Vec<ConnId>,
    /// `with` on another worker's id gave `None`.
    foreign_none: u64,
    /// `with` on a closed id gave `None`.
    closed_none: u64,
    /// `with` on one of its own open ids ran.
    own_some: u64,
    errors: Vec<String>,
}

/// At every tick, calls `with` on every id any worker has seen open.
struct Prober(Arc<Mutex<Seen>>);

impl Handler for Prober {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        self.0.lock().unwrap().open.push(conn.id());
    }

    fn on_close(&mut self, conn: &mut Conn<'_, ()>, _close: &CloseInfo) {
        self.0.lock().unwrap().closed.push(conn.id());
    }

    fn on_tick(&mut self, tick: &mut Tick<'_, ()>) {
        let mut seen = self.0.lock().unwrap();
        let ids = seen.open.clone();
        for id in ids {
            let got = tick.with(id, |conn| conn.id());
            let closed = seen.closed.contains(&id);
            match got {
                None if id.worker() != tick.worker() => seen.foreign_none += 1,
                None if closed => seen.closed_none += 1,
                Some(got) if got == id && !closed && id.worker() == tick.worker() => {
                    seen.own_some += 1
                }
                other => {
                    let error = format!(
                        "worker {}: with({id}) gave {other:?} (closed: {closed})",
                        tick.worker()
                    );
                    seen.errors.push(error);
                }
            }
        }
    }
}

test_all!(with_gives_none_for_closed_and_foreign_ids);
/// Two workers, connections on both: `with` runs on the worker's own open connections only;
/// another worker's ids and closed ids (also once their slots are reused) give `None`.
fn with_gives_none_for_closed_and_foreign_ids(backend: Backend) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    let server = start_server(
        backend,
        Server::builder().threads(2).tick(Duration::from_millis(1)),
        move |_| Prober(s.clone()),
    );
    let addr = server.local_addr();
    // Connect until both workers hold a connection (the kernel spreads them; bounded).
    let mut clients = Vec::new();
    for _ in 0..64 {
        let mut client = Client::connect(addr);
        // A ping answered means the connection is open on the server.
        client.ping(b"open?");
        assert_eq!(client.recv(), Some(Ev::Pong(b"open?".to_vec())));
        clients.push(client);
        let workers: Vec<usize> = seen
            .lock()
            .unwrap()
            .open
            .iter()
            .map(|id| id.worker())
            .collect();
        if workers.contains(&0) && workers.contains(&1) {
            break;
        }
    }
    let both = {
        let seen = seen.lock().unwrap();
        seen.open.iter().any(|id| id.worker() == 0) && seen.open.iter().any(|id| id.worker() == 1)
    };
    assert!(both, "connections landed on both workers");
    assert!(
        wait_until(TIMEOUT, || {
            let seen = seen.lock().unwrap();
            seen.foreign_none > 0 && seen.own_some > 0
        }),
        "with ran on own ids and refused foreign ones"
    );
    // Close one; then open another, which may take the freed slot.
    let mut first = clients.remove(0);
    first.close(1000, "");
    assert_eq!(first.recv(), Some(Ev::Close(1000, String::new())));
    assert!(
        wait_until(TIMEOUT, || !seen.lock().unwrap().closed.is_empty()),
        "the server saw the close"
    );
    let mut again = Client::connect(addr);
    again.ping(b"open?");
    assert_eq!(again.recv(), Some(Ev::Pong(b"open?".to_vec())));
    assert!(
        wait_until(TIMEOUT, || seen.lock().unwrap().closed_none > 0),
        "with refused the closed id"
    );
    stop(&server);
    let seen = seen.lock().unwrap();
    assert!(seen.errors.is_empty(), "{:?}", seen.errors);
}

/// A client engine's handler that sends from `on_tick` (open-loop): `SENDS` messages per
/// connection, one per tick, and counts the echoes.
struct Sender {
    open: Vec<ConnId>,
    sent: u64,
    ticks: Arc<AtomicU64>,
    echoes: Shared<String>,
}

const SENDS: u64 = 10;

impl Handler for Sender {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        self.open.push(conn.id());
    }

    fn on_message(&mut self, _conn: &mut Conn<'_, ()>, message: Message<'_>) {
        if let Message::Text(t) = message {
            self.echoes.push(t.to_owned());
        }
    }

    fn on_tick(&mut self, tick: &mut Tick<'_, ()>) {
        self.ticks.fetch_add(1, Ordering::Relaxed);
        if self.sent >= SENDS || self.open.is_empty() {
            return;
        }
        let n = self.sent;
        for &id in &self.open {
            let sent = tick.with(id, |conn| conn.send_text(&format!("tick {n}")));
            assert!(matches!(sent, Some(Ok(_))), "{sent:?}");
        }
        self.sent += 1;
    }
}

test_all!(a_client_engine_ticks_and_sends_from_its_tick);
/// `Client::builder().tick(..)`: the engine ticks with no connection at all, and its handler's
/// sends from `on_tick` (one per tick) reach an echo server and come back in order.
fn a_client_engine_ticks_and_sends_from_its_tick(backend: Backend) {
    let server = start_server(backend, Server::builder().threads(1), |_| Echo);
    let ticks = Arc::new(AtomicU64::new(0));
    let echoes = Shared::default();
    let (t, e) = (ticks.clone(), echoes.clone());
    let engine = wsx::Client::builder()
        .threads(1)
        .pin_threads(false)
        .backend(backend)
        .tick(Duration::from_millis(1))
        .start(move |_| Sender {
            open: Vec::new(),
            sent: 0,
            ticks: t.clone(),
            echoes: e.clone(),
        })
        .expect("client engine starts");
    backends::assert_runs_on(&engine, backend);
    assert!(
        wait_until(TIMEOUT, || ticks.load(Ordering::Relaxed) >= 10),
        "the client engine ticks: {ticks:?}"
    );
    let url = format!("ws://{}/", server.local_addr());
    engine
        .connect(&url, ClientOptions::new().no_proxy(), 1)
        .expect("connect");
    assert!(
        wait_until(TIMEOUT, || echoes.len() as u64 >= SENDS),
        "echoes came back: {:?}",
        echoes.snapshot()
    );
    let want: Vec<String> = (0..SENDS).map(|n| format!("tick {n}")).collect();
    assert_eq!(echoes.snapshot(), want, "one message per tick, in order");
    stop(&engine);
    stop(&server);
}

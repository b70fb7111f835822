//! Every `Handler` callback fires with what it should see: `on_upgrade` (path, query, headers,
//! peer address, `X-Forwarded-For`), `on_open`, `on_message` (text, binary, fragmented),
//! `on_ping`, `on_pong` and `on_close` for each way a connection ends. (`on_drain` is covered
//! in `backpressure.rs`.)

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use common::{
    masked, read_to_eof, start_server, stop, upgrade_head, Client, ClientOptions, Ev, Shared,
    TIMEOUT,
};
use wsx::{
    Backend, CloseCode, CloseInfo, Conn, ConnId, Handler, Message, MessageKind, Reject, Server,
    ServerHandle, Upgrade,
};

/// One callback, as the recorder saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rec {
    Upgrade {
        path: String,
        query: Option<String>,
        custom: Option<Vec<u8>>,
        peer: SocketAddr,
        forwarded: Option<IpAddr>,
    },
    Open(ConnId),
    Text(ConnId, String),
    Binary(ConnId, Vec<u8>),
    Ping(ConnId, Vec<u8>),
    Pong(ConnId, Vec<u8>),
    Close(ConnId, CloseInfo),
}

/// Records every callback; echoes messages, except two commands: `close-me` closes the
/// connection with 4000, `ping-me` sends a ping with payload `srv`.
struct Recorder {
    log: Shared<Rec>,
}

impl Handler for Recorder {
    type State = ();

    fn on_upgrade(&mut self, upgrade: &mut Upgrade<'_>) -> Result<(), Reject> {
        self.log.push(Rec::Upgrade {
            path: upgrade.path().to_owned(),
            query: upgrade.query().map(str::to_owned),
            custom: upgrade.header("x-custom").map(<[u8]>::to_vec),
            peer: upgrade.peer_addr(),
            forwarded: upgrade.forwarded_for(),
        });
        Ok(())
    }

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        self.log.push(Rec::Open(conn.id()));
    }

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        match message {
            Message::Text("close-me") => {
                self.log.push(Rec::Text(conn.id(), "close-me".into()));
                conn.close(CloseCode(4000), "asked to").expect("close");
                return;
            }
            Message::Text("ping-me") => {
                self.log.push(Rec::Text(conn.id(), "ping-me".into()));
                let _ = conn.ping(b"srv").expect("ping");
                return;
            }
            Message::Text(t) => self.log.push(Rec::Text(conn.id(), t.to_owned())),
            Message::Binary(b) => self.log.push(Rec::Binary(conn.id(), b.to_vec())),
        }
        let _ = conn.send(message).expect("echo");
    }

    fn on_ping(&mut self, conn: &mut Conn<'_, ()>, payload: &[u8]) {
        self.log.push(Rec::Ping(conn.id(), payload.to_vec()));
    }

    fn on_pong(&mut self, conn: &mut Conn<'_, ()>, payload: &[u8]) {
        self.log.push(Rec::Pong(conn.id(), payload.to_vec()));
    }

    fn on_close(&mut self, conn: &mut Conn<'_, ()>, close: &CloseInfo) {
        self.log.push(Rec::Close(conn.id(), close.clone()));
    }
}

fn recorder_server(backend: Backend) -> (ServerHandle, Shared<Rec>) {
    let log = Shared::default();
    let l = log.clone();
    let server = start_server(backend, Server::builder().threads(1), move |_| Recorder {
        log: l.clone(),
    });
    (server, log)
}

/// Connects and returns the client with the id `on_open` saw.
fn open(server: &ServerHandle, log: &Shared<Rec>) -> (Client, ConnId) {
    let before = log
        .snapshot()
        .iter()
        .filter(|r| matches!(r, Rec::Open(_)))
        .count();
    let client = Client::connect(server.local_addr());
    assert!(
        common::wait_until(TIMEOUT, || log
            .snapshot()
            .iter()
            .filter(|r| matches!(r, Rec::Open(_)))
            .count()
            > before),
        "on_open did not fire"
    );
    let id = log
        .snapshot()
        .iter()
        .rev()
        .find_map(|r| match r {
            Rec::Open(id) => Some(*id),
            _ => None,
        })
        .expect("an open");
    (client, id)
}

/// Waits for the one `on_close` of `id` and checks no second one follows. A second one could
/// only come while the worker still holds the connection: a probe's ping round trip (answered
/// in a turn after the one that opened the probe) and then counters that count the probe
/// alone show `id` gone for good.
fn close_of(server: &ServerHandle, log: &Shared<Rec>, id: ConnId) -> CloseInfo {
    let rec = log
        .wait_for(|r| matches!(r, Rec::Close(c, _) if *c == id))
        .expect("on_close fired");
    let (mut probe, _) = open(server, log);
    probe.ping(b"fence");
    assert_eq!(probe.recv(), Some(Ev::Pong(b"fence".to_vec())));
    assert!(
        common::wait_until(TIMEOUT, || server.stats().connections == 1),
        "the closed connection is still held: {:?}",
        server.stats()
    );
    let count = log
        .snapshot()
        .iter()
        .filter(|r| matches!(r, Rec::Close(c, _) if *c == id))
        .count();
    assert_eq!(count, 1, "on_close fires exactly once");
    match rec {
        Rec::Close(_, info) => info,
        _ => unreachable!(),
    }
}

test_all!(on_upgrade_sees_path_query_headers_peer_and_forwarded_for);
fn on_upgrade_sees_path_query_headers_peer_and_forwarded_for(backend: Backend) {
    let (server, log) = recorder_server(backend);
    let options = ClientOptions {
        target: "/chat/room?id=7&lang=en",
        headers: &[
            ("X-Custom", "hello there"),
            ("X-Forwarded-For", "203.0.113.7, 10.0.0.1"),
        ],
        ..ClientOptions::default()
    };
    let client = Client::connect_with(server.local_addr(), &options);
    let rec = log
        .wait_for(|r| matches!(r, Rec::Upgrade { .. }))
        .expect("on_upgrade fired");
    assert_eq!(
        rec,
        Rec::Upgrade {
            path: "/chat/room".into(),
            query: Some("id=7&lang=en".into()),
            custom: Some(b"hello there".to_vec()),
            peer: client.local_addr(),
            forwarded: Some("203.0.113.7".parse().unwrap()),
        }
    );

    // Without the header there is no forwarded address, and no query without '?'.
    log.clear();
    let _plain = Client::connect(server.local_addr());
    let rec = log
        .wait_for(|r| matches!(r, Rec::Upgrade { .. }))
        .expect("on_upgrade fired");
    assert!(
        matches!(&rec, Rec::Upgrade { path, query: None, custom: None, forwarded: None, .. } if path == "/"),
        "{rec:?}"
    );
    stop(&server);
}

test_all!(on_open_then_on_message_for_text_and_binary);
fn on_open_then_on_message_for_text_and_binary(backend: Backend) {
    let (server, log) = recorder_server(backend);
    let (mut client, id) = open(&server, &log);

    client.send_text("hello ✓");
    assert_eq!(client.recv(), Some(Ev::Text("hello ✓".into())));
    let binary: Vec<u8> = (0..=255).collect();
    client.send_binary(&binary);
    assert_eq!(client.recv(), Some(Ev::Binary(binary.clone())));
    // Empty messages are messages too.
    client.send_text("");
    assert_eq!(client.recv(), Some(Ev::Text(String::new())));

    let seen: Vec<Rec> = log
        .snapshot()
        .into_iter()
        .filter(|r| !matches!(r, Rec::Upgrade { .. }))
        .collect();
    assert_eq!(
        seen,
        [
            Rec::Open(id),
            Rec::Text(id, "hello ✓".into()),
            Rec::Binary(id, binary),
            Rec::Text(id, String::new())
        ]
    );
    stop(&server);
}

test_all!(fragmented_message_arrives_whole_with_a_ping_in_between);
fn fragmented_message_arrives_whole_with_a_ping_in_between(backend: Backend) {
    let (server, log) = recorder_server(backend);
    let (mut client, id) = open(&server, &log);

    client.send_fragment(Some(MessageKind::Text), "frag".as_bytes(), false);
    client.send_fragment(None, "men".as_bytes(), false);
    client.ping(b"between");
    client.send_fragment(None, "ted ✓".as_bytes(), true);
    // The pong for the ping comes first: the message is not complete until its last fragment.
    assert_eq!(client.recv(), Some(Ev::Pong(b"between".to_vec())));
    assert_eq!(client.recv(), Some(Ev::Text("fragmented ✓".into())));

    // A binary message in many small fragments, written one byte-trickle at a time.
    let payload: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let mut chunks = payload.chunks(97).peekable();
    let mut first = true;
    while let Some(chunk) = chunks.next() {
        let kind = first.then_some(MessageKind::Binary);
        client.send_fragment(kind, chunk, chunks.peek().is_none());
        first = false;
    }
    assert_eq!(client.recv(), Some(Ev::Binary(payload.clone())));

    let seen = log.snapshot();
    let messages: Vec<&Rec> = seen
        .iter()
        .filter(|r| matches!(r, Rec::Text(..) | Rec::Binary(..)))
        .collect();
    assert_eq!(
        messages,
        [
            &Rec::Text(id, "fragmented ✓".into()),
            &Rec::Binary(id, payload)
        ]
    );
    assert!(seen.contains(&Rec::Ping(id, b"between".to_vec())));
    stop(&server);
}

test_all!(frames_split_across_reads_are_reassembled);
fn frames_split_across_reads_are_reassembled(backend: Backend) {
    let (server, log) = recorder_server(backend);
    let (mut client, id) = open(&server, &log);
    // One masked text frame and one ping, written a few bytes at a time.
    let mut bytes = masked(true, 0x1, "split across many reads".as_bytes());
    bytes.extend(masked(true, 0x9, b"p"));
    for piece in bytes.chunks(3) {
        client.send_raw(piece);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(
        client.recv(),
        Some(Ev::Text("split across many reads".into()))
    );
    assert_eq!(client.recv(), Some(Ev::Pong(b"p".to_vec())));
    assert!(log.snapshot().contains(&Rec::Ping(id, b"p".to_vec())));
    stop(&server);
}

test_all!(on_ping_and_on_pong_fire_with_their_payloads);
fn on_ping_and_on_pong_fire_with_their_payloads(backend: Backend) {
    let (server, log) = recorder_server(backend);
    let (mut client, id) = open(&server, &log);

    // Client ping: the server answers with a pong (automatically) and calls on_ping.
    client.ping(b"are you there");
    assert_eq!(client.recv(), Some(Ev::Pong(b"are you there".to_vec())));
    assert!(log
        .wait_for(|r| *r == Rec::Ping(id, b"are you there".to_vec()))
        .is_some());

    // Server ping (from a callback): our client answers, and on_pong sees the payload.
    client.send_text("ping-me");
    assert_eq!(client.recv(), Some(Ev::Ping(b"srv".to_vec())));
    assert!(
        log.wait_for(|r| *r == Rec::Pong(id, b"srv".to_vec()))
            .is_some(),
        "on_pong after our answer"
    );

    // An unsolicited pong reaches on_pong too.
    client.pong(b"heartbeat");
    assert!(log
        .wait_for(|r| *r == Rec::Pong(id, b"heartbeat".to_vec()))
        .is_some());
    stop(&server);
}

test_all!(on_close_after_a_client_initiated_close_is_clean);
fn on_close_after_a_client_initiated_close_is_clean(backend: Backend) {
    let (server, log) = recorder_server(backend);
    let (mut client, id) = open(&server, &log);
    client.close(1000, "bye now");
    // The server echoes the code, then closes the TCP connection.
    assert_eq!(client.recv(), Some(Ev::Close(1000, String::new())));
    assert_eq!(client.recv(), Some(Ev::Eof));
    let info = close_of(&server, &log, id);
    assert_eq!(
        info,
        CloseInfo {
            code: CloseCode::NORMAL,
            reason: "bye now".into(),
            clean: true,
            error: None
        }
    );
    stop(&server);
}

test_all!(on_close_after_conn_close_is_clean);
fn on_close_after_conn_close_is_clean(backend: Backend) {
    let (server, log) = recorder_server(backend);
    let (mut client, id) = open(&server, &log);
    client.send_text("close-me");
    // recv echoes the close frame back, which completes the handshake.
    assert_eq!(client.recv(), Some(Ev::Close(4000, "asked to".into())));
    assert_eq!(client.recv(), Some(Ev::Eof));
    let info = close_of(&server, &log, id);
    assert_eq!(info.code, CloseCode(4000));
    assert!(info.clean, "{info:?}");
    assert_eq!(info.error, None);
    stop(&server);
}

test_all!(on_close_after_server_handle_close_is_clean);
fn on_close_after_server_handle_close_is_clean(backend: Backend) {
    let (server, log) = recorder_server(backend);
    let (mut client, id) = open(&server, &log);
    server
        .close(id, CloseCode(4001), "from the handle")
        .expect("command delivered");
    assert_eq!(
        client.recv(),
        Some(Ev::Close(4001, "from the handle".into()))
    );
    assert_eq!(client.recv(), Some(Ev::Eof));
    let info = close_of(&server, &log, id);
    assert_eq!(info.code, CloseCode(4001));
    assert!(info.clean, "{info:?}");
    stop(&server);
}

test_all!(on_close_after_an_abrupt_drop_is_1006_unclean);
fn on_close_after_an_abrupt_drop_is_1006_unclean(backend: Backend) {
    let (server, log) = recorder_server(backend);

    // A FIN without a close frame.
    let (client, id) = open(&server, &log);
    drop(client);
    let info = close_of(&server, &log, id);
    assert_eq!(info.code, CloseCode::ABNORMAL);
    assert!(!info.clean);

    // A reset.
    let (client, id) = open(&server, &log);
    client.reset();
    let info = close_of(&server, &log, id);
    assert_eq!(info.code, CloseCode::ABNORMAL);
    assert!(!info.clean);

    assert!(
        common::wait_until(TIMEOUT, || server.stats().connections == 0),
        "{:?}",
        server.stats()
    );
    stop(&server);
}

test_all!(server_handle_terminate_drops_without_a_close_frame);
fn server_handle_terminate_drops_without_a_close_frame(backend: Backend) {
    let (server, log) = recorder_server(backend);
    let (mut client, id) = open(&server, &log);
    server.terminate(id).expect("command delivered");
    let end = client.recv();
    assert!(
        end.as_ref().is_some_and(Ev::is_end),
        "no close frame, just the end: {end:?}"
    );
    let info = close_of(&server, &log, id);
    assert_eq!(info.code, CloseCode::ABNORMAL);
    assert!(!info.clean);
    stop(&server);
}

test_all!(frames_sent_with_the_request_head_are_delivered);
fn frames_sent_with_the_request_head_are_delivered(backend: Backend) {
    let (server, log) = recorder_server(backend);
    let mut stream = TcpStream::connect(server.local_addr()).unwrap();
    let mut bytes = upgrade_head("/", &[]);
    bytes.extend(masked(true, 0x1, b"early"));
    bytes.extend(masked(true, 0x8, &1000u16.to_be_bytes()));
    stream.write_all(&bytes).unwrap();
    let answer = read_to_eof(&mut stream);
    let head_end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head")
        + 4;
    let head = String::from_utf8_lossy(&answer[..head_end]);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    // The echo of "early", then the close echo, unmasked.
    let mut frames = b"\x81\x05early".to_vec();
    frames.extend_from_slice(b"\x88\x02\x03\xe8");
    assert_eq!(&answer[head_end..], &frames[..]);
    let id = match log.wait_for(|r| matches!(r, Rec::Open(_))) {
        Some(Rec::Open(id)) => id,
        other => panic!("{other:?}"),
    };
    assert!(log.snapshot().contains(&Rec::Text(id, "early".into())));
    assert!(close_of(&server, &log, id).clean);
    stop(&server);
}

test_all!(a_message_followed_at_once_by_a_fin_is_delivered_then_1006);
fn a_message_followed_at_once_by_a_fin_is_delivered_then_1006(backend: Backend) {
    let (server, log) = recorder_server(backend);
    for round in 0..10 {
        let (mut client, id) = open(&server, &log);
        let text = format!("last words {round}");
        // The frame and the FIN tend to arrive together, and are read in one go.
        client.send_text(&text);
        client.shutdown_write();
        let info = close_of(&server, &log, id);
        assert!(
            log.snapshot().contains(&Rec::Text(id, text)),
            "round {round}"
        );
        assert_eq!(info.code, CloseCode::ABNORMAL, "round {round}");
        assert!(!info.clean);
    }
    stop(&server);
}

test_all!(a_close_without_a_code_is_1005_and_clean);
fn a_close_without_a_code_is_1005_and_clean(backend: Backend) {
    let (server, log) = recorder_server(backend);
    let (mut client, id) = open(&server, &log);
    client.close(CloseCode::NO_STATUS.0, "");
    // An empty close is answered with an empty close.
    assert_eq!(
        client.recv(),
        Some(Ev::Close(CloseCode::NO_STATUS.0, String::new()))
    );
    assert_eq!(client.recv(), Some(Ev::Eof));
    let info = close_of(&server, &log, id);
    assert_eq!(
        info,
        CloseInfo {
            code: CloseCode::NO_STATUS,
            reason: String::new(),
            clean: true,
            error: None
        }
    );
    stop(&server);
}

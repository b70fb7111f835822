//! permessage-deflate on real sockets: a wsx server and the blocking and engine clients.

mod common;

use std::time::Duration;

use common::{start_server, stop, TIMEOUT};
use wsx::blocking::Message;
use wsx::client::ClientOptions;
use wsx::protocol::deflate::DeflateOptions;
use wsx::{Conn, Handler, Server};

/// Echoes, and answers "mode?" with whether compression is on for the connection.
struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: wsx::Message<'_>) {
        if message == wsx::Message::Text("mode?") {
            let on = conn.compression();
            let _ = conn.send_text(if on { "deflate" } else { "plain" });
            return;
        }
        let _ = conn.send(message);
    }
}

/// The server's counters once they show at least `read` messages read (bounded wait).
fn stats_after(server: &wsx::ServerHandle, read: u64) -> wsx::Stats {
    let mut stats = server.stats();
    let counted = common::wait_until(TIMEOUT, || {
        stats = server.stats();
        stats.messages_in >= read
    });
    assert!(counted, "{read} messages read: {stats:?}");
    stats
}

fn text(len: usize) -> String {
    "{\"px\":101.25,\"qty\":3,\"side\":\"ask\"},".repeat(len / 34 + 1)[..len].to_owned()
}

#[test]
fn compressed_echo_in_every_client_mode_and_plain_peers_still_served() {
    let server = start_server(
        Server::builder()
            .threads(1)
            .deflate(DeflateOptions::default()),
        |_| Echo,
    );
    let url = format!("ws://{}/", server.local_addr());
    let modes = [
        Some(DeflateOptions::default()),
        Some(DeflateOptions {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            ..DeflateOptions::default()
        }),
        Some(DeflateOptions {
            client_max_window_bits: Some(9),
            server_max_window_bits: Some(10),
            ..DeflateOptions::default()
        }),
        None,
    ];
    // Messages the server has read so far. Counters are published once per worker loop turn:
    // those of the turn that read a message count every byte written before it.
    let mut read = 0;
    for mode in modes {
        let mut options = ClientOptions::new().no_proxy().handshake_timeout(TIMEOUT);
        if let Some(d) = mode {
            options = options.deflate(d);
        }
        let mut ws = wsx::blocking::connect_with(&url, &options).unwrap();
        ws.set_read_timeout(Some(TIMEOUT)).unwrap();
        ws.send_text("mode?").unwrap();
        let expected = if mode.is_some() { "deflate" } else { "plain" };
        assert_eq!(ws.recv().unwrap(), Message::Text(expected.into()));
        read += 1;
        let before = stats_after(&server, read);
        for len in [10, 1023, 1024, 70_000, 1 << 20] {
            let t = text(len);
            ws.send_text(&t).unwrap();
            assert_eq!(ws.recv().unwrap(), Message::Text(t));
        }
        // One more round trip: once the counters show it read, they hold every echo's bytes.
        ws.send_text("mode?").unwrap();
        assert_eq!(ws.recv().unwrap(), Message::Text(expected.into()));
        read += 6;
        let sent = stats_after(&server, read).bytes_out - before.bytes_out;
        if mode.is_some() {
            assert!(
                sent < 200_000,
                "echoes were compressed ({sent} bytes for ~1.1 MB)"
            );
        } else {
            assert!(
                sent > 1_000_000,
                "a plain client gets plain frames ({sent} bytes)"
            );
        }
        ws.close(wsx::CloseCode::NORMAL, "").unwrap();
    }
    stop(&server);
}

#[test]
fn a_decompression_bomb_closes_with_1009() {
    let server = start_server(
        Server::builder()
            .threads(1)
            .max_payload(1 << 20)
            .deflate(DeflateOptions::default()),
        |_| Echo,
    );
    // The client compresses even this large message, so only inflating it crosses the limit.
    let deflate = DeflateOptions {
        max_compress_size: 64 << 20,
        ..DeflateOptions::default()
    };
    let options = ClientOptions::new().no_proxy().deflate(deflate);
    let mut ws =
        wsx::blocking::connect_with(&format!("ws://{}/", server.local_addr()), &options).unwrap();
    ws.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // 16 MiB of zeros: a few KiB on the wire, far over the server's 1 MiB limit once inflated.
    ws.send_binary(&vec![0u8; 16 << 20]).unwrap();
    match ws.recv() {
        Ok(Message::Close(code, _)) => assert_eq!(code, wsx::CloseCode::TOO_BIG),
        other => panic!("expected close 1009, got {other:?}"),
    }
    // A message read on a second connection, after the bomb: the counters of that turn count
    // every byte the server read of the bomb.
    let mut probe =
        wsx::blocking::connect_with(&format!("ws://{}/", server.local_addr()), &options).unwrap();
    probe.set_read_timeout(Some(TIMEOUT)).unwrap();
    probe.send_text("mode?").unwrap();
    assert_eq!(probe.recv().unwrap(), Message::Text("deflate".into()));
    let after = stats_after(&server, 1);
    assert!(
        after.bytes_in < 200_000,
        "the bomb went out compressed: {after:?}"
    );
    stop(&server);
}

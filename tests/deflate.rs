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
        let before = server.stats();
        for len in [10, 1023, 1024, 70_000, 1 << 20] {
            let t = text(len);
            ws.send_text(&t).unwrap();
            assert_eq!(ws.recv().unwrap(), Message::Text(t));
        }
        // Counters are published once per worker loop turn: wait for the last echo's bytes.
        let sent = || server.stats().bytes_out - before.bytes_out;
        if mode.is_some() {
            std::thread::sleep(Duration::from_millis(300));
            assert!(
                sent() < 200_000,
                "echoes were compressed ({} bytes for ~1.1 MB)",
                sent()
            );
        } else {
            let plain = common::wait_until(TIMEOUT, || sent() > 1_000_000);
            assert!(plain, "a plain client gets plain frames ({} bytes)", sent());
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
    let before = server.stats();
    assert!(
        before.bytes_in < 200_000,
        "the bomb went out compressed: {before:?}"
    );
    match ws.recv() {
        Ok(Message::Close(code, _)) => assert_eq!(code, wsx::CloseCode::TOO_BIG),
        other => panic!("expected close 1009, got {other:?}"),
    }
    stop(&server);
}

//! permessage-deflate through the session: negotiated pairs, fragments, limits, bad input.

use super::{client, close_code_of, feed, feed_every_split, frame, server, Owned, M};
use crate::error::ProtocolError;
use crate::limits::Limits;
use crate::protocol::deflate::codec::DeflateState;
use crate::protocol::deflate::{negotiate, DeflateOptions, Params};
use crate::protocol::frame::{FrameHeader, OpCode, RSV1};
use crate::protocol::{CloseCode, Config, Connection, MessageKind, Role};

/// A client and a server with permessage-deflate negotiated from `c` and `s`.
fn pair(c: DeflateOptions, s: DeflateOptions) -> (Connection, Connection) {
    let offer = negotiate::client_offer(&c);
    let (answer, server_params) = negotiate::server_accept(&[offer], &s).expect("accepted");
    let client_params = negotiate::client_accept(&answer, &c).expect("answer valid");
    let (mut cl, mut sv) = (client(), server());
    cl.set_deflate(client_params, std::sync::Arc::new(c));
    sv.set_deflate(server_params, std::sync::Arc::new(s));
    (cl, sv)
}

fn takeover() -> DeflateOptions {
    DeflateOptions {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        ..DeflateOptions::default()
    }
}

/// Every frame header in `wire`, in order.
fn headers(mut wire: &[u8]) -> Vec<FrameHeader> {
    let mut out = Vec::new();
    while let Ok(Some((h, n))) = FrameHeader::decode(wire) {
        wire = &wire[n + h.payload_len as usize..];
        out.push(h);
    }
    out
}

fn json(len: usize) -> String {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < len {
        s.push_str(&format!(
            "{{\"id\":{i},\"px\":{}.25,\"side\":\"bid\"}},",
            i * 3
        ));
        i += 1;
    }
    s.truncate(len);
    s
}

#[test]
fn round_trips_around_the_threshold_in_every_mode() {
    for (c, s) in [
        (DeflateOptions::default(), DeflateOptions::default()),
        (takeover(), takeover()),
        (
            DeflateOptions {
                server_max_window_bits: Some(9),
                client_max_window_bits: Some(10),
                ..takeover()
            },
            DeflateOptions {
                server_max_window_bits: Some(10),
                ..DeflateOptions::default()
            },
        ),
    ] {
        let (mut cl, mut sv) = pair(c, s);
        for len in [0, 1, 1023, 1024, 1025, 32_767, 32_768, 32_769, 200_000] {
            for _ in 0..2 {
                let text = json(len);
                let mut wire = Vec::new();
                cl.send_text(&text, &mut wire).unwrap();
                let compressed = headers(&wire)[0].rsv & RSV1 != 0;
                assert_eq!(
                    compressed,
                    len >= 1024,
                    "client compresses at the threshold ({len})"
                );
                if compressed {
                    assert!(
                        wire.len() < len / 2,
                        "json compresses ({len}: {} bytes)",
                        wire.len()
                    );
                }
                let (events, _, err) = feed(&mut sv, &wire);
                assert_eq!(
                    (events, err),
                    (vec![Owned::Text(text.clone())], None),
                    "{len}"
                );
                let mut back = Vec::new();
                sv.send_binary(text.as_bytes(), &mut back).unwrap();
                let (events, _, err) = feed(&mut cl, &back);
                assert_eq!(
                    (events, err),
                    (vec![Owned::Binary(text.into_bytes())], None),
                    "{len}"
                );
            }
        }
    }
}

#[test]
fn compression_can_be_refused_per_message() {
    let (mut cl, mut sv) = pair(DeflateOptions::default(), DeflateOptions::default());
    let text = json(5000);
    let mut wire = Vec::new();
    cl.send_message_with(MessageKind::Text, text.as_bytes(), false, &mut wire)
        .unwrap();
    assert_eq!(headers(&wire)[0].rsv, 0);
    assert_eq!(feed(&mut sv, &wire).0, vec![Owned::Text(text)]);
}

#[test]
fn a_compressed_message_in_fragments_at_every_split() {
    // Compress one message, then cut its deflate stream into three frames (RSV1 on the first).
    let params = Params {
        send_window_bits: 15,
        recv_window_bits: 15,
        send_no_context_takeover: true,
        recv_no_context_takeover: true,
    };
    let mut deflater = DeflateState::new(params, &DeflateOptions::default());
    let text = json(3000);
    let mut z = Vec::new();
    deflater.compress(text.as_bytes(), &mut z);
    let (a, rest) = z.split_at(z.len() / 3);
    let (b, c) = rest.split_at(rest.len() / 2);
    let mut wire = frame(false, 4, 0x1, M, a);
    wire.extend(frame(true, 0, 0x9, M, b"between"));
    wire.extend(frame(false, 0, 0x0, M, b));
    wire.extend(frame(true, 0, 0x0, M, c));
    let make = || {
        let mut s = server();
        s.set_deflate(params, Default::default());
        s
    };
    let (events, _, err) = feed_every_split(make, &wire);
    assert_eq!(err, None);
    assert_eq!(
        events,
        vec![Owned::Ping(b"between".to_vec()), Owned::Text(text)]
    );
    // RSV1 on a continuation frame is a protocol error.
    let mut bad = frame(false, 4, 0x1, M, a);
    bad.extend(frame(true, 4, 0x0, M, rest));
    let (_, replies, err) = feed(&mut make(), &bad);
    assert_eq!(err, Some(ProtocolError::ReservedBits));
    assert_eq!(close_code_of(&replies), CloseCode::PROTOCOL);
}

#[test]
fn bombs_garbage_and_unnegotiated_rsv1() {
    let params = Params {
        send_window_bits: 15,
        recv_window_bits: 15,
        send_no_context_takeover: true,
        recv_no_context_takeover: false,
    };
    // 8 MiB of zeros deflates to a few KiB; the limit is 1 MiB of inflated data.
    let mut deflater = DeflateState::new(params, &DeflateOptions::default());
    let mut z = Vec::new();
    deflater.compress(&vec![0u8; 8 << 20], &mut z);
    assert!(z.len() < 64 << 10);
    for recv_no_context_takeover in [true, false] {
        let params = Params {
            recv_no_context_takeover,
            ..params
        };
        let limits = Limits {
            max_message_size: 1 << 20,
            ..Limits::DEFAULT
        };
        let mut s = Connection::new(
            Role::Server,
            Config {
                limits,
                ..Config::default()
            },
        );
        s.set_deflate(params, Default::default());
        let (_, replies, err) = feed(&mut s, &frame(true, 4, 0x2, M, &z));
        assert_eq!(err, Some(ProtocolError::MessageTooLarge { max: 1 << 20 }));
        assert_eq!(close_code_of(&replies), CloseCode::TOO_BIG);
        assert!(
            s.heap_size() < (3 << 20),
            "memory stayed near the limit: {}",
            s.heap_size()
        );
        let mut s = server();
        s.set_deflate(params, Default::default());
        let (_, replies, err) = feed(&mut s, &frame(true, 4, 0x2, M, b"\xff\xfe\xfd garbage"));
        assert_eq!(err, Some(ProtocolError::InvalidCompressedData));
        assert_eq!(close_code_of(&replies), CloseCode::INVALID_PAYLOAD);
    }
    // Compressed text that inflates to invalid UTF-8: 1007.
    let mut z = Vec::new();
    DeflateState::new(params, &DeflateOptions::default()).compress(b"ok \xff\xfe", &mut z);
    let mut s = server();
    s.set_deflate(params, Default::default());
    assert_eq!(
        feed(&mut s, &frame(true, 4, 0x1, M, &z)).2,
        Some(ProtocolError::InvalidUtf8)
    );
    // Without negotiation RSV1 stays reserved.
    assert_eq!(
        feed(&mut server(), &frame(true, 4, 0x1, M, &z)).2,
        Some(ProtocolError::ReservedBits)
    );
    // Control frames are never compressed.
    let (mut cl, _) = pair(
        DeflateOptions {
            threshold: 0,
            ..DeflateOptions::default()
        },
        DeflateOptions::default(),
    );
    let mut wire = Vec::new();
    cl.send_ping(&[7; 100], &mut wire).unwrap();
    let h = headers(&wire)[0];
    assert_eq!((h.opcode, h.rsv), (OpCode::PING, 0));
}

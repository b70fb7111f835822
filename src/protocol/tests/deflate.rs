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
fn a_detached_frame_encoded_later_keeps_its_place_and_inflates() {
    for (c, s) in [
        (DeflateOptions::default(), DeflateOptions::default()),
        (takeover(), takeover()),
    ] {
        let fast = s.server_no_context_takeover;
        let (mut cl, mut sv) = pair(c, s);
        let text = json(300_000);
        // Server to client: the detached message, then a ping and a small message sent after it;
        // the frame is encoded last (as a pool thread would) and put back in its place.
        let detached = sv.detach_compressed(MessageKind::Text, text.len()).unwrap();
        assert_eq!(
            detached.is_some(),
            fast,
            "only the context-free mode detaches"
        );
        let Some(frame) = detached else {
            assert_eq!(sv.detach_compressed(MessageKind::Text, 10).unwrap(), None);
            continue;
        };
        assert_eq!(
            sv.detach_compressed(MessageKind::Text, 1023).unwrap(),
            None,
            "under the threshold"
        );
        let mut after = Vec::new();
        sv.send_ping(b"p", &mut after).unwrap();
        sv.send_text("small", &mut after).unwrap();
        let mut wire = Vec::new();
        frame.encode(text.as_bytes(), &mut wire);
        assert!(headers(&wire)[0].rsv & RSV1 != 0);
        assert!(wire.len() < text.len() / 4, "compressed: {}", wire.len());
        wire.extend_from_slice(&after);
        let (events, _, err) = feed(&mut cl, &wire);
        assert_eq!(err, None);
        assert_eq!(
            events,
            vec![
                Owned::Text(text.clone()),
                Owned::Ping(b"p".to_vec()),
                Owned::Text("small".into())
            ]
        );
        // Client to server: masked, and encoded on another thread.
        let frame = cl
            .detach_compressed(MessageKind::Binary, text.len())
            .unwrap()
            .expect("client sends without context too");
        let payload = text.clone().into_bytes();
        let wire = std::thread::spawn(move || {
            let mut wire = Vec::new();
            frame.encode(&payload, &mut wire);
            wire
        })
        .join()
        .unwrap();
        assert!(headers(&wire)[0].mask.is_some());
        let (events, _, err) = feed(&mut sv, &wire);
        assert_eq!(
            (events, err),
            (vec![Owned::Binary(text.into_bytes())], None)
        );
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

/// The payloads of the messages in `wire` (unmasked, fragments joined), with their RSV1 bit.
fn payloads(mut wire: &[u8]) -> Vec<(bool, Vec<u8>)> {
    let mut out: Vec<(bool, Vec<u8>)> = Vec::new();
    let mut open = false;
    while let Ok(Some((h, n))) = FrameHeader::decode(wire) {
        let len = h.payload_len as usize;
        let mut data = wire[n..n + len].to_vec();
        if let Some(key) = h.mask {
            for (i, b) in data.iter_mut().enumerate() {
                *b ^= key[i % 4];
            }
        }
        wire = &wire[n + len..];
        if h.opcode.is_control() {
            continue;
        }
        if open {
            out.last_mut().expect("a message is open").1.extend(data);
        } else {
            out.push((h.rsv & RSV1 != 0, data));
        }
        open = !h.fin;
    }
    out
}

/// The two messages: ~130 KB of multibyte text, then 65,535 bytes of alternating 4 KiB
/// blocks of xorshift noise and a repeating 16-byte pattern.
fn browser_breakers() -> Vec<Vec<u8>> {
    let text: String = "añ€😀 wsx ".repeat(130_000 / 14);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mixed: Vec<u8> = (0..65_535usize)
        .map(|i| {
            if (i / 4096) % 2 == 0 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            } else {
                b"0123456789abcdef"[i % 16]
            }
        })
        .collect();
    vec![
        text.into_bytes(),
        mixed,
        json(4096).into_bytes(),
        vec![0; 1 << 20],
    ]
}

/// Browsers keep one inflate stream for the whole connection, whatever `*_no_context_takeover`
/// says, and never reset it: every compressed message wsx sends, in both roles and on every
/// compressor path, must inflate through such a stream (it must end with a sync flush, never
/// with a final block), as well as through one that is reset per message.
#[test]
fn compressed_messages_inflate_through_one_stream_that_is_never_reset() {
    use flate2::{Decompress, FlushDecompress, Status};
    let modes = [
        (
            "fast path",
            DeflateOptions::default(),
            DeflateOptions::default(),
        ),
        ("context takeover", takeover(), takeover()),
        (
            "small windows",
            DeflateOptions {
                server_max_window_bits: Some(10),
                client_max_window_bits: Some(9),
                ..DeflateOptions::default()
            },
            DeflateOptions::default(),
        ),
    ];
    for (mode, c, s) in modes {
        let (mut cl, mut sv) = pair(c, s);
        for role in ["server", "client"] {
            let sender = if role == "server" { &mut sv } else { &mut cl };
            let mut wire = Vec::new();
            let messages = browser_breakers();
            for m in &messages {
                sender.send_binary(m, &mut wire).unwrap();
            }
            let sent = payloads(&wire);
            assert_eq!(sent.len(), messages.len());
            let mut never_reset = Decompress::new(false);
            for (i, ((compressed, data), original)) in sent.iter().zip(&messages).enumerate() {
                assert!(compressed, "{mode} {role} message {i} is compressed");
                let mut input = data.clone();
                input.extend_from_slice(&[0, 0, 0xff, 0xff]);
                let mut out = Vec::with_capacity(original.len() + 1024);
                let before = never_reset.total_in();
                let status = never_reset
                    .decompress_vec(&input, &mut out, FlushDecompress::Sync)
                    .unwrap_or_else(|e| panic!("{mode} {role} message {i}: {e}"));
                assert_ne!(
                    status,
                    Status::StreamEnd,
                    "{mode} {role} message {i} ended the stream"
                );
                assert_eq!(never_reset.total_in() - before, input.len() as u64);
                assert!(
                    out == *original,
                    "{mode} {role} message {i}: {} bytes back of {}",
                    out.len(),
                    original.len()
                );
            }
        }
    }
}

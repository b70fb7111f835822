//! Protocol scenarios on an in-memory client↔server pair: no sockets, bytes split at every
//! boundary.

use proptest::prelude::*;

mod deflate;

use crate::error::{ProtocolError, SendError};
use crate::limits::Limits;
use crate::protocol::frame::{FrameHeader, OpCode};
use crate::protocol::{CloseCode, CloseState, Config, Connection, Event, MessageKind, Role};

/// An event with owned payload, for comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owned {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(CloseCode, String),
}

impl From<Event<'_>> for Owned {
    fn from(e: Event<'_>) -> Self {
        match e {
            Event::Text(t) => Owned::Text(t.to_owned()),
            Event::Binary(b) => Owned::Binary(b.to_vec()),
            Event::Ping(b) => Owned::Ping(b.to_vec()),
            Event::Pong(b) => Owned::Pong(b.to_vec()),
            Event::Close { code, reason } => Owned::Close(code, reason.to_owned()),
        }
    }
}

/// Feeds `chunks` to `conn` the way a socket reader does: unconsumed bytes are kept and
/// presented again with the next chunk. Returns the events, the automatic replies and the
/// error that stopped the reading, if any.
fn feed_chunks<'c>(
    conn: &mut Connection,
    chunks: impl IntoIterator<Item = &'c [u8]>,
) -> (Vec<Owned>, Vec<u8>, Option<ProtocolError>) {
    let mut events = Vec::new();
    let mut replies = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    for chunk in chunks {
        pending.extend_from_slice(chunk);
        let mut pos = 0;
        loop {
            match conn.handle_read(&mut pending[pos..]) {
                Ok(read) => {
                    pos += read.consumed;
                    let done = read.event.is_none();
                    if let Some(e) = read.event {
                        events.push(Owned::from(e));
                    }
                    let _ = conn.poll_transmit(&mut replies);
                    if done {
                        break;
                    }
                }
                Err(e) => {
                    let _ = conn.poll_transmit(&mut replies);
                    return (events, replies, Some(e));
                }
            }
        }
        pending.drain(..pos);
        assert!(
            pending.len() <= 14 + 125,
            "residue of {} bytes",
            pending.len()
        );
    }
    (events, replies, None)
}

fn feed(conn: &mut Connection, bytes: &[u8]) -> (Vec<Owned>, Vec<u8>, Option<ProtocolError>) {
    feed_chunks(conn, [bytes])
}

/// Feeds `bytes` to a fresh connection made by `make`, once whole and once split at every
/// single position and byte by byte, and checks that every way gives the same outcome.
fn feed_every_split(
    make: impl Fn() -> Connection,
    bytes: &[u8],
) -> (Vec<Owned>, Vec<u8>, Option<ProtocolError>) {
    let whole = feed(&mut make(), bytes);
    for split in 0..=bytes.len() {
        let (a, b) = bytes.split_at(split);
        let got = feed_chunks(&mut make(), [a, b]);
        assert_eq!(got.0, whole.0, "events differ when split at {split}");
        assert_eq!(got.2, whole.2, "error differs when split at {split}");
        if whole.2.is_none() {
            assert_eq!(got.1, whole.1, "replies differ when split at {split}");
        }
    }
    let bytewise = feed_chunks(&mut make(), bytes.chunks(1));
    assert_eq!(bytewise.0, whole.0, "events differ byte by byte");
    assert_eq!(bytewise.2, whole.2, "error differs byte by byte");
    whole
}

fn server() -> Connection {
    Connection::new(Role::Server, Config::default())
}

fn client() -> Connection {
    let mut c = Connection::new(Role::Client, Config::default());
    let mut n = 0u8;
    c.dangerous_set_mask_generator(move || {
        n = n.wrapping_add(1);
        [n, n ^ 0x5a, n.wrapping_mul(3), 0xa5]
    });
    c
}

/// Builds one raw frame, masked with `mask` if given.
fn frame(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        fin,
        rsv,
        opcode: OpCode::from_u8(opcode),
        mask,
        payload_len: payload.len() as u64,
    };
    let mut out = Vec::new();
    header.encode_into(&mut out);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        crate::protocol::mask::apply_mask(&mut out[start..], key, 0);
    }
    out
}

const M: Option<[u8; 4]> = Some([0x37, 0xfa, 0x21, 0x3d]);

/// The close frame a connection queued when it failed, parsed back.
fn close_code_of(replies: &[u8]) -> CloseCode {
    let (h, n) = FrameHeader::decode(replies).unwrap().unwrap();
    assert_eq!(h.opcode, OpCode::CLOSE);
    let mut payload = replies[n..n + h.payload_len as usize].to_vec();
    if let Some(key) = h.mask {
        crate::protocol::mask::apply_mask(&mut payload, key, 0);
    }
    crate::protocol::close::parse_close_payload(&payload)
        .unwrap()
        .0
}

#[test]
fn messages_of_every_length_class_round_trip_both_ways() {
    for len in [0usize, 1, 125, 126, 127, 65_535, 65_536, 200_000] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let text = "é".repeat(len / 2);
        for (sender, mut receiver) in [(client(), server()), (server(), client())] {
            let mut sender = sender;
            let mut wire = Vec::new();
            sender.send_binary(&payload, &mut wire).unwrap();
            sender.send_text(&text, &mut wire).unwrap();
            let (events, _, err) = feed(&mut receiver, &wire);
            assert_eq!(err, None);
            assert_eq!(
                events,
                vec![Owned::Binary(payload.clone()), Owned::Text(text.clone())]
            );
        }
    }
}

#[test]
fn every_client_frame_is_masked_with_a_fresh_key() {
    let mut c = Connection::new(Role::Client, Config::default());
    let mut wire = Vec::new();
    let mut keys = Vec::new();
    for _ in 0..64 {
        wire.clear();
        c.send_binary(b"x", &mut wire).unwrap();
        let (h, _) = FrameHeader::decode(&wire).unwrap().unwrap();
        keys.push(h.mask.expect("client frames are masked"));
    }
    c.send_ping(b"p", &mut wire).unwrap();
    keys.sort();
    keys.dedup();
    assert!(
        keys.len() > 60,
        "mask keys repeat: {} distinct of 64",
        keys.len()
    );
    let mut s = server();
    let mut wire = Vec::new();
    s.send_text("hi", &mut wire).unwrap();
    assert_eq!(FrameHeader::decode(&wire).unwrap().unwrap().0.mask, None);
}

#[test]
fn fragmented_message_with_control_frames_between_at_every_split() {
    let mut wire2 = Vec::new();
    wire2.extend(frame(false, 0, 0x1, M, "κό".as_bytes()));
    wire2.extend(frame(true, 0, 0x9, M, b"ping!"));
    wire2.extend(frame(false, 0, 0x0, M, b"\xcf"));
    wire2.extend(frame(true, 0, 0xA, M, b""));
    wire2.extend(frame(true, 0, 0x0, M, b"\x83\xce\xbc\xce\xb5"));
    wire2.extend(frame(true, 0, 0x2, M, &[1, 2, 3]));
    let (events, replies, err) = feed_every_split(server, &wire2);
    assert_eq!(err, None);
    assert_eq!(
        events,
        vec![
            Owned::Ping(b"ping!".to_vec()),
            Owned::Pong(vec![]),
            Owned::Text("κόσμε".to_owned()),
            Owned::Binary(vec![1, 2, 3]),
        ]
    );
    // The automatic pong carries the ping's payload, unmasked from a server.
    assert_eq!(replies, frame(true, 0, 0xA, None, b"ping!"));
    // Cut before the last continuation: a fragmented text ending in a dangling lead byte is not
    // an error while the message may still continue, and the events so far arrive.
    let cut = wire2.len()
        - frame(true, 0, 0x0, M, b"\x83\xce\xbc\xce\xb5").len()
        - frame(true, 0, 0x2, M, &[1, 2, 3]).len();
    let (events, _, err) = feed_every_split(server, &wire2[..cut]);
    assert_eq!(err, None);
    assert_eq!(
        events,
        vec![Owned::Ping(b"ping!".to_vec()), Owned::Pong(vec![])]
    );
}

#[test]
fn invalid_utf8_fails_fast_before_the_message_ends() {
    // First fragment valid, second starts an impossible sequence; FIN never comes.
    let mut wire = frame(false, 0, 0x1, M, b"hello");
    wire.extend(frame(false, 0, 0x0, M, b"\xf4\x90\x80\x80"));
    let (events, replies, err) = feed_every_split(server, &wire);
    assert_eq!(events, vec![]);
    assert_eq!(err, Some(ProtocolError::InvalidUtf8));
    assert_eq!(close_code_of(&replies), CloseCode::INVALID_PAYLOAD);
    // Inside one frame whose payload is still arriving: fails on the bad byte.
    let whole = frame(true, 0, 0x1, M, b"abc\xffdef");
    let mut s = server();
    let (_, _, err) = feed_chunks(&mut s, [&whole[..6 + 4]]);
    assert_eq!(err, Some(ProtocolError::InvalidUtf8));
    // A code point cut at the end of the message.
    let (_, _, err) = feed(&mut server(), &frame(true, 0, 0x1, M, b"ab\xe2\x82"));
    assert_eq!(err, Some(ProtocolError::InvalidUtf8));
    let mut wire = frame(false, 0, 0x1, M, b"ab\xe2");
    wire.extend(frame(true, 0, 0x0, M, b"\x82"));
    let (_, _, err) = feed_every_split(server, &wire);
    assert_eq!(err, Some(ProtocolError::InvalidUtf8));
}

#[test]
fn protocol_violations_map_to_close_codes() {
    type Case = (&'static str, Vec<u8>, ProtocolError, u16);
    let cases: Vec<Case> = vec![
        (
            "reserved opcode",
            frame(true, 0, 0x3, M, b""),
            ProtocolError::ReservedOpcode(3),
            1002,
        ),
        (
            "reserved control opcode",
            frame(true, 0, 0xB, M, b""),
            ProtocolError::ReservedOpcode(0xB),
            1002,
        ),
        (
            "rsv1 without extension",
            frame(true, 4, 0x1, M, b"a"),
            ProtocolError::ReservedBits,
            1002,
        ),
        (
            "rsv3",
            frame(true, 1, 0x2, M, b""),
            ProtocolError::ReservedBits,
            1002,
        ),
        (
            "long ping",
            frame(true, 0, 0x9, M, &[0; 126]),
            ProtocolError::ControlFrameTooLong,
            1002,
        ),
        (
            "fragmented ping",
            frame(false, 0, 0x9, M, b""),
            ProtocolError::FragmentedControlFrame,
            1002,
        ),
        (
            "unmasked",
            frame(true, 0, 0x1, None, b"a"),
            ProtocolError::UnmaskedFrame,
            1002,
        ),
        (
            "lone continuation",
            frame(true, 0, 0x0, M, b"a"),
            ProtocolError::UnexpectedContinuation,
            1002,
        ),
        (
            "text inside fragmented binary",
            [frame(false, 0, 0x2, M, b"a"), frame(true, 0, 0x1, M, b"b")].concat(),
            ProtocolError::ExpectedContinuation,
            1002,
        ),
        (
            "close code 1005",
            frame(true, 0, 0x8, M, &1005u16.to_be_bytes()),
            ProtocolError::InvalidCloseCode(1005),
            1002,
        ),
        (
            "close code 999",
            frame(true, 0, 0x8, M, &999u16.to_be_bytes()),
            ProtocolError::InvalidCloseCode(999),
            1002,
        ),
        (
            "close code 5000",
            frame(true, 0, 0x8, M, &5000u16.to_be_bytes()),
            ProtocolError::InvalidCloseCode(5000),
            1002,
        ),
        (
            "one-byte close",
            frame(true, 0, 0x8, M, &[3]),
            ProtocolError::InvalidClosePayload,
            1002,
        ),
        (
            "close reason not utf-8",
            frame(true, 0, 0x8, M, b"\x03\xe8\xff"),
            ProtocolError::InvalidUtf8,
            1007,
        ),
        (
            "text not utf-8",
            frame(true, 0, 0x1, M, b"\xc0\xaf"),
            ProtocolError::InvalidUtf8,
            1007,
        ),
        (
            "64-bit length top bit",
            vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
            ProtocolError::LengthOverflow,
            1002,
        ),
    ];
    for (name, wire, expected, code) in cases {
        let (_, replies, err) = feed_every_split(server, &wire);
        assert_eq!(err, Some(expected), "{name}");
        assert_eq!(close_code_of(&replies), CloseCode(code), "{name}");
    }
    // A client refuses masked frames.
    let (_, replies, err) = feed(&mut client(), &frame(true, 0, 0x1, M, b"a"));
    assert_eq!(err, Some(ProtocolError::MaskedFrame));
    assert_eq!(close_code_of(&replies), CloseCode::PROTOCOL);
}

#[test]
fn limits_close_with_1009_before_buffering() {
    let limits = Limits {
        max_frame_size: 100,
        max_message_size: 150,
        max_fragments: 4,
        ..Limits::DEFAULT
    };
    let make = || {
        Connection::new(
            Role::Server,
            Config {
                limits,
                ..Config::default()
            },
        )
    };
    // The header alone is enough to refuse an oversize frame.
    let header_only = &frame(true, 0, 0x2, M, &[0; 101])[..8];
    let (_, replies, err) = feed(&mut make(), header_only);
    assert_eq!(
        err,
        Some(ProtocolError::FrameTooLarge { len: 101, max: 100 })
    );
    assert_eq!(close_code_of(&replies), CloseCode::TOO_BIG);
    let wire = [
        frame(false, 0, 0x2, M, &[0; 100]),
        frame(true, 0, 0x0, M, &[0; 51]),
    ]
    .concat();
    let (_, replies, err) = feed_every_split(make, &wire);
    assert_eq!(err, Some(ProtocolError::MessageTooLarge { max: 150 }));
    assert_eq!(close_code_of(&replies), CloseCode::TOO_BIG);
    let wire: Vec<u8> = (0..5)
        .flat_map(|i| frame(false, 0, if i == 0 { 2 } else { 0 }, M, b""))
        .collect();
    let (_, _, err) = feed(&mut make(), &wire);
    assert_eq!(err, Some(ProtocolError::TooManyFragments { max: 4 }));
    // Exactly at the limits is fine.
    let wire = [
        frame(false, 0, 0x2, M, &[0; 100]),
        frame(true, 0, 0x0, M, &[0; 50]),
    ]
    .concat();
    let (events, _, err) = feed(&mut make(), &wire);
    assert_eq!((events.len(), err), (1, None));
}

#[test]
fn closing_handshake_started_by_the_client() {
    let (mut c, mut s) = (client(), server());
    let mut wire = Vec::new();
    c.send_close(CloseCode::NORMAL, "bye", &mut wire).unwrap();
    assert_eq!(c.close_state(), CloseState::CloseSent);
    assert_eq!(c.send_text("late", &mut wire), Err(SendError::Closing));
    assert_eq!(
        c.send_close(CloseCode::NORMAL, "", &mut wire),
        Err(SendError::Closing)
    );
    let (events, reply, err) = feed_every_split(server, &wire);
    assert_eq!(err, None);
    assert_eq!(events, vec![Owned::Close(CloseCode::NORMAL, "bye".into())]);
    let _ = feed(&mut s, &wire);
    assert_eq!(s.close_state(), CloseState::Closed);
    assert_eq!(s.send_ping(b"", &mut Vec::new()), Err(SendError::Closing));
    // The server echoes the code; the client sees the handshake complete.
    let (events, replies, err) = feed(&mut c, &reply);
    assert_eq!(
        (events, replies, err),
        (
            vec![Owned::Close(CloseCode::NORMAL, String::new())],
            vec![],
            None
        )
    );
    assert_eq!(c.close_state(), CloseState::Closed);
    // Anything after the close frame is ignored.
    let (events, _, err) = feed(&mut c, &frame(true, 0, 1, None, b"after"));
    assert_eq!((events, err), (vec![], None));
}

#[test]
fn closing_handshake_started_by_the_server_and_data_still_delivered() {
    let (mut c, mut s) = (client(), server());
    let mut to_client = Vec::new();
    s.send_close(CloseCode::GOING_AWAY, "restart", &mut to_client)
        .unwrap();
    // The client had a message in flight before it saw the close: the server still takes it.
    let mut to_server = Vec::new();
    c.send_text("in flight", &mut to_server).unwrap();
    let (events, reply, _) = feed(&mut c, &to_client);
    assert_eq!(
        events,
        vec![Owned::Close(CloseCode::GOING_AWAY, "restart".into())]
    );
    to_server.extend(reply);
    let (events, replies, err) = feed(&mut s, &to_server);
    assert_eq!(err, None);
    assert!(replies.is_empty(), "no second close frame");
    assert_eq!(
        events,
        vec![
            Owned::Text("in flight".into()),
            Owned::Close(CloseCode::GOING_AWAY, String::new())
        ]
    );
    assert_eq!(s.close_state(), CloseState::Closed);
    // An empty close is answered with an empty close.
    let mut s = server();
    let (events, reply, _) = feed(&mut s, &frame(true, 0, 8, M, b""));
    assert_eq!(
        events,
        vec![Owned::Close(CloseCode::NO_STATUS, String::new())]
    );
    assert_eq!(reply, frame(true, 0, 8, None, b""));
}

#[test]
fn errors_are_sticky_and_send_rules_hold() {
    let mut s = server();
    let (_, _, err) = feed(&mut s, &frame(true, 0, 0x3, M, b""));
    assert!(err.is_some());
    assert_eq!(s.close_state(), CloseState::Failed);
    let (events, replies, err2) = feed(&mut s, &frame(true, 0, 0x1, M, b"ok"));
    assert_eq!((events, replies, err2), (vec![], vec![], err));
    let mut out = Vec::new();
    assert_eq!(s.send_text("x", &mut out), Err(SendError::Closing));
    let mut s = server();
    assert_eq!(
        s.send_ping(&[0; 126], &mut out),
        Err(SendError::ControlTooLong)
    );
    assert_eq!(
        s.send_close(CloseCode(1006), "", &mut out),
        Err(SendError::InvalidCloseCode(1006))
    );
    assert_eq!(
        s.send_fragment(None, b"", true, &mut out),
        Err(SendError::FragmentOrder)
    );
    s.send_fragment(Some(MessageKind::Text), b"a", false, &mut out)
        .unwrap();
    assert_eq!(
        s.send_fragment(Some(MessageKind::Text), b"b", true, &mut out),
        Err(SendError::FragmentOrder)
    );
    s.send_ping(b"between", &mut out).unwrap();
    s.send_fragment(None, b"b", true, &mut out).unwrap();
    let (events, _, err) = feed(&mut client(), &out);
    assert_eq!(err, None);
    assert_eq!(
        events,
        vec![Owned::Ping(b"between".to_vec()), Owned::Text("ab".into())]
    );
}

#[test]
fn encode_data_header_for_zero_copy_sends() {
    let mut c = client();
    let payload = b"shared payload".to_vec();
    let header = c
        .encode_data_header(Some(MessageKind::Binary), true, payload.len())
        .unwrap();
    let mut wire = header.bytes().to_vec();
    let mut body = payload.clone();
    crate::protocol::mask::apply_mask(&mut body, header.mask().unwrap(), 0);
    wire.extend(body);
    let (events, _, err) = feed(&mut server(), &wire);
    assert_eq!((events, err), (vec![Owned::Binary(payload)], None));
}

#[test]
fn auto_pong_can_be_turned_off() {
    let mut s = Connection::new(
        Role::Server,
        Config {
            auto_pong: false,
            ..Config::default()
        },
    );
    let (events, replies, _) = feed(&mut s, &frame(true, 0, 9, M, b"x"));
    assert_eq!(events, vec![Owned::Ping(b"x".to_vec())]);
    assert!(replies.is_empty());
}

/// One message as a test sends it: kind, payload, and how it is cut into fragments.
fn arb_message() -> impl Strategy<Value = (bool, Vec<u8>, Vec<usize>)> {
    (
        any::<bool>(),
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            "\\PC{0,120}".prop_map(String::into_bytes),
        ],
        proptest::collection::vec(0usize..300, 0..4),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random messages, randomly fragmented, with pings between, split at random places, come
    /// out whole and in order; text that is not UTF-8 fails with 1007 and nothing else does.
    #[test]
    fn random_fragmentation_and_splits(
        messages in proptest::collection::vec(arb_message(), 1..6),
        cuts in proptest::collection::vec(0usize..2000, 0..8),
    ) {
        let mut c = client();
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        let mut invalid = false;
        for (text, payload, frag) in &messages {
            let kind = if *text { MessageKind::Text } else { MessageKind::Binary };
            let mut bounds: Vec<usize> = frag.iter().map(|f| f % (payload.len() + 1)).collect();
            bounds.sort_unstable();
            let mut start = 0;
            for (i, &end) in bounds.iter().enumerate() {
                c.send_fragment((i == 0).then_some(kind), &payload[start..end], false, &mut wire).unwrap();
                c.send_ping(&[i as u8], &mut wire).unwrap();
                start = end;
            }
            c.send_fragment(bounds.is_empty().then_some(kind), &payload[start..], true, &mut wire).unwrap();
            let bad_text = *text && std::str::from_utf8(payload).is_err();
            for i in 0..bounds.len() {
                if !invalid && !bad_text { expected.push(Owned::Ping(vec![i as u8])); }
            }
            if *text {
                match String::from_utf8(payload.clone()) {
                    Ok(s) if !invalid => expected.push(Owned::Text(s)),
                    Ok(_) => {}
                    Err(_) => invalid = true,
                }
            } else if !invalid {
                expected.push(Owned::Binary(payload.clone()));
            }
        }
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        points.push(0);
        points.push(wire.len());
        points.sort_unstable();
        let chunks: Vec<&[u8]> = points.windows(2).map(|w| &wire[w[0]..w[1]]).collect();
        let (events, _, err) = feed_chunks(&mut server(), chunks);
        if invalid {
            prop_assert_eq!(err, Some(ProtocolError::InvalidUtf8));
            // Events before the bad message are delivered; pings inside it may be too.
            prop_assert!(events.len() >= expected.len());
            prop_assert_eq!(&events[..expected.len()], &expected[..]);
        } else {
            prop_assert_eq!(err, None);
            prop_assert_eq!(events, expected);
        }
    }

    /// Arbitrary bytes never panic the server and never leave more than a header plus a
    /// control frame unconsumed.
    #[test]
    fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600), cut in 0usize..600) {
        let cut = cut.min(bytes.len());
        let (a, b) = bytes.split_at(cut);
        let _ = feed_chunks(&mut server(), [a, b]);
        let _ = feed_chunks(&mut client(), [a, b]);
    }
}

/// Feeds `bytes` (after `before`, fed and forgotten) to a fresh connection in both ways: through
/// `handle_read` (fast path for small whole messages) and through the general path alone.
/// Returns both outcomes: events, replies, error.
fn feed_both_paths(
    make: &dyn Fn() -> Connection,
    before: &[u8],
    bytes: &[u8],
) -> [(Vec<Owned>, Vec<u8>, Option<ProtocolError>); 2] {
    let mut out = [(); 2].map(|()| (Vec::new(), Vec::new(), None));
    for (general, slot) in out.iter_mut().enumerate() {
        let mut conn = make();
        let _ = feed(&mut conn, before);
        let mut input = bytes.to_vec();
        let mut pos = 0;
        loop {
            let read = if general == 1 {
                conn.handle_read_general(&mut input[pos..])
            } else {
                conn.handle_read(&mut input[pos..])
            };
            match read {
                Ok(read) => {
                    pos += read.consumed;
                    let done = read.event.is_none();
                    slot.0.extend(read.event.map(Owned::from));
                    let _ = conn.poll_transmit(&mut slot.1);
                    if done {
                        break;
                    }
                }
                Err(e) => {
                    let _ = conn.poll_transmit(&mut slot.1);
                    slot.2 = Some(e);
                    break;
                }
            }
        }
        // What was left unconsumed counts too.
        slot.1.extend_from_slice(&input[pos..]);
    }
    out
}

#[test]
fn the_small_message_fast_path_agrees_with_the_general_path() {
    let tight = Limits {
        max_frame_size: 40,
        max_message_size: 60,
        ..Limits::DEFAULT
    };
    let with = |role, limits, unmasked| {
        move || {
            let mut conn = Connection::new(
                role,
                Config {
                    limits,
                    dangerous_accept_unmasked_frames: unmasked,
                    ..Config::default()
                },
            );
            // The same keys both ways, so that a client's close frames compare equal.
            conn.dangerous_set_mask_generator(|| [1, 2, 3, 4]);
            conn
        }
    };
    type Make = Box<dyn Fn() -> Connection>;
    let makes: Vec<(&str, Make)> = vec![
        (
            "server",
            Box::new(with(Role::Server, Limits::DEFAULT, false)),
        ),
        (
            "client",
            Box::new(with(Role::Client, Limits::DEFAULT, false)),
        ),
        (
            "server, tight limits",
            Box::new(with(Role::Server, tight, false)),
        ),
        (
            "server, unmasked allowed",
            Box::new(with(Role::Server, Limits::DEFAULT, true)),
        ),
    ];
    // What came before: nothing, half a fragmented message, a whole message, the peer's close.
    let befores: Vec<(&str, Vec<u8>)> = vec![
        ("fresh", vec![]),
        ("mid-message", frame(false, 0, 0x1, M, b"ab")),
        ("after a message", frame(true, 0, 0x2, M, b"xyz")),
        (
            "after close",
            frame(true, 0, 0x8, M, &1000u16.to_be_bytes()),
        ),
    ];
    let (mut delivered, mut failed) = (0, 0);
    for (who, make) in &makes {
        for (when, before) in &befores {
            for b0 in [0x81u8, 0x82, 0x80, 0x01, 0x02, 0x91, 0xC1, 0x83, 0x89, 0x8A] {
                for len in [0usize, 1, 4, 31, 32, 40, 41, 60, 61, 63, 64, 100, 125, 126] {
                    for mask in [M, None] {
                        for text in [&b"a\xce\xbab"[..], b"\xc0\xaf"] {
                            let payload: Vec<u8> = text.iter().copied().cycle().take(len).collect();
                            let mut wire = frame(b0 & 0x80 != 0, 0, b0 & 0x0f, mask, &payload);
                            wire[0] = b0;
                            // A second frame behind the first, and half of a third.
                            wire.extend(frame(true, 0, 0x2, mask, b"next"));
                            wire.extend_from_slice(&frame(true, 0, 0x1, mask, b"partial")[..3]);
                            let [got, want] = feed_both_paths(&**make, before, &wire);
                            assert_eq!(
                                got, want,
                                "{who}, {when}: {b0:#04x}, {len} bytes, mask {mask:?}, payload {text:?}"
                            );
                            delivered += usize::from(matches!(
                                got.0.first(),
                                Some(Owned::Binary(_) | Owned::Text(_))
                            ));
                            failed += usize::from(got.2.is_some());
                        }
                    }
                }
            }
        }
    }
    // The table reaches both outcomes many times: messages delivered and connections failed.
    assert!(
        delivered >= 200 && failed >= 200,
        "{delivered} cases delivered a message, {failed} failed"
    );
}

#[test]
fn a_servers_small_frames_are_the_general_encoding() {
    for opcode in [
        OpCode::TEXT,
        OpCode::BINARY,
        OpCode::CONTINUE,
        OpCode::PING,
        OpCode::PONG,
    ] {
        for fin in [true, false] {
            for len in 0..=130usize {
                let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let mut conn = server();
                let mut fast = Vec::new();
                match (opcode, fin) {
                    (OpCode::TEXT, true) => {
                        conn.send_message(MessageKind::Text, &payload, &mut fast)
                    }
                    (OpCode::BINARY, true) => conn.send_binary(&payload, &mut fast),
                    (OpCode::PING, true) if len <= 125 => conn.send_ping(&payload, &mut fast),
                    (OpCode::PONG, true) if len <= 125 => conn.send_pong(&payload, &mut fast),
                    (OpCode::BINARY, false) => {
                        conn.send_fragment(Some(MessageKind::Binary), &payload, false, &mut fast)
                    }
                    (OpCode::CONTINUE, _) => conn
                        .send_fragment(Some(MessageKind::Text), b"", false, &mut Vec::new())
                        .and_then(|()| conn.send_fragment(None, &payload, fin, &mut fast)),
                    _ => continue,
                }
                .unwrap();
                let mut general = Vec::new();
                conn.write_frame_general(opcode, fin, &payload, &mut general);
                assert_eq!(fast, general, "{opcode:?} fin {fin}, {len} bytes");
                let (h, n) = FrameHeader::decode(&fast).unwrap().unwrap();
                assert_eq!(
                    (h.opcode, h.fin, h.payload_len, h.mask),
                    (opcode, fin, len as u64, None)
                );
                assert_eq!(&fast[n..], &payload[..]);
            }
        }
    }
}

#[test]
fn discarded_replies_give_their_memory_back() {
    let mut conn = server();
    let mut wire: Vec<u8> = (0..20)
        .flat_map(|_| frame(true, 0, 0x9, M, &[7; 125]))
        .collect();
    let mut pos = 0;
    // Pings read without polling the pongs out: they pile up in the reply queue.
    while let Ok(read) = conn.handle_read(&mut wire[pos..]) {
        pos += read.consumed;
        if read.event.is_none() {
            break;
        }
    }
    assert_eq!(pos, wire.len());
    assert!(conn.wants_transmit());
    assert!(conn.heap_size() > 20 * 125, "{} bytes", conn.heap_size());
    conn.split().1.discard_transmit();
    assert!(!conn.wants_transmit());
    assert_eq!(conn.heap_size(), 0);
    assert_eq!(conn.poll_transmit(&mut Vec::new()), 0);
}

#[test]
fn connection_stays_small() {
    // Idle connections cost memory on servers with many sockets; keep the session compact.
    let size = size_of::<Connection>();
    eprintln!("size_of::<Connection>() = {size}");
    assert!(size <= 256, "Connection grew to {size} bytes");
}

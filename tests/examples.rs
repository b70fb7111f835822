//! The self-contained examples, run through their `demo()` (what `--demo` prints): each
//! answers a topic of Node ws's README, and this keeps them working, not only compiling.

#[path = "../examples/binary.rs"]
mod binary;
#[path = "../examples/broadcast.rs"]
mod broadcast;
#[path = "../examples/client_auth.rs"]
mod client_auth;
#[path = "../examples/compression.rs"]
mod compression;
#[path = "../examples/heartbeat.rs"]
mod heartbeat;
#[path = "../examples/routes.rs"]
mod routes;

#[test]
fn routes_serve_each_path_and_refuse_others() {
    let lines = routes::demo().expect("demo runs");
    assert_eq!(lines[0], "/echo answered ping");
    assert_eq!(lines[1], "/chat delivered \"alice: hi bob\"");
    assert!(lines[2].contains("404"), "{lines:?}");
}

#[test]
fn client_auth_admits_a_good_token_and_refuses_a_bad_one() {
    let lines = client_auth::demo().expect("demo runs");
    assert_eq!(lines[0], "good token: hello alice");
    assert!(lines[1].contains("401"), "{lines:?}");
}

#[test]
fn broadcast_reaches_everyone_or_the_others() {
    let lines = broadcast::demo().expect("demo runs");
    assert_eq!(
        lines,
        [
            "all got to everyone",
            "others got to everyone",
            "quiet got to everyone",
            "all got to the others",
            "quiet got to the others",
        ]
    );
}

#[test]
fn heartbeat_terminates_the_silent_peer_and_keeps_the_live_one() {
    let lines = heartbeat::demo().expect("demo runs");
    assert!(lines[0].ends_with("closed: 1006 terminated"), "{lines:?}");
    assert_eq!(lines[1], "open after the silent one went: 1");
}

#[test]
fn binary_sums_floats() {
    assert_eq!(
        binary::demo().expect("demo runs"),
        ["sum of [0.5, 1.5, 2.0] = 4"]
    );
}

#[test]
fn compression_is_agreed_and_shrinks_the_message() {
    let lines = compression::demo().expect("demo runs");
    assert!(
        lines[0].starts_with("agreed: permessage-deflate"),
        "{lines:?}"
    );
    assert_eq!(lines[1], "server says compression: true");
    assert_eq!(lines[2], "99200 bytes came back intact: true");
}

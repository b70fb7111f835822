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
#[path = "../examples/last_value.rs"]
mod last_value;
#[path = "../examples/routes.rs"]
mod routes;
#[path = "support/proxies.rs"]
mod test_proxies;
#[path = "../examples/via_proxy.rs"]
mod via_proxy;

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
fn a_late_subscriber_gets_the_newest_tick_of_every_symbol_at_once() {
    let lines = last_value::demo().expect("demo runs");
    assert_eq!(
        lines,
        [
            r#"at once: {"s":"AAPL","px":102.00}"#,
            r#"at once: {"s":"MSFT","px":202.00}"#,
            r#"at once: {"s":"NVDA","px":302.00}"#,
            r#"at once: {"s":"AMZN","px":402.00}"#,
            r#"at once: {"s":"GOOG","px":502.00}"#,
            r#"then: {"s":"NVDA","px":350.00}"#,
            "kept 5 values (120 bytes) of 16 ticks",
        ]
    );
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

/// Through a real HTTP CONNECT proxy (with credentials) and a SOCKS5 one, to a wsx echo server.
#[test]
fn via_proxy_reaches_the_server_through_connect_and_socks5() {
    struct Echo;
    impl wsx::Handler for Echo {
        type State = ();
        fn on_message(&mut self, conn: &mut wsx::Conn<'_, ()>, message: wsx::Message<'_>) {
            let _ = conn.send(message);
        }
    }
    let server = wsx::Server::builder()
        .port(0)
        .pin_threads(false)
        .start(|_| Echo)
        .expect("server");
    let url = format!("ws://{}/", server.local_addr());
    let http = test_proxies::http_connect_proxy(test_proxies::ProxyConfig::with_auth("u", "p"));
    let reply = via_proxy::echo_via(&url, Some(&format!("http://u:p@{http}")), "one")
        .expect("through CONNECT");
    assert_eq!(reply, "one");
    let socks = test_proxies::socks5_proxy(test_proxies::ProxyConfig::default());
    let reply = via_proxy::echo_via(&url, Some(&format!("socks5://{socks}")), "two")
        .expect("through SOCKS5");
    assert_eq!(reply, "two");
    let refused = via_proxy::echo_via(&url, Some(&format!("http://u:wrong@{http}")), "three");
    assert!(refused.is_err(), "wrong credentials get through");
    server.shutdown(std::time::Duration::ZERO);
    server.wait();
}

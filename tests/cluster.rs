//! Pub/sub across wsx nodes over a real `nats-server` (feature `nats`): three nodes in this
//! process, subscribers spread over them, publishes from each; NATS killed and restarted under
//! them; a node that loses its last subscriber, or leaves, unsubscribes; hostile messages from
//! NATS refused and counted; every way a node authenticates to NATS (token, user and password,
//! nkey, credentials file in operator mode) and TLS to NATS (trusted CA, `require_tls`, mutual
//! TLS, a rustls configuration), accepted with the right credential and refused with a wrong or
//! missing one. Without `nats-server` (and no way to install it) the tests say so
//! and pass, except under `CI=true`, where they fail.
#![cfg(feature = "nats")]

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;
#[path = "support/nats.rs"]
mod nats;
#[path = "support/nats_auth.rs"]
mod nats_auth;

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use common::{start_server, stop, wait_until};
use nats::{Nats, RawPublisher};
use wsx::blocking::{self, Message as Got, WebSocket};
use wsx::cluster::{BackplaneStats, NatsBackplane};
use wsx::{Backend, Conn, Handler, Message, Server, ServerHandle, Upgrade};

/// Bound on every wait of these tests (a reconnect included).
const WITHIN: Duration = Duration::from_secs(30);

/// A running `nats-server`, or `None` after saying why there is none (a failure under
/// `CI=true`).
fn nats_server() -> Option<Nats> {
    nats_server_with(&[])
}

test_all!(a_token_authenticates_the_nodes);
/// Against a NATS server that asks for a token, nodes given it connect and share topics; a
/// wrong token, or none, is refused.
fn a_token_authenticates_the_nodes(backend: Backend) {
    let args = ["--auth", "s3cret"].map(String::from);
    let Some(nats) = nats_server_with(&args) else {
        return;
    };
    let prefix = format!("token{}", backend as u8);
    let plain = || NatsBackplane::new([nats.url()]).prefix(&prefix);
    let a = node_with(backend, plain().node_name("a").token("s3cret"));
    let b = node_with(backend, plain().node_name("b").token("s3cret"));
    let mut on_b = share_a_topic(&nats, &prefix, &a, &b);
    for (bad, why) in [
        (plain().token("wrong"), "a wrong token"),
        (plain(), "no token"),
    ] {
        assert_refused(backend, &nats, bad, why, &a, &mut on_b);
    }
    stop(&a);
    stop(&b);
}

/// A running `nats-server` with extra `args` (authentication, TLS), or `None` after saying why
/// there is none (a failure under `CI=true`).
fn nats_server_with(args: &[String]) -> Option<Nats> {
    match nats::program() {
        Ok(program) => {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Some(Nats::start_with(program, &args))
        }
        Err(why) => {
            assert!(!nats::in_ci(), "CI=true and nats-server cannot run: {why}");
            let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
            None
        }
    }
}

/// Nodes `a` and `b`, connected to `nats`, share topic `t` of `prefix`: a publish on a reaches
/// a subscriber on b. That subscriber.
fn share_a_topic(nats: &Nats, prefix: &str, a: &ServerHandle, b: &ServerHandle) -> WebSocket {
    let mut on_b = subscriber(b, "t");
    wait_nats_sub(nats, "b", &format!("{prefix}.t"), true);
    a.publish("t", Message::Text("across")).unwrap();
    assert_eq!(text(&mut on_b), "across");
    on_b
}

/// A node on `backplane` that `nats` refuses (`why`): what the code does is that `start`
/// succeeds (connecting goes on in the background) and the node never reports `connected`.
/// The server sees the node come back again and again, each time after it was refused, and
/// the node is not connected at any point of it (nor ever counted a reconnect). Its local
/// delivery goes on; its publish is dropped and counted in `dropped_disconnected`, never sent,
/// and reaches no other node: after it, the next message `on_b` (node b's subscriber of `t`)
/// gets is the one `a` publishes next.
fn assert_refused(
    backend: Backend,
    nats: &Nats,
    backplane: NatsBackplane,
    why: &str,
    a: &ServerHandle,
    on_b: &mut WebSocket,
) {
    const ATTEMPTS: u64 = 3;
    let before = nats.total_connections();
    let x = start_node(backend, backplane.node_name("refused"));
    let mut ever_connected = false;
    let tried = wait_until(WITHIN, || {
        ever_connected |= stats(&x).connected;
        nats.total_connections() >= before + ATTEMPTS
    });
    assert!(
        tried,
        "{why}: the node tries {ATTEMPTS} times: {} connections, {:?}",
        nats.total_connections() - before,
        stats(&x)
    );
    let s = stats(&x);
    assert!(!ever_connected && !s.connected, "{why}: refused: {s:?}");
    assert_eq!(s.reconnects, 0, "{why}: {s:?}");
    // Each refused attempt is reported; the reason is there for the user to see.
    let error = x.backplane_error();
    assert!(error.is_some(), "{why}: no reason reported");
    let _ = writeln!(std::io::stderr(), "{why}: {}", error.unwrap_or_default());

    let mut local = subscriber(&x, "t");
    x.publish("t", Message::Text("refused")).unwrap();
    assert_eq!(text(&mut local), "refused", "{why}: local delivery goes on");
    let s = stats(&x);
    // (Its subscription to `t` waits in the client for a connection, and may be counted in
    // `subscriptions` already.)
    assert_eq!(
        (s.dropped_disconnected, s.published),
        (1, 0),
        "{why}: nothing went to NATS: {s:?}"
    );
    a.publish("t", Message::Text("fence")).unwrap();
    assert_eq!(
        text(on_b),
        "fence",
        "{why}: the refused node's publish reached no other node"
    );
    stop(&x);
}

test_all!(a_user_and_password_authenticate_the_nodes);
/// Against `nats-server --user U --pass P`, nodes given U and P share topics; a wrong
/// password, a wrong user, or none at all is refused.
fn a_user_and_password_authenticate_the_nodes(backend: Backend) {
    let args = ["--user", "wsx", "--pass", "pa55word"].map(String::from);
    let Some(nats) = nats_server_with(&args) else {
        return;
    };
    let prefix = format!("userpass{}", backend as u8);
    let plain = || NatsBackplane::new([nats.url()]).prefix(&prefix);
    let with = |name: &str| plain().node_name(name).user_password("wsx", "pa55word");
    let a = node_with(backend, with("a"));
    let b = node_with(backend, with("b"));
    let mut on_b = share_a_topic(&nats, &prefix, &a, &b);
    for (bad, why) in [
        (plain().user_password("wsx", "wrong"), "a wrong password"),
        (plain().user_password("other", "pa55word"), "a wrong user"),
        (plain(), "no user and password"),
        (plain().token("pa55word"), "a token instead"),
    ] {
        assert_refused(backend, &nats, bad, why, &a, &mut on_b);
    }
    stop(&a);
    stop(&b);
}

test_all!(an_nkey_authenticates_the_nodes);
/// Against a server whose configuration lists the nodes' nkeys (public keys made here), nodes
/// given their seeds sign the server's nonce and share topics; the seed of a key the server
/// does not list, or no credential, is refused. (A seed that is no user's seed fails `start`:
/// `a_bad_backplane_fails_start`.)
fn an_nkey_authenticates_the_nodes(backend: Backend) {
    let dir = nats_auth::Dir::new("nkey");
    let (key_a, key_b) = (nkeys::KeyPair::new_user(), nkeys::KeyPair::new_user());
    let config = nats_auth::nkey_config(&dir, &[key_a.public_key(), key_b.public_key()]);
    let args = ["-c".to_owned(), config.display().to_string()];
    let Some(nats) = nats_server_with(&args) else {
        return;
    };
    let prefix = format!("nkey{}", backend as u8);
    let plain = || NatsBackplane::new([nats.url()]).prefix(&prefix);
    let seed = |k: &nkeys::KeyPair| k.seed().expect("a seed");
    let a = node_with(backend, plain().node_name("a").nkey(seed(&key_a)));
    let b = node_with(backend, plain().node_name("b").nkey(seed(&key_b)));
    let mut on_b = share_a_topic(&nats, &prefix, &a, &b);
    let stranger = nkeys::KeyPair::new_user();
    for (bad, why) in [
        (
            plain().nkey(seed(&stranger)),
            "an nkey the server does not list",
        ),
        (plain(), "no nkey"),
    ] {
        assert_refused(backend, &nats, bad, why, &a, &mut on_b);
    }
    stop(&a);
    stop(&b);
}

/// A rustls configuration that trusts the test CA and, with `client`, presents its certificate.
fn rustls_config(
    certs: &nats_auth::Certs,
    client: Option<&nats_auth::Client>,
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs.ca_der.clone()).expect("the CA certificate");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots);
    match client {
        Some(c) => builder
            .with_client_auth_cert(vec![c.cert_der.clone()], c.key_der())
            .expect("the client certificate"),
        None => builder.with_no_client_auth(),
    }
}

/// Waits until NATS lists the connection of node `name` with a TLS version: it speaks TLS.
fn wait_tls(nats: &Nats, name: &str) {
    let wanted = format!("\"name\":\"wsx/{name}\"");
    assert!(
        wait_until(WITHIN, || {
            let body: String = nats
                .monitor("/connz")
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            body.split("{\"cid\":")
                .any(|c| c.contains(&wanted) && c.contains("\"tls_version\":\"1."))
        }),
        "NATS lists wsx/{name} over TLS: {}",
        nats.monitor("/connz")
    );
}

test_all!(tls_to_nats_with_a_trusted_ca);
/// Against `nats-server --tls`: a node that trusts the CA (`root_certificates`) connects over
/// a `tls://` URL, another with a `nats://` URL and `require_tls(true)` and a `tls_config` of
/// its own (TLS because the server asks for it), and they share topics; NATS sees both over
/// TLS. A node that trusts another CA, only the system's roots, or none, is refused.
fn tls_to_nats_with_a_trusted_ca(backend: Backend) {
    let certs = nats_auth::Certs::new();
    let Some(nats) = nats_server_with(&certs.server_args(false)) else {
        return;
    };
    let prefix = format!("tls{}", backend as u8);
    let at = |url: String| NatsBackplane::new([url]).prefix(&prefix);
    let a = node_with(
        backend,
        at(nats.tls_url())
            .node_name("a")
            .root_certificates(&certs.ca),
    );
    let b = node_with(
        backend,
        at(nats.url())
            .node_name("b")
            .require_tls(true)
            .tls_config(rustls_config(&certs, None)),
    );
    wait_tls(&nats, "a");
    wait_tls(&nats, "b");
    let mut on_b = share_a_topic(&nats, &prefix, &a, &b);
    let empty = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    for (bad, why) in [
        (
            at(nats.tls_url()).root_certificates(&certs.foreign_ca),
            "a node that trusts another CA",
        ),
        (at(nats.tls_url()), "a node with the system's roots only"),
        (
            at(nats.url()),
            "a nats:// node with the system's roots only",
        ),
        (
            at(nats.tls_url()).tls_config(empty),
            "a tls_config that trusts no one",
        ),
    ] {
        assert_refused(backend, &nats, bad, why, &a, &mut on_b);
    }
    stop(&a);
    stop(&b);
}

/// `NatsBackplane::root_certificates` adds its CA files to the system's roots. Shown with the
/// test CA as the system's roots (`SSL_CERT_FILE`, which rustls-native-certs reads), in a child
/// process of this binary so that no other test sees the variable: a node with the system's
/// roots only connects, and so does one that adds another CA's file to them. Once: the backend
/// cannot matter (TLS to NATS is the NATS thread's).
#[test]
fn root_certificates_add_to_the_system_roots() {
    let certs = nats_auth::Certs::new();
    let Some(nats) = nats_server_with(&certs.server_args(false)) else {
        return;
    };
    let exe = std::env::current_exe().expect("this test binary");
    let out = std::process::Command::new(exe)
        .args(["--exact", "system_roots_child", "--ignored", "--nocapture"])
        .env("SSL_CERT_FILE", &certs.ca)
        .env("WSX_NATS_CHILD_URL", nats.tls_url())
        .env("WSX_NATS_CHILD_CA", &certs.foreign_ca)
        .output()
        .expect("the child runs");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "child: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The child of `root_certificates_add_to_the_system_roots`, with `SSL_CERT_FILE` set to the
/// test CA; says so and passes when run by itself.
#[test]
#[ignore = "run by root_certificates_add_to_the_system_roots in a child process"]
fn system_roots_child() {
    let (Ok(url), Ok(foreign_ca)) = (
        std::env::var("WSX_NATS_CHILD_URL"),
        std::env::var("WSX_NATS_CHILD_CA"),
    ) else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: run by root_certificates_add_to_the_system_roots"
        );
        return;
    };
    let backend = Backend::Epoll;
    let system = NatsBackplane::new([url.clone()]).prefix("roots");
    let control = node_with(backend, system.clone().node_name("control"));
    let added = start_node(
        backend,
        system.node_name("added").root_certificates(foreign_ca),
    );
    assert!(
        wait_until(WITHIN, || stats(&added).connected),
        "a node whose CA file adds to the system's roots (which trust the server) connects: {:?}",
        stats(&added)
    );
    stop(&added);
    stop(&control);
}

test_all!(require_tls_refuses_a_plain_server);
/// Against a NATS server without TLS: plain nodes share topics; a node with
/// `require_tls(true)`, or a `tls://` URL, is refused (it never sends its CONNECT in the
/// clear).
fn require_tls_refuses_a_plain_server(backend: Backend) {
    let certs = nats_auth::Certs::new();
    let Some(nats) = nats_server() else { return };
    let prefix = format!("plain{}", backend as u8);
    let at = |url: String| NatsBackplane::new([url]).prefix(&prefix);
    let a = node_with(backend, at(nats.url()).node_name("a"));
    let b = node_with(backend, at(nats.url()).node_name("b"));
    let mut on_b = share_a_topic(&nats, &prefix, &a, &b);
    for (bad, why) in [
        (
            at(nats.url())
                .require_tls(true)
                .root_certificates(&certs.ca),
            "require_tls against a plain server",
        ),
        (
            at(nats.tls_url()).root_certificates(&certs.ca),
            "a tls:// URL to a plain server",
        ),
    ] {
        assert_refused(backend, &nats, bad, why, &a, &mut on_b);
    }
    stop(&a);
    stop(&b);
}

test_all!(mutual_tls_to_nats);
/// Against `nats-server --tls --tlsverify --tlscacert CA`: a node with `client_certificate`
/// (a certificate of the CA) and one with a `tls_config` that presents it connect and share
/// topics. A node without a client certificate, with one of another CA, or with a
/// `tls_config` that presents none, is refused.
fn mutual_tls_to_nats(backend: Backend) {
    let certs = nats_auth::Certs::new();
    let Some(nats) = nats_server_with(&certs.server_args(true)) else {
        return;
    };
    let prefix = format!("mtls{}", backend as u8);
    let trusting = || {
        NatsBackplane::new([nats.tls_url()])
            .prefix(&prefix)
            .root_certificates(&certs.ca)
    };
    let a = node_with(
        backend,
        trusting()
            .node_name("a")
            .client_certificate(&certs.client.cert, &certs.client.key),
    );
    let b = node_with(
        backend,
        NatsBackplane::new([nats.tls_url()])
            .prefix(&prefix)
            .node_name("b")
            .tls_config(rustls_config(&certs, Some(&certs.client))),
    );
    wait_tls(&nats, "a");
    wait_tls(&nats, "b");
    let mut on_b = share_a_topic(&nats, &prefix, &a, &b);
    for (bad, why) in [
        (trusting(), "no client certificate"),
        (
            trusting().client_certificate(&certs.foreign_client.cert, &certs.foreign_client.key),
            "a client certificate of another CA",
        ),
        (
            NatsBackplane::new([nats.tls_url()])
                .prefix(&prefix)
                .tls_config(rustls_config(&certs, None)),
            "a tls_config without a client certificate",
        ),
    ] {
        assert_refused(backend, &nats, bad, why, &a, &mut on_b);
    }
    stop(&a);
    stop(&b);
}

test_all!(a_credentials_file_authenticates_the_nodes);
/// Operator mode: a server that trusts an operator and knows one account (`resolver: MEMORY`,
/// the account's JWT preloaded). Nodes with credentials files of users that account signed
/// share topics; a user signed by an account the server does not know, or a user JWT with
/// another key's seed, is refused.
fn a_credentials_file_authenticates_the_nodes(backend: Backend) {
    let operator = nats_auth::Operator::new();
    let args = ["-c".to_owned(), operator.config.display().to_string()];
    let Some(nats) = nats_server_with(&args) else {
        return;
    };
    let prefix = format!("creds{}", backend as u8);
    let plain = || NatsBackplane::new([nats.url()]).prefix(&prefix);
    let creds_a = operator.creds(&operator.account, "a");
    let creds_b = operator.creds(&operator.account, "b");
    let a = node_with(backend, plain().node_name("a").credentials_file(&creds_a));
    let b = node_with(backend, plain().node_name("b").credentials_file(&creds_b));
    let mut on_b = share_a_topic(&nats, &prefix, &a, &b);
    let stranger = operator.creds(&nkeys::KeyPair::new_account(), "stranger");
    // The JWT of user a, with the seed of another user.
    let jwt_a = std::fs::read_to_string(&creds_a).unwrap();
    let jwt_a = jwt_a.lines().nth(1).expect("the JWT line").to_owned();
    let other_seed = nkeys::KeyPair::new_user().seed().unwrap();
    let mismatched = operator.dir.write(
        "mismatched.creds",
        &nats_auth::creds_file(&jwt_a, &other_seed),
    );
    for (bad, why) in [
        (
            plain().credentials_file(&stranger),
            "a user of an account the server does not know",
        ),
        (
            plain().credentials_file(&mismatched),
            "a user JWT with another key's seed",
        ),
        (plain(), "no credentials"),
    ] {
        assert_refused(backend, &nats, bad, why, &a, &mut on_b);
    }
    stop(&a);
    stop(&b);
}

/// A path `/sub/T` subscribes at open; a text `pub:T:P` publishes P to T from the connection.
struct Node;

impl Handler for Node {
    type State = Option<String>;

    fn on_upgrade(&mut self, upgrade: &mut Upgrade<'_>) -> Result<Option<String>, wsx::Reject> {
        Ok(upgrade.path().strip_prefix("/sub/").map(str::to_owned))
    }

    fn on_open(&mut self, conn: &mut Conn<'_, Option<String>>) {
        if let Some(topic) = conn.state().clone() {
            conn.subscribe(&topic);
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_, Option<String>>, message: Message<'_>) {
        if let Message::Text(text) = message {
            if let Some((topic, payload)) =
                text.strip_prefix("pub:").and_then(|r| r.split_once(':'))
            {
                conn.publish(topic, Message::Text(payload));
            }
        }
    }
}

/// A node named `name` on `nats` under subject prefix `prefix`, with two workers.
fn node(backend: Backend, nats: &Nats, prefix: &str, name: &str) -> ServerHandle {
    node_with(
        backend,
        NatsBackplane::new([nats.url()])
            .prefix(prefix)
            .node_name(name),
    )
}

fn node_with(backend: Backend, backplane: NatsBackplane) -> ServerHandle {
    let server = start_node(backend, backplane);
    assert!(
        wait_until(WITHIN, || stats(&server).connected),
        "the node connects to NATS"
    );
    server
}

/// A node on `backplane` with two workers, not waited for: it may never connect.
fn start_node(backend: Backend, backplane: NatsBackplane) -> ServerHandle {
    let builder = Server::builder()
        .threads(2)
        .backplane(backplane.reconnect_delay_max(Duration::from_millis(50)));
    start_server(backend, builder, |_| Node)
}

fn stats(server: &ServerHandle) -> BackplaneStats {
    server.backplane_stats().expect("a node with a backplane")
}

/// A subscriber of `topic` on `server`, once the node counts it.
fn subscriber(server: &ServerHandle, topic: &str) -> WebSocket {
    let before = server.subscribers(topic);
    let ws = blocking::connect(&format!("ws://{}/sub/{topic}", server.local_addr()))
        .expect("client connects");
    ws.set_read_timeout(Some(WITHIN)).unwrap();
    assert!(
        wait_until(WITHIN, || server.subscribers(topic) > before),
        "subscribed"
    );
    ws
}

/// Waits until NATS has `subject` among the subscriptions of node `name` (`present`), or not.
fn wait_nats_sub(nats: &Nats, name: &str, subject: &str, present: bool) {
    let connection = format!("wsx/{name}");
    assert!(
        wait_until(WITHIN, || {
            let subs = nats.subscriptions_of(&connection).unwrap_or_default();
            subs.iter().any(|s| s == subject) == present
        }),
        "NATS sees {connection} {} {subject}: {:?}",
        if present {
            "subscribed to"
        } else {
            "unsubscribed from"
        },
        nats.subscriptions_of(&connection)
    );
}

fn text(ws: &mut WebSocket) -> String {
    match ws.recv().expect("a message within the bound") {
        Got::Text(t) => t,
        other => panic!("expected text, got {other:?}"),
    }
}

test_all!(every_subscriber_gets_every_message_once_in_order);
/// Three nodes, two subscribers on each: 200 publishes from each node, and a binary one; every
/// subscriber gets all 601, each exactly once, in order per publisher; the counters agree.
fn every_subscriber_gets_every_message_once_in_order(backend: Backend) {
    let Some(nats) = nats_server() else { return };
    let prefix = format!("order{}", backend as u8);
    let names = ["a", "b", "c"];
    let nodes: Vec<ServerHandle> = names
        .iter()
        .map(|n| node(backend, &nats, &prefix, n))
        .collect();
    let mut clients: Vec<(usize, WebSocket)> = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        for _ in 0..2 {
            clients.push((i, subscriber(n, "ticks")));
        }
    }
    // A subscriber of another topic gets none of it.
    let mut other = subscriber(&nodes[0], "other");
    for name in names {
        wait_nats_sub(&nats, name, &format!("{prefix}.ticks"), true);
    }
    const N: usize = 200;
    for i in 0..N {
        for (n, name) in nodes.iter().zip(names) {
            n.publish("ticks", Message::Text(&format!("{name}:{i}")))
                .unwrap();
        }
    }
    nodes[1]
        .publish("ticks", Message::Binary(&[0, 0xff, 7]))
        .unwrap();
    for n in &nodes {
        n.publish("ticks", Message::Text("end")).unwrap();
    }
    for (home, ws) in &mut clients {
        let mut next: HashMap<String, usize> = HashMap::new();
        let (mut binary, mut ends) = (0, 0);
        while ends < 3 {
            match ws.recv().expect("every message within the bound") {
                Got::Text(t) if t == "end" => ends += 1,
                Got::Text(t) => {
                    let (from, seq) = t.split_once(':').expect("name:seq");
                    let seq: usize = seq.parse().unwrap();
                    let expected = next.entry(from.to_owned()).or_insert(0);
                    assert_eq!(
                        seq, *expected,
                        "node {home}'s subscriber: in order, once, from {from}"
                    );
                    *expected += 1;
                }
                Got::Binary(b) => {
                    assert_eq!(b, [0, 0xff, 7], "binary stays binary");
                    binary += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        for name in names {
            assert_eq!(next.get(name).copied(), Some(N), "all of {name}'s");
        }
        assert_eq!(binary, 1);
    }
    // Every node sent each of its publishes to NATS once, and got the others' once each.
    for (i, n) in nodes.iter().enumerate() {
        let own = N as u64 + 1 + u64::from(i == 1);
        let s = stats(n);
        assert_eq!(s.published, own, "node {i}: {s:?}");
        let others = 3 * (N as u64 + 1) + 1 - own;
        assert!(
            wait_until(WITHIN, || stats(n).received == others),
            "node {i} received {others}: {:?}",
            stats(n)
        );
        let s = stats(n);
        assert_eq!(s.dropped_disconnected + s.dropped_backlog, 0, "{s:?}");
        assert_eq!(
            s.refused_invalid + s.refused_oversize + s.own_skipped,
            0,
            "{s:?}"
        );
        // Node 0 also has the subscriber of `other`.
        let topics = 1 + u64::from(i == 0);
        assert_eq!(
            s.subscriptions, topics,
            "node {i}: one subject per topic: {s:?}"
        );
    }
    // The first message `other` gets is one published to it after all of the above.
    nodes[2].publish("other", Message::Text("fence")).unwrap();
    assert_eq!(text(&mut other), "fence");
    for n in &nodes {
        stop(n);
    }
}

test_all!(nats_killed_and_restarted);
/// NATS dies under two nodes: local delivery goes on, cross-node publishes are dropped and
/// counted (not held back to be sent later), and once NATS is back the nodes reconnect,
/// subscribe again, and deliver across nodes.
fn nats_killed_and_restarted(backend: Backend) {
    let Some(mut nats) = nats_server() else {
        return;
    };
    let prefix = format!("restart{}", backend as u8);
    let a = node(backend, &nats, &prefix, "a");
    let b = node(backend, &nats, &prefix, "b");
    let mut on_a = subscriber(&a, "t");
    let mut on_b = subscriber(&b, "t");
    for name in ["a", "b"] {
        wait_nats_sub(&nats, name, &format!("{prefix}.t"), true);
    }
    a.publish("t", Message::Text("before")).unwrap();
    assert_eq!(text(&mut on_a), "before");
    assert_eq!(text(&mut on_b), "before");

    nats.kill();
    assert!(
        wait_until(WITHIN, || !stats(&a).connected && !stats(&b).connected),
        "both nodes see NATS gone"
    );
    const DOWN: u64 = 10;
    for i in 0..DOWN {
        a.publish("t", Message::Text(&format!("down-{i}"))).unwrap();
    }
    for i in 0..DOWN {
        assert_eq!(
            text(&mut on_a),
            format!("down-{i}"),
            "local delivery goes on"
        );
    }
    assert_eq!(stats(&a).dropped_disconnected, DOWN, "{:?}", stats(&a));

    nats.restart();
    assert!(
        wait_until(WITHIN, || {
            let (sa, sb) = (stats(&a), stats(&b));
            sa.connected && sb.connected && sa.reconnects >= 1 && sb.reconnects >= 1
        }),
        "both nodes reconnect: {:?} {:?}",
        stats(&a),
        stats(&b)
    );
    for name in ["a", "b"] {
        wait_nats_sub(&nats, name, &format!("{prefix}.t"), true);
    }
    a.publish("t", Message::Text("after-a")).unwrap();
    b.publish("t", Message::Text("after-b")).unwrap();
    // Order holds per publisher, not across them: a local and a remote one come in either
    // order. The next messages b's subscriber gets are the two after the restart: none of
    // the publishes made while NATS was down.
    for ws in [&mut on_a, &mut on_b] {
        let mut got = [text(ws), text(ws)];
        got.sort();
        assert_eq!(got, ["after-a", "after-b"], "across NATS again");
    }
    // `received` is counted once a message is handed to the workers, which may deliver it
    // first: wait for it.
    assert!(
        wait_until(WITHIN, || stats(&b).received == 2
            && stats(&a).received == 1),
        "b received before and after-a, a after-b: {:?} {:?}",
        stats(&a),
        stats(&b)
    );
    let (sa, sb) = (stats(&a), stats(&b));
    assert_eq!(sa.published, 2, "before and after-a: {sa:?}");
    assert_eq!(sb.published, 1, "{sb:?}");
    assert_eq!(sa.dropped_disconnected, DOWN, "{sa:?}");
    assert_eq!(
        sb.dropped_disconnected + sa.dropped_backlog + sb.dropped_backlog,
        0
    );
    stop(&a);
    stop(&b);
}

test_all!(a_node_unsubscribes_after_its_last_subscriber_and_when_it_leaves);
/// NATS sees a node subscribe with its first subscriber of a topic, unsubscribe after its
/// last, and the node's connection go when the node shuts down.
fn a_node_unsubscribes_after_its_last_subscriber_and_when_it_leaves(backend: Backend) {
    let Some(nats) = nats_server() else { return };
    let prefix = format!("leave{}", backend as u8);
    let a = node(backend, &nats, &prefix, "a");
    let subject = format!("{prefix}.room");
    assert!(
        wait_until(WITHIN, || nats.subscriptions_of("wsx/a")
            == Some(Vec::new())),
        "NATS knows the node, subscribed to nothing yet: {:?}",
        nats.subscriptions_of("wsx/a")
    );
    let mut first = subscriber(&a, "room");
    let mut second = subscriber(&a, "room");
    wait_nats_sub(&nats, "a", &subject, true);
    first.close(wsx::CloseCode::NORMAL, "").unwrap();
    assert!(wait_until(WITHIN, || a.subscribers("room") == 1));
    assert_eq!(
        nats.subscriptions_of("wsx/a"),
        Some(vec![subject.clone()]),
        "one subscriber left: still subscribed"
    );
    second.close(wsx::CloseCode::NORMAL, "").unwrap();
    wait_nats_sub(&nats, "a", &subject, false);
    assert!(wait_until(WITHIN, || stats(&a).subscriptions == 0));
    // Subscribed again, then the node leaves: its NATS connection goes with it.
    let _third = subscriber(&a, "room");
    wait_nats_sub(&nats, "a", &subject, true);
    stop(&a);
    assert!(
        wait_until(WITHIN, || nats.subscriptions_of("wsx/a").is_none()),
        "the node's NATS connection is closed"
    );
}

test_all!(hostile_messages_from_nats_are_refused_and_counted);
/// Whatever else publishes on NATS: a foreign message without headers arrives as binary; text
/// that is not UTF-8, an unknown kind, an over-long key, one over the max payload, or one
/// that claims to be the node's own never reach a subscriber, and each is counted.
fn hostile_messages_from_nats_are_refused_and_counted(backend: Backend) {
    let Some(nats) = nats_server() else { return };
    let prefix = format!("hostile{}", backend as u8);
    let a = node_with(
        backend,
        NatsBackplane::new([nats.url()])
            .prefix(&prefix)
            .node_name("a")
            .max_payload(64),
    );
    let mut ws = subscriber(&a, "t");
    let subject = format!("{prefix}.t");
    wait_nats_sub(&nats, "a", &subject, true);
    let mut raw = RawPublisher::connect(nats.port);
    let long_key = "k".repeat(300);
    raw.publish(
        &subject,
        &[("Wsx-Kind", "text"), ("Wsx-Origin", "x")],
        b"hello",
    );
    raw.publish(&subject, &[], b"{\"foreign\":1}");
    raw.publish(&subject, &[("Wsx-Kind", "text")], b"\xff\xfe not utf-8");
    raw.publish(&subject, &[("Wsx-Kind", "ping")], b"odd kind");
    raw.publish(&subject, &[("Wsx-Key", &long_key)], b"long key");
    raw.publish(&subject, &[("Wsx-Kind", "binary")], &[b'x'; 65]);
    raw.publish(
        &subject,
        &[("Wsx-Origin", "a"), ("Wsx-Kind", "text")],
        b"mine",
    );
    raw.publish(&subject, &[("Wsx-Kind", "text")], b"last");
    raw.flush();
    assert_eq!(text(&mut ws), "hello");
    match ws.recv().unwrap() {
        Got::Binary(b) => assert_eq!(b, b"{\"foreign\":1}"),
        other => panic!("expected binary, got {other:?}"),
    }
    assert_eq!(
        text(&mut ws),
        "last",
        "nothing refused reached the subscriber"
    );
    assert!(
        wait_until(WITHIN, || stats(&a).received == 3),
        "{:?}",
        stats(&a)
    );
    let s = stats(&a);
    assert_eq!(s.refused_invalid, 3, "{s:?}");
    assert_eq!(s.refused_oversize, 1, "{s:?}");
    assert_eq!(s.own_skipped, 1, "{s:?}");
    // Every message NATS delivered to the node is accounted for (none was dropped at the
    // receive queue): the client's own count equals the node's.
    let taken =
        s.received + s.own_skipped + s.refused_oversize + s.refused_invalid + s.unsubscribed;
    assert_eq!(s.from_nats, taken, "{s:?}");
    // A node's publish to a topic that is no NATS subject stays on the node.
    a.publish("no subject", Message::Text("x")).unwrap();
    assert_eq!(stats(&a).local_only, 1);
    stop(&a);
}

/// A backplane that cannot work fails `start`, with no NATS server needed to find out.
#[test]
fn a_bad_backplane_fails_start() {
    let start = |b: NatsBackplane| {
        Server::builder()
            .host("127.0.0.1")
            .port(0)
            .threads(1)
            .pin_threads(false)
            .backplane(b)
            .start(|_| Node)
    };
    let none: [&str; 0] = [];
    let dir = nats_auth::Dir::new("badcreds");
    let not_creds = dir.write("not.creds", "user = wsx\npassword = s3cret\n");
    let header = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ";
    let bad_seed = dir.write(
        "bad-seed.creds",
        &nats_auth::creds_file(&format!("{header}.e30.c2ln"), "SUnotaseed"),
    );
    for (bad, why) in [
        (NatsBackplane::new(none), "no URL"),
        (
            NatsBackplane::new(["nats://127.0.0.1:1"]).prefix("a.*"),
            "wildcard prefix",
        ),
        (
            NatsBackplane::new(["nats://127.0.0.1:1"]).prefix(""),
            "empty prefix",
        ),
        (
            NatsBackplane::new(["nats://127.0.0.1:1"]).credentials_file("/nonexistent/x.creds"),
            "unreadable credentials",
        ),
        (
            NatsBackplane::new(["nats://127.0.0.1:1"]).credentials_file(&not_creds),
            "a file that is no credentials file",
        ),
        (
            NatsBackplane::new(["nats://127.0.0.1:1"]).credentials_file(&bad_seed),
            "a credentials file with a malformed seed",
        ),
        (
            NatsBackplane::new(["nats://127.0.0.1:1"]).nkey("SUnotaseed"),
            "a malformed nkey seed",
        ),
        (
            NatsBackplane::new(["nats://127.0.0.1:1"])
                .nkey(nkeys::KeyPair::new_account().seed().unwrap()),
            "an account's seed",
        ),
        (
            NatsBackplane::new(["tls://127.0.0.1:1"]).root_certificates("/nonexistent/ca.pem"),
            "an unreadable CA file",
        ),
        (
            NatsBackplane::new(["tls://127.0.0.1:1"]).root_certificates(&not_creds),
            "a CA file without a certificate",
        ),
        (
            NatsBackplane::new(["tls://127.0.0.1:1"])
                .client_certificate("/nonexistent/client.pem", "/nonexistent/client.key"),
            "an unreadable client certificate",
        ),
    ] {
        let err = start(bad).expect_err(why);
        // The credentials file's own error (not found, here) comes through as it is.
        match why {
            "unreadable credentials" => assert!(err.to_string().contains("x.creds"), "{err}"),
            "an unreadable CA file" => assert!(err.to_string().contains("ca.pem"), "{err}"),
            "an unreadable client certificate" => {
                assert!(err.to_string().contains("client.pem"), "{err}")
            }
            "a file that is no credentials file" | "a credentials file with a malformed seed" => {
                assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{why}: {err}")
            }
            _ => assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{why}: {err}"),
        }
    }
}

//! A chat/feed node that shares its topics with other nodes over NATS (feature `nats`).
//!
//! ```sh
//! nats-server -a 127.0.0.1 -p 4222 &
//! # two nodes, as behind a load balancer
//! cargo run --features nats --example cluster -- --nats nats://127.0.0.1:4222 --port 9001 --name a
//! cargo run --features nats --example cluster -- --nats nats://127.0.0.1:4222 --port 9002 --name b
//! # or both in one process, with a client on each, and what they got:
//! cargo run --features nats --example cluster -- --nats nats://127.0.0.1:4222 --demo
//! # rooms that keep their last message, on every node (JetStream: nats-server -js)
//! cargo run --features nats --example cluster -- --nats nats://127.0.0.1:4222 --last-values rooms
//! ```
//!
//! A client connects to `/ROOM`: it is subscribed to topic `ROOM`, and each text message it
//! sends is published there, reaching the room's members on every node. With
//! `--last-values BUCKET`, a room keeps its last message and a client that joins it, on any
//! node, gets that message at once (docs/cluster.md, "Last values across nodes"). Every 5 s a
//! node prints its backplane's counters.

use std::time::Duration;

use clap::Parser;
use wsx::blocking::{self, Message as Got};
use wsx::broadcast::LastValue;
use wsx::cluster::NatsBackplane;
use wsx::{Conn, Handler, Message, Server, ServerHandle, Upgrade};

#[derive(Parser)]
#[command(about = "A wsx node that shares its topics with other nodes over NATS")]
struct Args {
    /// NATS server URL (repeat for the servers of a NATS cluster).
    #[arg(long, required = true)]
    nats: Vec<String>,
    /// Port to serve WebSockets on (0: any free one).
    #[arg(long, default_value_t = 9001)]
    port: u16,
    /// This node's name on NATS (default: random).
    #[arg(long)]
    name: Option<String>,
    /// NATS token, if the server asks for one.
    #[arg(long)]
    token: Option<String>,
    /// Subject prefix: topic T is subject PREFIX.T.
    #[arg(long, default_value = "wsx")]
    prefix: String,
    /// Rooms keep their last message, shared by the nodes in this JetStream bucket.
    #[arg(long, value_name = "BUCKET")]
    last_values: Option<String>,
    /// Start two nodes, a client on each, show a message crossing, and exit.
    #[arg(long)]
    demo: bool,
}

/// Subscribes each connection to the room its path names; publishes what it sends there.
struct Room;

impl Handler for Room {
    type State = String;

    fn on_upgrade(&mut self, upgrade: &mut Upgrade<'_>) -> Result<String, wsx::Reject> {
        Ok(upgrade.path().trim_start_matches('/').to_owned())
    }

    fn on_open(&mut self, conn: &mut Conn<'_, String>) {
        let room = conn.state().clone();
        conn.subscribe(&room);
    }

    fn on_message(&mut self, conn: &mut Conn<'_, String>, message: Message<'_>) {
        let room = conn.state().clone();
        conn.publish(&room, message);
    }
}

fn start(args: &Args, port: u16, name: Option<String>) -> std::io::Result<ServerHandle> {
    let mut nats = NatsBackplane::new(args.nats.iter().cloned()).prefix(&args.prefix);
    if let Some(name) = name {
        nats = nats.node_name(name);
    }
    if let Some(token) = &args.token {
        nats = nats.token(token);
    }
    let mut builder = Server::builder().host("127.0.0.1").port(port);
    if let Some(bucket) = &args.last_values {
        nats = nats.last_values_bucket(bucket);
        // Every room ("" covers every topic): one last message each, up to 10,000 rooms.
        builder = builder.last_value_for("", LastValue::new().max_topics(10_000).max_keys(1));
    }
    builder.backplane(nats).start(|_| Room)
}

/// Polls `cond` every 10 ms for up to 10 s.
fn wait(mut cond: impl FnMut() -> bool) -> bool {
    (0..1000).any(|_| {
        let ok = cond();
        if !ok {
            std::thread::sleep(Duration::from_millis(10));
        }
        ok
    })
}

fn demo(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let a = start(args, 0, Some("demo-a".into()))?;
    let b = start(args, 0, Some("demo-b".into()))?;
    if !wait(|| {
        [&a, &b]
            .iter()
            .all(|n| n.backplane_stats().is_some_and(|s| s.connected))
    }) {
        return Err("the nodes did not reach NATS".into());
    }
    let mut on_a = blocking::connect(&format!("ws://{}/lobby", a.local_addr()))?;
    let mut on_b = blocking::connect(&format!("ws://{}/lobby", b.local_addr()))?;
    // Each node subscribes on NATS once it has a subscriber: wait for both SUBs.
    wait(|| {
        [&a, &b]
            .iter()
            .all(|n| n.backplane_stats().is_some_and(|s| s.subscriptions == 1))
    });
    on_a.set_read_timeout(Some(Duration::from_secs(5)))?;
    on_b.set_read_timeout(Some(Duration::from_secs(5)))?;
    on_a.send_text("hello from a")?;
    for (who, ws) in [("a", &mut on_a), ("b", &mut on_b)] {
        match ws.recv()? {
            Got::Text(t) => println!("client on node {who} got: {t}"),
            other => println!("client on node {who} got {other:?}"),
        }
    }
    for (who, n) in [("a", &a), ("b", &b)] {
        println!("node {who}: {:?}", n.backplane_stats());
        n.shutdown(Duration::from_secs(1));
        n.wait();
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.demo {
        return demo(&args);
    }
    let server = start(&args, args.port, args.name.clone())?;
    println!(
        "node {} on ws://{}/ROOM",
        server.backplane_node().unwrap_or("?"),
        server.local_addr()
    );
    loop {
        std::thread::sleep(Duration::from_secs(5));
        println!("{:?}", server.backplane_stats());
    }
}

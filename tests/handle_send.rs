//! `ServerHandle::send` from another thread: a message to an id collected in `on_open`
//! reaches exactly that connection, on any worker; commands to a stale id (a connection that
//! is gone, whose slot a new connection now holds) are skipped harmlessly.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
mod common;

use common::{start_server, stop, Client, Ev, Shared};
use wsx::{Backend, CloseCode, Conn, ConnId, Handler, Message, MessageKind, Server};

/// Tells each client its id on open; records ids; echoes.
struct Directory {
    ids: Shared<ConnId>,
}

impl Handler for Directory {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        self.ids.push(conn.id());
        let _ = conn.send_text(&conn.id().to_string());
    }

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        let _ = conn.send(message);
    }
}

/// Connects and learns the connection's id from the server's first message.
fn connect(server: &wsx::ServerHandle, ids: &Shared<ConnId>) -> (Client, ConnId) {
    let mut client = Client::connect(server.local_addr());
    let Some(Ev::Text(name)) = client.recv() else {
        panic!("no id message")
    };
    let id = ids
        .wait_for(|id| id.to_string() == name)
        .expect("id recorded in on_open");
    (client, id)
}

test_all!(send_to_an_id_from_on_open_reaches_that_connection);
fn send_to_an_id_from_on_open_reaches_that_connection(backend: Backend) {
    let ids = Shared::default();
    let i = ids.clone();
    let server = start_server(backend, Server::builder().threads(2), move |_| Directory {
        ids: i.clone(),
    });
    let mut clients: Vec<(Client, ConnId)> = (0..6).map(|_| connect(&server, &ids)).collect();
    let mut ids_seen: Vec<ConnId> = clients.iter().map(|c| c.1).collect();
    ids_seen.sort();
    ids_seen.dedup();
    assert_eq!(ids_seen.len(), 6, "ids are unique");

    // From this (non-worker) thread, in reverse order, text and binary.
    for (_, id) in clients.iter().rev() {
        server
            .send_text(*id, format!("for {id}"))
            .expect("command delivered");
        server
            .send(*id, MessageKind::Binary, id.to_string().into_bytes())
            .expect("command delivered");
    }
    for (client, id) in &mut clients {
        assert_eq!(client.recv(), Some(Ev::Text(format!("for {id}"))));
        assert_eq!(client.recv(), Some(Ev::Binary(id.to_string().into_bytes())));
        // Nothing meant for the others.
        client.send_text("end");
        assert_eq!(client.recv(), Some(Ev::Text("end".into())));
    }
    stop(&server);
}

test_all!(send_to_a_stale_id_is_skipped);
fn send_to_a_stale_id_is_skipped(backend: Backend) {
    let ids = Shared::default();
    let i = ids.clone();
    let server = start_server(backend, Server::builder().threads(1), move |_| Directory {
        ids: i.clone(),
    });
    let (mut old, old_id) = connect(&server, &ids);
    old.close(1000, "");
    assert_eq!(old.recv(), Some(Ev::Close(1000, String::new())));
    assert_eq!(old.recv(), Some(Ev::Eof));
    assert!(common::wait_until(common::TIMEOUT, || server
        .stats()
        .connections
        == 0));

    // The new connection takes the freed slot: same worker and key, another generation.
    let (mut new, new_id) = connect(&server, &ids);
    assert_ne!(new_id, old_id);
    let slot = |id: ConnId| {
        id.to_string()
            .rsplit_once('.')
            .map(|(slot, _)| slot.to_owned())
    };
    assert_eq!(
        slot(new_id),
        slot(old_id),
        "the slot was reused ({old_id} -> {new_id})"
    );

    // Every command to the stale id is accepted and does nothing.
    server
        .send_text(old_id, "stale")
        .expect("a stale id is not an error");
    server
        .close(old_id, CloseCode(4000), "stale")
        .expect("a stale id is not an error");
    server
        .terminate(old_id)
        .expect("a stale id is not an error");
    server
        .send_text(new_id, "fresh")
        .expect("command delivered");
    assert_eq!(new.recv(), Some(Ev::Text("fresh".into())));
    new.send_text("still open");
    assert_eq!(new.recv(), Some(Ev::Text("still open".into())));
    assert_eq!(server.stats().connections, 1);
    stop(&server);
}

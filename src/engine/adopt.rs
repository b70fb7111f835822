//! A connection another server accepted, on its way to a worker (`ServerHandle::adopt` and
//! `ServerHandle::adopt_upgraded`): the socket, its TLS session if it has one, the bytes the
//! other server read, and, when that server already answered `101`, what the answer agreed.
//! The worker's side is `engine/worker/adopt.rs`.

use std::net::TcpStream;

use crate::engine::route::Decision;
use crate::protocol::handshake::UpgradeRequest;

/// What a worker gets in [`Command::Adopt`](crate::engine::inbox::Command::Adopt).
#[derive(Debug)]
pub(crate) struct Adoption {
    /// Non-blocking already.
    pub(crate) sock: TcpStream,
    /// A TLS session whose handshake the other server did (`wss://`).
    pub(crate) tls: Option<rustls::ServerConnection>,
    /// Without `answered`: the request head and what followed it, handled as if read from
    /// the socket. With it: only what followed the request (the first frames).
    pub(crate) bytes: Vec<u8>,
    pub(crate) answered: Option<Answered>,
    /// The client's address as the server in front learned it (behind a proxy of its own).
    pub(crate) client: Option<std::net::SocketAddr>,
}

/// An upgrade another server answered with `101`, with what the answer agreed.
pub(crate) struct Answered {
    pub(crate) request: UpgradeRequest,
    pub(crate) decision: Decision,
    pub(crate) protocol: Option<String>,
    /// What the front server learned, for `on_upgrade` (`Upgrade::take_context`).
    pub(crate) context: Option<Box<dyn std::any::Any + Send>>,
}

impl std::fmt::Debug for Answered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answered")
            .field("request", &self.request)
            .field("decision", &self.decision)
            .field("protocol", &self.protocol)
            .field("context", &self.context.is_some())
            .finish()
    }
}

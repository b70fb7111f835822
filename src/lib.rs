#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]

pub mod backend;
pub mod blocking;
pub mod broadcast;
pub mod client;
#[cfg(feature = "nats")]
pub mod cluster;
pub(crate) mod engine;
pub mod error;
mod handler;
pub mod http;
pub mod limits;
pub mod protocol;
pub mod server;
pub mod tls;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use backend::Backend;
pub use client::ClientBuilder;
pub use error::{HandshakeError, ProtocolError, SendError};
pub use http::{HttpRequest, HttpResponse};
pub use limits::Limits;
pub use protocol::{CloseCode, MessageKind, Role};
pub use server::Builder as ServerBuilder;
pub use server::{
    AdoptError, Adopted, Answer, Client, CloseInfo, Conn, ConnId, DeflatePoolStats, DropReason,
    HandleError, Handler, InitialState, Message, Reject, Route, SendStatus, Server, ServerHandle,
    Stats, Tick, Upgrade, MAX_ADOPT_LEFTOVER,
};
pub use server::{TrustedProxies, TrustedProxiesError};

/// The pages of `docs/`, one item each, so that `cargo test --doc` compiles (and, unless a block
/// says `no_run`, runs) the Rust code they show: a page cannot drift from the API.
#[cfg(doctest)]
pub mod docs {
    /// How data flows through the engine.
    #[doc = include_str!("../docs/architecture.md")]
    pub struct Architecture;
    /// The IO backends.
    #[doc = include_str!("../docs/backends.md")]
    pub struct Backends;
    /// Broadcast and pub/sub.
    #[doc = include_str!("../docs/broadcast.md")]
    pub struct Broadcast;
    /// The clients.
    #[doc = include_str!("../docs/client.md")]
    pub struct Client;
    /// Pub/sub across nodes over NATS.
    #[cfg(feature = "nats")]
    #[doc = include_str!("../docs/cluster.md")]
    pub struct Cluster;
    /// The client's address behind proxies.
    #[doc = include_str!("../docs/client-ip.md")]
    pub struct ClientIp;
    /// Autobahn and interop results.
    #[doc = include_str!("../docs/conformance.md")]
    pub struct Conformance;
    /// Decisions and their alternatives.
    #[doc = include_str!("../docs/decisions.md")]
    pub struct Decisions;
    /// permessage-deflate.
    #[doc = include_str!("../docs/deflate.md")]
    pub struct Deflate;
    /// Behind another HTTP server (hyper, axum).
    #[doc = include_str!("../docs/external-http.md")]
    pub struct ExternalHttp;
    /// The opening handshake.
    #[doc = include_str!("../docs/handshake.md")]
    pub struct Handshake;
    /// The load generator's method.
    #[doc = include_str!("../docs/loadtest.md")]
    pub struct Loadtest;
    /// Measurements.
    #[doc = include_str!("../docs/performance.md")]
    pub struct Performance;
    /// The sans-IO protocol core.
    #[doc = include_str!("../docs/protocol.md")]
    pub struct Protocol;
    /// Proxies.
    #[doc = include_str!("../docs/proxies.md")]
    pub struct Proxies;
    /// Routes and plain HTTP on one port.
    #[doc = include_str!("../docs/routes.md")]
    pub struct Routes;
    /// The server.
    #[doc = include_str!("../docs/server.md")]
    pub struct Server;
    /// TLS for `wss://`.
    #[doc = include_str!("../docs/tls.md")]
    pub struct Tls;
    /// The tokio adapter.
    #[cfg(feature = "tokio")]
    #[doc = include_str!("../docs/tokio.md")]
    pub struct Tokio;
}

//! The server: [`Server::builder`], the [`Handler`] trait, [`Conn`] inside callbacks and the
//! [`ServerHandle`] for other threads.
//!
//! `builder.rs` configures and starts a server; `handle.rs` is the [`ServerHandle`] of a
//! running server or client engine (whose own builder is [`crate::client::ClientBuilder`]).

mod adopt;
mod builder;
pub(crate) mod handle;
mod router;

// Behind proxies: the real client's address (docs/client-ip.md).
pub mod forwarded;
pub mod proxy_protocol;
pub use forwarded::{TrustedProxies, TrustedProxiesError};

pub use adopt::{AdoptError, Adopted, Answer, MAX_ADOPT_LEFTOVER};
pub use builder::{Builder, Server};
pub(crate) use handle::launch;
pub use handle::{HandleError, ServerHandle};
pub use router::Route;

pub use crate::client::Client;
pub use crate::engine::conn::Conn;
pub use crate::engine::deflate_pool::DeflatePoolStats;
pub use crate::engine::handler::{Handler, InitialState};
#[doc(hidden)]
pub use crate::engine::stats::Footprint;
pub use crate::engine::stats::Stats;
pub(crate) use crate::engine::stats::WorkerStats;
pub use crate::engine::tick::Tick;
pub use crate::handler::{CloseInfo, ConnId, DropReason, Message, Reject, SendStatus, Upgrade};

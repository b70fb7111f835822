#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]

pub mod blocking;
pub mod client;
pub(crate) mod engine;
pub mod error;
pub mod limits;
pub mod protocol;
pub mod server;

pub use error::{HandshakeError, ProtocolError, SendError};
pub use limits::Limits;
pub use protocol::{CloseCode, MessageKind, Role};
pub use server::Builder as ServerBuilder;
pub use server::{
    Client, CloseInfo, Conn, ConnId, HandleError, Handler, Message, Reject, SendStatus, Server,
    ServerHandle, Stats, Upgrade,
};

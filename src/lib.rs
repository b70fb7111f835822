#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]

pub mod error;
pub mod limits;
pub mod protocol;

pub use error::{HandshakeError, ProtocolError, SendError};
pub use limits::Limits;
pub use protocol::{CloseCode, Role};

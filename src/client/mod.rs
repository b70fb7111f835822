//! WebSocket clients: URLs, options, proxies, and the sans-IO connector that the blocking client
//! and the engine drive.

pub mod proxy;
mod url;

pub use url::{Url, UrlError};

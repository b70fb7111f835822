//! permessage-deflate (RFC 7692): negotiation and the codec.
//!
//! Negotiation ([`negotiate`]) turns offers and answers into [`Params`]; the codec ([`codec`])
//! compresses and inflates whole messages with libdeflater when no context is kept across
//! messages (the fast path), and with a streaming deflate (zlib-rs through flate2) when a
//! context must be kept or the peer demands a window smaller than 32 KiB. Compressors and
//! decompressors for the fast path live in a pool per thread, so memory grows with worker
//! threads, not with connections.

pub mod codec;
pub mod negotiate;
mod sync_end;

/// The extension's name in `Sec-WebSocket-Extensions`.
pub const NAME: &str = "permessage-deflate";

/// permessage-deflate options, for both roles: Node ws's `perMessageDeflate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateOptions {
    /// Messages smaller than this are sent uncompressed. Default 1024 bytes.
    pub threshold: usize,
    /// Compression level: 1 (fastest) to 9 (smallest), and libdeflate's slow near-optimal
    /// 10–12 (about 9 MiB per worker thread each). Default 5: on JSON it compresses within 2 %
    /// of level 6 at 1.1–1.7× its speed (measured in `docs/deflate.md`, "Levels"). The
    /// libdeflate fast path takes it as is (clamped to 1–12), the zlib-rs streaming path
    /// clamped to 1–9.
    pub level: u8,
    /// Server: answer with `server_no_context_takeover` (always allowed), so that each message
    /// is compressed alone on the pooled fast path and the connection holds no compressor.
    /// Client: ask the server for it, so that this client inflates each message alone and
    /// holds no decompressor (a server that refuses is declined). Default true in both roles:
    /// memory per connection stays flat, at the cost of the ratio a context kept across
    /// similar messages would give (see `docs/deflate.md`, "Defaults").
    pub server_no_context_takeover: bool,
    /// Server: answer with `client_no_context_takeover` even when the client did not offer it
    /// (RFC 7692 §7.1.1.1 allows it), so that the server inflates each message alone and holds
    /// no decompressor; browsers accept it. A client that forbids it (Node's ws with
    /// `clientNoContextTakeover: false`) fails the handshake: serve such clients with `false`,
    /// which answers it only when offered. Client: promise it in the offer (this client then
    /// compresses each message alone). Default true in both roles.
    pub client_no_context_takeover: bool,
    /// Server: the largest window this server compresses with (answered as
    /// `server_max_window_bits` when smaller than 15). Client: ask the server for it.
    /// `None`: 15.
    pub server_max_window_bits: Option<u8>,
    /// Server: limit the client's window (answered only when the client offered
    /// `client_max_window_bits`). Client: offer `client_max_window_bits` (with this value, or
    /// bare when `None`). `None` on a server: no limit.
    pub client_max_window_bits: Option<u8>,
    /// Messages larger than this are sent uncompressed when compressed inline, so that one
    /// huge message does not stall a worker's other connections while it is deflated. A
    /// server's deflate pool (`Builder::deflate_threads`, on by default) compresses large
    /// messages off the worker and is bounded by `Builder::deflate_pool_max_size` instead; this
    /// cap then applies to what stays inline (connections that keep a context, a pool turned
    /// off) and to the blocking client. Default 4 MiB.
    pub max_compress_size: usize,
}

impl Default for DeflateOptions {
    fn default() -> Self {
        DeflateOptions {
            threshold: 1024,
            level: 5,
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: None,
            client_max_window_bits: None,
            max_compress_size: 4 << 20,
        }
    }
}

/// The parameters in force on one connection, from this endpoint's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Params {
    /// Window of our compressor, 8–15 (8 means: never compress, zlib has no 256-byte window).
    pub send_window_bits: u8,
    /// Window the peer compresses with, 8–15.
    pub recv_window_bits: u8,
    /// We reset our compressor after each message.
    pub send_no_context_takeover: bool,
    /// The peer resets its compressor after each message.
    pub recv_no_context_takeover: bool,
}

//! Every size bound the protocol core enforces, each with its default and the attack it stops.

/// Size limits for one connection. Each field says its default and what it guards against.
///
/// # Examples
///
/// ```
/// let limits = wsx::Limits { max_message_size: 1 << 20, ..wsx::Limits::default() };
/// assert_eq!(limits.max_frame_size, wsx::Limits::default().max_frame_size);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload of one frame, in bytes. Default 16 MiB.
    ///
    /// Stops a peer that announces a huge frame and makes us buffer it; a larger frame closes the
    /// connection with 1009 as soon as its header is read, before any payload is buffered.
    pub max_frame_size: u64,
    /// Largest message (all fragments together, after any decompression), in bytes. Default 64 MiB.
    ///
    /// Stops a peer that sends an endless stream of small fragments; 1009 when crossed, checked
    /// as each fragment header arrives.
    pub max_message_size: u64,
    /// Most fragments in one message. Default 131,072.
    ///
    /// Stops a peer that makes us do per-frame work for empty fragments forever (empty
    /// fragments do not count against `max_message_size`). Autobahn 9.3.1/9.4.1 send a 4 MiB
    /// message in 64-byte fragments (a little over 65,536 frames), so the default leaves room
    /// for that with a factor of two.
    pub max_fragments: u32,
    /// Largest opening handshake head (request or response line plus headers), in bytes.
    /// Default 8 KiB.
    ///
    /// Stops a peer that sends headers forever; the server answers 431 (request) and the client
    /// fails (response).
    pub max_head_size: usize,
    /// Most header lines in a handshake head. Default 64.
    pub max_headers: usize,
}

impl Limits {
    /// The defaults documented on each field.
    pub const DEFAULT: Limits = Limits {
        max_frame_size: 16 << 20,
        max_message_size: 64 << 20,
        max_fragments: 131_072,
        max_head_size: 8 << 10,
        max_headers: 64,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

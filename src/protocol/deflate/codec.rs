//! Compressing and inflating whole messages. (Placeholder with the final API.)

use super::{DeflateOptions, Params};

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InflateError {
    /// The inflated message would exceed the limit (1009).
    #[error("inflated message exceeds {max} bytes")]
    TooBig {
        /// The limit.
        max: usize,
    },
    /// Not valid deflate data (1007).
    #[error("invalid compressed data")]
    Corrupt,
}

/// One connection's compression state: empty on the fast path (no context kept, full window),
/// a streaming compressor or decompressor where the parameters need one.
#[derive(Debug)]
pub struct DeflateState {
    params: Params,
    options: DeflateOptions,
}

impl DeflateState {
    /// The state for a connection with `params`.
    pub fn new(params: Params, options: &DeflateOptions) -> Self {
        DeflateState {
            params,
            options: *options,
        }
    }

    /// The parameters in force.
    pub fn params(&self) -> Params {
        self.params
    }

    /// Whether a message of `len` bytes should be compressed (threshold, size cap, window).
    pub fn should_compress(&self, len: usize) -> bool {
        len >= self.options.threshold
            && len <= self.options.max_compress_size
            && self.params.send_window_bits >= 9
    }

    /// Appends the compressed form of the whole message `input` to `out`, without the final
    /// `00 00 ff ff` (RFC 7692 §7.2.1).
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let _ = (input, out);
    }

    /// Inflates a whole compressed message (all fragments' payloads concatenated, without the
    /// tail) into `out`, producing at most `max` bytes.
    ///
    /// # Errors
    ///
    /// [`InflateError`].
    pub fn decompress(
        &mut self,
        input: &[u8],
        max: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), InflateError> {
        let _ = (input, max, out);
        Err(InflateError::Corrupt)
    }

    /// Heap bytes this connection's state holds (0 on the fast path).
    pub fn heap_size(&self) -> usize {
        0
    }
}

//! Incremental UTF-8 validation across reads and fragments.
//!
//! STUB: the SIMD helper replaces this file.

/// The bytes seen so far cannot be the start of valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Error;

/// Validates a message that arrives in pieces.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    partial: [u8; 4],
    len: u8,
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next piece. Fails as soon as the bytes seen so far cannot be the prefix of valid UTF-8.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), Utf8Error> {
        let mut v = self.partial[..self.len as usize].to_vec();
        v.extend_from_slice(bytes);
        match std::str::from_utf8(&v) {
            Ok(_) => {
                self.len = 0;
                Ok(())
            }
            Err(e) if e.error_len().is_none() => {
                let rest = &v[e.valid_up_to()..];
                self.partial[..rest.len()].copy_from_slice(rest);
                self.len = rest.len() as u8;
                Ok(())
            }
            Err(_) => Err(Utf8Error),
        }
    }

    /// Ends the message: fails when a code point is left incomplete. Resets the validator.
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        let ok = self.len == 0;
        self.len = 0;
        if ok {
            Ok(())
        } else {
            Err(Utf8Error)
        }
    }

    /// Forgets any partial code point.
    pub fn reset(&mut self) {
        self.len = 0;
    }
}

/// Validates a complete buffer.
pub fn validate(bytes: &[u8]) -> Result<(), Utf8Error> {
    std::str::from_utf8(bytes)
        .map(|_| ())
        .map_err(|_| Utf8Error)
}

/// Borrows bytes as `str`, validating them.
pub fn as_str(bytes: &[u8]) -> Result<&str, Utf8Error> {
    std::str::from_utf8(bytes).map_err(|_| Utf8Error)
}

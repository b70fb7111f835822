//! `Sec-WebSocket-Key` and `Sec-WebSocket-Accept` (RFC 6455 §4.1, §4.2.2).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The GUID appended to the key before hashing (RFC 6455 §1.3).
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Length of a key on the wire: base64 of 16 bytes, padded.
pub(super) const KEY_LEN: usize = 24;

/// Length of an accept value on the wire: base64 of a 20-byte SHA-1 digest, padded.
pub(super) const ACCEPT_LEN: usize = 28;

/// The `Sec-WebSocket-Accept` value for a key: base64 of SHA-1 over the key and [`GUID`].
///
/// The key is hashed as it appears on the wire (without surrounding whitespace); it is not
/// decoded first.
///
/// # Examples
///
/// ```
/// // RFC 6455 §1.3.
/// let accept = wsx::protocol::handshake::accept_key("dGhlIHNhbXBsZSBub25jZQ==");
/// assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &str) -> String {
    let bytes = accept_bytes(key.as_bytes());
    // The array is base64, which is ASCII.
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// [`accept_key`] into a fixed array, without allocating.
pub(super) fn accept_bytes(key: &[u8]) -> [u8; ACCEPT_LEN] {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID.as_bytes());
    let digest = sha.finalize();
    let mut out = [0u8; ACCEPT_LEN];
    let written = STANDARD.encode_slice(digest, &mut out);
    debug_assert_eq!(written, Ok(ACCEPT_LEN));
    out
}

/// Whether `key` is a valid `Sec-WebSocket-Key`: canonical, padded base64 of exactly 16 bytes.
///
/// # Examples
///
/// ```
/// use wsx::protocol::handshake::is_valid_key;
/// assert!(is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
/// assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ")); // unpadded
/// assert!(!is_valid_key(b"AAAAAAAAAAAAAAAAAAAAAAAA")); // 18 bytes
/// ```
pub fn is_valid_key(key: &[u8]) -> bool {
    let mut decoded = [0u8; 18];
    key.len() == KEY_LEN && STANDARD.decode_slice(key, &mut decoded) == Ok(16)
}

/// A fresh `Sec-WebSocket-Key`: 16 bytes from `rng`, base64-encoded (24 characters).
///
/// # Examples
///
/// ```
/// use rand::SeedableRng;
/// let key = wsx::protocol::handshake::random_key(&mut rand::rngs::StdRng::seed_from_u64(1));
/// assert!(wsx::protocol::handshake::is_valid_key(key.as_bytes()));
/// ```
pub fn random_key<R: rand::RngCore + ?Sized>(rng: &mut R) -> String {
    let mut nonce = [0u8; 16];
    rng.fill_bytes(&mut nonce);
    STANDARD.encode(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! keys {
        ($($key:literal => $valid:literal),* $(,)?) => {$(
            assert_eq!(is_valid_key($key), $valid, "{:?}", String::from_utf8_lossy($key));
        )*};
    }

    #[test]
    fn rfc6455_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(
            &accept_bytes(b"dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn key_validity() {
        keys! {
            b"dGhlIHNhbXBsZSBub25jZQ==" => true,
            b"AAAAAAAAAAAAAAAAAAAAAA==" => true,
            b"/////////////////////w==" => true,
            b"dGhlIHNhbXBsZSBub25jZQ" => false,    // no padding
            b"dGhlIHNhbXBsZSBub25jZR==" => false,  // non-zero trailing bits
            b"dGhlIHNhbXBsZSBub25jZ===" => false,
            b"AAAAAAAAAAAAAAAAAAAAAAAA" => false,  // 18 bytes
            b"AAAAAAAAAAAAAAAAAAAA" => false,      // 15 bytes
            b"dGhlIHNhbXBsZSBub25jZQ==\r" => false,
            b"dGhlIHNhbXBsZSBub25jZQ-=" => false,  // url-safe alphabet
            b"" => false,
        }
    }

    #[test]
    fn random_keys_are_valid_and_differ() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let a = random_key(&mut rng);
        let b = random_key(&mut rng);
        assert!(is_valid_key(a.as_bytes()) && is_valid_key(b.as_bytes()));
        assert_ne!(a, b);
    }
}

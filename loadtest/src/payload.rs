//! Message payloads that carry their own sequence number, so that every reply is checked for
//! length, content and order at the cost of one comparison.
//!
//! A payload of `size` bytes is `size.min(16)` lowercase hex digits of its sequence number (the
//! lowest digits when it is shorter than 16), then the tail of a fixed ASCII pattern (`a`..`z`
//! repeated). Text and binary messages use the same bytes; all of them are ASCII, so a text
//! payload is valid UTF-8 by construction.

const HEX: &[u8; 16] = b"0123456789abcdef";

/// What a reply can be wrong about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// It is not `size` bytes long.
    Length,
    /// Its pattern bytes differ, or its header is not hex.
    Content,
    /// It is intact but carries another sequence number (reordered, lost or duplicated).
    Order,
}

impl Mismatch {
    /// The error kind this is counted under.
    pub fn kind(self) -> &'static str {
        match self {
            Mismatch::Length => "reply: wrong length",
            Mismatch::Content => "reply: wrong content",
            Mismatch::Order => "reply: out of order",
        }
    }
}

/// The payloads of one run.
#[derive(Debug, Clone)]
pub struct Payloads {
    template: String,
    header: usize,
}

impl Payloads {
    /// Payloads of `size` bytes.
    pub fn new(size: usize) -> Self {
        let template: String = (0..size).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        Payloads {
            template,
            header: size.min(16),
        }
    }

    /// The pattern the payloads end with (`size` bytes; the first ones are replaced by the
    /// header).
    pub fn template(&self) -> &str {
        &self.template
    }

    /// The payload size.
    pub fn size(&self) -> usize {
        self.template.len()
    }

    /// Writes message `seq`'s payload into `out` (cleared first; no allocation once `out` has
    /// grown to the size).
    pub fn write(&self, seq: u64, out: &mut String) {
        out.clear();
        for i in (0..self.header).rev() {
            out.push(HEX[((seq >> (4 * i)) & 0xf) as usize] as char);
        }
        out.push_str(&self.template[self.header..]);
    }

    /// Checks that `bytes` is message `seq`'s payload.
    ///
    /// # Errors
    ///
    /// What differs, checked in this order: the length, the pattern, the sequence number.
    pub fn check(&self, seq: u64, bytes: &[u8]) -> Result<(), Mismatch> {
        if bytes.len() != self.template.len() {
            return Err(Mismatch::Length);
        }
        let (head, tail) = bytes.split_at(self.header);
        if tail != &self.template.as_bytes()[self.header..] {
            return Err(Mismatch::Content);
        }
        let got = parse_hex(head).ok_or(Mismatch::Content)?;
        let mask = if self.header >= 16 {
            u64::MAX
        } else {
            (1u64 << (4 * self.header)) - 1
        };
        if got != seq & mask {
            return Err(Mismatch::Order);
        }
        Ok(())
    }
}

/// The value of lowercase hex digits; `None` if any byte is not one.
pub fn parse_hex(digits: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &d in digits {
        let n = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u64::from(n);
    }
    Some(v)
}

/// Appends `v` as exactly 16 lowercase hex digits.
pub fn push_hex16(v: u64, out: &mut String) {
    for i in (0..16).rev() {
        out.push(HEX[((v >> (4 * i)) & 0xf) as usize] as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_size() {
        for size in [0, 1, 5, 15, 16, 17, 32, 1000] {
            let p = Payloads::new(size);
            let mut s = String::new();
            for seq in [0u64, 1, 15, 16, 255, 1 << 40, u64::MAX] {
                p.write(seq, &mut s);
                assert_eq!(s.len(), size);
                assert_eq!(p.check(seq, s.as_bytes()), Ok(()), "size {size} seq {seq}");
            }
        }
    }

    #[test]
    fn finds_each_mismatch() {
        let p = Payloads::new(32);
        let mut s = String::new();
        p.write(7, &mut s);
        assert_eq!(p.check(8, s.as_bytes()), Err(Mismatch::Order));
        assert_eq!(p.check(7, &s.as_bytes()[..31]), Err(Mismatch::Length));
        let mut bad = s.clone().into_bytes();
        bad[20] = b'!';
        assert_eq!(p.check(7, &bad), Err(Mismatch::Content));
        let mut bad = s.into_bytes();
        bad[0] = b'x';
        assert_eq!(p.check(7, &bad), Err(Mismatch::Content));
    }

    #[test]
    fn hex_helpers_agree() {
        let mut s = String::new();
        push_hex16(0xdead_beef, &mut s);
        assert_eq!(s, "00000000deadbeef");
        assert_eq!(parse_hex(s.as_bytes()), Some(0xdead_beef));
        assert_eq!(parse_hex(b"g"), None);
    }
}

//! Re-ending a finished DEFLATE stream with a sync flush, so that it can be followed by more
//! messages in the same inflate stream.
//!
//! libdeflate compresses a whole buffer into a stream whose last block has `BFINAL = 1`. RFC
//! 7692 §7.2.3.4 allows such a message, and a receiver that resets its inflater after every
//! message accepts it; but browsers keep one inflate stream per connection whatever was
//! negotiated, and after a final block that stream has ended, so the next message is an error
//! (Chromium closes with 1002). A zlib sender instead ends each message with a sync flush: the
//! last data block is not final and is followed by an empty stored block, whose `00 00 ff ff`
//! is removed (§7.2.1).
//!
//! [`end_with_sync_flush`] turns the first form into the second: it walks the blocks (decoding
//! Huffman symbols without producing output) to find the final block's header and the bit where
//! its end-of-block code stops, clears `BFINAL`, and makes sure the 3 header bits of an empty
//! stored block (`BFINAL = 0`, `BTYPE = 00`, all zero) follow before the byte boundary: they are
//! the zero padding of the last byte when it has 3 or more padding bits, else one `00` byte is
//! appended. The receiver's `00 00 ff ff` then completes that stored block, exactly as after a
//! zlib sync flush. The result inflates to the same bytes in either kind of receiver.
//!
//! The walk reads only our own compressor's output, but it is written as if the input were
//! hostile: every read is bounds-checked, every loop consumes input, and a malformed stream is an
//! error rather than a panic, after which the caller falls back to another encoding.

use std::sync::OnceLock;

/// Why a stream could not be re-ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

/// Rewrites the DEFLATE stream in `buf[start..]`, which must end with its final block, so that
/// it ends with a sync flush whose `00 00 ff ff` is left out. On error `buf` is unchanged.
///
/// # Errors
///
/// [`Malformed`] when `buf[start..]` is not exactly one valid DEFLATE stream.
pub(crate) fn end_with_sync_flush(buf: &mut Vec<u8>, start: usize) -> Result<(), Malformed> {
    let stream = buf.get(start..).ok_or(Malformed)?;
    let Ends { final_header, end } = walk(stream)?;
    // The stream must end in the byte that holds its last bit: nothing trails it.
    if end.div_ceil(8) != stream.len() {
        return Err(Malformed);
    }
    let at = |bit: usize| start + bit / 8;
    let header = buf.get_mut(at(final_header)).ok_or(Malformed)?;
    *header &= !(1u8 << (final_header % 8));
    let used = end % 8;
    if used == 0 || 8 - used < 3 {
        // Too few padding bits for the stored block's header: it goes in a byte of its own.
        if used != 0 {
            let last = buf.get_mut(at(end - 1)).ok_or(Malformed)?;
            *last &= (1u8 << used) - 1;
        }
        buf.push(0x00);
    } else {
        // The padding becomes the header (and the rest of the byte, skipped by the alignment).
        let last = buf.get_mut(at(end - 1)).ok_or(Malformed)?;
        *last &= (1u8 << used) - 1;
    }
    Ok(())
}

/// Bit positions found by [`walk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ends {
    /// The final block's `BFINAL` bit.
    final_header: usize,
    /// One past the last bit of the final block.
    end: usize,
}

/// Bits in the primary decode tables; longer codes are decoded bit by bit.
const LITLEN_TABLE: usize = 1 << 10;
const DIST_TABLE: usize = 1 << 8;
const PRECODE_TABLE: usize = 1 << 7;
const MAX_CODE_BITS: usize = 15;

/// Extra bits of the length symbols 257..=285.
const LENGTH_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
/// Extra bits of the distance symbols 0..=29.
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// The order in which code length code lengths are sent (RFC 1951 §3.2.7).
const PRECODE_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Finds the final block of `stream`: at once when it is the only block and its end can be
/// told from the last byte ([`single_block`]), else by walking every block ([`walk_blocks`]).
fn walk(stream: &[u8]) -> Result<Ends, Malformed> {
    match single_block(stream) {
        Some(ends) => Ok(ends),
        None => walk_blocks(stream),
    }
}

/// The ends of a stream that is one final block, without decoding its data: a stored block's
/// end is in its header; a dynamic block ends with its end-of-block code followed by zero
/// padding, so the end is where that code's bits sit at the top of the last byte. When several
/// positions fit and they disagree on whether 3 padding bits remain, `None` (walk instead), as
/// for fixed-code blocks (whose end-of-block code is all zeros) and multi-block streams.
///
/// This trusts the data between header and end to be valid, which holds for the compressor's
/// own output, the only input; a stream this accepts still inflates exactly as before.
fn single_block(stream: &[u8]) -> Option<Ends> {
    let mut bits = Bits::new(stream);
    if bits.take(1).ok()? != 1 {
        return None;
    }
    let end = match bits.take(2).ok()? {
        0 => {
            bits.align();
            let len = bits.take(16).ok()?;
            if len != !bits.take(16).ok()? & 0xffff {
                return None;
            }
            (bits.position() / 8 + len as usize) * 8
        }
        2 => {
            let mut precode = Huffman::<PRECODE_TABLE>::new();
            let mut lengths = [0u8; 288 + 32];
            let (hlit, _) = dynamic_lengths(&mut bits, &mut precode, &mut lengths).ok()?;
            let (code, len) = canonical_code(lengths.get(..hlit)?, 256)?;
            end_of_last_code(stream, code, len)?
        }
        _ => return None,
    };
    (end.div_ceil(8) == stream.len()).then_some(Ends {
        final_header: 0,
        end,
    })
}

/// The code of `symbol` (as written: its first bit is the code's top bit) and its length.
fn canonical_code(lengths: &[u8], symbol: usize) -> Option<(u32, u32)> {
    let len = *lengths.get(symbol)?;
    if len == 0 || usize::from(len) > MAX_CODE_BITS {
        return None;
    }
    let mut count = [0u32; MAX_CODE_BITS + 1];
    for &l in lengths {
        count[usize::from(l).min(MAX_CODE_BITS)] += 1;
    }
    count[0] = 0;
    let mut code = 0u32;
    for c in &count[1..usize::from(len)] {
        code = (code + c) << 1;
    }
    let before = lengths[..symbol].iter().filter(|&&l| l == len).count() as u32;
    Some((code + before, u32::from(len)))
}

/// Where a stream whose last bits are `code` (`len` bits, top bit first) then zero padding
/// ends, if every position that fits agrees on whether 3 padding bits remain.
fn end_of_last_code(stream: &[u8], code: u32, len: u32) -> Option<usize> {
    let total = stream.len() * 8;
    // The code as it appears in the bit stream, first bit lowest.
    let written = u64::from(code.reverse_bits() >> (32 - len));
    // The last 8 bytes (fewer at the start of a short stream), LSB-first as a number.
    let from = stream.len().saturating_sub(8);
    let mut word = 0u64;
    for (i, &b) in stream[from..].iter().enumerate() {
        word |= u64::from(b) << (8 * i);
    }
    let word_bits = (stream.len() - from) * 8;
    let mut decision = None;
    // The end lies in the last byte: after at least one of its bits.
    for pad in 0..8usize {
        let end = word_bits - pad;
        if end < len as usize || pad >= word_bits {
            continue;
        }
        let above = if pad == 0 { 0 } else { word >> end };
        let at = (word >> (end - len as usize)) & ((1u64 << len) - 1);
        if above != 0 || at != written {
            continue;
        }
        let fits = pad >= 3;
        match decision {
            None => decision = Some((fits, total - pad)),
            Some((f, _)) if f != fits => return None,
            Some(_) => {}
        }
    }
    decision.map(|(_, end)| end)
}

/// Reads a dynamic block's code lengths (RFC 1951 §3.2.7) into `lengths`: literal/length codes
/// first, then distance codes. Returns their counts, `(hlit, hlit + hdist)`.
fn dynamic_lengths(
    bits: &mut Bits<'_>,
    precode: &mut Huffman<PRECODE_TABLE>,
    lengths: &mut [u8; 288 + 32],
) -> Result<(usize, usize), Malformed> {
    let hlit = bits.take(5)? as usize + 257;
    let hdist = bits.take(5)? as usize + 1;
    let hclen = bits.take(4)? as usize + 4;
    let mut pre = [0u8; 19];
    for &i in &PRECODE_ORDER[..hclen] {
        pre[i] = bits.take(3)? as u8;
    }
    precode.build(&pre, no_extra)?;
    let total = hlit + hdist;
    let mut i = 0;
    while i < total {
        let sym = precode.decode(bits)?;
        let (value, count) = match sym {
            0..=15 => (sym as u8, 1),
            16 => {
                let prev = i.checked_sub(1).map(|p| lengths[p]).ok_or(Malformed)?;
                (prev, 3 + bits.take(2)? as usize)
            }
            17 => (0, 3 + bits.take(3)? as usize),
            _ => (0, 11 + bits.take(7)? as usize),
        };
        if i + count > total {
            return Err(Malformed);
        }
        lengths.get_mut(i..i + count).ok_or(Malformed)?.fill(value);
        i += count;
    }
    if lengths[256] == 0 {
        return Err(Malformed);
    }
    Ok((hlit, total))
}

/// Walks the blocks of `stream` up to and through the final one.
fn walk_blocks(stream: &[u8]) -> Result<Ends, Malformed> {
    let mut bits = Bits::new(stream);
    let mut litlen = Huffman::<LITLEN_TABLE>::new();
    let mut dist = Huffman::<DIST_TABLE>::new();
    let mut precode = Huffman::<PRECODE_TABLE>::new();
    let mut lengths = [0u8; 288 + 32];
    loop {
        let header = bits.position();
        let bfinal = bits.take(1)? == 1;
        match bits.take(2)? {
            0 => {
                bits.align();
                let len = bits.take(16)?;
                let nlen = bits.take(16)?;
                if len != !nlen & 0xffff {
                    return Err(Malformed);
                }
                bits.skip_bytes(len as usize)?;
            }
            1 => {
                let (litlen, dist) = fixed_codes();
                symbols(&mut bits, litlen, dist)?;
            }
            2 => {
                let (hlit, total) = dynamic_lengths(&mut bits, &mut precode, &mut lengths)?;
                litlen.build(&lengths[..hlit], litlen_extra)?;
                dist.build(&lengths[hlit..total], dist_extra)?;
                symbols(&mut bits, &litlen, &dist)?;
            }
            _ => return Err(Malformed),
        }
        if bits.overrun() {
            return Err(Malformed);
        }
        if bfinal {
            return Ok(Ends {
                final_header: header,
                end: bits.position(),
            });
        }
    }
}

/// The decoders of the fixed Huffman codes (RFC 1951 §3.2.6), built once: small messages are
/// often one fixed-code block, and building the tables would cost more than walking it.
fn fixed_codes() -> &'static (Huffman<LITLEN_TABLE>, Huffman<DIST_TABLE>) {
    static FIXED: OnceLock<(Huffman<LITLEN_TABLE>, Huffman<DIST_TABLE>)> = OnceLock::new();
    FIXED.get_or_init(|| {
        let mut lengths = [0u8; 288 + 32];
        lengths[..144].fill(8);
        lengths[144..256].fill(9);
        lengths[256..280].fill(7);
        lengths[280..288].fill(8);
        lengths[288..].fill(5);
        let mut litlen = Huffman::new();
        let mut dist = Huffman::new();
        // The fixed lengths form complete codes: building cannot fail.
        let built = litlen.build(&lengths[..288], litlen_extra).is_ok()
            && dist.build(&lengths[288..], dist_extra).is_ok();
        debug_assert!(built, "the fixed codes are valid");
        (litlen, dist)
    })
}

/// Decodes one block's symbols up to and including the end-of-block code. Only the number of
/// bits matters, so each table entry consumes a code and its extra bits at once.
fn symbols(
    bits: &mut Bits<'_>,
    litlen: &Huffman<LITLEN_TABLE>,
    dist: &Huffman<DIST_TABLE>,
) -> Result<(), Malformed> {
    loop {
        // A literal/length code with its extra bits (at most 15 + 5 through the table) and a
        // distance code with its extra bits (at most 8 + 13) fit in 48 bits.
        bits.ensure(48)?;
        let sym = match litlen.lookup(bits.buf) {
            0 => {
                let sym = litlen.decode_slow(bits)?;
                bits.take(u32::from(litlen_extra(usize::from(sym))))?;
                sym
            }
            entry => {
                bits.consume(entry & 31);
                (entry >> 5) as u16
            }
        };
        match sym {
            0..=255 => continue,
            256 => return Ok(()),
            257..=285 => {}
            _ => return Err(Malformed),
        }
        let d = match dist.lookup(bits.buf) {
            0 => {
                let d = dist.decode_slow(bits)?;
                let extra = DIST_EXTRA.get(usize::from(d)).ok_or(Malformed)?;
                bits.take(u32::from(*extra))?;
                d
            }
            entry => {
                bits.consume(entry & 31);
                (entry >> 5) as u16
            }
        };
        if d >= 30 {
            return Err(Malformed);
        }
    }
}

/// Extra bits after literal/length symbol `sym` (0 for literals, end of block and the unused
/// 286 and 287).
fn litlen_extra(sym: usize) -> u8 {
    sym.checked_sub(257)
        .and_then(|i| LENGTH_EXTRA.get(i))
        .copied()
        .unwrap_or(0)
}

/// Extra bits after distance symbol `sym` (0 for the unused 30 and 31).
fn dist_extra(sym: usize) -> u8 {
    DIST_EXTRA.get(sym).copied().unwrap_or(0)
}

/// Extra bits a symbol's code is followed by, counted into its table entry.
fn no_extra(_: usize) -> u8 {
    0
}

/// A canonical Huffman decoder: a table for codes of up to log2(`N`) bits, and a bit-by-bit
/// canonical decode (RFC 1951 §3.2.2) for longer ones.
struct Huffman<const N: usize> {
    /// Indexed by the next log2(`N`) input bits: `symbol << 5 | bits`, where `bits` counts the
    /// code and its extra bits; 0 when the code is longer than the table (or unused).
    table: [u32; N],
    /// Number of codes of each length.
    count: [u16; MAX_CODE_BITS + 1],
    /// Symbols ordered by code.
    sorted: [u16; 288],
}

impl<const N: usize> Huffman<N> {
    const BITS: u32 = N.trailing_zeros();

    fn new() -> Self {
        debug_assert!(N.is_power_of_two());
        Huffman {
            table: [0; N],
            count: [0; MAX_CODE_BITS + 1],
            sorted: [0; 288],
        }
    }

    /// Builds the decoder for code `lengths` (0: symbol unused), `extra(symbol)` giving the
    /// extra bits that follow each code. An over-subscribed set is an error; an incomplete one
    /// is allowed (a single distance code is legal), its unused codes fail when met.
    fn build(&mut self, lengths: &[u8], extra: fn(usize) -> u8) -> Result<(), Malformed> {
        self.count = [0; MAX_CODE_BITS + 1];
        for &l in lengths {
            let l = usize::from(l);
            if l > MAX_CODE_BITS {
                return Err(Malformed);
            }
            self.count[l] += 1;
        }
        self.count[0] = 0;
        let mut left: i32 = 1;
        for len in 1..=MAX_CODE_BITS {
            left = (left << 1) - i32::from(self.count[len]);
            if left < 0 {
                return Err(Malformed);
            }
        }
        // Offsets of each length's first symbol in `sorted`, then the canonical codes.
        let mut offset = [0u16; MAX_CODE_BITS + 2];
        for len in 1..=MAX_CODE_BITS {
            offset[len + 1] = offset[len] + self.count[len];
        }
        if usize::from(offset[MAX_CODE_BITS + 1]) > self.sorted.len() {
            return Err(Malformed);
        }
        // The first code of each length (RFC 1951 §3.2.2).
        let mut next_code = [0u32; MAX_CODE_BITS + 1];
        let mut code = 0u32;
        for (next, &count) in next_code.iter_mut().zip(&self.count).skip(1) {
            *next = code;
            code = (code + u32::from(count)) << 1;
        }
        self.table.fill(0);
        for (sym, &l) in lengths.iter().enumerate() {
            if l == 0 {
                continue;
            }
            let len = usize::from(l);
            let slot = &mut offset[len];
            if let Some(s) = self.sorted.get_mut(usize::from(*slot)) {
                *s = sym as u16;
            }
            *slot += 1;
            let code = next_code[len];
            next_code[len] += 1;
            if len as u32 <= Self::BITS {
                let reversed = (code.reverse_bits() >> (32 - len)) as usize;
                let entry = ((sym as u32) << 5) | (u32::from(l) + u32::from(extra(sym)));
                let mut i = reversed;
                while let Some(e) = self.table.get_mut(i) {
                    *e = entry;
                    i += 1 << len;
                }
            }
        }
        Ok(())
    }

    /// The table entry for the next input bits (`buf`, LSB first); 0: decode slowly.
    #[inline]
    fn lookup(&self, buf: u64) -> u32 {
        // The mask keeps the index below N.
        self.table[(buf as usize) & (N - 1)]
    }

    /// Decodes one symbol and its extra bits (for the precode: none).
    fn decode(&self, bits: &mut Bits<'_>) -> Result<u16, Malformed> {
        bits.ensure(MAX_CODE_BITS as u32)?;
        match self.lookup(bits.buf) {
            0 => self.decode_slow(bits),
            entry => {
                bits.consume(entry & 31);
                Ok((entry >> 5) as u16)
            }
        }
    }

    /// Canonical decode, one bit at a time (codes longer than the table).
    fn decode_slow(&self, bits: &mut Bits<'_>) -> Result<u16, Malformed> {
        let mut code: i32 = 0;
        let mut first: i32 = 0;
        let mut index: i32 = 0;
        for len in 1..=MAX_CODE_BITS {
            code |= bits.take(1)? as i32;
            let count = i32::from(self.count[len]);
            if code - count < first {
                let i = usize::try_from(index + (code - first)).map_err(|_| Malformed)?;
                return self.sorted.get(i).copied().ok_or(Malformed);
            }
            index += count;
            first += count;
            first <<= 1;
            code <<= 1;
        }
        Err(Malformed)
    }
}

/// An LSB-first bit reader that yields zeros past the end (see [`Bits::overrun`]).
struct Bits<'a> {
    data: &'a [u8],
    /// The next byte to load into `buf`.
    next: usize,
    buf: u64,
    /// Valid bits in `buf`, including zeros loaded past the end.
    count: u32,
    /// Zero bytes loaded past the end.
    phantom: usize,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits {
            data,
            next: 0,
            buf: 0,
            count: 0,
            phantom: 0,
        }
    }

    /// Bits consumed so far.
    fn position(&self) -> usize {
        (self.next + self.phantom) * 8 - self.count as usize
    }

    /// Whether more bits were consumed than the input has.
    fn overrun(&self) -> bool {
        self.position() > self.data.len() * 8
    }

    #[inline]
    fn refill(&mut self) {
        if let Some(word) = self.data.get(self.next..self.next + 8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(word);
            self.buf |= u64::from_le_bytes(b) << self.count;
            let loaded = (63 - self.count) / 8;
            self.next += loaded as usize;
            self.count += loaded * 8;
            return;
        }
        while self.count <= 56 {
            match self.data.get(self.next) {
                Some(&byte) => {
                    self.buf |= u64::from(byte) << self.count;
                    self.next += 1;
                }
                None => self.phantom += 1,
            }
            self.count += 8;
        }
    }

    /// Makes at least `n` (at most 56) bits available in `buf`; an error once the reader is
    /// well past the end (each decode step consumes input, so a walk cannot loop forever).
    #[inline]
    fn ensure(&mut self, n: u32) -> Result<(), Malformed> {
        if self.count < n {
            self.refill();
            if self.phantom > 8 {
                return Err(Malformed);
            }
        }
        Ok(())
    }

    /// The next `n` (at most 32) bits, not consumed.
    #[inline]
    fn peek(&mut self, n: u32) -> u32 {
        if self.count < n {
            self.refill();
        }
        (self.buf & ((1u64 << n) - 1)) as u32
    }

    #[inline]
    fn consume(&mut self, n: u32) {
        debug_assert!(n <= self.count);
        self.buf >>= n;
        self.count -= n;
    }

    /// Reads `n` (at most 32) bits.
    #[inline]
    fn take(&mut self, n: u32) -> Result<u32, Malformed> {
        let v = self.peek(n);
        self.consume(n);
        if self.phantom > 8 {
            return Err(Malformed);
        }
        Ok(v)
    }

    /// Skips to the next byte boundary.
    fn align(&mut self) {
        let r = self.count % 8;
        self.consume(r);
    }

    /// Skips `n` whole bytes (after [`align`](Self::align)).
    fn skip_bytes(&mut self, n: usize) -> Result<(), Malformed> {
        let pos = self.position() / 8;
        let to = pos.checked_add(n).ok_or(Malformed)?;
        if to > self.data.len() {
            return Err(Malformed);
        }
        self.next = to;
        self.buf = 0;
        self.count = 0;
        self.phantom = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Decompress, FlushDecompress, Status};
    use hex_literal::hex;
    use libdeflater::{CompressionLvl, Compressor};
    use proptest::prelude::*;

    const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

    /// libdeflate's whole-buffer output: a finished stream.
    fn finished(level: i32, input: &[u8]) -> Vec<u8> {
        let mut c = Compressor::new(CompressionLvl::new(level).expect("level"));
        let mut out = vec![0; c.deflate_compress_bound(input.len())];
        let n = c.deflate_compress(input, &mut out).expect("compress");
        out.truncate(n);
        out
    }

    /// Inflates each message plus the tail through ONE raw inflate stream that is never reset,
    /// as browsers do; fails if the stream ends or a message does not come back.
    fn inflate_continuously(messages: &[Vec<u8>], originals: &[Vec<u8>]) {
        let mut d = Decompress::new(false);
        for (i, (m, original)) in messages.iter().zip(originals).enumerate() {
            let mut input = m.clone();
            input.extend_from_slice(&TAIL);
            let mut out = Vec::with_capacity(original.len() + 64);
            let start_in = d.total_in();
            loop {
                let used = (d.total_in() - start_in) as usize;
                if out.capacity() == out.len() {
                    out.reserve(4096);
                }
                let status = d
                    .decompress_vec(&input[used..], &mut out, FlushDecompress::Sync)
                    .unwrap_or_else(|e| panic!("message {i}: {e}"));
                assert_ne!(status, Status::StreamEnd, "message {i} ended the stream");
                let used = (d.total_in() - start_in) as usize;
                if used == input.len() && out.len() < out.capacity() {
                    break;
                }
            }
            assert!(
                out == *original,
                "message {i} ({} bytes) came back different",
                original.len()
            );
        }
    }

    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed | 1;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    const TICK: &[u8] = br#"{"s":"AAPL","p":101.25,"q":7}"#;

    /// Blocks of noise, runs, short repeats and text: every block type libdeflate chooses.
    fn mixed(len: usize, seed: u64) -> Vec<u8> {
        let mut next = rng(seed);
        let mut v = Vec::with_capacity(len);
        while v.len() < len {
            let kind = next() % 4;
            let n = (next() % 5000) as usize + 1;
            for k in 0..n {
                v.push(match kind {
                    0 => next() as u8,
                    1 => b'a',
                    2 => b"0123456789abcdef"[k % 16],
                    _ => TICK[k % TICK.len()] ^ u8::from(next() % 7 == 0),
                });
            }
        }
        v.truncate(len);
        v
    }

    #[test]
    fn rfc_hello_becomes_the_sync_flushed_form() {
        // RFC 7692 §7.2.3.4 (BFINAL = 1) → §7.2.3.1 (sync flush, tail removed).
        let mut buf = hex!("f348cdc9c90700").to_vec();
        end_with_sync_flush(&mut buf, 0).expect("valid");
        assert_eq!(buf, hex!("f248cdc9c90700"));
    }

    #[test]
    fn keeps_bytes_before_start() {
        let mut buf = b"head".to_vec();
        buf.extend_from_slice(&hex!("f348cdc9c90700"));
        end_with_sync_flush(&mut buf, 4).expect("valid");
        assert_eq!(buf, [&b"head"[..], &hex!("f248cdc9c90700")].concat());
    }

    #[test]
    fn every_level_and_block_type_inflates_in_one_stream() {
        for level in 0..=12 {
            let originals: Vec<Vec<u8>> = [0usize, 1, 100, 4096, 65_535, 70_000, 300_000]
                .iter()
                .enumerate()
                .map(|(i, &n)| mixed(n, i as u64 + 1))
                .collect();
            let messages: Vec<Vec<u8>> = originals
                .iter()
                .map(|m| {
                    let mut out = finished(level, m);
                    end_with_sync_flush(&mut out, 0).expect("libdeflate output is valid");
                    out
                })
                .collect();
            inflate_continuously(&messages, &originals);
        }
    }

    #[test]
    fn both_padding_cases_occur() {
        // Over many inputs, some streams end with room for the stored header in the padding
        // and some need the extra byte; both must be exercised by the tests above.
        let (mut fits, mut extra) = (0, 0);
        for seed in 1..200u64 {
            let m = mixed(200 + seed as usize * 7, seed);
            let before = finished(6, &m);
            let mut after = before.clone();
            end_with_sync_flush(&mut after, 0).expect("valid");
            if after.len() == before.len() {
                fits += 1;
            } else {
                assert_eq!(after.len(), before.len() + 1);
                extra += 1;
            }
        }
        assert!(fits > 0 && extra > 0, "fits {fits}, extra {extra}");
    }

    #[test]
    fn the_single_block_shortcut_agrees_with_the_walk() {
        let mut shortcuts = 0;
        for seed in 1..300u64 {
            for level in [1, 6, 12] {
                let m = mixed(seed as usize * 37 % 9000, seed);
                let stream = finished(level, &m);
                let walked = walk_blocks(&stream).expect("valid");
                if let Some(fast) = single_block(&stream) {
                    shortcuts += 1;
                    assert_eq!(fast.final_header, walked.final_header);
                    let pad = |e: Ends| (stream.len() * 8 - e.end) >= 3;
                    assert_eq!(pad(fast), pad(walked), "seed {seed} level {level}");
                }
            }
        }
        assert!(
            shortcuts > 500,
            "the shortcut is taken for most small messages: {shortcuts}"
        );
    }

    #[test]
    fn rejects_what_is_not_one_stream() {
        for bad in [
            &hex!("")[..],
            &hex!("f248cdc9c90700")[..], // not final: the walk runs off the end
            &hex!("07")[..],             // BTYPE 11
            &hex!("0100000000")[..],     // stored, NLEN wrong
            &hex!("f348cdc9c9070000")[..], // a byte after the stream
        ] {
            let mut buf = bad.to_vec();
            assert_eq!(
                end_with_sync_flush(&mut buf, 0),
                Err(Malformed),
                "{bad:02x?}"
            );
            assert_eq!(buf, bad, "unchanged on error");
        }
    }

    proptest! {
        #[test]
        fn libdeflate_output_inflates_in_one_stream(
            seeds in proptest::collection::vec(any::<u64>(), 1..4),
            len in 0usize..150_000,
            level in 1i32..=12,
        ) {
            let originals: Vec<Vec<u8>> =
                seeds.iter().map(|&s| mixed(len / (1 + (s % 3) as usize), s)).collect();
            let messages: Vec<Vec<u8>> = originals
                .iter()
                .map(|m| {
                    let mut out = finished(level, m);
                    end_with_sync_flush(&mut out, 0).expect("valid");
                    out
                })
                .collect();
            inflate_continuously(&messages, &originals);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut buf = bytes.clone();
            if end_with_sync_flush(&mut buf, 0).is_err() {
                prop_assert_eq!(buf, bytes);
            }
        }
    }
}

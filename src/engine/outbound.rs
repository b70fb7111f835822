//! A connection's unwritten bytes: segments of owned bytes or slices of shared frames, written
//! with vectored writes; and the worker's count of them (for the memory bound's tests).

use std::cell::Cell;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use bytes::Bytes;

/// Most segments handed to one `writev`.
const MAX_IOVECS: usize = 64;

/// One piece of outbound data.
#[derive(Debug)]
pub(crate) enum Segment {
    /// Bytes this connection owns; `.1` is how many are already written.
    Owned(Vec<u8>, usize),
    /// A slice of an immutable frame shared with other connections (broadcast).
    Shared(Bytes),
    /// The place of a frame being compressed on the deflate pool: writing stops here until
    /// [`Outbound::fill`] puts the frame in. `len` is the message's uncompressed size, what it
    /// counts for in [`Outbound::len`] meanwhile.
    Pending { ticket: u64, len: usize },
}

impl Segment {
    fn remaining(&self) -> &[u8] {
        match self {
            Segment::Owned(v, at) => &v[*at..],
            Segment::Shared(b) => b,
            Segment::Pending { .. } => &[],
        }
    }

    fn advance(&mut self, n: usize) {
        match self {
            Segment::Owned(_, at) => *at += n,
            Segment::Shared(b) => {
                let _ = b.split_to(n);
            }
            Segment::Pending { .. } => {
                debug_assert_eq!(n, 0, "nothing is written past a pending frame")
            }
        }
    }
}

/// The queue of a connection's unwritten bytes. Empty (and without heap memory) whenever the
/// socket keeps up, which is the usual case: sends go through the worker's cork buffer and only
/// what the kernel does not take lands here.
#[derive(Debug, Default)]
pub(crate) struct Outbound {
    segs: VecDeque<Segment>,
    len: usize,
    /// Front segments a send in flight reads (io_uring): they are not changed until it
    /// completes ([`Outbound::complete`]).
    frozen: usize,
}

/// A piece of bytes to write in order with others: shared (queued without a copy if the
/// socket does not take it) or borrowed (copied into the queue then).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Part<'a> {
    Shared(&'a Bytes),
    Copy(&'a [u8]),
}

impl Part<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Part::Shared(b) => b,
            Part::Copy(s) => s,
        }
    }
}

/// Owned segments smaller than this are merged into the previous owned segment.
const MERGE_BELOW: usize = 4096;

/// What the queues of one thread (a worker) hold, kept as they change: each worker is one
/// thread, so a thread-local is the worker's own count, and no queue carries a back pointer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Queued {
    /// Unwritten bytes in all queues now.
    pub(crate) bytes: usize,
    /// The most `bytes` ever was.
    pub(crate) peak: usize,
    /// The most one connection's queue ever held.
    pub(crate) conn_peak: usize,
}

thread_local! {
    static QUEUED: Cell<Queued> = const { Cell::new(Queued { bytes: 0, peak: 0, conn_peak: 0 }) };
}

/// This thread's queue counts.
pub(crate) fn queued() -> Queued {
    QUEUED.with(Cell::get)
}

fn note_added(n: usize, queue_len: usize) {
    QUEUED.with(|c| {
        let mut q = c.get();
        q.bytes += n;
        q.peak = q.peak.max(q.bytes);
        q.conn_peak = q.conn_peak.max(queue_len);
        c.set(q);
    });
}

fn note_removed(n: usize) {
    // `try_with`: a queue dropped while the thread exits must not panic.
    let _ = QUEUED.try_with(|c| {
        let mut q = c.get();
        q.bytes = q.bytes.saturating_sub(n);
        c.set(q);
    });
}

impl Outbound {
    /// Unwritten bytes; a frame still being compressed counts with its uncompressed size.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    /// Appends the place of a frame being compressed elsewhere, for a message of `len` bytes:
    /// what is appended later waits behind it.
    pub(crate) fn push_pending(&mut self, ticket: u64, len: usize) {
        self.len += len;
        self.segs.push_back(Segment::Pending { ticket, len });
    }

    /// Puts the compressed `frame` in the place `ticket` holds. Returns the unwritten bytes
    /// queued before that place and the frame's size minus the size the place was counted
    /// with (so that byte offsets taken meanwhile can be corrected), or `None` when no such
    /// place is queued (the frame is then dropped by the caller).
    pub(crate) fn fill(&mut self, ticket: u64, frame: Vec<u8>) -> Option<(usize, i64)> {
        let i = self
            .segs
            .iter()
            .position(|s| matches!(s, Segment::Pending { ticket: t, .. } if *t == ticket))?;
        let before: usize = self
            .segs
            .iter()
            .take(i)
            .map(|s| match s {
                Segment::Pending { len, .. } => *len,
                s => s.remaining().len(),
            })
            .sum();
        let mut change = 0;
        if let Some(Segment::Pending { len, .. }) = self.segs.get(i) {
            change = frame.len() as i64 - *len as i64;
            self.len = self.len - len + frame.len();
        }
        if frame.is_empty() {
            // (a frame is never empty; an empty segment would stall `write_to`)
            self.segs.remove(i);
        } else if let Some(seg) = self.segs.get_mut(i) {
            *seg = Segment::Owned(frame, 0);
        }
        Some((before, change))
    }

    /// Whether the next bytes to write wait for a frame still being compressed.
    pub(crate) fn blocked(&self) -> bool {
        matches!(self.segs.front(), Some(Segment::Pending { .. }))
    }

    /// Appends a copy of `bytes`.
    pub(crate) fn push_copy(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.len += bytes.len();
        note_added(bytes.len(), self.len);
        let growable = self.segs.len() > self.frozen;
        if let Some(Segment::Owned(v, _)) = self.segs.back_mut().filter(|_| growable) {
            if bytes.len() < MERGE_BELOW || v.len() < MERGE_BELOW {
                v.extend_from_slice(bytes);
                return;
            }
        }
        self.segs.push_back(Segment::Owned(bytes.to_vec(), 0));
    }

    /// Appends `bytes`, taking the buffer (no copy) unless it is small enough to merge.
    pub(crate) fn push_owned(&mut self, bytes: Vec<u8>) {
        if bytes.len() < MERGE_BELOW {
            return self.push_copy(&bytes);
        }
        self.len += bytes.len();
        note_added(bytes.len(), self.len);
        self.segs.push_back(Segment::Owned(bytes, 0));
    }

    /// Appends `parts` in order without writing any (shared parts as slices, no copy).
    pub(crate) fn queue_parts(&mut self, parts: &[Part<'_>]) {
        for part in parts {
            match part {
                Part::Shared(b) => self.push_shared((*b).clone()),
                Part::Copy(s) => self.push_copy(s),
            }
        }
    }

    /// Calls `f` with the unwritten bytes of up to `max` front segments (stopping at a frame
    /// still being compressed), for a send; returns how many segments and bytes.
    pub(crate) fn slices(&self, max: usize, mut f: impl FnMut(&[u8])) -> (usize, usize) {
        let (mut count, mut bytes) = (0, 0);
        for seg in self.segs.iter().take(max) {
            if matches!(seg, Segment::Pending { .. }) {
                break;
            }
            let b = seg.remaining();
            f(b);
            count += 1;
            bytes += b.len();
        }
        (count, bytes)
    }

    /// A send of the first `count` segments (from [`Outbound::slices`]) is in flight.
    pub(crate) fn begin_send(&mut self, count: usize) {
        self.frozen = count;
    }

    /// The send in flight completed with `n` bytes written.
    pub(crate) fn complete(&mut self, n: usize) {
        self.frozen = 0;
        self.consume(n);
        if self.segs.is_empty() && self.segs.capacity() > 0 {
            self.segs = VecDeque::new();
        }
    }

    /// Appends a shared slice without copying it.
    pub(crate) fn push_shared(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.len += bytes.len();
        note_added(bytes.len(), self.len);
        self.segs.push_back(Segment::Shared(bytes));
    }

    /// Writes `parts` in order behind what is queued: when the queue is empty, as much as the
    /// writer takes in vectored writes; the rest is queued (shared parts as slices, no copy).
    /// Returns the bytes written.
    ///
    /// # Errors
    ///
    /// Any IO error of the writer but `WouldBlock`; nothing is queued then.
    pub(crate) fn write_parts(
        &mut self,
        w: &mut impl Write,
        parts: &[Part<'_>],
    ) -> io::Result<usize> {
        let (mut idx, mut off, mut total) = (0, 0, 0);
        if self.is_empty() {
            while idx < parts.len() {
                let n = {
                    let mut iov: [IoSlice<'_>; MAX_IOVECS] = [IoSlice::new(&[]); MAX_IOVECS];
                    let mut count = 0;
                    for (i, part) in parts[idx..].iter().take(MAX_IOVECS).enumerate() {
                        let b = part.bytes();
                        iov[count] = IoSlice::new(if i == 0 { &b[off..] } else { b });
                        count += 1;
                    }
                    // One piece (a publish to a subscriber that keeps up): a plain `send`,
                    // cheaper in the kernel than a one-element `writev`.
                    let r = if count == 1 {
                        w.write(&iov[0])
                    } else {
                        w.write_vectored(&iov[..count])
                    };
                    match r {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                };
                total += n;
                let mut n = n;
                while n > 0 && idx < parts.len() {
                    let rem = parts[idx].bytes().len() - off;
                    if n >= rem {
                        n -= rem;
                        idx += 1;
                        off = 0;
                    } else {
                        off += n;
                        n = 0;
                    }
                }
                // Skip empty parts so the loop ends when everything is written.
                while idx < parts.len() && parts[idx].bytes().len() == off {
                    idx += 1;
                    off = 0;
                }
            }
        }
        for (i, part) in parts[idx.min(parts.len())..].iter().enumerate() {
            let skip = if i == 0 { off } else { 0 };
            match part {
                Part::Shared(b) => self.push_shared(b.slice(skip..)),
                Part::Copy(s) => self.push_copy(&s[skip..]),
            }
        }
        Ok(total)
    }

    /// Writes as much as the writer takes, in vectored writes. Returns the bytes written;
    /// stops at `WouldBlock` (not an error) or when empty.
    ///
    /// # Errors
    ///
    /// Any other IO error of the writer.
    pub(crate) fn write_to(&mut self, w: &mut impl Write) -> io::Result<usize> {
        let mut total = 0;
        while self.len > 0 {
            let n = {
                let mut iov: [IoSlice<'_>; MAX_IOVECS] = [IoSlice::new(&[]); MAX_IOVECS];
                let mut count = 0;
                for seg in self.segs.iter().take(MAX_IOVECS) {
                    if matches!(seg, Segment::Pending { .. }) {
                        break;
                    }
                    iov[count] = IoSlice::new(seg.remaining());
                    count += 1;
                }
                if count == 0 {
                    // A frame still being compressed comes first: the rest waits for it.
                    break;
                }
                match w.write_vectored(&iov[..count]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            self.consume(n);
            total += n;
        }
        if self.segs.is_empty() && self.segs.capacity() > 0 {
            // Give the memory back: an idle connection holds no queue.
            self.segs = VecDeque::new();
        }
        Ok(total)
    }

    fn consume(&mut self, mut n: usize) {
        self.len -= n;
        note_removed(n);
        while n > 0 {
            let Some(front) = self.segs.front_mut() else {
                break;
            };
            if matches!(front, Segment::Pending { .. }) {
                break;
            }
            let rem = front.remaining().len();
            if n >= rem {
                n -= rem;
                self.segs.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }

    /// Heap bytes held.
    #[cfg(test)]
    pub(crate) fn heap_size(&self) -> usize {
        self.segs.capacity() * size_of::<Segment>()
            + self
                .segs
                .iter()
                .map(|s| match s {
                    Segment::Owned(v, _) => v.capacity(),
                    Segment::Shared(_) | Segment::Pending { .. } => 0,
                })
                .sum::<usize>()
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        if self.len > 0 {
            note_removed(self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `cap` bytes per call, then would block after `calls` calls.
    struct Trickle {
        got: Vec<u8>,
        cap: usize,
        calls_left: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.calls_left == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls_left -= 1;
            let n = buf.len().min(self.cap);
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.calls_left == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls_left -= 1;
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.cap - n);
                self.got.extend_from_slice(&b[..take]);
                n += take;
                if n == self.cap {
                    break;
                }
            }
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_pending_frame_holds_back_what_follows_until_filled() {
        let mut out = Outbound::default();
        out.push_copy(b"before");
        out.push_pending(7, 1000);
        out.push_copy(b"after");
        out.push_pending(8, 2000);
        out.push_shared(Bytes::from_static(b"last"));
        assert_eq!(out.len(), 6 + 1000 + 5 + 2000 + 4);
        let mut w = Trickle {
            got: Vec::new(),
            cap: 1 << 20,
            calls_left: usize::MAX,
        };
        assert_eq!(out.write_to(&mut w).unwrap(), 6);
        assert!(out.blocked() && !out.is_empty());
        assert_eq!(
            out.write_to(&mut w).unwrap(),
            0,
            "nothing passes the pending frame"
        );
        // The second finishes first: still nothing is written past the first.
        assert!(out.fill(8, b"[frame 8]".to_vec()).is_some());
        assert!(
            out.fill(8, b"twice".to_vec()).is_none(),
            "a ticket is filled once"
        );
        assert!(out.fill(9, b"unknown".to_vec()).is_none());
        assert_eq!(out.write_to(&mut w).unwrap(), 0);
        assert!(out.fill(7, b"[frame 7]".to_vec()).is_some());
        assert_eq!(out.len(), 9 + 5 + 9 + 4);
        out.write_to(&mut w).unwrap();
        assert_eq!(w.got, b"before[frame 7]after[frame 8]last");
        assert!(out.is_empty());
        assert_eq!(out.len(), 0);
    }

    #[test]
    fn partial_writes_keep_order_across_segment_kinds() {
        let mut out = Outbound::default();
        let mut expected: Vec<u8> = Vec::new();
        for i in 0..50u8 {
            let owned = vec![i; 1 + usize::from(i) * 97];
            out.push_copy(&owned);
            expected.extend(&owned);
            let shared = Bytes::from(vec![255 - i; 3 + usize::from(i)]);
            expected.extend(&shared[..]);
            out.push_shared(shared);
        }
        assert_eq!(out.len(), expected.len());
        let mut w = Trickle {
            got: Vec::new(),
            cap: 777,
            calls_left: 5,
        };
        let n = out.write_to(&mut w).unwrap();
        assert_eq!(n, 5 * 777);
        assert_eq!(out.len(), expected.len() - n);
        w.calls_left = usize::MAX;
        out.write_to(&mut w).unwrap();
        assert_eq!(w.got, expected);
        assert!(out.is_empty());
        assert_eq!(out.heap_size(), 0);
    }

    #[test]
    fn the_thread_counts_what_queues_hold() {
        // Each test runs on a thread of its own: the counts start at zero.
        let mut a = Outbound::default();
        let mut b = Outbound::default();
        a.push_copy(&[1; 100]);
        b.push_shared(Bytes::from(vec![2; 300]));
        a.push_copy(&[3; 50]);
        assert_eq!(
            queued(),
            Queued {
                bytes: 450,
                peak: 450,
                conn_peak: 300
            }
        );
        let mut w = Trickle {
            got: Vec::new(),
            cap: 120,
            calls_left: 1,
        };
        a.write_to(&mut w).unwrap();
        assert_eq!(queued().bytes, 330);
        drop(b);
        assert_eq!(queued().bytes, 30);
        assert_eq!(queued().peak, 450);
        drop(a);
        assert_eq!(queued().bytes, 0);
    }

    #[test]
    fn parts_are_written_in_order_and_the_rest_queued_without_copying_shared_ones() {
        for cap in [1, 7, 100, 5000] {
            for calls in [0, 1, 3, 1000] {
                let shared: Vec<Bytes> = (0..5u8).map(|i| Bytes::from(vec![i; 1000])).collect();
                let owned: Vec<Vec<u8>> = (0..5u8).map(|i| vec![100 + i; 333]).collect();
                let mut parts = Vec::new();
                let mut expected = Vec::new();
                for i in 0..5 {
                    parts.push(Part::Copy(&owned[i]));
                    expected.extend_from_slice(&owned[i]);
                    parts.push(Part::Shared(&shared[i]));
                    expected.extend_from_slice(&shared[i]);
                }
                parts.push(Part::Copy(&[]));
                let mut out = Outbound::default();
                let mut w = Trickle {
                    got: Vec::new(),
                    cap,
                    calls_left: calls,
                };
                let n = out.write_parts(&mut w, &parts).unwrap();
                assert_eq!(n, w.got.len());
                assert_eq!(out.len(), expected.len() - n, "cap {cap} calls {calls}");
                // Queued shared parts are slices of the same buffers, not copies.
                let owned_heap = out.heap_size();
                assert!(owned_heap <= 5 * 333 + 64 * size_of::<Segment>() + 4096);
                w.calls_left = usize::MAX;
                out.write_to(&mut w).unwrap();
                assert_eq!(w.got, expected, "cap {cap} calls {calls}");
            }
        }
    }
}

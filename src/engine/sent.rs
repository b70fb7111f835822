//! Send tokens: which tracked messages of a connection have had their last byte written to the
//! kernel, by byte offsets into the connection's output (bytes written so far against the
//! offset at which each tracked message ends), never by walking the queue.
//!
//! A connection that never tracks a send holds none of this: `ConnIo::sent` stays `None`.

use std::collections::VecDeque;

/// The tracked sends of one connection, allocated on its first tracked send.
#[derive(Debug, Default)]
pub(crate) struct Sent {
    /// Bytes of the connection's output written to the kernel since tracking began.
    written: u64,
    /// `(end, token)` of each tracked message not yet reported, in send order: `end` is the
    /// value `written` reaches once its last byte is written.
    pending: VecDeque<(u64, u64)>,
}

impl Sent {
    /// Tracks a message whose last byte is `unwritten` bytes ahead of what is written now
    /// (everything queued and corked before it, plus itself).
    pub(crate) fn track(&mut self, unwritten: usize, token: u64) {
        let end = self.written + unwritten as u64;
        debug_assert!(self.pending.back().map_or(true, |&(last, _)| last <= end));
        self.pending.push_back((end, token));
    }

    /// `n` more bytes of the connection's output went to the kernel.
    pub(crate) fn wrote(&mut self, n: usize) {
        self.written += n as u64;
    }

    /// A frame `before` bytes ahead of what is written was counted with a size `change` bytes
    /// off (a message compressed on the deflate pool, counted uncompressed until it came back):
    /// the messages tracked behind it end `change` bytes later.
    pub(crate) fn shift_after(&mut self, before: usize, change: i64) {
        let place = self.written + before as u64;
        for (end, _) in self.pending.iter_mut() {
            if *end > place {
                *end = end.saturating_add_signed(change);
            }
        }
    }

    /// Whether a tracked message is fully written and not yet reported.
    pub(crate) fn has_due(&self) -> bool {
        self.pending
            .front()
            .is_some_and(|&(end, _)| end <= self.written)
    }

    /// Takes the tokens of the fully written messages, in send order.
    pub(crate) fn take_due(&mut self) -> Vec<u64> {
        let mut due = Vec::new();
        while let Some(&(end, token)) = self.pending.front() {
            if end > self.written {
                break;
            }
            self.pending.pop_front();
            due.push(token);
        }
        due
    }

    /// The tokens not yet reported, in send order.
    pub(crate) fn unsent(&self) -> impl Iterator<Item = u64> + '_ {
        self.pending.iter().map(|&(_, token)| token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_due_when_their_last_byte_is_written() {
        let mut s = Sent::default();
        s.track(10, 1); // bytes 0..10
        s.track(25, 2); // 10..25
        s.track(25, 3); // an empty message right behind: due with the one before
        assert!(!s.has_due());
        s.wrote(9);
        assert!(!s.has_due());
        s.wrote(1);
        assert_eq!(s.take_due(), [1]);
        s.wrote(14);
        assert!(!s.has_due());
        assert_eq!(s.unsent().collect::<Vec<_>>(), [2, 3]);
        s.wrote(100);
        assert_eq!(s.take_due(), [2, 3]);
        // Offsets keep counting: a later send ends after what is written.
        s.track(5, 4);
        assert!(!s.has_due());
        s.wrote(5);
        assert_eq!(s.take_due(), [4]);
        assert_eq!(s.unsent().count(), 0);
    }
}

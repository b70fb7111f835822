//! A hashed timing wheel: O(1) to schedule, O(expired) to advance.
//!
//! Each connection keeps its own deadline (handshake, idle/heartbeat, close) and schedules one
//! entry for it; activity does not touch the wheel (a read only records the time), and when an
//! entry fires the connection recomputes its deadline and schedules again if it moved. Entries
//! whose deadline lies past the wheel's horizon are parked in the last slot and rescheduled when
//! they come up, so any delay works.
//!
//! A slot's storage is released once the slot is drained: under connection churn each slot
//! fills with the entries of one tick's worth of connections, and keeping that capacity in all
//! 4,096 slots once grew memory with every connection for the seven minutes of a wheel turn,
//! then held the peak for good. What the wheel holds is what is scheduled, no more.

/// One scheduled wake-up: a slab key, the slot's generation (so a reused key is not woken for a
/// connection that is gone) and the tick it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) key: usize,
    pub(crate) gen: u32,
    pub(crate) tick: u64,
}

/// The wheel. Time is counted in ticks of a fixed length chosen by the owner.
#[derive(Debug)]
pub(crate) struct TimerWheel {
    slots: Vec<Vec<Entry>>,
    /// The last tick advanced to.
    now: u64,
    /// Scheduled entries (stale ones included).
    len: usize,
    /// Entries the slots have room for, summed (what the wheel holds in memory).
    capacity: usize,
}

impl TimerWheel {
    /// A wheel with `slots` slots (a power of two) starting at tick `now`.
    pub(crate) fn new(slots: usize, now: u64) -> Self {
        debug_assert!(slots.is_power_of_two());
        TimerWheel {
            slots: (0..slots).map(|_| Vec::new()).collect(),
            now,
            len: 0,
            capacity: 0,
        }
    }

    fn slot_of(&self, tick: u64) -> usize {
        (tick as usize) & (self.slots.len() - 1)
    }

    /// Schedules `entry` for its tick (at the earliest the next tick).
    pub(crate) fn schedule(&mut self, entry: Entry) {
        let horizon = self.now + self.slots.len() as u64 - 1;
        let at = entry.tick.clamp(self.now + 1, horizon);
        let slot = self.slot_of(at);
        let bucket = &mut self.slots[slot];
        let before = bucket.capacity();
        bucket.push(entry);
        self.capacity += bucket.capacity() - before;
        self.len += 1;
    }

    /// Advances to tick `now`, appending the entries that are due to `due`. Entries parked for a
    /// later tick are scheduled again, not returned.
    pub(crate) fn advance(&mut self, now: u64, due: &mut Vec<Entry>) {
        // Past one full turn every slot is visited once.
        let steps = now.saturating_sub(self.now).min(self.slots.len() as u64);
        let start = self.now;
        self.now = now.max(self.now);
        let mut parked = Vec::new();
        for t in start + 1..=start + steps {
            let slot = self.slot_of(t);
            // Taken, not drained in place: the slot's storage goes with it (see the module doc).
            let bucket = std::mem::take(&mut self.slots[slot]);
            self.capacity -= bucket.capacity();
            self.len -= bucket.len();
            for e in bucket {
                if e.tick <= now {
                    due.push(e);
                } else {
                    parked.push(e);
                }
            }
        }
        for e in parked {
            self.schedule(e);
        }
    }

    /// Scheduled entries (stale ones included).
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Entries the wheel has room for without allocating: what it holds in memory.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn fires_at_the_tick_and_not_before() {
        let mut w = TimerWheel::new(8, 100);
        w.schedule(Entry {
            key: 1,
            gen: 0,
            tick: 103,
        });
        w.schedule(Entry {
            key: 2,
            gen: 0,
            tick: 100,
        }); // in the past: next tick
        let mut due = Vec::new();
        w.advance(101, &mut due);
        assert_eq!(due.iter().map(|e| e.key).collect::<Vec<_>>(), [2]);
        due.clear();
        w.advance(102, &mut due);
        assert!(due.is_empty());
        w.advance(103, &mut due);
        assert_eq!(due.iter().map(|e| e.key).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn a_drained_slot_keeps_no_storage() {
        let mut w = TimerWheel::new(8, 0);
        for key in 0..1000 {
            w.schedule(Entry {
                key,
                gen: 0,
                tick: 2,
            });
        }
        assert_eq!(w.len(), 1000);
        assert!(w.capacity() >= 1000);
        let mut due = Vec::new();
        w.advance(2, &mut due);
        assert_eq!(due.len(), 1000);
        assert_eq!((w.len(), w.capacity()), (0, 0));
    }

    proptest! {
        /// Whatever the delays (beyond the horizon too) and however time jumps, every entry
        /// fires exactly once, at its tick or at the first advance past it.
        #[test]
        fn every_entry_fires_once_on_time(
            delays in proptest::collection::vec(0u64..200, 1..50),
            jumps in proptest::collection::vec(1u64..40, 1..100),
        ) {
            let mut w = TimerWheel::new(16, 0);
            for (key, d) in delays.iter().enumerate() {
                w.schedule(Entry { key, gen: 0, tick: *d });
            }
            let mut fired = vec![None; delays.len()];
            let mut now = 0;
            let mut due = Vec::new();
            for j in jumps.iter().cycle().take(400) {
                let before = now;
                now += j;
                due.clear();
                w.advance(now, &mut due);
                for e in &due {
                    prop_assert!(fired[e.key].is_none(), "fired twice");
                    let wanted = delays[e.key].max(1);
                    prop_assert!(before < wanted && wanted <= now, "fired at {} for {}", now, wanted);
                    fired[e.key] = Some(now);
                }
                if now > 250 { break; }
            }
            prop_assert!(fired.iter().all(Option::is_some));
            prop_assert_eq!(w.len(), 0);
            prop_assert_eq!(w.slots.iter().map(Vec::len).sum::<usize>(), 0);
            prop_assert_eq!(w.capacity(), 0, "drained slots keep no storage");
        }
    }
}

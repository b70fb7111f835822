//! A fixed-rate schedule over a worker's connections: event `k` of the connection with tag `j`
//! (of `C`) is due at `load_start + (k·C + j) · period / C`, so the events of all connections
//! are spread evenly in time. Each worker visits its own connections in that order with a
//! cursor; the cost is one step per event, whatever the number of connections.

use wsx::ConnId;

/// One event the schedule reached.
#[derive(Debug, Clone, Copy)]
pub struct Due {
    /// The connection.
    pub id: ConnId,
    /// Its event number (`k`).
    pub round: u64,
    /// When it was due, ns.
    pub at: u64,
}

/// The cursor over one worker's connections.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Nanoseconds between consecutive events over all connections.
    step_ns: f64,
    connections: u64,
    round: u64,
    index: usize,
}

impl Schedule {
    /// `rate` events per second in total over `connections` connections.
    pub fn new(rate: f64, connections: usize) -> Self {
        Schedule {
            step_ns: 1e9 / rate,
            connections: connections as u64,
            round: 0,
            index: 0,
        }
    }

    /// When event `k` of connection `tag` is due, ns after `load_start`.
    pub fn due(&self, load_start: u64, k: u64, tag: u64) -> u64 {
        let slot = k as f64 * self.connections as f64 + tag as f64;
        load_start + (slot * self.step_ns) as u64
    }

    /// Pushes onto `out` every event due by `now` (and before `end`) since
    /// the last call, in order, at most `limit` of them; `conns` is the worker's
    /// (tag, id) list sorted by tag.
    pub fn advance(
        &mut self,
        conns: &[(u64, ConnId)],
        load_start: u64,
        now: u64,
        end: u64,
        limit: usize,
        out: &mut Vec<Due>,
    ) {
        let n = conns.len();
        if n == 0 {
            return;
        }
        if self.index >= n {
            // Connections left since the last call.
            self.index = 0;
            self.round += 1;
        }
        for _ in 0..limit {
            let (tag, id) = conns[self.index];
            let due = self.due(load_start, self.round, tag);
            if due > now || due >= end {
                return;
            }
            out.push(Due {
                id,
                round: self.round,
                at: due,
            });
            self.index += 1;
            if self.index == n {
                self.index = 0;
                self.round += 1;
            }
        }
    }
}

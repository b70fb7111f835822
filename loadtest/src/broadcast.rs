//! `broadcast`: every connection is a subscriber; connection 0 also publishes
//! `PREFIX<payload>` on a fixed schedule, and the server is to send the payload to every
//! connection, the publisher included (the rule of ../shared/bench's peers and of
//! `wsx serve --broadcast B`).
//!
//! A payload is `size` bytes: 16 hex digits of the publish's number, 16 of the time it was due
//! (ns on the run's clock), then the pattern. Each delivery is checked (length, pattern, order
//! per subscriber) and timed from the publish's due time; each worker counts deliveries per
//! publish and the last arrival, and the report merges them into *reach*: the time until the
//! last subscriber had a publish, and the deliveries that never came.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use wsx::{CloseInfo, Conn, ConnId, Handler, Message, SendStatus, Tick};

use crate::fleet::{Fleet, Turn};
use crate::payload::{parse_hex, push_hex16, Payloads};
use crate::record::{self, Shared, WorkerResult};
use crate::schedule::{Due, Schedule};

/// Publishes tracked at most (beyond it, deliveries are still checked and timed, not counted
/// per publish).
const MAX_TRACKED: u64 = 50_000_000;

/// How the broadcast handlers work.
#[derive(Debug, Clone)]
pub struct BroadcastPlan {
    /// Payload size (at least 32).
    pub size: usize,
    /// Publishes per second.
    pub rate: f64,
    /// What a publish starts with.
    pub prefix: String,
    /// A delivery later than this is counted as lost.
    pub timeout_ns: u64,
}

/// One subscriber's state.
#[derive(Debug, Default)]
pub struct Subscriber {
    /// The last publish number delivered, plus one (0: none yet).
    next: u64,
}

/// One worker's broadcast handler.
#[derive(Debug)]
pub struct BroadcastWorker {
    /// The connections, results and counters.
    fleet: Fleet,
    plan: Arc<BroadcastPlan>,
    pattern: Payloads,
    /// The publisher's connection, when it is on this worker.
    publisher: Option<ConnId>,
    schedule: Schedule,
    due: Vec<Due>,
    scratch: String,
}

impl BroadcastWorker {
    /// The handler of worker `worker`.
    pub fn new(worker: usize, shared: Arc<Shared>, plan: Arc<BroadcastPlan>) -> Self {
        BroadcastWorker {
            fleet: Fleet::new(worker, shared),
            pattern: Payloads::new(plan.size),
            // One "connection" in the schedule: the publisher.
            schedule: Schedule::new(plan.rate, 1),
            plan,
            publisher: None,
            due: Vec::new(),
            scratch: String::new(),
        }
    }

    fn error(&mut self, kind: &str, detail: impl FnOnce() -> String) {
        self.fleet.error(kind, detail);
    }

    /// Publishes number `seq`, due at `due`, now. The payload carries the actual send time:
    /// nothing holds a publish back but this worker's tick, whose lag is reported apart
    /// (schedule lag); a server that stalls delays the deliveries, which are timed from it.
    fn publish(&mut self, conn: &mut Conn<'_, Subscriber>, seq: u64, due: u64) {
        let now = self.fleet.shared.clock.now();
        record::record(&mut self.fleet.result.schedule_lag, now.saturating_sub(due));
        self.scratch.clear();
        self.scratch.push_str(&self.plan.prefix);
        push_hex16(seq, &mut self.scratch);
        push_hex16(now, &mut self.scratch);
        let template = self.pattern.template();
        self.scratch.push_str(&template[32.min(template.len())..]);
        match conn.send_text(&self.scratch) {
            Ok(SendStatus::Dropped) => self.error("publish: dropped by backpressure", || {
                "a publish was dropped: the server does not read fast enough".to_owned()
            }),
            Ok(_) => {
                if seq < MAX_TRACKED {
                    let p = &mut self.fleet.result.published_at;
                    if p.len() <= seq as usize {
                        p.resize(seq as usize + 1, 0);
                    }
                    p[seq as usize] = now;
                }
                let c = &mut self.fleet.result.counters;
                c.sent += 1;
                c.bytes_sent += self.scratch.len() as u64;
                let (_, start, end) = self.fleet.shared.timeline().unwrap_or((0, 0, 0));
                if due >= start && due < end {
                    c.sent_measured += 1;
                }
                self.fleet.live.sent += 1;
                self.fleet.live.in_flight += self.fleet.shared.open.load(Ordering::Acquire) as i64;
            }
            Err(e) => self.error("publish: refused", || format!("publish refused: {e}")),
        }
    }
}

impl Handler for BroadcastWorker {
    type State = Subscriber;

    fn client_state(&mut self, _url: &wsx::client::Url, _tag: u64) -> Option<Subscriber> {
        Some(Subscriber::default())
    }

    fn on_open(&mut self, conn: &mut Conn<'_, Subscriber>) {
        self.fleet.opened(conn.tag(), conn.id());
        if conn.tag() == 0 {
            self.publisher = Some(conn.id());
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_, Subscriber>, message: Message<'_>) {
        let now = self.fleet.shared.clock.now();
        let bytes = message.as_bytes();
        let c = &mut self.fleet.result.counters;
        c.received += 1;
        c.bytes_received += bytes.len() as u64;
        self.fleet.live.received += 1;
        self.fleet.live.in_flight -= 1;
        let tag = conn.tag();
        if bytes.len() != self.plan.size {
            let size = self.plan.size;
            return self.error("delivery: wrong length", || {
                format!(
                    "connection {tag}: a delivery of {} bytes, expected {size}",
                    bytes.len()
                )
            });
        }
        let (Some(seq), Some(due)) = (parse_hex(&bytes[..16]), parse_hex(&bytes[16..32])) else {
            return self.error("delivery: wrong content", || {
                format!("connection {tag}: a delivery without a sequence number and time")
            });
        };
        if bytes[32..] != self.pattern.template().as_bytes()[32..] {
            return self.error("delivery: wrong content", || {
                format!("connection {tag}: delivery {seq} has a damaged payload")
            });
        }
        let state = conn.state_mut();
        if seq < state.next {
            return self.error("delivery: out of order", || {
                format!("connection {tag}: delivery {seq} after a later one")
            });
        }
        state.next = seq + 1;
        let latency = now.saturating_sub(due);
        if latency > self.plan.timeout_ns {
            return self.error("delivery: later than --timeout", || {
                format!("connection {tag}: delivery {seq} came after {latency} ns")
            });
        }
        if seq < MAX_TRACKED {
            let d = &mut self.fleet.result.deliveries;
            if d.len() <= seq as usize {
                d.resize(seq as usize + 1, (0, 0));
            }
            let slot = &mut d[seq as usize];
            slot.0 += 1;
            slot.1 = slot.1.max(now);
        }
        let (_, start, end) = self.fleet.shared.timeline().unwrap_or((0, 0, 0));
        if due >= start && due < end {
            record::record(&mut self.fleet.result.latency, latency);
            self.fleet.result.counters.received_measured += 1;
            self.fleet
                .interval
                .record(&self.fleet.shared, start, now, latency);
        }
    }

    fn on_close(&mut self, conn: &mut Conn<'_, Subscriber>, close: &CloseInfo) {
        let id = conn.id();
        if self.publisher == Some(id) {
            self.publisher = None;
        }
        self.fleet.closed(conn.tag(), id, close);
    }

    fn on_connect_error(
        &mut self,
        _url: &wsx::client::Url,
        tag: u64,
        error: &wsx::client::ClientError,
    ) {
        self.fleet.connect_failed(tag, error);
    }

    fn on_tick(&mut self, tick: &mut Tick<'_, Subscriber>) {
        let Some(Turn {
            now,
            load_start,
            end,
            ..
        }) = self.fleet.tick(tick)
        else {
            return;
        };
        let Some(publisher) = self.publisher else {
            return;
        };
        let mut due = std::mem::take(&mut self.due);
        self.schedule
            .advance(&[(0, publisher)], load_start, now, end, 65_536, &mut due);
        for d in &due {
            let _ = tick.with(d.id, |conn| self.publish(conn, d.round, d.at));
        }
        due.clear();
        self.due = due;
        self.fleet.sent();
    }
}

/// Publishes and their deliveries, merged over the workers.
#[derive(Debug, Default, Clone)]
pub struct Reach {
    /// Publishes due in the measured window (and tracked).
    pub publishes: u64,
    /// Deliveries of those publishes.
    pub deliveries: u64,
    /// Deliveries those publishes should have had (publishes × subscribers).
    pub expected: u64,
    /// Time from a publish's send to its last delivery, for publishes every subscriber got.
    pub histogram: Option<hdrhistogram::Histogram<u64>>,
}

/// Merges the workers' per-publish counts: every publish made (a dropped one included: its
/// deliveries are lost) that was due at `load_start + seq / rate` in the measured window
/// `[start, end)` should reach `subscribers` connections.
pub fn reach(
    results: &[WorkerResult],
    subscribers: u64,
    rate: f64,
    (load_start, start, end): (u64, u64, u64),
) -> Reach {
    let schedule = Schedule::new(rate, 1);
    // Publish numbers run from 0 in schedule order; the publisher's `sent` is how far it got.
    let published = results.iter().map(|r| r.counters.sent).sum::<u64>() as usize;
    let mut out = Reach {
        histogram: Some(record::histogram()),
        ..Reach::default()
    };
    for seq in 0..published.min(MAX_TRACKED as usize) {
        let due = schedule.due(load_start, seq as u64, 0);
        if due < start || due >= end {
            continue;
        }
        // The time it was actually sent (the publisher's worker recorded it); a publish that
        // was not sent (refused, dropped) has none and counts from its due time.
        let sent_at = results
            .iter()
            .filter_map(|r| r.published_at.get(seq).copied())
            .find(|&t| t > 0)
            .unwrap_or(due);
        let (mut count, mut last) = (0u64, 0u64);
        for r in results {
            if let Some(&(c, t)) = r.deliveries.get(seq) {
                count += u64::from(c);
                last = last.max(t);
            }
        }
        out.publishes += 1;
        out.deliveries += count;
        out.expected += subscribers;
        if count >= subscribers && subscribers > 0 {
            if let Some(h) = &mut out.histogram {
                record::record(h, last.saturating_sub(sent_at));
            }
        }
    }
    out
}

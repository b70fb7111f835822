//! `echo`: every connection sends numbered messages and checks each reply (length, content,
//! order). Closed loop keeps `-d` messages in flight per connection; `--rate` sends on a fixed
//! schedule over all connections (open loop), and a message's latency runs from the time the
//! schedule meant to send it, so a server that stalls is charged for every message it
//! delayed, not just the one it held (coordinated omission, corrected).
//!
//! The schedule: message `k` of the connection with tag `j` is due at
//! `load_start + (k·C + j) / rate`. Each worker walks its own connections in that order with a
//! cursor on every tick; a connection with `-d` replies outstanding skips its turn and catches
//! up, from the same intended times, as replies come back.

use std::collections::VecDeque;
use std::sync::Arc;

use wsx::{CloseInfo, Conn, Handler, InitialState, Message, SendStatus, Tick};

use crate::fleet::Fleet;
use crate::payload::Payloads;
use crate::record::{self, Shared};
use crate::schedule::{Due, Schedule};

/// How one worker's echo handler sends.
#[derive(Debug, Clone)]
pub struct EchoPlan {
    /// Messages in flight per connection, at most.
    pub in_flight: usize,
    /// Binary messages instead of text.
    pub binary: bool,
    /// Fixed total rate (messages/s), or closed loop.
    pub rate: Option<f64>,
    /// The payloads.
    pub payloads: Payloads,
}

/// One connection's echo state.
#[derive(Debug)]
pub struct EchoConn {
    tag: u64,
    /// The next message number to send.
    next_send: u64,
    /// The next reply expected.
    next_reply: u64,
    /// Messages waiting for their reply: (intended send time, actual send time), ns.
    waiting: VecDeque<(u64, u64)>,
    /// Since when `-d` messages have been waiting (the connection could not send), ns.
    full_since: u64,
}

impl InitialState for EchoConn {}

/// One worker's echo handler.
#[derive(Debug)]
pub struct EchoWorker {
    /// The connections (sorted by tag once load begins), results and counters.
    fleet: Fleet,
    plan: Arc<EchoPlan>,
    started: bool,
    /// Fixed rate: where the schedule has reached.
    schedule: Option<Schedule>,
    due: Vec<Due>,
    scratch: String,
}

impl EchoWorker {
    /// The handler of worker `worker`.
    pub fn new(worker: usize, shared: Arc<Shared>, plan: Arc<EchoPlan>) -> Self {
        EchoWorker {
            schedule: plan.rate.map(|r| Schedule::new(r, shared.connections)),
            fleet: Fleet::new(worker, shared),
            plan,
            started: false,
            due: Vec::new(),
            scratch: String::new(),
        }
    }

    /// Sends message number `state.next_send`, meant for `intended`.
    fn send_one(&mut self, conn: &mut Conn<'_, EchoConn>, intended: u64, now: u64) -> bool {
        let k = conn.state().next_send;
        self.plan.payloads.write(k, &mut self.scratch);
        let status = if self.plan.binary {
            conn.send_binary(self.scratch.as_bytes())
        } else {
            conn.send_text(&self.scratch)
        };
        match status {
            Ok(SendStatus::Dropped) => {
                self.error("send: dropped by backpressure", || {
                    "a send was dropped: the server does not read fast enough".to_owned()
                });
                false
            }
            Ok(_) => {
                let state = conn.state_mut();
                state.next_send += 1;
                state.waiting.push_back((intended, now));
                let c = &mut self.fleet.result.counters;
                c.sent += 1;
                c.bytes_sent += self.scratch.len() as u64;
                let (_, start, end) = self.fleet.shared.timeline().unwrap_or((0, 0, 0));
                if intended >= start && intended < end {
                    c.sent_measured += 1;
                }
                self.fleet.live.sent += 1;
                self.fleet.live.in_flight += 1;
                true
            }
            Err(e) => {
                self.error("send: refused", || format!("send refused: {e}"));
                false
            }
        }
    }

    /// Sends what the connection owes: closed loop, up to `-d` in flight; fixed rate, every
    /// message due by `now` while fewer than `-d` wait.
    ///
    /// At a fixed rate, a message that came due while the connection was full (since
    /// `held_from`: the server had not answered) is charged from its due time: that wait is the
    /// server's (coordinated omission, corrected). One that came due while the connection had
    /// room waited only for this worker's next tick: it is charged from its actual send, and
    /// that lag goes into the schedule-lag histogram, so the tool's own lateness is reported,
    /// not blamed on the server.
    fn top_up(&mut self, conn: &mut Conn<'_, EchoConn>, now: u64, held_from: u64) {
        let Some((load_start, _, end)) = self.fleet.shared.timeline() else {
            return;
        };
        if self.fleet.closing || now < load_start {
            return;
        }
        while conn.state().waiting.len() < self.plan.in_flight {
            let intended = match self.plan.rate {
                None => now,
                Some(_) => {
                    let s = conn.state();
                    match &self.schedule {
                        Some(schedule) => schedule.due(load_start, s.next_send, s.tag),
                        None => now,
                    }
                }
            };
            if intended > now || intended >= end {
                return;
            }
            let held = self.plan.rate.is_some() && intended >= held_from;
            let intended = if self.plan.rate.is_some() && !held {
                record::record(&mut self.fleet.result.schedule_lag, now - intended);
                now
            } else {
                intended
            };
            if !self.send_one(conn, intended, now) {
                return;
            }
            let state = conn.state_mut();
            if state.waiting.len() >= self.plan.in_flight {
                // Full again. Refilled with a message that was held back, the connection has
                // been blocked all along: the episode keeps its start.
                state.full_since = if held { held_from } else { now };
            }
        }
    }

    fn error(&mut self, kind: &str, detail: impl FnOnce() -> String) {
        self.fleet.error(kind, detail);
    }

    /// Fixed rate: visits, in schedule order, every connection with a message due by `now`
    /// (bounded per tick, so that a worker far behind still serves its sockets).
    fn advance_schedule(&mut self, tick: &mut Tick<'_, EchoConn>, now: u64) {
        let (Some((load_start, _, end)), Some(schedule)) =
            (self.fleet.shared.timeline(), self.schedule.as_mut())
        else {
            return;
        };
        let mut due = std::mem::take(&mut self.due);
        schedule.advance(&self.fleet.conns, load_start, now, end, 65_536, &mut due);
        for d in &due {
            let _ = tick.with(d.id, |conn| self.top_up(conn, now, u64::MAX));
        }
        due.clear();
        self.due = due;
    }
}

impl Handler for EchoWorker {
    type State = EchoConn;

    fn client_state(&mut self, _url: &wsx::client::Url, tag: u64) -> Option<EchoConn> {
        Some(EchoConn {
            tag,
            next_send: 0,
            next_reply: 0,
            waiting: VecDeque::with_capacity(self.plan.in_flight.min(1024)),
            full_since: u64::MAX,
        })
    }

    fn on_open(&mut self, conn: &mut Conn<'_, EchoConn>) {
        self.fleet.opened(conn.tag(), conn.id());
        if self.started {
            // Opened late (after load began): joins the load now.
            let now = self.fleet.shared.clock.now();
            self.top_up(conn, now, u64::MAX);
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_, EchoConn>, message: Message<'_>) {
        let now = self.fleet.shared.clock.now();
        let bytes = message.as_bytes();
        let c = &mut self.fleet.result.counters;
        c.received += 1;
        c.bytes_received += bytes.len() as u64;
        self.fleet.live.received += 1;
        let held_from = {
            let s = conn.state();
            if s.waiting.len() >= self.plan.in_flight {
                s.full_since
            } else {
                u64::MAX
            }
        };
        let Some((intended, actual)) = conn.state_mut().waiting.pop_front() else {
            self.error("reply: unexpected message", || {
                format!(
                    "a message arrived with nothing in flight ({} bytes)",
                    bytes.len()
                )
            });
            return;
        };
        self.fleet.live.in_flight -= 1;
        let expect = conn.state().next_reply;
        conn.state_mut().next_reply += 1;
        match self.plan.payloads.check(expect, bytes) {
            Ok(()) => {
                let (_, start, end) = self.fleet.shared.timeline().unwrap_or((0, 0, 0));
                if intended >= start && intended < end {
                    let latency = now.saturating_sub(intended);
                    record::record(&mut self.fleet.result.latency, latency);
                    record::record(
                        &mut self.fleet.result.uncorrected,
                        now.saturating_sub(actual),
                    );
                    self.fleet.result.counters.received_measured += 1;
                    self.fleet
                        .interval
                        .record(&self.fleet.shared, start, now, latency);
                }
            }
            Err(m) => {
                let tag = conn.tag();
                let size = self.plan.payloads.size();
                self.error(m.kind(), || {
                    format!(
                        "connection {tag}: reply {expect} is wrong ({}: {} bytes, expected {size})",
                        m.kind(),
                        bytes.len(),
                    )
                });
            }
        }
        self.top_up(conn, now, held_from);
    }

    fn on_close(&mut self, conn: &mut Conn<'_, EchoConn>, close: &CloseInfo) {
        let waiting = conn.state().waiting.len() as u64;
        self.fleet.result.counters.unanswered += waiting;
        self.fleet.live.in_flight -= waiting as i64;
        if waiting > 0 {
            self.fleet.result.errors.add_n("reply: never came", waiting);
        }
        self.fleet.closed(conn.tag(), conn.id(), close);
    }

    fn on_connect_error(
        &mut self,
        _url: &wsx::client::Url,
        tag: u64,
        error: &wsx::client::ClientError,
    ) {
        self.fleet.connect_failed(tag, error);
    }

    fn on_tick(&mut self, tick: &mut Tick<'_, EchoConn>) {
        let Some(turn) = self.fleet.tick(tick) else {
            return;
        };
        let now = turn.now;
        if !self.started {
            self.started = true;
            self.fleet.conns.sort_unstable();
            if self.plan.rate.is_none() {
                for i in 0..self.fleet.conns.len() {
                    let id = self.fleet.conns[i].1;
                    let _ = tick.with(id, |conn| self.top_up(conn, now, u64::MAX));
                }
            }
        }
        self.advance_schedule(tick, now);
        self.fleet.sent();
    }
}

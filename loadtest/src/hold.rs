//! `connect` and `idle`: open the connections and hold them; `idle --ping` pings each one on a
//! schedule spread over all of them and times the pongs (the payload carries the time the
//! ping was sent).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use wsx::{CloseInfo, Conn, ConnId, Handler, Tick};

use crate::echo::{closed, connect_failed, hand_over, opened};
use crate::payload::{parse_hex, push_hex16};
use crate::record::{self, Interval, Shared, WorkerResult};
use crate::schedule::{Due, Schedule};

/// One worker's handler for `connect` and `idle`.
#[derive(Debug)]
pub struct HoldWorker {
    worker: usize,
    shared: Arc<Shared>,
    result: WorkerResult,
    interval: Interval,
    conns: Vec<(u64, ConnId)>,
    /// Pings: one per connection per period.
    pings: Option<Schedule>,
    started: bool,
    closing: bool,
    due: Vec<Due>,
    scratch: String,
}

impl HoldWorker {
    /// The handler of worker `worker`; `ping`: the period of each connection's pings.
    pub fn new(worker: usize, shared: Arc<Shared>, ping: Option<std::time::Duration>) -> Self {
        let connections = shared.connections;
        HoldWorker {
            worker,
            shared,
            result: WorkerResult::default(),
            interval: Interval::default(),
            conns: Vec::new(),
            pings: ping.map(|p| Schedule::new(connections as f64 / p.as_secs_f64(), connections)),
            started: false,
            closing: false,
            due: Vec::new(),
            scratch: String::new(),
        }
    }
}

impl Handler for HoldWorker {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        opened(&self.shared, &mut self.result, conn.tag());
        self.conns.push((conn.tag(), conn.id()));
    }

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: wsx::Message<'_>) {
        self.result.counters.received += 1;
        self.result.counters.bytes_received += message.as_bytes().len() as u64;
        let tag = conn.tag();
        self.result.errors.add("message: unexpected", || {
            format!("connection {tag}: the server sent a message to an idle connection")
        });
        self.shared.live[self.worker]
            .errors
            .fetch_add(1, Ordering::Relaxed);
    }

    fn on_pong(&mut self, conn: &mut Conn<'_, ()>, payload: &[u8]) {
        let now = self.shared.clock.now();
        self.result.pongs += 1;
        let live = &self.shared.live[self.worker];
        live.received.fetch_add(1, Ordering::Relaxed);
        let Some(due) = (payload.len() == 16).then(|| parse_hex(payload)).flatten() else {
            // Not one of ours (an unsolicited pong is allowed, RFC 6455 §5.5.3).
            return;
        };
        live.in_flight.fetch_sub(1, Ordering::Relaxed);
        let _ = conn;
        let (_, start, end) = self.shared.timeline().unwrap_or((0, 0, 0));
        if due >= start && due < end {
            let latency = now.saturating_sub(due);
            record::record(&mut self.result.latency, latency);
            self.result.counters.received_measured += 1;
            self.interval.record(&self.shared, start, now, latency);
        }
    }

    fn on_close(&mut self, conn: &mut Conn<'_, ()>, close: &CloseInfo) {
        let id = conn.id();
        self.conns.retain(|(_, c)| *c != id);
        closed(
            &self.shared,
            &mut self.result,
            self.worker,
            conn.tag(),
            close,
        );
    }

    fn on_connect_error(
        &mut self,
        _url: &wsx::client::Url,
        tag: u64,
        error: &wsx::client::ClientError,
    ) {
        connect_failed(&self.shared, &mut self.result, self.worker, tag, error);
    }

    fn on_tick(&mut self, tick: &mut Tick<'_, ()>) {
        let now = self.shared.clock.now();
        let Some((load_start, start, end)) = self.shared.timeline() else {
            return;
        };
        if self.shared.closing.load(Ordering::Acquire) {
            if !self.closing {
                self.closing = true;
                for &(_, id) in &self.conns {
                    let _ = tick.with(id, |conn| conn.close(wsx::CloseCode::NORMAL, "done"));
                }
            }
            return;
        }
        if now < load_start {
            return;
        }
        if !self.started {
            self.started = true;
            self.conns.sort_unstable();
        }
        self.interval.rotate(&self.shared, start, now);
        let Some(pings) = self.pings.as_mut() else {
            return;
        };
        let mut due = std::mem::take(&mut self.due);
        pings.advance(&self.conns, load_start, now, end, 65_536, &mut due);
        for d in &due {
            // The ping carries its actual send time; the tick's lag is reported apart.
            let id = d.id;
            let at = self.shared.clock.now();
            record::record(&mut self.result.schedule_lag, at.saturating_sub(d.at));
            self.scratch.clear();
            push_hex16(at, &mut self.scratch);
            let sent = tick.with(id, |conn| conn.ping(self.scratch.as_bytes()).is_ok());
            if sent == Some(true) {
                self.result.counters.sent += 1;
                if at >= start && at < end {
                    self.result.counters.sent_measured += 1;
                }
                let live = &self.shared.live[self.worker];
                live.sent.fetch_add(1, Ordering::Relaxed);
                live.in_flight.fetch_add(1, Ordering::Relaxed);
            }
        }
        due.clear();
        self.due = due;
    }
}

impl Drop for HoldWorker {
    fn drop(&mut self) {
        self.interval.flush(&self.shared);
        hand_over(&self.shared, std::mem::take(&mut self.result));
    }
}

//! `connect` and `idle`: open the connections and hold them; `idle --ping` pings each one on a
//! schedule spread over all of them and times the pongs (the payload carries the time the
//! ping was sent).

use std::sync::Arc;

use wsx::{CloseInfo, Conn, Handler, Tick};

use crate::fleet::{Fleet, Turn};
use crate::payload::{parse_hex, push_hex16};
use crate::record::{self, Shared};
use crate::schedule::{Due, Schedule};

/// One worker's handler for `connect` and `idle`.
#[derive(Debug)]
pub struct HoldWorker {
    /// The connections (sorted by tag once the hold begins), results and counters.
    fleet: Fleet,
    /// Pings: one per connection per period.
    pings: Option<Schedule>,
    started: bool,
    due: Vec<Due>,
    scratch: String,
}

impl HoldWorker {
    /// The handler of worker `worker`; `ping`: the period of each connection's pings.
    pub fn new(worker: usize, shared: Arc<Shared>, ping: Option<std::time::Duration>) -> Self {
        let connections = shared.connections;
        HoldWorker {
            fleet: Fleet::new(worker, shared),
            pings: ping.map(|p| Schedule::new(connections as f64 / p.as_secs_f64(), connections)),
            started: false,
            due: Vec::new(),
            scratch: String::new(),
        }
    }
}

impl Handler for HoldWorker {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        self.fleet.opened(conn.tag(), conn.id());
    }

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: wsx::Message<'_>) {
        self.fleet.result.counters.received += 1;
        self.fleet.result.counters.bytes_received += message.as_bytes().len() as u64;
        let tag = conn.tag();
        self.fleet.error("message: unexpected", || {
            format!("connection {tag}: the server sent a message to an idle connection")
        });
    }

    fn on_pong(&mut self, conn: &mut Conn<'_, ()>, payload: &[u8]) {
        let now = self.fleet.shared.clock.now();
        self.fleet.result.pongs += 1;
        self.fleet.live.received += 1;
        let Some(due) = (payload.len() == 16).then(|| parse_hex(payload)).flatten() else {
            // Not one of ours (an unsolicited pong is allowed, RFC 6455 §5.5.3).
            return;
        };
        self.fleet.live.in_flight -= 1;
        let _ = conn;
        let (_, start, end) = self.fleet.shared.timeline().unwrap_or((0, 0, 0));
        if due >= start && due < end {
            let latency = now.saturating_sub(due);
            record::record(&mut self.fleet.result.latency, latency);
            self.fleet.result.counters.received_measured += 1;
            self.fleet
                .interval
                .record(&self.fleet.shared, start, now, latency);
        }
    }

    fn on_close(&mut self, conn: &mut Conn<'_, ()>, close: &CloseInfo) {
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

    fn on_tick(&mut self, tick: &mut Tick<'_, ()>) {
        let Some(Turn {
            now,
            load_start,
            start,
            end,
        }) = self.fleet.tick(tick)
        else {
            return;
        };
        if !self.started {
            self.started = true;
            self.fleet.conns.sort_unstable();
        }
        let Some(pings) = self.pings.as_mut() else {
            return;
        };
        let mut due = std::mem::take(&mut self.due);
        pings.advance(&self.fleet.conns, load_start, now, end, 65_536, &mut due);
        for d in &due {
            // The ping carries its actual send time; the tick's lag is reported apart.
            let id = d.id;
            let at = self.fleet.shared.clock.now();
            record::record(&mut self.fleet.result.schedule_lag, at.saturating_sub(d.at));
            self.scratch.clear();
            push_hex16(at, &mut self.scratch);
            let sent = tick.with(id, |conn| conn.ping(self.scratch.as_bytes()).is_ok());
            if sent == Some(true) {
                self.fleet.result.counters.sent += 1;
                if at >= start && at < end {
                    self.fleet.result.counters.sent_measured += 1;
                }
                self.fleet.live.sent += 1;
                self.fleet.live.in_flight += 1;
            }
        }
        due.clear();
        self.due = due;
        self.fleet.sent();
    }
}

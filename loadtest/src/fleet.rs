//! What every mode's handler keeps and does the same way: one worker's connections, results
//! and live counters; the bookkeeping of a connection opening, failing and closing; closing
//! them all when the run asks; and handing the results over when the worker ends.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use wsx::{CloseInfo, ConnId, Tick};

use crate::cli::Ending;
use crate::record::{self, Interval, LiveLocal, Shared, WorkerResult};

/// One worker's share of a run.
#[derive(Debug)]
pub struct Fleet {
    /// The worker's index.
    pub worker: usize,
    /// What the run shares.
    pub shared: Arc<Shared>,
    /// What this worker measured.
    pub result: WorkerResult,
    /// Live counters, stored into `shared` on every tick.
    pub live: LiveLocal,
    /// The current second's latencies.
    pub interval: Interval,
    /// The worker's open connections, (tag, id).
    pub conns: Vec<(u64, ConnId)>,
    /// Whether this worker has closed its connections for the end of the run.
    pub closing: bool,
}

impl Fleet {
    /// Worker `worker`'s share.
    pub fn new(worker: usize, shared: Arc<Shared>) -> Self {
        Fleet {
            worker,
            shared,
            result: WorkerResult::default(),
            live: LiveLocal::default(),
            interval: Interval::default(),
            conns: Vec::new(),
            closing: false,
        }
    }

    /// Counts an error of `kind`, with `detail` as a sample while there is room.
    pub fn error(&mut self, kind: &str, detail: impl FnOnce() -> String) {
        self.result.errors.add(kind, detail);
        self.shared.live[self.worker]
            .errors
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A connection opened: its handshake time, the open counts, the worker's list.
    pub fn opened(&mut self, tag: u64, id: ConnId) {
        let shared = &self.shared;
        let now = shared.clock.now();
        let started = shared
            .connect_started
            .get(tag as usize)
            .map_or(now, |t| t.load(Ordering::Acquire));
        record::record(&mut self.result.handshake, now.saturating_sub(started));
        shared.open.fetch_add(1, Ordering::AcqRel);
        shared.opened.fetch_add(1, Ordering::AcqRel);
        shared.last_open.fetch_max(now, Ordering::AcqRel);
        self.conns.push((tag, id));
    }

    /// A connection ended: a close the run did not ask for is an error, named by its code.
    pub fn closed(&mut self, tag: u64, id: ConnId, close: &CloseInfo) {
        self.conns.retain(|(_, c)| *c != id);
        self.shared.open.fetch_sub(1, Ordering::AcqRel);
        if self.shared.closing.load(Ordering::Acquire) {
            return;
        }
        let code = close.code.0;
        let kind = match &close.error {
            Some(_) => format!("closed: protocol error ({code})"),
            None => format!("closed by server ({code})"),
        };
        self.error(&kind, || match &close.error {
            Some(e) => format!("connection {tag}: {e}"),
            None => format!("connection {tag}: closed with {code} {:?}", close.reason),
        });
    }

    /// The end of a tick that sent: stores the live counters again, so that what the tick
    /// sent counts as in flight at once. (The run's drain waits for nothing in flight; stored
    /// only at the start of the tick, the messages of a last tick went unseen, the drain ended
    /// early and `--close reset` cut their replies off.)
    pub fn sent(&self) {
        self.live.store(&self.shared.live[self.worker]);
    }

    /// A connection failed before it opened.
    pub fn connect_failed(&mut self, tag: u64, error: &wsx::client::ClientError) {
        self.shared.failed.fetch_add(1, Ordering::AcqRel);
        let kind = match error {
            wsx::client::ClientError::Io(e) => format!("connect: {}", e.kind()),
            wsx::client::ClientError::Timeout => "connect: timed out".to_owned(),
            wsx::client::ClientError::Handshake(_) => "connect: handshake refused".to_owned(),
            wsx::client::ClientError::Protocol(_) => "connect: protocol error".to_owned(),
            _ => "connect: failed".to_owned(),
        };
        self.error(&kind, || format!("connection {tag}: {error}"));
    }

    /// The start of every tick: stores the live counters; once the run asks, ends every
    /// connection (once) as `--close` says: close 1000, or a TCP reset. Returns the tick's time and the timeline when the handler
    /// has work: not while closing, before the timeline is set or before load begins. The
    /// current second of the latency series is handed over here, so that a quiet worker's
    /// last second is not held back.
    pub fn tick<S>(&mut self, tick: &mut Tick<'_, S>) -> Option<Turn> {
        self.live.store(&self.shared.live[self.worker]);
        if self.shared.closing.load(Ordering::Acquire) {
            if !self.closing {
                self.closing = true;
                let ending = self.shared.ending;
                for &(_, id) in &self.conns {
                    let _ = tick.with(id, |conn| match ending {
                        Ending::Clean => {
                            let _ = conn.close(wsx::CloseCode::NORMAL, "done");
                        }
                        Ending::Reset => conn.reset(),
                    });
                }
            }
            return None;
        }
        let now = self.shared.clock.now();
        let (load_start, start, end) = self.shared.timeline()?;
        if now < load_start {
            return None;
        }
        self.interval.rotate(&self.shared, start, now);
        Some(Turn {
            now,
            load_start,
            start,
            end,
        })
    }
}

/// A tick with work to do: its time and the run's timeline, ns on the run's clock.
#[derive(Debug, Clone, Copy)]
pub struct Turn {
    /// Now.
    pub now: u64,
    /// When load began.
    pub load_start: u64,
    /// When the measured window begins.
    pub start: u64,
    /// When the measured window ends.
    pub end: u64,
}

impl Drop for Fleet {
    /// Hands the worker's results to the main thread as the worker ends.
    fn drop(&mut self) {
        self.live.store(&self.shared.live[self.worker]);
        self.interval.flush(&self.shared);
        let result = std::mem::take(&mut self.result);
        self.shared
            .results
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(result);
    }
}

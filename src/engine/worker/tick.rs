//! The handler's tick: when it is due, how long the loop may wait for it, and the step that
//! writes what `on_tick` sent. The public side is [`Tick`] in `engine/tick.rs`.

use std::time::{Duration, Instant};

use super::{Stage, Worker};
use crate::engine::conn::Conn;
use crate::engine::handler::Handler;
use crate::engine::tick::Tick;
use crate::handler::ConnId;

/// When the next tick is due.
#[derive(Debug)]
pub(super) struct TickClock {
    interval: Duration,
    next: Instant,
}

impl TickClock {
    /// A clock whose first tick is one `interval` from now.
    pub(super) fn new(interval: Duration) -> Self {
        TickClock {
            interval,
            next: Instant::now() + interval,
        }
    }
}

impl<H: Handler> Worker<H> {
    /// The loop's wait, shortened to the time left before the next tick.
    pub(super) fn until_tick(&self, timeout: Duration) -> Duration {
        match &self.tick {
            Some(clock) if !timeout.is_zero() => {
                timeout.min(clock.next.saturating_duration_since(Instant::now()))
            }
            _ => timeout,
        }
    }

    /// Calls `on_tick` if it is due, then writes what it sent. A worker that was late by more
    /// than an interval ticks once and sets the next tick one interval from now: no burst.
    pub(super) fn run_tick(&mut self) {
        let Some(clock) = &mut self.tick else {
            return;
        };
        let now = Instant::now();
        if now < clock.next {
            return;
        }
        clock.next += clock.interval;
        if clock.next <= now {
            clock.next = now + clock.interval;
        }
        let mut touched = std::mem::take(&mut self.tick_touched);
        let mut tick = Tick {
            conns: &mut self.conns,
            ctx: &mut self.ctx,
            touched: &mut touched,
            owner: None,
            worker: usize::from(self.index),
            now,
        };
        self.handler.on_tick(&mut tick);
        let owner = tick.owner;
        // The cork holds the last connection's sends: they go first, as after any callback.
        if let Some((key, _)) = owner {
            self.after_callbacks(key);
        }
        // The others' sends are in their queues already.
        for (key, gen) in touched.drain(..) {
            if self.conns.get(key).is_some_and(|s| s.gen == gen) {
                self.flush_queue(key);
            }
            if self.conns.get(key).is_some_and(|s| s.gen == gen) {
                self.after_callbacks(key);
            }
        }
        self.tick_touched = touched;
    }
}

impl<S> Tick<'_, S> {
    /// Runs `f` on this worker's open connection `id` and returns what it returns; what `f`
    /// sends is corked and written when `on_tick` returns, as sends from any callback are.
    ///
    /// `None` when there is no such connection: it is not open (closed, still in its
    /// handshake, or gone), it belongs to another worker (see [`ConnId::worker`]), or its slot
    /// now holds a later connection.
    pub fn with<R>(&mut self, id: ConnId, f: impl FnOnce(&mut Conn<'_, S>) -> R) -> Option<R> {
        if id.worker() != self.worker {
            return None;
        }
        let key = id.key as usize;
        match self.conns.get(key) {
            Some(slot) if slot.gen == id.gen && matches!(slot.stage, Stage::Open { .. }) => {}
            _ => return None,
        }
        if let Some((prev, gen)) = self.owner.filter(|&(k, _)| k != key) {
            // The cork is one buffer for the worker: the previous connection's sends move to
            // its queue before this one's begin.
            if let Some(slot) = self.conns.get_mut(prev) {
                self.ctx.spill(&mut slot.io.out);
            }
            self.ctx.queued = false;
            self.touched.push((prev, gen));
        }
        self.owner = Some((key, id.gen));
        let slot = self.conns.get_mut(key)?;
        let Stage::Open { proto, user } = &mut slot.stage else {
            return None;
        };
        let (_, tx) = proto.split();
        let mut conn = Conn {
            tx,
            io: &mut slot.io,
            user,
            ctx: self.ctx,
        };
        Some(f(&mut conn))
    }
}

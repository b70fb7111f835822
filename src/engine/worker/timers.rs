//! Timers: one wheel entry per connection for its next deadline (handshake, heartbeat, idle,
//! close), and what happens when it fires.

use super::lifecycle::abnormal;
use super::{ticks, Ending, Slot, Stage, Worker};
use crate::client::ClientError;
use crate::engine::conn::Conn;
use crate::engine::handler::Handler;
use crate::engine::timer::Entry;
use crate::engine::Settings;
use crate::protocol::CloseState;

impl<H: Handler> Worker<H> {
    pub(super) fn schedule(&mut self, key: usize) {
        let Some(slot) = self.conns.get(key) else {
            return;
        };
        let Some(deadline) = deadline_of(&self.settings, slot) else {
            return;
        };
        let deadline = deadline.max(self.now + 1);
        let gen = slot.gen;
        let slot = &mut self.conns[key];
        if slot.io.deadline > self.now && slot.io.deadline <= deadline {
            return; // an earlier entry is pending; it reschedules when it fires
        }
        slot.io.deadline = deadline;
        self.wheel.schedule(Entry {
            key,
            gen,
            tick: deadline,
        });
    }

    pub(super) fn on_timer(&mut self, entry: Entry) {
        let now = self.now;
        let Some(slot) = self.conns.get_mut(entry.key) else {
            return;
        };
        if slot.gen != entry.gen || slot.io.deadline != entry.tick {
            return; // stale
        }
        slot.io.deadline = 0;
        let due = deadline_of(&self.settings, slot).is_some_and(|d| d <= now);
        if due {
            let key = entry.key;
            match &mut slot.stage {
                Stage::Handshake(_) | Stage::Draining { .. } => return self.remove(key),
                Stage::Connecting { .. } => return self.fail_connect(key, ClientError::Timeout),
                Stage::Open { proto, user } => {
                    if proto.close_state() != CloseState::Open {
                        return self.end(key, abnormal("close timeout"), Ending::Drop);
                    }
                    if self.settings.auto_ping && !slot.io.ping_sent {
                        slot.io.ping_sent = true;
                        let (_, tx) = proto.split();
                        let mut conn = Conn {
                            tx,
                            io: &mut slot.io,
                            user,
                            ctx: &mut self.ctx,
                        };
                        let _ = conn.ping(b"");
                        return self.after_callbacks(key);
                    }
                    return self.end(key, abnormal("idle timeout"), Ending::Drop);
                }
            }
        }
        self.schedule(entry.key);
    }
}

/// The tick the connection next needs attention, if any.
fn deadline_of<S>(s: &Settings, slot: &Slot<S>) -> Option<u64> {
    match &slot.stage {
        Stage::Handshake(_) => Some(slot.io.since + ticks(s.handshake_timeout)),
        Stage::Connecting { timeout, .. } => Some(slot.io.since + timeout),
        Stage::Open { proto, .. } => match proto.close_state() {
            CloseState::Open => s.idle_timeout_for(slot.io.route).map(|idle| {
                let idle = ticks(idle);
                if s.auto_ping && !slot.io.ping_sent {
                    slot.io.last_read + (idle / 2).max(1)
                } else {
                    slot.io.last_read + idle
                }
            }),
            _ => Some(slot.io.since + ticks(s.close_timeout)),
        },
        Stage::Draining { .. } => Some(slot.io.since + ticks(s.close_timeout)),
    }
}

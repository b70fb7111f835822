//! The deflate pool: a fixed set of threads, shared by a server's workers, that compress large
//! messages so that a worker never stalls its other connections on one (the counterpart of
//! Node ws's `concurrencyLimit`).
//!
//! ```text
//! Conn::send (≥ pool threshold, context-free parameters)
//!   │ WriteHalf::detach_compressed: the frame's place (opcode, mask) is taken now
//!   │ Outbound: a pending segment; later sends queue behind it, write_to stops at it
//!   ▼
//! DeflatePool::try_run ── queue full? ──► compress inline on the worker (never dropped)
//!   │ bounded queue (jobs), N threads
//!   ▼
//! pool thread: DetachedFrame::encode (libdeflate, this thread's compressor)
//!   │ Command::Deflated { id, ticket, frame } through the worker's inbox
//!   ▼
//! worker: fills the pending segment (or discards the frame if the connection is gone), writes
//! ```
//!
//! Only messages that can be compressed alone go to the pool: the connection's parameters must
//! keep no context (`send_no_context_takeover`) and use the full window, since a context-kept
//! stream has to be compressed in order, on the connection's own compressor. Those still
//! compress inline, within [`DeflateOptions::max_compress_size`].
//!
//! # Memory
//!
//! A job holds the message (one copy of a borrowed payload; a [`Bytes`] payload is shared) and,
//! while it runs, the output (at most libdeflate's bound, a little over the input). The queue
//! holds at most `queue` jobs; each pooled message counts in its connection's
//! `buffered_amount` with its uncompressed size until it is written. Each pool thread keeps one
//! libdeflate compressor per level in use (about 660 KiB at levels 2–9).
//!
//! # For other senders
//!
//! [`DeflatePool::submit`] compresses a shared payload once, off the worker, and hands the raw
//! deflate data (without the final `00 00 ff ff`, RFC 7692 §7.2.1) to a callback, on the pool
//! thread: a broadcast can frame it once and queue it to every subscriber whose parameters
//! allow a message compressed alone. [`DeflatePool::try_run`] runs any [`Task`].
//!
//! [`DeflateOptions::max_compress_size`]: crate::protocol::deflate::DeflateOptions::max_compress_size

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use bytes::Bytes;

use crate::protocol::deflate::codec::compress_alone;

/// Work for a pool thread.
pub(crate) trait Task: Send + 'static {
    /// Runs the task on a pool thread.
    fn run(self: Box<Self>);
}

/// Counters of a deflate pool, read with
/// [`ServerHandle::deflate_pool_stats`](crate::ServerHandle::deflate_pool_stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeflatePoolStats {
    /// Pool threads running (0 once the server has shut down and its pool with it).
    pub threads: u64,
    /// Jobs taken by the pool.
    pub jobs: u64,
    /// Messages compressed inline because the pool's queue was full.
    pub queue_full: u64,
    /// Compressed frames discarded because their connection was gone when they were done.
    pub discarded: u64,
}

#[derive(Debug, Default)]
struct Counters {
    threads: AtomicUsize,
    jobs: AtomicU64,
    queue_full: AtomicU64,
    discarded: AtomicU64,
}

struct Queue {
    jobs: VecDeque<Box<dyn Task>>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    capacity: usize,
    counters: Counters,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A task that panicked did so outside the lock; the queue itself is always consistent.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A bounded pool of deflate threads (see the module doc).
pub(crate) struct DeflatePool {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for DeflatePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeflatePool")
            .field("capacity", &self.shared.capacity)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Decrements the running-thread count when a pool thread ends, however it ends.
struct Alive(Arc<Shared>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.counters.threads.fetch_sub(1, Ordering::AcqRel);
    }
}

impl DeflatePool {
    /// Starts `threads` pool threads (at least one) with a queue of at most `queue` jobs (at
    /// least one).
    ///
    /// # Errors
    ///
    /// A thread cannot be created (the threads already started are stopped).
    pub(crate) fn new(threads: usize, queue: usize) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                closed: false,
            }),
            ready: Condvar::new(),
            capacity: queue.max(1),
            counters: Counters::default(),
        });
        let pool = DeflatePool {
            shared,
            threads: Mutex::new(Vec::new()),
        };
        for i in 0..threads.max(1) {
            let shared = pool.shared.clone();
            shared.counters.threads.fetch_add(1, Ordering::AcqRel);
            let alive = Alive(shared.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("wsx-deflate-{i}"))
                .spawn(move || {
                    let _alive = alive;
                    work(&shared);
                });
            match spawned {
                Ok(t) => pool.threads_mut().push(t),
                // The closure (and its `Alive`) was dropped: the count is right again.
                Err(e) => return Err(e),
            }
        }
        Ok(pool)
    }

    fn threads_mut(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.threads.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `task`, or gives it back when the queue is full (or the pool is shut down): the
    /// caller then does the work itself, so that nothing is dropped and a full pool slows its
    /// callers instead of growing.
    pub(crate) fn try_run<T: Task>(&self, task: T) -> Result<(), T> {
        let mut q = self.shared.lock();
        if q.closed || q.jobs.len() >= self.shared.capacity {
            drop(q);
            self.shared
                .counters
                .queue_full
                .fetch_add(1, Ordering::Relaxed);
            return Err(task);
        }
        q.jobs.push_back(Box::new(task));
        drop(q);
        self.shared.counters.jobs.fetch_add(1, Ordering::Relaxed);
        self.shared.ready.notify_one();
        Ok(())
    }

    /// Compresses `payload` alone at `level` on a pool thread
    /// ([`compress_alone`]: raw deflate data without the final `00 00 ff ff`, valid for every
    /// peer that negotiated `send_no_context_takeover` with the full window) and calls `done`
    /// with it there. When the queue is full, gives both back to the caller.
    #[allow(dead_code)] // The API the broadcast fan-out compresses shared frames with.
    pub(crate) fn submit<F>(&self, payload: Bytes, level: u8, done: F) -> Result<(), (Bytes, F)>
    where
        F: FnOnce(Bytes) + Send + 'static,
    {
        self.try_run(Compress {
            payload,
            level,
            done,
        })
        .map_err(|c| (c.payload, c.done))
    }

    /// Counts one frame discarded because its connection was gone.
    pub(crate) fn count_discarded(&self) {
        self.shared
            .counters
            .discarded
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The pool's counters.
    pub(crate) fn stats(&self) -> DeflatePoolStats {
        let c = &self.shared.counters;
        DeflatePoolStats {
            threads: c.threads.load(Ordering::Acquire) as u64,
            jobs: c.jobs.load(Ordering::Relaxed),
            queue_full: c.queue_full.load(Ordering::Relaxed),
            discarded: c.discarded.load(Ordering::Relaxed),
        }
    }

    /// Stops the pool: queued jobs are dropped (their connections are gone with the workers),
    /// running ones finish, and the threads are joined (except the calling thread, should a
    /// task own the last reference). Idempotent.
    pub(crate) fn shutdown(&self) {
        let dropped = {
            let mut q = self.shared.lock();
            q.closed = true;
            std::mem::take(&mut q.jobs)
        };
        self.shared.ready.notify_all();
        drop(dropped);
        let threads = std::mem::take(&mut *self.threads_mut());
        let me = std::thread::current().id();
        for t in threads {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }
}

impl Drop for DeflatePool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A pool thread: takes jobs until the pool is shut down.
fn work(shared: &Shared) {
    loop {
        let job = {
            let mut q = shared.lock();
            loop {
                if q.closed {
                    return;
                }
                if let Some(job) = q.jobs.pop_front() {
                    break job;
                }
                q = shared.ready.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        // A task is engine code and peer bytes never make it panic; should one, the thread
        // lives on for the next job.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run()));
    }
}

/// [`DeflatePool::submit`]'s task.
struct Compress<F> {
    payload: Bytes,
    level: u8,
    done: F,
}

impl<F: FnOnce(Bytes) + Send + 'static> Task for Compress<F> {
    fn run(self: Box<Self>) {
        let mut out = Vec::new();
        compress_alone(self.level, &self.payload, &mut out);
        (self.done)(Bytes::from(out));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A task that waits for a go signal, so that the queue can be filled deterministically.
    struct Gate(mpsc::Receiver<()>, mpsc::Sender<u32>, u32);

    impl Task for Gate {
        fn run(self: Box<Self>) {
            let _ = self.0.recv_timeout(Duration::from_secs(10));
            let _ = self.1.send(self.2);
        }
    }

    #[test]
    fn a_full_queue_gives_the_task_back_and_shutdown_joins_every_thread() {
        let pool = DeflatePool::new(1, 2).unwrap();
        assert_eq!(pool.stats().threads, 1);
        let (done_tx, done_rx) = mpsc::channel();
        let mut gates = Vec::new();
        // One runs (blocked on its gate), two wait in the queue; the fourth finds it full.
        // Until the first is taken by the thread, the queue holds three: retry the third.
        let mut taken = 0;
        for i in 0..3 {
            let (go, wait) = mpsc::channel();
            gates.push(go);
            let mut task = Gate(wait, done_tx.clone(), i);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                match pool.try_run(task) {
                    Ok(()) => break,
                    Err(t) => task = t,
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the thread takes a job"
                );
                std::thread::yield_now();
            }
            taken += 1;
        }
        let (_go, wait) = mpsc::channel();
        let refused = pool.try_run(Gate(wait, done_tx.clone(), 99));
        assert!(refused.is_err(), "the queue holds at most 2");
        for go in &gates {
            go.send(()).unwrap();
        }
        let mut got: Vec<u32> = (0..taken)
            .map(|_| done_rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(got, vec![0, 1, 2]);
        assert!(pool.stats().queue_full >= 1);
        pool.shutdown();
        assert_eq!(pool.stats().threads, 0);
        assert!(pool.try_run(Gate(mpsc::channel().1, done_tx, 7)).is_err());
    }

    #[test]
    fn submit_compresses_alone_and_inflates_back() {
        let pool = DeflatePool::new(2, 8).unwrap();
        let text: Vec<u8> = b"{\"sym\":\"ABC\",\"px\":101.5},".repeat(10_000);
        let (tx, rx) = mpsc::channel();
        pool.submit(Bytes::from(text.clone()), 5, move |b| {
            let _ = tx.send(b);
        })
        .map_err(|_| "queue full")
        .unwrap();
        let compressed = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(compressed.len() < text.len() / 10);
        let params = crate::protocol::deflate::Params {
            send_window_bits: 15,
            recv_window_bits: 15,
            send_no_context_takeover: true,
            recv_no_context_takeover: true,
        };
        let mut state = crate::protocol::deflate::codec::DeflateState::new(
            params,
            &crate::protocol::deflate::DeflateOptions::default(),
        );
        let mut out = Vec::new();
        state.decompress(&compressed, 1 << 20, &mut out).unwrap();
        assert_eq!(out, text);
    }
}

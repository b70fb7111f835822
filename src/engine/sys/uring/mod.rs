//! The io_uring backend: completions instead of readiness.
//!
//! - **accept**: one multishot accept on the worker's listener; each completion is a socket.
//! - **receive**: one multishot receive per connection, into buffers the kernel picks from a
//!   provided-buffer ring shared by the worker's connections (`bufring.rs`): an idle connection
//!   holds no buffer. A paused connection's receive is cancelled and re-armed on resume.
//! - **send**: the worker queues a connection's bytes in its outbound queue and asks for a send;
//!   at the end of the loop turn each such connection gets one vectored send of its queued
//!   segments (shared broadcast frames included, by address: no copy), at most one in flight per
//!   connection. The segments stay in the queue, frozen, until the completion says how much went.
//! - **one `io_uring_enter` per turn** submits every send, re-arm and cancel of the turn and
//!   waits for completions with the turn's timeout (the timer tick) in the same call.
//! - **wake-up**: a read kept armed on the worker's eventfd.
//!
//! Buffer ownership when a connection closes with requests in flight: its requests are
//! cancelled by their `user_data` (which carries the connection's generation, so a late
//! completion is never taken for a newer connection in the same slot), a send's segments are
//! kept in a graveyard until its completion, and a receive buffer named by a late completion is
//! recycled. Dropping the backend cancels everything and waits for the last completions before
//! freeing the buffer ring.
#![allow(unsafe_code)]

mod bufring;

use std::collections::HashMap;
use std::io;
use std::mem::ManuallyDrop;
use std::net::TcpStream;
use std::os::fd::{FromRawFd, RawFd};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use self::bufring::BufRing;
use super::Event;
use crate::engine::outbound::Outbound;

/// Submission queue entries; the completion queue gets four times as many.
const SQ_ENTRIES: u32 = 1024;
/// Receive buffers in the ring, and their size: 1 MiB per worker.
const BUFFERS: u16 = 256;
const BUFFER_SIZE: usize = 4 << 10;
/// `IORING_CQE_F_BUF_MORE`: the kernel goes on filling the completion's buffer.
const CQE_F_BUF_MORE: u32 = 16;
/// Most segments in one send.
const MAX_IOV: usize = 64;
/// iovecs the turn's sends can use before the queue is submitted early.
const IOV_ARENA: usize = 8192;

/// What a request's `user_data` says it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Op {
    Recv = 1,
    Send = 2,
    PollOut = 3,
    Accept = 4,
    Wake = 5,
    Cancel = 6,
}

fn user_data(op: Op, key: usize, gen: u32) -> u64 {
    (op as u64) << 56 | u64::from(gen & 0xFF_FFFF) << 32 | (key as u64 & 0xFFFF_FFFF)
}

fn decode(ud: u64) -> (Option<Op>, usize, u32) {
    let op = match (ud >> 56) as u8 {
        1 => Some(Op::Recv),
        2 => Some(Op::Send),
        3 => Some(Op::PollOut),
        4 => Some(Op::Accept),
        5 => Some(Op::Wake),
        6 => Some(Op::Cancel),
        _ => None,
    };
    (
        op,
        (ud & 0xFFFF_FFFF) as usize,
        ((ud >> 32) & 0xFF_FFFF) as u32,
    )
}

/// The backend's view of one connection slot.
#[derive(Debug, Clone, Copy)]
struct Slot {
    fd: RawFd,
    /// Low 24 bits of the connection's generation, as in its requests' `user_data`.
    gen: u32,
    /// A multishot receive is armed (its last completion has not come).
    recv: bool,
    /// The connection wants to receive (not paused, not closed).
    want_recv: bool,
    /// A connect is being waited for.
    poll: bool,
    /// Bytes of the send in flight (0: none).
    send: usize,
    /// On the turn's send list.
    queued: bool,
}

const FREE: Slot = Slot {
    fd: -1,
    gen: 0,
    recv: false,
    want_recv: false,
    poll: false,
    send: 0,
    queued: false,
};

/// The iovecs and message headers of the turn's sends: they must stay put until the queue is
/// submitted (the kernel copies them then: `IORING_FEAT_SUBMIT_STABLE`).
struct Arena {
    iov: Vec<libc::iovec>,
    msgs: Vec<libc::msghdr>,
}

// SAFETY: the pointers in the arena point into memory owned by the worker that owns the arena;
// they are only used on that worker's thread, between building a send and submitting it.
unsafe impl Send for Arena {}

/// A worker's ring.
pub(crate) struct Uring {
    ring: IoUring,
    /// Freed in `Drop` only once no request can write into it.
    bufs: ManuallyDrop<BufRing>,
    slots: Vec<Slot>,
    /// Connections whose receive must be (re-)armed at the next submission.
    rearm: Vec<usize>,
    /// Connections with bytes to send this turn.
    sends: Vec<usize>,
    /// The segments of sends still in flight whose connection is gone.
    graveyard: HashMap<u64, Outbound>,
    arena: Arena,
    listener: Option<RawFd>,
    accept_armed: bool,
    accept_paused: bool,
    waker: RawFd,
    wake_buf: Box<u64>,
    wake_armed: bool,
    /// Requests whose last completion has not come.
    outstanding: usize,
    /// Completions taken early (by [`Uring::send_now`]), given out by the next wait first.
    early: Vec<Event>,
}

/// Whether this kernel runs what the backend needs (a ring, multishot receive with a buffer
/// ring); `Err` says why not.
pub(crate) fn probe() -> io::Result<()> {
    let ring = IoUring::new(8)?;
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    for (code, name) in [
        (opcode::RecvMulti::CODE, "recv"),
        (opcode::AcceptMulti::CODE, "accept"),
        (opcode::SendMsg::CODE, "sendmsg"),
        (opcode::AsyncCancel::CODE, "async cancel"),
    ] {
        if !probe.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("io_uring lacks {name}"),
            ));
        }
    }
    if !ring.params().is_feature_ext_arg() || !ring.params().is_feature_submit_stable() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "io_uring lacks EXT_ARG or SUBMIT_STABLE (kernel older than 5.11)",
        ));
    }
    // Provided-buffer rings (5.19) and multishot receive (6.0): register one to see.
    BufRing::new(&ring, 0, 1, 64, false).map(drop).map_err(|e| {
        io::Error::new(
            io::ErrorKind::Unsupported,
            format!("io_uring buffer rings unavailable: {e}"),
        )
    })
}

/// Ring set-up flags, tried in this order (`WSX_URING_SETUP=plain` skips the first).
fn build_ring() -> io::Result<IoUring> {
    let plain = std::env::var("WSX_URING_SETUP").is_ok_and(|v| v == "plain");
    if !plain {
        let r = IoUring::builder()
            .setup_cqsize(SQ_ENTRIES * 4)
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_submit_all()
            .build(SQ_ENTRIES);
        if let Ok(ring) = r {
            return Ok(ring);
        }
    }
    IoUring::builder()
        .setup_cqsize(SQ_ENTRIES * 4)
        .setup_submit_all()
        .build(SQ_ENTRIES)
}

impl Uring {
    /// A ring for one worker: its buffer ring, its listener's accept and its waker's read.
    /// `SINGLE_ISSUER` ties the ring to the thread that first submits: the worker's own.
    pub(crate) fn new(listener: Option<RawFd>, waker: RawFd) -> io::Result<Uring> {
        let ring = build_ring()?;
        // Incremental consumption (16 x 64 KiB, `IOU_PBUF_RING_INC`) cost a 64 KiB message a
        // third less, but let a flooding connection starve its neighbours under load
        // (tests/fairness.rs); it stays off until that is understood (docs/decisions.md).
        let bufs = ManuallyDrop::new(BufRing::new(&ring, 1, BUFFERS, BUFFER_SIZE, false)?);
        Ok(Uring {
            ring,
            bufs,
            slots: Vec::new(),
            rearm: Vec::new(),
            sends: Vec::new(),
            graveyard: HashMap::new(),
            arena: Arena {
                iov: Vec::with_capacity(IOV_ARENA),
                msgs: Vec::with_capacity(SQ_ENTRIES as usize),
            },
            listener,
            accept_armed: false,
            accept_paused: false,
            waker,
            wake_buf: Box::new(0),
            wake_armed: false,
            outstanding: 0,
            early: Vec::new(),
        })
    }

    fn slot(&mut self, key: usize) -> &mut Slot {
        if key >= self.slots.len() {
            self.slots.resize(key + 1, FREE);
        }
        &mut self.slots[key]
    }

    /// Queues `sqe`, submitting what is queued first if the queue is full.
    fn push(&mut self, sqe: squeue::Entry) {
        // SAFETY: every entry's buffers outlive its request: receive buffers are the ring's,
        // send segments stay frozen in their queue (or the graveyard) until the completion, the
        // wake-up buffer is boxed for the backend's life, and iovecs/headers stay in the arena
        // until this submission.
        while unsafe { self.ring.submission().push(&sqe) }.is_err() {
            if self.ring.submit().is_err() {
                break;
            }
            self.arena.iov.clear();
            self.arena.msgs.clear();
        }
        self.outstanding += 1;
    }

    /// A new connection: arms its receive (`connecting`: waits for the connect first).
    pub(crate) fn add(&mut self, key: usize, gen: u32, fd: RawFd, connecting: bool) {
        let s = self.slot(key);
        *s = Slot {
            fd,
            gen: gen & 0xFF_FFFF,
            want_recv: !connecting,
            ..FREE
        };
        if connecting {
            self.poll_out(key);
        } else {
            self.rearm.push(key);
        }
    }

    /// Waits for a connecting socket to become writable.
    pub(crate) fn poll_out(&mut self, key: usize) {
        let s = *self.slot(key);
        if s.fd < 0 || s.poll {
            return;
        }
        self.slots[key].poll = true;
        let sqe = opcode::PollAdd::new(types::Fd(s.fd), libc::POLLOUT as u32)
            .build()
            .user_data(user_data(Op::PollOut, key, s.gen));
        self.push(sqe);
    }

    /// The connection is connected: it starts receiving.
    pub(crate) fn connected(&mut self, key: usize) {
        self.resume(key);
    }

    /// Stops receiving for `key` (its queue is full): the armed receive is cancelled.
    pub(crate) fn pause(&mut self, key: usize) {
        let s = *self.slot(key);
        if !s.want_recv {
            return;
        }
        self.slots[key].want_recv = false;
        if s.recv {
            self.cancel(user_data(Op::Recv, key, s.gen));
        }
    }

    /// Receives again for `key`.
    pub(crate) fn resume(&mut self, key: usize) {
        let s = self.slot(key);
        if s.fd < 0 || s.want_recv {
            return;
        }
        s.want_recv = true;
        if !s.recv {
            self.rearm.push(key);
        }
    }

    fn cancel(&mut self, target: u64) {
        let sqe = opcode::AsyncCancel::new(target)
            .build()
            .user_data(user_data(Op::Cancel, 0, 0));
        self.push(sqe);
    }

    /// The connection in `key` is gone: its requests are cancelled, the segments of its send in
    /// flight (taken from `out`) kept until that send completes. The caller closes the socket.
    pub(crate) fn remove(&mut self, key: usize, out: &mut Outbound) {
        let s = *self.slot(key);
        self.slots[key] = FREE;
        if s.fd < 0 {
            return;
        }
        if s.recv {
            self.cancel(user_data(Op::Recv, key, s.gen));
        }
        if s.poll {
            self.cancel(user_data(Op::PollOut, key, s.gen));
        }
        if s.send > 0 {
            let ud = user_data(Op::Send, key, s.gen);
            self.graveyard.insert(ud, std::mem::take(out));
            self.cancel(ud);
        }
    }

    /// Asks for a send of `key`'s queue at the end of the turn (see [`Uring::send`]).
    pub(crate) fn want_send(&mut self, key: usize) {
        let s = self.slot(key);
        if s.fd >= 0 && s.send == 0 && !s.queued {
            s.queued = true;
            self.sends.push(key);
        }
    }

    /// The connections that asked for a send this turn (the list is given back with
    /// [`Uring::sends_done`]).
    pub(crate) fn take_sends(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.sends)
    }

    /// Gives back the (emptied) list from [`Uring::take_sends`].
    pub(crate) fn sends_done(&mut self, mut list: Vec<usize>) {
        list.clear();
        if self.sends.is_empty() {
            self.sends = list;
        }
    }

    /// Queues one send of what `out` holds for `key` (up to a frame still being compressed),
    /// unless one is in flight. The segments sent stay in `out`, frozen, until the completion.
    pub(crate) fn send(&mut self, key: usize, out: &mut Outbound) {
        let s = *self.slot(key);
        self.slots[key].queued = false;
        if s.fd < 0 || s.send > 0 || out.is_empty() {
            return;
        }
        if self.arena.iov.len() + MAX_IOV > self.arena.iov.capacity()
            || self.arena.msgs.len() == self.arena.msgs.capacity()
        {
            // The arena is full: submit what uses it so it can be reused.
            if self.ring.submit().is_ok() {
                self.arena.iov.clear();
                self.arena.msgs.clear();
            } else {
                self.slots[key].queued = true;
                self.sends.push(key);
                return;
            }
        }
        let start = self.arena.iov.len();
        let (count, bytes) = out.slices(MAX_IOV, |b| {
            self.arena.iov.push(libc::iovec {
                iov_base: b.as_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            })
        });
        if bytes == 0 {
            self.arena.iov.truncate(start);
            return;
        }
        out.begin_send(count);
        let ud = user_data(Op::Send, key, s.gen);
        let sqe = if count == 1 {
            let iov = self.arena.iov.pop().expect("one iovec");
            opcode::Send::new(
                types::Fd(s.fd),
                iov.iov_base as *const u8,
                iov.iov_len as u32,
            )
            .flags(libc::MSG_NOSIGNAL)
            .build()
        } else {
            // SAFETY: msghdr is plain data; zeroed is a valid empty header.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = self.arena.iov[start..].as_mut_ptr();
            msg.msg_iovlen = count;
            self.arena.msgs.push(msg);
            let msg = self.arena.msgs.last().expect("just pushed") as *const libc::msghdr;
            opcode::SendMsg::new(types::Fd(s.fd), msg)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build()
        };
        self.slots[key].send = bytes;
        self.push(sqe.user_data(ud));
    }

    /// Sends `key`'s queue now and applies the completion if it came at once (the socket had
    /// room); every completion taken meanwhile waits for the next wait.
    pub(crate) fn send_now(&mut self, key: usize, out: &mut Outbound) {
        self.send(key, out);
        let from = self.submit_early();
        for ev in &mut self.early[from..] {
            if let Event::Sent {
                key: k,
                result,
                accounted,
                ..
            } = ev
            {
                if *k == key && !*accounted {
                    out.complete((*result).max(0) as usize);
                    *accounted = true;
                }
            }
        }
    }

    /// Submits what is queued now and takes the completions already in; they wait for the
    /// next wait. Returns where the new ones start in [`Uring::early_mut`].
    pub(crate) fn submit_early(&mut self) -> usize {
        let from = self.early.len();
        if self.ring.submit().is_ok() {
            self.arena.iov.clear();
            self.arena.msgs.clear();
            let mut early = std::mem::take(&mut self.early);
            self.reap(&mut early);
            self.early = early;
        }
        from
    }

    /// Completions taken early, for the worker to apply the sends among them.
    pub(crate) fn early_mut(&mut self) -> &mut [Event] {
        &mut self.early
    }

    /// Stops accepting (shutdown).
    pub(crate) fn stop_accepting(&mut self) {
        if let Some(_fd) = self.listener.take() {
            if self.accept_armed {
                self.cancel(user_data(Op::Accept, 0, 0));
            }
        }
    }

    /// Accepting failed (out of descriptors): no accept is armed until [`Uring::resume_accepting`].
    pub(crate) fn resume_accepting(&mut self) {
        self.accept_paused = false;
    }

    /// The bytes a [`Event::Received`] names.
    pub(crate) fn buffer(&mut self, bid: u16, offset: u32, len: usize) -> &mut [u8] {
        self.bufs.get(bid, offset, len)
    }

    /// The worker is done with the bytes of a [`Event::Received`]: its buffer goes back to
    /// the kernel if that completion was the buffer's last (`last`).
    pub(crate) fn release(&mut self, bid: u16, last: bool) {
        if last {
            self.bufs.recycle(bid);
        }
    }

    /// Queues what must be armed: receives, the accept, the wake-up read.
    fn arm(&mut self) {
        if let (Some(fd), false, false) = (self.listener, self.accept_armed, self.accept_paused) {
            self.accept_armed = true;
            // Blocking sockets: io_uring waits for room itself; on an `O_NONBLOCK` socket a
            // send to a full buffer would end with `EAGAIN` instead.
            let sqe = opcode::AcceptMulti::new(types::Fd(fd))
                .flags(libc::SOCK_CLOEXEC)
                .build()
                .user_data(user_data(Op::Accept, 0, 0));
            self.push(sqe);
        }
        if !self.wake_armed {
            self.wake_armed = true;
            let buf: *mut u64 = &mut *self.wake_buf;
            let sqe = opcode::Read::new(types::Fd(self.waker), buf.cast(), 8)
                .build()
                .user_data(user_data(Op::Wake, 0, 0));
            self.push(sqe);
        }
        let group = self.bufs.group();
        for key in std::mem::take(&mut self.rearm) {
            let Some(s) = self.slots.get_mut(key) else {
                continue;
            };
            if s.fd < 0 || s.recv || !s.want_recv {
                continue;
            }
            s.recv = true;
            let sqe = opcode::RecvMulti::new(types::Fd(s.fd), group)
                .build()
                .user_data(user_data(Op::Recv, key, s.gen));
            self.push(sqe);
        }
    }

    /// Submits the turn's requests and waits up to `timeout` for completions, which are
    /// appended to `out`.
    pub(crate) fn wait(&mut self, timeout: Duration, out: &mut Vec<Event>) -> io::Result<()> {
        let timeout = if self.early.is_empty() {
            timeout
        } else {
            out.append(&mut self.early);
            Duration::ZERO
        };
        self.arm();
        let ts = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&ts);
        let r = self.ring.submitter().submit_with_args(1, &args);
        self.arena.iov.clear();
        self.arena.msgs.clear();
        match r {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) => {}
            Err(e) => return Err(e),
        }
        self.reap(out);
        Ok(())
    }

    fn reap(&mut self, out: &mut Vec<Event>) {
        let Uring {
            ring,
            bufs,
            slots,
            rearm,
            graveyard,
            accept_armed,
            accept_paused,
            wake_armed,
            outstanding,
            ..
        } = self;
        for cqe in ring.completion() {
            let (op, key, gen) = decode(cqe.user_data());
            let res = cqe.result();
            let more = cqueue::more(cqe.flags());
            if !more {
                *outstanding = outstanding.saturating_sub(1);
            }
            let live = slots.get(key).is_some_and(|s| s.fd >= 0 && s.gen == gen);
            match op {
                Some(Op::Recv) => {
                    let bid = cqueue::buffer_select(cqe.flags());
                    let buf_more = cqe.flags() & CQE_F_BUF_MORE != 0;
                    let place = bid.map(|b| bufs.place(b, res.max(0) as usize, buf_more));
                    if !live {
                        if let (Some(bid), Some((_, true))) = (bid, place) {
                            bufs.recycle(bid);
                        }
                        continue;
                    }
                    let s = &mut slots[key];
                    if !more {
                        s.recv = false;
                    }
                    if res > 0 {
                        match (bid, place) {
                            (Some(buf), Some((offset, last))) => out.push(Event::Received {
                                key,
                                gen,
                                buf,
                                offset,
                                len: res as usize,
                                last,
                            }),
                            _ => out.push(Event::Closed { key, gen }),
                        }
                        if !more && s.want_recv {
                            rearm.push(key);
                        }
                    } else if res == -libc::ENOBUFS {
                        // Every buffer is in use: armed again once some come back.
                        if s.want_recv {
                            rearm.push(key);
                        }
                    } else if res == -libc::ECANCELED {
                        if s.want_recv {
                            rearm.push(key); // resumed before the cancel completed
                        }
                    } else {
                        s.want_recv = false;
                        out.push(Event::Closed { key, gen }); // end of input or an error
                    }
                }
                Some(Op::Send) => {
                    if live && slots[key].send > 0 {
                        let submitted = std::mem::take(&mut slots[key].send);
                        out.push(Event::Sent {
                            key,
                            gen,
                            result: res,
                            submitted,
                            accounted: false,
                        });
                    } else {
                        graveyard.remove(&cqe.user_data());
                    }
                }
                Some(Op::PollOut) => {
                    if live {
                        slots[key].poll = false;
                        out.push(Event::Writable { key, gen });
                    }
                }
                Some(Op::Accept) => {
                    if !more {
                        *accept_armed = false;
                    }
                    if res >= 0 {
                        // SAFETY: the kernel just installed this descriptor for us.
                        out.push(Event::Accepted(unsafe { TcpStream::from_raw_fd(res) }));
                    } else if res != -libc::ECANCELED {
                        *accept_paused = true;
                        out.push(Event::AcceptFailed(io::Error::from_raw_os_error(-res)));
                    }
                }
                Some(Op::Wake) => {
                    *wake_armed = false;
                    out.push(Event::Wake);
                }
                Some(Op::Cancel) | None => {}
            }
        }
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        // End every request that could still write into the buffers, then free them.
        let _ = self.ring.submitter().submit();
        let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(user_data(Op::Cancel, 0, 0));
        // SAFETY: a cancel holds no buffer.
        if unsafe { self.ring.submission().push(&cancel) }.is_ok() {
            self.outstanding += 1;
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut scratch = Vec::new();
        while self.outstanding > 0 && Instant::now() < deadline {
            let ts = types::Timespec::from(Duration::from_millis(50));
            let args = types::SubmitArgs::new().timespec(&ts);
            let _ = self.ring.submitter().submit_with_args(1, &args);
            scratch.clear();
            self.reap(&mut scratch);
        }
        if self.outstanding > 0 {
            // Requests the kernel has not ended: never free memory it may still write into.
            std::mem::forget(std::mem::take(&mut self.graveyard));
            return;
        }
        self.bufs.unregister(&self.ring);
        // SAFETY: unregistered, and no request is left that could use it.
        unsafe { ManuallyDrop::drop(&mut self.bufs) };
    }
}

//! A precise wake-up for the epoll backend: `epoll_wait` counts whole milliseconds (mio rounds
//! a shorter timeout up), so a worker whose handler ticks every millisecond would wake late at
//! every tick. A `timerfd` armed for the exact timeout, watched by the same poller, ends the
//! wait on time. Made only when a wait asks for a fraction of a millisecond (a tick is set);
//! io_uring's wait takes a timeout in nanoseconds and needs none.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// A one-shot monotonic timer on a descriptor that becomes readable when it expires.
#[derive(Debug)]
pub(crate) struct Deadline {
    fd: OwnedFd,
    /// When the armed timer expires; `None` once it fired (or before it was armed).
    armed: Option<Instant>,
}

impl Deadline {
    /// A new non-blocking timerfd, not armed.
    pub(crate) fn new() -> io::Result<Deadline> {
        // SAFETY: timerfd_create takes no pointers; the result is checked before use.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by timerfd_create and is owned by no one else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Deadline { fd, armed: None })
    }

    /// Makes the descriptor readable `timeout` from now, unless it is armed already for a
    /// moment between now and then (the wait ends then anyway; the worker's deadline seldom
    /// moves, so most waits cost no system call here).
    pub(crate) fn arm(&mut self, timeout: Duration) -> io::Result<()> {
        let now = Instant::now();
        let at = now + timeout;
        if self.armed.is_some_and(|armed| armed > now && armed <= at) {
            return Ok(());
        }
        // Zero would disarm the timer: the shortest wait is a nanosecond.
        let timeout = timeout.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: timeout.as_secs() as libc::time_t,
                tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
            },
        };
        // SAFETY: `spec` is a live itimerspec read by the call; no old value is asked for.
        let r =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if r < 0 {
            self.armed = None;
            return Err(io::Error::last_os_error());
        }
        self.armed = Some(at);
        Ok(())
    }

    /// The timer expired (its descriptor was readable): reads the expiry count, so that the
    /// next expiry is a new edge.
    pub(crate) fn fired(&mut self) {
        self.armed = None;
        let mut v: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64 from our own descriptor.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }

    /// The descriptor, for the poller to watch.
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_armed_deadline_becomes_readable_and_a_read_clears_it() {
        let mut d = Deadline::new().expect("timerfd");
        d.arm(Duration::from_micros(200)).expect("arm");
        let mut pfd = libc::pollfd {
            fd: d.raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd, count 1.
        let n = unsafe { libc::poll(&mut pfd, 1, 5_000) };
        assert_eq!(n, 1, "the timer fired within the bound");
        d.fired();
        pfd.revents = 0;
        // SAFETY: as above.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        assert_eq!(n, 0, "read back, the descriptor is quiet until armed again");
    }
}

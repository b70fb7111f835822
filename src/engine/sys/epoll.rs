//! The epoll backend, through mio: readiness events; the worker makes the `read` and `write`
//! calls itself when a socket is ready (the "legacy call" half of each operation).

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::deadline::Deadline;
use super::Event;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
const DEADLINE: Token = Token(usize::MAX - 3);

/// A worker's epoll instance and its event buffer.
pub(crate) struct Epoll {
    poll: Poll,
    events: Events,
    listener: Option<RawFd>,
    /// Ends a wait whose timeout is not a whole number of milliseconds on time (made at the
    /// first such wait; see [`Deadline`]).
    deadline: Option<Deadline>,
    /// The deadline could not be made: waits round up to a millisecond.
    no_deadline: bool,
}

impl Epoll {
    /// A poller watching `waker` and, if given, the worker's listener.
    pub(crate) fn new(listener: Option<RawFd>, waker: RawFd) -> io::Result<Epoll> {
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut SourceFd(&waker), WAKER, Interest::READABLE)?;
        if let Some(fd) = listener {
            poll.registry()
                .register(&mut SourceFd(&fd), LISTENER, Interest::READABLE)?;
        }
        Ok(Epoll {
            poll,
            events: Events::with_capacity(1024),
            listener,
            deadline: None,
            no_deadline: false,
        })
    }

    /// Watches a new connection's socket for both directions (edge-triggered).
    pub(crate) fn add(&mut self, key: usize, fd: RawFd) -> io::Result<()> {
        self.poll.registry().register(
            &mut SourceFd(&fd),
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        )
    }

    /// Stops watching a socket about to be closed.
    pub(crate) fn remove(&mut self, fd: RawFd) {
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
    }

    /// Stops watching the listener (shutdown).
    pub(crate) fn stop_accepting(&mut self) {
        if let Some(fd) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        }
    }

    /// Waits up to `timeout` for readiness and appends what came to `out`.
    ///
    /// A timeout that is not a whole number of milliseconds (the worker waits for its
    /// handler's tick) ends on time through a timerfd; `epoll_wait` alone would round it up.
    pub(crate) fn wait(&mut self, timeout: Duration, out: &mut Vec<Event>) -> io::Result<()> {
        if timeout.subsec_nanos() % 1_000_000 != 0 {
            self.arm_deadline(timeout);
        }
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        for event in self.events.iter() {
            out.push(match event.token() {
                LISTENER => Event::Acceptable,
                WAKER => Event::Wake,
                DEADLINE => {
                    if let Some(d) = &mut self.deadline {
                        d.fired();
                    }
                    continue;
                }
                Token(key) => Event::Ready {
                    key,
                    readable: event.is_readable() || event.is_read_closed() || event.is_error(),
                    writable: event.is_writable(),
                    read_closed: event.is_read_closed(),
                },
            });
        }
        Ok(())
    }

    /// Arms the precise deadline for `timeout` (made on first use); if it cannot be made, the
    /// wait rounds up to a millisecond as `epoll_wait` does.
    fn arm_deadline(&mut self, timeout: Duration) {
        if self.deadline.is_none() && !self.no_deadline {
            let made = Deadline::new().and_then(|d| {
                self.poll.registry().register(
                    &mut SourceFd(&d.raw_fd()),
                    DEADLINE,
                    Interest::READABLE,
                )?;
                Ok(d)
            });
            match made {
                Ok(d) => self.deadline = Some(d),
                Err(_) => self.no_deadline = true,
            }
        }
        if let Some(d) = &mut self.deadline {
            let _ = d.arm(timeout);
        }
    }
}

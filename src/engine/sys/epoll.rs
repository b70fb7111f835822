//! The epoll backend, through mio: readiness events; the worker makes the `read` and `write`
//! calls itself when a socket is ready (the "legacy call" half of each operation).

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::Event;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);

/// A worker's epoll instance and its event buffer.
pub(crate) struct Epoll {
    poll: Poll,
    events: Events,
    listener: Option<RawFd>,
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
    pub(crate) fn wait(&mut self, timeout: Duration, out: &mut Vec<Event>) -> io::Result<()> {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        for event in self.events.iter() {
            out.push(match event.token() {
                LISTENER => Event::Acceptable,
                WAKER => Event::Wake,
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
}

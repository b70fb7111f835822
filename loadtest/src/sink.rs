//! `--url inproc`: a wsx echo server on one worker inside the load generator's process (with
//! the `B<payload>` broadcast rule), so that a run measures the load generator's own ceiling
//! without a second process. Its worker's CPU is not counted as the load generator's (see
//! `driver.rs`), but it runs on the same machine: pin the process with `taskset -c 0,1` and
//! read the generator's figure per core.

use std::time::Duration;

use wsx::{Conn, Handler, Message, Server, ServerHandle};

/// What `--url` says to start the sink.
pub const INPROC: &str = "inproc";

struct Sink;

impl Handler for Sink {
    type State = ();

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        match message {
            Message::Text(t) if t.starts_with('B') => conn.broadcast(Message::Text(&t[1..])),
            m => {
                let _ = conn.send(m);
            }
        }
    }
}

/// The running sink; stopped when dropped.
#[derive(Debug)]
pub struct InProcess(ServerHandle);

impl InProcess {
    /// Starts it on 127.0.0.1, a free port, one worker (not pinned: the machine decides).
    ///
    /// # Errors
    ///
    /// The server cannot start.
    pub fn start() -> std::io::Result<InProcess> {
        Server::builder()
            .host("127.0.0.1")
            .port(0)
            .threads(1)
            .pin_threads(false)
            .max_buffered(64 << 20)
            .start(|_| Sink)
            .map(InProcess)
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("ws://{}/", self.0.local_addr())
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.0.shutdown(Duration::ZERO);
        self.0.wait();
    }
}

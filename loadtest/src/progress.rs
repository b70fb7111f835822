//! The live progress line: once a second, connections, messages/s, p99 of the last second and
//! errors. On a terminal the line rewrites itself; otherwise each second is a plain line.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::record::Shared;

/// The progress thread.
#[derive(Debug)]
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts printing on stderr (nothing when `quiet`).
    pub fn start(shared: Arc<Shared>, quiet: bool) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        if quiet {
            return Progress { stop, thread: None };
        }
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wsx-loadtest-progress".into())
            .spawn(move || run(&shared, &flag))
            .ok();
        Progress { stop, thread }
    }

    /// Stops the line (ending it on a terminal).
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(shared: &Shared, stop: &AtomicBool) {
    let tty = std::io::stderr().is_terminal();
    let mut last = (0u64, 0u64);
    let mut elapsed = 0u64;
    let mut printed = false;
    'outer: loop {
        // Wake often enough to stop promptly, print once a second.
        for _ in 0..20 {
            if stop.load(Ordering::Acquire) {
                break 'outer;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        elapsed += 1;
        let (sent, received, errors, _) = shared.live_totals();
        let rate = received.saturating_sub(last.1);
        last = (sent, received);
        let p99 = {
            let series = shared.series.lock().unwrap_or_else(|e| e.into_inner());
            // The last complete second.
            series
                .iter()
                .rev()
                .find(|h| !h.is_empty())
                .map(|h| h.value_at_quantile(0.99) as f64 / 1000.0)
        };
        let line = format!(
            "[{elapsed:>4}s] conns {}/{}  sent {sent}  recv {received}  {rate} msgs/s  p99 {}  errors {errors}",
            shared.open.load(Ordering::Relaxed),
            shared.connections,
            p99.map_or_else(|| "-".to_owned(), |us| format!("{us:.0}µs")),
        );
        let mut err = std::io::stderr().lock();
        let _ = if tty {
            write!(err, "\r\x1b[2K{line}")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
        printed = true;
    }
    if tty && printed {
        let _ = writeln!(std::io::stderr());
    }
}

//! One time base for a run: nanoseconds since the run began, as `u64`, shared by every thread.

use std::time::{Duration, Instant};

/// The run's time origin.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    t0: Instant,
}

impl Clock {
    /// A clock whose zero is now.
    pub fn start() -> Self {
        Clock { t0: Instant::now() }
    }

    /// Nanoseconds since the origin.
    pub fn now(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }

    /// The instant `ns` nanoseconds after the origin.
    pub fn instant(&self, ns: u64) -> Instant {
        self.t0 + Duration::from_nanos(ns)
    }
}

/// Nanoseconds in `d`, saturating.
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

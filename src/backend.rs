//! Which IO backend the engine's workers run on.
//!
//! Both backends behave the same (every test runs on both); they differ in how they talk to the
//! kernel. `io_uring` submits all of a loop turn's sends and re-arms in one `io_uring_enter` and
//! receives through multishot operations into buffers the kernel picks from a shared ring, so an
//! idle connection holds no buffer. `epoll` (through mio) is readiness-based, one `read` or
//! `write` per operation, and runs everywhere.
//!
//! The default is [`Backend::Auto`]: io_uring when the kernel offers what it needs (multishot
//! accept and receive, provided-buffer rings: Linux 6.0 or later, not disabled by
//! `kernel.io_uring_disabled` or a seccomp filter), epoll otherwise, with one line on standard
//! error saying why. The `WSX_BACKEND` environment variable (`epoll`, `io_uring` or `auto`)
//! overrides the default for every engine of the process that did not choose one with
//! [`Builder::backend`](crate::server::Builder::backend).

use std::fmt;
use std::str::FromStr;

/// An IO backend (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Backend {
    /// io_uring if the kernel supports it, else epoll (the default).
    #[default]
    Auto,
    /// epoll, through mio: readiness and one system call per read or write.
    Epoll,
    /// io_uring: completions, batched submission, multishot accept and receive.
    IoUring,
}

impl Backend {
    /// The backends a forced choice can name, in the order tests run them.
    pub const ALL: [Backend; 2] = [Backend::Epoll, Backend::IoUring];

    /// The name `WSX_BACKEND` and `wsx serve --backend` use: `auto`, `epoll`, `io_uring`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Epoll => "epoll",
            Backend::IoUring => "io_uring",
        }
    }

    /// The backend `WSX_BACKEND` names, or [`Backend::Auto`] when it is unset or empty.
    ///
    /// # Errors
    ///
    /// The variable names no backend.
    pub fn from_env() -> Result<Backend, UnknownBackend> {
        match std::env::var("WSX_BACKEND") {
            Ok(v) if !v.trim().is_empty() => v.parse(),
            _ => Ok(Backend::Auto),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A backend name that is not `auto`, `epoll` or `io_uring`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend {0:?} (expected auto, epoll or io_uring)")]
pub struct UnknownBackend(pub String);

impl FromStr for Backend {
    type Err = UnknownBackend;

    fn from_str(s: &str) -> Result<Backend, UnknownBackend> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Backend::Auto),
            "epoll" => Ok(Backend::Epoll),
            "io_uring" | "io-uring" | "uring" => Ok(Backend::IoUring),
            _ => Err(UnknownBackend(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for b in [Backend::Auto, Backend::Epoll, Backend::IoUring] {
            assert_eq!(b.name().parse::<Backend>(), Ok(b));
        }
        assert_eq!("io-uring".parse::<Backend>(), Ok(Backend::IoUring));
        assert!("kqueue".parse::<Backend>().is_err());
    }
}

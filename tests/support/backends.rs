//! One test body, one run per backend: [`test_all!`] turns a function taking a
//! `backend: wsx::Backend` into two tests, `NAME::epoll` and `NAME::io_uring` (as monoio's
//! `#[test_all]` emits a `legacy_` and a `uring_` twin), so `cargo test -- io_uring` runs one
//! backend's half of a binary and `cargo test -- NAME::` both runs of one test.
//!
//! The body passes its backend to every engine it starts (`Builder::backend`, or
//! `WSX_BACKEND` for a child process) and checks with [`assert_runs_on`] that the engine runs
//! on it: a forced backend never falls back silently, and a test that found it had would
//! only be testing the other one twice.
//!
//! Include it first, before `mod common;`, so that the macro is in scope everywhere:
//!
//! ```ignore
//! #[macro_use]
//! #[path = "support/backends.rs"]
//! mod backends;
//! ```

// Each test file that includes this module uses only part of it.
#![allow(dead_code)]

use wsx::{Backend, ServerHandle};

/// Emits one `#[test]` per forced backend for each named function, as a module of the same
/// name (a function and a module do not clash): `test_all!(echoes);` next to
/// `fn echoes(backend: wsx::Backend) { … }` gives the tests `echoes::epoll` and
/// `echoes::io_uring`. The function keeps its doc comment; the macro line goes above it.
macro_rules! test_all {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[test]
                fn epoll() {
                    super::$name(wsx::Backend::Epoll);
                }

                #[test]
                fn io_uring() {
                    super::$name(wsx::Backend::IoUring);
                }
            }
        )+
    };
}

/// Panics unless `handle`'s engine runs on `backend` (a forced backend either runs or fails to
/// start; it never falls back).
#[track_caller]
pub(crate) fn assert_runs_on(handle: &ServerHandle, backend: Backend) {
    assert_eq!(
        handle.backend(),
        backend,
        "the engine was asked for {backend} and runs on {}",
        handle.backend()
    );
}

/// The backend a child process was asked for through `WSX_BACKEND` (the parent test's own),
/// `None` when the variable is unset or says `auto`.
///
/// # Panics
///
/// When the variable names no backend.
pub(crate) fn from_env() -> Option<Backend> {
    match Backend::from_env().expect("WSX_BACKEND names a backend") {
        Backend::Auto => None,
        b => Some(b),
    }
}

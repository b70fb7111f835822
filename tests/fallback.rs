//! A kernel that refuses io_uring: the automatic choice falls back to epoll with one line on
//! standard error, a forced io_uring fails to start with `Unsupported`, nothing crashes. The
//! refusal is real: a child process of this test installs a seccomp filter that fails
//! `io_uring_setup` with `EPERM` (what a container's default profile does) before it starts
//! any engine.

use std::io;
use std::process::Command;

use wsx::{Backend, Conn, Handler, Message, Server};

const CHILD: &str = "WSX_FALLBACK_CHILD";

struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        let _ = conn.send(message);
    }
}

/// Fails `io_uring_setup` with `EPERM` for this process from now on.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn refuse_io_uring() {
    const IO_URING_SETUP: u32 = 425;
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    // struct seccomp_data: nr at offset 0, arch at offset 4.
    let filter = [
        // Another architecture's calls: allowed (this filter only knows x86-64's numbers).
        bpf_stmt(0x20, 4),                                // ld [arch]
        bpf_jump(0x15, AUDIT_ARCH_X86_64, 1, 0),          // jeq AUDIT_ARCH_X86_64 ? next : allow
        bpf_stmt(0x06, 0x7fff_0000),                      // ret ALLOW
        bpf_stmt(0x20, 0),                                // ld [nr]
        bpf_jump(0x15, IO_URING_SETUP, 0, 1),             // jeq io_uring_setup ? errno : allow
        bpf_stmt(0x06, 0x0005_0000 | libc::EPERM as u32), // ret ERRNO(EPERM)
        bpf_stmt(0x06, 0x7fff_0000),                      // ret ALLOW
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: plain prctl calls; `prog` and `filter` outlive them (the kernel copies the
    // program).
    unsafe {
        assert_eq!(
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
            0,
            "no_new_privs"
        );
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog
            ),
            0,
            "seccomp filter: {}",
            io::Error::last_os_error()
        );
    }
}

fn bpf_stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn bpf_jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Runs in the child, after the filter is in place.
fn refused_kernel_checks() {
    let auto = Server::builder()
        .host("127.0.0.1")
        .port(0)
        .threads(1)
        .start(|_| Echo)
        .expect("the automatic choice starts on epoll");
    assert_eq!(auto.backend(), Backend::Epoll);
    let mut ws = wsx::blocking::connect(&format!("ws://{}/", auto.local_addr())).expect("connect");
    ws.send_text("on epoll").expect("send");
    assert!(matches!(ws.recv(), Ok(wsx::blocking::Message::Text(t)) if t == "on epoll"));
    // A second automatic start says nothing more.
    let again = Server::builder()
        .host("127.0.0.1")
        .port(0)
        .threads(1)
        .start(|_| Echo)
        .expect("starts again");
    assert_eq!(again.backend(), Backend::Epoll);
    let forced = Server::builder()
        .host("127.0.0.1")
        .port(0)
        .threads(1)
        .backend(Backend::IoUring)
        .start(|_| Echo);
    match forced {
        Err(e) => {
            assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}");
            eprintln!("forced: {e}");
        }
        Ok(h) => panic!(
            "io_uring forced on a kernel that refuses it runs on {}",
            h.backend()
        ),
    }
    auto.shutdown(std::time::Duration::ZERO);
    again.shutdown(std::time::Duration::ZERO);
    auto.wait();
    again.wait();
}

#[test]
#[cfg(target_arch = "x86_64")]
fn a_kernel_that_refuses_io_uring_gets_epoll_with_one_line_and_a_forced_io_uring_fails() {
    if std::env::var_os(CHILD).is_some() {
        refuse_io_uring();
        refused_kernel_checks();
        return;
    }
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "a_kernel_that_refuses_io_uring_gets_epoll_with_one_line_and_a_forced_io_uring_fails",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env_remove("WSX_BACKEND")
        .output()
        .expect("run the child");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("io_uring unavailable") && l.contains("using epoll"))
        .collect();
    assert_eq!(lines.len(), 1, "one fallback line, got:\n{stderr}");
    assert!(
        stderr.contains("forced: io_uring backend unavailable"),
        "the forced start says why:\n{stderr}"
    );
}

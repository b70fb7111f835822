//! The load generator, run as a process, against the misbehaving servers of
//! `support/broken.rs`: each run ends by itself (a 60 s guard kills it and fails the test
//! otherwise), exits with 1 (errors met), and writes a complete JSON report that names the
//! failure. Usage errors exit with 2 and say what is wrong.

#[path = "support/broken.rs"]
mod broken;

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use broken::BadFrame;
use serde_json::Value;

const LOADTEST: &str = env!("CARGO_BIN_EXE_wsx-loadtest");

/// The longest a run may take before it counts as a hang (its own bounds are far shorter).
const HANG: Duration = Duration::from_secs(60);

/// Connections of each run.
const CONNECTIONS: u64 = 4;

/// A load generator process, killed by its handle if the test ends before it has exited.
struct Run {
    child: Child,
}

impl Drop for Run {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a finished run left: its exit status, stderr and the JSON report (if it wrote one).
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    report: Option<Value>,
}

impl Finished {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The report, which must be there and complete.
    fn report(&self) -> &Value {
        let r = self.report.as_ref().unwrap_or_else(|| {
            panic!(
                "no JSON report; status {:?}\nstdout:\n{}\nstderr:\n{}",
                self.status, self.stdout, self.stderr
            )
        });
        for field in [
            "tool",
            "mode",
            "url",
            "params",
            "threads",
            "measured_s",
            "ended_early",
            "connect",
            "sent",
            "received",
            "sent_measured",
            "received_measured",
            "errors",
            "client",
            "warnings",
        ] {
            assert!(r.get(field).is_some(), "the report lacks `{field}`: {r:#}");
        }
        assert_eq!(r["tool"], "wsx-loadtest");
        r
    }
}

/// A fresh file name under the test's temporary directory.
fn scratch(what: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("broken-{}-{n}-{what}", std::process::id()))
}

/// Runs `wsx-loadtest args… --json FILE` and waits for it, at most [`HANG`].
fn loadtest(args: &[&str]) -> Finished {
    let json = scratch("report.json");
    let out = scratch("stdout");
    let err = scratch("stderr");
    let _ = std::fs::remove_file(&json);
    let child = Command::new(LOADTEST)
        .args(args)
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("create the stdout file"))
        .stderr(std::fs::File::create(&err).expect("create the stderr file"))
        .spawn()
        .expect("wsx-loadtest starts");
    let mut run = Run { child };
    let deadline = Instant::now() + HANG;
    let status = loop {
        if let Some(status) = run.child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            // Dropping `run` kills it.
            let stderr = std::fs::read_to_string(&err).unwrap_or_default();
            panic!("wsx-loadtest {args:?} hung: still running after {HANG:?}\nstderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    let report = std::fs::read_to_string(&json).ok().map(|text| {
        serde_json::from_str::<Value>(&text)
            .unwrap_or_else(|e| panic!("the JSON report does not parse ({e}):\n{text}"))
    });
    for p in [&json, &out, &err] {
        let _ = std::fs::remove_file(p);
    }
    Finished {
        status,
        stdout,
        stderr,
        report,
    }
}

/// A short `echo` run against `url`: 4 connections, one message in flight each.
fn echo(url: &str) -> Finished {
    loadtest(&[
        "echo",
        "--url",
        url,
        "-c",
        "4",
        "-d",
        "1",
        "-s",
        "16",
        "--threads",
        "1",
        "-q",
        "--connect-timeout",
        "1s",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--drain",
        "1s",
    ])
}

fn u64_of(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// The report's `errors.by_kind`, after checking that its counts add up to `errors.total`.
fn kinds(r: &Value) -> &serde_json::Map<String, Value> {
    let by_kind = r["errors"]["by_kind"]
        .as_object()
        .unwrap_or_else(|| panic!("errors.by_kind is not an object: {r:#}"));
    let sum: u64 = by_kind.values().map(u64_of).sum();
    assert_eq!(sum, u64_of(&r["errors"]["total"]), "{:#}", r["errors"]);
    by_kind
}

/// The count of errors of `kind`.
fn count(r: &Value, kind: &str) -> u64 {
    kinds(r).get(kind).map_or(0, u64_of)
}

/// A run where no connection opened: exit 1, every connection failed with `kind` (and no
/// other error), `ended_early` says so, nothing was sent.
fn assert_none_opened(f: &Finished, kind: &str) {
    assert_eq!(f.code(), Some(1), "exit status; stderr:\n{}", f.stderr);
    let r = f.report();
    assert_eq!(
        count(r, kind),
        CONNECTIONS,
        "every connection fails with {kind:?}: {:#}",
        r["errors"]
    );
    assert_eq!(kinds(r).len(), 1, "only {kind:?}: {:#}", r["errors"]);
    assert_eq!(u64_of(&r["connect"]["opened"]), 0);
    assert_eq!(u64_of(&r["connect"]["failed"]), CONNECTIONS);
    assert_eq!(r["ended_early"], "no connection opened", "{r:#}");
    assert_eq!(u64_of(&r["sent"]), 0);
    assert_eq!(u64_of(&r["received"]), 0);
    let samples = r["errors"]["samples"].as_array().expect("samples");
    assert!(!samples.is_empty(), "a sample says which connection: {r:#}");
}

#[test]
fn refused_connections() {
    let addr = broken::refusing();
    let f = echo(&format!("ws://{addr}/"));
    assert_none_opened(&f, "connect: connection refused");
}

#[test]
fn a_server_that_never_answers_the_handshake() {
    let fixture = broken::silent();
    let f = echo(&fixture.url());
    assert_none_opened(&f, "connect: timed out");
    assert_eq!(fixture.connections() as u64, CONNECTIONS);
}

#[test]
fn an_http_answer_that_is_not_an_upgrade() {
    let fixture = broken::garbage_http();
    let f = echo(&fixture.url());
    assert_none_opened(&f, "connect: handshake refused");
    let samples = f.report()["errors"]["samples"].to_string();
    assert!(
        samples.contains("200"),
        "the sample names the status: {samples}"
    );
}

#[test]
fn an_answer_that_is_not_http() {
    let fixture = broken::not_http();
    let f = echo(&fixture.url());
    assert_none_opened(&f, "connect: handshake refused");
}

/// Every connection opens, then the server's first frame is invalid: each is closed with
/// `code` as a protocol error, and the run ends early saying so.
fn assert_bad_frame(kind: BadFrame, code: u16) {
    let fixture = broken::bad_frames(kind);
    let f = echo(&fixture.url());
    assert_eq!(f.code(), Some(1), "{kind:?}: stderr:\n{}", f.stderr);
    let r = f.report();
    assert_eq!(
        u64_of(&r["connect"]["opened"]),
        CONNECTIONS,
        "{kind:?}: {r:#}"
    );
    let closed = format!("closed: protocol error ({code})");
    assert_eq!(
        count(r, &closed),
        CONNECTIONS,
        "{kind:?}: every connection is closed with {code}: {:#}",
        r["errors"]
    );
    for (k, _) in kinds(r) {
        assert!(
            k == &closed || k == "reply: never came",
            "{kind:?}: unexpected error kind {k:?}: {:#}",
            r["errors"]
        );
    }
    let why = r["ended_early"].as_str().unwrap_or_else(|| {
        panic!("{kind:?}: ended_early says why the run ended: {r:#}");
    });
    // The invalid frame comes right after the 101: before the load began, or soon after.
    assert!(
        why.starts_with("every connection closed"),
        "{kind:?}: ended_early: {why}"
    );
    assert_eq!(u64_of(&r["received"]), 0, "{kind:?}: no reply is right");
}

#[test]
fn frames_with_a_reserved_opcode() {
    assert_bad_frame(BadFrame::ReservedOpcode, 1002);
}

#[test]
fn masked_frames_from_the_server() {
    assert_bad_frame(BadFrame::Masked, 1002);
}

#[test]
fn frames_with_reserved_bits() {
    assert_bad_frame(BadFrame::ReservedBits, 1002);
}

#[test]
fn text_that_is_not_utf8() {
    assert_bad_frame(BadFrame::BadUtf8, 1007);
}

/// Messages echoed to each connection before the server drops it.
const ECHOED: u64 = 50;

#[test]
fn a_server_that_drops_every_connection_mid_run() {
    let fixture = broken::closes_after(ECHOED as usize);
    let f = echo(&fixture.url());
    assert_eq!(f.code(), Some(1), "stderr:\n{}", f.stderr);
    let r = f.report();
    assert_eq!(u64_of(&r["connect"]["opened"]), CONNECTIONS, "{r:#}");
    // The report is partial: what came before the drops was counted. With one message in
    // flight, each connection read its ECHOED replies before it sent the one that met the
    // closed socket.
    let received = u64_of(&r["received"]);
    assert!(
        received >= CONNECTIONS * ECHOED,
        "replies before the drops were counted: {received}: {r:#}"
    );
    assert!(received <= fixture.messages() as u64, "{received} replies");
    assert!(u64_of(&r["sent"]) >= received);
    let closed = "closed by server (1006)";
    let abnormal = count(r, closed) + count(r, "closed: protocol error (1006)");
    assert_eq!(
        abnormal, CONNECTIONS,
        "every connection ends abnormally (1006): {:#}",
        r["errors"]
    );
    for (k, _) in kinds(r) {
        assert!(
            k.ends_with("(1006)") || k == "reply: never came",
            "unexpected error kind {k:?}: {:#}",
            r["errors"]
        );
    }
    let unanswered = u64_of(&r["sent"]) - received;
    assert_eq!(
        count(r, "reply: never came"),
        unanswered,
        "each message sent and not echoed is counted: {:#}",
        r["errors"]
    );
    let why = r["ended_early"]
        .as_str()
        .unwrap_or_else(|| panic!("ended_early says why: {r:#}"));
    assert!(
        why.starts_with("every connection closed"),
        "ended_early: {why}"
    );
}

#[test]
fn a_server_that_drops_each_connection_after_its_upgrade() {
    let fixture = broken::closes_after(0);
    let f = echo(&fixture.url());
    assert_eq!(f.code(), Some(1), "stderr:\n{}", f.stderr);
    let r = f.report();
    assert_eq!(u64_of(&r["received"]), 0);
    let why = r["ended_early"]
        .as_str()
        .unwrap_or_else(|| panic!("ended_early says why: {r:#}"));
    assert!(
        why.starts_with("every connection closed") || why == "no connection opened",
        "ended_early: {why}"
    );
    // A drop right after the 101 may come before or after the client has seen it open.
    let opened = u64_of(&r["connect"]["opened"]);
    let failed = u64_of(&r["connect"]["failed"]);
    assert_eq!(opened + failed, CONNECTIONS, "{r:#}");
    let abnormal: u64 = kinds(r)
        .iter()
        .filter(|(k, _)| k.ends_with("(1006)"))
        .map(|(_, v)| u64_of(v))
        .sum();
    assert_eq!(
        abnormal, opened,
        "each opened connection ends with 1006: {r:#}"
    );
}

#[test]
fn the_correct_echo_fixture_is_clean() {
    // The control case: the same run against a correct server exits 0 with no errors.
    let fixture = broken::echo();
    let f = echo(&fixture.url());
    assert_eq!(f.code(), Some(0), "stderr:\n{}", f.stderr);
    let r = f.report();
    assert_eq!(u64_of(&r["errors"]["total"]), 0, "{:#}", r["errors"]);
    assert!(r["ended_early"].is_null(), "{r:#}");
    assert_eq!(u64_of(&r["connect"]["opened"]), CONNECTIONS);
    assert!(u64_of(&r["received_measured"]) > 0);
    assert_eq!(r["sent"], r["received"]);
}

/// A usage error exits with 2, writes no report and says what is wrong on stderr.
fn assert_usage(args: &[&str], says: &str) {
    let f = loadtest(args);
    assert_eq!(f.code(), Some(2), "{args:?}: stderr:\n{}", f.stderr);
    assert!(
        f.stderr.contains(says),
        "{args:?}: stderr names the problem ({says:?}):\n{}",
        f.stderr
    );
    assert!(f.report.is_none(), "{args:?}: no report for a usage error");
}

#[test]
fn usage_errors_exit_with_2() {
    let addr = broken::refusing();
    let url = format!("ws://{addr}/");
    assert_usage(&["echo", "-c", "1"], "--url is required");
    assert_usage(&["echo", "--url", &url, "-c", "0"], "-c must be at least 1");
    assert_usage(
        &[
            "echo",
            "--url",
            &url,
            "-c",
            "1",
            "--sources",
            "127.0.0.9-127.0.0.2",
        ],
        "--sources",
    );
    assert_usage(
        &[
            "echo",
            "--url",
            &url,
            "-c",
            "1",
            "--sources",
            "not-an-address",
        ],
        "--sources",
    );
    assert_usage(&["echo", "--url", &url, "-d", "0"], "-d must be at least 1");
    assert_usage(
        &["echo", "--url", &url, "--duration", "ten"],
        "invalid duration",
    );
}

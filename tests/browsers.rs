//! Real browsers against `wsx serve`: Debian's `chromium` (over CDP) and `firefox-esr` (over
//! WebDriver BiDi), both driven by `puppeteer-core`, each without `--deflate` and with it on each
//! of the three compressor paths (the default pooled one, `--deflate-context-takeover`, and
//! `--deflate-max-window-bits 10`).
//!
//! The page (`tests/browser/index.html` + `checks.js`) comes from a small HTTP server on
//! `http://127.0.0.1:PORT` in this test, opens `new WebSocket(url)` with `binaryType =
//! "arraybuffer"` and checks, each step on its own socket, every echo byte for byte and in order:
//! text and binary at 0, 125, 126, 65,535, 65,536 and 1 MiB; multibyte text (~130 KB of mixed 2-,
//! 3- and 4-byte UTF-8); a long run of 322 messages of random sizes up to 256 KiB mixing
//! compressible and incompressible data, opening with the sequence that once broke both browsers (~130 KB of multibyte text, then
//! 65,535 bytes of alternating noise and pattern blocks); 1,000 small
//! messages in a burst; a close from the page with 1000 and with 4000 and a reason; and a close
//! from the server (SIGTERM to `wsx serve`, which closes every client with 1001, then exits 0).
//!
//! The `chromium_wss*` tests run the same page against `wsx serve --tls-cert F --tls-key F` over
//! `wss://` (the page itself stays on http, from which a secure WebSocket is allowed), with a
//! server certificate made for the test (`support/wss_certs.rs`) that Chromium accepts through
//! `--ignore-certificate-errors-spki-list` and the SHA-256 of its key: no other certificate is
//! let through.
//!
//! Setup installs what is missing: `apt-get install -y chromium firefox-esr` (and node, npm),
//! `puppeteer-core` into `target/browser-node/`. Under `CI=true` anything missing fails the test;
//! otherwise the test prints `SKIPPED: <why>` and passes. `WSX_BROWSER_SEED` changes the seed of
//! the page's PRNG (printed with every run, so a failure reproduces).

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
#[path = "support/apt.rs"]
mod apt;
#[path = "support/wss_certs.rs"]
mod wss_certs;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wsx::Backend;

/// The exact `puppeteer-core` the test installs (the last line that runs on Debian's node 18+).
const PUPPETEER: &str = "puppeteer-core@24.43.1";
/// The steps `checks.js` runs, in order; each must report `ok`.
const STEPS: [&str; 7] = [
    "sizes",
    "multibyte",
    "long-run",
    "burst",
    "close-1000",
    "close-4000",
    "server-close",
];
/// The page's bound on every single wait (open, echo, close).
const STEP_MS: u64 = 60_000;
/// The driver's bound on the whole page.
const PAGE_MS: u64 = 150_000;
/// This test's bound on the driver (browser start and stop included).
const DRIVER_LIMIT: Duration = Duration::from_secs(200);
/// The PRNG seed when `WSX_BROWSER_SEED` is not set.
const DEFAULT_SEED: u32 = 0x5EED_0008;

#[derive(Clone, Copy, Debug)]
enum Browser {
    Chromium,
    Firefox,
}

impl Browser {
    fn name(self) -> &'static str {
        match self {
            Browser::Chromium => "chromium",
            Browser::Firefox => "firefox-esr",
        }
    }

    /// The `browser` option of puppeteer.
    fn puppeteer_kind(self) -> &'static str {
        match self {
            Browser::Chromium => "chrome",
            Browser::Firefox => "firefox",
        }
    }

    fn executable(self) -> &'static str {
        match self {
            Browser::Chromium => "/usr/bin/chromium",
            Browser::Firefox => "/usr/bin/firefox-esr",
        }
    }
}

/// What the setup found or installed.
struct Setup {
    /// `target/browser-node`, with `node_modules/puppeteer-core`.
    node_dir: PathBuf,
    /// `chromium --version`, `firefox-esr --version`.
    versions: HashMap<&'static str, String>,
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Fails under `CI=true`, otherwise says why the test did not run (on the real stderr: the test
/// harness would swallow `eprintln!` of a test that passes).
fn skip(why: &str) {
    assert!(!in_ci(), "CI=true and the browser test cannot run: {why}");
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

/// The cargo target directory this test was built into (`target/debug/deps/browsers-*`).
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn works(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn version_of(program: &str) -> Option<String> {
    let out = Command::new(program).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// Installs what is missing, once for all the tests of this file.
fn setup() -> Result<&'static Setup, String> {
    static SETUP: OnceLock<Result<Setup, String>> = OnceLock::new();
    SETUP.get_or_init(install).as_ref().map_err(Clone::clone)
}

fn install() -> Result<Setup, String> {
    let mut missing = Vec::new();
    for (package, path) in [
        ("chromium", Browser::Chromium.executable()),
        ("firefox-esr", Browser::Firefox.executable()),
    ] {
        if !Path::new(path).exists() {
            missing.push(package);
        }
    }
    if !works("node", "--version") {
        missing.push("nodejs");
    }
    if !works("npm", "--version") {
        missing.push("npm");
    }
    if !missing.is_empty() {
        apt::apt_install("browsers", &missing)?;
    }
    let mut versions = HashMap::new();
    for browser in [Browser::Chromium, Browser::Firefox] {
        let v = version_of(browser.executable())
            .ok_or_else(|| format!("`{} --version` does not run", browser.executable()))?;
        versions.insert(browser.name(), v);
    }
    let node_dir = target_dir().join("browser-node");
    if !node_dir
        .join("node_modules/puppeteer-core/package.json")
        .exists()
    {
        std::fs::create_dir_all(&node_dir)
            .map_err(|e| format!("cannot create {}: {e}", node_dir.display()))?;
        eprintln!(
            "browsers: npm install {PUPPETEER} into {}",
            node_dir.display()
        );
        let out = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--no-save", PUPPETEER])
            .current_dir(&node_dir)
            // puppeteer-core never downloads a browser; say so anyway.
            .env("PUPPETEER_SKIP_DOWNLOAD", "1")
            .output()
            .map_err(|e| format!("cannot run npm: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`npm install {PUPPETEER}` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(Setup { node_dir, versions })
}

/// Reads a child's output line by line on a thread: every line goes to `tx` and to the log.
fn forward_lines(
    stream: impl Read + Send + 'static,
    tx: mpsc::Sender<String>,
    log: Arc<Mutex<Vec<String>>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            log.lock().unwrap().push(line.clone());
            let _ = tx.send(line);
        }
    })
}

/// A `wsx serve` child process and everything it printed.
struct WsxServe {
    child: Child,
    addr: SocketAddr,
    output: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

impl WsxServe {
    /// Starts `wsx serve --backend BACKEND FLAGS` on a port the system picks and reads the
    /// address it prints (on the line that must name the backend).
    fn start(backend: Backend, flags: &[&str]) -> WsxServe {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wsx"));
        cmd.args(["serve", "--host", "127.0.0.1", "--port", "0"]);
        cmd.args(["--backend", backend.name()]);
        cmd.args(flags);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wsx serve starts");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let readers = vec![
            forward_lines(child.stdout.take().unwrap(), tx.clone(), output.clone()),
            forward_lines(child.stderr.take().unwrap(), tx, output.clone()),
        ];
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = listening_addr(&line) {
                        assert!(
                            line.contains(&format!("(backend {backend},")),
                            "wsx serve runs on another backend than {backend}: {line:?}"
                        );
                        break addr;
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "wsx serve printed no ws:// address ({e:?}): {:?}",
                        output.lock().unwrap()
                    );
                }
            }
        };
        WsxServe {
            child,
            addr,
            output,
            readers,
        }
    }

    /// Waits up to `limit` for the process to exit; kills it past that.
    fn wait(mut self, limit: Duration) -> (Option<ExitStatus>, Vec<String>) {
        let deadline = Instant::now() + limit;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let output = self.output.lock().unwrap().clone();
        (status, output)
    }
}

/// The address in a line such as `wsx: echo server listening on ws://127.0.0.1:9001 (...)` (or
/// `wss://`).
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let at = line.find("://")?;
    if !(line[..at].ends_with(" ws") || line[..at].ends_with(" wss")) {
        return None;
    }
    let rest = &line[at + 3..];
    let end = rest
        .find(|c: char| c == '/' || c.is_whitespace())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Sends SIGTERM to a child of this process that has not been waited for.
#[allow(unsafe_code)] // one libc call; std has no way to send a signal other than SIGKILL
fn sigterm(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours. The pid is that of our
    // own child, which nobody waits for until the page is done, so it cannot have been reused.
    unsafe { libc::kill(pid, libc::SIGTERM) == 0 }
}

/// The page's HTTP origin: serves `index.html` and `checks.js`, and `POST /terminate` sends
/// SIGTERM to `wsx serve` (once). One thread per connection, each bounded by a read timeout; at
/// most 64 connections in all.
struct PageServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    terminated: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

const MAX_HTTP_CONNECTIONS: usize = 64;

impl PageServer {
    fn start(wsx_pid: u32) -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the page server");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let terminated = Arc::new(AtomicBool::new(false));
        let (s, t) = (stop.clone(), terminated.clone());
        let thread = std::thread::spawn(move || {
            let accepted = AtomicUsize::new(0);
            std::thread::scope(|scope| {
                for stream in listener.incoming() {
                    if s.load(Ordering::SeqCst)
                        || accepted.fetch_add(1, Ordering::SeqCst) >= MAX_HTTP_CONNECTIONS
                    {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let t = &t;
                    scope.spawn(move || serve_http(stream, wsx_pid, t));
                }
            });
        });
        PageServer {
            addr,
            stop,
            terminated,
            thread: Some(thread),
        }
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop; it sees `stop` and returns.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers the requests of one connection (keep-alive), each head at most 16 KiB.
fn serve_http(mut stream: TcpStream, wsx_pid: u32, terminated: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    for _ in 0..32 {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 16 << 10 {
                return;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let body_len = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        while buf.len() < head_end + body_len {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..head_end + body_len);
        let mut words = head.split_whitespace();
        let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let path = target.split('?').next().unwrap_or("");
        let (status, kind, body): (&str, &str, Vec<u8>) = match (method, path) {
            ("GET", "/" | "/index.html") => (
                "200 OK",
                "text/html; charset=utf-8",
                page_file("index.html"),
            ),
            ("GET", "/checks.js") => (
                "200 OK",
                "text/javascript; charset=utf-8",
                page_file("checks.js"),
            ),
            ("POST", "/terminate") => {
                if !terminated.swap(true, Ordering::SeqCst) && sigterm(wsx_pid) {
                    ("200 OK", "text/plain", b"sent SIGTERM\n".to_vec())
                } else {
                    ("409 Conflict", "text/plain", b"already sent\n".to_vec())
                }
            }
            _ => ("404 Not Found", "text/plain", b"not found\n".to_vec()),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\n\r\n",
            body.len()
        );
        if stream.write_all(head.as_bytes()).is_err() || stream.write_all(&body).is_err() {
            return;
        }
    }
}

fn page_file(name: &str) -> Vec<u8> {
    std::fs::read(browser_dir().join(name))
        .unwrap_or_else(|e| format!("missing {name}: {e}").into_bytes())
}

/// One browser at a time: they share two cores with the rest of the suite.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn seed() -> u32 {
    match std::env::var("WSX_BROWSER_SEED") {
        Ok(s) => s.parse().expect("WSX_BROWSER_SEED is a u32"),
        Err(_) => DEFAULT_SEED,
    }
}

/// What one page reported.
#[derive(Default)]
struct PageReport {
    version: Option<String>,
    /// Step name → (`ok`, the rest of its line).
    steps: Vec<(String, bool, String)>,
    done: bool,
    /// Lines that are not steps (`START`, `HUNG`, `PAGEERROR`, `DRIVER ERROR`, node's stderr).
    other: Vec<String>,
}

impl PageReport {
    fn take(&mut self, line: &str) {
        if let Some(v) = line.strip_prefix("VERSION ") {
            self.version = Some(v.to_owned());
        } else if let Some(rest) = line.strip_prefix("STEP ") {
            let mut parts = rest.splitn(3, ' ');
            let name = parts.next().unwrap_or("").to_owned();
            let ok = parts.next() == Some("ok");
            self.steps
                .push((name, ok, parts.next().unwrap_or("").to_owned()));
        } else if line == "DONE" {
            self.done = true;
        } else {
            self.other.push(line.to_owned());
        }
    }
}

/// Runs the page in one browser against a fresh `wsx serve FLAGS`; panics with every failed
/// step.
fn run(backend: Backend, browser: Browser, flags: &[&str]) {
    run_over(backend, browser, flags, None);
}

/// [`run`] over `ws://` (`certs` is `None`), or over `wss://` with `wsx serve --tls-cert
/// --tls-key` presenting `certs`' server certificate, which the browser is told to accept by
/// its key's hash (Chromium only).
fn run_over(backend: Backend, browser: Browser, flags: &[&str], certs: Option<&wss_certs::Certs>) {
    let deflate = flags.contains(&"--deflate");
    let mut flags: Vec<&str> = flags.to_vec();
    let mut browser_args = Vec::new();
    if let Some(certs) = certs {
        assert!(
            matches!(browser, Browser::Chromium),
            "wss:// runs with Chromium only"
        );
        for (flag, path) in [("--tls-cert", &certs.cert), ("--tls-key", &certs.key)] {
            flags.push(flag);
            flags.push(path.to_str().expect("a UTF-8 temporary path"));
        }
        browser_args.push(format!(
            "--ignore-certificate-errors-spki-list={}",
            certs.spki_sha256
        ));
    }
    let flags = &flags[..];
    let scheme = if certs.is_some() { "wss" } else { "ws" };
    let setup = match setup() {
        Ok(setup) => setup,
        Err(why) => return skip(&why),
    };
    let _one = one_at_a_time();
    let seed = seed();
    let label = format!(
        "{} ({}), wsx serve --backend {backend}{}{}, seed {seed}",
        browser.name(),
        setup.versions[browser.name()],
        if flags.is_empty() { "" } else { " " },
        flags.join(" ")
    );

    let wsx = WsxServe::start(backend, flags);
    let page = PageServer::start(wsx.child.id());
    let url = format!(
        "http://{}/?ws={scheme}://{}/&deflate={}&seed={seed}&step_ms={STEP_MS}",
        page.addr,
        wsx.addr,
        u8::from(deflate)
    );
    let profile = setup.node_dir.join(format!(
        "profile-{}-{backend}-{}-{}",
        browser.name(),
        if flags.is_empty() {
            "plain".to_owned()
        } else {
            flags
                .iter()
                .filter(|f| f.starts_with("--"))
                .map(|f| f.replace('-', ""))
                .collect::<String>()
        },
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).expect("create the browser profile");

    let started = Instant::now();
    let mut driver = Command::new("node")
        .arg(browser_dir().join("drive.js"))
        .arg(browser.puppeteer_kind())
        .arg(browser.executable())
        .arg(&profile)
        .arg(&url)
        .arg(PAGE_MS.to_string())
        .args(&browser_args)
        .env("NODE_PATH", setup.node_dir.join("node_modules"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let readers = [
        forward_lines(driver.stdout.take().unwrap(), tx, stdout),
        forward_lines(
            driver.stderr.take().unwrap(),
            mpsc::channel().0,
            stderr.clone(),
        ),
    ];
    let mut report = PageReport::default();
    let hung = read_report(&rx, &mut report, started + DRIVER_LIMIT);
    if hung {
        // SIGTERM first: puppeteer then stops the browser it started.
        sigterm(driver.id());
        let grace = Instant::now() + Duration::from_secs(10);
        while matches!(driver.try_wait(), Ok(None)) && Instant::now() < grace {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = driver.kill();
    }
    let driver_status = driver.wait();
    for reader in readers {
        let _ = reader.join();
    }
    // Lines that arrived between the deadline and the end of the driver.
    while let Ok(line) = rx.try_recv() {
        report.take(&line);
    }
    let elapsed = started.elapsed();
    // The page asked for SIGTERM in its last step (wsx then closes every client with 1001, with
    // a 5 s grace); when it did not get that far, stop the server here.
    let asked = page.terminated.load(Ordering::SeqCst);
    drop(page);
    if !asked {
        sigterm(wsx.child.id());
    }
    let (wsx_status, wsx_output) = wsx.wait(Duration::from_secs(20));
    let _ = std::fs::remove_dir_all(&profile);

    let mut failures = Vec::new();
    for name in STEPS {
        match report.steps.iter().find(|(n, _, _)| n == name) {
            Some((_, true, _)) => {}
            Some((_, false, why)) => failures.push(why.clone()),
            None => failures.push(format!("{name}: never reported")),
        }
    }
    failures.extend(
        report
            .other
            .iter()
            .filter(|l| l.starts_with("HUNG") || l.starts_with("DRIVER ERROR"))
            .cloned(),
    );
    if hung {
        failures.push(format!(
            "the driver did not finish within {DRIVER_LIMIT:?} and was killed"
        ));
    }
    if !report.done {
        failures.push("the page never reported DONE".to_owned());
    }
    match &wsx_status {
        Some(status) if status.success() => {}
        Some(status) => failures.push(format!("wsx serve exited with {status} after SIGTERM")),
        None => {
            failures.push("wsx serve still ran 20 s after the page finished; killed".to_owned())
        }
    }

    let mut summary = format!(
        "{label}: {} of {} steps passed in {:.1} s (browser reports {})\n",
        report.steps.iter().filter(|s| s.1).count(),
        STEPS.len(),
        elapsed.as_secs_f64(),
        report.version.as_deref().unwrap_or("no version"),
    );
    for (name, ok, detail) in &report.steps {
        summary += &format!("  {name}: {} {detail}\n", if *ok { "ok" } else { "FAIL" });
    }
    // Always shown, also for a test that passes: which browser versions passed which checks.
    let _ = std::io::stderr().write_all(summary.as_bytes());
    if !failures.is_empty() {
        panic!(
            "{label}: {} check(s) failed (rerun with WSX_BROWSER_SEED={seed}):\n  {}\n\n{summary}\
             driver ({driver_status:?}), its other lines and stderr:\n  {}\nwsx serve output:\n  {}",
            failures.len(),
            failures.join("\n  "),
            report
                .other
                .iter()
                .chain(tail(&stderr.lock().unwrap(), 40))
                .cloned()
                .collect::<Vec<_>>()
                .join("\n  "),
            tail(&wsx_output, 40).join("\n  "),
        );
    }
}

/// The last `n` lines.
fn tail(lines: &[String], n: usize) -> &[String] {
    &lines[lines.len().saturating_sub(n)..]
}

/// Feeds the driver's lines into `report` until it closes its output; true when `deadline`
/// passed first.
fn read_report(rx: &Receiver<String>, report: &mut PageReport, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => report.take(&line),
            Err(RecvTimeoutError::Disconnected) => return false,
            Err(RecvTimeoutError::Timeout) => return true,
        }
    }
}

/// The three compressor paths: the pooled libdeflate one (default), the streaming one that
/// keeps its context across messages, and the streaming one with a small window.
const CONTEXT: &[&str] = &["--deflate", "--deflate-context-takeover"];
const SMALL_WINDOW: &[&str] = &["--deflate", "--deflate-max-window-bits", "10"];

test_all!(chromium);
fn chromium(backend: Backend) {
    run(backend, Browser::Chromium, &[]);
}

test_all!(chromium_deflate);
fn chromium_deflate(backend: Backend) {
    run(backend, Browser::Chromium, &["--deflate"]);
}

test_all!(chromium_deflate_context_takeover);
fn chromium_deflate_context_takeover(backend: Backend) {
    run(backend, Browser::Chromium, CONTEXT);
}

test_all!(chromium_deflate_small_window);
fn chromium_deflate_small_window(backend: Backend) {
    run(backend, Browser::Chromium, SMALL_WINDOW);
}

test_all!(firefox);
fn firefox(backend: Backend) {
    run(backend, Browser::Firefox, &[]);
}

test_all!(firefox_deflate);
fn firefox_deflate(backend: Backend) {
    run(backend, Browser::Firefox, &["--deflate"]);
}

test_all!(firefox_deflate_context_takeover);
fn firefox_deflate_context_takeover(backend: Backend) {
    run(backend, Browser::Firefox, CONTEXT);
}

test_all!(firefox_deflate_small_window);
fn firefox_deflate_small_window(backend: Backend) {
    run(backend, Browser::Firefox, SMALL_WINDOW);
}

test_all!(chromium_wss);
/// The page over `wss://`, without permessage-deflate.
fn chromium_wss(backend: Backend) {
    let certs = wss_certs::Certs::new();
    run_over(backend, Browser::Chromium, &[], Some(&certs));
}

test_all!(chromium_wss_deflate);
/// The page over `wss://` with permessage-deflate (which Chromium offers), on the default
/// compressor and on the one that keeps its context.
fn chromium_wss_deflate(backend: Backend) {
    let certs = wss_certs::Certs::new();
    run_over(backend, Browser::Chromium, &["--deflate"], Some(&certs));
    run_over(backend, Browser::Chromium, CONTEXT, Some(&certs));
}

//! The interop matrix shared by `tests/interop_node_ws.rs` (Node's ws) and
//! `tests/interop_python.rs` (Python's websockets): the cases, the messages, what each
//! negotiation must answer, and the drivers for both roles.
//!
//! - **Peer as client** ([`peer_clients_against_wsx_servers`]): one wsx [`Server`] per case
//!   (each case has its own server options), one peer process that runs every case in turn
//!   (`tests/interop/{ws_client.js,py_client.py}`) and prints one `RESULT` line per case.
//! - **Peer as server** ([`blocking_client_against_peer_servers`],
//!   [`engine_client_against_peer_servers`]): one peer process that listens on one port per
//!   case (`tests/interop/{ws_server.js,py_server.py}`), greets every connection with the
//!   extension headers it saw and sent, then echoes; the wsx clients run every case in turn.
//!
//! Each case sends the ten messages of [`messages`] (the scripts build the same list) on one
//! connection, checks every echo byte for byte and in order, checks the negotiated
//! `permessage-deflate` parameters against [`expected_answer`], and checks from the wsx side's
//! byte counters that compression was (or was not) in force on the wire. A case that fails is
//! reported with everything that differed, and all cases run before the test fails.
//!
//! Over `wss://` ([`Tls`]: a test CA and a server certificate for `127.0.0.1`) the same drivers
//! run a smaller set of cases ([`wss_cases_against_wsx`], [`wss_cases_against_peer`]): the wsx
//! servers present the certificate, the peer servers too (`--cert FILE --key FILE`: ws on
//! `https.createServer`, websockets with an `ssl.SSLContext`), and every client trusts the CA
//! and nothing else (`--ca FILE` for the peer scripts, [`ClientTls::with_ca_pem_file`] for wsx).
//!
//! A piece that is missing (node, npm, python3, the venv, a package) fails the test when `CI` is
//! `true` in the environment; elsewhere the test prints `SKIPPED: <why>` on stderr and returns.
//!
//! Include it with `mod common;` and `#[path = "support/interop.rs"] mod interop;` (after
//! `support/backends.rs`, see `common`). The wsx side of each driver runs on the backend it is
//! given.

// Each test file that includes this module uses only part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wsx::blocking::{self, Message as Owned};
use wsx::client::{ClientError, ClientOptions, Url};
use wsx::protocol::deflate::DeflateOptions;
use wsx::tls::{ClientTls, ServerTls};
use wsx::{
    Backend, CloseCode, CloseInfo, Conn, Handler, Message, SendStatus, Server, ServerHandle,
};

use crate::common::wait_until;

/// How long one case may take on any single wait (a connection, an echo). Generous: it only
/// bounds how long a broken peer takes to fail a test, never whether a working one passes (a
/// 1 MiB message compressed with a 512-byte window in a debug build on a loaded 2-core
/// machine has taken over 10 s).
pub(crate) const CASE_TIMEOUT: Duration = Duration::from_secs(30);

/// The upper bound for a whole peer process (every case of one matrix).
pub(crate) const PROCESS_TIMEOUT: Duration = Duration::from_secs(240);

// ---------------------------------------------------------------------------------------------
// Missing pieces: a failure under CI, a printed skip elsewhere.

/// Whether `CI=true` is in the environment.
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Reports a missing piece: panics under `CI=true`, otherwise prints `SKIPPED: why` on the
/// process's stderr (written to the handle, so the test harness does not capture it).
/// Returns `None` so a setup can `return missing(..)`.
pub(crate) fn missing<T>(why: &str) -> Option<T> {
    if in_ci() {
        panic!("CI=true and the interop test cannot run: {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
    None
}

/// Runs `cmd` to completion (its output captured) and says why it failed, if it did.
pub(crate) fn run_setup(cmd: &mut Command) -> Result<(), String> {
    match cmd.output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "{cmd:?} exited with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => Err(format!("{cmd:?} did not start: {e}")),
    }
}

/// The crate's `target/` directory (where peers are installed).
pub(crate) fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target")
}

/// A script of `tests/interop/`.
pub(crate) fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}

// ---------------------------------------------------------------------------------------------
// TLS.

/// The files of a `wss://` run (made by `support/wss_certs.rs`): servers present `cert` and
/// `key`, clients trust `ca` alone.
#[derive(Debug, Clone)]
pub(crate) struct Tls {
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    /// The server certificate (PEM), for `localhost` and `127.0.0.1`.
    pub cert: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
}

/// `ws` or `wss`.
pub(crate) fn scheme(tls: Option<&Tls>) -> &'static str {
    if tls.is_some() {
        "wss"
    } else {
        "ws"
    }
}

/// The arguments of a peer client script: `--ca FILE` over TLS.
pub(crate) fn client_args(tls: Option<&Tls>) -> Vec<String> {
    tls.map_or_else(Vec::new, |t| {
        vec!["--ca".to_owned(), t.ca.to_string_lossy().into_owned()]
    })
}

/// The arguments of a peer server script: `--cert FILE --key FILE` over TLS.
pub(crate) fn server_args(tls: Option<&Tls>) -> Vec<String> {
    tls.map_or_else(Vec::new, |t| {
        vec![
            "--cert".to_owned(),
            t.cert.to_string_lossy().into_owned(),
            "--key".to_owned(),
            t.key.to_string_lossy().into_owned(),
        ]
    })
}

/// A wsx server builder that presents `tls`'s certificate.
fn with_server_tls(builder: wsx::ServerBuilder, tls: &Tls) -> wsx::ServerBuilder {
    let config = ServerTls::from_pem_files(&tls.cert, &tls.key).expect("the test certificate");
    builder.tls(config)
}

// ---------------------------------------------------------------------------------------------
// Peers.

/// One peer implementation: how to run its client and server scripts.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    /// Its name in failure messages.
    pub name: &'static str,
    /// The interpreter (`node`, the venv's `python`).
    pub program: PathBuf,
    /// Extra environment (`NODE_PATH`).
    pub env: Vec<(String, String)>,
    /// The client script (takes `ID\tURL\tSPEC` lines).
    pub client: PathBuf,
    /// The server script (takes `ID\tSPEC` lines).
    pub server: PathBuf,
    /// Whether this peer, as a server configured with `server_max_window_bits=15`, answers it
    /// although the client did not ask (ws and websockets do; wsx leaves 15 unsaid).
    pub answers_unasked_full_window: bool,
}

impl Peer {
    fn command(&self, script: &Path, args: &[String]) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.arg(script)
            .args(args)
            .current_dir(script.parent().unwrap_or(Path::new(".")))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }
}

/// A running peer process, killed (by its own handle) when dropped.
pub(crate) struct PeerProcess {
    name: &'static str,
    child: Child,
    /// Open while the process runs: a peer server exits when it closes.
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Ends with the process (its stderr closes) and returns what it printed there.
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl PeerProcess {
    /// Starts `script` of `peer` with `args` and writes `input` (one case a line, then `END`)
    /// to its stdin, which stays open (a peer server exits when it closes).
    pub(crate) fn start(
        peer: &Peer,
        script: &Path,
        args: &[String],
        input: &[String],
    ) -> PeerProcess {
        let mut child = peer
            .command(script, args)
            .spawn()
            .unwrap_or_else(|e| panic!("{} ({script:?}) did not start: {e}", peer.name));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            text
        });
        let mut stdin = child.stdin.take().expect("piped stdin");
        let mut text = input.join("\n");
        text.push_str("\nEND\n");
        stdin
            .write_all(text.as_bytes())
            .expect("peer reads its cases");
        PeerProcess {
            name: peer.name,
            child,
            stdin: Some(stdin),
            lines,
            stderr: Some(stderr),
        }
    }

    /// The next stdout line, or a panic naming the peer's stderr if none comes by `deadline`.
    pub(crate) fn line(&mut self, deadline: Instant, what: &str) -> String {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => line,
            Err(e) => {
                let _ = self.child.kill();
                let status = self.child.wait();
                let stderr = self
                    .stderr
                    .take()
                    .and_then(|reader| reader.join().ok())
                    .unwrap_or_default();
                panic!(
                    "{}: no {what} ({e:?}), the process ended with {status:?}; its stderr:\n{stderr}",
                    self.name
                );
            }
        }
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Offers, server options and the answers they must produce.

/// `client_max_window_bits` in an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bits {
    /// Not offered.
    Absent,
    /// Offered without a value ("I can compress with any window you name").
    Bare,
    /// Offered with a value.
    Value(u8),
}

/// `client_no_context_takeover` on a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cnct {
    /// Not offered; an answer that carries it is accepted (RFC 7692 §7.1.1.1).
    No,
    /// Offered (a promise).
    Yes,
    /// Not offered, and an answer that carries it is refused: Node ws's
    /// `clientNoContextTakeover: false`. Other clients treat it as [`Cnct::No`].
    Refuse,
}

/// What a client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Offer {
    /// Asks for `server_no_context_takeover`.
    pub snct: bool,
    /// `client_no_context_takeover`.
    pub cnct: Cnct,
    /// Asks for `server_max_window_bits=N`.
    pub smwb: Option<u8>,
    /// `client_max_window_bits`.
    pub cmwb: Bits,
}

impl Offer {
    /// A bare offer: `permessage-deflate; client_max_window_bits`.
    pub(crate) const PLAIN: Offer = Offer {
        snct: false,
        cnct: Cnct::No,
        smwb: None,
        cmwb: Bits::Bare,
    };

    /// The spec the scripts take (see `tests/interop/messages.js`).
    fn spec(&self) -> String {
        let mut tokens = Vec::new();
        if self.snct {
            tokens.push("snct".to_owned());
        }
        match self.cnct {
            Cnct::No => {}
            Cnct::Yes => tokens.push("cnct".to_owned()),
            Cnct::Refuse => tokens.push("cnct=0".to_owned()),
        }
        if let Some(n) = self.smwb {
            tokens.push(format!("smwb={n}"));
        }
        match self.cmwb {
            Bits::Absent => tokens.push("cmwb=0".to_owned()),
            Bits::Bare => tokens.push("cmwb".to_owned()),
            Bits::Value(n) => tokens.push(format!("cmwb={n}")),
        }
        tokens.join(",")
    }

    /// The same offer made by the wsx client. It always offers `client_max_window_bits`, so an
    /// offer without it has no wsx form (`None`).
    pub(crate) fn client_options(&self) -> Option<DeflateOptions> {
        let client_max_window_bits = match self.cmwb {
            Bits::Absent => return None,
            Bits::Bare => None,
            Bits::Value(n) => Some(n),
        };
        Some(DeflateOptions {
            threshold: 0,
            server_no_context_takeover: self.snct,
            client_no_context_takeover: self.cnct == Cnct::Yes,
            server_max_window_bits: self.smwb,
            client_max_window_bits,
            ..DeflateOptions::default()
        })
    }
}

/// A server's permessage-deflate options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServerConf {
    /// Answers `server_no_context_takeover` whatever the offer.
    pub snct: bool,
    /// Answers `client_no_context_takeover` whatever the offer.
    pub cnct: bool,
    /// Compresses with at most this window.
    pub smwb: Option<u8>,
    /// Limits the client's window (when it offered `client_max_window_bits`).
    pub cmwb: Option<u8>,
}

impl ServerConf {
    /// wsx's defaults: both `*_no_context_takeover`, no window limits.
    pub(crate) const WSX_DEFAULT: ServerConf = ServerConf {
        snct: true,
        cnct: true,
        smwb: None,
        cmwb: None,
    };
    /// Context takeover both ways, no window limits (ws's and websockets' defaults).
    pub(crate) const TAKEOVER: ServerConf = ServerConf {
        snct: false,
        cnct: false,
        smwb: None,
        cmwb: None,
    };

    fn spec(&self) -> String {
        let mut tokens = Vec::new();
        if self.snct {
            tokens.push("snct".to_owned());
        }
        if self.cnct {
            tokens.push("cnct".to_owned());
        }
        if let Some(n) = self.smwb {
            tokens.push(format!("smwb={n}"));
        }
        if let Some(n) = self.cmwb {
            tokens.push(format!("cmwb={n}"));
        }
        if tokens.is_empty() {
            "on".to_owned()
        } else {
            tokens.join(",")
        }
    }

    /// These options for a wsx server.
    pub(crate) fn server_options(&self) -> DeflateOptions {
        DeflateOptions {
            threshold: 0,
            server_no_context_takeover: self.snct,
            client_no_context_takeover: self.cnct,
            server_max_window_bits: self.smwb,
            client_max_window_bits: self.cmwb,
            ..DeflateOptions::default()
        }
    }
}

/// The parameters of a `permessage-deflate` answer, by name (values without quotes).
pub(crate) type Answer = BTreeMap<String, Option<String>>;

/// What a server with `server` answers to `offer` (`None`: no permessage-deflate), for the
/// cases of this matrix, by RFC 7692 §7.1: the `*_no_context_takeover` flags when offered or
/// imposed; the smaller of the offered and the configured windows, or either alone (an
/// unoffered configured 15 is said only when `unasked_full_window`); `client_max_window_bits`
/// only when offered, with the smaller of the offered value and the limit, or without any
/// value when both are missing (then it is left out).
pub(crate) fn expected_answer(
    offer: Option<&Offer>,
    server: Option<&ServerConf>,
    unasked_full_window: bool,
) -> Option<Answer> {
    let (offer, server) = (offer?, server?);
    let mut answer = Answer::new();
    if offer.snct || server.snct {
        answer.insert("server_no_context_takeover".into(), None);
    }
    if offer.cnct == Cnct::Yes || server.cnct {
        answer.insert("client_no_context_takeover".into(), None);
    }
    let smwb = match (offer.smwb, server.smwb) {
        (Some(n), Some(m)) => Some(n.min(m)),
        (Some(n), None) => Some(n),
        (None, Some(m)) if m < 15 || unasked_full_window => Some(m),
        (None, _) => None,
    };
    if let Some(n) = smwb {
        answer.insert("server_max_window_bits".into(), Some(n.to_string()));
    }
    let cmwb = match (offer.cmwb, server.cmwb) {
        (Bits::Absent, _) | (Bits::Bare, None) => None,
        (Bits::Bare, Some(m)) => Some(m),
        (Bits::Value(n), None) => Some(n),
        (Bits::Value(n), Some(m)) => Some(n.min(m)),
    };
    if let Some(n) = cmwb {
        answer.insert("client_max_window_bits".into(), Some(n.to_string()));
    }
    Some(answer)
}

/// Parses a `Sec-WebSocket-Extensions` value that should hold one `permessage-deflate` (or be
/// empty: `Ok(None)`).
pub(crate) fn parse_answer(header: &str) -> Result<Option<Answer>, String> {
    let header = header.trim();
    if header.is_empty() {
        return Ok(None);
    }
    if header.contains(',') {
        return Err(format!("more than one extension: {header:?}"));
    }
    let mut parts = header.split(';').map(str::trim);
    let name = parts.next().unwrap_or_default();
    if !name.eq_ignore_ascii_case("permessage-deflate") {
        return Err(format!("not permessage-deflate: {header:?}"));
    }
    let mut answer = Answer::new();
    for part in parts {
        let (key, value) = match part.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"').to_owned())),
            None => (part, None),
        };
        if answer
            .insert(key.to_ascii_lowercase(), value.clone())
            .is_some()
        {
            return Err(format!("{key} twice: {header:?}"));
        }
    }
    Ok(Some(answer))
}

// ---------------------------------------------------------------------------------------------
// Cases.

/// One combination: what the client offers (`None`: no permessage-deflate) and the server's
/// options (`None`: no permessage-deflate).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Case {
    /// The client's offer.
    pub offer: Option<Offer>,
    /// The server's options.
    pub server: Option<ServerConf>,
}

impl Case {
    fn new(offer: Option<Offer>, server: Option<ServerConf>) -> Case {
        Case { offer, server }
    }

    fn offer_spec(&self) -> String {
        self.offer.map_or_else(|| "off".to_owned(), |o| o.spec())
    }

    fn server_spec(&self) -> String {
        self.server.map_or_else(|| "off".to_owned(), |s| s.spec())
    }

    /// A name for failure messages: `offer[...] server[...]`.
    pub(crate) fn label(&self) -> String {
        format!(
            "offer[{}] server[{}]",
            self.offer_spec(),
            self.server_spec()
        )
    }
}

/// The combinations run with a peer as the client of wsx servers: no deflate on either side;
/// wsx's defaults; window bits 9..=15 asked for by the client (with values) and imposed by the
/// server (on a bare offer); each `*_no_context_takeover` asked for by the client or imposed
/// by the server, and context takeover both ways, with several windows; a client that refuses
/// an unasked `client_no_context_takeover` (ws's `clientNoContextTakeover: false`) against
/// servers configured without it.
pub(crate) fn cases_against_wsx() -> Vec<Case> {
    let mut cases = vec![
        Case::new(None, Some(ServerConf::WSX_DEFAULT)),
        Case::new(Some(Offer::PLAIN), None),
        Case::new(Some(Offer::PLAIN), Some(ServerConf::WSX_DEFAULT)),
        Case::new(
            Some(Offer {
                cmwb: Bits::Absent,
                ..Offer::PLAIN
            }),
            Some(ServerConf::WSX_DEFAULT),
        ),
        Case::new(Some(Offer::PLAIN), Some(ServerConf::TAKEOVER)),
    ];
    for n in 9..=15 {
        // Asked for by the client, with values, on wsx's defaults.
        cases.push(Case::new(
            Some(Offer {
                smwb: Some(n),
                cmwb: Bits::Value(n),
                ..Offer::PLAIN
            }),
            Some(ServerConf::WSX_DEFAULT),
        ));
        // Imposed by the server on a bare offer, context kept both ways.
        cases.push(Case::new(
            Some(Offer::PLAIN),
            Some(ServerConf {
                smwb: Some(n),
                cmwb: Some(n),
                ..ServerConf::TAKEOVER
            }),
        ));
    }
    for (snct, cnct) in [(true, Cnct::No), (false, Cnct::Yes), (true, Cnct::Yes)] {
        // Asked for by the client from a server that would keep context.
        cases.push(Case::new(
            Some(Offer {
                snct,
                cnct,
                ..Offer::PLAIN
            }),
            Some(ServerConf::TAKEOVER),
        ));
    }
    for (snct, cnct) in [(true, false), (false, true)] {
        // Imposed by the server alone.
        cases.push(Case::new(
            Some(Offer::PLAIN),
            Some(ServerConf {
                snct,
                cnct,
                ..ServerConf::TAKEOVER
            }),
        ));
    }
    // The smaller of offer and limit wins, in both directions.
    cases.push(Case::new(
        Some(Offer {
            smwb: Some(10),
            cmwb: Bits::Value(14),
            ..Offer::PLAIN
        }),
        Some(ServerConf {
            smwb: Some(12),
            cmwb: Some(11),
            ..ServerConf::TAKEOVER
        }),
    ));
    cases.push(Case::new(
        Some(Offer {
            smwb: Some(13),
            cmwb: Bits::Value(9),
            ..Offer::PLAIN
        }),
        Some(ServerConf {
            smwb: Some(11),
            cmwb: Some(12),
            ..ServerConf::WSX_DEFAULT
        }),
    ));
    // A client that refuses an unasked client_no_context_takeover, against wsx servers that do
    // not impose it (the default does: see `strict_client_refuses_wsx_default`).
    for (smwb, cmwb) in [
        (None, Bits::Bare),
        (Some(9), Bits::Value(9)),
        (Some(12), Bits::Bare),
    ] {
        for snct in [false, true] {
            cases.push(Case::new(
                Some(Offer {
                    snct,
                    cnct: Cnct::Refuse,
                    smwb,
                    cmwb,
                }),
                Some(ServerConf {
                    snct,
                    cnct: false,
                    ..ServerConf::WSX_DEFAULT
                }),
            ));
        }
    }
    cases
}

/// The combinations run with the wsx clients against a peer server: as
/// [`cases_against_wsx`], with the offers the wsx client can make (it always offers
/// `client_max_window_bits`) and the peer's defaults (context takeover) in place of wsx's.
/// A configured server window never exceeds an offered one (ws declines such offers instead
/// of answering the smaller window).
pub(crate) fn cases_against_peer() -> Vec<Case> {
    let mut cases = vec![
        Case::new(None, Some(ServerConf::TAKEOVER)),
        Case::new(Some(Offer::PLAIN), None),
        Case::new(Some(wsx_offer()), Some(ServerConf::TAKEOVER)),
        Case::new(Some(Offer::PLAIN), Some(ServerConf::TAKEOVER)),
    ];
    for n in 9..=15 {
        cases.push(Case::new(
            Some(Offer {
                smwb: Some(n),
                cmwb: Bits::Value(n),
                ..Offer::PLAIN
            }),
            Some(ServerConf::TAKEOVER),
        ));
        cases.push(Case::new(
            Some(Offer::PLAIN),
            Some(ServerConf {
                smwb: Some(n),
                cmwb: Some(n),
                ..ServerConf::TAKEOVER
            }),
        ));
    }
    for (snct, cnct) in [(true, Cnct::No), (false, Cnct::Yes), (true, Cnct::Yes)] {
        cases.push(Case::new(
            Some(Offer {
                snct,
                cnct,
                ..Offer::PLAIN
            }),
            Some(ServerConf::TAKEOVER),
        ));
    }
    for (snct, cnct) in [(true, false), (false, true), (true, true)] {
        cases.push(Case::new(
            Some(Offer::PLAIN),
            Some(ServerConf {
                snct,
                cnct,
                ..ServerConf::TAKEOVER
            }),
        ));
    }
    cases.push(Case::new(
        Some(Offer {
            smwb: Some(12),
            cmwb: Bits::Value(14),
            ..Offer::PLAIN
        }),
        Some(ServerConf {
            smwb: Some(10),
            cmwb: Some(11),
            ..ServerConf::TAKEOVER
        }),
    ));
    cases
}

/// What the wsx client offers with its default [`DeflateOptions`].
fn wsx_offer() -> Offer {
    let wsx_default = DeflateOptions::default();
    Offer {
        snct: wsx_default.server_no_context_takeover,
        cnct: if wsx_default.client_no_context_takeover {
            Cnct::Yes
        } else {
            Cnct::No
        },
        smwb: None,
        cmwb: Bits::Bare,
    }
}

/// The cases run with a peer client against wsx servers over `wss://`: TLS changes nothing in
/// the negotiation, so a few of [`cases_against_wsx`] suffice: no deflate, an offer the server
/// declines, wsx's defaults, context takeover both ways, and a window asked for.
pub(crate) fn wss_cases_against_wsx() -> Vec<Case> {
    vec![
        Case::new(None, Some(ServerConf::WSX_DEFAULT)),
        Case::new(Some(Offer::PLAIN), None),
        Case::new(Some(Offer::PLAIN), Some(ServerConf::WSX_DEFAULT)),
        Case::new(Some(Offer::PLAIN), Some(ServerConf::TAKEOVER)),
        Case::new(
            Some(Offer {
                smwb: Some(10),
                cmwb: Bits::Value(10),
                ..Offer::PLAIN
            }),
            Some(ServerConf::WSX_DEFAULT),
        ),
    ]
}

/// The cases run with the wsx clients against peer servers over `wss://`: a few of
/// [`cases_against_peer`] (no deflate, a declined offer, the wsx client's default offer,
/// context takeover, windows imposed by the server).
pub(crate) fn wss_cases_against_peer() -> Vec<Case> {
    vec![
        Case::new(None, Some(ServerConf::TAKEOVER)),
        Case::new(Some(Offer::PLAIN), None),
        Case::new(Some(wsx_offer()), Some(ServerConf::TAKEOVER)),
        Case::new(Some(Offer::PLAIN), Some(ServerConf::TAKEOVER)),
        Case::new(
            Some(Offer::PLAIN),
            Some(ServerConf {
                smwb: Some(10),
                cmwb: Some(10),
                ..ServerConf::TAKEOVER
            }),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Messages.

fn xorshift(seed: u32, n: usize) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x & 0xff) as u8
        })
        .collect()
}

fn json(n: usize) -> String {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < n {
        s.push_str(&format!(
            "{{\"seq\":{i},\"sym\":\"BTC-USD\",\"side\":\"buy\",\"qty\":{}}}\n",
            i % 97
        ));
        i += 1;
    }
    s.truncate(n);
    s
}

/// The ten messages of every case, in order, as `tests/interop/messages.{js,py}` build them:
/// 10 bytes of text; 64 KiB of JSON lines; 1 MiB + 4 KiB of compressible binary (a 61-byte
/// period: zlib matches reach at most the window less 262 bytes, 250 bytes with 9 bits);
/// ~150 KB of multibyte text; 256 KiB of noise; 65,535 bytes alternating 4 KiB of noise and
/// a 16-byte pattern; the same 64 KiB of JSON again (context takeover makes it nearly free);
/// 125 bytes of binary; 126 letters; an empty binary.
pub(crate) fn messages() -> Vec<Owned> {
    let big: Vec<u8> = (0..(1usize << 20) + 4096)
        .map(|i| (((i % 61) * 7 + (i >> 12)) & 0xff) as u8)
        .collect();
    let noise = xorshift(12345, 65535);
    let pattern = b"0123456789abcdef";
    let mixed: Vec<u8> = (0..65535)
        .map(|i| {
            if (i >> 12) & 1 == 0 {
                noise[i]
            } else {
                pattern[i % 16]
            }
        })
        .collect();
    let letters: String = (0..126u8).map(|i| char::from(b'a' + i % 26)).collect();
    vec![
        Owned::Text("hello, wsx".to_owned()),
        Owned::Text(json(65536)),
        Owned::Binary(big),
        Owned::Text("héllo wörld, 日本語のテキスト, emoji 🎉🚀 ".repeat(2000)),
        Owned::Binary(xorshift(0x9e37_79b9, 256 * 1024)),
        Owned::Binary(mixed),
        Owned::Text(json(65536)),
        Owned::Binary((0..125u8).map(|i| i % 5).collect()),
        Owned::Text(letters),
        // Last, so that every other message is checked first.
        Owned::Binary(Vec::new()),
    ]
}

fn payload(m: &Owned) -> &[u8] {
    match m {
        Owned::Text(t) => t.as_bytes(),
        Owned::Binary(b) | Owned::Ping(b) | Owned::Pong(b) => b,
        Owned::Close(..) => &[],
    }
}

/// The payload bytes of `list`.
pub(crate) fn total_bytes(list: &[Owned]) -> u64 {
    list.iter().map(|m| payload(m).len() as u64).sum()
}

/// Whether the wire carried `raw` payload bytes compressed (`compressed`: under half of them)
/// or not (more than all of them), read from the bytes a wsx side wrote and read.
fn check_wire(compressed: bool, raw: u64, read: u64, written: u64) -> Result<(), String> {
    let ok = |n: u64| if compressed { n < raw / 2 } else { n > raw };
    if ok(read) && ok(written) {
        Ok(())
    } else {
        Err(format!(
            "wire bytes read {read}, written {written} for {raw} payload bytes: {}",
            if compressed {
                "expected compression"
            } else {
                "expected none"
            }
        ))
    }
}

/// Compares an echo with what was sent, without printing megabytes.
pub(crate) fn same_message(n: usize, want: &Owned, got: &Owned) -> Result<(), String> {
    if want == got {
        return Ok(());
    }
    let kind = |m: &Owned| match m {
        Owned::Text(_) => "text",
        Owned::Binary(_) => "binary",
        _ => "other",
    };
    let (a, b) = (payload(want), payload(got));
    let at = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    Err(format!(
        "echo {n}: sent {} of {} bytes, got {} of {} bytes, first difference at {at}",
        kind(want),
        a.len(),
        kind(got),
        b.len()
    ))
}

// ---------------------------------------------------------------------------------------------
// Peer clients against wsx servers.

/// The wsx server's echo handler: records whether each connection compresses, echoes every
/// message and counts sends that were not taken.
#[derive(Clone, Default)]
struct Echo {
    opened: Arc<Mutex<Vec<bool>>>,
    dropped: Arc<AtomicU64>,
}

impl Handler for Echo {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        self.opened.lock().unwrap().push(conn.compression());
    }

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        if !matches!(
            conn.send(message),
            Ok(SendStatus::Sent | SendStatus::Queued)
        ) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn start_wsx_server(
    backend: Backend,
    server: Option<&ServerConf>,
    tls: Option<&Tls>,
    echo: Echo,
) -> ServerHandle {
    let mut builder = Server::builder()
        .host("127.0.0.1")
        .port(0)
        .threads(1)
        .pin_threads(false);
    if let Some(conf) = server {
        builder = builder.deflate(conf.server_options());
    }
    if let Some(tls) = tls {
        builder = with_server_tls(builder, tls);
    }
    let server = builder
        .backend(backend)
        .start(move |_| echo.clone())
        .expect("wsx server starts");
    crate::backends::assert_runs_on(&server, backend);
    server
}

/// The result line of one case from a peer client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PeerResult {
    /// Every echo matched; the answer header and the payload bytes sent.
    Ok { extensions: String, bytes: u64 },
    /// Why the case failed, as the peer saw it.
    Fail(String),
}

/// Runs every case of `cases` with `peer`'s client against a wsx server per case, and returns
/// the peer's result for each (in order) along with the failures of the checks made here.
pub(crate) fn run_peer_clients(
    backend: Backend,
    peer: &Peer,
    cases: &[Case],
) -> (Vec<PeerResult>, Vec<(Case, String)>) {
    run_peer_clients_over(backend, peer, cases, None)
}

/// [`run_peer_clients`] over `ws://` (`tls` is `None`) or `wss://`.
pub(crate) fn run_peer_clients_over(
    backend: Backend,
    peer: &Peer,
    cases: &[Case],
    tls: Option<&Tls>,
) -> (Vec<PeerResult>, Vec<(Case, String)>) {
    let list = messages();
    let raw = total_bytes(&list);
    let count = list.len() as u64;
    drop(list);
    let servers: Vec<(ServerHandle, Echo)> = cases
        .iter()
        .map(|case| {
            let echo = Echo::default();
            (
                start_wsx_server(backend, case.server.as_ref(), tls, echo.clone()),
                echo,
            )
        })
        .collect();
    let input: Vec<String> = cases
        .iter()
        .zip(&servers)
        .enumerate()
        .map(|(i, (case, (server, _)))| {
            format!(
                "{i}\t{}://{}/\t{}",
                scheme(tls),
                server.local_addr(),
                case.offer_spec()
            )
        })
        .collect();
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    let mut process = PeerProcess::start(peer, &peer.client, &client_args(tls), &input);
    let mut results: HashMap<usize, PeerResult> = HashMap::new();
    while results.len() < cases.len() {
        let line = process.line(deadline, "RESULT line");
        let fields: Vec<&str> = line.split('\t').collect();
        let (Some(&"RESULT"), Some(Ok(id))) = (fields.first(), fields.get(1).map(|s| s.parse()))
        else {
            eprintln!("{}: {line}", peer.name);
            continue;
        };
        let result = match (fields.get(2), fields.get(3), fields.get(4)) {
            (Some(&"ok"), Some(ext), Some(bytes)) => PeerResult::Ok {
                extensions: (*ext).to_owned(),
                bytes: bytes.parse().unwrap_or(0),
            },
            _ => PeerResult::Fail(fields.get(3).unwrap_or(&"?").to_string()),
        };
        results.insert(id, result);
    }
    let mut failures = Vec::new();
    let mut ordered = Vec::new();
    for (i, (case, (server, echo))) in cases.iter().zip(&servers).enumerate() {
        let result = results.remove(&i).expect("a result per case");
        ordered.push(result.clone());
        let PeerResult::Ok { extensions, bytes } = result else {
            continue;
        };
        let mut fail = |why: String| failures.push((*case, why));
        let expected = expected_answer(case.offer.as_ref(), case.server.as_ref(), false);
        match parse_answer(&extensions) {
            Ok(got) if got == expected => {}
            Ok(got) => fail(format!(
                "answer {extensions:?} is {got:?}, expected {expected:?}"
            )),
            Err(e) => fail(e),
        }
        if bytes != raw {
            fail(format!(
                "{} sent {bytes} payload bytes, not {raw}",
                peer.name
            ));
        }
        // The connection is gone once the worker has published a turn without it; its
        // counters are published in the same turn.
        let closed = wait_until(CASE_TIMEOUT, || {
            let s = server.stats();
            s.connections == 0 && s.messages_out == count
        });
        let stats = server.stats();
        if !closed {
            fail(format!(
                "the server did not end the case cleanly: {stats:?}"
            ));
        }
        let opened = echo.opened.lock().unwrap().clone();
        if opened != [expected.is_some()] {
            fail(format!(
                "server connections and their compression(): {opened:?}"
            ));
        }
        if echo.dropped.load(Ordering::Relaxed) != 0 {
            fail("the server dropped echoes".to_owned());
        }
        if let Err(e) = check_wire(expected.is_some(), raw, stats.bytes_in, stats.bytes_out) {
            fail(e);
        }
    }
    for (server, _) in &servers {
        server.shutdown(Duration::ZERO);
    }
    for (server, _) in &servers {
        crate::common::wait_for_workers(server, CASE_TIMEOUT);
    }
    (ordered, failures)
}

/// Runs the matrix of [`cases_against_wsx`] with `peer`'s client and panics with every case
/// that failed.
pub(crate) fn peer_clients_against_wsx_servers(backend: Backend, peer: &Peer) {
    peer_clients_against(backend, peer, &cases_against_wsx(), None);
}

/// Runs [`wss_cases_against_wsx`] with `peer`'s client against wsx servers over `wss://`
/// and panics with every case that failed.
pub(crate) fn wss_peer_clients_against_wsx_servers(backend: Backend, peer: &Peer, tls: &Tls) {
    peer_clients_against(backend, peer, &wss_cases_against_wsx(), Some(tls));
}

fn peer_clients_against(backend: Backend, peer: &Peer, cases: &[Case], tls: Option<&Tls>) {
    let (results, mut failures) = run_peer_clients_over(backend, peer, cases, tls);
    for (case, result) in cases.iter().zip(results) {
        if let PeerResult::Fail(why) = result {
            failures.push((*case, format!("{} client: {why}", peer.name)));
        }
    }
    let what = format!("client against wsx servers over {}://", scheme(tls));
    report(peer, &what, cases.len(), &failures);
}

pub(crate) fn report(peer: &Peer, what: &str, cases: usize, failures: &[(Case, String)]) {
    let lines: Vec<String> = failures
        .iter()
        .map(|(case, why)| format!("  {}: {why}", case.label()))
        .collect();
    let failed: HashSet<String> = failures.iter().map(|(case, _)| case.label()).collect();
    eprintln!(
        "{} {what}: {} of {cases} cases passed",
        peer.name,
        cases - failed.len()
    );
    assert!(
        failures.is_empty(),
        "{} {what}: {} failures\n{}",
        peer.name,
        failures.len(),
        lines.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// wsx clients against peer servers.

/// Starts `peer`'s server script with one server per case; returns the process and each
/// case's port.
pub(crate) fn start_peer_servers(
    peer: &Peer,
    cases: &[Case],
    tls: Option<&Tls>,
) -> (PeerProcess, Vec<u16>) {
    let input: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(i, case)| format!("{i}\t{}", case.server_spec()))
        .collect();
    let deadline = Instant::now() + CASE_TIMEOUT;
    let mut process = PeerProcess::start(peer, &peer.server, &server_args(tls), &input);
    let mut ports = HashMap::new();
    loop {
        let line = process.line(deadline, "PORT line");
        if line == "READY" {
            break;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["PORT", id, port] => {
                let id: usize = id.parse().expect("case id");
                ports.insert(id, port.parse::<u16>().expect("port"));
            }
            _ => eprintln!("{}: {line}", peer.name),
        }
    }
    let ports = (0..cases.len())
        .map(|i| *ports.get(&i).expect("a port per case"))
        .collect();
    (process, ports)
}

/// The `HELLO` greeting of a peer server: the offer it saw and the answer it sent.
fn parse_hello(m: &Owned) -> Result<(String, String), String> {
    let Owned::Text(text) = m else {
        return Err(format!("first message is not the greeting: {m:?}"));
    };
    let mut lines = text.split('\n');
    match (lines.next(), lines.next(), lines.next()) {
        (Some("HELLO"), Some(offer), Some(answer)) => Ok((offer.to_owned(), answer.to_owned())),
        _ => Err(format!("bad greeting {text:?}")),
    }
}

/// Checks a greeting against the case: the answer the peer sent is the expected one.
pub(crate) fn check_hello(
    peer: &Peer,
    case: &Case,
    hello: &Owned,
) -> Result<Option<Answer>, String> {
    let (offer, answer) = parse_hello(hello)?;
    let expected = expected_answer(
        case.offer.as_ref(),
        case.server.as_ref(),
        peer.answers_unasked_full_window,
    );
    let got = parse_answer(&answer)?;
    if got != expected {
        return Err(format!(
            "to the offer {offer:?} the {} server answered {answer:?}, expected {expected:?}",
            peer.name
        ));
    }
    if case.offer.is_some() != offer.contains("permessage-deflate") {
        return Err(format!("the {} server saw the offer {offer:?}", peer.name));
    }
    Ok(expected)
}

pub(crate) fn client_options(case: &Case, tls: Option<&Tls>) -> ClientOptions {
    let mut options = ClientOptions::new()
        .no_proxy()
        .handshake_timeout(CASE_TIMEOUT);
    if let Some(tls) = tls {
        options = options.tls(ClientTls::with_ca_pem_file(&tls.ca).expect("the test CA"));
    }
    match case.offer.as_ref().and_then(Offer::client_options) {
        Some(deflate) => options.deflate(deflate),
        None => options,
    }
}

/// One case with the blocking client: greeting, then each message sent and its echo read.
fn blocking_case(
    peer: &Peer,
    case: &Case,
    port: u16,
    tls: Option<&Tls>,
    list: &[Owned],
) -> Result<(), String> {
    let url = format!("{}://127.0.0.1:{port}/", scheme(tls));
    let mut ws = blocking::connect_with(&url, &client_options(case, tls))
        .map_err(|e| format!("connect: {e}"))?;
    ws.set_read_timeout(Some(CASE_TIMEOUT))
        .map_err(|e| format!("read timeout: {e}"))?;
    let header: Vec<String> = ws
        .response()
        .headers()
        .filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-extensions"))
        .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
        .collect();
    let hello = ws.recv().map_err(|e| format!("greeting: {e}"))?;
    let expected = check_hello(peer, case, &hello)?;
    let seen = parse_answer(&header.join(", "))?;
    if seen != expected {
        return Err(format!("the client saw the answer {header:?}"));
    }
    for (n, m) in list.iter().enumerate() {
        match m {
            Owned::Text(t) => ws.send_text(t),
            Owned::Binary(b) => ws.send_binary(b),
            _ => unreachable!("only data messages"),
        }
        .map_err(|e| format!("send {}: {e}", n + 1))?;
        let echo = ws.recv().map_err(|e| format!("echo {}: {e}", n + 1))?;
        same_message(n + 1, m, &echo)?;
    }
    ws.close(CloseCode::NORMAL, "done")
        .map_err(|e| format!("close: {e}"))?;
    Ok(())
}

/// Runs [`cases_against_peer`] with the blocking client against `peer`'s servers; panics with
/// every case that failed.
pub(crate) fn blocking_client_against_peer_servers(peer: &Peer) {
    blocking_client_against(peer, &cases_against_peer(), None);
}

/// Runs [`wss_cases_against_peer`] with the blocking client against `peer`'s servers over
/// `wss://`; panics with every case that failed.
pub(crate) fn wss_blocking_client_against_peer_servers(peer: &Peer, tls: &Tls) {
    blocking_client_against(peer, &wss_cases_against_peer(), Some(tls));
}

fn blocking_client_against(peer: &Peer, cases: &[Case], tls: Option<&Tls>) {
    let (_process, ports) = start_peer_servers(peer, cases, tls);
    let list = messages();
    let failures: Vec<(Case, String)> = cases
        .iter()
        .zip(&ports)
        .filter_map(|(case, &port)| {
            // A panic inside the client (an assertion in the library) is that case's failure;
            // the other cases still run.
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                blocking_case(peer, case, port, tls, &list)
            }));
            match run {
                Ok(Ok(())) => None,
                Ok(Err(why)) => Some((*case, why)),
                Err(panic) => Some((
                    *case,
                    format!("the client panicked: {}", panic_text(&*panic)),
                )),
            }
        })
        .collect();
    let what = format!("server against the blocking client over {}://", scheme(tls));
    report(peer, &what, cases.len(), &failures);
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "?".to_owned())
}

/// What the engine client's handler reports to the test thread.
#[derive(Debug)]
enum ClientEvent {
    Open { tag: u64, compression: bool },
    Message { tag: u64, message: Owned },
    Close { tag: u64, close: CloseInfo },
    Error { tag: u64, error: String },
}

/// The engine client's handler: sends every message as soon as the connection opens, reports
/// everything to the test, and closes after the greeting and all the echoes.
struct Driver {
    events: Sender<ClientEvent>,
    list: Arc<Vec<Owned>>,
}

impl Handler for Driver {
    type State = usize;

    fn on_open(&mut self, conn: &mut Conn<'_, usize>) {
        let _ = self.events.send(ClientEvent::Open {
            tag: conn.tag(),
            compression: conn.compression(),
        });
        for m in self.list.iter() {
            let sent = match m {
                Owned::Text(t) => conn.send_text(t),
                Owned::Binary(b) => conn.send_binary(b),
                _ => continue,
            };
            if !matches!(sent, Ok(SendStatus::Sent | SendStatus::Queued)) {
                let _ = self.events.send(ClientEvent::Error {
                    tag: conn.tag(),
                    error: format!("send refused: {sent:?}"),
                });
            }
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_, usize>, message: Message<'_>) {
        let owned = match message {
            Message::Text(t) => Owned::Text(t.to_owned()),
            Message::Binary(b) => Owned::Binary(b.to_vec()),
        };
        let _ = self.events.send(ClientEvent::Message {
            tag: conn.tag(),
            message: owned,
        });
        *conn.state_mut() += 1;
        if *conn.state() == self.list.len() + 1 {
            let _ = conn.close(CloseCode::NORMAL, "done");
        }
    }

    fn on_close(&mut self, conn: &mut Conn<'_, usize>, close: &CloseInfo) {
        let _ = self.events.send(ClientEvent::Close {
            tag: conn.tag(),
            close: close.clone(),
        });
    }

    fn on_connect_error(&mut self, _url: &Url, tag: u64, error: &ClientError) {
        let _ = self.events.send(ClientEvent::Error {
            tag,
            error: error.to_string(),
        });
    }
}

/// One case with a fresh engine client (`Client::builder()`, one worker): connect, then the
/// open, the greeting, every echo and the close, in order; then the bytes on the wire.
fn engine_case(
    backend: Backend,
    peer: &Peer,
    case: &Case,
    port: u16,
    tls: Option<&Tls>,
    list: &Arc<Vec<Owned>>,
) -> Result<(), String> {
    let (tx, events) = mpsc::channel();
    let driver_list = list.clone();
    let engine = wsx::Client::builder()
        .threads(1)
        .pin_threads(false)
        .backend(backend)
        .start(move |_| Driver {
            events: tx.clone(),
            list: driver_list.clone(),
        })
        .map_err(|e| format!("engine client: {e}"))?;
    crate::backends::assert_runs_on(&engine, backend);
    let result = engine_exchange(peer, &engine, &events, case, port, tls, list);
    engine.shutdown(Duration::ZERO);
    crate::common::wait_for_workers(&engine, CASE_TIMEOUT);
    result
}

fn engine_exchange(
    peer: &Peer,
    engine: &ServerHandle,
    events: &Receiver<ClientEvent>,
    case: &Case,
    port: u16,
    tls: Option<&Tls>,
    list: &[Owned],
) -> Result<(), String> {
    let tag = 7;
    engine
        .connect(
            &format!("{}://127.0.0.1:{port}/", scheme(tls)),
            client_options(case, tls),
            tag,
        )
        .map_err(|e| format!("connect: {e}"))?;
    let next = || match events.recv_timeout(CASE_TIMEOUT) {
        Ok(e) => Ok(e),
        Err(RecvTimeoutError::Timeout) => Err("no event from the engine client".to_owned()),
        Err(RecvTimeoutError::Disconnected) => {
            Err("the engine client's worker is gone (it panicked?)".to_owned())
        }
    };
    let compression = match next()? {
        ClientEvent::Open {
            tag: t,
            compression,
        } if t == tag => compression,
        other => return Err(format!("expected the open, got {other:?}")),
    };
    let mut expected = None;
    let mut received = 0;
    loop {
        match next()? {
            ClientEvent::Message { tag: t, message } if t == tag => {
                if received == 0 {
                    expected = check_hello(peer, case, &message)?;
                } else {
                    let want = list
                        .get(received - 1)
                        .ok_or_else(|| format!("an extra message: {message:?}"))?;
                    same_message(received, want, &message)?;
                }
                received += 1;
            }
            ClientEvent::Close { tag: t, close } if t == tag => {
                if received != list.len() + 1 || close.code != CloseCode::NORMAL {
                    return Err(format!(
                        "closed after the greeting and {} echoes: {close:?}",
                        received.saturating_sub(1)
                    ));
                }
                break;
            }
            other => return Err(format!("unexpected {other:?}")),
        }
    }
    if compression != expected.is_some() {
        return Err(format!(
            "conn.compression() is {compression}, the answer {expected:?}"
        ));
    }
    // The connection's last bytes are counted in the turn that removes it.
    if !wait_until(CASE_TIMEOUT, || engine.stats().connections == 0) {
        return Err(format!("the connection stays open: {:?}", engine.stats()));
    }
    let stats = engine.stats();
    check_wire(
        expected.is_some(),
        total_bytes(list),
        stats.bytes_in,
        stats.bytes_out,
    )
}

/// Runs [`cases_against_peer`] with the engine client against `peer`'s servers, one case
/// after another; panics with every case that failed.
pub(crate) fn engine_client_against_peer_servers(backend: Backend, peer: &Peer) {
    engine_client_against(backend, peer, &cases_against_peer(), None);
}

/// Runs [`wss_cases_against_peer`] with the engine client against `peer`'s servers over
/// `wss://`, one case after another; panics with every case that failed.
pub(crate) fn wss_engine_client_against_peer_servers(backend: Backend, peer: &Peer, tls: &Tls) {
    engine_client_against(backend, peer, &wss_cases_against_peer(), Some(tls));
}

fn engine_client_against(backend: Backend, peer: &Peer, cases: &[Case], tls: Option<&Tls>) {
    let (_process, ports) = start_peer_servers(peer, cases, tls);
    let list = Arc::new(messages());
    let failures: Vec<(Case, String)> = cases
        .iter()
        .zip(&ports)
        .filter_map(|(case, &port)| {
            engine_case(backend, peer, case, port, tls, &list)
                .err()
                .map(|why| (*case, why))
        })
        .collect();
    let what = format!("server against the engine client over {}://", scheme(tls));
    report(peer, &what, cases.len(), &failures);
}

/// Node with ws 8 installed under `target/` (npm), as a [`Peer`]; shared by the engine's and
/// the tokio adapter's interop tests.
pub(crate) fn install_node_ws() -> Result<Peer, String> {
    let dir = target_dir().join("interop-node");
    run_setup(Command::new("node").arg("--version"))
        .map_err(|e| format!("node is not usable, the ws interop tests did not run ({e})"))?;
    if !dir.join("node_modules/ws/package.json").exists() {
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {dir:?}: {e}"))?;
        run_setup(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--silent", "ws@8"])
                .current_dir(&dir),
        )
        .map_err(|e| {
            format!("`npm install ws@8` failed, the ws interop tests did not run ({e})")
        })?;
    }
    let modules: PathBuf = dir.join("node_modules");
    Ok(Peer {
        name: "ws",
        program: "node".into(),
        env: vec![("NODE_PATH".into(), modules.to_string_lossy().into_owned())],
        client: script("ws_client.js"),
        server: script("ws_server.js"),
        answers_unasked_full_window: true,
    })
}

/// The Python `websockets` pin the interop tests use.
const WEBSOCKETS: &str = "websockets>=17,<18";

/// A venv under `target/` with Python's `websockets` installed, as a [`Peer`].
pub(crate) fn install_python_websockets() -> Result<Peer, String> {
    let venv = target_dir().join("interop-python");
    let python = venv.join("bin/python");
    if !python.exists() {
        run_setup(Command::new("python3").arg("-m").arg("venv").arg(&venv)).map_err(|e| {
            format!("cannot create a venv, the websockets interop tests did not run ({e})")
        })?;
    }
    let check =
        "import websockets, sys; sys.exit(websockets.version.version.split('.')[0] != '17')";
    if run_setup(Command::new(&python).args(["-c", check])).is_err() {
        run_setup(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            WEBSOCKETS,
        ]))
        .map_err(|e| {
            format!(
                "`pip install {WEBSOCKETS}` failed, the websockets interop tests did not run ({e})"
            )
        })?;
    }
    Ok(Peer {
        name: "websockets",
        program: python,
        env: Vec::new(),
        client: script("py_client.py"),
        server: script("py_server.py"),
        answers_unasked_full_window: true,
    })
}

//! The stable fuzzer: a time-boxed mutation driver over the same targets, for machines without
//! the nightly toolchain cargo-fuzz needs. It is not coverage-guided: it mutates the committed
//! corpus (and whatever libFuzzer left in `fuzz/corpus/<target>/`) with libFuzzer's kinds of
//! mutation — bit flips, random and boundary bytes, inserted and erased runs, copied runs,
//! splices of two inputs, protocol tokens — and runs each mutant, stacking mutations now and
//! then. A panic is a crash: its input goes to `fuzz/artifacts/<target>/` and the run stops.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Target;

/// The longest input the driver builds.
pub const MAX_LEN: usize = 8192;

/// Bytes that mean something to the parsers under test.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b": ",
    b", ",
    b"; ",
    b"=",
    b"\"",
    b"\\",
    b"[",
    b"]",
    b"HTTP/1.1 ",
    b"HTTP/1.0 ",
    b"101 ",
    b"200 ",
    b"GET / HTTP/1.1\r\n",
    b"Upgrade: websocket\r\n",
    b"Connection: Upgrade\r\n",
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
    b"Sec-WebSocket-Extensions: ",
    b"permessage-deflate",
    b"client_max_window_bits",
    b"server_no_context_takeover",
    b"PROXY TCP4 ",
    b"\r\n\r\n\0\r\nQUIT\n",
    b"for=",
    b"ws://",
    b"\x05\x00",
    b"\x05\x02",
    b"\x01\x00",
    b"\x05\x00\x00\x01",
    b"\x81\x85",
    b"\x88\x02\x03\xe8",
    b"\x7e\xff\xff",
    b"\x7f\x7f\xff\xff\xff\xff\xff\xff\xff",
    b"\x00\x00\xff\xff",
];

/// Boundary bytes.
const BYTES: &[u8] = &[
    0x00, 0x01, 0x7d, 0x7e, 0x7f, 0x80, 0x81, 0x88, 0x89, 0x8a, 0xc1, 0xff,
];

/// What one run did.
#[derive(Debug)]
pub struct Report {
    /// Inputs run.
    pub executions: u64,
    /// Inputs the run started from.
    pub corpus: usize,
    /// How long it ran.
    pub elapsed: Duration,
    /// The crashing input's file, if one crashed.
    pub crash: Option<(PathBuf, String)>,
}

/// Every input committed for `target` under `fuzz_dir` (`seeds/`, `regressions/`) and, if
/// `with_corpus`, what libFuzzer grew in `corpus/`; each as (file, bytes), sorted by file.
pub fn inputs(fuzz_dir: &Path, target: &str, with_corpus: bool) -> Vec<(PathBuf, Vec<u8>)> {
    let mut dirs = vec!["seeds", "regressions"];
    if with_corpus {
        dirs.push("corpus");
    }
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(fuzz_dir.join(dir).join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file() {
                if let Ok(bytes) = std::fs::read(&path) {
                    out.push((path, bytes));
                }
            }
        }
    }
    out.sort();
    out
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Applies one random mutation to `input`; `other` is a second corpus input for splices.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>, other: &[u8]) {
    let len = input.len();
    match rng.below(11) {
        0 if len > 0 => {
            let i = rng.below(len);
            input[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            input[i] = rng.next() as u8;
        }
        2 if len > 0 => {
            let i = rng.below(len);
            input[i] = BYTES[rng.below(BYTES.len())];
        }
        3 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            input.splice(at..at, bytes);
        }
        4 if len > 0 => {
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(64));
            input.drain(at..at + n);
        }
        5 if len > 0 => {
            // Copy a run elsewhere (repeats: headers, fragments).
            let from = rng.below(len);
            let n = 1 + rng.below((len - from).min(256));
            let run = input[from..from + n].to_vec();
            let at = rng.below(len + 1);
            input.splice(at..at, run);
        }
        6 if !other.is_empty() => {
            // Splice: a prefix of this input, a suffix of the other.
            let cut = rng.below(len + 1);
            let from = rng.below(other.len());
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
        7 => {
            let token = TOKENS[rng.below(TOKENS.len())];
            let at = rng.below(len + 1);
            input.splice(at..at, token.iter().copied());
        }
        8 if len >= 2 => {
            // A boundary integer, big-endian as the wire has them.
            let values: [u64; 6] = [0, 125, 126, 0xffff, 0x7fff_ffff_ffff_ffff, u64::MAX];
            let v = values[rng.below(values.len())].to_be_bytes();
            let n = [2usize, 4, 8][rng.below(3)].min(len);
            let at = rng.below(len - n + 1);
            input[at..at + n].copy_from_slice(&v[8 - n..]);
        }
        9 if len > 1 => input.truncate(rng.below(len)),
        _ if len > 0 => {
            // The first byte is every target's seed byte: change it often.
            input[0] = rng.next() as u8;
        }
        _ => input.push(rng.next() as u8),
    }
    input.truncate(MAX_LEN);
}

/// The message of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_owned()
    }
}

/// FNV-1a, to name a crash file after its input.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// How long a run goes on.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// For this long (the fuzzing step).
    Time(Duration),
    /// For this many inputs (a deterministic test, with a fixed seed).
    Executions(u64),
}

/// Mutates `target`'s corpus under `fuzz_dir` within `budget`, from random state `seed`. Stops
/// at the first crash, whose input it writes to `fuzz_dir/artifacts/<target>/crash-<hash>`.
/// The corpus is the committed inputs and, for a [`Budget::Time`] run, what libFuzzer left in
/// `corpus/` (a run by executions stays the same on every machine).
pub fn fuzz(target: &Target, fuzz_dir: &Path, budget: Budget, seed: u64) -> Report {
    let with_corpus = matches!(budget, Budget::Time(_));
    let corpus: Vec<Vec<u8>> = inputs(fuzz_dir, target.name, with_corpus)
        .into_iter()
        .map(|(_, bytes)| bytes)
        .collect();
    let corpus = if corpus.is_empty() {
        vec![Vec::new()]
    } else {
        corpus
    };
    let mut rng = Rng(seed | 1);
    let start = Instant::now();
    let mut executions = 0u64;
    let mut input = Vec::new();
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let mut crash = None;
    let more = |executions: u64| match budget {
        Budget::Time(time) => start.elapsed() < time,
        Budget::Executions(n) => executions < n,
    };
    while more(executions) {
        let batch = match budget {
            Budget::Time(_) => 64,
            Budget::Executions(n) => (n - executions).min(64),
        };
        for _ in 0..batch {
            // Stack mutations on the last input one time in four; otherwise start afresh.
            if input.is_empty() || rng.below(4) != 0 {
                input.clone_from(&corpus[rng.below(corpus.len())]);
            }
            let other = &corpus[rng.below(corpus.len())];
            for _ in 0..1 + rng.below(6) {
                mutate(&mut rng, &mut input, other);
            }
            executions += 1;
            let run = target.run;
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| run(&input))) {
                let dir = fuzz_dir.join("artifacts").join(target.name);
                let _ = std::fs::create_dir_all(&dir);
                let path = dir.join(format!("crash-{:016x}", fnv(&input)));
                let _ = std::fs::write(&path, &input);
                crash = Some((path, panic_message(&*payload)));
                break;
            }
        }
        if crash.is_some() {
            break;
        }
    }
    panic::set_hook(hook);
    Report {
        executions,
        corpus: corpus.len(),
        elapsed: start.elapsed(),
        crash,
    }
}

//! The fuzz targets (`fuzz/src/`) under `cargo test`, on stable: every committed input — the
//! corpus in `fuzz/seeds/<target>/` and every crash found so far in `fuzz/regressions/<target>/`
//! — then a fixed number of mutants of them per target (the stable driver with a fixed seed, so
//! the run is the same every time).
//!
//! It is also the stable fuzzer of `scripts/fuzz.sh`: with `WSX_FUZZ_SECS=N` each target is
//! mutated for N seconds instead, from seed `WSX_FUZZ_SEED` (default: the clock), starting from
//! what libFuzzer grew in `fuzz/corpus/` too; `WSX_FUZZ_TARGETS=a,b` picks targets. A crash's
//! input is written to `fuzz/artifacts/<target>/` and fails the run.

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// The targets are a library in fuzz/; here they are a module of this test.
#[allow(dead_code, unreachable_pub)]
#[path = "../fuzz/src/lib.rs"]
mod targets;

use targets::driver::{self, Budget};

/// Mutants per target under plain `cargo test`.
const TEST_EXECUTIONS: u64 = 2_000;

fn main() -> ExitCode {
    let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let secs: Option<f64> = std::env::var("WSX_FUZZ_SECS")
        .ok()
        .map(|s| s.parse().expect("WSX_FUZZ_SECS is a number of seconds"));
    let only: Option<Vec<String>> = std::env::var("WSX_FUZZ_TARGETS")
        .ok()
        .map(|s| s.split(',').map(str::to_owned).collect());
    let (budget, seed) = match secs {
        Some(s) => {
            let clock = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            let seed = std::env::var("WSX_FUZZ_SEED")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(clock.as_nanos() as u64);
            (Budget::Time(Duration::from_secs_f64(s)), seed)
        }
        None => (Budget::Executions(TEST_EXECUTIONS), 1),
    };
    println!("fuzz_corpus: fuzzer = wsx stable mutation driver (not coverage-guided), {budget:?}, seed {seed}");
    let mut failed = 0;
    for target in targets::TARGETS {
        if only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|n| n == target.name))
        {
            continue;
        }
        // Every committed input first: a failure names its file.
        let committed = driver::inputs(&fuzz_dir, target.name, false);
        assert!(
            !committed.is_empty(),
            "{}: no committed seeds in fuzz/seeds/{}",
            target.name,
            target.name
        );
        for (path, bytes) in &committed {
            if panic::catch_unwind(AssertUnwindSafe(|| (target.run)(bytes))).is_err() {
                println!(
                    "fuzz_corpus: FAIL {}: {} panics",
                    target.name,
                    path.display()
                );
                failed += 1;
            }
        }
        let report = driver::fuzz(target, &fuzz_dir, budget, seed);
        println!(
            "fuzz_corpus: {:<17} {} committed inputs replayed, {} mutants of {} in {:.1} s, {}",
            target.name,
            committed.len(),
            report.executions,
            report.corpus,
            report.elapsed.as_secs_f64(),
            match &report.crash {
                None => "0 crashes".to_owned(),
                Some((path, message)) => format!("CRASH {message:?}, input in {}", path.display()),
            }
        );
        if report.crash.is_some() {
            failed += 1;
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        println!("fuzz_corpus: {failed} failures");
        ExitCode::FAILURE
    }
}

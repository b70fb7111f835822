#!/usr/bin/env bash
# Fuzz every target in fuzz/ for SECONDS_PER_TARGET seconds (default 20), starting from the
# committed corpus in fuzz/seeds/<target>/ and the crashes in fuzz/regressions/<target>/.
# Fails on any crash (its input lands in fuzz/artifacts/<target>/).
#
# The fuzzer: cargo-fuzz (libFuzzer, coverage-guided) when the nightly toolchain is there
# (cargo-fuzz is installed if missing); otherwise, or with FUZZER=stable, the stable mutation
# driver of tests/fuzz_corpus.rs. The first line it prints says which one ran.
# TARGETS="a b" limits the run to some targets.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]
set -euo pipefail
secs="${1:-20}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"
# The targets: the [[bin]] entries of fuzz/Cargo.toml (not the package or its library).
all=$(grep -A1 '^\[\[bin\]\]$' Cargo.toml | sed -n 's/^name = "\([a-z_0-9]*\)"$/\1/p')
targets="${TARGETS:-$all}"
fuzzer="${FUZZER:-}"
if [ -z "$fuzzer" ]; then
    if cargo +nightly --version >/dev/null 2>&1; then fuzzer=libfuzzer; else fuzzer=stable; fi
fi

case "$fuzzer" in
libfuzzer)
    if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
        cargo install cargo-fuzz
    fi
    echo "fuzz.sh: fuzzer = cargo-fuzz (libFuzzer, coverage-guided, nightly), ${secs}s per target"
    cargo +nightly fuzz build -O
    status=0
    for t in $targets; do
        mkdir -p "corpus/$t" "seeds/$t" "regressions/$t" "artifacts/$t"
        echo "fuzz.sh: == $t"
        log="artifacts/$t/run.log"
        if cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" "regressions/$t" -- \
            -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
            # The last status line (executions, coverage, corpus) and the final stats.
            grep -E '^#[0-9]+' "$log" | tail -n 1
            grep -E '^stat::' "$log" || true
        else
            tail -n 60 "$log"
            echo "fuzz.sh: CRASH in $t (see fuzz/artifacts/$t/)"
            status=1
        fi
    done
    exit "$status"
    ;;
stable)
    echo "fuzz.sh: fuzzer = wsx stable mutation driver (tests/fuzz_corpus.rs, not coverage-guided), ${secs}s per target"
    cd "$root"
    # Release speed with the checks a debug build has, in a target directory of its own.
    CARGO_TARGET_DIR=target/fuzz-stable \
    CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true \
    CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true \
    WSX_FUZZ_SECS="$secs" WSX_FUZZ_TARGETS="$(echo $targets | tr ' ' ',')" \
        cargo test --release --test fuzz_corpus
    ;;
*)
    echo "fuzz.sh: FUZZER is libfuzzer or stable, not '$fuzzer'" >&2
    exit 2
    ;;
esac

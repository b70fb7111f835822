#!/usr/bin/env bash
# Fuzz every target in fuzz/ for SECONDS_PER_TARGET seconds (default 20), starting from the
# committed corpus in fuzz/seeds/<target>/. Fails on any crash.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]
set -euo pipefail
secs="${1:-20}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"
targets=$(sed -n 's/^name = "\([a-z_0-9]*\)"$/\1/p' Cargo.toml | grep -v '^wsx-fuzz$')
if cargo +nightly --version >/dev/null 2>&1; then
    if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
        cargo install cargo-fuzz
    fi
    echo "fuzz.sh: fuzzer = cargo-fuzz (libFuzzer, nightly), ${secs}s per target"
    cargo +nightly fuzz build -O
    status=0
    for t in $targets; do
        mkdir -p "corpus/$t" "seeds/$t"
        echo "fuzz.sh: == $t"
        mkdir -p "artifacts/$t"
        log="artifacts/$t/run.log"
        if cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
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
else
    echo "fuzz.sh: no nightly toolchain; the stable fallback driver is not written yet" >&2
    exit 2
fi

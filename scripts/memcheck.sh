#!/usr/bin/env bash
# The engine tests that close and reset connections with operations in flight, under
# AddressSanitizer (nightly Rust) or, without nightly, under valgrind: a buffer freed while the
# kernel or the worker still uses it, or a double free, fails the run.
#
#   scripts/memcheck.sh [--filter PATTERN] [TEST...]
#     TEST      integration test binaries (tests/TEST.rs), default: backpressure shutdown
#               churn broadcast limits callbacks engine_client resets tls
#     --filter  the test name filter, default "::io_uring" (the io_uring twin of each test);
#               "::epoll" runs the epoll twins
#   MEMCHECK_TOOL  asan or valgrind to force one (default: asan when `cargo +nightly` works)
#
# AddressSanitizer (with LeakSanitizer): RUSTFLAGS=-Zsanitizer=address, `cargo +nightly test
# --target x86_64-unknown-linux-gnu` (the target keeps build scripts and proc-macros
# unsanitized), in its own target directory (target/asan). Valgrind: the same test binaries built as usual, each
# run under `valgrind --error-exitcode=1`. It prints which tool ran. Without either tool it
# fails under CI=true and prints SKIPPED otherwise.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { echo "memcheck.sh: error: $*" >&2; exit 2; }
log() { echo "memcheck.sh: $*"; }

FILTER=::io_uring
TESTS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --filter) [ $# -ge 2 ] || die "--filter needs a pattern"; FILTER=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -f "tests/$1.rs" ] || die "no test binary tests/$1.rs"; TESTS+=("$1") ;;
  esac
  shift
done
[ ${#TESTS[@]} -gt 0 ] || TESTS=(backpressure shutdown churn broadcast limits callbacks engine_client resets tls)
test_args=()
for t in "${TESTS[@]}"; do test_args+=(--test "$t"); done

TOOL=${MEMCHECK_TOOL:-}
if [ -z "$TOOL" ]; then
  if cargo +nightly --version >/dev/null 2>&1; then
    TOOL=asan
  elif command -v valgrind >/dev/null; then
    TOOL=valgrind
  else
    why="neither a nightly toolchain (rustup toolchain install nightly) nor valgrind is installed"
    if [ "${CI:-}" = true ]; then die "$why"; fi
    echo "SKIPPED: $why; the memory checks did not run" >&2
    exit 0
  fi
fi

start=$(date +%s)
case "$TOOL" in
  asan)
    log "AddressSanitizer (cargo +nightly, -Zsanitizer=address): ${TESTS[*]}, filter '$FILTER'"
    # LeakSanitizer stays on (ASan's default): a buffer an operation never gave back fails the
    # run too. ASAN_OPTIONS=detect_leaks=0 turns it off while chasing something else.
    RUSTFLAGS="-Zsanitizer=address" CARGO_TARGET_DIR=target/asan \
      cargo +nightly test --no-fail-fast --target x86_64-unknown-linux-gnu "${test_args[@]}" -- "$FILTER"
    ;;
  valgrind)
    command -v valgrind >/dev/null || die "valgrind is not installed"
    log "valgrind (memcheck, --error-exitcode=1): ${TESTS[*]}, filter '$FILTER'"
    bins=$(cargo test --no-run --message-format=json "${test_args[@]}" \
      | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["executable"])')
    [ -n "$bins" ] || die "cargo built no test binary"
    failed=()
    for bin in $bins; do
      log "valgrind $(basename "$bin") $FILTER"
      valgrind --error-exitcode=1 --quiet "$bin" "$FILTER" || failed+=("$(basename "$bin")")
    done
    [ ${#failed[@]} -eq 0 ] || { log "valgrind FAILED: ${failed[*]}"; exit 1; }
    ;;
  *) die "MEMCHECK_TOOL=$TOOL: expected asan or valgrind" ;;
esac
log "$TOOL passed in $(( $(date +%s) - start ))s"

#!/usr/bin/env bash
# Autobahn|Testsuite against the wsx engine client (examples/autobahn_client.rs), checked
# against autobahn/expected-client.json.
#
#   scripts/autobahn-client.sh [--update] [CASES]
#     CASES     comma-separated case patterns, default "*"
#     --update  write the run's results into the expected file instead of comparing
#   AUTOBAHN_EXCLUDE  case patterns to skip, default none
#   AUTOBAHN_SHARED   the shared Autobahn scripts (default: <repo>/../shared/autobahn)
#   WSX_BACKEND       the engine client's IO backend: epoll, io_uring or auto (default auto),
#                     read by the engine; the client's output must name it
#
# Starts the fuzzing server on a free port, runs every case with the engine client, stops the
# server, summarizes (reports in reports/client/BACKEND), and compares every case's behavior
# and behaviorClose with the expected file (the same for both backends). Exits non-zero on any FAILED, UNIMPLEMENTED or MISSING
# case, any difference, or a client that did not finish. See docs/conformance.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
die() { echo "autobahn-client.sh: error: $*" >&2; exit 2; }
log() { echo "autobahn-client.sh: $*"; }

UPDATE=0
CASES=
while [ $# -gt 0 ]; do
  case "$1" in
    --update) UPDATE=1 ;;
    -*) die "unknown option $1" ;;
    *) CASES=$1 ;;
  esac
  shift
done
export AUTOBAHN_CASES=${CASES:-*}
export AUTOBAHN_EXCLUDE=${AUTOBAHN_EXCLUDE-}
SHARED=${AUTOBAHN_SHARED:-$ROOT/../shared/autobahn}
[ -x "$SHARED/fuzzingserver.sh" ] || die "no Autobahn scripts in $SHARED (set AUTOBAHN_SHARED)"
SHARED=$(cd "$SHARED" && pwd)
BACKEND=${WSX_BACKEND:-auto}
case "$BACKEND" in
  auto|epoll|io_uring) ;;
  *) die "WSX_BACKEND=$BACKEND names no backend (expected epoll, io_uring or auto)" ;;
esac
export WSX_BACKEND=$BACKEND
log "backend $BACKEND"
EXPECTED=$ROOT/autobahn/expected-client.json
OUTDIR=$ROOT/reports/client/$BACKEND
CLIENT_LOG=$ROOT/reports/autobahn-client-$BACKEND.log
AGENT=wsx

FUZZ_PID=
cleanup() {
  if [ -n "$FUZZ_PID" ] && kill -0 "$FUZZ_PID" 2>/dev/null; then
    kill -TERM "$FUZZ_PID" 2>/dev/null || true
    wait "$FUZZ_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT
start=$(date +%s)

"$SHARED/install.sh"
cargo build --release --example autobahn_client

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
mkdir -p "$OUTDIR"
"$SHARED/fuzzingserver.sh" "$PORT" "$OUTDIR" > "$ROOT/reports/fuzzingserver.log" 2>&1 &
FUZZ_PID=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  kill -0 "$FUZZ_PID" 2>/dev/null || die "fuzzingserver exited; see reports/fuzzingserver.log"
  sleep 0.2
done

failed=()
timeout 1200 target/release/examples/autobahn_client --deflate --url "ws://127.0.0.1:$PORT" --agent "$AGENT" \
  2>&1 | tee "$CLIENT_LOG" || failed+=("autobahn_client did not finish cleanly")
line=$(grep -m1 'engine on backend' "$CLIENT_LOG" || true)
if [ "$BACKEND" != auto ] && [ "$line" != "autobahn_client: engine on backend $BACKEND" ]; then
  failed+=("the engine client does not run on the backend $BACKEND: ${line:-no backend line}")
fi
cleanup
FUZZ_PID=

echo
"$SHARED/summarize.py" "$OUTDIR" --agent "$AGENT" || failed+=("summarize.py: FAILED, UNIMPLEMENTED or MISSING cases")
echo
if [ "$UPDATE" = 1 ]; then
  replace=()
  [ "$AUTOBAHN_CASES" = "*" ] && replace=(--replace)
  python3 "$ROOT/scripts/autobahn_expected.py" update "$OUTDIR" "$EXPECTED" "${replace[@]}" \
    || failed+=("could not update $EXPECTED")
elif [ ! -f "$EXPECTED" ]; then
  failed+=("no expected file $EXPECTED (create it with --update)")
else
  python3 "$ROOT/scripts/autobahn_expected.py" check "$OUTDIR" "$EXPECTED" \
    || failed+=("results differ from $EXPECTED (listed above)")
fi
elapsed=$(( $(date +%s) - start ))
if [ ${#failed[@]} -gt 0 ]; then
  log "FAILED on backend $BACKEND after ${elapsed}s:"
  printf '  - %s\n' "${failed[@]}"
  exit 1
fi
log "passed on backend $BACKEND in ${elapsed}s (reports in $OUTDIR)"

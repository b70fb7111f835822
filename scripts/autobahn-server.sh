#!/usr/bin/env bash
# Autobahn|Testsuite against `wsx serve` (the echo server), checked against
# autobahn/expected-server.json.
#
#   scripts/autobahn-server.sh [--update] [CASES]
#     CASES     comma-separated case patterns, default "*" (e.g. "1.*,5.*,7.7.1")
#     --update  write the run's results into the expected file instead of comparing
#               (with CASES "*" the file is replaced, otherwise the run's cases are merged)
#   AUTOBAHN_EXCLUDE  case patterns to skip, default none
#   AUTOBAHN_SHARED   the shared Autobahn scripts (default: <repo>/../shared/autobahn)
#   AUTOBAHN_VENV     passed on to install.sh / fuzzingclient.sh
#   WSX_BACKEND       the IO backend: epoll, io_uring or auto (default auto); passed to
#                     `wsx serve --backend`, whose start-up line must name it
#   WSX_TLS=1         over wss://: `wsx serve --tls-cert --tls-key` with a CA and leaf made
#                     by openssl (reports in reports/server-wss/BACKEND; same expected file)
#
# Builds wsx in release, starts it on a free port on the backend, runs the
# fuzzing client (reports in reports/server/BACKEND), stops the server with
# SIGTERM and requires a clean exit, summarizes, then compares every case's
# behavior/behaviorClose with the expected file (one for both backends). Exits
# non-zero on any FAILED, UNIMPLEMENTED or MISSING case, any difference from the
# expected file, a server that crashed, did not exit cleanly or runs on another
# backend than the one forced, or a harness error. See docs/conformance.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

die() { echo "autobahn-server.sh: error: $*" >&2; exit 2; }
log() { echo "autobahn-server.sh: $*"; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

UPDATE=0
CASES=
while [ $# -gt 0 ]; do
  case "$1" in
    --update) UPDATE=1 ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$CASES" ] || die "only one CASES argument (comma-separate patterns)"; CASES=$1 ;;
  esac
  shift
done
CASES=${CASES:-*}
export AUTOBAHN_EXCLUDE=${AUTOBAHN_EXCLUDE-}
export AUTOBAHN_AGENT=${AUTOBAHN_AGENT:-wsx}

SHARED=${AUTOBAHN_SHARED:-$ROOT/../shared/autobahn}
[ -d "$SHARED" ] && [ -x "$SHARED/fuzzingclient.sh" ] && [ -x "$SHARED/summarize.py" ] \
  || die "no Autobahn scripts in $SHARED (expected the shared checkout next to the repo: ../shared/autobahn; or set AUTOBAHN_SHARED)"
SHARED=$(cd "$SHARED" && pwd)
BACKEND=${WSX_BACKEND:-auto}
case "$BACKEND" in
  auto|epoll|io_uring) ;;
  *) die "WSX_BACKEND=$BACKEND names no backend (expected epoll, io_uring or auto)" ;;
esac
export WSX_BACKEND=$BACKEND
EXPECTED=$ROOT/autobahn/expected-server.json
TLS=${WSX_TLS:-0}
SCHEME=ws
TLS_FLAGS=()
if [ "$TLS" = 1 ]; then
  SCHEME=wss
  OUTDIR=$ROOT/reports/server-wss/$BACKEND
  SERVER_LOG=$ROOT/reports/wsx-server-wss-$BACKEND.log
  CERTS=$ROOT/reports/tls-certs
  mkdir -p "$CERTS"
  command -v openssl >/dev/null || die "WSX_TLS=1 needs openssl"
  # A CA and a leaf for 127.0.0.1 (wstest does not verify; the leaf is still a proper one).
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -keyout "$CERTS/ca.key" -out "$CERTS/ca.pem" -subj /CN=wsx-autobahn-ca 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$CERTS/key.pem" \
    -out "$CERTS/leaf.csr" -subj /CN=localhost 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > "$CERTS/leaf.ext"
  openssl x509 -req -in "$CERTS/leaf.csr" -CA "$CERTS/ca.pem" -CAkey "$CERTS/ca.key" \
    -CAcreateserial -days 30 -extfile "$CERTS/leaf.ext" -out "$CERTS/cert.pem" 2>/dev/null
  TLS_FLAGS=(--tls-cert "$CERTS/cert.pem" --tls-key "$CERTS/key.pem")
else
  OUTDIR=$ROOT/reports/server/$BACKEND
  SERVER_LOG=$ROOT/reports/wsx-server-$BACKEND.log
fi
STOP_TIMEOUT=15   # seconds after SIGTERM; wsx's own grace period is 5 s
command -v python3 >/dev/null || die "python3 not found"

SERVER_PID=
FUZZ_PID=
cleanup() {
  if [ -n "$FUZZ_PID" ] && kill -0 "$FUZZ_PID" 2>/dev/null; then
    log "cleanup: stopping the fuzzing client (process group $FUZZ_PID)"
    kill -TERM -- "-$FUZZ_PID" 2>/dev/null || kill -TERM "$FUZZ_PID" 2>/dev/null || true
  fi
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    log "cleanup: stopping wsx (pid $SERVER_PID)"
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start=$(date +%s)

log "installing Autobahn (idempotent)"
"$SHARED/install.sh"

log "building wsx (release)"
cargo build --release --bin wsx

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

mkdir -p "$OUTDIR"
PORT=
for attempt in 1 2 3; do
  port=$(free_port)
  target/release/wsx serve --deflate --backend "$BACKEND" --port "$port" "${TLS_FLAGS[@]}" >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do   # up to 10 s
    kill -0 "$SERVER_PID" 2>/dev/null || break
    # Up once it accepts and has printed its start-up line (which names the backend).
    if grep -q 'listening on' "$SERVER_LOG" && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      PORT=$port; break
    fi
    sleep 0.1
  done
  [ -n "$PORT" ] && break
  log "wsx did not come up on port $port (attempt $attempt); its log:"
  sed 's/^/  | /' "$SERVER_LOG" >&2 || true
  cleanup
  SERVER_PID=
done
[ -n "$PORT" ] || die "cannot start wsx serve --backend $BACKEND"
line=$(grep -m1 'listening on' "$SERVER_LOG" || true)
log "backend $BACKEND asked for; wsx says: ${line:-nothing yet}"
if [ "$BACKEND" != auto ] && [[ "$line" != *"(backend $BACKEND,"* ]]; then
  die "wsx serve does not run on the backend $BACKEND: ${line:-no start-up line}"
fi
log "wsx serve (pid $SERVER_PID) accepts on 127.0.0.1:$PORT; log in $SERVER_LOG"

failed=()
log "running cases '$CASES' excluding '${AUTOBAHN_EXCLUDE}'"
# In the background, in its own process group, so that a signal to this script
# interrupts `wait` at once and cleanup can stop wstest (a grandchild) too.
setsid=()
command -v setsid >/dev/null && setsid=(setsid)
"${setsid[@]}" "$SHARED/fuzzingclient.sh" "$SCHEME://127.0.0.1:$PORT" "$CASES" "$OUTDIR" &
FUZZ_PID=$!
status=0; wait "$FUZZ_PID" || status=$?
FUZZ_PID=
[ "$status" -eq 0 ] || failed+=("fuzzingclient.sh failed with status $status")

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  status=0; wait "$SERVER_PID" || status=$?
  log "wsx died during the run (exit status $status); its log:"
  tail -n 50 "$SERVER_LOG" | sed 's/^/  | /'
  failed+=("wsx exited during the run with status $status")
else
  log "stopping wsx (SIGTERM to pid $SERVER_PID)"
  kill -TERM "$SERVER_PID"
  for _ in $(seq $((STOP_TIMEOUT * 10))); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    log "wsx did not exit within ${STOP_TIMEOUT}s of SIGTERM; killing it"
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    failed+=("wsx did not exit within ${STOP_TIMEOUT}s of SIGTERM")
  else
    status=0; wait "$SERVER_PID" || status=$?
    if [ "$status" -ne 0 ]; then
      failed+=("wsx exited with status $status after SIGTERM")
    else
      log "wsx exited cleanly (status 0)"
    fi
  fi
  SERVER_PID=
  if [ ${#failed[@]} -gt 0 ]; then tail -n 50 "$SERVER_LOG" | sed 's/^/  | /'; fi
fi

echo
"$SHARED/summarize.py" "$OUTDIR" || failed+=("summarize.py: FAILED, UNIMPLEMENTED or MISSING cases (listed above)")
echo

if [ "$UPDATE" = 1 ]; then
  mkdir -p "$(dirname "$EXPECTED")"
  replace=()
  [ "$CASES" = "*" ] && replace=(--replace)
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

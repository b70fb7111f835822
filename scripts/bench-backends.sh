#!/usr/bin/env bash
# The backend comparison of docs/performance.md ("Backends"): wsx on io_uring and on epoll beside
# uWebSockets C++ and the load generator's raw-ref server, in one interleaved run of
# ../shared/bench's scenarios, plus 10,000-connection echo, 10,000-subscriber broadcast and
# system calls per message. Every step is bounded in time and stops by itself; servers are
# stopped by their PID.
#
#   cargo build --release --example bench_server
#   UWS=/path/to/uws-echo-server scripts/bench-backends.sh
#   STEPS=anchors SCENARIOS="a b" REPS=1 DUR=4 scripts/bench-backends.sh     # a quick look
#
# Steps (STEPS, default "anchors wide syscalls"):
#   anchors   run-anchors.sh, SCENARIOS (a b c d e) x REPS rounds, peers interleaved:
#             wsx-uring, wsx-epoll, uws-cpp (if UWS is set), raw-ref
#   wide      echo over 10,000 connections (depth 1, 32 B) and broadcast to 10,000 subscribers
#             (32 B, window 16), same peers
#   syscalls  `strace -c -f` over a scenario-a run and a scenario-b run of each peer: system
#             calls per echoed message
#
# Environment: HARNESS (target/bench-harness, see scripts/bench-anchors.sh), UWS, REPS (3),
#   DUR (6), WARMUP (2), SCENARIOS, SERVER_CPU (0), CLIENT_CPU (1), OUTDIR, PLAIN (1: add
#   wsx-uring-plain, io_uring without SINGLE_ISSUER/DEFER_TASKRUN), BEFORE (an earlier
#   bench_server binary, peer wsx-before), ONLY (a list of peers)
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
HARNESS=$(cd "${HARNESS:-target/bench-harness}" 2> /dev/null && pwd) || {
    echo "no harness: run scripts/bench-anchors.sh once (it copies and sets up ../shared/bench)" >&2
    exit 1
}
WSX=$(realpath "${WSX:-target/release/examples/bench_server}")
UWS=${UWS:-}
[ -n "$UWS" ] && UWS=$(realpath "$UWS")
LG="$HARNESS/loadgen/target/release/loadgen"
REPS=${REPS:-3}
DUR=${DUR:-6}
WARMUP=${WARMUP:-2}
SCENARIOS=${SCENARIOS:-"a b c d e"}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
STEPS=${STEPS:-"anchors wide syscalls"}
OUTDIR=${OUTDIR:-$ROOT/target/bench-backends-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUTDIR"
ulimit -n 65536 2> /dev/null || ulimit -n "$(ulimit -Hn)" 2> /dev/null || true

declare -A CMD
CMD[wsx-uring]="env WSX_BACKEND=io_uring $WSX --port {port} --threads 1"
CMD[wsx-epoll]="env WSX_BACKEND=epoll $WSX --port {port} --threads 1"
# io_uring without SINGLE_ISSUER/DEFER_TASKRUN, for the set-up flags' share (PLAIN=1)
CMD[wsx-uring-plain]="env WSX_BACKEND=io_uring WSX_URING_SETUP=plain $WSX --port {port} --threads 1"
CMD[raw-ref]="$LG serve --port {port}"
PEERS="wsx-uring wsx-epoll raw-ref"
if [ -n "$UWS" ]; then
    CMD[uws-cpp]="$UWS {port}"
    PEERS="wsx-uring wsx-epoll uws-cpp raw-ref"
fi
[ "${PLAIN:-0}" = 1 ] && PEERS="$PEERS wsx-uring-plain"
# An earlier build of bench_server (BEFORE=path), to check that epoll lost no speed.
if [ -n "${BEFORE:-}" ]; then
    CMD[wsx-before]="$(realpath "$BEFORE") --port {port} --threads 1"
    PEERS="$PEERS wsx-before"
fi
PEERS=${ONLY:-$PEERS}

if [[ " $STEPS " == *" anchors "* ]]; then
    extra=""
    for p in $PEERS; do
        [ "$p" = raw-ref ] && continue
        extra="$extra${extra:+;}$p=${CMD[$p]}"
    done
    (cd "$HARNESS" && EXTRA_PEERS="$extra" PEERS="$PEERS" SCENARIOS="$SCENARIOS" REPS=$REPS \
        DUR=$DUR WARMUP=$WARMUP REF=${REF:-raw-ref} BASE_PORT=${BASE_PORT:-25100} \
        OUT="$OUTDIR/anchors.jsonl" ./run-anchors.sh) \
        | tee "$OUTDIR/anchors.txt"
fi

SPID=""
start() { # peer port
    local cmd=${CMD[$1]//\{port\}/$2}
    bash -c "exec taskset -c $SERVER_CPU $cmd" > /dev/null 2>> "$OUTDIR/servers.log" &
    SPID=$!
    for _ in $(seq 1 100); do
        (exec 3<> "/dev/tcp/127.0.0.1/$2") 2> /dev/null && return 0
        kill -0 "$SPID" 2> /dev/null || return 1
        sleep 0.1
    done
    return 1
}
stop() {
    [ -z "$SPID" ] && return
    kill -INT "$SPID" 2> /dev/null
    for _ in $(seq 1 50); do kill -0 "$SPID" 2> /dev/null || break; sleep 0.1; done
    kill -9 "$SPID" 2> /dev/null
    wait "$SPID" 2> /dev/null
    SPID=""
}
trap 'stop; exit 130' INT TERM
load() { # port label args...
    local port=$1 label=$2
    shift 2
    timeout $((DUR + WARMUP + 120)) taskset -c "$CLIENT_CPU" "$LG" "$@" -p "$port" \
        --server-pid "$SPID" --label "$label"
}

port=${WIDE_PORT:-25500}
if [[ " $STEPS " == *" wide "* ]]; then
    for rep in $(seq 1 "$REPS"); do
        for p in $PEERS; do
            port=$((port + 1))
            start "$p" $port || { echo "$p did not start" >&2; stop; continue; }
            sleep 0.5
            load $port "$p/echo10k/$rep" echo -c 10000 -d 1 -s 32 -t "$DUR" --warmup "$WARMUP" \
                | tail -n 1 | tee -a "$OUTDIR/wide.jsonl"
            stop
            port=$((port + 1))
            start "$p" $port || { echo "$p did not start" >&2; stop; continue; }
            sleep 0.5
            load $port "$p/bcast10k/$rep" broadcast -c 10000 -s 32 -w 16 -t "$DUR" --warmup "$WARMUP" \
                | tail -n 1 | tee -a "$OUTDIR/wide.jsonl"
            stop
        done
    done
fi

if [[ " $STEPS " == *" syscalls "* ]]; then
    for sc in a b; do
        case $sc in
            a) args="echo -c 100 -d 1 -s 32" ;;
            b) args="echo -c 100 -d 16 -s 32 --binary" ;;
        esac
        for p in $PEERS; do
            port=$((port + 1))
            trace="$OUTDIR/strace-$p-$sc.txt"
            start "$p" $port || { echo "$p did not start" >&2; stop; continue; }
            sleep 0.5
            timeout 60 strace -c -f -o "$trace" -p "$SPID" 2> /dev/null &
            tpid=$!
            sleep 0.5
            # shellcheck disable=SC2086
            load $port "$p/strace-$sc" $args -t 4 --warmup 0 | tail -n 1 > "$OUTDIR/strace-$p-$sc.json"
            kill -INT "$tpid" 2> /dev/null
            wait "$tpid" 2> /dev/null
            stop
            python3 - "$trace" "$OUTDIR/strace-$p-$sc.json" "$sc" "$p" << 'PY' | tee -a "$OUTDIR/syscalls.txt"
import json, sys
trace, result, sc, peer = sys.argv[1:]
calls = {}
for line in open(trace):
    f = line.split()
    if len(f) >= 5 and f[-1].isidentifier() and f[-1] != "total" and f[3].isdigit():
        calls[f[-1]] = int(f[3])
n = json.load(open(result)).get("msgs") or 1
top = sorted(calls.items(), key=lambda kv: -kv[1])[:4]
print(f"syscalls {sc} {peer}: {sum(calls.values()) / n:.3f} per message ({n} messages); "
      + ", ".join(f"{k} {v / n:.3f}" for k, v in top))
PY
        done
    done
fi
echo "results in $OUTDIR" >&2

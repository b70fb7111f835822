#!/usr/bin/env bash
# Reruns the broadcast figures of docs/performance.md ("Broadcast"): every step is bounded
# (each load generator run has a timeout, each server is stopped by its PID) and the script
# stops by itself. Server pinned to SERVER_CPU, load generator to CLIENT_CPU; peers interleaved
# within every round (the order rotates each round). Raw JSON lines go to $OUTDIR.
#
#   cargo build --release --example bench_server
#   HARNESS=target/bench-harness UWS=/path/to/uws-echo-server scripts/bench-broadcast.sh
#   STEPS="variants memory" REPS=1 DUR=3 scripts/bench-broadcast.sh      # a quick look
#
# Steps (STEPS, default all, in this order):
#   df        the harness's scenarios d and f (run-anchors.sh) with wsx, uws-cpp, uwsjs, bun,
#             node-ws and raw-ref (those of the harness that are installed)
#   variants  d's closed-loop broadcast with 10,000 subscribers, with 1 KiB messages, and with
#             compressed subscribers (--deflate, 1 KiB: the broadcast mode has no --payload json; servers under WS_DEFLATE=1;
#             raw-ref has no deflate and is left out there): wsx, uws-cpp, raw-ref
#   memory    server RSS with 10,000 subscribed connections minus RSS with 10,000 that are not
#             (bench_server --no-subscribe), and the engine's own figure (tests/broadcast.rs)
#   threads   d with bench_server --threads 1 (on SERVER_CPU) and --threads 2 (on SERVER_CPU,
#             and on both cores, shared with the load generator)
#   strace    syscalls per delivery in d for wsx and uws-cpp (strace -c -f over the whole run)
#   wire      loopback bytes per delivery in the compressed 1 KiB broadcast (/proc/net/dev `lo`,
#             both directions, IP/TCP headers and the run's handshakes included): shows that the
#             subscribers got compressed frames
#   perf      `perf record` of the server for 3 s in the middle of a d run, wsx and uws-cpp:
#             the top symbols and the write path's kernel symbols go to perf-<peer>.txt
#
# Environment: HARNESS (target/bench-harness: a copy of ../shared/bench after its setup.sh)
#   UWS (uWebSockets C++ peer binary, usage `uws-echo-server PORT`; its step rows are skipped
#   when absent)  WSX (target/release/examples/bench_server)  REPS (3)  DUR (6)  WARMUP (2)
#   SERVER_CPU (0)  CLIENT_CPU (1)  BASE_PORT (19300)  OUTDIR (target/bench-broadcast-<time>)
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

HARNESS=$(cd "${HARNESS:-target/bench-harness}" 2> /dev/null && pwd) || {
    echo "no harness: set HARNESS to a copy of ../shared/bench after its setup.sh" >&2
    exit 1
}
WSX=$(realpath "${WSX:-target/release/examples/bench_server}")
UWS=${UWS:-}
[ -n "$UWS" ] && UWS=$(realpath "$UWS")
LG="$HARNESS/loadgen/target/release/loadgen"
REPS=${REPS:-3}
DUR=${DUR:-6}
WARMUP=${WARMUP:-2}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
BASE_PORT=${BASE_PORT:-19300}
STEPS=${STEPS:-"df variants memory threads strace wire perf"}
OUTDIR=$(realpath -m "${OUTDIR:-target/bench-broadcast-$(date +%Y%m%d-%H%M%S)}")
mkdir -p "$OUTDIR"

for bin in "$LG" "$WSX"; do
    if [ ! -x "$bin" ]; then
        echo "missing $bin (cargo build --release --example bench_server; the harness's setup.sh)" >&2
        exit 1
    fi
done
if [ -z "$UWS" ] || [ ! -x "$UWS" ]; then
    echo "UWS not set or not executable: uws-cpp rows are skipped" >&2
    UWS=""
fi
ulimit -n 65536 2> /dev/null || true
echo "raw results: $OUTDIR" >&2

declare -A CMD
CMD[wsx]="$WSX --port {port}"
CMD[wsx-nosub]="$WSX --port {port} --no-subscribe"
CMD[wsx-t1]="$WSX --port {port} --threads 1"
CMD[wsx-t2]="$WSX --port {port} --threads 2"
CMD[raw-ref]="$LG serve --port {port}"
[ -n "$UWS" ] && CMD[uws-cpp]="$UWS {port}"

SPID=""
LPID=""
run=0
stop_server() {
    [ -z "$SPID" ] && return
    kill "$SPID" 2> /dev/null
    local i
    for i in $(seq 1 30); do
        kill -0 "$SPID" 2> /dev/null || break
        sleep 0.1
    done
    kill -9 "$SPID" 2> /dev/null
    wait "$SPID" 2> /dev/null
    SPID=""
}
cleanup() {
    [ -n "$LPID" ] && kill "$LPID" 2> /dev/null
    stop_server
}
trap 'cleanup; exit 130' INT TERM

start_server() { # name port cpus deflate(0/1)
    local cmd=${CMD[$1]//\{port\}/$2}
    bash -c "exec env WS_DEFLATE=$4 taskset -c $3 $cmd" > /dev/null 2>> "$OUTDIR/$1.log" &
    SPID=$!
    local i
    for i in $(seq 1 150); do
        kill -0 "$SPID" 2> /dev/null || return 1
        (exec 3<> "/dev/tcp/127.0.0.1/$2") 2> /dev/null && return 0
        sleep 0.1
    done
    return 1
}

# one_run OUTFILE TAG PEER CPUS DEFLATE LOADGEN-ARGS...: appends one JSON line to OUTFILE
one_run() {
    local out=$1 tag=$2 peer=$3 cpus=$4 deflate=$5
    shift 5
    local port=$((BASE_PORT + run % 40))
    run=$((run + 1))
    if ! start_server "$peer" "$port" "$cpus" "$deflate"; then
        echo "{\"tag\":\"$tag\",\"peer\":\"$peer\",\"mode\":\"error\",\"error\":\"server did not start\"}" >> "$out"
        stop_server
        return
    fi
    sleep 0.5
    local tmp="$OUTDIR/.last"
    timeout $((DUR + WARMUP + 90)) taskset -c "$CLIENT_CPU" "$LG" "$@" -p "$port" \
        --server-pid "$SPID" --label "$tag/$peer" > "$tmp" 2>> "$OUTDIR/loadgen.log" &
    LPID=$!
    wait "$LPID"
    LPID=""
    local line
    line=$(tail -n 1 "$tmp")
    case "$line" in "{"*) ;; *) line="{\"mode\":\"error\",\"error\":\"no result (timeout or crash)\"}" ;; esac
    echo "{\"tag\":\"$tag\",\"peer\":\"$peer\",\"cpus\":\"$cpus\",${line#\{}" >> "$out"
    echo "$tag $peer: $(echo "$line" | python3 -c 'import json,sys; r=json.load(sys.stdin); print({k: r.get(k) for k in ("deliveries_per_s","server_cpu_pct","server_rss_kb","lost","bad_msgs","proto_errors","closed")})' 2> /dev/null)" >&2
    stop_server
    sleep 0.5
}

# rounds OUTFILE TAG DEFLATE "PEER[@CPUS] ..." LOADGEN-ARGS...: REPS interleaved rounds
rounds() {
    local out=$1 tag=$2 deflate=$3
    local -a peers
    read -ra peers <<< "$4"
    shift 4
    local n=${#peers[@]} rep k
    for rep in $(seq 1 "$REPS"); do
        for k in $(seq 0 $((n - 1))); do
            local p=${peers[$(((k + rep) % n))]}
            local name=${p%@*} cpus=$SERVER_CPU
            [ "$p" != "$name" ] && cpus=${p#*@}
            [ -z "${CMD[$name]:-}" ] && continue
            one_run "$out" "$tag/r$rep" "$name" "$cpus" "$deflate" "$@"
        done
    done
}

D_ARGS="broadcast -c 1000 -s 32 -w 16 -t $DUR --warmup $WARMUP"
PEERS3="wsx raw-ref"
[ -n "$UWS" ] && PEERS3="wsx uws-cpp raw-ref"

for step in $STEPS; do
    case $step in
        df)
            extra="wsx=$WSX --port {port}"
            peers="wsx"
            [ -n "$UWS" ] && { extra="$extra;uws-cpp=$UWS {port}"; peers="$peers uws-cpp"; }
            REPS=$REPS DUR=$DUR WARMUP=$WARMUP SCENARIOS="d f" SERVER_CPU=$SERVER_CPU \
                CLIENT_CPU=$CLIENT_CPU PEERS="$peers uwsjs bun node-ws raw-ref" \
                EXTRA_PEERS="$extra" OUT="$OUTDIR/df.jsonl" "$HARNESS/run-anchors.sh" \
                > "$OUTDIR/df.md"
            ;;
        variants)
            rounds "$OUTDIR/variants.jsonl" c10k 0 "$PEERS3" \
                broadcast -c 10000 -s 32 -w 16 -t "$DUR" --warmup "$WARMUP" --connect-concurrency 256
            rounds "$OUTDIR/variants.jsonl" s1k 0 "$PEERS3" \
                broadcast -c 1000 -s 1024 -w 16 -t "$DUR" --warmup "$WARMUP"
            rounds "$OUTDIR/variants.jsonl" deflate 1 "${PEERS3% raw-ref}" \
                broadcast -c 1000 -s 1024 -w 16 --deflate -t "$DUR" --warmup "$WARMUP"
            ;;
        memory)
            rounds "$OUTDIR/memory.jsonl" mem 0 "wsx wsx-nosub" \
                idle -c 10000 --hold 4 --sample-after 2 --connect-concurrency 256
            cargo test --release --test broadcast ten_thousand -- --nocapture \
                > "$OUTDIR/engine-footprint.txt" 2>&1
            ;;
        threads)
            rounds "$OUTDIR/threads.jsonl" threads 0 \
                "wsx-t1@$SERVER_CPU wsx-t2@$SERVER_CPU wsx-t2@$SERVER_CPU,$CLIENT_CPU" $D_ARGS
            ;;
        strace)
            for peer in $PEERS3; do
                [ "$peer" = raw-ref ] && continue
                port=$((BASE_PORT + 45))
                start_server "$peer" "$port" "$SERVER_CPU" 0 || { stop_server; continue; }
                sleep 0.5
                timeout 60 strace -c -f -o "$OUTDIR/strace-$peer.txt" -p "$SPID" 2> /dev/null &
                spid=$!
                sleep 0.5
                timeout 60 taskset -c "$CLIENT_CPU" "$LG" broadcast -c 1000 -s 32 -w 16 -t 4 \
                    --warmup 0 -p "$port" --label "strace/$peer" 2>> "$OUTDIR/loadgen.log" \
                    | tail -n 1 | sed "s/^{/{\"peer\":\"$peer\",/" >> "$OUTDIR/strace.jsonl"
                kill -INT "$spid" 2> /dev/null
                wait "$spid" 2> /dev/null
                stop_server
            done
            ;;
        wire)
            for peer in $PEERS3; do
                [ "$peer" = raw-ref ] && continue
                port=$((BASE_PORT + 46))
                start_server "$peer" "$port" "$SERVER_CPU" 1 || { stop_server; continue; }
                sleep 0.5
                lo0=$(awk '$1 == "lo:" {print $2}' /proc/net/dev)
                line=$(timeout 60 taskset -c "$CLIENT_CPU" "$LG" broadcast -c 1000 -s 1024 -w 16 \
                    --deflate -t 3 --warmup 0 -p "$port" --label "wire/$peer" 2>> "$OUTDIR/loadgen.log" | tail -n 1)
                lo1=$(awk '$1 == "lo:" {print $2}' /proc/net/dev)
                echo "{\"peer\":\"$peer\",\"lo_bytes\":$((lo1 - lo0)),${line#\{}" >> "$OUTDIR/wire.jsonl"
                stop_server
            done
            ;;
        perf)
            for peer in $PEERS3; do
                [ "$peer" = raw-ref ] && continue
                port=$((BASE_PORT + 47))
                start_server "$peer" "$port" "$SERVER_CPU" 0 || { stop_server; continue; }
                sleep 0.5
                timeout 60 taskset -c "$CLIENT_CPU" "$LG" broadcast -c 1000 -s 32 -w 16 -t 5 \
                    --warmup 1 -p "$port" --label "perf/$peer" > /dev/null 2>> "$OUTDIR/loadgen.log" &
                LPID=$!
                sleep 2.5
                timeout 20 perf record -o "$OUTDIR/perf-$peer.data" -p "$SPID" -- sleep 3 \
                    > /dev/null 2>&1
                wait "$LPID"
                LPID=""
                stop_server
                {
                    perf report -i "$OUTDIR/perf-$peer.data" --no-children --sort dso 2> /dev/null \
                        | grep -v '^#' | grep -v '^$' | head -4
                    perf report -i "$OUTDIR/perf-$peer.data" --no-children --sort sym 2> /dev/null \
                        | grep -v '^#' | grep -v '^$' | head -20
                    echo "write path:"
                    perf report -i "$OUTDIR/perf-$peer.data" --no-children --sort sym 2> /dev/null \
                        | grep -E '_copy_from_iter|vfs_writev|fdget|__sys_sendto|sock_write_iter|memmove'
                } > "$OUTDIR/perf-$peer.txt"
            done
            ;;
        *) echo "unknown step $step" >&2 ;;
    esac
done

python3 - "$OUTDIR" << 'EOF'
import json, os, statistics, sys
d = sys.argv[1]
def rows(name):
    p = os.path.join(d, name)
    if not os.path.exists(p):
        return []
    return [json.loads(l) for l in open(p) if l.strip().startswith("{")]
def cpu_us(r):
    n = r.get("deliveries_per_s") or 0
    return (r.get("server_cpu_pct") or 0) / 100 / n * 1e6 if n else float("nan")
def med(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")
def table(name, key):
    groups = {}
    for r in rows(name):
        if r.get("mode") == "error":
            print(f"  error: {r}")
            continue
        groups.setdefault((r["tag"].split("/")[0], key(r)), []).append(r)
    for (tag, peer), rs in groups.items():
        print(f"| {tag} | {peer} | {med([r['deliveries_per_s'] for r in rs]):,.0f} | "
              f"{med([cpu_us(r) for r in rs]):.3f} | {med([r['complete_lat_us']['p99'] for r in rs]):,.0f} | "
              f"{sum(r.get('lost', 0) + r.get('bad_msgs', 0) + r.get('proto_errors', 0) for r in rs)} | {len(rs)} |")
if rows("variants.jsonl") or rows("threads.jsonl"):
    print("| run | peer | deliveries/s | server CPU µs/delivery | completion p99 µs | lost+bad+errors | rounds |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    table("variants.jsonl", lambda r: r["peer"])
    table("threads.jsonl", lambda r: f"{r['peer']} on cpu {r['cpus']}")
mem = rows("memory.jsonl")
if mem:
    by = {}
    for r in mem:
        by.setdefault(r["tag"].split("/")[1], {})[r["peer"]] = r.get("server_rss_kb", 0)
    diffs = [(v["wsx"] - v["wsx-nosub"]) * 1024 / 10000 for v in by.values() if "wsx" in v and "wsx-nosub" in v]
    print(f"memory per subscription (RSS, 10,000 conns, subscribed minus not): {diffs} B, median {med(diffs):.1f} B")
for r in rows("strace.jsonl"):
    p = os.path.join(d, f"strace-{r['peer']}.txt")
    calls = {}
    for l in open(p) if os.path.exists(p) else []:
        f = l.split()
        if len(f) >= 5 and f[-1].isidentifier() and f[-1] != "total" and f[3].isdigit():
            calls[f[-1]] = int(f[3])
    n = r.get("deliveries") or 1
    w = sum(calls.get(k, 0) for k in ("write", "writev", "sendmsg", "sendto", "sendmmsg"))
    print(f"strace {r['peer']}: {n} deliveries, write-type syscalls {w} ({w / n:.4f} per delivery), "
          f"all syscalls {sum(calls.values())}; top: {sorted(calls.items(), key=lambda x: -x[1])[:5]}")
for r in rows("wire.jsonl"):
    n = r.get("deliveries") or 1
    print(f"wire {r['peer']}: {r['lo_bytes']} loopback bytes for {n} deliveries of 1 KiB: "
          f"{r['lo_bytes'] / n:.1f} B per delivery")
EOF

#!/usr/bin/env bash
# Reruns the wsx-loadtest figures of docs/performance.md ("Measured with wsx-loadtest", "Scale
# record") and of loadtest/README.md ("Measured"). Every step is bounded (each run has a
# timeout, each server is stopped by its PID) and the script stops by itself. Servers are
# pinned to SERVER_CPU, load generators to CLIENT_CPU; within a round the order rotates.
# Raw outputs go to $OUTDIR, summaries to $OUTDIR/*.txt.
#
#   cargo build --release -p wsx-loadtest -p wsx
#   scripts/bench-loadtest.sh                                   # all steps, ~20 min
#   STEPS=efficiency REPS=1 DUR=3 scripts/bench-loadtest.sh     # a quick look
#
# Steps (STEPS, default all, in this order):
#   efficiency  messages per second per load-generator core: wsx-loadtest (--threads 1), the
#               shared loadgen and artillery (npm, its ws engine: 100 virtual users, each sends
#               and waits for the echo) against loadgen's raw reference server and
#               `wsx serve --threads 1`; echo -c 100 -s 32, -d 1 and -d 16 (artillery has no
#               pipelining: -d 1 only); and wsx-loadtest alone against its in-process sink
#               (--url inproc, both cores: the sink's thread is not counted as the generator's)
#   compare     `wsx-loadtest compare` against wsx serve, Node ws and uWS C++: echo closed loop
#               (-c 100 -d 1), echo at a fixed rate (--rate 20000 -c 100) and broadcast
#               (-c 1000 --rate 200 -s 64); JSON and SVG per scenario
#   scale       one `wsx serve --threads 1` (default idle timeout and automatic pings) holding
#               IDLE_CONNS idle connections pinged every 30 s (from SCALE_SOURCES), with 200 more
#               connections echoing at 2,000 msgs/s (1 %) from a second process at the same time
#
# Environment: LOADGEN (the shared generator: ../shared/bench's loadgen, release build)
#   NODE_WS (server.js of a bench-harness copy whose setup.sh installed its node_modules)  UWS (uws-echo-server binary, usage
#   `uws-echo-server PORT`)  ARTILLERY_DIR (target/artillery: `npm install artillery` there;
#   installed on first use)  REPS (3)  DUR (8 s measured)  WARMUP (2 s)  ART_COUNT (1200
#   echoes per artillery virtual user)  IDLE_CONNS (19700)  SCALE_SOURCES (127.0.2.1-127.0.2.32;
#   `auto` is what the first committed run used)  SERVER_CPU (0)  CLIENT_CPU (1)
#   BASE_PORT (27100; ports BASE_PORT..BASE_PORT+99 are used, keep within 27000-27999)
#   OUTDIR (docs/bench/loadtest-<date>)
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

LT=$(realpath target/release/wsx-loadtest)
WSX=$(realpath target/release/wsx)
LOADGEN=${LOADGEN:-/work/main/target/bench-harness/loadgen/target/release/loadgen}
# Node ws needs its node_modules: the harness copy that setup.sh installed has them
NODE_WS=${NODE_WS:-/work/main/target/bench-harness/peers/node-ws/server.js}
UWS=${UWS:-/work/uws-build/uws-echo-server}
ARTILLERY_DIR=$(realpath -m "${ARTILLERY_DIR:-target/artillery}")
REPS=${REPS:-3}
DUR=${DUR:-8}
WARMUP=${WARMUP:-2}
ART_COUNT=${ART_COUNT:-1200}
IDLE_CONNS=${IDLE_CONNS:-19700}
# `auto` puts up to 20,000 connections on one source address; with TIME_WAIT sockets of earlier
# runs on it, connects then wait for SYN retransmits (1 s, 3 s): 32 addresses ramp ~40x faster
SCALE_SOURCES=${SCALE_SOURCES:-127.0.2.1-127.0.2.32}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
BASE_PORT=${BASE_PORT:-27100}
STEPS=${STEPS:-"efficiency compare scale"}
OUTDIR=$(realpath -m "${OUTDIR:-docs/bench/loadtest-$(date +%Y%m%d)}")
mkdir -p "$OUTDIR"

for bin in "$LT" "$WSX" "$LOADGEN"; do
    if [ ! -x "$bin" ]; then
        echo "missing $bin (cargo build --release -p wsx-loadtest -p wsx; ../shared/bench/setup.sh for loadgen)" >&2
        exit 1
    fi
done
ulimit -n "$(ulimit -Hn)" 2> /dev/null || true
echo "raw results: $OUTDIR" >&2

declare -A CMD
CMD[raw-ref]="$LOADGEN serve -p {port}"
CMD[wsx]="$WSX serve --threads 1 --broadcast B --port {port}"
CMD[wsx-default]="$WSX serve --threads 1 --port {port}"
[ -d "$(dirname "$NODE_WS")/node_modules/ws" ] && CMD[node-ws]="node $NODE_WS {port}"
[ -x "$UWS" ] && CMD[uws-cpp]="$UWS {port}"

# name -> pid of the servers this script started
declare -A SPIDS
start_server() { # name port
    local cmd=${CMD[$1]//\{port\}/$2}
    # exec chain keeps one PID: bash -> taskset -> server
    bash -c "exec taskset -c $SERVER_CPU $cmd" > /dev/null 2>> "$OUTDIR/server-$1.log" &
    SPIDS[$1]=$!
    local i
    for i in $(seq 1 100); do
        if ! kill -0 "${SPIDS[$1]}" 2> /dev/null; then
            echo "server $1 exited at start (see $OUTDIR/server-$1.log)" >&2
            return 1
        fi
        if (exec 3<> "/dev/tcp/127.0.0.1/$2") 2> /dev/null; then return 0; fi
        sleep 0.1
    done
    echo "server $1 did not listen on $2" >&2
    return 1
}
stop_server() { # name
    local pid=${SPIDS[$1]:-}
    [ -z "$pid" ] && return
    kill "$pid" 2> /dev/null
    local i
    for i in $(seq 1 80); do
        kill -0 "$pid" 2> /dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2> /dev/null
    wait "$pid" 2> /dev/null
    unset "SPIDS[$1]"
}
stop_all() {
    local n
    for n in "${!SPIDS[@]}"; do stop_server "$n"; done
}
trap 'stop_all; exit 130' INT TERM
trap 'stop_all' EXIT

ensure_artillery() {
    ART="$ARTILLERY_DIR/node_modules/.bin/artillery"
    [ -x "$ART" ] && return 0
    mkdir -p "$ARTILLERY_DIR"
    echo "installing artillery under $ARTILLERY_DIR" >&2
    (cd "$ARTILLERY_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout 600 npm install --no-audit --no-fund artillery > npm.log 2>&1)
    [ -x "$ART" ]
}

# artillery: 100 virtual users arrive at once; each sends a 32-byte JSON text message and
# waits for its echo (the capture makes the step wait), $2 times.
artillery_yaml() { # port count
    cat << EOF
config:
  target: "ws://127.0.0.1:$1/"
  phases:
    - duration: 1
      arrivalCount: 100
scenarios:
  - name: echo
    engine: ws
    flow:
      - loop:
          - send:
              payload: '{"k":"xxxxxxxxxxxxxxxxxxxxxxxx"}'
              capture:
                json: "\$.k"
                as: "k"
        count: $2
EOF
}

# runs artillery once: its report JSON to $3.json and its CPU (user sys wall) to $3.time
run_artillery() { # port count base
    artillery_yaml "$1" "$2" > "$3.yml"
    ARTILLERY_DISABLE_TELEMETRY=true timeout 180 taskset -c "$CLIENT_CPU" \
        /usr/bin/time -f "%U %S %e" -o "$3.time" \
        "$ART" run --quiet --output "$3.json" "$3.yml" > "$3.log" 2>&1
}

step_efficiency() {
    local dir="$OUTDIR/efficiency"
    mkdir -p "$dir"
    local have_art=1
    ensure_artillery || {
        echo "artillery could not be installed: its rows are left out" >&2
        have_art=0
    }
    local port=$((BASE_PORT + 10)) round server depth g k
    local gens=(wsx-loadtest loadgen artillery)
    for round in $(seq 1 "$REPS"); do
        if [ "$have_art" = 1 ]; then
            # artillery's start-up and exit, no echoes: subtracted from its runs' CPU
            run_artillery 1 1 "$dir/r$round-artillery-baseline"
        fi
        for server in raw-ref wsx-default; do
            port=$((port + 1))
            start_server "$server" "$port" || continue
            local spid=${SPIDS[$server]}
            for depth in 1 16; do
                for k in 0 1 2; do
                    g=${gens[$(((round + k) % 3))]}
                    if [ "$g" = artillery ] && { [ "$have_art" = 0 ] || [ "$depth" != 1 ]; }; then
                        continue
                    fi
                    local base="$dir/r$round-$server-d$depth-$g"
                    echo "efficiency: round $round, $server, -d $depth, $g" >&2
                    case $g in
                        wsx-loadtest)
                            timeout $((DUR + WARMUP + 30)) taskset -c "$CLIENT_CPU" "$LT" echo \
                                --url "ws://127.0.0.1:$port/" -c 100 -d "$depth" -s 32 --threads 1 \
                                --duration "${DUR}s" --warmup "${WARMUP}s" --server-pid "$spid" \
                                -q --json "$base.json" > "$base.txt" 2>&1
                            ;;
                        loadgen)
                            timeout $((DUR + WARMUP + 30)) taskset -c "$CLIENT_CPU" "$LOADGEN" echo \
                                -p "$port" -c 100 -d "$depth" -s 32 -t "$DUR" --warmup "$WARMUP" \
                                --server-pid "$spid" > "$base.txt" 2>&1
                            tail -n 1 "$base.txt" > "$base.json"
                            ;;
                        artillery)
                            run_artillery "$port" "$ART_COUNT" "$base"
                            ;;
                    esac
                done
            done
            stop_server "$server"
        done
        # the in-process sink (--url inproc): the generator's ceiling; the sink's thread is not
        # counted as the generator's CPU; both cores, the kernel places the two threads
        for depth in 1 16; do
            local base="$dir/r$round-inproc-d$depth-wsx-loadtest"
            echo "efficiency: round $round, inproc, -d $depth, wsx-loadtest" >&2
            timeout $((DUR + WARMUP + 30)) taskset -c "$SERVER_CPU,$CLIENT_CPU" "$LT" echo \
                --url inproc -c 100 -d "$depth" -s 32 --threads 1 \
                --duration "${DUR}s" --warmup "${WARMUP}s" -q --json "$base.json" > "$base.txt" 2>&1
        done
    done
    python3 - "$dir" > "$OUTDIR/efficiency.txt" << 'EOF'
import json, os, re, statistics as st, sys
d = sys.argv[1]
def load(p):
    try:
        with open(p) as f:
            return json.load(f)
    except Exception:
        return None
def art_time(p):
    try:
        u, s, e = open(p).read().split()[:3]
        return float(u) + float(s), float(e)
    except Exception:
        return None
rows = {}  # (server, depth, gen) -> list of (round, msgs/s, cores, per core)
rounds = sorted({int(m.group(1)) for f in os.listdir(d) if (m := re.match(r"r(\d+)-", f))})
for r in rounds:
    base_cpu = art_time(f"{d}/r{r}-artillery-baseline.time")
    for server in ("raw-ref", "wsx-default", "inproc"):
        for depth in (1, 16):
            p = f"{d}/r{r}-{server}-d{depth}"
            j = load(f"{p}-wsx-loadtest.json")
            if j and j.get("msgs_per_s"):
                c = j["client"]["cores_used"]
                rows.setdefault((server, depth, "wsx-loadtest"), []).append((r, j["msgs_per_s"], c, j["msgs_per_s"] / c))
            j = load(f"{p}-loadgen.json")
            if j and j.get("msgs_per_s"):
                c = j["client_cpu_pct"] / 100
                rows.setdefault((server, depth, "loadgen"), []).append((r, j["msgs_per_s"], c, j["msgs_per_s"] / c))
            j = load(f"{p}-artillery.json")
            t = art_time(f"{p}-artillery.time")
            if j and t and base_cpu:
                a = j["aggregate"]
                n = a["counters"].get("websocket.messages_received", 0)
                rate = a["rates"].get("websocket.receive_rate", 0)
                cpu = t[0] - base_cpu[0]  # CPU of the echoes alone
                if n and cpu > 0:
                    per = n / cpu
                    rows.setdefault((server, depth, "artillery"), []).append((r, rate, rate / per, per))
def mm(v):
    return f"{st.median(v):,.0f} ({min(v):,.0f}-{max(v):,.0f})" if v else "-"
print(f"msgs/s per load-generator core, median (min-max) over rounds {rounds}")
print(f"{'server':<12} {'-d':>3} {'generator':<13} {'msgs/s':>28} {'cores':>6} {'msgs/s per core':>30}")
for server in ("raw-ref", "wsx-default", "inproc"):
    for depth in (1, 16):
        for g in ("wsx-loadtest", "loadgen", "artillery"):
            v = rows.get((server, depth, g))
            if not v:
                continue
            print(f"{server:<12} {depth:>3} {g:<13} {mm([x[1] for x in v]):>28} "
                  f"{st.median([x[2] for x in v]):>6.2f} {mm([x[3] for x in v]):>30}")
print()
print("ratio of msgs/s per core, per round, median (min-max)")
for server in ("raw-ref", "wsx-default"):
    for depth in (1, 16):
        lt = {x[0]: x[3] for x in rows.get((server, depth, "wsx-loadtest"), [])}
        for other in ("loadgen", "artillery"):
            o = {x[0]: x[3] for x in rows.get((server, depth, other), [])}
            rs = [lt[r] / o[r] for r in lt if r in o]
            if rs:
                print(f"  {server:<12} -d {depth:<3} wsx-loadtest : {other:<10} "
                      f"{st.median(rs):.2f} ({min(rs):.2f}-{max(rs):.2f})")
EOF
    cat "$OUTDIR/efficiency.txt"
}

step_compare() {
    local dir="$OUTDIR/compare"
    mkdir -p "$dir"
    local names=(wsx node-ws uws-cpp) targets=() n port=$((BASE_PORT + 40))
    for n in "${names[@]}"; do
        [ -n "${CMD[$n]:-}" ] || { echo "compare: $n not available, left out" >&2; continue; }
        port=$((port + 1))
        start_server "$n" "$port" || continue
        targets+=(--target "$n=ws://127.0.0.1:$port/,pid=${SPIDS[$n]}")
    done
    local t=$((REPS * ${#names[@]} * (DUR + WARMUP + 20) + 60))
    local name
    for name in echo-d1 echo-rate broadcast; do
        local scenario
        case $name in
            echo-d1) scenario="echo -c 100 -d 1 -s 32" ;;
            echo-rate) scenario="echo -c 100 --rate 20000 -s 32" ;;
            broadcast) scenario="broadcast -c 1000 --rate 200 -s 64" ;;
        esac
        echo "compare: $name: $scenario" >&2
        # shellcheck disable=SC2086
        timeout "$t" taskset -c "$CLIENT_CPU" "$LT" compare "${targets[@]}" --rounds "$REPS" \
            --json "$dir/$name.json" --svg "$dir/$name.svg" \
            $scenario --threads 1 --duration "${DUR}s" --warmup "${WARMUP}s" \
            > "$dir/$name.txt" 2> "$dir/$name.log"
        cat "$dir/$name.txt"
    done
    for n in "${names[@]}"; do stop_server "$n"; done
}

step_scale() {
    local dir="$OUTDIR/scale"
    mkdir -p "$dir"
    local port=$((BASE_PORT + 80))
    start_server wsx-default "$port" || return
    local spid=${SPIDS[wsx-default]}
    cat /proc/net/sockstat > "$dir/sockstat-before.txt"
    echo "scale: $IDLE_CONNS idle connections, pinged every 30 s, for 60 s" >&2
    timeout 240 taskset -c "$CLIENT_CPU" "$LT" idle --url "ws://127.0.0.1:$port/" \
        -c "$IDLE_CONNS" --ping 30s --sources "$SCALE_SOURCES" --server-pid "$spid" --threads 1 \
        --duration 60s --warmup 0s --connect-timeout 30s -q --json "$dir/idle.json" \
        > "$dir/idle.txt" 2>&1 &
    local ipid=$!
    # the 1 % starts once the idle fleet is open (the server's descriptors show it), at most 120 s
    local i
    for i in $(seq 1 1200); do
        local fds
        fds=$(ls "/proc/$spid/fd" 2> /dev/null | wc -l)
        [ "$fds" -ge "$IDLE_CONNS" ] && break
        kill -0 "$ipid" 2> /dev/null || break
        sleep 0.1
    done
    echo "scale: server holds $(ls "/proc/$spid/fd" | wc -l) descriptors; the 1 % echoes for 30 s" >&2
    cat /proc/net/sockstat > "$dir/sockstat-open.txt"
    awk '/^(VmRSS|VmHWM)/' "/proc/$spid/status" > "$dir/server-status-open.txt"
    timeout 90 taskset -c "$CLIENT_CPU" "$LT" echo --url "ws://127.0.0.1:$port/" -c 200 \
        --rate 2000 -s 32 --threads 1 --duration 30s --warmup 2s --sources 127.0.1.1-127.0.1.8 \
        -q --json "$dir/echo-1pc.json" > "$dir/echo-1pc.txt" 2>&1
    ls "/proc/$spid/fd" | wc -l > "$dir/server-fds-after-echo.txt"
    wait "$ipid"
    cat /proc/net/sockstat > "$dir/sockstat-after.txt"
    stop_server wsx-default
    cat "$dir/idle.txt" "$dir/echo-1pc.txt"
}

for s in $STEPS; do
    "step_$s"
done

#!/usr/bin/env bash
# Server memory per idle connection with and without permessage-deflate: wsx (bench_server)
# and Node's ws, 10,000 connections each (IDLE_CONNS), the load generator offering
# permessage-deflate in the compressed runs. Prints one line per run: server, deflate, B/conn.
#
#   scripts/bench-deflate-memory.sh
#
# Needs the harness built by scripts/bench-anchors.sh (target/bench-harness) and, for the ws
# rows, ws installed in target/interop-node (the interop test installs it).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
L=$ROOT/target/bench-harness/loadgen/target/release/loadgen
[ -x "$L" ] || { echo "run scripts/bench-anchors.sh once first (builds the load generator)" >&2; exit 2; }
N=${IDLE_CONNS:-10000}
ulimit -n 65536 2>/dev/null || true
cargo build --release --example bench_server --manifest-path "$ROOT/Cargo.toml" >/dev/null 2>&1
port=19500
measure() { # name deflate-flag cmd (with PORT in it)
    local name=$1 flag=$2 cmd=$3
    port=$((port + 1))
    bash -c "exec taskset -c 0 ${cmd//PORT/$port}" >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    sleep 0.5
    local rss0
    rss0=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
    local extra=()
    [ "$flag" = on ] && extra=(--deflate)
    local json
    json=$(taskset -c 1 "$L" idle -p "$port" -c "$N" --hold 4 --sample-after 2 --server-pid "$pid" "${extra[@]}" | tail -1)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    local rss1
    rss1=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["server_rss_kb"])' "$json")
    echo "$name deflate=$flag rss_before_kb=$rss0 rss_with_${N}_kb=$rss1 bytes_per_conn=$(( (rss1 - rss0) * 1024 / N ))"
}
measure wsx off "$ROOT/target/release/examples/bench_server --port PORT"
measure wsx on "$ROOT/target/release/examples/bench_server --port PORT --deflate"
if [ -d "$ROOT/target/interop-node/node_modules/ws" ]; then
    export NODE_PATH=$ROOT/target/interop-node/node_modules
    measure node-ws off "node $ROOT/scripts/bench/node_ws_server.js PORT"
    measure node-ws on "node $ROOT/scripts/bench/node_ws_server.js PORT --deflate"
fi

#!/usr/bin/env bash
# Instructions per echoed message in the harness's scenario b (100 connections, 16 messages in
# flight each, 32 B binary), counted by callgrind: machine noise does not move them.
#
#   scripts/callgrind-b.sh                          # wsx's bench_server
#   SERVER="/path/to/uws-echo-server {port}" scripts/callgrind-b.sh   # any peer of the harness
#
# The server runs under `valgrind --tool=callgrind`; the load generator (../shared/bench's,
# built by scripts/bench-anchors.sh into target/bench-harness) connects, the counters are zeroed
# once every connection is up, the generator runs SECS seconds with no warm-up, and the counters
# are dumped when it exits. Instructions per message = instructions in that window ÷ the
# messages the generator counted. Under callgrind the server is the bottleneck, so every read
# brings a connection's 16 messages at once: the case this scenario is about. Prints the total
# and the functions that cost the most per message (self cost, inlined code included).
#
# Environment: SECS (8), PORT (19611), SERVER (a command with {port}; default the bench_server
# of this tree, built first), LOADGEN (default target/bench-harness/.../loadgen), OUT (target/callgrind-b).
# A peer built with -march=native may use instructions valgrind does not know (AVX-512): build
# it for x86-64-v3 to count it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${SECS:-8}
PORT=${PORT:-19611}
OUT=${OUT:-$ROOT/target/callgrind-b}
LOADGEN=${LOADGEN:-$ROOT/target/bench-harness/loadgen/target/release/loadgen}
for tool in valgrind callgrind_control python3; do
    command -v "$tool" > /dev/null || { echo "callgrind-b.sh: $tool not found" >&2; exit 2; }
done
[ -x "$LOADGEN" ] || { echo "callgrind-b.sh: no load generator at $LOADGEN (run scripts/bench-anchors.sh once)" >&2; exit 2; }
if [ -z "${SERVER:-}" ]; then
    cargo build --release --example bench_server --manifest-path "$ROOT/Cargo.toml"
    SERVER="$ROOT/target/release/examples/bench_server --port {port} --threads 1"
fi
mkdir -p "$OUT"
rm -f "$OUT"/callgrind.out*
# shellcheck disable=SC2086 # the command is split into words on purpose
valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" --compress-strings=no \
    --compress-pos=no ${SERVER//\{port\}/$PORT} > "$OUT/server.log" 2>&1 &
VG=$!
trap 'kill $VG 2> /dev/null || true' EXIT
for _ in $(seq 1 300); do
    (exec 3<> "/dev/tcp/127.0.0.1/$PORT") 2> /dev/null && break
    kill -0 $VG 2> /dev/null || { echo "callgrind-b.sh: the server exited, see $OUT/server.log" >&2; exit 1; }
    sleep 0.1
done
"$LOADGEN" echo -p "$PORT" -c 100 -d 16 -s 32 --binary -t "$SECS" --warmup 0 \
    > "$OUT/loadgen.json" 2> "$OUT/loadgen.log" &
LG=$!
for _ in $(seq 1 300); do
    grep -q '^connected' "$OUT/loadgen.log" 2> /dev/null && break
    sleep 0.05
done
callgrind_control -z $VG > /dev/null 2>&1
wait $LG
callgrind_control -d $VG > /dev/null 2>&1
kill $VG 2> /dev/null || true
wait $VG 2> /dev/null || true
trap - EXIT
python3 - "$OUT" <<'PY'
import collections, glob, json, sys
out = sys.argv[1]
msgs = json.loads(open(f"{out}/loadgen.json").read().strip().splitlines()[-1])["msgs"]
dump = max(glob.glob(f"{out}/callgrind.out.*"), key=lambda p: int(p.rsplit(".", 1)[1]))
own = collections.Counter()
fn, after_call = None, False
for line in open(dump):
    if line.startswith("fn="):
        fn = line[3:].strip()
    elif line.startswith("calls="):
        after_call = True
    elif line[:1].isdigit():
        parts = line.split()
        if len(parts) >= 2 and not after_call:
            own[fn] += int(parts[1])
        after_call = False
total = sum(own.values())
print(f"messages {msgs}, instructions {total}, per message {total / msgs:.1f}")
for name, ir in own.most_common(12):
    print(f"{ir / msgs:8.1f}  {name[:110]}")
PY

#!/usr/bin/env bash
# Runs the neutral benchmark harness (../shared/bench) with wsx's bench_server beside the peers.
#
#   scripts/bench-anchors.sh                       # scenarios a b c e, peers: wsx uwsjs bun node-ws raw-ref
#   SCENARIOS="a b" REPS=1 DUR=5 scripts/bench-anchors.sh
#   PEERS="wsx raw-ref" scripts/bench-anchors.sh
#
# The harness directory is read-only, so it is copied to target/bench-harness first; its
# setup.sh builds the load generator and installs the npm peers there (once). Server and load
# generator are pinned to different cores (SERVER_CPU=0, CLIENT_CPU=1). Results: the tables the
# harness prints, and the raw JSONL under target/bench-harness/results/.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
[ -d "$SHARED" ] || { echo "bench-anchors.sh: no harness at $SHARED" >&2; exit 2; }
WORK=$ROOT/target/bench-harness

cargo build --release --example bench_server --manifest-path "$ROOT/Cargo.toml"
if [ ! -x "$WORK/loadgen/target/release/loadgen" ]; then
    mkdir -p "$WORK"
    cp -r "$SHARED"/. "$WORK"/
    chmod -R u+w "$WORK"
    # The copies live under this workspace's target/: make each Cargo package its own workspace.
    for toml in "$WORK"/loadgen/Cargo.toml "$WORK"/peers/rust/Cargo.toml; do
        grep -q '^\[workspace\]' "$toml" || printf '\n[workspace]\n' >> "$toml"
    done
    (cd "$WORK" && ./setup.sh)
fi
export EXTRA_PEERS="wsx=$ROOT/target/release/examples/bench_server --port {port} --threads 1"
export PEERS=${PEERS:-"wsx uwsjs bun node-ws raw-ref"}
export SCENARIOS=${SCENARIOS:-"a b c e"}
export REF=${REF:-raw-ref}
cd "$WORK"
./run-anchors.sh

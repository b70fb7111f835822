#!/usr/bin/env bash
# wss:// against ws:// on one `wsx serve` build, with wsx-loadtest (docs/performance.md "wss").
#
#   scripts/bench-tls.sh            # all steps, ~8 minutes on 2 cores
#   STEPS="echo idle" scripts/bench-tls.sh
#
# Steps:
#   echo        server CPU per message, scenarios a (100 connections, 1 in flight, 32 B text)
#               and c (10 connections, 1 in flight, 64 KiB binary): `wsx-loadtest compare` of
#               the plain and the TLS server in rotating rounds (medians, per-round range)
#   broadcast   server CPU per delivery: 1,000 subscribers, 200 publishes/s of 64 B
#   connect     handshakes per second, 2,000 connections (TLS: full handshakes, no resumption)
#   idle        memory per idle connection at IDLE_CONNS (10,000): server RSS and kernel memory
#
# Both servers run `--threads 1` pinned to SERVER_CPU (0), the generator `--threads 1` on
# CLIENT_CPU (1). Certificates: a CA and a P-256 leaf made with openssl in $OUTDIR.
# Ports 27200-27219. Results in $OUTDIR (target/bench-tls).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUTDIR=${OUTDIR:-target/bench-tls}
STEPS=${STEPS:-"echo broadcast connect idle"}
REPS=${REPS:-3}
DUR=${DUR:-10}
WARMUP=${WARMUP:-2}
IDLE_CONNS=${IDLE_CONNS:-10000}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
mkdir -p "$OUTDIR"

cargo build --release -q --bin wsx -p wsx
cargo build --release -q -p wsx-loadtest
WSX=target/release/wsx
LT=target/release/wsx-loadtest

# A CA and a P-256 leaf it signs for localhost and 127.0.0.1 (webpki refuses a CA
# certificate as the server's own, so one self-signed `req -x509` certificate will not do).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -keyout "$OUTDIR/ca.key" -out "$OUTDIR/ca.pem" -subj /CN=wsx-bench-ca 2> /dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$OUTDIR/key.pem" \
    -out "$OUTDIR/leaf.csr" -subj /CN=localhost 2> /dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > "$OUTDIR/leaf.ext"
openssl x509 -req -in "$OUTDIR/leaf.csr" -CA "$OUTDIR/ca.pem" -CAkey "$OUTDIR/ca.key" \
    -CAcreateserial -days 30 -extfile "$OUTDIR/leaf.ext" -out "$OUTDIR/cert.pem" 2> /dev/null

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null || true; done; }
trap cleanup EXIT

start() { # port [tls]: the server's PID in SPID (no subshell, so that cleanup knows it)
    local port=$1 extra=()
    [ "${2:-}" = tls ] && extra=(--tls-cert "$OUTDIR/cert.pem" --tls-key "$OUTDIR/key.pem")
    taskset -c "$SERVER_CPU" "$WSX" serve --port "$port" --threads 1 --broadcast B "${extra[@]}" \
        > /dev/null 2>> "$OUTDIR/server.log" &
    local pid=$!
    PIDS+=("$pid")
    local i
    for i in $(seq 1 100); do
        if (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null; then SPID=$pid; return; fi
        sleep 0.1
    done
    echo "server on $port did not start" >&2
    exit 1
}
stop() { kill "$1" 2> /dev/null || true; wait "$1" 2> /dev/null || true; }

step_echo() {
    local plain tls
    start 27201; plain=$SPID
    start 27202 tls; tls=$SPID
    local name scenario
    for name in a c; do
        case $name in
            a) scenario="echo -c 100 -d 1 -s 32" ;;
            c) scenario="echo -c 10 -d 1 -s 65536 --binary" ;;
        esac
        echo "echo: scenario $name: $scenario" >&2
        # shellcheck disable=SC2086
        taskset -c "$CLIENT_CPU" "$LT" compare \
            --target "ws=ws://127.0.0.1:27201/,pid=$plain" \
            --target "wss=wss://127.0.0.1:27202/,pid=$tls" \
            --rounds "$REPS" --json "$OUTDIR/echo-$name.json" \
            $scenario --tls-ca "$OUTDIR/ca.pem" --threads 1 --duration "${DUR}s" --warmup "${WARMUP}s" \
            > "$OUTDIR/echo-$name.txt" 2> "$OUTDIR/echo-$name.log"
        cat "$OUTDIR/echo-$name.txt"
    done
    stop "$plain"
    stop "$tls"
}

step_broadcast() {
    local plain tls
    start 27203; plain=$SPID
    start 27204 tls; tls=$SPID
    echo "broadcast: 1000 subscribers, 200 publishes/s, 64 B" >&2
    taskset -c "$CLIENT_CPU" "$LT" compare \
        --target "ws=ws://127.0.0.1:27203/,pid=$plain" \
        --target "wss=wss://127.0.0.1:27204/,pid=$tls" \
        --rounds "$REPS" --json "$OUTDIR/broadcast.json" \
        broadcast --tls-ca "$OUTDIR/ca.pem" -c 1000 --rate 200 -s 64 --threads 1 --duration "${DUR}s" \
        --warmup "${WARMUP}s" > "$OUTDIR/broadcast.txt" 2> "$OUTDIR/broadcast.log"
    cat "$OUTDIR/broadcast.txt"
    stop "$plain"
    stop "$tls"
}

step_connect() {
    local scheme port pid
    for scheme in ws wss; do
        port=$([ $scheme = ws ] && echo 27205 || echo 27206)
        start "$port" "$([ $scheme = wss ] && echo tls)"
        pid=$SPID
        echo "connect: $scheme, 2000 connections" >&2
        taskset -c "$CLIENT_CPU" "$LT" connect --url "$scheme://127.0.0.1:$port/" -c 2000 \
            --tls-ca "$OUTDIR/ca.pem" --server-pid "$pid" --threads 1 -q \
            --json "$OUTDIR/connect-$scheme.json" > "$OUTDIR/connect-$scheme.txt" 2>&1 || true
        cat "$OUTDIR/connect-$scheme.txt"
        stop "$pid"
    done
}

step_idle() {
    local scheme port pid
    for scheme in ws wss; do
        port=$([ $scheme = ws ] && echo 27207 || echo 27208)
        start "$port" "$([ $scheme = wss ] && echo tls)"
        pid=$SPID
        echo "idle: $scheme, $IDLE_CONNS connections" >&2
        taskset -c "$CLIENT_CPU" "$LT" idle --url "$scheme://127.0.0.1:$port/" \
            -c "$IDLE_CONNS" --tls-ca "$OUTDIR/ca.pem" --server-pid "$pid" --threads 1 \
            --duration 10s --warmup 0s --connect-timeout 30s -q \
            --json "$OUTDIR/idle-$scheme.json" > "$OUTDIR/idle-$scheme.txt" 2>&1 || true
        cat "$OUTDIR/idle-$scheme.txt"
        stop "$pid"
    done
}

for step in $STEPS; do
    "step_$step"
done

#!/usr/bin/env bash
# Soak: CONNECTIONS subscribers held on `wsx serve --broadcast B --broadcast-path /feed` for
# DURATION, each checking every publish (numbered, RATE per second) it gets; beside them, churn
# rounds on /echo (connect CHURN clients, echo numbered messages at a fixed rate, end), ending
# alternately with close 1000 and with a TCP reset, round after round. Every SAMPLE seconds it
# samples the server's RSS, descriptors and counters (`--stats-interval`, one JSON line a
# second); scripts/soak_check.py then judges the run (docs/reliability.md, "Soak", lists the
# checks). Exits 0 when every check passes.
# Usage: scripts/soak.sh [DURATION] [CONNECTIONS]
#   (defaults 30m 10000; SAMPLE=5 OUT=soak-out CHURN=200 RATE=2 WARMUP=65)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-30m}
CONNS=${2:-10000}
SAMPLE=${SAMPLE:-5}
OUT=${OUT:-soak-out}
export CHURN=${CHURN:-200}
RATE=${RATE:-2}
export WARMUP=${WARMUP:-65}
secs() { case $1 in *m) echo $(( ${1%m} * 60 ));; *s) echo "${1%s}";; *) echo "$1";; esac; }
TOTAL=$(secs "$DURATION")
mkdir -p "$OUT"
rm -f "$OUT"/*.log "$OUT"/*.json "$OUT"/*.txt
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
need=$(( CONNS + CHURN + 200 ))
if [ "$(ulimit -n)" -lt "$need" ]; then
  echo "soak: needs $need descriptors per process, the limit is $(ulimit -n)" >&2
  exit 2
fi
cargo build --release --bin wsx >/dev/null
cargo build --release -p wsx-loadtest >/dev/null
BIN=target/release
"$BIN/wsx" serve --port 0 --threads 1 --broadcast B --broadcast-path /feed \
  --stats-interval 1s >"$OUT/server.log" 2>"$OUT/stats.log" &
SPID=$!
HPID= CPID=
cleanup() {
  for p in $CPID $HPID $SPID; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
for _ in $(seq 100); do grep -qoE '127\.0\.0\.1:[0-9]+' "$OUT/server.log" && break; sleep 0.1; done
ADDR=$(grep -oE '127\.0\.0\.1:[0-9]+' "$OUT/server.log" | head -1)
rss() { awk '/VmRSS/ {print $2}' "/proc/$SPID/status"; }
fds() { ls "/proc/$SPID/fd" | wc -l; }
# The server's latest counters line, and one field of it.
stats() { grep '^{' "$OUT/stats.log" | tail -1 || true; }
field() { sed -nE "s/.*\"$1\":([0-9]+).*/\1/p" <<<"$2"; }
BASE_FDS=$(fds)
echo "server $SPID at ws://$ADDR/, baseline fds $BASE_FDS, $CONNS subscribers for ${TOTAL}s" \
  "(publishes ${RATE}/s), churn rounds of $CHURN"
"$BIN/wsx-loadtest" broadcast --url "ws://$ADDR/feed" -c "$CONNS" --rate "$RATE" -s 64 \
  --duration "${TOTAL}s" --warmup 0 --timeout 10s --drain 10s --sources auto \
  --connect-timeout 30s -q --json "$OUT/hold.json" >"$OUT/hold.log" 2>&1 &
HPID=$!

# Churn starts once the whole fleet is open; after each round the server must be back to the
# fleet's size (a connection it kept would show here, round by round).
(
  for _ in $(seq 1200); do
    [ "$(field connections "$(stats)")" = "$CONNS" ] && break
    kill -0 "$HPID" 2>/dev/null || exit 0
    sleep 0.1
  done
  round=0
  while kill -0 "$HPID" 2>/dev/null; do
    round=$((round + 1))
    if [ $((round % 2)) -eq 1 ]; then how=clean; else how=reset; fi
    rc=0
    "$BIN/wsx-loadtest" echo --url "ws://$ADDR/echo" -c "$CHURN" --duration 1s --warmup 0 \
      --rate 2000 --drain 10s --close "$how" -q --json "$OUT/churn-last.json" \
      >>"$OUT/churn.log" 2>&1 || rc=$?
    [ "$rc" -ne 0 ] && { cp "$OUT/churn-last.json" "$OUT/churn-failed-$round.json" || true; }
    # Wait (bounded) for a counters line written after the round that shows the fleet alone.
    from=$(wc -l <"$OUT/stats.log")
    back=-1
    for _ in $(seq 100); do
      line=$(tail -n +"$((from + 1))" "$OUT/stats.log" | grep '^{' | tail -1 || true)
      if [ -n "$line" ]; then
        back=$(field connections "$line")
        [ "$back" = "$CONNS" ] && break
      fi
      sleep 0.1
    done
    # A round that ends with the fleet gone (the run is over) is not judged on it.
    kill -0 "$HPID" 2>/dev/null || back=end
    echo "$round $how $rc $back" >>"$OUT/churn.txt"
  done
) &
CPID=$!

echo "t_s rss_kib fds connections heap_in_use_kib queued_bytes" | tee "$OUT/samples.txt"
start=$(date +%s)
while kill -0 "$HPID" 2>/dev/null; do
  t=$(( $(date +%s) - start ))
  s=$(stats)
  heap=$(field heap_in_use "$s")
  echo "$t $(rss) $(fds) $(field connections "$s") $(( ${heap:-0} / 1024 ))" \
    "$(field queued_bytes "$s")" | tee -a "$OUT/samples.txt"
  sleep "$SAMPLE"
done
HOLD_RC=0
wait "$HPID" || HOLD_RC=$?
wait "$CPID" || true
# The fleet is gone: the server must come back to no connections and its baseline descriptors.
for _ in $(seq 100); do
  [ "$(field connections "$(stats)")" = 0 ] && [ "$(fds)" -le $((BASE_FDS + 8)) ] && break
  sleep 0.2
done
sleep 1.2 # one more counters line, written after the last close
t=$(( $(date +%s) - start ))
s=$(stats)
heap=$(field heap_in_use "$s")
echo "$t $(rss) $(fds) $(field connections "$s") $(( ${heap:-0} / 1024 ))" \
  "$(field queued_bytes "$s")" >"$OUT/final.txt"
stats >"$OUT/final-stats.json"
python3 scripts/soak_check.py "$OUT" "$CONNS" "$TOTAL" "$BASE_FDS" "$HOLD_RC"

#!/usr/bin/env bash
# Soak: holds CONNECTIONS idle connections on `wsx serve --broadcast B` for DURATION while
# churn rounds (connect, echo at a bounded rate, close, reconnect) run beside them; samples the
# server's RSS and descriptors every SAMPLE seconds. Fails when RSS after warm-up varies more
# than 5 %, descriptors do not return to the baseline (within 8), or a churn round fails.
# Usage: scripts/soak.sh [DURATION] [CONNECTIONS]   (defaults 30m 10000; SAMPLE=5 OUT=soak-out)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-30m}
CONNS=${2:-10000}
SAMPLE=${SAMPLE:-5}
OUT=${OUT:-soak-out}
CHURN=${CHURN:-200}
mkdir -p "$OUT"
secs() { case $1 in *m) echo $(( ${1%m} * 60 ));; *s) echo "${1%s}";; *) echo "$1";; esac; }
TOTAL=$(secs "$DURATION")
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cargo build --release --bin wsx >/dev/null
cargo build --release -p wsx-loadtest >/dev/null
BIN=target/release
"$BIN/wsx" serve --port 0 --threads 1 --broadcast B >"$OUT/server.log" 2>&1 &
SPID=$!
trap 'kill "$SPID" 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -qoE '127\.0\.0\.1:[0-9]+' "$OUT/server.log" && break; sleep 0.1; done
ADDR=$(grep -oE '127\.0\.0\.1:[0-9]+' "$OUT/server.log" | head -1)
URL="ws://$ADDR/"
rss() { awk '/VmRSS/ {print $2}' "/proc/$SPID/status"; }
fds() { ls "/proc/$SPID/fd" | wc -l; }
BASE_FDS=$(fds)
echo "server $SPID at $URL, baseline fds $BASE_FDS, $CONNS connections for ${TOTAL}s"
"$BIN/wsx-loadtest" idle --url "$URL" -c "$CONNS" --duration "${TOTAL}s" --sources auto -q \
  --json "$OUT/hold.json" >"$OUT/hold.log" 2>&1 &
HPID=$!
(
  round=0 fail=0
  while kill -0 "$HPID" 2>/dev/null; do
    round=$((round + 1))
    if ! "$BIN/wsx-loadtest" echo --url "$URL" -c "$CHURN" --duration 1s --warmup 0 \
      --rate 2000 --drain 2s -q --json "$OUT/churn-last.json" >>"$OUT/churn.log" 2>&1; then
      fail=$((fail + 1))
    fi
    echo "$round $fail" >"$OUT/churn.count"
  done
) &
CPID=$!
echo "t_s rss_kib fds" | tee "$OUT/samples.txt"
start=$(date +%s)
while kill -0 "$HPID" 2>/dev/null; do
  t=$(( $(date +%s) - start ))
  echo "$t $(rss) $(fds)" | tee -a "$OUT/samples.txt"
  sleep "$SAMPLE"
done
wait "$HPID" && HOLD_RC=0 || HOLD_RC=$?
wait "$CPID" || true
for _ in $(seq 50); do [ "$(fds)" -le $((BASE_FDS + 8)) ] && break; sleep 0.2; done
FINAL_FDS=$(fds)
read -r ROUNDS FAILS <"$OUT/churn.count" || { ROUNDS=0; FAILS=0; }
WARM=$(( TOTAL / 5 ))
read -r MIN MAX <<<"$(awk -v w="$WARM" -v end="$TOTAL" 'NR>1 && $1>=w && $1<end {if(min==""||$2<min)min=$2; if($2>max)max=$2} END{print min+0, max+0}' "$OUT/samples.txt")"
SPREAD=$(awk -v a="$MIN" -v b="$MAX" 'BEGIN{ if (a>0) printf "%.2f", (b-a)*100/a; else print "0" }')
cat <<J | tee "$OUT/summary.json"
{"connections":$CONNS,"duration_s":$TOTAL,"baseline_fds":$BASE_FDS,"final_fds":$FINAL_FDS,"rss_min_kib":$MIN,"rss_max_kib":$MAX,"rss_spread_pct":$SPREAD,"churn_rounds":$ROUNDS,"churn_failed":$FAILS,"hold_rc":$HOLD_RC}
J
rc=0
awk -v s="$SPREAD" 'BEGIN{exit !(s>5)}' && { echo "FAIL: RSS spread $SPREAD % > 5 %"; rc=1; }
[ "$FINAL_FDS" -gt $((BASE_FDS + 8)) ] && { echo "FAIL: fds $FINAL_FDS vs baseline $BASE_FDS"; rc=1; }
[ "$FAILS" -gt 0 ] && { echo "FAIL: $FAILS churn rounds failed"; rc=1; }
[ "$HOLD_RC" -ne 0 ] && { echo "FAIL: the held fleet exited $HOLD_RC"; rc=1; }
[ "$rc" -eq 0 ] && echo "soak: ok"
exit "$rc"

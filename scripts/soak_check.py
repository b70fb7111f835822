#!/usr/bin/env python3
"""Judges a scripts/soak.sh run from what it left in OUT; prints OUT/summary.json and one
line per failed check, and exits 1 if any failed.

Usage: soak_check.py OUT CONNECTIONS DURATION_S BASELINE_FDS HOLD_RC  (from the environment:
WARMUP, seconds after the whole fleet is open before RSS is judged; CHURN, connections per
round).

The checks (docs/reliability.md, "Soak"):
- the subscribers' run exited 0: no error of any kind, every connection open to the end;
- every publish the publisher's send reported written reached every subscriber, each
  delivery checked (length, content, order) — `lost` 0, deliveries = publishes x subscribers;
- the server counted as many deliveries as the subscribers checked, dropped none
  (`delivery_dropped`, `dropped`), shed no connection and skipped no worker;
- every churn round passed (its echo replies checked for content and per-connection order)
  and left the server with the subscribers alone (`connections` back to CONNECTIONS);
- at the end: no connection open, `opened` = `closed`, descriptors back to the baseline;
- after the warm-up, RSS flat within 5 % (the highest of every 30 s); the allocator's bytes in
  use (mallinfo2) are reported beside it.
"""

import json
import os
import sys

FDS_SLACK = 8
RSS_BOUND_PCT = 5.0
WINDOW = 30


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def main():
    out, conns, total, base_fds, hold_rc = sys.argv[1:6]
    conns, total, base_fds, hold_rc = int(conns), int(total), int(base_fds), int(hold_rc)
    warmup = int(os.environ.get("WARMUP", "65"))
    churn_size = int(os.environ.get("CHURN", "200"))
    fails = []

    hold = load(os.path.join(out, "hold.json")) if os.path.exists(
        os.path.join(out, "hold.json")) else {}
    b = hold.get("broadcast") or {}
    errors = hold.get("errors", {})
    if hold_rc != 0:
        fails.append(f"the subscribers' run exited {hold_rc}: {errors.get('by_kind')}")
    if hold.get("connect", {}).get("opened") != conns:
        fails.append(f"{hold.get('connect', {}).get('opened')} of {conns} subscribers opened")
    publishes = hold.get("sent", 0)
    if publishes == 0 or b.get("publishes", 0) == 0:
        fails.append("no publish was made")
    if b.get("lost", 1) != 0 or b.get("deliveries") != b.get("expected_deliveries"):
        fails.append(f"deliveries lost: {b.get('lost')} of {b.get('expected_deliveries')}")
    if hold.get("received") != publishes * conns:
        fails.append(f"deliveries {hold.get('received')} != {publishes} publishes x {conns}")

    samples = []
    with open(os.path.join(out, "samples.txt"), encoding="utf-8") as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) == 6 and all(p.isdigit() for p in parts):
                samples.append(tuple(int(p) for p in parts))
    with open(os.path.join(out, "final.txt"), encoding="utf-8") as f:
        final = tuple(int(p) for p in f.read().split())
    try:
        stats = load(os.path.join(out, "final-stats.json"))
    except (OSError, ValueError):
        stats = {}
        fails.append("no final counters line from the server")

    rounds = []
    churn = os.path.join(out, "churn.txt")
    if os.path.exists(churn):
        with open(churn, encoding="utf-8") as f:
            rounds = [line.split() for line in f if line.strip()]
    failed = [r for r in rounds if r[2] != "0"]
    not_back = [r for r in rounds if r[3] not in (str(conns), "end")]
    resets = sum(1 for r in rounds if r[1] == "reset")
    if len(rounds) < 2:
        fails.append(f"{len(rounds)} churn rounds: a clean one and a reset one at least")
    if failed:
        fails.append(f"{len(failed)} churn rounds failed (first: {' '.join(failed[0])})")
    if not_back:
        fails.append(f"{len(not_back)} rounds left the server with other than {conns} "
                     f"connections (first: {' '.join(not_back[0])})")

    if stats:
        if stats.get("connections") != 0:
            fails.append(f"{stats.get('connections')} connections open at the end")
        if stats.get("opened") != stats.get("closed"):
            fails.append(f"opened {stats.get('opened')} != closed {stats.get('closed')}")
        # Every connection the clients made, and no other: the subscribers and CHURN per round.
        expected_opened = conns + churn_size * len(rounds)
        if stats.get("opened") != expected_opened:
            fails.append(f"the server opened {stats.get('opened')} connections, the clients "
                         f"made {expected_opened}")
        for k in ("dropped", "delivery_dropped", "shed", "publish_backlogged"):
            if stats.get(k) != 0:
                fails.append(f"server counter {k} = {stats.get(k)}")
        if stats.get("delivered") != hold.get("received"):
            fails.append(f"the server delivered {stats.get('delivered')}, the subscribers "
                         f"checked {hold.get('received')}")

    final_fds = final[2] if len(final) == 6 else -1
    if not 0 <= final_fds <= base_fds + FDS_SLACK:
        fails.append(f"fds {final_fds} at the end, baseline {base_fds}")

    # RSS: samples after the warm-up (WARMUP seconds after the whole fleet is open), while the
    # fleet is complete (not while it connects or closes). Each churn round brings its own
    # working set and glibc trims the heap's top or not as the last free leaves it, so RSS
    # swings by about a round's worth between samples; a leak is a rising envelope. The check:
    # the highest RSS of each WINDOW seconds, flat within 5 %.
    complete = next((s[0] for s in samples if s[3] >= conns), None)
    judged = [] if complete is None else [
        s for s in samples if s[0] >= complete + warmup and s[3] >= conns]
    peaks = {}
    for s in judged:
        w = (s[0] - judged[0][0]) // WINDOW
        peaks[w] = max(peaks.get(w, 0), s[1])
    peak = list(peaks.values())
    spread = (max(peak) - min(peak)) * 100.0 / min(peak) if peak else 0.0
    # Reported, not judged: the heap in use where nothing was queued (a publish on its way to
    # 10,000 subscribers holds ~1.7 MB of queue entries for as long as the writes take, and a
    # loaded server always has one on its way: then no sample has nothing queued).
    heap = [s[4] for s in judged if s[4] > 0 and s[5] == 0]
    heap_spread = (max(heap) - min(heap)) * 100.0 / min(heap) if heap else 0.0
    rss = [s[1] for s in judged]
    if len(peak) < 2:
        fails.append(f"{len(judged)} RSS samples after the {warmup} s warm-up: too short a run")
    elif spread > RSS_BOUND_PCT:
        fails.append(f"RSS peaks per {WINDOW} s spread {spread:.2f} % > {RSS_BOUND_PCT} %")

    summary = {
        "connections": conns,
        "duration_s": total,
        "warmup_s": warmup,
        "publishes": publishes,
        "deliveries": hold.get("received"),
        "lost": b.get("lost"),
        "reach_p99_us": (b.get("reach_us") or {}).get("p99"),
        "churn_rounds": len(rounds),
        "churn_resets": resets,
        "churn_failed": len(failed),
        "rounds_not_back": len(not_back),
        "server": {k: stats.get(k) for k in (
            "connections", "opened", "closed", "delivered", "delivery_dropped", "dropped",
            "shed", "messages_in", "messages_out")},
        "baseline_fds": base_fds,
        "final_fds": final_fds,
        "rss_min_kib": min(rss) if rss else None,
        "rss_max_kib": max(rss) if rss else None,
        "judged_from_s": judged[0][0] if judged else None,
        "rss_window_peaks_kib": peak,
        "rss_peak_spread_pct": round(spread, 2),
        "heap_in_use_idle_spread_pct": round(heap_spread, 2) if heap else None,
        "heap_in_use_max_kib": max(s[4] for s in judged) if judged else None,
        "heap_in_use_idle_min_kib": min(heap) if heap else None,
        "heap_in_use_idle_max_kib": max(heap) if heap else None,
        "rss_final_kib": final[1] if len(final) == 6 else None,
        "heap_in_use_final_kib": final[4] if len(final) == 6 else None,
        "failed_checks": fails,
    }
    text = json.dumps(summary)
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    print(text)
    for fail in fails:
        print(f"FAIL: {fail}")
    if not fails:
        print("soak: ok")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())

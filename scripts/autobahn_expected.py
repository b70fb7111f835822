#!/usr/bin/env python3
"""Compare an Autobahn report with the committed expected results, or update them.

usage: autobahn_expected.py check  REPORT_DIR EXPECTED_JSON
       autobahn_expected.py update REPORT_DIR EXPECTED_JSON [--replace]

REPORT_DIR is what fuzzingclient.sh wrote: index.json (agent -> case id ->
{"behavior", "behaviorClose", ...}) and cases.json (the requested case ids).
EXPECTED_JSON maps case id -> {"behavior": ..., "behaviorClose": ...}.

check:  for every requested case, the report's behavior and behaviorClose must
        equal the expected file's; a requested case that the expected file lacks,
        or that has no result in the report, is a difference. Cases in the
        expected file that were not requested are ignored (partial runs).
        Exit 0 if no difference, 1 otherwise, 2 on read errors.
update: write the requested cases' results into EXPECTED_JSON. Other entries are
        kept, unless --replace (used for a run of the default selection), which
        makes the file hold exactly the requested cases.
Standard library only; runs with any python3.
"""
import json
import os
import sys

FIELDS = ("behavior", "behaviorClose")


def case_key(case_id):
    return tuple(int(x) for x in case_id.split("."))


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_report(report_dir):
    index = load(os.path.join(report_dir, "index.json"))
    if len(index) != 1:
        raise ValueError("%s/index.json has agents %s, expected exactly one"
                         % (report_dir, ", ".join(sorted(index)) or "(none)"))
    results = next(iter(index.values()))
    requested = load(os.path.join(report_dir, "cases.json"))
    return results, requested


def entry(result):
    return {k: result.get(k) for k in FIELDS}


def fmt(e):
    return "MISSING" if e is None else "/".join(str(e.get(k)) for k in FIELDS)


def write_expected(path, expected):
    # One case per line, in case order: small, readable diffs.
    ids = sorted(expected, key=case_key)
    lines = ["  %s: %s" % (json.dumps(c), json.dumps(expected[c], sort_keys=True)) for c in ids]
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")
    os.replace(path + ".tmp", path)


def check(report_dir, expected_path):
    results, requested = load_report(report_dir)
    expected = load(expected_path)
    diffs = []
    for c in sorted(requested, key=case_key):
        got = entry(results[c]) if c in results else None
        want = expected.get(c)
        if want is None:
            diffs.append((c, "(not in expected file)", fmt(got)))
        elif got is None or any(got[k] != want.get(k) for k in FIELDS):
            diffs.append((c, fmt(want), fmt(got)))
    if diffs:
        print("autobahn: %d case(s) differ from %s (behavior/behaviorClose):"
              % (len(diffs), expected_path))
        print("  %-10s %-32s %s" % ("case", "expected", "got"))
        for c, want, got in diffs:
            print("  %-10s %-32s %s" % (c, want, got))
        print("autobahn: if the new results are right, rerun with --update and commit the file")
        return 1
    print("autobahn: all %d requested cases match %s" % (len(requested), expected_path))
    return 0


def update(report_dir, expected_path, replace):
    results, requested = load_report(report_dir)
    expected = {} if replace or not os.path.exists(expected_path) else load(expected_path)
    missing = [c for c in requested if c not in results]
    if missing:
        print("autobahn: not updating %s: no result for %s"
              % (expected_path, ", ".join(sorted(missing, key=case_key))), file=sys.stderr)
        return 1
    for c in requested:
        expected[c] = entry(results[c])
    write_expected(expected_path, expected)
    print("autobahn: wrote %d cases to %s (%s)"
          % (len(expected), expected_path, "replaced" if replace else "merged"))
    return 0


def main(argv):
    if len(argv) == 3 and argv[0] == "check":
        fn = lambda: check(argv[1], argv[2])
    elif len(argv) in (3, 4) and argv[0] == "update" and argv[3:] in ([], ["--replace"]):
        fn = lambda: update(argv[1], argv[2], argv[3:] == ["--replace"])
    else:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        return fn()
    except (OSError, ValueError, KeyError) as e:
        print("autobahn_expected.py: error: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

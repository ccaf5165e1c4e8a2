#!/usr/bin/env bash
# One line per test binary from the GoogleTest XML of the last ctest run
# (BUILD/test-results/<binary>.<shard>.xml), then every skipped case with its reason (e.g. the
# data command to run). Usage: scripts/test_summary.sh BUILD_DIR
set -euo pipefail
dir=${1:-build}/test-results
[ -d "$dir" ] || { echo "test summary: no $dir (run ctest first)"; exit 0; }
python3 - "$dir" <<'PY'
import collections, glob, os, sys
import xml.etree.ElementTree as ET
per = collections.OrderedDict()
skipped = []
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.xml"))):
    binary = os.path.basename(path).split(".")[0]
    c = per.setdefault(binary, collections.Counter())
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f'{case.get("classname")}.{case.get("name")}'
        if case.find("failure") is not None:
            c["failed"] += 1
        elif case.get("result") == "skipped" or case.find("skipped") is not None:
            c["skipped"] += 1
            s = case.find("skipped")
            skipped.append((binary, name, (s.get("message") if s is not None else "") or ""))
        elif case.get("status") == "notrun":
            continue
        else:
            c["passed"] += 1
total = collections.Counter()
for binary, c in per.items():
    total.update(c)
    print(f"  {binary:20s} {c['passed']:4d} passed {c['failed']:3d} failed {c['skipped']:3d} skipped")
print(f"test summary: {total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
for binary, name, msg in skipped:
    print(f"  skipped {binary} {name}: {msg.strip().splitlines()[-1] if msg.strip() else ''}")
PY

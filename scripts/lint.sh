#!/usr/bin/env bash
# clang-tidy (the checked-in .clang-tidy) over the project's library and executable sources, in
# parallel, from the build's compile_commands.json. Usage: scripts/lint.sh BUILD_DIR [JOBS]
#
# Scope (to stay within CI's time): every .cpp compiled into a library (moebench_kernels,
# _models, _baselines, _datasets, _store, _suite). Left out: the executable's thin command-line
# layer (suite/main.cpp, suite/cli_*.cpp), tests/ and bench/. clang-tidy 14 parses and matches
# all of <torch/torch.h> in every torch TU: ~80 CPU-s each (performance-unnecessary-value-param
# alone is ~40% of it), so the library set (~38 TUs, ~27 with torch) takes ~18-20 min on 2 free
# cores; the CLI adds ~10 torch TUs, the tests ~15. LINT_ALL=1 lints everything.
# Any clang-tidy warning or error in project code fails.
#
# CMake's precompiled header (-include cmake_pch.hxx with a GCC .gch beside it) is unreadable for
# clang, so the compile commands are rewritten to include suite/pch.h itself.
set -euo pipefail
build=${1:-build}
jobs=${2:-$(nproc)}
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ -f "$build/compile_commands.json" ] || { echo "lint: $build/compile_commands.json missing: configure first" >&2; exit 2; }
tidy=$(command -v clang-tidy || command -v clang-tidy-14 || true)
[ -n "$tidy" ] || { echo "lint: clang-tidy not installed (scripts/setup.sh installs it)" >&2; exit 2; }
out=$build/lint
mkdir -p "$out"
python3 - "$build/compile_commands.json" "$out/compile_commands.json" "$src" "${LINT_ALL:-0}" <<'PY'
import json, os, re, shlex, sys
db, out, src, lint_all = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
keep = []
for e in json.load(open(db)):
    f = os.path.normpath(os.path.join(e["directory"], e["file"]))
    rel = os.path.relpath(f, src)
    parts = rel.split(os.sep)
    if parts[0] not in ("kernels", "models", "baselines", "datasets", "suite"):
        continue
    if not f.endswith(".cpp") or rel in ("suite/pch.cpp", "kernels/device_info_stub.cpp"):
        continue
    cli = rel == "suite/main.cpp" or (parts[0] == "suite" and parts[-1].startswith("cli_"))
    if not lint_all and ("tests" in parts or "bench" in parts or cli):
        continue
    cmd = e.get("command") or " ".join(shlex.quote(a) for a in e["arguments"])
    cmd = re.sub(r"-include \S*cmake_pch\.hxx", "-include " + os.path.join(src, "suite", "pch.h"), cmd)
    cmd = cmd.replace("-Winvalid-pch", "")
    keep.append({"directory": e["directory"], "file": f, "command": cmd})
keep.sort(key=lambda e: e["file"])
json.dump(keep, open(out, "w"), indent=1)
print(f"lint: {len(keep)} translation units")
PY
start=$(date +%s)
log=$out/clang-tidy.log
python3 -c 'import json,sys; print("\n".join(e["file"] for e in json.load(open(sys.argv[1]))))' \
  "$out/compile_commands.json" |
  xargs -P "$jobs" -I{} sh -c '"$0" -p "$1" --quiet "$2" 2>/dev/null || echo "lint: clang-tidy failed on $2"' \
    "$tidy" "$out" {} >"$log"
echo "lint: done in $(($(date +%s) - start)) s; log $log"
# Only the project's own files count (a check may fire inside a system header it was led into).
warnings=$(grep -c -E "^$src/.*: (warning|error):" "$log" || true)
failed=$(grep -c '^lint: clang-tidy failed' "$log" || true)
if [ "$warnings" -gt 0 ] || [ "$failed" -gt 0 ]; then
  grep -E "^$src/.*: (warning|error):|^lint: clang-tidy failed" "$log" | sort -u
  echo "lint: $warnings warning(s)/error(s), $failed file(s) clang-tidy could not process" >&2
  exit 1
fi
echo "lint: clean"

#!/usr/bin/env bash
# Opens a `moebench report` page in a real headless browser (Debian's chromium) and checks that
# it rendered: the DOM chromium parsed has the expected tables and no network references, every
# <img> loads in the browser (a probe page outside the report loads each one and records
# onload/onerror), every image file is a parseable SVG or PNG, and a screenshot of the page is
# not blank. Chromium runs with every host name unresolvable, so the page is rendered offline.
#
#   scripts/browser_check.sh [--tables comparison,claims] [--screenshot FILE] DIR
#       check DIR/index.html (default tables: comparison; screenshot kept, by default in
#       ${TMPDIR:-/tmp}/moebench_report_screenshot.png)
#   scripts/browser_check.sh --ctest STORE_TESTS MOEBENCH WORKDIR
#       the CTest `report_browser` entry (label browser): STORE_TESTS writes its synthetic
#       database (HtmlReportTest.FixtureDatabaseForBrowserCheck), MOEBENCH renders it with
#       `moebench report` into WORKDIR/report, then the checks above; screenshot in WORKDIR.
#
# Exit status: 0 passed, 1 a check failed, 2 usage, 77 skipped (no chromium; in --ctest mode
# also no gnuplot): scripts/setup.sh installs both.
set -uo pipefail

die_usage() {
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
skip() {
  echo "SKIP: $*" >&2
  exit 77
}

tables="comparison"
screenshot=""
ctest=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tables) tables="${2:?--tables needs a value}"; shift 2 ;;
    --screenshot) screenshot="${2:?--screenshot needs a file}"; shift 2 ;;
    --ctest)
      [ $# -eq 4 ] || die_usage
      ctest=1 store_tests="$2" moebench="$3" work="$4"
      shift 4
      ;;
    -h|--help) die_usage ;;
    -*) echo "browser_check: unknown option $1" >&2; die_usage ;;
    *) [ -z "${dir:-}" ] || die_usage; dir="$1"; shift ;;
  esac
done

browser="${CHROMIUM:-}"
if [ -z "$browser" ]; then
  for b in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$b" >/dev/null 2>&1; then browser="$b"; break; fi
  done
fi
[ -n "$browser" ] || skip "no chromium on PATH; install it with bash scripts/setup.sh (apt-get install -y chromium)"
command -v python3 >/dev/null 2>&1 || skip "no python3 (the checks' helper); bash scripts/setup.sh installs it"

if [ "$ctest" -eq 1 ]; then
  command -v gnuplot >/dev/null 2>&1 || skip "no gnuplot; install it with bash scripts/setup.sh (apt-get install -y gnuplot-nox)"
  rm -rf "$work" && mkdir -p "$work" || exit 1
  echo "browser_check: writing the synthetic database $work/fixture.sqlite"
  if ! MOEBENCH_REPORT_FIXTURE_DB="$work/fixture.sqlite" "$store_tests" \
      --gtest_filter=HtmlReportTest.FixtureDatabaseForBrowserCheck >"$work/fixture.log" 2>&1 ||
      [ ! -s "$work/fixture.sqlite" ]; then
    cat "$work/fixture.log" >&2
    echo "FAIL: could not write the synthetic database with $store_tests" >&2
    exit 1
  fi
  echo "browser_check: $moebench report --db $work/fixture.sqlite --out $work/report"
  "$moebench" report --db "$work/fixture.sqlite" --out "$work/report" || {
    echo "FAIL: moebench report failed" >&2
    exit 1
  }
  dir="$work/report"
  screenshot="${screenshot:-$work/screenshot.png}"
fi

[ -n "${dir:-}" ] || die_usage
dir=$(cd "$dir" 2>/dev/null && pwd) || { echo "FAIL: no folder '$dir'" >&2; exit 1; }
[ -s "$dir/index.html" ] || { echo "FAIL: no $dir/index.html" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/moebench_browser_check.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
# The screenshot is kept for a person to look at (outside the report folder, which may be
# committed).
screenshot="${screenshot:-${TMPDIR:-/tmp}/moebench_report_screenshot.png}"

# Headless, no sandbox (CI runs as root), its own profile, no first-run work, and every host
# name unresolvable: whatever the page asked of the network would fail visibly.
run_browser() {
  timeout 120 "$browser" --headless --disable-gpu --no-sandbox --hide-scrollbars \
    --no-first-run --disable-extensions --disable-dev-shm-usage --mute-audio \
    --user-data-dir="$tmp/profile" --host-resolver-rules="MAP * ~NOTFOUND" "$@" 2>>"$tmp/browser.log"
}

cat >"$tmp/check.py" <<'PY'
"""Checks for browser_check.sh; standard library only (no pip packages on CI)."""
import html.parser
import json
import os
import pathlib
import struct
import sys
import urllib.parse
import xml.etree.ElementTree as ET
import zlib


class Dom(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self.images, self.scripts, self.remote = [], [], 0, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.tables.append(a.get("id") or "")
        if tag == "img":
            self.images.append(a.get("src") or "")
        if tag == "script":
            self.scripts += 1
        for name in ("src", "href", "srcset", "data", "action", "poster"):
            v = (a.get(name) or "").strip()
            if v.startswith("//") or (urllib.parse.urlparse(v).scheme not in ("", "file")):
                self.remote.append(f"<{tag} {name}={v}>")


def image_kind(path):
    data = path.read_bytes()
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    root = ET.fromstring(data)  # raises on broken XML
    if not root.tag.endswith("svg"):
        raise ValueError(f"root element is {root.tag}, not svg")
    return "svg"


def dom(report_dir, dom_file, wanted, probe_file):
    report = pathlib.Path(report_dir)
    p = Dom()
    p.feed(pathlib.Path(dom_file).read_text(encoding="utf-8", errors="replace"))
    fails = []
    print(f"  tables: {len(p.tables)} ({', '.join(t or '(no id)' for t in p.tables)})")
    if not p.tables:
        fails.append("no <table> on the page")
    for t in [t for t in wanted.split(",") if t]:
        if t not in p.tables:
            fails.append(f"table id={t} missing")
    if p.scripts:
        fails.append(f"{p.scripts} <script> element(s): the page must need none")
    for r in p.remote:
        fails.append(f"network reference {r}")
    print(f"  images: {len(p.images)}")
    if not p.images:
        fails.append("no <img> on the page")
    urls = []
    for src in p.images:
        if not src or urllib.parse.urlparse(src).scheme or src.startswith("/"):
            fails.append(f"image src '{src}' is not a relative path")
            continue
        f = report / urllib.parse.unquote(src)
        # The browser loads every image, broken or not, so that it judges each one itself.
        urls.append(f.resolve().as_uri())
        if not f.is_file() or f.stat().st_size == 0:
            fails.append(f"image {src}: missing or empty file")
            continue
        try:
            image_kind(f)
        except Exception as e:  # noqa: BLE001 - any parse failure is the finding
            fails.append(f"image {src}: not a parseable SVG/PNG ({e})")
    # The probe: a page outside the report that loads each image in the browser.
    probe = """<!DOCTYPE html><html><body><pre id="out">PENDING</pre><script>
const urls = %s; const res = []; let left = urls.length;
function finish() { if (--left === 0) document.getElementById("out").textContent =
  "PROBE-DONE\\n" + res.join("\\n"); }
if (left === 0) document.getElementById("out").textContent = "PROBE-DONE";
for (const u of urls) { const im = new Image();
  im.onload = () => { res.push((im.naturalWidth > 0 && im.naturalHeight > 0 ? "OK " : "EMPTY ")
    + im.naturalWidth + "x" + im.naturalHeight + " " + u); finish(); };
  im.onerror = () => { res.push("BROKEN " + u); finish(); };
  im.src = u; }
</script></body></html>""" % json.dumps(urls)
    pathlib.Path(probe_file).write_text(probe, encoding="utf-8")
    pathlib.Path(probe_file + ".count").write_text(str(len(urls)))
    return fails


def probe(dump_file, expected):
    text = pathlib.Path(dump_file).read_text(encoding="utf-8", errors="replace")
    if "PROBE-DONE" not in text:
        return ["the image probe did not finish in the browser"]
    lines = [l for l in text.split("PROBE-DONE", 1)[1].split("</pre>")[0].splitlines() if l]
    ok = [l for l in lines if l.startswith("OK ")]
    print(f"  images loaded by the browser: {len(ok)} of {expected}")
    fails = [f"browser: {l}" for l in lines if not l.startswith("OK ")]
    if len(ok) != int(expected):
        fails.append(f"browser loaded {len(ok)} images, expected {expected}")
    return fails


def png_pixels(path, sample=4):
    """Decodes an 8-bit RGB(A) non-interlaced PNG; yields every sample-th pixel of every
    sample-th row as an (r, g, b) bytes value."""
    data = pathlib.Path(path).read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("not a PNG")
    pos, idat = 8, []
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + n
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG layout (depth {depth}, colour type {ctype})")
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = w * bpp
    prev = bytearray(stride)
    for y in range(h):
        start = y * (stride + 1)
        f, row = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if f == 1:
            for i in range(bpp, stride):
                row[i] = (row[i] + row[i - bpp]) & 255
        elif f == 2:
            row = bytearray((a + b) & 255 for a, b in zip(row, prev))
        elif f == 3:
            for i in range(stride):
                left = row[i - bpp] if i >= bpp else 0
                row[i] = (row[i] + ((left + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                a = row[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = row
        if y % sample == 0:
            for x in range(0, w, sample):
                yield bytes(row[x * bpp:x * bpp + 3])
    print(f"  screenshot: {w}x{h} pixels")


def screenshot(path):
    counts = {}
    for px in png_pixels(path):
        counts[px] = counts.get(px, 0) + 1
    total = sum(counts.values())
    background, n = max(counts.items(), key=lambda kv: kv[1])
    drawn = 1 - n / total
    print(f"  screenshot: {len(counts)} distinct colours (sampled), background #{background.hex()}, "
          f"{100 * drawn:.1f}% of the pixels drawn on")
    fails = []
    if len(counts) < 16:
        fails.append(f"screenshot has only {len(counts)} colours: blank or not rendered")
    if drawn < 0.02:
        fails.append(f"screenshot is {100 * (1 - drawn):.1f}% background: blank")
    return fails


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    fails = {"dom": dom, "probe": probe, "screenshot": screenshot}[cmd](*args)
    for f in fails:
        print(f"  FAIL: {f}")
    sys.exit(1 if fails else 0)
PY

failed=0
url="file://$dir/index.html"
echo "browser_check: $browser on $url"

echo "[1/3] the page's DOM as chromium parsed it"
if run_browser --dump-dom "$url" >"$tmp/dom.html" && [ -s "$tmp/dom.html" ]; then
  python3 "$tmp/check.py" dom "$dir" "$tmp/dom.html" "$tables" "$tmp/probe.html" || failed=1
else
  echo "  FAIL: chromium could not load the page (log: $tmp/browser.log)"
  tail -5 "$tmp/browser.log" | sed 's/^/    /'
  failed=1
fi

echo "[2/3] every image loaded by the browser"
if [ -f "$tmp/probe.html" ]; then
  expected=$(cat "$tmp/probe.html.count")
  if run_browser --virtual-time-budget=15000 --dump-dom "file://$tmp/probe.html" >"$tmp/probe_dom.html"; then
    python3 "$tmp/check.py" probe "$tmp/probe_dom.html" "$expected" || failed=1
  else
    echo "  FAIL: chromium could not run the image probe"
    failed=1
  fi
else
  echo "  FAIL: no probe page (the DOM check did not run)"
  failed=1
fi

echo "[3/3] a screenshot (1280x4000) that is not blank"
rm -f "$screenshot"
if run_browser --screenshot="$screenshot" --window-size=1280,4000 "$url" >/dev/null &&
    [ -s "$screenshot" ]; then
  python3 "$tmp/check.py" screenshot "$screenshot" || failed=1
  echo "  screenshot: $screenshot"
else
  echo "  FAIL: chromium wrote no screenshot (log: $tmp/browser.log)"
  failed=1
fi

if [ "$failed" -ne 0 ]; then
  echo "browser_check: FAILED ($dir/index.html)"
  exit 1
fi
echo "browser_check: passed ($dir/index.html)"

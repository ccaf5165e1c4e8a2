#!/usr/bin/env bash
# make gpu-check: the GPU path in one command (issue 14). Writes results/gpu/<device>.md/.json.
#
# On a machine with a CUDA GPU:
#   1. finds a CUDA LibTorch ($LIBTORCH, else the Python torch's cmake dir) and refuses a
#      CPU-only one;
#   2. without apt-get, unpacks the Debian build libraries carried in .devdeps/
#      (../shared/tools/device-deps.sh);
#   3. configures build-gpu (CUDA on, the device's architecture), builds moebench,
#      kernels_cuda_tests and bench_kernels, runs `ctest -L gpu`;
#   4. bench_kernels on CUDA (S/M/L, fp32 and bf16) beside the dense chain and the naive loop;
#   5. trains Routing-Free and top-k at S in bf16 for GPU_CHECK_STEPS (300) steps on the GPT-2
#      shards: tokens/s, MFU, peak memory, losses;
#   6. writes results/gpu/<device>.md and .json (scripts/gpu_report.py), and copies them and the
#      logs to $OUT when that is set (the device tool's output folder).
# Without a GPU it says so, checks what it can here (the .cu files compile with nvcc, this
# script's own logic: bash -n and --self-test) and exits 0.
#
# Usage: bash scripts/gpu_check.sh [--phase build,test,bench,train,report | all] [--self-test]
# One device command may run 10 minutes, so on the device tool run it in two calls (see
# results/gpu/README.md): --phase build, then --phase test,bench,train,report.
# Environment: LIBTORCH, JOBS (default nproc), GPU_CHECK_STEPS (300), GPU_CHECK_BENCH_FILTER,
# GPU_BUILD (build-gpu), GPU_CHECK_LOCAL_BUILD (build-gpucheck), GPU_CHECK_LOCAL_TARGETS
# (moebench_cuda; add moebench_kernels to compile the torch-side wrapper too, ~5 min).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$ROOT/scripts/gpu_check.sh"
REPORT_PY="$ROOT/scripts/gpu_report.py"
GPU_BUILD=${GPU_BUILD:-build-gpu}
LOCAL_BUILD=${GPU_CHECK_LOCAL_BUILD:-build-gpucheck}
LOCAL_TARGETS=${GPU_CHECK_LOCAL_TARGETS:-moebench_cuda}
STEPS=${GPU_CHECK_STEPS:-300}
BENCH_FILTER=${GPU_CHECK_BENCH_FILTER:-'backend:(cuda|naive-cuda|dense-cuda)/'}
DEVICE_TOOL_CMD='bash scripts/gpu_check.sh --phase build  (then)  bash scripts/gpu_check.sh --phase test,bench,train,report'

say() { printf 'gpu-check: %s\n' "$*"; }
warn() { printf 'gpu-check: WARNING: %s\n' "$*" >&2; }
die() {
  printf 'gpu-check: ERROR: %s\n' "$*" >&2
  exit "${2:-1}"
}

# ---- helpers (exercised by --self-test) ------------------------------------------------------

# "9.0" -> 90, "8.6" -> 86, "10.0" -> 100; nothing (status 1) for anything else.
arch_from_cap() {
  local cap=${1//[[:space:]]/}
  [[ $cap =~ ^([0-9]+)\.([0-9])$ ]] || return 1
  printf '%s%s\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
}

# "NVIDIA H200" -> nvidia-h200, "NVIDIA H100 80GB HBM3" -> nvidia-h100-80gb-hbm3
device_file_name() {
  local s
  s=$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]' | sed -E 's/[^a-z0-9]+/-/g; s/^-+//; s/-+$//')
  printf '%s\n' "${s:-unknown-gpu}"
}

# Dense bf16 tensor-core peak in TFLOP/s (no sparsity) by nvidia-smi name; nothing if unknown.
peak_bf16_tflops() {
  local n
  n=$(printf '%s' "$1" | tr '[:lower:]' '[:upper:]')
  case "$n" in
    *H200*) echo 989 ;;                                           # H200 SXM (NVL: 835)
    *H100*PCIE*) echo 756 ;;
    *H100*) echo 989 ;;                                           # H100 SXM / HBM3
    *GH200*) echo 989 ;;
    *B200*) echo 2250 ;;
    *A100*) echo 312 ;;
    *L40S*) echo 362 ;;
    *A10G*) echo 70 ;;
    *) return 1 ;;
  esac
}

# MFU = flops_per_token * tokens_per_s / (peak_tflops * 1e12), 4 decimals.
mfu() { awk -v f="$1" -v t="$2" -v p="$3" 'BEGIN { printf "%.4f\n", f * t / (p * 1e12) }'; }

# What a LibTorch directory is: "cuda", "cpu", or "none" (no LibTorch there). Accepts the
# LibTorch root (lib/, share/cmake/Torch) or its cmake dir (…/share/cmake or …/share/cmake/Torch).
libtorch_kind() {
  local d=$1 root
  for root in "$d" "$d/.." "$d/../.." "$d/../../.."; do
    [[ -d $root/lib ]] || continue
    if compgen -G "$root/lib/libtorch_cuda.so*" > /dev/null ||
      compgen -G "$root/lib/libc10_cuda.so*" > /dev/null; then
      echo cuda
      return 0
    fi
    if compgen -G "$root/lib/libtorch_cpu.so*" > /dev/null ||
      compgen -G "$root/lib/libtorch.so*" > /dev/null; then
      echo cpu
      return 0
    fi
  done
  echo none
}

# The cmake dir to put in CMAKE_PREFIX_PATH for a LibTorch root or cmake dir.
libtorch_cmake_dir() {
  local d=$1
  if [[ -d $d/share/cmake/Torch ]]; then (cd "$d/share/cmake" && pwd); else (cd "$d" && pwd); fi
}

# Sets TORCH_CMAKE (and TORCH_SOURCE) or explains why not and returns 1.
find_cuda_libtorch() {
  TORCH_CMAKE="" TORCH_SOURCE=""
  if [[ -n ${LIBTORCH:-} ]]; then
    case "$(libtorch_kind "$LIBTORCH")" in
      cuda)
        TORCH_CMAKE=$(libtorch_cmake_dir "$LIBTORCH")
        TORCH_SOURCE="LIBTORCH=$LIBTORCH"
        return 0 ;;
      cpu)
        say "LIBTORCH=$LIBTORCH is a CPU-only LibTorch (no libtorch_cuda.so / libc10_cuda.so):" \
          "the CUDA path needs the CUDA build (pytorch.org 'LibTorch, CUDA 12.x, cxx11 ABI')" \
          "or unset LIBTORCH to use the Python torch's."
        return 1 ;;
      *)
        say "LIBTORCH=$LIBTORCH holds no LibTorch (no lib/libtorch*.so)."
        return 1 ;;
    esac
  fi
  local info
  if ! info=$(python3 - 2> /dev/null << 'EOF'
import torch, torch.utils
print(torch.utils.cmake_prefix_path)
print(torch.version.cuda or "")
print(int(torch.cuda.is_available()))
print(torch.__version__)
EOF
  ); then
    say "no LibTorch: LIBTORCH is unset and python3 cannot import torch" \
      "(pip install torch with CUDA, or set LIBTORCH to a CUDA LibTorch)."
    return 1
  fi
  local cmake cuda avail version
  { read -r cmake; read -r cuda; read -r avail; read -r version; } <<< "$info"
  if [[ -z $cuda ]]; then
    say "the Python torch $version (cmake: $cmake) is CPU-only (torch.version.cuda is None):" \
      "install a CUDA wheel or set LIBTORCH to a CUDA LibTorch."
    return 1
  fi
  TORCH_CMAKE=$cmake
  TORCH_SOURCE="python torch $version (CUDA $cuda, cuda.is_available=$avail)"
  return 0
}

# GPU name and compute capability of device 0 from nvidia-smi, "" when there is none.
gpu_query() { nvidia-smi --query-gpu="$1" --format=csv,noheader 2> /dev/null | head -n1 | sed 's/^ *//; s/ *$//'; }

# ---- self-test -------------------------------------------------------------------------------

self_test() {
  local fails=0 tmp got
  expect() { # name expected actual
    if [[ "$2" == "$3" ]]; then
      printf '  ok   %s\n' "$1"
    else
      printf '  FAIL %s: expected [%s] got [%s]\n' "$1" "$2" "$3"
      fails=$((fails + 1))
    fi
  }
  say "self-test of the helper functions (fake inputs)"
  expect 'arch 9.0 -> 90' 90 "$(arch_from_cap 9.0)"
  expect 'arch 8.6 -> 86' 86 "$(arch_from_cap 8.6)"
  expect 'arch " 10.0" -> 100' 100 "$(arch_from_cap ' 10.0')"
  expect 'arch "n/a" refused' 1 "$(arch_from_cap n/a > /dev/null; echo $?)"
  expect 'name "NVIDIA H200"' nvidia-h200 "$(device_file_name 'NVIDIA H200')"
  expect 'name "NVIDIA H100 80GB HBM3"' nvidia-h100-80gb-hbm3 "$(device_file_name 'NVIDIA H100 80GB HBM3')"
  expect 'name "" -> unknown-gpu' unknown-gpu "$(device_file_name '')"
  expect 'peak H200 989' 989 "$(peak_bf16_tflops 'NVIDIA H200')"
  expect 'peak H100 PCIe 756' 756 "$(peak_bf16_tflops 'NVIDIA H100 PCIe')"
  expect 'peak unknown refused' 1 "$(peak_bf16_tflops 'Tesla T4' > /dev/null; echo $?)"
  # 6 * 124M params-ish: 7.5e8 FLOPs/token at 400k tokens/s on 989 TFLOP/s = 0.3033
  expect 'mfu 7.5e8 x 4e5 / 989T' 0.3033 "$(mfu 7.5e8 400000 989)"
  expect 'mfu 1e9 x 1e5 / 100T' 1.0000 "$(mfu 1e9 100000 100)"
  tmp=$(mktemp -d)
  mkdir -p "$tmp/cpu/lib" "$tmp/cpu/share/cmake/Torch" "$tmp/cuda/lib" "$tmp/cuda/share/cmake/Torch" "$tmp/empty"
  touch "$tmp/cpu/lib/libtorch.so" "$tmp/cpu/lib/libtorch_cpu.so" "$tmp/cpu/lib/libc10.so"
  touch "$tmp/cuda/lib/libtorch.so" "$tmp/cuda/lib/libtorch_cpu.so" "$tmp/cuda/lib/libtorch_cuda.so" \
    "$tmp/cuda/lib/libc10_cuda.so"
  expect 'libtorch kind: fake CPU-only dir' cpu "$(libtorch_kind "$tmp/cpu")"
  expect 'libtorch kind: fake CUDA dir' cuda "$(libtorch_kind "$tmp/cuda")"
  expect 'libtorch kind: its cmake dir' cuda "$(libtorch_kind "$tmp/cuda/share/cmake/Torch")"
  expect 'libtorch kind: empty dir' none "$(libtorch_kind "$tmp/empty")"
  got=$(LIBTORCH="$tmp/cpu" find_cuda_libtorch 2>&1; echo "rc=$?")
  expect 'LIBTORCH=<CPU-only> refused' "rc=1" "${got##*$'\n'}"
  [[ $got == *"CPU-only LibTorch"* ]] || {
    printf '  FAIL refusal message: %s\n' "$got"
    fails=$((fails + 1))
  }
  got=$(LIBTORCH="$tmp/cuda" find_cuda_libtorch > /dev/null && echo "$TORCH_CMAKE")
  expect 'LIBTORCH=<CUDA> accepted, cmake dir' "$(cd "$tmp/cuda/share/cmake" && pwd)" "$got"
  rm -rf "$tmp"
  if [[ -f $REPORT_PY ]]; then
    if python3 "$REPORT_PY" --self-test; then printf '  ok   gpu_report.py --self-test\n'; else
      printf '  FAIL gpu_report.py --self-test\n'
      fails=$((fails + 1))
    fi
  fi
  if ((fails)); then
    say "self-test: $fails failure(s)"
    return 1
  fi
  say "self-test: all passed"
}

print_plan() {
  cat << EOF
gpu-check: on a GPU machine (e.g. the device tool's H200, 16 cores) a full run takes about
  build ~10 min (16 cores), ctest -L gpu ~1 min, bench_kernels on CUDA ~3 min,
  2 x $STEPS S steps in bf16 ~2 min, report seconds: ~16 min in all.
  Device tool (one command may run 10 min), carry [".devdeps", "data/tokens/gpt2"]:
    1) command: bash scripts/gpu_check.sh --phase build                    timeout_s 600
    2) command: bash scripts/gpu_check.sh --phase test,bench,train,report  timeout_s 480
  Before that, here: ../shared/tools/device-deps.sh fetch   (fills .devdeps/)
  Results: results/gpu/<device>.md and .json, also under \$OUT/results-gpu/ on the device.
EOF
}

# ---- no GPU: the checks possible here --------------------------------------------------------

local_checks() {
  local rc=0
  say "1/3 bash -n $SELF"
  bash -n "$SELF" || rc=1
  if [[ -f $REPORT_PY ]]; then
    say "    python3: compile scripts/gpu_report.py"
    python3 -c 'import sys; compile(open(sys.argv[1]).read(), sys.argv[1], "exec")' "$REPORT_PY" || rc=1
  fi
  say "2/3 self-test"
  self_test || rc=1
  local nvcc=""
  nvcc=$(command -v nvcc || true)
  [[ -z $nvcc && -x /usr/local/cuda/bin/nvcc ]] && nvcc=/usr/local/cuda/bin/nvcc
  if [[ -z $nvcc ]]; then
    say "3/3 SKIPPED: no nvcc here, so the .cu files cannot be compiled on this machine"
  else
    say "3/3 compile the CUDA kernels with $nvcc ($("$nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')): $LOCAL_BUILD, targets: $LOCAL_TARGETS"
    if [[ ! -f $ROOT/$LOCAL_BUILD/CMakeCache.txt ]]; then
      mkdir -p "$ROOT/$LOCAL_BUILD"
      cmake -S "$ROOT" -B "$ROOT/$LOCAL_BUILD" -DCMAKE_BUILD_TYPE=Release -DMOEBENCH_WITH_CUDA=ON \
        -DMOEBENCH_BUILD_TESTS=OFF -DMOEBENCH_BUILD_BENCH=OFF > "$ROOT/$LOCAL_BUILD/configure.log" 2>&1 ||
        {
          tail -20 "$ROOT/$LOCAL_BUILD/configure.log"
          die "configure of $LOCAL_BUILD failed (log: $LOCAL_BUILD/configure.log)"
        }
    fi
    local t
    for t in $LOCAL_TARGETS; do
      if cmake --build "$ROOT/$LOCAL_BUILD" -j "${JOBS:-1}" --target "$t"; then
        say "    $t: compiled"
      else
        say "    $t: FAILED to compile"
        rc=1
      fi
    done
  fi
  return $rc
}

# ---- GPU phases ------------------------------------------------------------------------------

STATE="" # $GPU_BUILD/gpu-check: logs and JSON fragments the report assembles

to_out() { # copy results and logs back through the device tool
  [[ -n ${OUT:-} && -d ${OUT:-} ]] || return 0
  mkdir -p "$OUT/gpu-check" "$OUT/results-gpu"
  cp -f "$STATE"/*.log "$STATE"/*.json "$STATE"/*.csv "$OUT/gpu-check/" 2> /dev/null
  cp -f "$ROOT"/results/gpu/*.md "$ROOT"/results/gpu/*.json "$OUT/results-gpu/" 2> /dev/null
  return 0
}

setup_deps() {
  if command -v apt-get > /dev/null && [[ ! -d $ROOT/.devdeps ]]; then
    return 0 # a normal Debian machine: scripts/setup.sh installs what the build needs
  fi
  local s=""
  for s in "$ROOT/../shared/tools/device-deps.sh" "$ROOT/.devdeps/device-deps.sh"; do
    [[ -f $s ]] && break
    s=""
  done
  if ! compgen -G "$ROOT/.devdeps/*.deb" > /dev/null || [[ -z $s ]]; then
    die "no package manager here and no Debian build libraries in .devdeps/: on the CPU machine run
  ../shared/tools/device-deps.sh fetch
in the project root, then pass \".devdeps\" in the device run's carry list." 2
  fi
  say "unpacking the carried build libraries: source $s unpack"
  cd "$ROOT" || exit 1
  export DEVDEPS=.devdeps
  # shellcheck disable=SC1090
  source "$s" unpack || die "device-deps unpack failed"
}

collect_env() { # env.json: every version the figures depend on
  local name=$1 cap=$2 arch=$3
  GPU_NAME="$name" GPU_CAP="$cap" GPU_ARCH="$arch" TORCH_CMAKE="$TORCH_CMAKE" TORCH_SOURCE="$TORCH_SOURCE" \
    python3 - > "$STATE/env.json" << 'EOF'
import json, os, subprocess
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=60).stdout.strip()
    except Exception:
        return ""
env = {k.lower(): os.environ.get(k, "") for k in ("GPU_NAME", "GPU_CAP", "GPU_ARCH", "TORCH_CMAKE", "TORCH_SOURCE")}
env["driver"] = sh("nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n1")
env["gpu_memory"] = sh("nvidia-smi --query-gpu=memory.total --format=csv,noheader | head -n1")
env["nvcc"] = sh("nvcc --version 2>/dev/null || /usr/local/cuda/bin/nvcc --version").splitlines()[-1:] or [""]
env["nvcc"] = env["nvcc"][0]
env["torch"] = sh("python3 -c 'import torch;print(torch.__version__)' 2>/dev/null")
env["torch_cuda"] = sh("python3 -c 'import torch;print(torch.version.cuda)' 2>/dev/null")
env["torch_cxx11_abi"] = sh("python3 -c 'import torch;print(torch._C._GLIBCXX_USE_CXX11_ABI)' 2>/dev/null")
env["commit"] = sh("git rev-parse HEAD")
env["dirty"] = bool(sh("git status --porcelain --untracked-files=no"))
env["host_cpus"] = os.cpu_count()
print(json.dumps(env, indent=2))
EOF
}

phase_build() {
  local name=$1 arch=$2 torch_cuda nvcc_ver
  torch_cuda=$(python3 -c 'import torch;print(torch.version.cuda or "")' 2> /dev/null || true)
  nvcc_ver=$( (nvcc --version 2> /dev/null || /usr/local/cuda/bin/nvcc --version) | sed -n 's/.*release \([0-9]*\)\..*/\1/p')
  if [[ -n $torch_cuda && -n $nvcc_ver && ${torch_cuda%%.*} != "$nvcc_ver" ]]; then
    warn "nvcc is CUDA $nvcc_ver but torch is built with CUDA $torch_cuda: the kernels would load a" \
      "second CUDA runtime and keep their own cuBLAS handles (use a CUDA ${torch_cuda%%.*} toolkit)"
  fi
  if [[ $(python3 -c 'import torch;print(int(torch._C._GLIBCXX_USE_CXX11_ABI))' 2> /dev/null) == 0 ]]; then
    warn "this torch uses the pre-cxx11 ABI; Debian's gtest/benchmark/fmt use the cxx11 one, so linking" \
      "may fail (use torch >= 2.7 or the cxx11-ABI LibTorch via LIBTORCH)"
  fi
  say "configure $GPU_BUILD: CUDA on, arch $arch ($name), LibTorch $TORCH_CMAKE"
  cmake -S "$ROOT" -B "$ROOT/$GPU_BUILD" -DCMAKE_BUILD_TYPE=Release -DMOEBENCH_WITH_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="$arch" -DCMAKE_PREFIX_PATH="$TORCH_CMAKE" 2>&1 |
    tee "$STATE/configure.log" | tail -n 5
  [[ ${PIPESTATUS[0]} == 0 ]] || die "configure failed (log: $STATE/configure.log)"
  say "build moebench kernels_cuda_tests bench_kernels with -j ${JOBS:-$(nproc)}"
  local t0=$SECONDS
  cmake --build "$ROOT/$GPU_BUILD" -j "${JOBS:-$(nproc)}" --target moebench kernels_cuda_tests \
    bench_kernels > "$STATE/build.log" 2>&1 || {
    tail -n 40 "$STATE/build.log"
    die "build failed (log: $STATE/build.log)"
  }
  echo "{\"build_s\": $((SECONDS - t0))}" > "$STATE/build.json"
  say "built in $((SECONDS - t0)) s; CUDA libraries the test binary loads:"
  ldd "$ROOT/$GPU_BUILD/kernels/kernels_cuda_tests" 2> /dev/null | grep -E 'libcudart|libcublas[^L]' |
    tee "$STATE/ldd.log" | sed 's/^/    /'
  if [[ $(grep -c 'libcudart' "$STATE/ldd.log") -gt 1 ]]; then
    warn "more than one CUDA runtime is loaded (see $STATE/ldd.log)"
  fi
}

phase_test() {
  say "ctest -L gpu --output-on-failure"
  local t0=$SECONDS rc
  (cd "$ROOT/$GPU_BUILD" && ctest -L gpu --output-on-failure) > "$STATE/ctest.log" 2>&1
  rc=$?
  tail -n 15 "$STATE/ctest.log"
  grep -q 'Skipped\|SKIPPED' "$STATE/ctest.log" && warn "some GPU tests skipped: see $STATE/ctest.log"
  echo "{\"ctest_rc\": $rc, \"ctest_s\": $((SECONDS - t0))}" > "$STATE/ctest.json"
  return $rc
}

phase_bench() {
  say "bench_kernels --benchmark_filter='$BENCH_FILTER'"
  local t0=$SECONDS
  "$ROOT/$GPU_BUILD/bench_kernels" --benchmark_filter="$BENCH_FILTER" \
    --benchmark_out="$STATE/bench_kernels.json" --benchmark_out_format=json \
    --benchmark_counters_tabular=true > "$STATE/bench.log" 2>&1 || {
    tail -n 30 "$STATE/bench.log"
    die "bench_kernels failed (log: $STATE/bench.log)"
  }
  say "bench done in $((SECONDS - t0)) s"
}

phase_train() {
  local moebench="$ROOT/$GPU_BUILD/moebench" db="$ROOT/$GPU_BUILD/gpu.sqlite" method mem_pid base
  export MOEBENCH_DATA=${MOEBENCH_DATA:-$ROOT/data}
  if [[ ! -f $MOEBENCH_DATA/tokens/gpt2/manifest.json ]]; then
    say "no GPT-2 shards in $MOEBENCH_DATA/tokens/gpt2: moebench data prepare --vocab gpt2"
    "$moebench" data prepare --vocab gpt2 > "$STATE/prepare.log" 2>&1 || die "data prepare failed: carry
data/tokens/gpt2 (39 MB) from the CPU machine (make data there), or data/src and data/tarballs"
  fi
  "$moebench" flops --sizes S --methods routing_free,topk --format csv > "$STATE/flops.csv" 2>&1 ||
    die "moebench flops failed"
  rm -rf "$db" "$db"-wal "$db"-shm "$ROOT/$GPU_BUILD/checkpoints"
  for method in routing_free topk; do
    base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 2> /dev/null | head -n1)
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 -lms 250 \
      > "$STATE/mem_$method.log" 2> /dev/null &
    mem_pid=$!
    say "train S $method bf16, $STEPS steps"
    "$moebench" train --config S --set moe.method=$method --set train.steps="$STEPS" \
      --set train.eval_every=0 --set 'eval.tasks=[]' --set train.checkpoint_every=0 \
      --set train.device=cuda --set train.dtype=bf16 --set kernels.backend=cuda \
      --db "$db" --checkpoints "$ROOT/$GPU_BUILD/checkpoints" 2>&1 | tee "$STATE/train_$method.log" | tail -n 3
    local rc=${PIPESTATUS[0]}
    kill "$mem_pid" 2> /dev/null
    wait "$mem_pid" 2> /dev/null
    echo "{\"rc\": $rc, \"mem_base_mib\": ${base:-null}}" > "$STATE/train_$method.json"
    ((rc == 0)) || warn "training $method ended with status $rc (log: $STATE/train_$method.log)"
  done
}

phase_report() {
  local name=$1 peak
  peak=$(peak_bf16_tflops "$name" || echo "")
  [[ -n $peak ]] || warn "no bf16 peak known for '$name': MFU left empty (add it to peak_bf16_tflops)"
  python3 "$REPORT_PY" --state "$STATE" --db "$ROOT/$GPU_BUILD/gpu.sqlite" --out "$ROOT/results/gpu" \
    --device-file "$(device_file_name "$name")" --peak-tflops "${peak:-0}" \
    --data "${MOEBENCH_DATA:-$ROOT/data}" || die "report failed"
}

main() {
  local phases="all"
  while (($#)); do
    case "$1" in
      --self-test)
        self_test
        exit $?
        ;;
      --phase)
        phases=$2
        shift
        ;;
      --phase=*) phases=${1#--phase=} ;;
      -h | --help)
        sed -n '2,26p' "$SELF"
        exit 0
        ;;
      *) die "unknown argument $1 (see --help)" 2 ;;
    esac
    shift
  done
  [[ $phases == all ]] && phases=build,test,bench,train,report
  cd "$ROOT" || exit 1

  local name="" cap="" arch="" why=""
  if ! command -v nvidia-smi > /dev/null; then
    why="nvidia-smi is not installed"
  else
    name=$(gpu_query name)
    cap=$(gpu_query compute_cap)
    [[ -n $name ]] || why="nvidia-smi lists no GPU"
  fi
  if [[ -z $why ]] && python3 -c 'import torch' 2> /dev/null &&
    [[ $(python3 -c 'import torch;print(int(torch.cuda.is_available()))' 2> /dev/null) == 0 ]]; then
    why="torch.cuda.is_available() is False"
  fi
  if [[ -n $why ]]; then
    say "NO GPU on this machine ($why): the CUDA tests, benchmarks and training cannot run here."
    say "running the checks possible without a GPU instead"
    local rc=0
    local_checks || rc=$?
    print_plan
    if ((rc)); then
      say "local checks FAILED"
      exit 1
    fi
    say "local checks passed; the GPU part remains to be run (exit 0)"
    exit 0
  fi

  arch=$(arch_from_cap "$cap") || die "cannot read the compute capability '$cap' from nvidia-smi"
  say "GPU: $name (compute capability $cap -> CMAKE_CUDA_ARCHITECTURES=$arch)"
  find_cuda_libtorch || die "a CUDA-enabled LibTorch is required (see above)" 2
  say "LibTorch: $TORCH_SOURCE, cmake $TORCH_CMAKE"
  STATE="$ROOT/$GPU_BUILD/gpu-check"
  mkdir -p "$STATE"
  [[ $phases == *build* ]] && setup_deps
  [[ $phases != *build* && -d $ROOT/.devdeps ]] && setup_deps # LD_LIBRARY_PATH for the binaries
  collect_env "$name" "$cap" "$arch"
  trap to_out EXIT
  local rc=0 p
  IFS=, read -ra plist <<< "$phases"
  for p in "${plist[@]}"; do
    case "$p" in
      build) phase_build "$name" "$arch" ;;
      test) phase_test || rc=1 ;;
      bench) phase_bench ;;
      train) phase_train ;;
      report) phase_report "$name" ;;
      *) die "unknown phase $p (build, test, bench, train, report)" 2 ;;
    esac
  done
  exit $rc
}

main "$@"

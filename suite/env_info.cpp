// Environment facts for `moebench env` and for every run row: commit (+ dirty), LibTorch, CUDA,
// the BLAS actually loaded, threads, and a quick matmul speed.
#include "suite/env_info.h"

#include <fmt/format.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <dlfcn.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "kernels/blas_runtime.h"
#include "kernels/cuda/device_info.h"

namespace moebench {
namespace {

std::string run_command(const std::string& cmd) {
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[256];
    while (fgets(buf, sizeof buf, p)) out += buf;
    pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

// The BLAS library actually mapped into this process (Debian picks it through alternatives,
// so the build configuration alone cannot tell).
std::string loaded_blas() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  for (std::string path; std::getline(maps, line);) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    path = line.substr(slash);
    if (path.find("openblas") != std::string::npos || path.find("libblas") != std::string::npos ||
        path.find("mkl") != std::string::npos || path.find("blis") != std::string::npos) {
      return path;
    }
  }
  return "none mapped";
}

}  // namespace

int configure_threads(int threads) {
  const int n =
      threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(n);
  // OpenBLAS's own pthreads and LibTorch's OpenMP threads oversubscribe the cores: measured on
  // the 2-core machine, the tiny config trains 3x faster (and with 7x less system time) when
  // BLAS runs single-threaded inside LibTorch's parallel regions. OPENBLAS_NUM_THREADS, when
  // set, still wins. The symbol is looked up at run time: other BLAS builds lack it.
  if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr) {
    using SetThreads = void (*)(int);
    if (auto fn = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
      fn(1);
    }
  }
  return n;
}

std::string source_commit(bool* dirty) {
  const std::string src = MOEBENCH_SOURCE_DIR;
  const std::string head =
      run_command("git -C '" + src + "' rev-parse --short=12 HEAD 2>/dev/null");
  if (dirty) {
    *dirty = !head.empty() && !run_command("git -C '" + src +
                                           "' status --porcelain --untracked-files=no 2>/dev/null")
                                   .empty();
  }
  return head.empty() ? MOEBENCH_COMMIT : head;
}

EnvInfo collect_env(int threads) {
  EnvInfo env;
  env.threads = configure_threads(threads);
  env.commit = source_commit(&env.dirty);
  env.torch_version = TORCH_VERSION;
  env.torch_cuda = torch::cuda::is_available();
  env.torch_cuda_devices = env.torch_cuda ? static_cast<int>(torch::cuda::device_count()) : 0;
  env.cuda_kernels_built = kernels::cuda_kernels_built();
  env.cuda_runtime_devices = kernels::cuda_device_count(&env.cuda_error);
  // One matmul makes LibTorch load its BLAS before we look for it, and measures it.
  // Deterministic operands: drawing random ones would advance the global RNG that training
  // (dropout) and exact resume depend on.
  auto a = torch::linspace(-1, 1, int64_t{1024} * 1024).view({1024, 1024}), b = a.t().contiguous();
  torch::mm(a, b);
  const auto t0 = std::chrono::steady_clock::now();
  constexpr int kReps = 5;
  for (int i = 0; i < kReps; ++i) torch::mm(a, b);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  env.matmul_gflops = kReps * 2.0 * 1024 * 1024 * 1024 / s / 1e9;
  env.blas = loaded_blas();
  if (const std::string core = kernels::blas_core(); !core.empty())
    env.blas += " (OpenBLAS core " + core + ")";
  return env;
}

}  // namespace moebench

// `moebench env`: the facts every result row depends on (commit, LibTorch, CUDA, BLAS, threads).
// The same facts are written into the store's `env` and `runs` tables by training runs.
#include <fmt/format.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "kernels/cuda/device_info.h"
#include "suite/cli.h"
#include "suite/env_info.h"

namespace moebench::cli {
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

int configure_threads(const GlobalOptions& global) {
  const int n = global.threads > 0
                    ? global.threads
                    : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(n);
  return n;
}

EnvInfo collect_env(const GlobalOptions& global) {
  EnvInfo env;
  env.threads = configure_threads(global);
  const std::string src = MOEBENCH_SOURCE_DIR;
  const std::string head =
      run_command("git -C '" + src + "' rev-parse --short=12 HEAD 2>/dev/null");
  env.commit = head.empty() ? MOEBENCH_COMMIT : head;
  env.dirty = !head.empty() && !run_command("git -C '" + src +
                                            "' status --porcelain --untracked-files=no 2>/dev/null")
                                    .empty();
  env.torch_version = TORCH_VERSION;
  env.torch_cuda = torch::cuda::is_available();
  env.torch_cuda_devices = env.torch_cuda ? static_cast<int>(torch::cuda::device_count()) : 0;
  env.cuda_kernels_built = kernels::cuda_kernels_built();
  env.cuda_runtime_devices = kernels::cuda_device_count(&env.cuda_error);
  // One matmul makes LibTorch load its BLAS before we look for it, and measures it.
  auto a = torch::randn({1024, 1024}), b = torch::randn({1024, 1024});
  torch::mm(a, b);
  const auto t0 = std::chrono::steady_clock::now();
  constexpr int kReps = 5;
  for (int i = 0; i < kReps; ++i) torch::mm(a, b);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  env.matmul_gflops = kReps * 2.0 * 1024 * 1024 * 1024 / s / 1e9;
  env.blas = loaded_blas();
  return env;
}

void add_env_command(CLI::App& app, GlobalOptions& global) {
  auto* env = app.add_subcommand(
      "env",
      "print the software and hardware facts results depend on: commit, LibTorch, "
      "CUDA, BLAS, threads, and a 1024x1024 matmul speed");
  env->callback([&global] {
    const EnvInfo e = collect_env(global);
    fmt::print("commit            {}{}\n", e.commit, e.dirty ? " (dirty)" : "");
    fmt::print("libtorch          {}\n", e.torch_version);
    fmt::print("torch cuda        {} ({} devices)\n", e.torch_cuda ? "available" : "not available",
               e.torch_cuda_devices);
    fmt::print("cuda kernels      {}; runtime sees {} device(s){}\n",
               e.cuda_kernels_built ? "built with nvcc" : "not built", e.cuda_runtime_devices,
               e.cuda_error.empty() ? "" : " (" + e.cuda_error + ")");
    fmt::print("blas              {}\n", e.blas);
    fmt::print("threads           {} (hardware {})\n", e.threads,
               std::thread::hardware_concurrency());
    fmt::print("matmul 1024^3     {:.1f} GFLOP/s fp32\n", e.matmul_gflops);
  });
}

}  // namespace moebench::cli

// `moebench env`: prints the facts every result row depends on (suite/env_info.h collects them).
// The same facts are written into the store's `env` and `runs` tables by training runs.
#include <fmt/format.h>

#include <thread>

#include "suite/cli.h"
#include "suite/env_info.h"

namespace moebench::cli {

void add_env_command(CLI::App& app, GlobalOptions& global) {
  auto* env = app.add_subcommand(
      "env",
      "print the software and hardware facts results depend on: commit, LibTorch, "
      "CUDA, BLAS, threads, and a 1024x1024 matmul speed");
  env->callback([&global] {
    const EnvInfo e = collect_env(global.threads);
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

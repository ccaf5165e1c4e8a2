// Environment facts recorded with every run and printed by `moebench env`.
// Collected once per process by collect_env() (suite/cli_env.cpp).
#pragma once

#include <string>

namespace moebench {

struct EnvInfo {
  std::string commit;
  bool dirty = false;
  std::string torch_version;
  bool torch_cuda = false;
  int torch_cuda_devices = 0;
  bool cuda_kernels_built = false;
  int cuda_runtime_devices = 0;
  std::string cuda_error;
  std::string blas;
  int threads = 1;
  double matmul_gflops = 0;
};

// The source tree's commit (git HEAD, 12 hex digits) and whether tracked files differ from it,
// asked at run time: the build-time MOEBENCH_COMMIT goes stale until CMake reconfigures. Falls
// back to MOEBENCH_COMMIT (dirty = false) when git or the tree is not there.
std::string source_commit(bool* dirty);

// Sets LibTorch's thread count (0 = all cores) and returns it.
int configure_threads(int threads);
// Also sets the thread count, and runs a short 1024^3 matmul to measure the BLAS.
EnvInfo collect_env(int threads);

}  // namespace moebench

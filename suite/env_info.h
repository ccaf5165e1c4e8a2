// Environment facts recorded with every run and printed by `moebench env`.
// Collected once per process by collect_env() (suite/cli_env.cpp).
#pragma once

#include <string>

#include "suite/cli.h"

namespace moebench::cli {

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

// Sets LibTorch's thread count from --threads (default: all cores) and returns it.
int configure_threads(const GlobalOptions& global);
EnvInfo collect_env(const GlobalOptions& global);

}  // namespace moebench::cli

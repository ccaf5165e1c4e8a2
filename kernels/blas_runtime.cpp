// OpenBLAS's core choice and glibc's allocation thresholds at run time (kernels/blas_runtime.h).
#include "kernels/blas_runtime.h"

#include <dlfcn.h>
#include <malloc.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>

namespace moebench::kernels {

std::string blas_core() {
  using CoreName = char* (*)();
  auto fn = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  return fn != nullptr ? std::string(fn()) : std::string();
}

void use_native_blas_kernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr || std::getenv("MOEBENCH_BLAS_AS_LOADED")) {
    return;
  }
  std::string core = blas_core();
  for (char& c : core) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (core != "prescott") return;
  __builtin_cpu_init();
  const char* better = nullptr;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl")) {
    better = "SkylakeX";
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    better = "Haswell";
  }
  if (better == nullptr) return;
  ::setenv("OPENBLAS_CORETYPE", better, 1);
  ::execv("/proc/self/exe", argv);
  ::unsetenv("OPENBLAS_CORETYPE");  // the exec failed: go on with the kernels already loaded
}

bool keep_tensor_memory() {
  if (std::getenv("MOEBENCH_ALLOC_AS_LOADED") != nullptr) return false;
  constexpr int kThreshold = 1 << 30;
  return ::mallopt(M_MMAP_THRESHOLD, kThreshold) == 1 &&
         ::mallopt(M_TRIM_THRESHOLD, kThreshold) == 1;
}

}  // namespace moebench::kernels

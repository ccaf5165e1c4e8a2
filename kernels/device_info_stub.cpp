// Stand-in for kernels/cuda/device_info.cu when the build has no CUDA compiler.
// Linked only when MOEBENCH_CUDA is OFF (see CMakeLists.txt).
#include "kernels/cuda/device_info.h"

namespace moebench::kernels {

bool cuda_kernels_built() { return false; }
int cuda_device_count(std::string* error) {
  if (error) *error = "built without CUDA";
  return 0;
}

}  // namespace moebench::kernels

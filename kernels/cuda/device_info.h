// What the CUDA runtime linked into moebench sees (independent of LibTorch's CUDA support).
// Built from device_info.cu when nvcc exists; a stub answers otherwise.
#pragma once

#include <string>

namespace moebench::kernels {

// True when the CUDA kernels were compiled into this binary.
bool cuda_kernels_built();
// Devices the CUDA runtime reports (0 on a machine without a GPU); -1 if the query failed,
// with the runtime's message in *error.
int cuda_device_count(std::string* error = nullptr);

}  // namespace moebench::kernels

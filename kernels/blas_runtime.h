// The CPU BLAS under LibTorch's matmuls, as loaded at run time (OpenBLAS on the Debian machines).
#pragma once

#include <string>

namespace moebench::kernels {

// OpenBLAS picks its kernels from the CPU model when it loads. A virtual machine that hides the
// model (this project's CI machines report "Intel(R) Xeon(R) Processor") gets the generic
// Prescott kernels, which run sgemm about 3x slower than the AVX-512 ones the CPU has. When that
// happened and OPENBLAS_CORETYPE is unset, this re-executes the program (argv, /proc/self/exe)
// with OPENBLAS_CORETYPE naming the best core the CPU supports (SkylakeX with AVX-512, Haswell
// with AVX2) and does not return; otherwise, or if the exec fails, it returns and nothing changes.
// Call it first in main(). MOEBENCH_BLAS_AS_LOADED=1 keeps the kernels OpenBLAS chose.
void use_native_blas_kernels(char** argv);

// The OpenBLAS core in use ("SkylakeX", "Prescott", ...), "" with another BLAS.
std::string blas_core();

}  // namespace moebench::kernels

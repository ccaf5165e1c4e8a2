// The CPU runtime under LibTorch's ops: the BLAS behind its matmuls, as loaded at run time
// (OpenBLAS on the Debian machines), and the C allocator behind its CPU tensors.
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

// LibTorch's CPU tensors come straight from malloc. glibc serves blocks above its mmap threshold
// (128 KiB, rising to at most 32 MiB) with fresh mmaps and returns them to the kernel when freed,
// so every forward pays page faults and page zeroing again for its attention scores and logits
// (about a fifth of a micro model's evaluation time, measured in the closing note of issue 13).
// This raises the mmap and trim thresholds to 1 GiB: freed tensor memory stays in the heap for
// the next forward, and the process keeps its peak footprint. Call it early in main(), before
// other threads start. MOEBENCH_ALLOC_AS_LOADED=1 keeps glibc's defaults. Returns whether the
// thresholds were set.
bool keep_tensor_memory();

// The OpenBLAS core in use ("SkylakeX", "Prescott", ...), "" with another BLAS.
std::string blas_core();

}  // namespace moebench::kernels

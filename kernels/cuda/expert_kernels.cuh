// CUDA kernels of the shared expert block (DESIGN.md "Kernels"): a torch-free raw-pointer API
// that kernels/expert_ops_cuda.cpp wraps in autograd. Compiled by nvcc, included by g++.
//
// Conventions: every pointer is a device pointer unless its name says host_; matrices are
// row-major and contiguous; `dtype` is the element type of the activation/weight buffers
// (float32 or bfloat16), while gates, dot products and every accumulation are float32. Every
// function enqueues on `stream` and returns without waiting, except where it says "sync".
// Every CUDA/cuBLAS failure is thrown as std::runtime_error naming the call and the error.
// Streams: the caller passes the stream to use (kernels/expert_ops_cuda.cpp passes LibTorch's
// current CUDA stream when LibTorch has CUDA, the legacy default stream otherwise); nothing
// here picks a stream of its own.
// Shape legend as in kernels/routing.h: N tokens, E experts, A pairs, H/I/K row widths.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

// cublasHandle_t is `struct cublasContext*`: declared here so that g++ TUs need no cuBLAS header.
struct cublasContext;

namespace moebench::kernels::cuda {

enum class DType { kFloat32, kBFloat16 };

// Makes `device` current for the lifetime of the guard and restores the previous one after.
class ScopedDevice {
 public:
  explicit ScopedDevice(int device);
  ~ScopedDevice();
  ScopedDevice(const ScopedDevice&) = delete;
  ScopedDevice& operator=(const ScopedDevice&) = delete;

 private:
  int previous_ = -1;
};

// dst[a] = src[index[a]] for a < A; rows of `cols` elements.
void gather_rows(const void* src_RC, const int64_t* index_A, int64_t A, int64_t cols, void* dst_AC,
                 DType dtype, cudaStream_t stream);
// dst[index[a]] = src[a]; the indices must be distinct (each destination row written once, so
// no atomics); rows of dst that no index names are left untouched.
void scatter_rows(const void* src_AC, const int64_t* index_A, int64_t A, int64_t cols, void* dst_RC,
                  DType dtype, cudaStream_t stream);

// h = SiLU(gate_pre) * up, elementwise over [A, I] (computed in float32, rounded once).
void swiglu_forward(const void* gate_pre_AI, const void* up_AI, int64_t A, int64_t I, void* h_AI,
                    DType dtype, cudaStream_t stream);

// Backward of h = SiLU(g) * u for a pair whose contribution is scaled by s = scale[a] (1 when
// scale is null), given d_hu = dL/d(s*h) per row: SiLU is recomputed from gate_pre and up, then
//   d_gate_pre = s * d_hu * u * SiLU'(g),   d_up = s * d_hu * SiLU(g),
//   h_scaled   = s * h                      (optional, null to skip),
//   dot[a]     = sum_i d_hu[a, i] * h[a, i] (optional, null to skip; = dL/ds, the gate grad).
void swiglu_backward(const void* gate_pre_AI, const void* up_AI, const void* d_hu_AI,
                     const float* scale_A, int64_t A, int64_t I, void* d_gate_pre_AI, void* d_up_AI,
                     void* h_scaled_AI, float* dot_A, DType dtype, cudaStream_t stream);

// Per-token reduction over a token-ordered CSR (see token_csr):
//   dst[n] = sum_{j in [token_offsets[n], token_offsets[n+1])} w[p] * src[p],  p = pairs[j],
// with w = weight_A (null: all 1). Float32 accumulation in the fixed CSR order, no atomics, so
// the result is bitwise reproducible; a token with no pairs gets 0. Used for combine (weighted)
// and for the input gradients (unweighted).
void token_reduce(const void* src_AC, const float* weight_A, const int64_t* token_offsets_N1,
                  const int64_t* pairs_by_token_A, int64_t N, int64_t cols, void* dst_NC,
                  DType dtype, cudaStream_t stream);

// Token CSR of a pair list: pairs_by_token = the pair indices stably sorted by token (so within
// a token, ascending pair index = ascending expert for expert-then-token routing), and
// token_offsets [N+1] with the pairs of token n at [off[n], off[n+1]). Tokens must be in [0, N).
// `workspace` must hold token_csr_workspace_bytes(A, N) bytes.
size_t token_csr_workspace_bytes(int64_t A, int64_t N);
void token_csr(const int64_t* token_A, int64_t A, int64_t N, int64_t* token_offsets_N1,
               int64_t* pairs_by_token_A, void* workspace, size_t workspace_bytes,
               cudaStream_t stream);

// Routing from a [N, E] boolean mask (1 byte per entry, nonzero = active), in two phases so the
// caller can size the outputs in between. The flags are laid out expert-major ([E, N]); one
// exclusive scan over them (cub::DeviceScan) gives at once each active pair's position in
// expert-then-token order and, at the start of each expert's row, the expert offsets. The
// workspace (routing_mask_workspace_bytes) carries the flags and positions from phase 1 to 2.
size_t routing_mask_workspace_bytes(int64_t N, int64_t E);
// Phase 1: offsets_E1 [E+1] int64 on the device (offsets[E] = A, the pair total).
void routing_mask_offsets(const uint8_t* mask_NE, int64_t N, int64_t E, int64_t* offsets_E1,
                          void* workspace, size_t workspace_bytes, cudaStream_t stream);
// Phase 2 (same workspace, untouched since phase 1): token_A and expert_A of the A pairs.
void routing_mask_compact(int64_t N, int64_t E, int64_t* token_A, int64_t* expert_A,
                          const void* workspace, size_t workspace_bytes, cudaStream_t stream);

// Grouped matmul over expert segments: a loop of cublasGemmEx (float32 compute, no TF32), one
// per non-empty expert. host_offsets [E+1] live on the HOST: the caller copies the expert
// offsets once (its one counted sync) and reuses them for every grouped matmul of the step.
// W is [E, O, K] (each expert O x K, e.g. U_e [I, H]).
//   forward:     out[a]  = W_e x[a]          x_AK -> out_AO
//   input grad:  dx[a]   = W_e^T dout[a]     dout_AO -> dx_AK
//   weight grad: dW_e    = sum_a dout[a] x[a]^T over e's pairs, 0 for an empty expert.
// `blas`: the cuBLAS handle to use, for the current device (LibTorch's
// at::cuda::getCurrentCUDABlasHandle(), so that one cuBLAS library and workspace serve both);
// null: one handle of our own per thread and device. Either way the handle is bound to `stream`
// (cublasSetStream, skipped when it already is, since it would reset the workspace LibTorch
// attached) and its math mode set to CUBLAS_DEFAULT_MATH for our GEMMs (no TF32, whatever
// torch.backends.cuda.matmul.allow_tf32 says).
void grouped_mm_forward(const void* x_AK, const void* w_EOK, const int64_t* host_offsets, int64_t E,
                        int64_t O, int64_t K, void* out_AO, DType dtype, cudaStream_t stream,
                        cublasContext* blas = nullptr);
void grouped_mm_input_grad(const void* dout_AO, const void* w_EOK, const int64_t* host_offsets,
                           int64_t E, int64_t O, int64_t K, void* dx_AK, DType dtype,
                           cudaStream_t stream, cublasContext* blas = nullptr);
void grouped_mm_weight_grad(const void* dout_AO, const void* x_AK, const int64_t* host_offsets,
                            int64_t E, int64_t O, int64_t K, void* dw_EOK, DType dtype,
                            cudaStream_t stream, cublasContext* blas = nullptr);

}  // namespace moebench::kernels::cuda

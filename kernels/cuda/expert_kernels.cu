// CUDA kernels of the shared expert block (DESIGN.md "Kernels"): gather/scatter, fused SwiGLU,
// deterministic per-token combine, routing from a mask, token CSR and cuBLAS grouped matmul.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cub/cub.cuh>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "kernels/cuda/expert_kernels.cuh"

namespace moebench::kernels::cuda {
namespace {

constexpr int kThreads = 256;
// Grid-stride loops cover the rest; this only caps the launch size.
constexpr int64_t kMaxBlocks = int64_t{1} << 20;
// Scratch sub-buffers start on 256-byte boundaries (what cudaMalloc guarantees, CUB expects).
constexpr size_t kAlign = 256;

void check(cudaError_t rc, const char* what) {
  if (rc != cudaSuccess) {
    throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(rc));
  }
}

void check_cublas(cublasStatus_t rc, const char* what) {
  if (rc != CUBLAS_STATUS_SUCCESS) {
    throw std::runtime_error(std::string("cuBLAS error in ") + what + ": " +
                             cublasGetStatusString(rc));
  }
}

// A failed launch (bad configuration, no device, kernel image missing for this GPU) shows up
// only in the next runtime call; ask right away so the error names the kernel.
void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

int to_int(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX) {
    throw std::runtime_error(std::string("expert CUDA kernels: ") + what + " = " +
                             std::to_string(v) + " is outside the int range cuBLAS/CUB accept");
  }
  return static_cast<int>(v);
}

unsigned blocks_for(int64_t work_items, int64_t per_block) {
  return static_cast<unsigned>(
      std::max<int64_t>(1, std::min(kMaxBlocks, (work_items + per_block - 1) / per_block)));
}

size_t align_up(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

size_t element_bytes(DType dtype) { return dtype == DType::kFloat32 ? 4 : 2; }

// Runs f(T{}) with T the element type of `dtype`.
template <typename F>
void dispatch(DType dtype, F&& f) {
  if (dtype == DType::kFloat32) {
    f(float{});
  } else {
    f(__nv_bfloat16{});
  }
}

__device__ inline float to_float(float v) { return v; }
__device__ inline float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T>
__device__ inline T from_float(float v);
template <>
__device__ inline float from_float<float>(float v) {
  return v;
}
template <>
__device__ inline __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16(v);  // round to nearest even, as LibTorch's conversion
}

// ---- gather / scatter ------------------------------------------------------------------------

template <typename T>
__global__ void gather_rows_kernel(const T* src, const int64_t* index, int64_t A, int64_t cols,
                                   T* dst) {
  for (int64_t a = blockIdx.x; a < A; a += gridDim.x) {
    const T* s = src + index[a] * cols;
    T* d = dst + a * cols;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) d[c] = s[c];
  }
}

template <typename T>
__global__ void scatter_rows_kernel(const T* src, const int64_t* index, int64_t A, int64_t cols,
                                    T* dst) {
  for (int64_t a = blockIdx.x; a < A; a += gridDim.x) {
    const T* s = src + a * cols;
    T* d = dst + index[a] * cols;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) d[c] = s[c];
  }
}

// ---- SwiGLU ----------------------------------------------------------------------------------

template <typename T>
__global__ void swiglu_forward_kernel(const T* gate_pre, const T* up, int64_t n, T* h) {
  for (int64_t k = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; k < n;
       k += int64_t{gridDim.x} * blockDim.x) {
    const float g = to_float(gate_pre[k]);
    const float sig = 1.f / (1.f + expf(-g));
    h[k] = from_float<T>(g * sig * to_float(up[k]));
  }
}

// One block per row: the optional dot product needs a reduction over the row. The block size is
// fixed, so the reduction tree (and the result) is the same on every run.
template <typename T>
__global__ void swiglu_backward_kernel(const T* gate_pre, const T* up, const T* d_hu,
                                       const float* scale, int64_t A, int64_t I, T* d_gate_pre,
                                       T* d_up, T* h_scaled, float* dot) {
  using Reduce = cub::BlockReduce<float, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  for (int64_t a = blockIdx.x; a < A; a += gridDim.x) {
    const float s = scale ? scale[a] : 1.f;
    float partial = 0.f;
    for (int64_t i = threadIdx.x; i < I; i += kThreads) {
      const int64_t k = a * I + i;
      const float g = to_float(gate_pre[k]);
      const float u = to_float(up[k]);
      const float d = to_float(d_hu[k]);
      const float sig = 1.f / (1.f + expf(-g));
      const float silu = g * sig;
      const float h = silu * u;
      partial += d * h;
      const float ds = s * d;
      // SiLU'(g) = sig * (1 + g * (1 - sig))
      d_gate_pre[k] = from_float<T>(ds * u * sig * (1.f + g * (1.f - sig)));
      d_up[k] = from_float<T>(ds * silu);
      if (h_scaled) h_scaled[k] = from_float<T>(s * h);
    }
    if (dot) {  // uniform over the block, so the barrier inside the reduction is safe
      const float total = Reduce(tmp).Sum(partial);
      if (threadIdx.x == 0) dot[a] = total;
      __syncthreads();  // tmp is reused by the next row
    }
  }
}

// ---- per-token reduction ---------------------------------------------------------------------

template <typename T>
__global__ void token_reduce_kernel(const T* src, const float* weight, const int64_t* offsets,
                                    const int64_t* pairs, int64_t N, int64_t cols, T* dst) {
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const int64_t begin = offsets[n];
    const int64_t end = offsets[n + 1];
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      float acc = 0.f;
      for (int64_t j = begin; j < end; ++j) {
        const int64_t p = pairs[j];
        const float w = weight ? weight[p] : 1.f;
        acc += w * to_float(src[p * cols + c]);
      }
      dst[n * cols + c] = from_float<T>(acc);
    }
  }
}

// ---- token CSR -------------------------------------------------------------------------------

__global__ void iota_kernel(int64_t n, int64_t* out) {
  for (int64_t k = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; k < n;
       k += int64_t{gridDim.x} * blockDim.x) {
    out[k] = k;
  }
}

// off[n] = first j with sorted[j] >= n (lower bound), for n = 0..N; off[N] = A.
__global__ void csr_offsets_kernel(const int64_t* sorted, int64_t A, int64_t N, int64_t* off) {
  for (int64_t n = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; n <= N;
       n += int64_t{gridDim.x} * blockDim.x) {
    int64_t lo = 0, hi = A;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (sorted[mid] < n) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    off[n] = lo;
  }
}

// Tokens are in [0, N), so only the low bits of the keys need sorting.
int token_key_bits(int64_t N) {
  int bits = 1;
  while (bits < 63 && (int64_t{1} << bits) < N) ++bits;
  return bits;
}

size_t token_sort_temp_bytes(int A, int bits) {
  size_t bytes = 0;
  check(cub::DeviceRadixSort::SortPairs(
            nullptr, bytes, static_cast<const int64_t*>(nullptr), static_cast<int64_t*>(nullptr),
            static_cast<const int64_t*>(nullptr), static_cast<int64_t*>(nullptr), A, 0, bits),
        "cub::DeviceRadixSort::SortPairs (size query)");
  return bytes;
}

// ---- routing from a mask ---------------------------------------------------------------------

// flags[e * N + n] = mask[n * E + e] != 0 (expert-major, so a scan walks expert-then-token).
__global__ void mask_flags_kernel(const uint8_t* mask, int64_t N, int64_t E, int32_t* flags) {
  const int64_t total = N * E;
  for (int64_t k = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; k < total;
       k += int64_t{gridDim.x} * blockDim.x) {
    const int64_t e = k / N;
    const int64_t n = k - e * N;
    flags[k] = mask[n * E + e] != 0 ? 1 : 0;
  }
}

__global__ void mask_offsets_kernel(const int32_t* flags, const int32_t* pos, int64_t N, int64_t E,
                                    int64_t* offsets) {
  const int64_t total = N * E;
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e <= E;
       e += int64_t{gridDim.x} * blockDim.x) {
    if (total == 0) {
      offsets[e] = 0;
    } else if (e < E) {
      offsets[e] = pos[e * N];
    } else {
      offsets[e] = int64_t{pos[total - 1]} + flags[total - 1];
    }
  }
}

__global__ void mask_compact_kernel(const int32_t* flags, const int32_t* pos, int64_t N, int64_t E,
                                    int64_t* token, int64_t* expert) {
  const int64_t total = N * E;
  for (int64_t k = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; k < total;
       k += int64_t{gridDim.x} * blockDim.x) {
    if (flags[k]) {
      const int64_t e = k / N;
      token[pos[k]] = k - e * N;
      expert[pos[k]] = e;
    }
  }
}

struct MaskScratch {
  int32_t* flags;
  int32_t* pos;
  void* temp;
  size_t temp_bytes;
};

size_t mask_scan_temp_bytes(int total) {
  size_t bytes = 0;
  check(cub::DeviceScan::ExclusiveSum(nullptr, bytes, static_cast<const int32_t*>(nullptr),
                                      static_cast<int32_t*>(nullptr), total),
        "cub::DeviceScan::ExclusiveSum (size query)");
  return bytes;
}

MaskScratch mask_scratch(void* workspace, size_t workspace_bytes, int64_t N, int64_t E) {
  const int total = to_int(N * E, "N * E (mask entries)");
  const size_t flag_bytes = align_up(sizeof(int32_t) * static_cast<size_t>(total));
  MaskScratch s;
  s.flags = static_cast<int32_t*>(workspace);
  s.pos = reinterpret_cast<int32_t*>(static_cast<char*>(workspace) + flag_bytes);
  s.temp = static_cast<char*>(workspace) + 2 * flag_bytes;
  s.temp_bytes = mask_scan_temp_bytes(total);
  if (workspace_bytes < 2 * flag_bytes + s.temp_bytes) {
    throw std::runtime_error("routing_mask: workspace smaller than routing_mask_workspace_bytes");
  }
  return s;
}

// ---- grouped matmul --------------------------------------------------------------------------

// The handle for a grouped matmul: the caller's (LibTorch's, see expert_kernels.cuh) or one of
// our own per thread and device (cuBLAS's advice), created on first use and kept for the life of
// the process, so no GEMM pays for handle creation. Bound to `stream` and set to the default
// math mode (no TF32: LibTorch sets TF32 on its handle when allow_tf32 is on).
cublasHandle_t cublas_handle(cudaStream_t stream, cublasHandle_t given) {
  cublasHandle_t h = given;
  if (h == nullptr) {
    int device = 0;
    check(cudaGetDevice(&device), "cudaGetDevice");
    thread_local std::unordered_map<int, cublasHandle_t> handles;
    auto it = handles.find(device);
    if (it == handles.end()) {
      cublasHandle_t created = nullptr;
      check_cublas(cublasCreate(&created), "cublasCreate");
      it = handles.emplace(device, created).first;
    }
    h = it->second;
  }
  cudaStream_t bound = nullptr;
  check_cublas(cublasGetStream(h, &bound), "cublasGetStream");
  if (given == nullptr || bound != stream) {
    check_cublas(cublasSetStream(h, stream), "cublasSetStream");
  }
  check_cublas(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  return h;
}

cudaDataType_t cublas_type(DType dtype) {
  return dtype == DType::kFloat32 ? CUDA_R_32F : CUDA_R_16BF;
}

// Column-major C[m, n] = op(A) op(B); float32 compute (CUBLAS_COMPUTE_32F never uses TF32).
void gemm(cublasHandle_t h, cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k,
          const void* a, int lda, const void* b, int ldb, void* c, int ldc, DType dtype) {
  const float alpha = 1.f, beta = 0.f;
  const cudaDataType_t t = cublas_type(dtype);
  check_cublas(cublasGemmEx(h, op_a, op_b, m, n, k, &alpha, a, t, lda, b, t, ldb, &beta, c, t, ldc,
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx");
}

const char* at_row(const void* base, int64_t row, int64_t cols, DType dtype) {
  return static_cast<const char*>(base) + row * cols * static_cast<int64_t>(element_bytes(dtype));
}
char* at_row(void* base, int64_t row, int64_t cols, DType dtype) {
  return static_cast<char*>(base) + row * cols * static_cast<int64_t>(element_bytes(dtype));
}

}  // namespace

ScopedDevice::ScopedDevice(int device) {
  check(cudaGetDevice(&previous_), "cudaGetDevice");
  if (previous_ != device) check(cudaSetDevice(device), "cudaSetDevice");
}

ScopedDevice::~ScopedDevice() {
  int now = previous_;
  if (cudaGetDevice(&now) == cudaSuccess && now != previous_) cudaSetDevice(previous_);
}

void gather_rows(const void* src_RC, const int64_t* index_A, int64_t A, int64_t cols, void* dst_AC,
                 DType dtype, cudaStream_t stream) {
  if (A == 0 || cols == 0) return;
  dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    gather_rows_kernel<T><<<blocks_for(A, 1), kThreads, 0, stream>>>(
        static_cast<const T*>(src_RC), index_A, A, cols, static_cast<T*>(dst_AC));
  });
  check_launch("gather_rows_kernel");
}

void scatter_rows(const void* src_AC, const int64_t* index_A, int64_t A, int64_t cols, void* dst_RC,
                  DType dtype, cudaStream_t stream) {
  if (A == 0 || cols == 0) return;
  dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    scatter_rows_kernel<T><<<blocks_for(A, 1), kThreads, 0, stream>>>(
        static_cast<const T*>(src_AC), index_A, A, cols, static_cast<T*>(dst_RC));
  });
  check_launch("scatter_rows_kernel");
}

void swiglu_forward(const void* gate_pre_AI, const void* up_AI, int64_t A, int64_t I, void* h_AI,
                    DType dtype, cudaStream_t stream) {
  const int64_t n = A * I;
  if (n == 0) return;
  dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    swiglu_forward_kernel<T><<<blocks_for(n, kThreads), kThreads, 0, stream>>>(
        static_cast<const T*>(gate_pre_AI), static_cast<const T*>(up_AI), n, static_cast<T*>(h_AI));
  });
  check_launch("swiglu_forward_kernel");
}

void swiglu_backward(const void* gate_pre_AI, const void* up_AI, const void* d_hu_AI,
                     const float* scale_A, int64_t A, int64_t I, void* d_gate_pre_AI, void* d_up_AI,
                     void* h_scaled_AI, float* dot_A, DType dtype, cudaStream_t stream) {
  if (A == 0) return;
  dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    swiglu_backward_kernel<T><<<blocks_for(A, 1), kThreads, 0, stream>>>(
        static_cast<const T*>(gate_pre_AI), static_cast<const T*>(up_AI),
        static_cast<const T*>(d_hu_AI), scale_A, A, I, static_cast<T*>(d_gate_pre_AI),
        static_cast<T*>(d_up_AI), static_cast<T*>(h_scaled_AI), dot_A);
  });
  check_launch("swiglu_backward_kernel");
}

void token_reduce(const void* src_AC, const float* weight_A, const int64_t* token_offsets_N1,
                  const int64_t* pairs_by_token_A, int64_t N, int64_t cols, void* dst_NC,
                  DType dtype, cudaStream_t stream) {
  if (N == 0 || cols == 0) return;
  dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    token_reduce_kernel<T><<<blocks_for(N, 1), kThreads, 0, stream>>>(
        static_cast<const T*>(src_AC), weight_A, token_offsets_N1, pairs_by_token_A, N, cols,
        static_cast<T*>(dst_NC));
  });
  check_launch("token_reduce_kernel");
}

size_t token_csr_workspace_bytes(int64_t A, int64_t N) {
  if (A == 0) return 0;
  const size_t keys = align_up(sizeof(int64_t) * static_cast<size_t>(A));
  return 2 * keys + token_sort_temp_bytes(to_int(A, "A (pairs)"), token_key_bits(N));
}

void token_csr(const int64_t* token_A, int64_t A, int64_t N, int64_t* token_offsets_N1,
               int64_t* pairs_by_token_A, void* workspace, size_t workspace_bytes,
               cudaStream_t stream) {
  int64_t* sorted = nullptr;
  if (A > 0) {
    if (workspace_bytes < token_csr_workspace_bytes(A, N)) {
      throw std::runtime_error("token_csr: workspace smaller than token_csr_workspace_bytes");
    }
    const int a = to_int(A, "A (pairs)");
    const int bits = token_key_bits(N);
    const size_t keys = align_up(sizeof(int64_t) * static_cast<size_t>(A));
    sorted = static_cast<int64_t*>(workspace);
    auto* iota = reinterpret_cast<int64_t*>(static_cast<char*>(workspace) + keys);
    void* temp = static_cast<char*>(workspace) + 2 * keys;
    size_t temp_bytes = token_sort_temp_bytes(a, bits);
    iota_kernel<<<blocks_for(A, kThreads), kThreads, 0, stream>>>(A, iota);
    check_launch("iota_kernel");
    // Radix sort is stable: pairs of one token keep their ascending pair order.
    check(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, token_A, sorted, iota, pairs_by_token_A,
                                          a, 0, bits, stream),
          "cub::DeviceRadixSort::SortPairs");
  }
  csr_offsets_kernel<<<blocks_for(N + 1, kThreads), kThreads, 0, stream>>>(sorted, A, N,
                                                                           token_offsets_N1);
  check_launch("csr_offsets_kernel");
}

size_t routing_mask_workspace_bytes(int64_t N, int64_t E) {
  const int total = to_int(N * E, "N * E (mask entries)");
  return 2 * align_up(sizeof(int32_t) * static_cast<size_t>(total)) + mask_scan_temp_bytes(total);
}

void routing_mask_offsets(const uint8_t* mask_NE, int64_t N, int64_t E, int64_t* offsets_E1,
                          void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  const MaskScratch s = mask_scratch(workspace, workspace_bytes, N, E);
  const int64_t total = N * E;
  if (total > 0) {
    mask_flags_kernel<<<blocks_for(total, kThreads), kThreads, 0, stream>>>(mask_NE, N, E, s.flags);
    check_launch("mask_flags_kernel");
    size_t temp_bytes = s.temp_bytes;
    check(cub::DeviceScan::ExclusiveSum(s.temp, temp_bytes, s.flags, s.pos, static_cast<int>(total),
                                        stream),
          "cub::DeviceScan::ExclusiveSum");
  }
  mask_offsets_kernel<<<blocks_for(E + 1, kThreads), kThreads, 0, stream>>>(s.flags, s.pos, N, E,
                                                                            offsets_E1);
  check_launch("mask_offsets_kernel");
}

void routing_mask_compact(int64_t N, int64_t E, int64_t* token_A, int64_t* expert_A,
                          const void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  const MaskScratch s = mask_scratch(const_cast<void*>(workspace), workspace_bytes, N, E);
  const int64_t total = N * E;
  if (total == 0) return;
  mask_compact_kernel<<<blocks_for(total, kThreads), kThreads, 0, stream>>>(s.flags, s.pos, N, E,
                                                                            token_A, expert_A);
  check_launch("mask_compact_kernel");
}

// Row-major to cuBLAS (column-major): a row-major [r, c] buffer is the column-major [c, r]
// matrix, its transpose, with leading dimension c. Each mode below is written in that view.
void grouped_mm_forward(const void* x_AK, const void* w_EOK, const int64_t* host_offsets, int64_t E,
                        int64_t O, int64_t K, void* out_AO, DType dtype, cudaStream_t stream,
                        cublasContext* blas) {
  if (O == 0 || K == 0) {
    if (O > 0) {  // an empty inner dimension makes every product 0
      check(cudaMemsetAsync(out_AO, 0, host_offsets[E] * O * element_bytes(dtype), stream),
            "cudaMemsetAsync");
    }
    return;
  }
  cublasHandle_t h = cublas_handle(stream, blas);
  const int o = to_int(O, "O"), k = to_int(K, "K");
  for (int64_t e = 0; e < E; ++e) {
    const int m = to_int(host_offsets[e + 1] - host_offsets[e], "expert segment");
    if (m == 0) continue;
    // out^T [O, m] = (W_e^T)^T [O, K] . x^T [K, m]
    gemm(h, CUBLAS_OP_T, CUBLAS_OP_N, o, m, k, at_row(w_EOK, e * O, K, dtype), k,
         at_row(x_AK, host_offsets[e], K, dtype), k, at_row(out_AO, host_offsets[e], O, dtype), o,
         dtype);
  }
}

void grouped_mm_input_grad(const void* dout_AO, const void* w_EOK, const int64_t* host_offsets,
                           int64_t E, int64_t O, int64_t K, void* dx_AK, DType dtype,
                           cudaStream_t stream, cublasContext* blas) {
  if (O == 0 || K == 0) {
    if (K > 0) {
      check(cudaMemsetAsync(dx_AK, 0, host_offsets[E] * K * element_bytes(dtype), stream),
            "cudaMemsetAsync");
    }
    return;
  }
  cublasHandle_t h = cublas_handle(stream, blas);
  const int o = to_int(O, "O"), k = to_int(K, "K");
  for (int64_t e = 0; e < E; ++e) {
    const int m = to_int(host_offsets[e + 1] - host_offsets[e], "expert segment");
    if (m == 0) continue;
    // dx^T [K, m] = W_e^T [K, O] . dout^T [O, m]
    gemm(h, CUBLAS_OP_N, CUBLAS_OP_N, k, m, o, at_row(w_EOK, e * O, K, dtype), k,
         at_row(dout_AO, host_offsets[e], O, dtype), o, at_row(dx_AK, host_offsets[e], K, dtype), k,
         dtype);
  }
}

void grouped_mm_weight_grad(const void* dout_AO, const void* x_AK, const int64_t* host_offsets,
                            int64_t E, int64_t O, int64_t K, void* dw_EOK, DType dtype,
                            cudaStream_t stream, cublasContext* blas) {
  if (E == 0 || O == 0 || K == 0) return;
  // Empty experts get exactly 0 without relying on how cuBLAS treats a zero inner dimension.
  check(cudaMemsetAsync(dw_EOK, 0, E * O * K * element_bytes(dtype), stream), "cudaMemsetAsync");
  cublasHandle_t h = cublas_handle(stream, blas);
  const int o = to_int(O, "O"), k = to_int(K, "K");
  for (int64_t e = 0; e < E; ++e) {
    const int m = to_int(host_offsets[e + 1] - host_offsets[e], "expert segment");
    if (m == 0) continue;
    // dW_e^T [K, O] = x^T [K, m] . (dout^T)^T [m, O]
    gemm(h, CUBLAS_OP_N, CUBLAS_OP_T, k, o, m, at_row(x_AK, host_offsets[e], K, dtype), k,
         at_row(dout_AO, host_offsets[e], O, dtype), o, at_row(dw_EOK, e * O, K, dtype), k, dtype);
  }
}

}  // namespace moebench::kernels::cuda

// The fast CPU backend's individual ops (gather, grouped GEMM in its three modes, combine), exposed
// for tests and benchmarks; expert_swiglu_cpu (kernels/backends.h) is built from them. DESIGN.md
// "Kernels".
#pragma once

#include <torch/torch.h>

namespace moebench::kernels::cpu {

// Pairs regrouped by token (a CSR over the pair list): the pairs of token n are
// pairs_A[offsets_N1[n] .. offsets_N1[n+1]), in increasing pair index. Built by a stable
// counting sort, so it is a pure function of token_A (determinism needs no atomics).
struct TokenCsr {
  torch::Tensor offsets_N1;  // [N+1] int64
  torch::Tensor pairs_A;     // [A] int64
};
// Throws std::invalid_argument when a token index is outside [0, num_tokens).
TokenCsr build_token_csr(const torch::Tensor& token_A, int64_t num_tokens);

// out[a] = src[index[a]] (row copy); index must lie in [0, src rows).
torch::Tensor gather_rows(const torch::Tensor& src_RK, const torch::Tensor& index_A);

// Per-expert segments of the pair list, segment e = rows [offsets[e], offsets[e+1]).
// forward:     out[a]   = w[e] @ x[a]              [A, O] from x_AK and w_EOK
// input grad:  dx[a]    = w[e]^T @ dout[a]         [A, K] from dout_AO and w_EOK
// weight grad: dw[e]    = sum_a dout[a] x[a]^T     [E, O, K]; an empty segment gives zeros
// Each segment is one BLAS call writing straight into its slice (no cat, no split-K).
torch::Tensor grouped_mm_forward(const torch::Tensor& x_AK, const torch::Tensor& w_EOK,
                                 const torch::Tensor& expert_offsets);
torch::Tensor grouped_mm_input_grad(const torch::Tensor& dout_AO, const torch::Tensor& w_EOK,
                                    const torch::Tensor& expert_offsets);
torch::Tensor grouped_mm_weight_grad(const torch::Tensor& dout_AO, const torch::Tensor& x_AK,
                                     const torch::Tensor& expert_offsets, int64_t num_experts);

// y[n] = sum over the pairs a of token n, in increasing a, of gate[a] * out[a]: one thread per
// token row, accumulation in the tensor's own float/double type, k_n = 0 gives exact zeros.
// An undefined gate means weight 1 (a plain per-token sum, used for input gradients).
torch::Tensor combine(const torch::Tensor& out_AH, const torch::Tensor& gate_A,
                      const TokenCsr& csr);
torch::Tensor combine(const torch::Tensor& out_AH, const torch::Tensor& gate_A,
                      const torch::Tensor& token_A, int64_t num_tokens);

}  // namespace moebench::kernels::cpu

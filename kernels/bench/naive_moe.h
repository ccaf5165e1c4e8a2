// The naive MoE expert loop, as the method's public code (and HF Mixtral) writes it: the peer the
// expert-block benchmark compares against (shared/DESIGN.md "Kernels": benchmarks beside kernels).
#pragma once

#include <torch/torch.h>

#include <stdexcept>

#include "kernels/expert_ops.h"

namespace moebench::kernels::bench {

// y[n] = sum over experts e with mask[n, e] of weights[n, e] * D_e (SiLU(G_e g) * U_e x_n), with
// g = gate_in[n] (full-rank gate) or, with gate_in_per_pair, gate_in[n * E + e] (low-rank gate).
// Deliberately the slow shape: a zero [N, H] buffer; per expert one nonzero() on the mask column
// (one host sync each), index_select of the rows, plain LibTorch matmuls, index_add into the
// buffer. Routing is discovered inside the loop, never built up front; autograd does backward.
// Header-only so that both models_tests and bench_kernels use this one definition.
inline torch::Tensor naive_moe(const torch::Tensor& x_NH, const torch::Tensor& gate_in,
                               bool gate_in_per_pair, const ExpertWeights& w,
                               const torch::Tensor& mask_NE, const torch::Tensor& weights_NE) {
  const int64_t N = x_NH.size(0);
  const int64_t E = mask_NE.size(1);
  if (mask_NE.size(0) != N || weights_NE.sizes() != mask_NE.sizes() || w.up_EIH.size(0) != E) {
    throw std::invalid_argument("naive_moe: mask, weights [N, E] and experts disagree on N or E");
  }
  auto y_NH = torch::zeros_like(x_NH);
  for (int64_t e = 0; e < E; ++e) {
    const auto idx = torch::nonzero(mask_NE.select(1, e)).squeeze(1);  // host sync (its size)
    if (idx.numel() == 0) continue;
    const auto x_TH = x_NH.index_select(0, idx);
    const auto g_TK = gate_in.index_select(0, gate_in_per_pair ? idx * E + e : idx);
    const auto h_TI =
        torch::silu(torch::mm(g_TK, w.gate_EIK[e].t())) * torch::mm(x_TH, w.up_EIH[e].t());
    const auto out_TH = torch::mm(h_TI, w.down_EHI[e].t()) *
                        weights_NE.select(1, e).index_select(0, idx).unsqueeze(1);
    y_NH.index_add_(0, idx, out_TH.to(y_NH.scalar_type()));
  }
  return y_NH;
}

}  // namespace moebench::kernels::bench

// Routing as data: every MoE method lowers its decision to this value, then runs the same
// expert kernels. See shared/DESIGN.md "The one seam that matters".
//
// Shape legend: N tokens, E experts, H hidden, I expert intermediate, K gate-branch input width
// (H for full-rank experts, r for the low-rank RF/AoE gate), A computed (token, expert) pairs.
#pragma once

#include <torch/torch.h>

namespace moebench::kernels {

struct Routing {
  torch::Tensor token;           // [A] int64, stable order: by expert, then by token
  torch::Tensor expert;          // [A] int64, non-decreasing
  torch::Tensor gate;            // [A] float, differentiable weight of each pair
  torch::Tensor expert_offsets;  // [E+1] int64: pairs of expert e are [off[e], off[e+1])
  int64_t num_tokens = 0;
  int64_t num_experts = 0;

  int64_t num_pairs() const { return token.defined() ? token.size(0) : 0; }
  // Row index of each pair in a row-major [N, E] (or [N*E, ...]) layout: token * E + expert.
  torch::Tensor flat_index() const { return token * num_experts + expert; }
};

// Pairs where mask_NE is true, in expert-then-token order; gate = weights_NE at those pairs
// (gradient flows into weights_NE, never into the mask). Tokens may have 0..E experts.
Routing routing_from_mask(const torch::Tensor& mask_NE, const torch::Tensor& weights_NE);

// Pairs (n, topk_NK[n, j]) with gate weights_NK[n, j]; reordered expert-then-token.
Routing routing_from_topk(const torch::Tensor& topk_NK, const torch::Tensor& weights_NK,
                          int64_t num_experts);

// bool [N, E]: true at the pairs the routing computes (no gradient).
torch::Tensor active_mask(const Routing& routing);

}  // namespace moebench::kernels

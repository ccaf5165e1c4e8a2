// build_routing: masks or top-k indices -> Routing (expert-then-token order, offsets).
// Deterministic: the order is a pure function of the mask, never of thread timing.
#include "kernels/routing.h"

namespace moebench::kernels {
namespace {

torch::Tensor offsets_from_counts(const torch::Tensor& counts_E) {
  auto off = torch::zeros({counts_E.size(0) + 1}, counts_E.options().dtype(torch::kLong));
  off.slice(0, 1).copy_(counts_E.cumsum(0));
  return off;
}

}  // namespace

Routing routing_from_mask(const torch::Tensor& mask_NE, const torch::Tensor& weights_NE) {
  TORCH_CHECK(mask_NE.dim() == 2 && weights_NE.sizes() == mask_NE.sizes(),
              "routing_from_mask: mask and weights must both be [N, E]");
  Routing r;
  r.num_tokens = mask_NE.size(0);
  r.num_experts = mask_NE.size(1);
  // nonzero() of the transposed mask walks experts in order, tokens ascending within each.
  const auto idx = mask_NE.detach().to(torch::kBool).t().nonzero();  // [A, 2] = (expert, token)
  r.expert = idx.select(1, 0).contiguous();
  r.token = idx.select(1, 1).contiguous();
  r.gate = weights_NE.reshape({-1}).index_select(0, r.flat_index());
  r.expert_offsets = offsets_from_counts(mask_NE.detach().to(torch::kLong).sum(0));
  return r;
}

Routing routing_from_topk(const torch::Tensor& topk_NK, const torch::Tensor& weights_NK,
                          int64_t num_experts) {
  TORCH_CHECK(topk_NK.dim() == 2 && weights_NK.sizes() == topk_NK.sizes(),
              "routing_from_topk: indices and weights must both be [N, k]");
  Routing r;
  r.num_tokens = topk_NK.size(0);
  r.num_experts = num_experts;
  const int64_t k = topk_NK.size(1);
  const auto token = torch::arange(r.num_tokens, topk_NK.options().dtype(torch::kLong))
                         .unsqueeze(1)
                         .expand({r.num_tokens, k})
                         .reshape({-1});
  const auto expert = topk_NK.reshape({-1}).to(torch::kLong);
  // Stable sort by the combined key keeps expert-then-token order deterministic. The optional
  // must be explicit: a bare `true` binds to sort(int64_t dim) and asks for dim 1 of a 1-D key.
  const auto order =
      std::get<1>((expert * r.num_tokens + token).sort(c10::optional<bool>(true), /*dim=*/0));
  r.token = token.index_select(0, order);
  r.expert = expert.index_select(0, order);
  r.gate = weights_NK.reshape({-1}).index_select(0, order);
  r.expert_offsets =
      offsets_from_counts(torch::bincount(expert, /*weights=*/{}, num_experts).to(torch::kLong));
  return r;
}

torch::Tensor active_mask(const Routing& r) {
  auto mask = torch::zeros({r.num_tokens * r.num_experts},
                           torch::dtype(torch::kBool).device(r.expert_offsets.device()));
  if (r.num_pairs() > 0) mask.index_fill_(0, r.flat_index(), true);
  return mask.view({r.num_tokens, r.num_experts});
}

}  // namespace moebench::kernels

// Autonomy-of-Experts gate (arXiv 2501.13074; METHODS.md §5): norm scores, top-K, softmax over
// the chosen norms; the low-rank z feeds the experts' gate branch through the shared kernels.
#include "baselines/aoe.h"

#include <stdexcept>

namespace moebench::baselines {

int64_t aoe_wide_intermediate(int64_t H, int64_t I, int64_t r) {
  if (H < 1 || I < 1 || r < 1 || 3 * H * I <= r * H) {
    throw std::invalid_argument("aoe_wide_intermediate: needs H, I, r >= 1 and r < 3·I");
  }
  return (3 * H * I - r * H) / (r + 2 * H);  // integer division: rounds down (see aoe.h)
}

AoePolicyImpl::AoePolicyImpl(int64_t hidden, const models::MoeOptions& opts, double init_std)
    : experts_(opts.experts), rank_(opts.effective_rank()), k_(opts.effective_top_k()) {
  if (k_ > experts_) {
    throw std::invalid_argument("aoe: top_k (" + std::to_string(k_) + ") exceeds experts (" +
                                std::to_string(experts_) + ")");
  }
  A_ErH = register_parameter("A", torch::randn({experts_, rank_, hidden}) * init_std);
}

models::PolicyOutput AoePolicyImpl::route(const torch::Tensor& x_NH) {
  const int64_t N = x_NH.size(0);
  // All experts' projections in one matmul, as Routing-Free does: [N, H] x [H, E*r].
  const auto z_NEr =
      torch::linear(x_NH, A_ErH.reshape({experts_ * rank_, -1})).view({N, experts_, rank_});
  // Norms and softmax in fp32 at least (double stays double for finite-difference checks).
  const auto dt = at::promote_types(x_NH.scalar_type(), torch::kFloat);
  const auto norm_NE = z_NEr.to(dt).norm(2, -1);
  auto [top_s, top_i] = norm_NE.topk(k_, -1);
  // Softmax over the K winners only, so the losers do not dilute the weights (the same as
  // renormalising a softmax over all E to the winners, but without the extra pass).
  const auto weights_NK = torch::softmax(top_s, -1);
  models::PolicyOutput out;
  out.routing = kernels::routing_from_topk(top_i, weights_NK, experts_);
  out.gate_in = z_NEr.reshape({N * experts_, rank_});
  out.gate_in_per_pair = true;
  out.scores_NE = torch::softmax(norm_NE, -1);
  out.active_NE = torch::zeros_like(norm_NE, torch::kBool).scatter_(1, top_i, true);
  return out;
}

}  // namespace moebench::baselines

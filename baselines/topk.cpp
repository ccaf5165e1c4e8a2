// Top-k softmax routing with renormalised weights and the HF pooled auxiliary loss (§2).
// Router statistics in fp32 (or wider); experts are full-rank SwiGLU fed by x.
#include "baselines/topk.h"

namespace moebench::baselines {

TopKPolicyImpl::TopKPolicyImpl(int64_t hidden, const models::MoeOptions& opts, double init_std)
    : hidden_(hidden), experts_(opts.experts), k_(opts.effective_top_k()) {
  router_EH = register_parameter("router", torch::randn({experts_, hidden}) * init_std);
}

models::PolicyOutput TopKPolicyImpl::route(const torch::Tensor& x_NH) {
  const auto dt = at::promote_types(x_NH.scalar_type(), torch::kFloat);
  const auto probs = torch::softmax(torch::linear(x_NH.to(dt), router_EH.to(dt)), -1);
  auto [top_p, top_i] = probs.topk(k_, -1);
  const auto weights = top_p / top_p.sum(-1, /*keepdim=*/true);
  models::PolicyOutput out;
  out.routing = kernels::routing_from_topk(top_i, weights, experts_);
  out.gate_in = x_NH;
  out.scores_NE = probs;
  out.active_NE = torch::zeros_like(probs, torch::kBool).scatter_(1, top_i, true);
  return out;
}

torch::Tensor PooledBalanceLoss::loss(const std::vector<models::PolicyOutput>& layers,
                                      const torch::Tensor& token_mask_N, bool /*training*/) {
  std::vector<torch::Tensor> probs, onehot;
  for (const auto& l : layers) {
    probs.push_back(l.scores_NE);
    onehot.push_back(l.active_NE.to(l.scores_NE.scalar_type()));
  }
  auto P = torch::cat(probs, 0), F = torch::cat(onehot, 0);  // [L*N, E]
  if (opts_.mask_padding && token_mask_N.defined()) {
    const auto keep = token_mask_N.reshape({-1}).to(torch::kBool).repeat({int64_t(layers.size())});
    const auto idx = keep.nonzero().squeeze(1);
    P = P.index_select(0, idx);
    F = F.index_select(0, idx);
  }
  if (P.size(0) == 0) return torch::zeros({}, torch::kFloat);
  const auto bal = static_cast<double>(P.size(1)) * (F.mean(0) * P.mean(0)).sum();
  metrics_ = {{"balance_loss", bal.item<double>()}, {"density", F.mean().item<double>()}};
  return opts_.aux_coef * bal;
}

}  // namespace moebench::baselines

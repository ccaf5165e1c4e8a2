// Top-k softmax routing with renormalised weights and the HF pooled auxiliary loss (§2), whose
// per-layer scope AoE uses.
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
  return out;
}

torch::Tensor SoftmaxBalanceLoss::loss(const std::vector<models::PolicyOutput>& layers,
                                       const torch::Tensor& token_mask_N, bool /*training*/) {
  torch::Tensor keep;
  if (mask_padding_ && token_mask_N.defined()) {
    keep = token_mask_N.reshape({-1}).to(torch::kBool).nonzero().squeeze(1);
  }
  // One group of rows per scope unit: every layer's rows together (pooled) or each layer's own.
  std::vector<std::pair<torch::Tensor, torch::Tensor>> groups;  // (P, F) [rows, E]
  for (const auto& l : layers) {
    auto P = l.scores_NE, F = l.active_NE.to(l.scores_NE.scalar_type());
    if (keep.defined()) {
      P = P.index_select(0, keep);
      F = F.index_select(0, keep);
    }
    if (scope_ == Scope::kPooled && !groups.empty()) {
      groups[0] = {torch::cat({groups[0].first, P}), torch::cat({groups[0].second, F})};
    } else {
      groups.emplace_back(P, F);
    }
  }
  torch::Tensor total;
  double density = 0;
  int64_t counted = 0;
  for (const auto& [P, F] : groups) {
    if (P.size(0) == 0) continue;
    const auto bal = static_cast<double>(P.size(1)) * (F.mean(0) * P.mean(0)).sum();
    total = total.defined() ? total + bal : bal;
    density += F.mean().item<double>();
    ++counted;
  }
  if (!total.defined()) return torch::zeros({}, torch::kFloat);
  metrics_ = {{"balance_loss", total.item<double>() / static_cast<double>(counted)},
              {"density", density / static_cast<double>(counted)}};
  return coef_ * total;
}

const models::MethodSpec& topk_method() {
  static const models::MethodSpec spec = [] {
    models::MethodSpec m;
    m.name = "topk";
    m.title = "top-k";
    m.summary =
        "Top-k MoE (METHODS.md §2, Mixtral style): p = softmax(router x), the top-K\n"
        "experts (K = moe.top_k, default E/4) with weights p renormalised over them,\n"
        "y = sum over chosen e of w_e * D_e (SiLU(G_e x) * U_e x); scores = p";
    m.options = models::option_schema<TopKOptions>();
    m.make_policy = [](int64_t hidden, const models::MoeOptions& o, double init_std) {
      return std::make_shared<TopKPolicyImpl>(hidden, o, init_std);
    };
    m.make_controller = [](const models::MoeOptions& o, int64_t /*layers*/) {
      return std::make_unique<SoftmaxBalanceLoss>(o, o.method_options<TopKOptions>().aux_coef,
                                                  SoftmaxBalanceLoss::Scope::kPooled);
    };
    m.macs = [](const models::MoeOptions& o, int64_t hidden, double /*density*/) {
      return models::FfnMacs{
          static_cast<double>(o.experts * hidden),
          static_cast<double>(o.effective_top_k()) * models::full_expert_macs(o, hidden)};
    };
    m.layer_weights = models::expert_layer_weights(
        {models::policy_weight("router", {"E", "H"}, "router W_r (no bias)")}, /*low_rank=*/false);
    return m;
  }();
  return spec;
}

}  // namespace moebench::baselines

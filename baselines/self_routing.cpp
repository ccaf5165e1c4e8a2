// Self-Routing gate (arXiv 2604.00421; METHODS.md §6, our reading of the abstract): a fixed
// subspace of the input is the logit vector; softmax, top-k, renormalise; no parameters.
#include "baselines/self_routing.h"

#include <stdexcept>

namespace moebench::baselines {

std::vector<int64_t> self_routing_coordinates(int64_t hidden, int64_t experts,
                                              const std::string& subspace) {
  if (experts < 1 || experts > hidden) {
    throw std::invalid_argument("self_routing: needs 1 <= experts (" + std::to_string(experts) +
                                ") <= hidden (" + std::to_string(hidden) + ")");
  }
  std::vector<int64_t> s(experts);
  for (int64_t j = 0; j < experts; ++j) {
    if (subspace == "last") {
      s[j] = hidden - experts + j;
    } else if (subspace == "first") {
      s[j] = j;
    } else if (subspace == "strided") {
      s[j] = j * hidden / experts;  // floor; distinct because hidden >= experts
    } else {
      throw std::invalid_argument(
          "moe.self_routing_subspace must be last, first or strided, not '" + subspace + "'");
    }
  }
  return s;
}

SelfRoutingPolicyImpl::SelfRoutingPolicyImpl(int64_t hidden, const models::MoeOptions& opts)
    : hidden_(hidden),
      experts_(opts.experts),
      k_(opts.effective_top_k()),
      coords_(self_routing_coordinates(
          hidden, opts.experts, opts.method_options<SelfRoutingOptions>().self_routing_subspace)) {
  if (k_ > experts_) {
    throw std::invalid_argument("self_routing: top_k (" + std::to_string(k_) +
                                ") exceeds experts (" + std::to_string(experts_) + ")");
  }
  index_E_ = torch::tensor(coords_, torch::kLong);
}

models::PolicyOutput SelfRoutingPolicyImpl::route(const torch::Tensor& x_NH) {
  if (x_NH.size(1) != hidden_) throw std::invalid_argument("self_routing: input width mismatch");
  if (index_E_.device() != x_NH.device()) index_E_ = index_E_.to(x_NH.device());
  // Logits in fp32 at least; index_select keeps the gradient path from the weights into x.
  const auto dt = at::promote_types(x_NH.scalar_type(), torch::kFloat);
  const auto probs = torch::softmax(x_NH.index_select(1, index_E_).to(dt), -1);
  auto [top_p, top_i] = probs.topk(k_, -1);
  const auto weights = top_p / top_p.sum(-1, /*keepdim=*/true);
  models::PolicyOutput out;
  out.routing = kernels::routing_from_topk(top_i, weights, experts_);
  out.gate_in = x_NH;
  out.scores_NE = probs;
  return out;
}

const models::MethodSpec& self_routing_method() {
  static const models::MethodSpec spec = [] {
    models::MethodSpec m;
    m.name = "self_routing";
    m.title = "Self-Routing";
    m.summary =
        "Self-Routing (METHODS.md §6, our reading of the abstract): logits = E fixed\n"
        "channels of x (moe.self_routing_subspace, default the last E), softmax, top-K\n"
        "renormalised to sum 1, y = sum over chosen e of w_e * D_e (SiLU(G_e x) * U_e x);\n"
        "no router weights; scores = softmax over all E logits";
    m.caveat = "our reading of the abstract (paper text not obtained; METHODS.md §6)";
    m.options = models::option_schema<SelfRoutingOptions>();
    m.make_policy = [](int64_t hidden, const models::MoeOptions& o, double /*init_std*/) {
      return std::make_shared<SelfRoutingPolicyImpl>(hidden, o);
    };
    // The logits are free (a slice of x): only the k experts cost.
    m.macs = [](const models::MoeOptions& o, int64_t hidden, double /*density*/) {
      return models::FfnMacs{
          0, static_cast<double>(o.effective_top_k()) * models::full_expert_macs(o, hidden)};
    };
    m.layer_weights = models::expert_layer_weights({}, /*low_rank=*/false);
    return m;
  }();
  return spec;
}

}  // namespace moebench::baselines

// MoE layer: policy -> Routing -> shared expert kernels; the dense SwiGLU FFN. Methods are found
// in the registry (baselines/registry.h); this file knows none of them.
#include "models/moe.h"

#include <stdexcept>

namespace moebench::models {

PolicyOutput decide(RoutingPolicyImpl& policy, const torch::Tensor& x_NH,
                    const torch::Tensor& valid_N) {
  PolicyOutput p;
  if (valid_N.defined()) {
    if (valid_N.numel() != x_NH.size(0)) {
      throw std::invalid_argument("MoE layer: token mask has " + std::to_string(valid_N.numel()) +
                                  " entries for " + std::to_string(x_NH.size(0)) +
                                  " tokens; pass one per row of x (batch-major B*T)");
    }
    p = policy.route_masked(x_NH, valid_N.reshape({-1}).to(torch::kBool));
  } else {
    p = policy.route(x_NH);
  }
  p.active_NE = kernels::active_mask(p.routing);
  return p;
}

MoeLayerImpl::MoeLayerImpl(int64_t hidden, const MoeOptions& opts,
                           std::shared_ptr<RoutingPolicyImpl> p, double init_std)
    : policy(std::move(p)), backend_request(opts.backend) {
  kernels::check_backend_request(backend_request);  // a bad name fails at construction
  register_module("policy", policy);
  const int64_t E = opts.experts, I = opts.intermediate, K = policy->gate_input_width();
  weights.gate_EIK = register_parameter("w_gate", torch::randn({E, I, K}) * init_std);
  weights.up_EIH = register_parameter("w_up", torch::randn({E, I, hidden}) * init_std);
  weights.down_EHI = register_parameter("w_down", torch::randn({E, hidden, I}) * init_std);
}

torch::Tensor MoeLayerImpl::forward(const torch::Tensor& x_NH, std::vector<PolicyOutput>* out,
                                    const torch::Tensor& valid_N) {
  PolicyOutput p = decide(*policy, x_NH, valid_N);
  const auto backend = kernels::resolve_backend(backend_request, x_NH.device(), x_NH.scalar_type());
  // Written only when it changes, so that concurrent evaluation forwards (the zero-shot scorer
  // runs batches on several threads after a first one) only read it.
  if (auto name = kernels::backend_name(backend); name != last_backend_) last_backend_ = name;
  auto y = kernels::expert_swiglu(x_NH, p.gate_in, p.gate_in_per_pair, weights, p.routing, backend);
  if (out) out->push_back(std::move(p));
  return y;
}

SwiGluImpl::SwiGluImpl(int64_t hidden, int64_t intermediate, double init_std) {
  gate_IH = register_parameter("w_gate", torch::randn({intermediate, hidden}) * init_std);
  up_IH = register_parameter("w_up", torch::randn({intermediate, hidden}) * init_std);
  down_HI = register_parameter("w_down", torch::randn({hidden, intermediate}) * init_std);
}

torch::Tensor SwiGluImpl::forward(const torch::Tensor& x_NH) {
  return torch::linear(torch::silu(torch::linear(x_NH, gate_IH)) * torch::linear(x_NH, up_IH),
                       down_HI);
}

}  // namespace moebench::models

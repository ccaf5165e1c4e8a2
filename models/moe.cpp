// MoE layer: policy -> Routing -> shared expert kernels; dense SwiGLU; the method factory.
// Baselines register here as they are added (baselines/ holds their policies).
#include "models/moe.h"

#include <stdexcept>

#include "baselines/aoe.h"
#include "baselines/remoe.h"
#include "baselines/self_routing.h"
#include "baselines/switch.h"
#include "baselines/topk.h"
#include "models/routing_free.h"

namespace moebench::models {

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
  PolicyOutput p;
  if (valid_N.defined()) {
    if (valid_N.numel() != x_NH.size(0)) {
      throw std::invalid_argument("MoE layer: token mask has " + std::to_string(valid_N.numel()) +
                                  " entries for " + std::to_string(x_NH.size(0)) +
                                  " tokens; pass one per row of x (batch-major B*T)");
    }
    p = policy->route_masked(x_NH, valid_N.reshape({-1}).to(torch::kBool));
  } else {
    p = policy->route(x_NH);
  }
  const auto backend = kernels::resolve_backend(backend_request, x_NH.device(), x_NH.scalar_type());
  last_backend_ = kernels::backend_name(backend);
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

std::shared_ptr<RoutingPolicyImpl> make_policy(int64_t hidden, const MoeOptions& opts,
                                               double init_std) {
  if (opts.method == "routing_free") {
    return std::make_shared<RoutingFreePolicyImpl>(hidden, opts, init_std);
  }
  if (opts.method == "topk") {
    return std::make_shared<baselines::TopKPolicyImpl>(hidden, opts, init_std);
  }
  if (opts.method == "switch") {
    return std::make_shared<baselines::SwitchPolicyImpl>(hidden, opts, init_std);
  }
  if (opts.method == "remoe") {
    return std::make_shared<baselines::ReMoEPolicyImpl>(hidden, opts, init_std);
  }
  if (opts.method == "aoe") {
    return std::make_shared<baselines::AoePolicyImpl>(hidden, opts, init_std);
  }
  if (opts.method == "self_routing") {
    return std::make_shared<baselines::SelfRoutingPolicyImpl>(hidden, opts);
  }
  throw std::invalid_argument("moe.method '" + opts.method +
                              "' has no routing policy in this build (available: routing_free, "
                              "topk, switch, remoe, aoe, self_routing, dense)");
}

std::unique_ptr<AuxController> make_controller(const MoeOptions& opts, int64_t layers) {
  if (opts.method == "routing_free") return std::make_unique<UnifiedBalance>(opts, layers);
  if (opts.method == "topk") return std::make_unique<baselines::PooledBalanceLoss>(opts);
  if (opts.method == "switch") return std::make_unique<baselines::LayerAuxSum>(opts);
  if (opts.method == "remoe") return std::make_unique<baselines::ReMoEBalance>(opts);
  // AoE's paper variant: the HF pooled loss over every layer's tokens, P = softmax of all E
  // norms (AoePolicyImpl's scores_NE). The RF-paper variant and Self-Routing have no aux loss.
  if (opts.method == "aoe" && opts.aoe_variant == "aoe_paper") {
    return std::make_unique<baselines::PooledBalanceLoss>(opts);
  }
  if (opts.method == "aoe" && opts.aoe_variant != "rf_paper") {
    throw std::invalid_argument("moe.aoe_variant must be rf_paper or aoe_paper, not '" +
                                opts.aoe_variant + "'");
  }
  return nullptr;
}

}  // namespace moebench::models

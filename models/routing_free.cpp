// Routing-Free MoE gate and unified adaptive balancing (arXiv 2604.00801, METHODS.md §1).
// Gate statistics are fp32 whatever the model dtype; the activity mask never carries gradient.
#include "models/routing_free.h"

#include <cmath>
#include <stdexcept>

#include "models/lambda_rule.h"

namespace moebench::models {

RoutingFreePolicyImpl::RoutingFreePolicyImpl(int64_t hidden, const MoeOptions& opts,
                                             double init_std)
    : experts_(opts.experts), rank_(opts.effective_rank()) {
  const auto o = opts.method_options<RoutingFreeOptions>();
  theta_ = o.theta;
  norm_ = o.norm;
  if (norm_ != "l2" && norm_ != "l1" && norm_ != "linf") {
    throw std::invalid_argument("moe.norm must be l2, l1 or linf, not '" + norm_ + "'");
  }
  A_ErH = register_parameter("A", torch::randn({experts_, rank_, hidden}) * init_std);
  gamma_E = register_parameter("gamma", torch::full({experts_}, o.gamma_init));
  bias_E = register_parameter("bias", torch::full({experts_}, o.bias_init));
}

PolicyOutput RoutingFreePolicyImpl::route(const torch::Tensor& x_NH) {
  const int64_t N = x_NH.size(0);
  // All experts' projections in one matmul: [N, H] x [H, E*r].
  const auto z_NEr =
      torch::linear(x_NH, A_ErH.reshape({experts_ * rank_, -1})).view({N, experts_, rank_});
  // fp32 at least (double stays double, so finite-difference checks can run in double).
  const auto gate_dtype = at::promote_types(x_NH.scalar_type(), torch::kFloat);
  const auto z32 = z_NEr.to(gate_dtype);
  torch::Tensor norm_NE;
  if (norm_ == "l2") {
    norm_NE = z32.norm(2, -1);
  } else if (norm_ == "l1") {
    norm_NE = z32.abs().sum(-1);
  } else {
    norm_NE = std::get<0>(z32.abs().max(-1));
  }
  PolicyOutput out;
  out.scores_NE = gamma_E.to(gate_dtype) * norm_NE - bias_E.to(gate_dtype);
  // The weight is the raw score s (not s − θ); no normalisation across experts.
  out.routing = kernels::routing_from_mask(out.scores_NE.detach() >= theta_, out.scores_NE);
  out.gate_in = z_NEr.reshape({N * experts_, rank_});
  out.gate_in_per_pair = true;
  return out;
}

std::pair<torch::Tensor, torch::Tensor> unified_balance_terms(const torch::Tensor& P_NC,
                                                              const torch::Tensor& M_NC) {
  const auto l_eb = (M_NC.mean(0) * P_NC.mean(0)).mean();  // f_c · p_c over columns
  const auto l_tb = (M_NC.mean(1) * P_NC.mean(1)).mean();  // g_n · q_n over tokens
  return {l_eb, l_tb};
}

UnifiedBalance::UnifiedBalance(const MoeOptions& opts, int64_t /*layers*/)
    : mask_padding_(opts.mask_padding),
      opts_(opts.method_options<RoutingFreeOptions>()),
      lambda_(static_cast<float>(opts_.lambda0)),
      cadence_(static_cast<int>(opts_.lambda_updates)) {}

torch::Tensor UnifiedBalance::loss(const std::vector<PolicyOutput>& layers,
                                   const torch::Tensor& token_mask_N, bool training) {
  std::vector<torch::Tensor> P, M;
  for (const auto& l : layers) {
    const auto active = l.active_NE.to(torch::kFloat);
    P.push_back(torch::relu(l.scores_NE) * active);
    M.push_back(active);
  }
  auto P_NC = torch::cat(P, 1), M_NC = torch::cat(M, 1);
  if (mask_padding_ && token_mask_N.defined()) {
    const auto keep = token_mask_N.reshape({-1}).to(torch::kBool).nonzero().squeeze(1);
    P_NC = P_NC.index_select(0, keep);
    M_NC = M_NC.index_select(0, keep);
  }
  if (P_NC.size(0) == 0) return torch::zeros({}, torch::kFloat);
  auto [l_eb, l_tb] = unified_balance_terms(P_NC, M_NC);
  auto l_reg = opts_.eb_weight * l_eb + opts_.tb_weight * l_tb;
  const double rho = M_NC.mean().item<double>();
  const float lambda_used = lambda_;  // the loss uses λ from before this forward's update
  double rho_mean = 0;
  const int updates = training ? cadence_.observe(rho, &rho_mean) : 0;
  for (int u = 0; u < updates; ++u) {
    lambda_ = multiplicative_lambda_step(lambda_, rho_mean, opts_.rho_target, opts_.eta,
                                         opts_.lambda_bf16);
  }
  metrics_ = {{"density", rho},
              {"density_ratio", rho / opts_.rho_target},
              {"mean_p", P_NC.mean().item<double>()},
              {"l_eb", l_eb.item<double>()},
              {"l_tb", l_tb.item<double>()},
              {"l_reg", l_reg.item<double>()},
              {"lambda", lambda_used}};
  return lambda_used * l_reg;
}

std::map<std::string, double> UnifiedBalance::state() const {
  std::map<std::string, double> s{{"lambda", lambda_}};
  cadence_.save(s);
  return s;
}

void UnifiedBalance::load_state(const std::map<std::string, double>& s) {
  if (auto it = s.find("lambda"); it != s.end()) lambda_ = static_cast<float>(it->second);
  cadence_.load(s);
}

const MethodSpec& routing_free_method() {
  static const MethodSpec spec = [] {
    MethodSpec m;
    m.name = "routing_free";
    m.title = "Routing-Free";
    m.summary =
        "Routing-Free MoE (METHODS.md §1): z_e = A_e x, s_e = gamma_e*||z_e|| - bias_e, the\n"
        "pair (token, e) is active iff s_e >= theta, y = sum over active e of\n"
        "s_e * D_e (SiLU(B_e z_e) * U_e x)";
    m.options = option_schema<RoutingFreeOptions>();
    m.make_policy = [](int64_t hidden, const MoeOptions& o, double init_std) {
      return std::make_shared<RoutingFreePolicyImpl>(hidden, o, init_std);
    };
    m.make_controller = [](const MoeOptions& o, int64_t layers) {
      return std::make_unique<UnifiedBalance>(o, layers);
    };
    // All E low-rank projections A_e x (they give the scores and feed the gate branch), then
    // density·E experts with the low-rank gate.
    m.macs = [](const MoeOptions& o, int64_t hidden, double density) {
      const double E = static_cast<double>(o.experts);
      return FfnMacs{E * static_cast<double>(o.effective_rank() * hidden),
                     density * E * low_rank_expert_macs(o, hidden)};
    };
    // The official layer also allocates a full-rank gate per expert that it never uses.
    m.unused_official_params = [](const MoeOptions& o, int64_t hidden) {
      return o.experts * o.intermediate * hidden;
    };
    m.layer_weights = expert_layer_weights(
        {policy_weight("A", {"E", "r", "H"}, "low-rank projection (score and gate input)"),
         policy_weight("gamma", {"E"}, "score scale"),
         policy_weight("bias", {"E"}, "score offset (subtracted)")},
        /*low_rank=*/true);
    m.threshold_option = "theta";
    m.variable_density = true;
    // The official code keeps PyTorch's default init in its own decoder layers.
    m.published_init = models::LayerInit::kTorchDefault;
    return m;
  }();
  return spec;
}

}  // namespace moebench::models

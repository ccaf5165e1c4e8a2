// ReMoE ReLU routing and its adaptive L1 regularisation, original and RF-paper (METHODS.md §4).
// Router statistics in fp32 (or wider); experts are full-rank SwiGLU fed by x.
#include "baselines/remoe.h"

#include <stdexcept>

#include "models/lambda_rule.h"

namespace moebench::baselines {

ReMoEPolicyImpl::ReMoEPolicyImpl(int64_t hidden, const models::MoeOptions& opts, double init_std)
    : hidden_(hidden), experts_(opts.experts) {
  router_EH = register_parameter("router", torch::randn({experts_, hidden}) * init_std);
}

models::PolicyOutput ReMoEPolicyImpl::route(const torch::Tensor& x_NH) {
  const auto dt = at::promote_types(x_NH.scalar_type(), torch::kFloat);
  models::PolicyOutput out;
  out.scores_NE = torch::relu(torch::linear(x_NH.to(dt), router_EH.to(dt)));
  // Only R_e > 0 pairs are computed: R_e = 0 pairs would add 0 and get no gradient anyway.
  out.routing = kernels::routing_from_mask(out.scores_NE.detach() > 0, out.scores_NE);
  out.gate_in = x_NH;
  return out;
}

torch::Tensor remoe_load_weighted_l1(const torch::Tensor& R_NE, const torch::Tensor& active_NE,
                                     int64_t k) {
  const double N = static_cast<double>(R_NE.size(0)), E = static_cast<double>(R_NE.size(1));
  const auto f_E = active_NE.to(R_NE.scalar_type()).sum(0) * (E / (static_cast<double>(k) * N));
  return (f_E.detach() * R_NE).sum() / N;
}

ReMoEBalance::ReMoEBalance(const models::MoeOptions& opts)
    : mask_padding_(opts.mask_padding),
      experts_(opts.experts),
      opts_(opts.method_options<ReMoEOptions>()),
      rf_paper_(opts_.remoe_variant == "rf_paper"),
      k_(opts.effective_top_k()),
      cadence_(static_cast<int>(opts_.lambda_updates)) {
  if (!rf_paper_ && opts_.remoe_variant != "original") {
    throw std::invalid_argument("moe.remoe_variant must be original or rf_paper, not '" +
                                opts_.remoe_variant + "'");
  }
  lambda_ = static_cast<float>(rf_paper_ ? opts_.remoe_rf_lambda0 : opts_.remoe_lambda0);
}

float ReMoEBalance::next_lambda(float lambda, double sparsity, double target, double alpha) {
  const float a = static_cast<float>(alpha);
  return sparsity < target ? lambda * a : lambda / a;
}

torch::Tensor ReMoEBalance::loss(const std::vector<models::PolicyOutput>& layers,
                                 const torch::Tensor& token_mask_N, bool training) {
  torch::Tensor keep;
  if (mask_padding_ && token_mask_N.defined()) {
    keep = token_mask_N.reshape({-1}).to(torch::kBool).nonzero().squeeze(1);
  }
  torch::Tensor l_reg;
  std::vector<double> sparsity;
  for (const auto& l : layers) {
    auto R = l.scores_NE, active = l.active_NE;
    if (keep.defined()) {
      R = R.index_select(0, keep);
      active = active.index_select(0, keep);
    }
    if (R.size(0) == 0) continue;
    const auto term = rf_paper_ ? R.sum() : remoe_load_weighted_l1(R, active, k_);
    l_reg = l_reg.defined() ? l_reg + term : term;
    sparsity.push_back(1.0 - active.to(torch::kDouble).mean().item<double>());
  }
  if (!l_reg.defined()) return torch::zeros({}, torch::kFloat);
  double s_mean = 0;
  for (double s : sparsity) s_mean += s;
  s_mean /= static_cast<double>(sparsity.size());

  const float lambda_used = lambda_;  // the loss uses λ from before this forward's update
  if (training) {
    if (rf_paper_) {
      double rho_mean = 0;
      const int updates = cadence_.observe(1.0 - s_mean, &rho_mean);
      for (int u = 0; u < updates; ++u) {
        lambda_ = models::multiplicative_lambda_step(lambda_, rho_mean, opts_.rho_target,
                                                     opts_.remoe_rf_eta, /*bf16_quirk=*/false);
      }
    } else {
      for (double s : sparsity) sparsity_sum_ += s;
      sparsity_count_ += static_cast<double>(sparsity.size());
    }
  }
  metrics_ = {{"lambda", lambda_used},
              {"density", 1.0 - s_mean},
              {"sparsity", s_mean},
              {"l_reg", l_reg.item<double>()}};
  return lambda_used * l_reg;
}

void ReMoEBalance::after_optimizer_step() {
  // The original schedule moves λ once per optimizer step, on the sparsity of all the
  // micro-batches that step saw; no training forward since the last step means no evidence.
  cadence_.end_step();
  if (rf_paper_) return;
  if (rank_sum_) {
    std::vector<double> step{sparsity_sum_, sparsity_count_};
    rank_sum_(step);
    sparsity_sum_ = step[0];
    sparsity_count_ = step[1];
  }
  if (sparsity_count_ == 0) return;
  const double target = 1.0 - static_cast<double>(k_) / static_cast<double>(experts_);
  lambda_ = next_lambda(lambda_, sparsity_sum_ / sparsity_count_, target, opts_.remoe_alpha);
  sparsity_sum_ = 0;
  sparsity_count_ = 0;
}

std::map<std::string, double> ReMoEBalance::state() const {
  std::map<std::string, double> s{
      {"lambda", lambda_}, {"sparsity_sum", sparsity_sum_}, {"sparsity_count", sparsity_count_}};
  cadence_.save(s);
  return s;
}

void ReMoEBalance::load_state(const std::map<std::string, double>& s) {
  if (auto it = s.find("lambda"); it != s.end()) lambda_ = static_cast<float>(it->second);
  if (auto it = s.find("sparsity_sum"); it != s.end()) sparsity_sum_ = it->second;
  if (auto it = s.find("sparsity_count"); it != s.end()) sparsity_count_ = it->second;
  cadence_.load(s);
}

const models::MethodSpec& remoe_method() {
  static const models::MethodSpec spec = [] {
    models::MethodSpec m;
    m.name = "remoe";
    m.title = "ReMoE";
    m.summary =
        "ReMoE (METHODS.md §4): R = ReLU(router x), y = sum over e with R_e > 0 of\n"
        "R_e * D_e (SiLU(G_e x) * U_e x) (a token may have no expert: y = 0); scores = R";
    m.options = models::option_schema<ReMoEOptions>();
    m.make_policy = [](int64_t hidden, const models::MoeOptions& o, double init_std) {
      return std::make_shared<ReMoEPolicyImpl>(hidden, o, init_std);
    };
    m.make_controller = [](const models::MoeOptions& o, int64_t /*layers*/) {
      return std::make_unique<ReMoEBalance>(o);
    };
    m.macs = [](const models::MoeOptions& o, int64_t hidden, double density) {
      return models::FfnMacs{
          static_cast<double>(o.experts * hidden),
          density * static_cast<double>(o.experts) * models::full_expert_macs(o, hidden)};
    };
    m.layer_weights = models::expert_layer_weights(
        {models::policy_weight("router", {"E", "H"}, "router W_r (no bias)")}, /*low_rank=*/false);
    m.variable_density = true;
    // The official code keeps PyTorch's default init in its own decoder layers.
    m.published_init = models::LayerInit::kTorchDefault;
    return m;
  }();
  return spec;
}

}  // namespace moebench::baselines

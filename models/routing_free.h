// Routing-Free MoE (arXiv 2604.00801; shared/spec/METHODS.md §1): each expert gates itself by
// s_e = γ_e‖A_e x‖ − b_e ≥ θ, plus the unified expert/token balancing loss with adaptive λ.
#pragma once

#include "models/moe.h"

namespace moebench::models {

class RoutingFreePolicyImpl : public RoutingPolicyImpl {
 public:
  RoutingFreePolicyImpl(int64_t hidden, const MoeOptions& opts, double init_std);
  PolicyOutput route(const torch::Tensor& x_NH) override;
  int64_t gate_input_width() const override { return rank_; }
  void set_theta(double theta) override { theta_ = theta; }
  double theta() const { return theta_; }

  torch::Tensor A_ErH;    // low-rank projections, shared by the score and the SwiGLU gate
  torch::Tensor gamma_E;  // per-expert scale (init 1)
  torch::Tensor bias_E;   // per-expert offset (init -1e-6); s = γ‖z‖ − b

 private:
  int64_t experts_, rank_;
  double theta_;
  std::string norm_;
};
TORCH_MODULE(RoutingFreePolicy);

// The unified balancing loss over all layers' scores with the multiplicative λ controller.
class UnifiedBalance : public AuxController {
 public:
  UnifiedBalance(const MoeOptions& opts, int64_t layers);
  torch::Tensor loss(const std::vector<PolicyOutput>& layers, const torch::Tensor& token_mask_N,
                     bool training) override;
  std::map<std::string, double> metrics() const override { return metrics_; }
  std::map<std::string, double> state() const override { return {{"lambda", lambda_}}; }
  void load_state(const std::map<std::string, double>& s) override;
  float lambda() const { return lambda_; }

  // λ ← min(1, λ·(1+η)^sign(ρ − ρ*)), in fp32 (exposed for tests).
  static float next_lambda(float lambda, double rho, double rho_target, double eta,
                           bool bf16_quirk);

 private:
  MoeOptions opts_;
  float lambda_;
  std::map<std::string, double> metrics_;
};

// L_EB and L_TB of METHODS.md §1 for P = ReLU(S) [N, C] and M = 1[active] [N, C] (fp32).
std::pair<torch::Tensor, torch::Tensor> unified_balance_terms(const torch::Tensor& P_NC,
                                                              const torch::Tensor& M_NC);

}  // namespace moebench::models

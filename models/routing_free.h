// Routing-Free MoE (arXiv 2604.00801; shared/spec/METHODS.md §1): each expert gates itself by
// s_e = γ_e‖A_e x‖ − b_e ≥ θ, plus the unified expert/token balancing loss with adaptive λ.
#pragma once

#include "models/lambda_rule.h"
#include "models/method.h"
#include "models/moe.h"

namespace moebench::models {

// The `moe` keys of Routing-Free (defaults: the paper's; METHODS.md §1).
struct RoutingFreeOptions {
  double theta = 1.0;
  std::string norm = "l2";
  double gamma_init = 1.0;
  double bias_init = -1e-6;
  double rho_target = 0.25;
  double eta = 0.02;
  double lambda0 = 1e-10;
  // L_reg = eb_weight*L_EB + tb_weight*L_TB: the official code's two independent weights; the
  // paper's mu*L_EB + (1-mu)*L_TB is eb_weight = mu, tb_weight = 1 - mu. A weight of 0 skips it.
  double eb_weight = 0.5;
  double tb_weight = 0.5;
  bool lambda_bf16 = false;  // true = the official code's bf16 λ (loses precision)
  int64_t lambda_updates = kPublishedLambdaUpdates;  // λ updates per optimizer step (LambdaCadence)

  template <class F>
  void fields(F&& f) {
    f("theta", theta, at_least(0), "activity threshold: expert e is on iff s_e >= theta");
    f("norm", norm, one_of({"l2", "l1", "linf"}), "norm of the low-rank projection");
    f("gamma_init", gamma_init, any_value(), "initial per-expert score scale");
    f("bias_init", bias_init, any_value(), "initial per-expert score offset");
    f("rho_target", rho_target, lower_open(0, 1), "target density rho* (active fraction)");
    f("eta", eta, at_least(0), "lambda controller step: lambda *= (1+eta)^sign(rho - rho*)");
    // The controller caps λ at 1, so a start above 1 would be clipped at once.
    f("lambda0", lambda0, closed(0, 1), "initial balancing coefficient lambda");
    f("eb_weight", eb_weight, at_least(0), "weight of the expert-balance term L_EB");
    f("tb_weight", tb_weight, at_least(0), "weight of the token-balance term L_TB");
    f("lambda_bf16", lambda_bf16, any_value(), "round lambda to bf16 as the official code");
    f("lambda_updates", lambda_updates, at_least(0), kLambdaUpdatesHelp);
  }
};

// Routing-Free's registry entry.
const MethodSpec& routing_free_method();

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

// The unified balancing loss over all layers' scores with the multiplicative λ controller,
// updated moe.lambda_updates times per optimizer step on the mean ρ of the micro-batches between
// updates (LambdaCadence); the loss of a forward uses λ from before any update it triggers.
class UnifiedBalance : public AuxController {
 public:
  UnifiedBalance(const MoeOptions& opts, int64_t layers);
  torch::Tensor loss(const std::vector<PolicyOutput>& layers, const torch::Tensor& token_mask_N,
                     bool training) override;
  std::map<std::string, double> metrics() const override { return metrics_; }
  void after_optimizer_step() override { cadence_.end_step(); }
  void set_micro_batches(int per_step) override { cadence_.set_micro_batches(per_step); }
  void set_rank_sum(RankSum sum) override { cadence_.set_rank_sum(std::move(sum)); }
  std::map<std::string, double> state() const override;
  void load_state(const std::map<std::string, double>& s) override;
  float lambda() const { return lambda_; }

 private:
  bool mask_padding_;
  RoutingFreeOptions opts_;
  float lambda_;
  LambdaCadence cadence_;
  std::map<std::string, double> metrics_;
};

// L_EB and L_TB of METHODS.md §1 for P = ReLU(S) [N, C] and M = 1[active] [N, C] (fp32).
std::pair<torch::Tensor, torch::Tensor> unified_balance_terms(const torch::Tensor& P_NC,
                                                              const torch::Tensor& M_NC);

}  // namespace moebench::models

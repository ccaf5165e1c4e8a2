// ReMoE baseline (ReLU routing; arXiv 2412.14711; shared/spec/METHODS.md §4): R = ReLU(W_r x)
// gates every expert with R_e > 0, and an L1-type regulariser with an adaptive λ sets sparsity.
#pragma once

#include "models/lambda_rule.h"
#include "models/method.h"
#include "models/moe.h"

namespace moebench::baselines {

// The `moe` keys of ReMoE (METHODS.md §4). k (the shared moe.top_k) sets the original variant's
// target sparsity 1 - k/E.
struct ReMoEOptions {
  std::string remoe_variant = "original";  // original | rf_paper
  double remoe_alpha = 1.2;
  double remoe_lambda0 = 1e-8;
  // The rf_paper variant (plain L1, per-micro-batch controller): its own λ₀ and η, and ρ*.
  double remoe_rf_lambda0 = 0.01;
  double remoe_rf_eta = 0.1;
  double rho_target = 0.25;
  int64_t lambda_updates = models::kPublishedLambdaUpdates;  // rf_paper: updates per step
  template <class F>
  void fields(F&& f) {
    using namespace models;
    f("remoe_variant", remoe_variant, one_of({"original", "rf_paper"}),
      "original (ReMoE paper) or rf_paper (the Routing-Free paper's re-implementation)");
    f("remoe_alpha", remoe_alpha, at_least(1), "original: lambda *= alpha or /= alpha per step");
    f("remoe_lambda0", remoe_lambda0, at_least(0), "original: initial lambda");
    // The rf_paper controller caps λ at 1, so a start above 1 would be clipped at once.
    f("remoe_rf_lambda0", remoe_rf_lambda0, closed(0, 1), "rf_paper: initial lambda");
    f("remoe_rf_eta", remoe_rf_eta, at_least(0), "rf_paper: lambda controller step eta");
    f("rho_target", rho_target, lower_open(0, 1), "rf_paper: target density rho*");
    // Declared exactly as Routing-Free declares it (the registry refuses a differing twin).
    f("lambda_updates", lambda_updates, at_least(0), kLambdaUpdatesHelp);
  }
};

const models::MethodSpec& remoe_method();

// y = Σ_{e: R_e > 0} R_e · FFN_e(x); a token may have 0..E experts (0 gives y = 0).
// scores_NE = R, active_NE = R > 0; layer_aux stays undefined: the controller computes the
// regulariser from R so it can leave padding rows out.
class ReMoEPolicyImpl : public models::RoutingPolicyImpl {
 public:
  ReMoEPolicyImpl(int64_t hidden, const models::MoeOptions& opts, double init_std);
  models::PolicyOutput route(const torch::Tensor& x_NH) override;
  int64_t gate_input_width() const override { return hidden_; }

  torch::Tensor router_EH;  // W_r, no bias

 private:
  int64_t hidden_, experts_;
};
TORCH_MODULE(ReMoEPolicy);

// Original per-layer term: (1/N)·Σ_{n,e} f_e·R[n,e], f_e = E/(k·N)·Σ_n 1[R[n,e] > 0] (no grad).
torch::Tensor remoe_load_weighted_l1(const torch::Tensor& R_NE, const torch::Tensor& active_NE,
                                     int64_t k);

// L = λ·Σ_layers L_reg. Variants (moe.remoe_variant):
//  original: L_reg as above; sparsity S = 1 − mean(1[R > 0]) is averaged over layers and the
//    training micro-batches since the last optimizer step; after_optimizer_step() sets
//    λ ← λ·α if S < 1 − k/E, else λ/α (equality included); λ₀ = remoe_lambda0.
//  rf_paper: L_reg = Σ_{n,e} R (plain sum), λ ← min(1, λ·(1+η)^sign(ρ − ρ*)),
//    moe.lambda_updates times per optimizer step on the mean ρ = mean(1[R > 0]) of the
//    micro-batches between updates (LambdaCadence); λ₀ = remoe_rf_lambda0, η = remoe_rf_eta,
//    ρ* = rho_target.
// λ is fp32; a forward's loss uses λ from before that forward's update. Padding rows are left
// out of L_reg and S when mask_padding is set. metrics(): "lambda" (the λ the loss used),
// "density" (mean active fraction over layers), "sparsity" (1 − density), "l_reg".
class ReMoEBalance : public models::AuxController {
 public:
  explicit ReMoEBalance(const models::MoeOptions& opts);
  torch::Tensor loss(const std::vector<models::PolicyOutput>& layers,
                     const torch::Tensor& token_mask_N, bool training) override;
  void after_optimizer_step() override;
  void set_micro_batches(int per_step) override { cadence_.set_micro_batches(per_step); }
  // Both variants' λ inputs are summed over data-parallel ranks: the cadence's ρ, and the
  // original variant's sparsity of the step.
  void set_rank_sum(models::RankSum sum) override {
    cadence_.set_rank_sum(sum);
    rank_sum_ = std::move(sum);
  }
  std::map<std::string, double> metrics() const override { return metrics_; }
  // "lambda" plus the sparsity accumulators (empty at optimizer-step boundaries, but saved so a
  // mid-accumulation snapshot resumes exactly).
  std::map<std::string, double> state() const override;
  void load_state(const std::map<std::string, double>& s) override;
  float lambda() const { return lambda_; }
  bool rf_paper() const { return rf_paper_; }

  // Original rule: λ·α if sparsity < target, else λ/α; fp32 like the reference code.
  static float next_lambda(float lambda, double sparsity, double target, double alpha);

 private:
  bool mask_padding_;
  int64_t experts_;
  ReMoEOptions opts_;
  bool rf_paper_;
  int64_t k_;
  float lambda_;
  models::LambdaCadence cadence_;
  double sparsity_sum_ = 0;  // Σ of per-layer S over training forwards since the last step
  double sparsity_count_ = 0;
  models::RankSum rank_sum_;
  std::map<std::string, double> metrics_;
};

}  // namespace moebench::baselines

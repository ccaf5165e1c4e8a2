// Autonomy-of-Experts (AoE; arXiv 2501.13074; shared/spec/METHODS.md §5): each expert scores
// itself by the norm of its own low-rank projection, top-K norms win, softmax over the winners.
#pragma once

#include "models/method.h"
#include "models/moe.h"

namespace moebench::baselines {

// The `moe` keys of AoE (METHODS.md §5); K is the shared moe.top_k, r the shared moe.rank.
struct AoeOptions {
  // rf_paper: no aux loss, width as given. aoe_paper: per-layer aux α·E·Σ f_e P_e (summed over
  // layers) with α = aux_coef, experts widened to aoe_wide_intermediate (parameter-matched).
  std::string aoe_variant = "rf_paper";
  double aux_coef = 0.01;
  template <class F>
  void fields(F&& f) {
    using namespace models;
    f("aoe_variant", aoe_variant, one_of({"rf_paper", "aoe_paper"}),
      "rf_paper (as the Routing-Free paper ran it) or aoe_paper (aux loss, widened experts)");
    f("aux_coef", aux_coef, at_least(0), "load-balancing loss coefficient alpha");
  }
};

const models::MethodSpec& aoe_method();

// Expert width d_wide that gives an AoE expert (A [r×H], B [d×r], U [d×H], D [H×d]) the
// parameter count of a full-rank SwiGLU expert of width I (3·H·I):
//   r·H + d·(r + 2·H) = 3·H·I  =>  d_wide = (3·H·I − r·H) / (r + 2·H)   (METHODS.md §5).
// Rounded DOWN, so the AoE expert never has more parameters than the top-k expert it is
// compared with (e.g. H = 16, I = 8, r = 4: 320 / 36 = 8.9 -> 8). H = 768, I = 3072,
// r = 256 divides exactly: 3840.
int64_t aoe_wide_intermediate(int64_t H, int64_t I, int64_t r);

// The gate: z_e = A_e x for all experts in one fused matmul, s_e = ‖z_e‖₂ (fp32 or wider),
// top-K of s, weights = softmax over the K chosen norms only. The chosen experts finish from
// z_e (gate_in_per_pair): y = Σ w_e D_e(SiLU(B_e z_e) ⊙ U_e x).
//
// scores_NE holds softmax over ALL E norms (the AoE paper's router probabilities P, which the
// aux loss needs; monotone in s per token, so the top-K are the same); active_NE the top-K.
// aoe_variant "rf_paper" (default) has no aux loss; "aoe_paper" adds α·E·Σ f_e P_e per layer,
// summed over layers (SoftmaxBalanceLoss of baselines/topk.h, per-layer scope, α = aux_coef; the
// AoE code computes it per layer, not pooled), and the trainer
// widens the experts to aoe_wide_intermediate (suite/trainer.cpp model_options).
class AoePolicyImpl : public models::RoutingPolicyImpl {
 public:
  AoePolicyImpl(int64_t hidden, const models::MoeOptions& opts, double init_std);
  models::PolicyOutput route(const torch::Tensor& x_NH) override;
  int64_t gate_input_width() const override { return rank_; }

  torch::Tensor A_ErH;  // low-rank projections: the score and the SwiGLU gate input

 private:
  int64_t experts_, rank_, k_;
};

}  // namespace moebench::baselines

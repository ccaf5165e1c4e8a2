// Top-k softmax MoE (HF Mixtral style; the paper's "MoE" row; METHODS.md §2): softmax router,
// top-k, renormalised weights, and the pooled load-balancing loss over all layers.
#pragma once

#include "models/method.h"
#include "models/moe.h"

namespace moebench::baselines {

// The `moe` keys of the top-k MoE (METHODS.md §2); k is the shared moe.top_k.
struct TopKOptions {
  double aux_coef = 0.01;
  template <class F>
  void fields(F&& f) {
    f("aux_coef", aux_coef, models::at_least(0), "load-balancing loss coefficient alpha");
  }
};

const models::MethodSpec& topk_method();

class TopKPolicyImpl : public models::RoutingPolicyImpl {
 public:
  TopKPolicyImpl(int64_t hidden, const models::MoeOptions& opts, double init_std);
  models::PolicyOutput route(const torch::Tensor& x_NH) override;
  int64_t gate_input_width() const override { return hidden_; }

  torch::Tensor router_EH;  // W_r, no bias

 private:
  int64_t hidden_, experts_, k_;
};

// The softmax load-balancing loss coef · E · Σ_e f_e P_e, f_e = mean of the chosen one-hot
// (sums to k), P_e = mean router probability (scores_NE), over one of two scopes:
//  - kPooled (HF convention; top-k): all layers' tokens concatenated into one set of statistics;
//  - kPerLayer (the AoE code): each layer's own statistics, the layers' losses summed.
// Padding rows are left out when mask_padding is set.
class SoftmaxBalanceLoss : public models::AuxController {
 public:
  enum class Scope { kPooled, kPerLayer };
  // coef: the loss coefficient (aux_coef of the method using it).
  SoftmaxBalanceLoss(const models::MoeOptions& opts, double coef, Scope scope)
      : mask_padding_(opts.mask_padding), coef_(coef), scope_(scope) {}
  torch::Tensor loss(const std::vector<models::PolicyOutput>& layers,
                     const torch::Tensor& token_mask_N, bool training) override;
  // "balance_loss" (E·Σ f P, pooled, or the mean over layers per layer) and "density".
  std::map<std::string, double> metrics() const override { return metrics_; }

 private:
  bool mask_padding_;
  double coef_;
  Scope scope_;
  std::map<std::string, double> metrics_;
};

}  // namespace moebench::baselines

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

// HF convention: all layers' tokens concatenated; f_e = mean of the top-k one-hot (sums to k),
// P_e = mean router probability; loss = coef · E · Σ_e f_e P_e.
class PooledBalanceLoss : public models::AuxController {
 public:
  // coef: the loss coefficient (aux_coef of the method using it).
  PooledBalanceLoss(const models::MoeOptions& opts, double coef)
      : mask_padding_(opts.mask_padding), coef_(coef) {}
  torch::Tensor loss(const std::vector<models::PolicyOutput>& layers,
                     const torch::Tensor& token_mask_N, bool training) override;
  std::map<std::string, double> metrics() const override { return metrics_; }

 private:
  bool mask_padding_;
  double coef_;
  std::map<std::string, double> metrics_;
};

}  // namespace moebench::baselines

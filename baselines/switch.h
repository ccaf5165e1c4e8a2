// Switch Transformer baseline (arXiv 2101.03961; shared/spec/METHODS.md §3): top-1 softmax
// router, per-expert capacity with first-come dropping, per-layer balance loss and router z-loss.
#pragma once

#include "models/method.h"
#include "models/moe.h"

namespace moebench::baselines {

// The `moe` keys of Switch (METHODS.md §3).
struct SwitchOptions {
  double aux_coef = 0.01;
  double capacity_factor_train = 1.25;
  double capacity_factor_eval = 2.0;
  double z_loss_coef = 1e-3;
  double jitter = 0.0;                 // ε of the multiplicative router-input noise; 0 = off
  std::string switch_norm = "switch";  // switch | megatron
  template <class F>
  void fields(F&& f) {
    using namespace models;
    f("aux_coef", aux_coef, at_least(0), "load-balancing loss coefficient alpha");
    f("capacity_factor_train", capacity_factor_train, positive(),
      "expert capacity factor CF in training: C = ceil(N/E * CF)");
    f("capacity_factor_eval", capacity_factor_eval, positive(), "capacity factor in evaluation");
    f("z_loss_coef", z_loss_coef, at_least(0), "router z-loss coefficient");
    f("jitter", jitter, upper_open(0, 1), "multiplicative router-input noise epsilon; 0 = off");
    f("switch_norm", switch_norm, one_of({"switch", "megatron"}),
      "balance-loss normalisation: switch, or megatron (divided by k)");
  }
};

const models::MethodSpec& switch_method();

// p = softmax(W_r x); each token goes to argmax p with weight p_argmax (not renormalised).
// Expert e computes at most C = ceil(N/E · CF) tokens, the first C by token position; the rest
// are dropped (no pair, so the MoE adds 0 and the block is the residual only). CF is
// capacity_factor_train while the module is_training(), capacity_factor_eval otherwise.
//
// Padding: given a token mask (route_masked; the trainer passes the batch's), padding rows are
// never kept, take no capacity (C counts real tokens: C = ceil(N_real/E · CF)) and stay out of
// the aux statistics (f, P and the z-loss are means over real rows), so a padded batch routes
// its real tokens exactly as the same tokens without the padding. Without a mask, or with
// moe.mask_padding = false, every row counts as real (the reference Switch/Mesh-TF behaviour,
// where padding can take capacity from rows of later sequences).
class SwitchPolicyImpl : public models::RoutingPolicyImpl {
 public:
  SwitchPolicyImpl(int64_t hidden, const models::MoeOptions& opts, double init_std);
  // layer_aux = aux_coef · balance + z_loss_coef · z; layer_stats "balance" and "z_loss" hold
  // the unscaled terms; dropped_N marks the real tokens capacity sent past every expert.
  models::PolicyOutput route(const torch::Tensor& x_NH) override;
  models::PolicyOutput route_masked(const torch::Tensor& x_NH,
                                    const torch::Tensor& valid_N) override;
  int64_t gate_input_width() const override { return hidden_; }
  // C for N tokens under the current mode (train or eval capacity factor).
  int64_t capacity(int64_t num_tokens) const;

  torch::Tensor router_EH;  // W_r, no bias

 private:
  int64_t hidden_, experts_;
  bool mask_padding_;
  SwitchOptions opts_;
};
TORCH_MODULE(SwitchPolicy);

// C = ceil(N/E · CF); at least 1 whenever N ≥ 1 and CF > 0.
int64_t switch_capacity(int64_t num_tokens, int64_t experts, double capacity_factor);

// bool [N, E]: pair (n, expert_N[n]) kept iff n is among the first `capacity` tokens (by
// position) that chose that expert. With valid_N (bool [N]) only valid rows are kept or counted.
torch::Tensor capacity_keep_mask(const torch::Tensor& expert_N, int64_t experts, int64_t capacity,
                                 const torch::Tensor& valid_N = {});

// Balance term E·Σ_e f_e·P_e with f_e the fraction of tokens whose argmax is e (no gradient)
// and P_e the mean probability; balanced routing gives 1, so the aux term gives its coefficient.
// The caller passes the rows that count (real tokens only, when there is a mask).
// "megatron" divides by k as Megatron-Core's switch_load_balancing_loss_func does, which makes
// a balanced top-k router give 1 for any k (f then sums to k). With top-1, k = 1 and the two
// normalisations give the same value; the option exists so runs record which one they used.
torch::Tensor switch_balance(const torch::Tensor& probs_NE, const torch::Tensor& expert_N,
                             int64_t k, const std::string& norm);

// ST-MoE router z-loss without its coefficient: mean_n(logsumexp_e(logits[n, e])²).
torch::Tensor router_z_loss(const torch::Tensor& logits_NE);

// Sums every layer's PolicyOutput::layer_aux (the aux is per layer, summed over layers).
// metrics(): "aux" (the returned loss), "balance_loss" and "z_loss" (unscaled, mean over
// layers), "dropped_frac" (dropped real tokens / real tokens, mean over layers) and "density"
// (computed pairs / (real tokens · E), mean over layers).
class LayerAuxSum : public models::AuxController {
 public:
  LayerAuxSum() = default;
  torch::Tensor loss(const std::vector<models::PolicyOutput>& layers,
                     const torch::Tensor& token_mask_N, bool training) override;
  std::map<std::string, double> metrics() const override { return metrics_; }

 private:
  std::map<std::string, double> metrics_;
};

}  // namespace moebench::baselines

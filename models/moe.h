// The MoE layer interface: a routing policy turns x into Routing + gate inputs + scores; the
// shared expert kernels compute the experts; an AuxController turns all layers into the aux loss.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/expert_ops.h"
#include "kernels/routing.h"

namespace moebench::models {

// Every knob of every method (defaults: shared/spec/METHODS.md). Owned by models/, filled from
// the suite's RunConfig.
struct MoeOptions {
  std::string method = "routing_free";
  int64_t experts = 8;
  int64_t intermediate = 64;
  int64_t rank = 0;  // low-rank gate width r; 0 = intermediate / 4
  // Routing-Free (§1)
  double theta = 1.0;
  std::string norm = "l2";  // l2 | l1 | linf
  double gamma_init = 1.0;
  double bias_init = -1e-6;
  double rho_target = 0.25;
  double eta = 0.02;
  double lambda0 = 1e-10;
  double eb_weight = 0.5;  // L_reg = eb_weight * L_EB + tb_weight * L_TB (paper: mu, 1 - mu)
  double tb_weight = 0.5;
  bool mask_padding = true;
  bool lambda_bf16 = false;  // the official code's bf16 lambda (loses precision): option only
  // Top-k (§2)
  int64_t top_k = 0;  // 0 = experts / 4
  double aux_coef = 0.01;
  // AoE (§5): rf_paper (no aux, width as given) | aoe_paper (pooled aux α·E·Σ f_e P_e with
  // α = aux_coef; the trainer widens intermediate to baselines::aoe_wide_intermediate)
  std::string aoe_variant = "rf_paper";
  // Self-Routing (§6): which E input channels are the logits: last | first | strided
  std::string self_routing_subspace = "last";
  // Switch (§3)
  double capacity_factor_train = 1.25;
  double capacity_factor_eval = 2.0;
  double z_loss_coef = 1e-3;
  double jitter = 0.0;                 // ε of the multiplicative router-input noise; 0 = off
  std::string switch_norm = "switch";  // switch | megatron
  // ReMoE (§4)
  std::string remoe_variant = "original";  // original | rf_paper
  double remoe_alpha = 1.2;
  double remoe_lambda0 = 1e-8;
  // The rf_paper variant's own λ₀ and η (ρ* is rho_target).
  double remoe_rf_lambda0 = 0.01;
  double remoe_rf_eta = 0.1;
  std::string backend = "auto";

  int64_t effective_rank() const { return rank > 0 ? rank : intermediate / 4; }
  int64_t effective_top_k() const { return top_k > 0 ? top_k : std::max<int64_t>(1, experts / 4); }
};

// What one MoE layer's policy decided for N tokens.
struct PolicyOutput {
  kernels::Routing routing;
  torch::Tensor gate_in;  // [N, K] or [N*E, K] (gate_in_per_pair)
  bool gate_in_per_pair = false;
  torch::Tensor scores_NE;  // fp32 gate scores (method's own meaning; RF: s = γ‖Ax‖ − b)
  torch::Tensor active_NE;  // bool, no gradient
  torch::Tensor layer_aux;  // per-layer aux loss, undefined when the method has none
  // bool [N]: tokens a capacity limit sent past every expert (residual only); undefined when
  // the method never drops.
  torch::Tensor dropped_N;
  // Detached per-layer scalars for the controller's metrics() (e.g. Switch's "z_loss").
  std::map<std::string, torch::Tensor> layer_stats;
};

class RoutingPolicyImpl : public torch::nn::Module {
 public:
  virtual PolicyOutput route(const torch::Tensor& x_NH) = 0;
  // The same with valid_N (bool [N], undefined = every row real) marking real tokens, so a
  // method whose decision couples tokens can leave padding out (Switch: padding is never kept,
  // takes no capacity and stays out of the aux statistics). Methods that decide each token
  // alone ignore it: their padding rows are masked later, by the AuxController and the loss.
  virtual PolicyOutput route_masked(const torch::Tensor& x_NH, const torch::Tensor& /*valid_N*/) {
    return route(x_NH);
  }
  virtual int64_t gate_input_width() const = 0;  // K
  virtual void set_theta(double /*theta*/) {}
};

// Model-level balancing: sees every layer's PolicyOutput of one forward.
class AuxController {
 public:
  virtual ~AuxController() = default;
  // Aux term added to the LM loss. token_mask_N marks real (non-padding) tokens. In training
  // mode the controller also updates its own state (after computing the loss with the old one).
  virtual torch::Tensor loss(const std::vector<PolicyOutput>& layers,
                             const torch::Tensor& token_mask_N, bool training) = 0;
  virtual void after_optimizer_step() {}
  // Scalars for logging and checkpoints (e.g. "lambda", "density", "l_eb").
  virtual std::map<std::string, double> metrics() const { return {}; }
  virtual std::map<std::string, double> state() const { return {}; }
  virtual void load_state(const std::map<std::string, double>& /*state*/) {}
};

// One MoE FFN: policy + expert weights (gate branch width K from the policy).
class MoeLayerImpl : public torch::nn::Module {
 public:
  MoeLayerImpl(int64_t hidden, const MoeOptions& opts, std::shared_ptr<RoutingPolicyImpl> policy,
               double init_std);
  // y [N, H]; the policy's decision is appended to `out` for the AuxController. valid_N
  // (optional, [N], nonzero = real token) is handed to the policy's route_masked.
  torch::Tensor forward(const torch::Tensor& x_NH, std::vector<PolicyOutput>* out,
                        const torch::Tensor& valid_N = {});

  // The backend that computed the last forward ("" before the first one).
  const std::string& last_backend_name() const { return last_backend_; }

  std::shared_ptr<RoutingPolicyImpl> policy;
  kernels::ExpertWeights weights;
  // kernels.backend as configured; resolved on every forward from x's device and dtype, so a
  // layer moved to another device or dtype picks the backend that fits it.
  std::string backend_request;

 private:
  std::string last_backend_;
};
TORCH_MODULE(MoeLayer);

// Dense SwiGLU FFN (the dense baseline, and the reference an always-on single expert equals).
class SwiGluImpl : public torch::nn::Module {
 public:
  SwiGluImpl(int64_t hidden, int64_t intermediate, double init_std);
  torch::Tensor forward(const torch::Tensor& x_NH);
  torch::Tensor gate_IH, up_IH, down_HI;
};
TORCH_MODULE(SwiGlu);

// Factory: the policy and the controller of a method ("routing_free", "dense" has none).
std::shared_ptr<RoutingPolicyImpl> make_policy(int64_t hidden, const MoeOptions& opts,
                                               double init_std);
std::unique_ptr<AuxController> make_controller(const MoeOptions& opts, int64_t layers);

}  // namespace moebench::models

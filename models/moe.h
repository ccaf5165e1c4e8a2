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
#include "models/lambda_rule.h"
#include "models/options.h"

namespace moebench::models {

// How the decoder layers' weight matrices start (METHODS.md "Initialisation as published").
//  kNormal:       N(0, init_std) for every matrix (HF's init; what the official top-k model uses).
//  kTorchDefault: PyTorch's nn.Linear default U(±1/√fan_in) (fan_in = a matrix's last dimension)
//                 for every matrix of the decoder layers (attention, router or projections,
//                 experts); the embedding and the head stay N(0, init_std). The official RF, AoE
//                 and ReMoE models swap their own decoder layers in after HF's init, so these
//                 layers keep PyTorch's default.
enum class LayerInit { kNormal, kTorchDefault };

// What one MoE layer's policy decided for N tokens.
struct PolicyOutput {
  kernels::Routing routing;
  torch::Tensor gate_in;  // [N, K] or [N*E, K] (gate_in_per_pair)
  bool gate_in_per_pair = false;
  torch::Tensor scores_NE;  // fp32 gate scores (method's own meaning; RF: s = γ‖Ax‖ − b)
  // bool [N, E], no gradient: the pairs `routing` computes. Policies leave it undefined; decide()
  // derives it from the routing, so statistics and kernels can never disagree.
  torch::Tensor active_NE;
  // bool [N, E], no gradient: what the router chose before a capacity limit dropped pairs
  // (Switch). Undefined = the same as active_NE. Load statistics are taken from the choice, so
  // that dropping (which caps load) cannot hide imbalance; drops are counted apart (dropped_N).
  torch::Tensor chosen_NE;
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
  // The trainer's micro-batches per optimizer step, for controllers whose update cadence is set
  // per optimizer step (LambdaCadence); called before training.
  virtual void set_micro_batches(int /*per_step*/) {}
  // Data parallel: how to sum the statistics that move the controller's state (λ's ρ) over the
  // ranks. Statistics that only enter the loss need none: the gradients are summed over ranks.
  virtual void set_rank_sum(RankSum /*sum*/) {}
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

// The policy's decision for x with active_NE derived from its routing (the one place it is
// built). valid_N as in route_masked (undefined = every row real).
PolicyOutput decide(RoutingPolicyImpl& policy, const torch::Tensor& x_NH,
                    const torch::Tensor& valid_N = {});

}  // namespace moebench::models

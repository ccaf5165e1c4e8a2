// A method as the suite sees it: everything that makes it what it is, built by the method's own
// file and listed once in baselines/registry.cpp. Config, trainer, evaluator, flops and layer
// look a method up there and never compare method names (shared design: "A method is one file").
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/moe.h"
#include "models/options.h"

namespace moebench::models {

// Multiply-accumulates one token costs in one FFN layer: the gating work (router, or all
// low-rank projections) and the active experts' SwiGLU work. FLOPs = 2 x MACs.
struct FfnMacs {
  double router = 0;
  double experts = 0;
  double total() const { return router + experts; }
};

// One weight `moebench layer` reads: its name in IN (grad_<name> in OUT), its shape in dimension
// symbols (N tokens, H hidden, E experts, I intermediate, r low-rank size), and the parameter of
// the layer module it is copied into.
struct LayerWeight {
  std::string name;
  std::vector<std::string> dims;
  std::string doc;
  std::string param;  // e.g. "policy.router", "w_up"
};

struct MethodSpec {
  std::string name;     // the value of moe.method
  std::string title;    // as prose names it ("Routing-Free", "top-k")
  std::string summary;  // the maths in a few lines (moebench layer --help, reports)
  // Shown beside the method's results wherever they are printed ("" = nothing to say).
  std::string caveat;
  std::vector<OptionField> options;  // its own keys of the moe section

  // The routing policy of one layer; null for the dense baseline (one SwiGLU FFN per block).
  std::function<std::shared_ptr<RoutingPolicyImpl>(int64_t hidden, const MoeOptions&,
                                                   double init_std)>
      make_policy;
  // The balancing controller over all layers; null, or returning null, when there is none.
  std::function<std::unique_ptr<AuxController>(const MoeOptions&, int64_t layers)> make_controller;
  // Active MACs per token per FFN layer; `density` is the measured active fraction for methods
  // whose number of experts per token varies (variable_density).
  std::function<FfnMacs(const MoeOptions&, int64_t hidden, double density)> macs;
  // Changes the method makes to the shared layer sizes before the model is built (AoE's widened
  // experts); null = none.
  std::function<void(MoeOptions&, int64_t hidden)> adjust;
  // Dense only: the FFN width.
  std::function<int64_t(const MoeOptions&)> ffn_width;
  // Parameters the official implementation allocates but never uses, per layer (reported beside
  // the parameter count; RF's full-rank gates). Null = none.
  std::function<int64_t(const MoeOptions&, int64_t hidden)> unused_official_params;
  // `moebench flops` reports one row per entry ("key=value" overrides, e.g. both dense widths);
  // empty = one row as configured.
  std::vector<std::string> flops_variants;
  // moebench layer: the method's weights in IN.
  std::vector<LayerWeight> layer_weights;
  // The option holding an inference-time activity threshold θ (RoutingPolicyImpl::set_theta;
  // the θ sweep), "" = the method has none.
  std::string threshold_option;
  // The number of experts per token varies (FLOPs depend on the measured density).
  bool variable_density = false;
  // A token's routing depends on the other tokens of its forward (Switch's capacity), so
  // requests must not be packed together for scoring.
  bool couples_tokens = false;
  // How the method's official code initialises the decoder layers (model.init = "published").
  LayerInit published_init = LayerInit::kNormal;

  bool routed() const { return static_cast<bool>(make_policy); }
};

// The shared expert weights as `moebench layer` names them (MoeLayerImpl's w_gate, w_up,
// w_down): the SiLU-branch gate (full-rank G_e [I, H] fed x, or low-rank B_e [I, r] fed
// z = A_e x), the up projection U_e and the down projection D_e; after the policy's own weights.
std::vector<LayerWeight> expert_layer_weights(std::vector<LayerWeight> policy_weights,
                                              bool low_rank);
// A weight the routing policy registered under `name` ("A", "router", ...).
LayerWeight policy_weight(const std::string& name, std::vector<std::string> dims,
                          const std::string& doc);

// MACs of full-rank SwiGLU experts (G, U, D, all fed x) and of low-rank-gated ones (B fed z of
// width r, U, D), per expert and token.
double full_expert_macs(const MoeOptions& o, int64_t hidden);
double low_rank_expert_macs(const MoeOptions& o, int64_t hidden);

}  // namespace moebench::models

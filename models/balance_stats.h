// Load-balance statistics of a routed model, accumulated over batches (METHODS.md "Metrics every
// run reports"): density, active experts per token, per-expert load, CV, MaxVio, entropy, dead.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "models/moe.h"

namespace moebench::models {

class BalanceStats {
 public:
  // Adds one forward's routing (one PolicyOutput per MoE layer); token_mask_N marks real tokens.
  void add(const std::vector<PolicyOutput>& layers, const torch::Tensor& token_mask_N);

  int num_layers() const { return static_cast<int>(load_.size()); }
  // Summary metrics of one layer: density, active_mean, active_p50, active_p99, active_max,
  // frac_zero, cv, maxvio, entropy (normalised by log E), dead (experts whose share of the load
  // f_e / Σ f is below 1/(8E): an eighth of a uniform share, whatever k is), and for methods
  // that drop pairs (Switch) dropped_frac (real tokens sent past every expert / real tokens).
  // The load figures come from the router's choice (PolicyOutput::chosen_NE) where it differs
  // from the computed pairs: capacity dropping caps load and would hide imbalance.
  std::map<std::string, double> layer_summary(int layer) const;
  // Averages of layer_summary over layers.
  std::map<std::string, double> mean_summary() const;
  // f_e: the fraction of tokens that choose expert e in this layer (sums to the mean k).
  std::vector<double> load(int layer) const;

 private:
  std::vector<std::vector<int64_t>> load_;    // [layer][expert] active pair counts
  std::vector<std::vector<int64_t>> k_hist_;  // [layer][k] tokens with k active experts
  std::vector<int64_t> tokens_;               // [layer]
  std::vector<int64_t> dropped_;              // [layer] tokens dropped by capacity
  std::vector<bool> drops_;                   // [layer] the method reports drops
};

}  // namespace moebench::models

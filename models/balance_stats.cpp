// Balance statistics from routing masks: exact counts (histograms), summaries derived from them.
// Definitions: shared/spec/METHODS.md "Metrics every run reports".
#include "models/balance_stats.h"

#include <cmath>

namespace moebench::models {

void BalanceStats::add(const std::vector<PolicyOutput>& layers, const torch::Tensor& token_mask_N) {
  if (load_.empty()) {
    load_.resize(layers.size());
    k_hist_.resize(layers.size());
    tokens_.assign(layers.size(), 0);
    dropped_.assign(layers.size(), 0);
    drops_.assign(layers.size(), false);
  }
  torch::Tensor keep;
  if (token_mask_N.defined()) {
    keep = token_mask_N.reshape({-1}).to(torch::kCPU).to(torch::kBool).nonzero().squeeze(1);
  }
  for (size_t l = 0; l < layers.size(); ++l) {
    const auto& layer = layers[l];
    const auto& choice = layer.chosen_NE.defined() ? layer.chosen_NE : layer.active_NE;
    auto active = choice.detach().to(torch::kCPU).to(torch::kLong);
    if (keep.defined()) active = active.index_select(0, keep);
    if (layer.dropped_N.defined()) {
      auto dropped = layer.dropped_N.detach().to(torch::kCPU).to(torch::kLong);
      if (keep.defined()) dropped = dropped.index_select(0, keep);
      dropped_[l] += dropped.sum().item<int64_t>();
      drops_[l] = true;
    }
    const int64_t E = active.size(1);
    if (load_[l].empty()) {
      load_[l].assign(E, 0);
      k_hist_[l].assign(E + 1, 0);
    }
    const auto per_expert = active.sum(0);
    const auto per_token = torch::bincount(active.sum(1), {}, E + 1);
    for (int64_t e = 0; e < E; ++e) load_[l][e] += per_expert[e].item<int64_t>();
    for (int64_t k = 0; k <= E; ++k) k_hist_[l][k] += per_token[k].item<int64_t>();
    tokens_[l] += active.size(0);
  }
}

std::vector<double> BalanceStats::load(int layer) const {
  std::vector<double> f;
  for (int64_t c : load_.at(layer)) f.push_back(tokens_[layer] ? double(c) / tokens_[layer] : 0.0);
  return f;
}

std::map<std::string, double> BalanceStats::layer_summary(int layer) const {
  const auto f = load(layer);
  const auto& hist = k_hist_.at(layer);
  const double E = static_cast<double>(f.size());
  const double n = static_cast<double>(tokens_[layer]);
  std::map<std::string, double> s;
  double mean_f = 0;
  for (double x : f) mean_f += x;
  mean_f /= E;
  s["density"] = mean_f;  // mean_e f_e = active pairs / (tokens · E)
  s["active_mean"] = mean_f * E;
  double var = 0, max_f = 0, total = 0, dead = 0;
  for (double x : f) {
    var += (x - mean_f) * (x - mean_f);
    max_f = std::max(max_f, x);
    total += x;
  }
  // Dead: a share of the load below an eighth of the uniform share 1/E (total = Σ f = mean k).
  for (double x : f) dead += total > 0 && x / total < 1.0 / (8.0 * E);
  s["cv"] = mean_f > 0 ? std::sqrt(var / E) / mean_f : 0.0;
  s["maxvio"] = mean_f > 0 ? (max_f - mean_f) / mean_f : 0.0;
  double h = 0;
  for (double x : f) {
    if (x > 0 && total > 0) h -= (x / total) * std::log(x / total);
  }
  s["entropy"] = E > 1 ? h / std::log(E) : 1.0;
  s["dead"] = dead;
  if (drops_.at(layer)) s["dropped_frac"] = n > 0 ? static_cast<double>(dropped_[layer]) / n : 0.0;
  s["frac_zero"] = n > 0 ? hist[0] / n : 0.0;
  // Quantiles of the active-experts-per-token distribution from its exact histogram.
  auto quantile = [&](double q) {
    int64_t cum = 0;
    for (size_t k = 0; k < hist.size(); ++k) {
      cum += hist[k];
      if (cum >= q * n) return static_cast<double>(k);
    }
    return static_cast<double>(hist.size() - 1);
  };
  s["active_p50"] = quantile(0.5);
  s["active_p99"] = quantile(0.99);
  double kmax = 0;
  for (size_t k = 0; k < hist.size(); ++k) {
    if (hist[k] > 0) kmax = static_cast<double>(k);
  }
  s["active_max"] = kmax;
  return s;
}

std::map<std::string, double> BalanceStats::mean_summary() const {
  std::map<std::string, double> out;
  for (int l = 0; l < num_layers(); ++l) {
    for (const auto& [k, v] : layer_summary(l)) out[k] += v / num_layers();
  }
  return out;
}

}  // namespace moebench::models

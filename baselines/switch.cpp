// Switch Transformer routing, capacity dropping and the per-layer aux loss (METHODS.md §3).
// Router statistics in fp32 (or wider); experts are full-rank SwiGLU fed by x.
#include "baselines/switch.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace moebench::baselines {

SwitchPolicyImpl::SwitchPolicyImpl(int64_t hidden, const models::MoeOptions& opts, double init_std)
    : hidden_(hidden),
      experts_(opts.experts),
      mask_padding_(opts.mask_padding),
      opts_(opts.method_options<SwitchOptions>()) {
  if (opts_.switch_norm != "switch" && opts_.switch_norm != "megatron") {
    throw std::invalid_argument("moe.switch_norm must be switch or megatron, not '" +
                                opts_.switch_norm + "'");
  }
  router_EH = register_parameter("router", torch::randn({experts_, hidden}) * init_std);
}

int64_t switch_capacity(int64_t num_tokens, int64_t experts, double capacity_factor) {
  // CF as the decimal it was written as (0.9, 1.25): numerator / 10^digits exactly, so that
  // ceil(N·CF/E) is computed in integers. In doubles 50/3·0.9 comes out 15.000000000000002 and
  // its ceiling 16 (METHODS.md §3: C = ceil(N·CF/E)).
  int64_t scale = 1;
  for (int digits = 0; digits < 9; ++digits, scale *= 10) {
    const double scaled = capacity_factor * static_cast<double>(scale);
    if (std::fabs(scaled - std::round(scaled)) <= 1e-9 * std::max(1.0, scaled)) break;
  }
  const auto numerator = static_cast<__int128>(std::llround(capacity_factor * scale));
  const __int128 num = static_cast<__int128>(num_tokens) * numerator;
  const __int128 den = static_cast<__int128>(experts) * scale;
  return static_cast<int64_t>((num + den - 1) / den);
}

int64_t SwitchPolicyImpl::capacity(int64_t num_tokens) const {
  return switch_capacity(num_tokens, experts_,
                         is_training() ? opts_.capacity_factor_train : opts_.capacity_factor_eval);
}

torch::Tensor capacity_keep_mask(const torch::Tensor& expert_N, int64_t experts, int64_t capacity,
                                 const torch::Tensor& valid_N) {
  auto onehot_NE = torch::one_hot(expert_N.to(torch::kLong), experts);
  // A padding row chooses nothing: it neither is kept nor moves the arrival rank of later rows.
  if (valid_N.defined()) onehot_NE = onehot_NE * valid_N.to(onehot_NE.scalar_type()).unsqueeze(1);
  // 1-based arrival rank of each token at its expert, in token order: first come, first kept.
  const auto rank_NE = onehot_NE.cumsum(0);
  return onehot_NE.to(torch::kBool).logical_and(rank_NE <= capacity);
}

torch::Tensor switch_balance(const torch::Tensor& probs_NE, const torch::Tensor& expert_N,
                             int64_t k, const std::string& norm) {
  const int64_t E = probs_NE.size(1);
  const auto f_E = torch::one_hot(expert_N.to(torch::kLong), E).to(probs_NE.scalar_type()).mean(0);
  auto bal = static_cast<double>(E) * (f_E * probs_NE.mean(0)).sum();
  return norm == "megatron" ? bal / static_cast<double>(k) : bal;
}

torch::Tensor router_z_loss(const torch::Tensor& logits_NE) {
  return torch::logsumexp(logits_NE, -1).pow(2).mean();
}

models::PolicyOutput SwitchPolicyImpl::route(const torch::Tensor& x_NH) {
  return route_masked(x_NH, {});
}

models::PolicyOutput SwitchPolicyImpl::route_masked(const torch::Tensor& x_NH,
                                                    const torch::Tensor& valid_in_N) {
  // mask_padding = false keeps the reference behaviour: padding counts like real tokens.
  const auto valid_N = mask_padding_ && valid_in_N.defined()
                           ? valid_in_N.reshape({-1}).to(torch::kBool)
                           : torch::Tensor();
  const auto dt = at::promote_types(x_NH.scalar_type(), torch::kFloat);
  auto router_in = x_NH.to(dt);
  if (is_training() && opts_.jitter > 0) {
    // Multiplicative noise on the router's input only; the experts still see the clean x.
    router_in =
        router_in * torch::empty_like(router_in).uniform_(1.0 - opts_.jitter, 1.0 + opts_.jitter);
  }
  const auto logits_NE = torch::linear(router_in, router_EH.to(dt));
  const auto probs_NE = torch::softmax(logits_NE, -1);
  const auto expert_N = probs_NE.detach().argmax(-1);
  // The real rows: all of them without a mask. One host sync for the count, as capacity is an
  // integer on the host anyway.
  const auto real_idx = valid_N.defined() ? valid_N.nonzero().squeeze(1) : torch::Tensor();
  const int64_t n_real = valid_N.defined() ? real_idx.numel() : x_NH.size(0);
  const auto keep_NE = capacity_keep_mask(expert_N, experts_, capacity(n_real), valid_N);

  models::PolicyOutput out;
  // Dropped pairs never reach the kernels; kept pairs carry the raw probability as weight.
  out.routing = kernels::routing_from_mask(keep_NE, probs_NE);
  out.gate_in = x_NH;
  out.scores_NE = probs_NE;
  out.chosen_NE = torch::one_hot(expert_N, experts_).to(torch::kBool);
  out.dropped_N = keep_NE.any(1).logical_not();
  if (valid_N.defined()) out.dropped_N = out.dropped_N.logical_and(valid_N);  // padding: skipped
  if (n_real > 0) {
    // Aux statistics over the real rows only.
    auto real = [&](const torch::Tensor& t) {
      return valid_N.defined() ? t.index_select(0, real_idx) : t;
    };
    const auto bal = switch_balance(real(probs_NE), real(expert_N), /*k=*/1, opts_.switch_norm);
    const auto z = router_z_loss(real(logits_NE));
    out.layer_aux = opts_.aux_coef * bal + opts_.z_loss_coef * z;
    out.layer_stats = {{"balance", bal.detach()}, {"z_loss", z.detach()}};
  }
  return out;
}

torch::Tensor LayerAuxSum::loss(const std::vector<models::PolicyOutput>& layers,
                                const torch::Tensor& token_mask_N, bool /*training*/) {
  torch::Tensor total;
  double dropped = 0, density = 0, balance = 0, z = 0;
  int64_t counted = 0;
  for (const auto& l : layers) {
    if (!l.layer_aux.defined()) continue;
    total = total.defined() ? total + l.layer_aux : l.layer_aux;
    auto drop_N = l.dropped_N, active_NE = l.active_NE;
    if (token_mask_N.defined()) {  // metrics count real tokens only
      const auto keep = token_mask_N.reshape({-1}).to(torch::kBool).nonzero().squeeze(1);
      drop_N = drop_N.index_select(0, keep);
      active_NE = active_NE.index_select(0, keep);
    }
    if (drop_N.numel() > 0) {
      dropped += drop_N.to(torch::kDouble).mean().item<double>();
      density += active_NE.to(torch::kDouble).mean().item<double>();
    }
    balance += l.layer_stats.at("balance").item<double>();
    z += l.layer_stats.at("z_loss").item<double>();
    ++counted;
  }
  if (!total.defined()) {
    metrics_.clear();
    return torch::zeros({}, torch::kFloat);
  }
  const double n = static_cast<double>(counted);
  metrics_ = {{"aux", total.item<double>()},
              {"balance_loss", balance / n},
              {"z_loss", z / n},
              {"dropped_frac", dropped / n},
              {"density", density / n}};
  return total;
}

const models::MethodSpec& switch_method() {
  static const models::MethodSpec spec = [] {
    models::MethodSpec m;
    m.name = "switch";
    m.title = "Switch";
    m.summary =
        "Switch Transformer (METHODS.md §3): p = softmax(router x), each token to argmax p\n"
        "with weight p_argmax (not renormalised); expert capacity ceil(N/E * CF), CF =\n"
        "moe.capacity_factor_train (the layer runs in training mode), overflow tokens\n"
        "dropped first-come by position (y = 0 for them); y = w * D_e (SiLU(G_e x) * U_e x);\n"
        "scores = p at the kept pairs";
    m.options = models::option_schema<SwitchOptions>();
    m.make_policy = [](int64_t hidden, const models::MoeOptions& o, double init_std) {
      return std::make_shared<SwitchPolicyImpl>(hidden, o, init_std);
    };
    m.make_controller = [](const models::MoeOptions&, int64_t) {
      return std::make_unique<LayerAuxSum>();
    };
    // One expert per token (capacity drops not counted).
    m.macs = [](const models::MoeOptions& o, int64_t hidden, double /*density*/) {
      return models::FfnMacs{static_cast<double>(o.experts * hidden),
                             models::full_expert_macs(o, hidden)};
    };
    m.layer_weights = models::expert_layer_weights(
        {models::policy_weight("router", {"E", "H"}, "router W_r (no bias)")}, /*low_rank=*/false);
    m.couples_tokens = true;  // capacity: first come, first kept
    return m;
  }();
  return spec;
}

}  // namespace moebench::baselines

// Autonomy-of-Experts gate (arXiv 2501.13074; METHODS.md §5): norm scores, top-K, softmax over
// the chosen norms; the low-rank z feeds the experts' gate branch through the shared kernels.
#include "baselines/aoe.h"

#include <stdexcept>

#include "baselines/topk.h"

namespace moebench::baselines {

int64_t aoe_wide_intermediate(int64_t H, int64_t I, int64_t r) {
  if (H < 1 || I < 1 || r < 1 || 3 * H * I <= r * H) {
    throw std::invalid_argument("aoe_wide_intermediate: needs H, I, r >= 1 and r < 3·I");
  }
  return (3 * H * I - r * H) / (r + 2 * H);  // integer division: rounds down (see aoe.h)
}

AoePolicyImpl::AoePolicyImpl(int64_t hidden, const models::MoeOptions& opts, double init_std)
    : experts_(opts.experts), rank_(opts.effective_rank()), k_(opts.effective_top_k()) {
  if (k_ > experts_) {
    throw std::invalid_argument("aoe: top_k (" + std::to_string(k_) + ") exceeds experts (" +
                                std::to_string(experts_) + ")");
  }
  A_ErH = register_parameter("A", torch::randn({experts_, rank_, hidden}) * init_std);
}

models::PolicyOutput AoePolicyImpl::route(const torch::Tensor& x_NH) {
  const int64_t N = x_NH.size(0);
  // All experts' projections in one matmul, as Routing-Free does: [N, H] x [H, E*r].
  const auto z_NEr =
      torch::linear(x_NH, A_ErH.reshape({experts_ * rank_, -1})).view({N, experts_, rank_});
  // Norms and softmax in fp32 at least (double stays double for finite-difference checks).
  const auto dt = at::promote_types(x_NH.scalar_type(), torch::kFloat);
  const auto norm_NE = z_NEr.to(dt).norm(2, -1);
  auto [top_s, top_i] = norm_NE.topk(k_, -1);
  // Softmax over the K winners only, so the losers do not dilute the weights (the same as
  // renormalising a softmax over all E to the winners, but without the extra pass).
  const auto weights_NK = torch::softmax(top_s, -1);
  models::PolicyOutput out;
  out.routing = kernels::routing_from_topk(top_i, weights_NK, experts_);
  out.gate_in = z_NEr.reshape({N * experts_, rank_});
  out.gate_in_per_pair = true;
  out.scores_NE = torch::softmax(norm_NE, -1);
  return out;
}

const models::MethodSpec& aoe_method() {
  static const models::MethodSpec spec = [] {
    models::MethodSpec m;
    m.name = "aoe";
    m.title = "AoE";
    m.summary =
        "Autonomy-of-Experts (METHODS.md §5): z_e = A_e x, s_e = ||z_e||, the top-K norms\n"
        "(K = moe.top_k, default E/4) win with weights softmax over those K norms,\n"
        "y = sum over chosen e of w_e * D_e (SiLU(B_e z_e) * U_e x); scores = softmax over\n"
        "all E norms";
    m.options = models::option_schema<AoeOptions>();
    m.make_policy = [](int64_t hidden, const models::MoeOptions& o, double init_std) {
      return std::make_shared<AoePolicyImpl>(hidden, o, init_std);
    };
    // The AoE paper's variant: α·E·Σ f_e P_e computed per layer as the AoE code does (not pooled
    // over layers), summed over layers; P = softmax of all E norms (scores_NE). The RF-paper
    // variant has no aux loss.
    m.make_controller = [](const models::MoeOptions& o,
                           int64_t /*layers*/) -> std::unique_ptr<models::AuxController> {
      const auto a = o.method_options<AoeOptions>();
      if (a.aoe_variant == "aoe_paper") {
        return std::make_unique<SoftmaxBalanceLoss>(o, a.aux_coef,
                                                    SoftmaxBalanceLoss::Scope::kPerLayer);
      }
      if (a.aoe_variant != "rf_paper") {
        throw std::invalid_argument("moe.aoe_variant must be rf_paper or aoe_paper, not '" +
                                    a.aoe_variant + "'");
      }
      return nullptr;
    };
    // Parameter-matched width (METHODS.md §5). r is fixed first from the ORIGINAL intermediate
    // (moe.rank, or I/4), so widening leaves it unchanged.
    m.adjust = [](models::MoeOptions& o, int64_t hidden) {
      if (o.method_options<AoeOptions>().aoe_variant != "aoe_paper") return;
      o.rank = o.effective_rank();
      o.intermediate = aoe_wide_intermediate(hidden, o.intermediate, o.rank);
    };
    m.macs = [](const models::MoeOptions& o, int64_t hidden, double /*density*/) {
      return models::FfnMacs{
          static_cast<double>(o.experts * o.effective_rank() * hidden),
          static_cast<double>(o.effective_top_k()) * models::low_rank_expert_macs(o, hidden)};
    };
    m.layer_weights = models::expert_layer_weights(
        {models::policy_weight("A", {"E", "r", "H"},
                               "low-rank projection (norm score and gate "
                               "input)")},
        /*low_rank=*/true);
    // The official code keeps PyTorch's default init in its own decoder layers.
    m.published_init = models::LayerInit::kTorchDefault;
    return m;
  }();
  return spec;
}

}  // namespace moebench::baselines

// Top-k softmax MoE (METHODS.md §2): renormalised weights sum to 1, the layer against a slow
// per-token loop in double (values and gradients), finite differences, and the pooled aux loss.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <numeric>

#include "baselines/registry.h"
#include "baselines/topk.h"
#include "models/tests/grad_check.h"

namespace moebench::baselines {
namespace {

models::MoeOptions topk_options(int64_t E, int64_t I, int64_t k) {
  models::MoeOptions o;
  o.method = "topk";
  o.experts = E;
  o.intermediate = I;
  o.top_k = k;
  return o;
}

// Slow reference: per token, softmax over all experts, pick the k largest, renormalise, sum the
// chosen experts' SwiGLU outputs.
torch::Tensor slow_topk(const torch::Tensor& x, const torch::Tensor& W, const torch::Tensor& G,
                        const torch::Tensor& U, const torch::Tensor& D, int64_t k) {
  std::vector<torch::Tensor> rows;
  for (int64_t n = 0; n < x.size(0); ++n) {
    const auto p = torch::softmax(torch::mv(W, x[n]), 0);
    std::vector<int64_t> order(W.size(0));
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(),
              [&](int64_t a, int64_t b) { return p[a].item<double>() > p[b].item<double>(); });
    auto denom = torch::zeros({}, x.options());
    for (int64_t j = 0; j < k; ++j) denom = denom + p[order[j]];
    auto y = torch::zeros({x.size(1)}, x.options());
    for (int64_t j = 0; j < k; ++j) {
      const int64_t e = order[j];
      y = y + p[e] / denom *
                  torch::mv(D[e], torch::silu(torch::mv(G[e], x[n])) * torch::mv(U[e], x[n]));
    }
    rows.push_back(y);
  }
  return torch::stack(rows);
}

TEST(TopK, WeightsSumToOneAndMatchTheLoop) {
  torch::manual_seed(11);
  const int64_t N = 9, H = 100, E = 6, I = 10, k = 3;  // H = 100 and k = 3: odd sizes
  const auto o = topk_options(E, I, k);
  models::MoeLayer layer(H, o, baselines::make_policy(H, o, 0.3), 0.2);
  auto* policy = dynamic_cast<TopKPolicyImpl*>(layer->policy.get());
  ASSERT_NE(policy, nullptr);
  const auto x = torch::randn({N, H}).requires_grad_(true);
  const auto grad_y = torch::randn({N, H});
  std::vector<models::PolicyOutput> out;
  const auto y = layer->forward(x, &out);
  (y * grad_y).sum().backward();

  const auto& r = out[0].routing;
  EXPECT_EQ(r.num_pairs(), N * k);
  const auto per_token = torch::zeros({N}).index_add(0, r.token, r.gate.detach());
  EXPECT_TRUE(torch::allclose(per_token, torch::ones({N}), 1e-6, 1e-6));

  auto d = [](const torch::Tensor& t) {
    return t.detach().to(torch::kDouble).requires_grad_(true);
  };
  auto xr = d(x), Wr = d(policy->router_EH), Gr = d(layer->weights.gate_EIK),
       Ur = d(layer->weights.up_EIH), Dr = d(layer->weights.down_EHI);
  const auto yr = slow_topk(xr, Wr, Gr, Ur, Dr, k);
  (yr * grad_y.to(torch::kDouble)).sum().backward();
  const auto& close = moebench::testing::expect_close_to_reference;
  close(y.detach(), yr.detach(), "y");
  close(x.grad(), xr.grad(), "grad_x");
  close(policy->router_EH.grad(), Wr.grad(), "grad_router");
  close(layer->weights.gate_EIK.grad(), Gr.grad(), "grad_G");
  close(layer->weights.up_EIH.grad(), Ur.grad(), "grad_U");
  close(layer->weights.down_EHI.grad(), Dr.grad(), "grad_D");
}

TEST(TopK, DoublePrecisionFiniteDifferences) {
  torch::manual_seed(12);
  const int64_t N = 5, H = 6, E = 4, I = 3, k = 2;
  const auto o = topk_options(E, I, k);
  models::MoeLayer layer(H, o, baselines::make_policy(H, o, 0.5), 0.5);
  layer->to(torch::kDouble);
  const auto x = torch::randn({N, H}, torch::kDouble);
  const auto p = torch::softmax(torch::linear(x, layer->policy->named_parameters()["router"]), -1);
  const auto top = std::get<0>(p.topk(k + 1, -1));
  ASSERT_GT((top.select(1, k - 1) - top.select(1, k)).min().item<double>(), 1e-4)
      << "a near-tie at the k-th expert: reseed";
  auto f = [&] { return layer->forward(x, nullptr).pow(2).sum(); };
  f().backward();
  moebench::testing::expect_gradients_match_finite_differences(layer->parameters(), f);
}

TEST(TopK, AuxLossByHandPooledAndPerLayer) {
  // Two layers, two tokens each, E = 2, k = 1. Layer 0: p = [[.8,.2],[.6,.4]], both pick 0.
  // Layer 1: p = [[.3,.7],[.5,.5] -> picks 1 then 0 (topk tie goes to the lower index)].
  // Pooled over 4 rows: f = [3/4, 1/4], P = [(.8+.6+.3+.5)/4, (.2+.4+.7+.5)/4] = [.55, .45]
  // L = E·Σ f·P = 2·(.75·.55 + .25·.45) = 1.05; times aux_coef 0.01.
  models::PolicyOutput a, b;
  a.scores_NE = torch::tensor({.8f, .2f, .6f, .4f}).view({2, 2});
  a.active_NE = torch::tensor({1, 0, 1, 0}).view({2, 2}).to(torch::kBool);
  b.scores_NE = torch::tensor({.3f, .7f, .5f, .5f}).view({2, 2});
  b.active_NE = torch::tensor({0, 1, 1, 0}).view({2, 2}).to(torch::kBool);
  SoftmaxBalanceLoss loss(topk_options(2, 4, 1), /*coef=*/0.01, SoftmaxBalanceLoss::Scope::kPooled);
  EXPECT_NEAR(loss.loss({a, b}, {}, true).item<double>(), 0.01 * 1.05, 1e-7);
  // Padding rows (token 1) leave the pool: f = [1/2, 1/2], P = [.55, .45] -> 2·.5 = 1.0
  EXPECT_NEAR(loss.loss({a, b}, torch::tensor({1, 0}), true).item<double>(), 0.01 * 1.0, 1e-7);

  // Per layer (the AoE code's scope), the same rows. Layer 0: f = [1, 0], P = [.7, .3] ->
  // 2·.7 = 1.4; layer 1: f = [.5, .5], P = [.4, .6] -> 2·(.2 + .3) = 1.0; summed: 2.4.
  SoftmaxBalanceLoss per_layer(topk_options(2, 4, 1), /*coef=*/0.01,
                               SoftmaxBalanceLoss::Scope::kPerLayer);
  EXPECT_NEAR(per_layer.loss({a, b}, {}, true).item<double>(), 0.01 * 2.4, 1e-7);
  EXPECT_NEAR(per_layer.metrics().at("balance_loss"), 1.2, 1e-6);  // mean over layers
  // Without token 1: layer 0 f = [1, 0], P = [.8, .2] -> 1.6; layer 1 f = [0, 1], P = [.3, .7]
  // -> 1.4; summed 3.0 (pooled would give 1.0: the scope matters).
  EXPECT_NEAR(per_layer.loss({a, b}, torch::tensor({1, 0}), true).item<double>(), 0.01 * 3.0, 1e-7);
}

}  // namespace
}  // namespace moebench::baselines

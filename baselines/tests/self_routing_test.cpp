// Self-Routing (METHODS.md §6, our reading of the abstract): no router parameters, the
// designated logit coordinates per subspace option, renormalised weights, a slow loop in
// double, and finite differences showing the gradient reaches x through the logits.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <numeric>

#include "baselines/registry.h"
#include "baselines/self_routing.h"
#include "models/tests/grad_check.h"

namespace moebench::baselines {
namespace {

models::MoeOptions sr_options(int64_t E, int64_t I, int64_t k, const std::string& subspace) {
  models::MoeOptions o;
  o.method = "self_routing";
  o.experts = E;
  o.intermediate = I;
  o.top_k = k;
  o.params.set("self_routing_subspace", subspace);
  return o;
}

torch::Tensor dense_gates(const kernels::Routing& r) {
  auto w = torch::zeros({r.num_tokens, r.num_experts}, r.gate.options());
  return w.index_put({r.token, r.expert}, r.gate.detach());
}

TEST(SelfRouting, HasNoRouterParametersAndNoController) {
  const auto o = sr_options(4, 8, 2, "last");
  auto policy = baselines::make_policy(16, o, 0.02);
  EXPECT_EQ(policy->parameters().size(), 0u);
  models::MoeLayer layer(16, o, policy, 0.02);
  int64_t n = 0;
  for (const auto& p : layer->parameters()) n += p.numel();
  EXPECT_EQ(n, 3 * 4 * 8 * 16);                    // G, U, D only
  EXPECT_EQ(layer->weights.gate_EIK.size(2), 16);  // full-rank gate: gate_in = x
  EXPECT_EQ(baselines::make_controller(o, 2), nullptr);
}

TEST(SelfRouting, CoordinatesOfEachSubspace) {
  using V = std::vector<int64_t>;
  EXPECT_EQ(self_routing_coordinates(8, 4, "last"), (V{4, 5, 6, 7}));
  EXPECT_EQ(self_routing_coordinates(8, 4, "first"), (V{0, 1, 2, 3}));
  EXPECT_EQ(self_routing_coordinates(8, 4, "strided"), (V{0, 2, 4, 6}));
  EXPECT_EQ(self_routing_coordinates(10, 4, "strided"), (V{0, 2, 5, 7}));  // floor(j·10/4)
  EXPECT_EQ(self_routing_coordinates(4, 4, "strided"), (V{0, 1, 2, 3}));
  EXPECT_THROW(self_routing_coordinates(8, 4, "middle"), std::invalid_argument);
  EXPECT_THROW(self_routing_coordinates(3, 4, "last"), std::invalid_argument);
}

TEST(SelfRouting, PicksTheDesignatedCoordinates) {
  // H = 8, E = 4, K = 2; x = [5, 0, 1, 0, 2, 3, 4, -1]:
  //   first   logits x[0..3]      = [5, 0, 1, 0]  -> experts {0, 2}, softmax(5, 1)
  //   last    logits x[4..7]      = [2, 3, 4, -1] -> experts {2, 1}, softmax(4, 3)
  //   strided logits x[0,2,4,6]   = [5, 1, 2, 4]  -> experts {0, 3}, softmax(5, 4)
  const auto x = torch::tensor({5.0f, 0.f, 1.f, 0.f, 2.f, 3.f, 4.f, -1.f}).view({1, 8});
  auto sig = [](double d) { return 1.0 / (1.0 + std::exp(-d)); };  // softmax(a, a − d)[0]
  struct Case {
    std::string subspace;
    int64_t hi, lo;
    double gap;
  };
  for (const auto& c :
       {Case{"first", 0, 2, 4.0}, Case{"last", 2, 1, 1.0}, Case{"strided", 0, 3, 1.0}}) {
    SelfRoutingPolicyImpl policy(8, sr_options(4, 4, 2, c.subspace));
    const auto out = models::decide(policy, x);
    auto expect = torch::zeros({1, 4});
    expect[0][c.hi] = sig(c.gap);
    expect[0][c.lo] = 1 - sig(c.gap);
    EXPECT_TRUE(torch::allclose(dense_gates(out.routing), expect, 1e-6, 1e-7))
        << c.subspace << ": " << dense_gates(out.routing);
    EXPECT_TRUE(torch::equal(out.active_NE, expect > 0)) << c.subspace;
    EXPECT_TRUE(out.gate_in.is_same(x)) << "full-rank experts take x itself";
    EXPECT_FALSE(out.gate_in_per_pair);
  }
}

TEST(SelfRouting, WeightsSumToOne) {
  torch::manual_seed(2);
  SelfRoutingPolicyImpl policy(32, sr_options(8, 4, 3, "strided"));
  const auto out = models::decide(policy, torch::randn({50, 32}));
  const auto sums = dense_gates(out.routing).sum(1);
  EXPECT_TRUE(torch::allclose(sums, torch::ones_like(sums), 1e-6, 1e-6));
  EXPECT_EQ(out.routing.num_pairs(), 50 * 3);
}

// Slow reference: one token at a time; logits read coordinate by coordinate, sorted by hand.
torch::Tensor slow_sr(const torch::Tensor& x, const torch::Tensor& G, const torch::Tensor& U,
                      const torch::Tensor& D, const std::vector<int64_t>& S, int64_t K) {
  const int64_t E = static_cast<int64_t>(S.size());
  std::vector<torch::Tensor> rows;
  for (int64_t n = 0; n < x.size(0); ++n) {
    std::vector<torch::Tensor> logit;
    for (int64_t e = 0; e < E; ++e) logit.push_back(x[n][S[e]]);
    const auto p = torch::softmax(torch::stack(logit), 0);
    std::vector<int64_t> order(E);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(),
              [&](int64_t a, int64_t b) { return p[a].item<double>() > p[b].item<double>(); });
    auto total = p[order[0]];
    for (int64_t j = 1; j < K; ++j) total = total + p[order[j]];
    auto y = torch::zeros({x.size(1)}, x.options());
    for (int64_t j = 0; j < K; ++j) {
      const int64_t e = order[j];
      y = y + p[e] / total *
                  torch::mv(D[e], torch::silu(torch::mv(G[e], x[n])) * torch::mv(U[e], x[n]));
    }
    rows.push_back(y);
  }
  return torch::stack(rows);
}

class SelfRoutingVsLoop : public ::testing::TestWithParam<std::string> {};

TEST_P(SelfRoutingVsLoop, OutputAndEveryGradientMatch) {
  const std::string subspace = GetParam();
  torch::manual_seed(11);
  const int64_t N = 17, H = 20, E = 6, I = 10, K = 2;
  const auto opts = sr_options(E, I, K, subspace);
  models::MoeLayer layer(H, opts, baselines::make_policy(H, opts, 0.02), 0.3);
  const auto x = torch::randn({N, H}).requires_grad_(true);
  const auto grad_y = torch::randn({N, H});
  const auto y = layer->forward(x, nullptr);
  (y * grad_y).sum().backward();

  auto d = [](const torch::Tensor& t) {
    return t.detach().to(torch::kDouble).requires_grad_(true);
  };
  auto xr = d(x), Gr = d(layer->weights.gate_EIK), Ur = d(layer->weights.up_EIH),
       Dr = d(layer->weights.down_EHI);
  const auto yr = slow_sr(xr, Gr, Ur, Dr, self_routing_coordinates(H, E, subspace), K);
  (yr * grad_y.to(torch::kDouble)).sum().backward();
  SCOPED_TRACE(subspace);
  const auto& close = moebench::testing::expect_close_to_reference;
  close(y.detach(), yr.detach(), "y");
  close(x.grad(), xr.grad(), "grad_x");
  close(layer->weights.gate_EIK.grad(), Gr.grad(), "grad_G");
  close(layer->weights.up_EIH.grad(), Ur.grad(), "grad_U");
  close(layer->weights.down_EHI.grad(), Dr.grad(), "grad_D");
}

INSTANTIATE_TEST_SUITE_P(Subspaces, SelfRoutingVsLoop,
                         ::testing::Values("last", "first", "strided"));

TEST(SelfRouting, GradientReachesXThroughTheLogits) {
  // The gates alone (Σ gate · c_pair): their gradient lives on the designated coordinates only.
  torch::manual_seed(4);
  const int64_t H = 12, E = 4;
  SelfRoutingPolicyImpl policy(H, sr_options(E, 4, 2, "strided"));  // S = {0, 3, 6, 9}
  const auto x = torch::randn({3, H}, torch::kDouble).requires_grad_(true);
  const auto out = models::decide(policy, x);
  const auto c = torch::arange(1, out.routing.num_pairs() + 1, torch::kDouble);
  (out.routing.gate * c).sum().backward();
  const auto g = x.grad().abs().sum(0);
  for (int64_t h = 0; h < H; ++h) {
    if (h % 3 == 0) {
      EXPECT_GT(g[h].item<double>(), 0.0) << "logit channel " << h;
    } else {
      EXPECT_EQ(g[h].item<double>(), 0.0) << "channel " << h << " is not a logit";
    }
  }
}

TEST(SelfRouting, DoublePrecisionFiniteDifferences) {
  torch::manual_seed(6);
  const int64_t N = 4, H = 8, E = 4, I = 3, K = 2;
  const auto opts = sr_options(E, I, K, "last");
  models::MoeLayer layer(H, opts, baselines::make_policy(H, opts, 0.02), 0.5);
  layer->to(torch::kDouble);
  const auto x = torch::randn({N, H}, torch::kDouble).requires_grad_(true);
  {
    // No near-tie between the K-th and (K+1)-th logit, or a nudge could swap the choice.
    const auto sorted = std::get<0>(x.detach().narrow(1, H - E, E).sort(-1, /*descending=*/true));
    ASSERT_GT((sorted.select(1, K - 1) - sorted.select(1, K)).min().item<double>(), 1e-3)
        << "near-tie in the logits: reseed";
  }
  auto f = [&] { return layer->forward(x, nullptr).pow(2).sum(); };
  f().backward();
  // Every entry of x: the logits are x's own coordinates, so each one matters.
  moebench::testing::expect_gradients_match_finite_differences(layer->parameters(), f);
  moebench::testing::expect_gradients_match_finite_differences({x}, f, /*samples=*/0);
}

}  // namespace
}  // namespace moebench::baselines

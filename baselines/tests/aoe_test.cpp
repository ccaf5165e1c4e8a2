// Autonomy-of-Experts (METHODS.md §5): hand-made norms pick the top-K and softmax over those K
// only, the parameter-matched width, a slow per-token loop in double, finite differences.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <numeric>

#include "baselines/aoe.h"
#include "baselines/registry.h"
#include "baselines/topk.h"
#include "models/tests/grad_check.h"

namespace moebench::baselines {
namespace {

models::MoeOptions aoe_options(int64_t E, int64_t I, int64_t r, int64_t k) {
  models::MoeOptions o;
  o.method = "aoe";
  o.experts = E;
  o.intermediate = I;
  o.rank = r;
  o.top_k = k;
  return o;
}

// Dense [N, E] view of a Routing's gates (0 where the pair is not computed).
torch::Tensor dense_gates(const kernels::Routing& r) {
  auto w = torch::zeros({r.num_tokens, r.num_experts}, r.gate.options());
  return w.index_put({r.token, r.expert}, r.gate.detach());
}

TEST(Aoe, PicksTheKLargestNormsAndSoftmaxesOverThemOnly) {
  // H = E = 4, r = 2: A_e's first row is c_e·(unit vector e), its second row is zero, so
  // ‖A_e x‖ = |c_e · x_e|: the norms are known by construction.
  const int64_t E = 4, H = 4, r = 2, K = 2;
  AoePolicyImpl policy(H, aoe_options(E, 8, r, K), 0.1);
  {
    torch::NoGradGuard g;
    policy.A_ErH.zero_();
    const double c[E] = {1.0, 1.0, -1.0, 0.5};
    for (int64_t e = 0; e < E; ++e) policy.A_ErH[e][0][e] = c[e];
  }
  // token 0: norms [1, 4, 2, 1.5] -> experts {1, 2}, weights softmax(4, 2)
  // token 1: norms [5, 1, 0.5, 3] -> experts {0, 3}, weights softmax(5, 3)
  const auto x = torch::tensor({1.0f, 4.f, -2.f, 3.f, -5.f, 1.f, 0.5f, 6.f}).view({2, H});
  const auto out = models::decide(policy, x);

  auto expect_w = torch::zeros({2, E});
  const double a = 1.0 / (1.0 + std::exp(-2.0));  // softmax(4, 2)[0] = softmax(5, 3)[0]
  expect_w[0][1] = a, expect_w[0][2] = 1 - a;
  expect_w[1][0] = a, expect_w[1][3] = 1 - a;
  EXPECT_TRUE(torch::allclose(dense_gates(out.routing), expect_w, 1e-6, 1e-7))
      << dense_gates(out.routing);
  EXPECT_TRUE(torch::equal(out.active_NE, expect_w > 0));
  EXPECT_EQ(out.routing.num_pairs(), 2 * K);
  EXPECT_FALSE(out.active_NE.requires_grad());
  // Gate input: z per (token, expert) pair, row n·E + e.
  EXPECT_TRUE(out.gate_in_per_pair);
  ASSERT_EQ(out.gate_in.sizes(), (std::vector<int64_t>{2 * E, r}));
  EXPECT_FLOAT_EQ(out.gate_in[0 * E + 1][0].item<float>(), 4.f);
  EXPECT_FLOAT_EQ(out.gate_in[1 * E + 2][0].item<float>(), -0.5f);
  // scores: softmax over all E norms (the aux loss's P).
  const auto norms = torch::tensor({1.0f, 4.f, 2.f, 1.5f, 5.f, 1.f, 0.5f, 3.f}).view({2, E});
  EXPECT_TRUE(torch::allclose(out.scores_NE, torch::softmax(norms, -1), 1e-6, 1e-7));
}

TEST(Aoe, WideIntermediateMatchesTopKParameters) {
  EXPECT_EQ(aoe_wide_intermediate(768, 3072, 256), 3840);  // exact: 6881280 / 1792
  // H = 16, I = 8, r = 4: (384 − 64) / 36 = 8.89, rounded down to 8.
  EXPECT_EQ(aoe_wide_intermediate(16, 8, 4), 8);
  // Rounding down never exceeds the top-k expert's 3·H·I; one more column would.
  const int64_t H = 16, I = 8, r = 4, d = aoe_wide_intermediate(H, I, r);
  EXPECT_LE(r * H + d * (r + 2 * H), 3 * H * I);
  EXPECT_GT(r * H + (d + 1) * (r + 2 * H), 3 * H * I);
  EXPECT_THROW(aoe_wide_intermediate(16, 8, 24), std::invalid_argument);  // r >= 3·I
}

TEST(Aoe, ControllerOnlyForThePaperVariant) {
  auto o = aoe_options(4, 8, 2, 2);
  EXPECT_EQ(baselines::make_controller(o, 2), nullptr);  // rf_paper: no aux loss
  o.params.set("aoe_variant", "aoe_paper");
  o.params.set("aux_coef", 0.01);
  auto ctl = baselines::make_controller(o, 2);
  ASSERT_NE(ctl, nullptr);
  // Two layers, two tokens each; loss = Σ_layers α·E·Σ f_e P_e, each layer over its own 2 rows
  // (the AoE code computes the aux loss per layer; pooling the 4 rows gives another number).
  torch::manual_seed(1);
  AoePolicyImpl p(6, o, 0.5);
  const auto x1 = torch::randn({2, 6}), x2 = torch::randn({2, 6});
  const auto l1 = models::decide(p, x1), l2 = models::decide(p, x2);
  auto layer_term = [](const models::PolicyOutput& l) {
    const auto P = l.scores_NE.detach();
    const auto F = l.active_NE.to(torch::kFloat);
    double sum = 0;
    for (int64_t e = 0; e < 4; ++e) {
      sum += F.select(1, e).mean().item<double>() * P.select(1, e).mean().item<double>();
    }
    return 0.01 * 4 * sum;
  };
  const double expect = layer_term(l1) + layer_term(l2);
  EXPECT_NEAR(ctl->loss({l1, l2}, {}, true).item<double>(), expect, 1e-7);
  EXPECT_DOUBLE_EQ(ctl->metrics().at("density"), 0.5);  // K / E
  o.params.set("aoe_variant", "bogus");
  EXPECT_THROW(baselines::make_controller(o, 2), std::invalid_argument);
}

// Slow reference: one token at a time; norms of every expert, sort, softmax over the K best.
torch::Tensor slow_aoe(const torch::Tensor& x, const torch::Tensor& A, const torch::Tensor& B,
                       const torch::Tensor& U, const torch::Tensor& D, int64_t K,
                       torch::Tensor* chosen_NE) {
  const int64_t N = x.size(0), E = A.size(0);
  *chosen_NE = torch::zeros({N, E}, torch::kBool);
  std::vector<torch::Tensor> rows;
  for (int64_t n = 0; n < N; ++n) {
    std::vector<torch::Tensor> z(E);
    std::vector<double> s(E);
    for (int64_t e = 0; e < E; ++e) {
      z[e] = torch::mv(A[e], x[n]);
      s[e] = z[e].norm().item<double>();
    }
    std::vector<int64_t> order(E);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return s[a] > s[b]; });
    std::vector<torch::Tensor> top;
    for (int64_t j = 0; j < K; ++j) top.push_back(z[order[j]].norm());
    const auto w = torch::softmax(torch::stack(top), 0);
    auto y = torch::zeros({x.size(1)}, x.options());
    for (int64_t j = 0; j < K; ++j) {
      const int64_t e = order[j];
      (*chosen_NE)[n][e] = true;
      y = y + w[j] * torch::mv(D[e], torch::silu(torch::mv(B[e], z[e])) * torch::mv(U[e], x[n]));
    }
    rows.push_back(y);
  }
  return torch::stack(rows);
}

struct AoeCase {
  int64_t N, H, E, I, r, K;
};

class AoeVsLoop : public ::testing::TestWithParam<AoeCase> {};

TEST_P(AoeVsLoop, OutputAndEveryGradientMatch) {
  const auto c = GetParam();
  torch::manual_seed(c.N * 17 + c.H);
  const auto opts = aoe_options(c.E, c.I, c.r, c.K);
  models::MoeLayer layer(c.H, opts, baselines::make_policy(c.H, opts, 0.3), 0.3);
  auto* aoe = dynamic_cast<AoePolicyImpl*>(layer->policy.get());
  ASSERT_NE(aoe, nullptr);
  const auto x = torch::randn({c.N, c.H}).requires_grad_(true);
  const auto grad_y = torch::randn({c.N, c.H});
  std::vector<models::PolicyOutput> routing;
  const auto y = layer->forward(x, &routing);
  (y * grad_y).sum().backward();

  auto d = [](const torch::Tensor& t) {
    return t.detach().to(torch::kDouble).requires_grad_(true);
  };
  auto xr = d(x), Ar = d(aoe->A_ErH), Br = d(layer->weights.gate_EIK),
       Ur = d(layer->weights.up_EIH), Dr = d(layer->weights.down_EHI);
  torch::Tensor chosen;
  const auto yr = slow_aoe(xr, Ar, Br, Ur, Dr, c.K, &chosen);
  (yr * grad_y.to(torch::kDouble)).sum().backward();

  EXPECT_TRUE(torch::equal(routing[0].active_NE, chosen));
  EXPECT_EQ(routing[0].routing.num_pairs(), c.N * c.K);
  const auto& close = moebench::testing::expect_close_to_reference;
  close(y.detach(), yr.detach(), "y");
  close(x.grad(), xr.grad(), "grad_x");
  close(aoe->A_ErH.grad(), Ar.grad(), "grad_A");
  close(layer->weights.gate_EIK.grad(), Br.grad(), "grad_B");
  close(layer->weights.up_EIH.grad(), Ur.grad(), "grad_U");
  close(layer->weights.down_EHI.grad(), Dr.grad(), "grad_D");
}

INSTANTIATE_TEST_SUITE_P(Shapes, AoeVsLoop,
                         ::testing::Values(AoeCase{1, 16, 4, 8, 2, 1}, AoeCase{9, 24, 6, 12, 3, 2},
                                           AoeCase{33, 64, 8, 20, 5, 3}));

TEST(Aoe, DoublePrecisionFiniteDifferences) {
  torch::manual_seed(7);
  const int64_t N = 5, H = 6, E = 4, I = 4, r = 2, K = 2;
  const auto opts = aoe_options(E, I, r, K);
  models::MoeLayer layer(H, opts, baselines::make_policy(H, opts, 0.6), 0.5);
  layer->to(torch::kDouble);
  auto* aoe = dynamic_cast<AoePolicyImpl*>(layer->policy.get());
  const auto x = torch::randn({N, H}, torch::kDouble).requires_grad_(true);
  auto f = [&] { return layer->forward(x, nullptr).pow(2).sum(); };
  {
    // No near-tie between the K-th and (K+1)-th norm, or a nudge could swap the choice.
    torch::NoGradGuard g;
    const auto z = torch::linear(x, aoe->A_ErH.reshape({E * r, H})).view({N, E, r});
    const auto sorted = std::get<0>(z.norm(2, -1).sort(-1, /*descending=*/true));
    ASSERT_GT((sorted.select(1, K - 1) - sorted.select(1, K)).min().item<double>(), 1e-3)
        << "near-tie in the norms: reseed";
  }
  layer->zero_grad();
  f().backward();
  std::vector<torch::Tensor> all = layer->parameters();
  all.push_back(x);
  moebench::testing::expect_gradients_match_finite_differences(all, f);
}

}  // namespace
}  // namespace moebench::baselines

// ReMoE baseline (METHODS.md §4) against hand cases (λ schedules of both variants, L_reg,
// tokens with no expert), a slow per-token loop and double-precision finite differences.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "baselines/registry.h"
#include "baselines/remoe.h"
#include "models/tests/grad_check.h"

namespace moebench::baselines {
namespace {

using models::MoeLayer;
using models::MoeOptions;
using models::PolicyOutput;

MoeOptions remoe_options(int64_t E, int64_t I) {
  MoeOptions o;
  o.method = "remoe";
  o.experts = E;
  o.intermediate = I;
  return o;
}

ReMoEPolicyImpl& policy_of(MoeLayer& layer) {
  auto* p = dynamic_cast<ReMoEPolicyImpl*>(layer->policy.get());
  EXPECT_NE(p, nullptr);
  return *p;
}

// One layer's routing decision from a hand-made R (what the controller reads).
PolicyOutput with_R(const torch::Tensor& R) {
  PolicyOutput p;
  p.scores_NE = R;
  p.active_NE = R > 0;
  return p;
}

// Slow reference: one token and one expert at a time, in double.
torch::Tensor slow_remoe(const torch::Tensor& x, const torch::Tensor& Wr, const torch::Tensor& G,
                         const torch::Tensor& U, const torch::Tensor& D, int64_t* active_pairs) {
  std::vector<torch::Tensor> rows;
  *active_pairs = 0;
  for (int64_t n = 0; n < x.size(0); ++n) {
    auto y = torch::zeros({x.size(1)}, x.options());
    for (int64_t e = 0; e < Wr.size(0); ++e) {
      const auto r = torch::relu(torch::dot(Wr[e], x[n]));
      if (r.item<double>() > 0) {
        ++*active_pairs;
        y = y + r * torch::mv(D[e], torch::silu(torch::mv(G[e], x[n])) * torch::mv(U[e], x[n]));
      }
    }
    rows.push_back(y);
  }
  return torch::stack(rows);
}

TEST(ReMoEController, NextLambdaMultipliesBelowTargetDividesAtOrAbove) {
  EXPECT_FLOAT_EQ(ReMoEBalance::next_lambda(1e-8f, 0.5, 0.75, 1.2), 1e-8f * 1.2f);
  EXPECT_FLOAT_EQ(ReMoEBalance::next_lambda(1e-8f, 0.9, 0.75, 1.2), 1e-8f / 1.2f);
  EXPECT_FLOAT_EQ(ReMoEBalance::next_lambda(1e-8f, 0.75, 0.75, 1.2), 1e-8f / 1.2f);  // equality
}

TEST(ReMoEController, OriginalUpdatesOncePerOptimizerStepOnAveragedSparsity) {
  auto o = remoe_options(4, 2);
  o.top_k = 1;  // target sparsity 1 − 1/4 = 0.75
  o.params.set("remoe_lambda0", 0.5);
  o.params.set("remoe_alpha", 2.0);
  ReMoEBalance bal(o);
  EXPECT_FALSE(bal.rf_paper());
  EXPECT_FLOAT_EQ(bal.lambda(), 0.5f);
  // Two tokens x four experts. dense: 6 of 8 active (S = .25); sparse: 1 of 8 (S = .875).
  const auto dense = with_R(torch::tensor({1.f, 2.f, 0.f, 1.f, 1.f, 0.f, 3.f, 1.f}).view({2, 4}));
  const auto sparse = with_R(torch::tensor({0.f, 0.f, 0.f, 0.f, 0.f, 2.f, 0.f, 0.f}).view({2, 4}));
  const auto exact = with_R(torch::tensor({1.f, 0.f, 0.f, 0.f, 0.f, 2.f, 0.f, 0.f}).view({2, 4}));

  // Micro-batches only accumulate; the loss uses the current λ.
  const auto l1 = bal.loss({dense}, {}, true);
  EXPECT_FLOAT_EQ(bal.lambda(), 0.5f);
  EXPECT_NEAR(l1.item<double>(),
              0.5 * remoe_load_weighted_l1(dense.scores_NE, dense.active_NE, 1).item<double>(),
              1e-6);
  EXPECT_DOUBLE_EQ(bal.metrics().at("density"), 0.75);
  bal.loss({sparse}, {}, true);
  bal.loss({exact}, {}, /*training=*/false);  // evaluation does not count
  // Mean S over the step = (.25 + .875) / 2 = .5625 < .75: too dense, λ grows.
  bal.after_optimizer_step();
  EXPECT_FLOAT_EQ(bal.lambda(), 1.0f);
  // Mean S = .875 > .75: λ shrinks.
  bal.loss({sparse}, {}, true);
  bal.after_optimizer_step();
  EXPECT_FLOAT_EQ(bal.lambda(), 0.5f);
  // S = .75 exactly (layers averaged: both layers at 2 of 8): divide at equality too.
  bal.loss({exact, exact}, {}, true);
  bal.after_optimizer_step();
  EXPECT_FLOAT_EQ(bal.lambda(), 0.25f);
  // No training forward since the last step: λ stays.
  bal.after_optimizer_step();
  EXPECT_FLOAT_EQ(bal.lambda(), 0.25f);
  // Padding rows are left out: masking token 1 of `dense` leaves 3 of 4 active.
  bal.loss({dense}, torch::tensor({1, 0}), false);
  EXPECT_DOUBLE_EQ(bal.metrics().at("density"), 0.75);
  bal.loss({sparse}, torch::tensor({1, 0}), false);
  EXPECT_DOUBLE_EQ(bal.metrics().at("density"), 0.0);

  // state() carries λ and a half-done accumulation through a checkpoint.
  bal.loss({dense}, {}, true);
  ReMoEBalance resumed(o);
  resumed.load_state(bal.state());
  EXPECT_FLOAT_EQ(resumed.lambda(), 0.25f);
  resumed.after_optimizer_step();
  bal.after_optimizer_step();
  EXPECT_FLOAT_EQ(resumed.lambda(), bal.lambda());
  EXPECT_FLOAT_EQ(resumed.lambda(), 0.5f);  // S = .25 < .75
}

TEST(ReMoEController, LoadWeightedL1ByHand) {
  // R = [[1, 0, 2], [0, 0, 3]], k = 1: counts [1, 0, 2], f = 3/(1·2)·counts = [1.5, 0, 3];
  // Σ f_e R = 1.5·1 + 3·(2 + 3) = 16.5; / N = 8.25.
  const auto R = torch::tensor({1.0, 0.0, 2.0, 0.0, 0.0, 3.0}, torch::kDouble).view({2, 3});
  EXPECT_NEAR(remoe_load_weighted_l1(R, R > 0, 1).item<double>(), 8.25, 1e-12);
  // k = 3 divides f by 3.
  EXPECT_NEAR(remoe_load_weighted_l1(R, R > 0, 3).item<double>(), 8.25 / 3, 1e-12);
  // f carries no gradient: d/dR = f / N.
  const auto Rg = R.clone().requires_grad_(true);
  remoe_load_weighted_l1(Rg, Rg.detach() > 0, 1).backward();
  const auto expect = torch::tensor({1.5, 0.0, 3.0}, torch::kDouble).repeat({2, 1}) / 2.0;
  EXPECT_TRUE(torch::allclose(Rg.grad(), expect));
  // Summed over layers in the controller.
  auto o = remoe_options(3, 2);
  o.top_k = 1;
  o.params.set("remoe_lambda0", 0.5);
  ReMoEBalance bal(o);
  EXPECT_NEAR(bal.loss({with_R(R), with_R(R)}, {}, false).item<double>(), 0.5 * 16.5, 1e-6);
}

TEST(ReMoEController, RfPaperVariantHandCase) {
  auto o = remoe_options(4, 2);
  o.params.set("remoe_variant", "rf_paper");  // λ₀ = .01, η = .1, ρ* = .25
  // One update per training forward here (the cadence has its own test: lambda_cadence_test).
  o.params.set("lambda_updates", int64_t{0});
  ReMoEBalance bal(o);
  EXPECT_TRUE(bal.rf_paper());
  EXPECT_FLOAT_EQ(bal.lambda(), 0.01f);
  // density 4/8 = .5 > .25: the loss uses λ = .01 on the plain sum 1+2+3+4 = 10, then λ·1.1.
  const auto busy = with_R(torch::tensor({1.f, 2.f, 0.f, 0.f, 3.f, 0.f, 4.f, 0.f}).view({2, 4}));
  EXPECT_NEAR(bal.loss({busy}, {}, true).item<double>(), 0.01 * 10.0, 1e-7);
  EXPECT_FLOAT_EQ(bal.lambda(), 0.01f * 1.1f);
  bal.after_optimizer_step();  // the optimizer step does not move λ in this variant
  EXPECT_FLOAT_EQ(bal.lambda(), 0.01f * 1.1f);
  // density 1/8 < .25: λ/1.1; density exactly .25: unchanged.
  const auto idle = with_R(torch::tensor({0.f, 0.f, 0.f, 0.f, 0.f, 2.f, 0.f, 0.f}).view({2, 4}));
  bal.loss({idle}, {}, true);
  EXPECT_NEAR(bal.lambda(), 0.01, 1e-8);
  const auto even = with_R(torch::tensor({1.f, 0.f, 0.f, 0.f, 0.f, 2.f, 0.f, 0.f}).view({2, 4}));
  const float before = bal.lambda();
  bal.loss({even}, {}, true);
  EXPECT_FLOAT_EQ(bal.lambda(), before);
  bal.loss({busy}, {}, false);  // evaluation never moves λ
  EXPECT_FLOAT_EQ(bal.lambda(), before);
  // Capped at 1.
  bal.load_state({{"lambda", 0.95}});
  bal.loss({busy}, {}, true);
  EXPECT_FLOAT_EQ(bal.lambda(), 1.0f);
}

TEST(ReMoE, TokensWithNoActiveExpertGetZero) {
  const int64_t H = 4, E = 3, I = 5;
  auto o = remoe_options(E, I);
  torch::manual_seed(4);
  MoeLayer layer(H, o, baselines::make_policy(H, o, 0.5), 0.5);
  {
    torch::NoGradGuard g;
    policy_of(layer).router_EH.copy_(torch::tensor({1.f, 0.f, 0.f, 0.f,   //
                                                    0.f, 1.f, 0.f, 0.f,   //
                                                    0.f, 0.f, 1.f, 0.f})  //
                                         .view({E, H}));
  }
  // Token 0 has every router logit ≤ 0; token 1 activates experts 0 and 2.
  const auto x = torch::tensor({-1.f, -2.f, -0.5f, 3.f, 2.f, -1.f, 0.5f, 1.f})
                     .reshape({2, H})
                     .clone()
                     .requires_grad_(true);
  std::vector<PolicyOutput> out;
  const auto y = layer->forward(x, &out);
  EXPECT_EQ(out[0].active_NE[0].sum().item<int64_t>(), 0);
  EXPECT_EQ(out[0].active_NE[1].sum().item<int64_t>(), 2);
  EXPECT_EQ(y[0].abs().max().item<double>(), 0.0);
  EXPECT_GT(y[1].abs().max().item<double>(), 0.0);
  y.sum().backward();
  EXPECT_EQ(x.grad()[0].abs().max().item<double>(), 0.0);
  EXPECT_EQ(layer->weights.up_EIH.grad()[1].abs().max().item<double>(), 0.0);  // never active
}

struct ReCase {
  int64_t N, H, E, I;
};

class ReMoEVsLoop : public ::testing::TestWithParam<ReCase> {};

TEST_P(ReMoEVsLoop, OutputAndEveryGradientMatch) {
  const auto c = GetParam();
  torch::manual_seed(c.N * 13 + c.H);
  auto o = remoe_options(c.E, c.I);
  MoeLayer layer(c.H, o, baselines::make_policy(c.H, o, 1.0 / std::sqrt(double(c.H))), 0.3);
  auto& re = policy_of(layer);
  const auto x = torch::randn({c.N, c.H}).requires_grad_(true);
  const auto grad_y = torch::randn({c.N, c.H});
  std::vector<PolicyOutput> out;
  const auto y = layer->forward(x, &out);
  (y * grad_y).sum().backward();

  auto d = [](const torch::Tensor& t) {
    return t.detach().to(torch::kDouble).requires_grad_(true);
  };
  auto xr = d(x), Wr = d(re.router_EH), Gr = d(layer->weights.gate_EIK),
       Ur = d(layer->weights.up_EIH), Dr = d(layer->weights.down_EHI);
  int64_t active = 0;
  const auto yr = slow_remoe(xr, Wr, Gr, Ur, Dr, &active);
  (yr * grad_y.to(torch::kDouble)).sum().backward();
  EXPECT_GT(active, 0);
  if (c.N > 1) {
    EXPECT_LT(active, c.N * c.E);
  }
  EXPECT_EQ(out[0].routing.num_pairs(), active);
  const auto& close = moebench::testing::expect_close_to_reference;
  close(y.detach(), yr.detach(), "y");
  close(x.grad(), xr.grad(), "grad_x");
  close(re.router_EH.grad(), Wr.grad(), "grad_router");
  close(layer->weights.gate_EIK.grad(), Gr.grad(), "grad_G");
  close(layer->weights.up_EIH.grad(), Ur.grad(), "grad_U");
  close(layer->weights.down_EHI.grad(), Dr.grad(), "grad_D");
}

INSTANTIATE_TEST_SUITE_P(Shapes, ReMoEVsLoop,
                         ::testing::Values(ReCase{1, 16, 3, 8}, ReCase{7, 24, 4, 12},
                                           ReCase{33, 100, 5, 20}));

TEST(ReMoE, DoublePrecisionFiniteDifferences) {
  torch::manual_seed(6);
  const int64_t N = 6, H = 6, E = 3, I = 4;
  auto o = remoe_options(E, I);
  o.top_k = 1;
  MoeLayer layer(H, o, baselines::make_policy(H, o, 0.6), 0.5);
  layer->to(torch::kDouble);
  auto& re = policy_of(layer);
  const auto x = torch::randn({N, H}, torch::kDouble);
  ReMoEBalance bal(o);
  bal.load_state({{"lambda", 0.3}});
  // Layer output plus the regulariser, so L_reg's gradient is checked too.
  auto f = [&] {
    std::vector<PolicyOutput> out;
    const auto y = layer->forward(x, &out);
    return y.pow(2).sum() + bal.loss(out, {}, /*training=*/false);
  };
  const auto logits = torch::linear(x, re.router_EH);
  ASSERT_GT(logits.abs().min().item<double>(), 1e-3) << "a router logit sits on the ReLU kink";
  ASSERT_GT(logits.gt(0).sum().item<int64_t>(), 0);
  ASSERT_GT(logits.le(0).sum().item<int64_t>(), 0);
  layer->zero_grad();
  f().backward();
  moebench::testing::expect_gradients_match_finite_differences(layer->parameters(), f);
}

TEST(ReMoE, FactoryBuildsPolicyAndController) {
  auto o = remoe_options(4, 8);
  EXPECT_NE(dynamic_cast<ReMoEPolicyImpl*>(baselines::make_policy(16, o, 0.02).get()), nullptr);
  auto ctl = baselines::make_controller(o, 2);
  EXPECT_NE(dynamic_cast<ReMoEBalance*>(ctl.get()), nullptr);
}

}  // namespace
}  // namespace moebench::baselines

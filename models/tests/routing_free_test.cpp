// Routing-Free layer against a slow per-token, per-expert loop (values and gradients), a
// double-precision finite-difference check, hand-computed balancing terms and the λ controller.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "baselines/registry.h"
#include "models/lambda_rule.h"
#include "models/routing_free.h"
#include "models/tests/grad_check.h"
#include "models/transformer.h"

namespace moebench::models {
namespace {

MoeOptions rf_options(int64_t E, int64_t I, int64_t r) {
  MoeOptions o;
  o.method = "routing_free";
  o.experts = E;
  o.intermediate = I;
  o.rank = r;
  return o;
}

// Slow reference: one token and one expert at a time, in double, autograd through plain ops.
torch::Tensor slow_rf(const torch::Tensor& x, const torch::Tensor& A, const torch::Tensor& B,
                      const torch::Tensor& U, const torch::Tensor& D, const torch::Tensor& gamma,
                      const torch::Tensor& bias, double theta, int64_t* active_pairs) {
  std::vector<torch::Tensor> rows;
  *active_pairs = 0;
  for (int64_t n = 0; n < x.size(0); ++n) {
    auto y = torch::zeros({x.size(1)}, x.options());
    for (int64_t e = 0; e < A.size(0); ++e) {
      const auto z = torch::mv(A[e], x[n]);
      const auto s = gamma[e] * z.norm() - bias[e];
      if (s.item<double>() >= theta) {
        ++*active_pairs;
        y = y + s * torch::mv(D[e], torch::silu(torch::mv(B[e], z)) * torch::mv(U[e], x[n]));
      }
    }
    rows.push_back(y);
  }
  return torch::stack(rows);
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

struct RfCase {
  int64_t N, H, E, I, r;
};

class RoutingFreeVsLoop : public ::testing::TestWithParam<RfCase> {};

TEST_P(RoutingFreeVsLoop, OutputAndEveryGradientMatch) {
  const auto c = GetParam();
  torch::manual_seed(c.N * 31 + c.H);
  // init_std chosen so that ‖Ax‖ straddles θ = 1: some pairs active, some not.
  const double init_std = 1.2 / std::sqrt(static_cast<double>(c.H * c.r));
  MoeLayer layer(c.H, rf_options(c.E, c.I, c.r),
                 baselines::make_policy(c.H, rf_options(c.E, c.I, c.r), init_std), 0.3);
  auto* rf = dynamic_cast<RoutingFreePolicyImpl*>(layer->policy.get());
  ASSERT_NE(rf, nullptr);
  {
    torch::NoGradGuard g;
    rf->gamma_E.uniform_(0.8, 1.6);
    rf->bias_E.uniform_(-0.2, 0.2);
    rf->gamma_E[0] = 20.0;         // expert 0 is active for every token
    rf->bias_E[c.E - 1] = 1000.0;  // the last expert never is
  }
  const auto x = torch::randn({c.N, c.H}).requires_grad_(true);
  const auto grad_y = torch::randn({c.N, c.H});
  std::vector<PolicyOutput> routing;
  const auto y = layer->forward(x, &routing);
  (y * grad_y).sum().backward();

  // Reference on double copies of the same weights.
  auto d = [](const torch::Tensor& t) {
    return t.detach().to(torch::kDouble).requires_grad_(true);
  };
  auto xr = d(x), Ar = d(rf->A_ErH), Br = d(layer->weights.gate_EIK), Ur = d(layer->weights.up_EIH),
       Dr = d(layer->weights.down_EHI), gr = d(rf->gamma_E), br = d(rf->bias_E);
  int64_t active = 0;
  const auto yr = slow_rf(xr, Ar, Br, Ur, Dr, gr, br, 1.0, &active);
  (yr * grad_y.to(torch::kDouble)).sum().backward();

  EXPECT_GT(active, 0) << "test needs some active pairs";
  EXPECT_LT(active, c.N * c.E) << "test needs some inactive pairs";
  EXPECT_EQ(routing[0].routing.num_pairs(), active);
  const auto& close = moebench::testing::expect_close_to_reference;
  close(y.detach(), yr.detach(), "y");
  close(x.grad(), xr.grad(), "grad_x");
  close(rf->A_ErH.grad(), Ar.grad(), "grad_A");
  close(layer->weights.gate_EIK.grad(), Br.grad(), "grad_B");
  close(layer->weights.up_EIH.grad(), Ur.grad(), "grad_U");
  close(layer->weights.down_EHI.grad(), Dr.grad(), "grad_D");
  close(rf->gamma_E.grad(), gr.grad(), "grad_gamma");
  close(rf->bias_E.grad(), br.grad(), "grad_bias");
}

INSTANTIATE_TEST_SUITE_P(Shapes, RoutingFreeVsLoop,
                         ::testing::Values(RfCase{1, 16, 3, 8, 2}, RfCase{7, 24, 4, 12, 3},
                                           RfCase{33, 100, 5, 20, 5}));

TEST(RoutingFree, MaskCarriesNoGradientAndInactiveExpertsGetNone) {
  torch::manual_seed(3);
  const int64_t H = 16, E = 3, I = 8, r = 2;
  auto opts = rf_options(E, I, r);
  MoeLayer layer(H, opts, baselines::make_policy(H, opts, 0.5), 0.3);
  auto* rf = dynamic_cast<RoutingFreePolicyImpl*>(layer->policy.get());
  {
    torch::NoGradGuard g;
    rf->bias_E[1] = 1e6;  // expert 1 can never reach θ
  }
  const auto x = torch::randn({20, H});
  std::vector<PolicyOutput> routing;
  auto y = layer->forward(x, &routing);
  EXPECT_FALSE(routing[0].active_NE.requires_grad());
  EXPECT_EQ(routing[0].active_NE.select(1, 1).sum().item<int64_t>(), 0);
  UnifiedBalance bal(opts, 1);
  bal.load_state({{"lambda", 0.5}});
  (y.sum() + bal.loss(routing, {}, true)).backward();
  for (const auto& [name, g] : {std::pair<const char*, torch::Tensor>{"A", rf->A_ErH.grad()[1]},
                                {"gamma", rf->gamma_E.grad()[1]},
                                {"bias", rf->bias_E.grad()[1]},
                                {"B", layer->weights.gate_EIK.grad()[1]},
                                {"U", layer->weights.up_EIH.grad()[1]},
                                {"D", layer->weights.down_EHI.grad()[1]}}) {
    EXPECT_EQ(g.abs().sum().item<double>(), 0.0) << name << " of the inactive expert";
  }
  EXPECT_GT(rf->A_ErH.grad()[0].abs().sum().item<double>(), 0.0);
}

TEST(RoutingFree, DoublePrecisionFiniteDifferences) {
  torch::manual_seed(5);
  const int64_t N = 5, H = 6, E = 3, I = 4, r = 2;
  auto opts = rf_options(E, I, r);
  MoeLayer layer(H, opts, baselines::make_policy(H, opts, 0.6), 0.5);
  layer->to(torch::kDouble);  // set_data in place: the layer's tensor handles stay valid
  auto* rf = dynamic_cast<RoutingFreePolicyImpl*>(layer->policy.get());
  const auto x = torch::randn({N, H}, torch::kDouble);
  auto f = [&] { return layer->forward(x, nullptr).pow(2).sum(); };
  const auto s = decide(*rf, x).scores_NE;
  ASSERT_GT((s - 1.0).abs().min().item<double>(), 1e-3) << "a score sits on θ: reseed";
  ASSERT_GT(s.ge(1.0).sum().item<int64_t>(), 0);
  layer->zero_grad();
  f().backward();
  moebench::testing::expect_gradients_match_finite_differences(layer->parameters(), f);
}

TEST(UnifiedBalanceTerms, HandComputed) {
  // Two tokens, three columns (e.g. 1 layer x 3 experts).
  // P = [[2, 0, 1], [0, 0, 3]], M = [[1, 0, 1], [0, 0, 1]]
  const auto P = torch::tensor({2.0f, 0.f, 1.f, 0.f, 0.f, 3.f}).view({2, 3});
  const auto M = torch::tensor({1.0f, 0.f, 1.f, 0.f, 0.f, 1.f}).view({2, 3});
  // f = [.5, 0, 1], p = [1, 0, 2]: L_EB = (.5 + 0 + 2) / 3 = 5/6
  // g = [2/3, 1/3], q = [1, 1]:     L_TB = (2/3 + 1/3) / 2 = 1/2
  auto [eb, tb] = unified_balance_terms(P, M);
  EXPECT_NEAR(eb.item<double>(), 5.0 / 6.0, 1e-6);
  EXPECT_NEAR(tb.item<double>(), 0.5, 1e-6);
}

TEST(UnifiedBalanceController, SignClampAndOldLambda) {
  EXPECT_FLOAT_EQ(multiplicative_lambda_step(0.5f, 0.25, 0.25, 0.02, false), 0.5f);  // sign(0)
  EXPECT_FLOAT_EQ(multiplicative_lambda_step(0.5f, 0.30, 0.25, 0.02, false), 0.5f * 1.02f);
  EXPECT_FLOAT_EQ(multiplicative_lambda_step(0.5f, 0.20, 0.25, 0.02, false), 0.5f / 1.02f);
  EXPECT_FLOAT_EQ(multiplicative_lambda_step(0.999f, 0.9, 0.25, 0.02, false), 1.0f);  // clamp
  EXPECT_FLOAT_EQ(multiplicative_lambda_step(1.0f, 0.9, 0.25, 0.02, false), 1.0f);

  // The loss of a forward uses the λ from before that forward's update.
  MoeOptions o = rf_options(2, 4, 1);
  o.params.set("lambda0", 0.1);
  o.params.set("lambda_updates", int64_t{0});  // one update per forward (the cadence test: below)
  UnifiedBalance bal(o, 1);
  PolicyOutput p;
  p.scores_NE = torch::tensor({2.0f, 0.5f, 3.0f, 1.5f}).view({2, 2});
  p.active_NE = p.scores_NE >= 1.0;  // density 3/4 > ρ* → λ grows after this forward
  // P = [[2,0],[3,1.5]], M = [[1,0],[1,1]]: f=[1,.5], p=[2.5,.75] -> L_EB=(2.5+.375)/2=1.4375
  // g=[.5,1], q=[1,2.25] -> L_TB=(.5+2.25)/2=1.375; L_reg = .5*1.4375+.5*1.375 = 1.40625
  const auto loss = bal.loss({p}, {}, /*training=*/true);
  EXPECT_NEAR(loss.item<double>(), 0.1 * 1.40625, 1e-6);
  EXPECT_FLOAT_EQ(bal.lambda(), 0.1f * 1.02f);
  bal.loss({p}, {}, /*training=*/false);  // evaluation never moves λ
  EXPECT_FLOAT_EQ(bal.lambda(), 0.1f * 1.02f);
  // Padding rows are excluded by default: masking token 1 leaves density 1/2.
  bal.loss({p}, torch::tensor({1, 0}), true);
  EXPECT_DOUBLE_EQ(bal.metrics().at("density"), 0.5);
}

TEST(RoutingFree, AlwaysActiveSingleExpertEqualsDenseSwiGlu) {
  torch::manual_seed(9);
  ModelOptions o;
  o.vocab_size = 50, o.hidden = 32, o.layers = 2, o.q_heads = 4, o.kv_heads = 2, o.head_dim = 8;
  o.max_seq_len = 16, o.attn_dropout = 0.0;
  o.moe = rf_options(/*E=*/1, /*I=*/24, /*r=*/6);
  o.moe.params.set("gamma_init",
                   0.0);  // s = 0·‖z‖ − (−1) = 1 ≥ θ = 1: always active, weight exactly 1
  o.moe.params.set("bias_init", -1.0);
  o.make_policy = routing_free_method().make_policy;
  Transformer moe(o);
  ModelOptions od = o;
  od.make_policy = nullptr;  // the dense FFN
  od.dense_intermediate = 24;
  Transformer dense(od);
  {
    torch::NoGradGuard g;
    auto src = moe->named_parameters();
    for (auto& p : dense->named_parameters()) {
      const std::string k = p.key();
      if (k.find(".dense.") == std::string::npos) {
        p.value().copy_(src[k]);
        continue;
      }
      const std::string blk = k.substr(0, k.find(".dense."));
      const auto& mw = moe->named_parameters();
      if (ends_with(k, "w_gate")) {  // dense gate = B · A
        p.value().copy_(torch::mm(mw[blk + ".moe.w_gate"][0], mw[blk + ".moe.policy.A"][0]));
      } else if (ends_with(k, "w_up")) {
        p.value().copy_(mw[blk + ".moe.w_up"][0]);
      } else {
        p.value().copy_(mw[blk + ".moe.w_down"][0]);
      }
    }
  }
  const auto ids = torch::randint(0, 50, {3, 16});
  const auto a = moe->forward(ids).logits, b = dense->forward(ids).logits;
  EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-5)) << (a - b).abs().max().item<double>();
}

}  // namespace
}  // namespace moebench::models

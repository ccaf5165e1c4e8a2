// Switch baseline (METHODS.md §3) against hand cases (capacity dropping, balance and z-loss
// values, raw-probability weights), a slow per-token loop and double-precision finite differences.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "baselines/registry.h"
#include "baselines/switch.h"
#include "models/tests/grad_check.h"
#include "models/transformer.h"

namespace moebench::baselines {
namespace {

using models::ModelOptions;
using models::MoeLayer;
using models::MoeOptions;
using models::PolicyOutput;
using models::Transformer;

MoeOptions switch_options(int64_t E, int64_t I) {
  MoeOptions o;
  o.method = "switch";
  o.experts = E;
  o.intermediate = I;
  return o;
}

SwitchPolicyImpl& policy_of(MoeLayer& layer) {
  auto* p = dynamic_cast<SwitchPolicyImpl*>(layer->policy.get());
  EXPECT_NE(p, nullptr);
  return *p;
}

// Slow reference: one token at a time in double; capacity counted token by token in order.
torch::Tensor slow_switch(const torch::Tensor& x, const torch::Tensor& Wr, const torch::Tensor& G,
                          const torch::Tensor& U, const torch::Tensor& D, int64_t capacity,
                          int64_t* dropped) {
  const int64_t E = Wr.size(0);
  std::vector<int64_t> used(E, 0);
  std::vector<torch::Tensor> rows;
  *dropped = 0;
  for (int64_t n = 0; n < x.size(0); ++n) {
    const auto p = torch::softmax(torch::mv(Wr, x[n]), 0);
    const int64_t e = p.argmax().item<int64_t>();
    if (++used[e] > capacity) {
      ++*dropped;
      rows.push_back(torch::zeros({x.size(1)}, x.options()));
      continue;
    }
    rows.push_back(p[e] *
                   torch::mv(D[e], torch::silu(torch::mv(G[e], x[n])) * torch::mv(U[e], x[n])));
  }
  return torch::stack(rows);
}

TEST(SwitchCapacity, KeepsTheFirstTokensByPosition) {
  // Five tokens choose expert 0 (positions 1, 2, 4, 6, 7); capacity 2 keeps 1 and 2 only.
  const auto expert_N = torch::tensor({1, 0, 0, 2, 0, 3, 0, 0}, torch::kLong);
  const auto keep = capacity_keep_mask(expert_N, 4, 2);
  const auto kept0 = keep.select(1, 0).nonzero().squeeze(1);
  EXPECT_TRUE(torch::equal(kept0, torch::tensor({1, 2}, torch::kLong)));
  EXPECT_EQ(keep.sum().item<int64_t>(), 5);  // tokens 0, 3, 5 keep their lone choices too
  EXPECT_EQ(switch_capacity(8, 4, 1.0), 2);
  EXPECT_EQ(switch_capacity(8, 4, 1.25), 3);  // ceil(2.5)
  EXPECT_EQ(switch_capacity(8, 4, 2.0), 4);
  // Exact integer arithmetic on the decimal CF: ceil(50·0.9/3) = ceil(15) = 15, where doubles
  // give 50/3·0.9 = 15.000000000000002 and a ceiling of 16.
  EXPECT_EQ(switch_capacity(50, 3, 0.9), 15);
  EXPECT_EQ(switch_capacity(30, 7, 0.7), 3);  // 21/7 = 3 exactly
  EXPECT_EQ(switch_capacity(31, 7, 0.7), 4);  // 21.7/7 = 3.1
  EXPECT_EQ(switch_capacity(10, 3, 1.1), 4);  // 11/3 = 3.67
  EXPECT_EQ(switch_capacity(512, 4, 1.25), 160);
}

TEST(SwitchCapacity, LayerDropsOverflowAndUsesTrainOrEvalFactor) {
  // Router = identity, so x is the logit vector: token n picks the expert where x[n] is 4.
  const int64_t E = 4, I = 3, N = 8;
  auto o = switch_options(E, I);
  o.params.set("capacity_factor_train", 1.0);  // C = 2
  o.params.set("capacity_factor_eval", 2.0);   // C = 4
  torch::manual_seed(1);
  MoeLayer layer(E, o, std::make_shared<SwitchPolicyImpl>(E, o, 0.1), 0.5);
  {
    torch::NoGradGuard g;
    policy_of(layer).router_EH.copy_(torch::eye(E));
  }
  const std::vector<int64_t> choice = {1, 0, 0, 2, 0, 3, 0, 0};
  auto x = torch::zeros({N, E});
  for (int64_t n = 0; n < N; ++n) x[n][choice[n]] = 4.0;
  std::vector<PolicyOutput> out;
  const auto y = layer->forward(x, &out);
  EXPECT_EQ(policy_of(layer).capacity(N), 2);
  const auto dropped = out[0].dropped_N.nonzero().squeeze(1);
  EXPECT_TRUE(torch::equal(dropped, torch::tensor({4, 6, 7}, torch::kLong)));
  EXPECT_EQ(out[0].routing.num_pairs(), 5);
  for (int64_t n : {4, 6, 7}) EXPECT_EQ(y[n].abs().max().item<double>(), 0.0) << n;
  for (int64_t n : {0, 1, 2, 3, 5}) EXPECT_GT(y[n].abs().max().item<double>(), 0.0) << n;

  layer->eval();
  EXPECT_EQ(policy_of(layer).capacity(N), 4);
  out.clear();
  layer->forward(x, &out);
  EXPECT_TRUE(
      torch::equal(out[0].dropped_N.nonzero().squeeze(1), torch::tensor({7}, torch::kLong)));
}

TEST(SwitchRouting, WeightIsTheRawProbability) {
  const int64_t E = 3;
  auto o = switch_options(E, 2);
  o.params.set("capacity_factor_train", 10.0);
  SwitchPolicyImpl p(E, o, 0.1);
  {
    torch::NoGradGuard g;
    p.router_EH.copy_(torch::eye(E));
  }
  const auto x = torch::tensor({2.0f, 1.0f, 0.0f, -1.0f, 0.5f, 0.0f}).view({2, 3});
  const auto r = models::decide(p, x);
  const auto probs = torch::softmax(x, -1);
  // Pairs come expert-then-token: token 0 -> expert 0, token 1 -> expert 1.
  EXPECT_TRUE(torch::equal(r.routing.token, torch::tensor({0, 1}, torch::kLong)));
  EXPECT_TRUE(torch::equal(r.routing.expert, torch::tensor({0, 1}, torch::kLong)));
  EXPECT_NEAR(r.routing.gate[0].item<double>(), probs[0][0].item<double>(), 1e-7);
  EXPECT_NEAR(r.routing.gate[1].item<double>(), probs[1][1].item<double>(), 1e-7);
  EXPECT_LT(r.routing.gate.max().item<double>(), 0.9);  // not renormalised to 1
}

TEST(SwitchAux, BalanceEqualsCoefficientAtUniformRouting) {
  // Cyclic logits: each token's argmax is a different expert (f uniform) and the mean of the
  // probability rows is uniform (P uniform): E·Σ (1/E)(1/E) = 1, so the aux is α.
  const int64_t E = 4;
  auto o = switch_options(E, 2);
  o.params.set("aux_coef", 0.01);
  o.params.set("z_loss_coef", 0.0);
  o.params.set("capacity_factor_train", 10.0);
  SwitchPolicyImpl p(E, o, 0.1);
  {
    torch::NoGradGuard g;
    p.router_EH.copy_(torch::eye(E));
  }
  const auto base = torch::tensor({3.0, 1.0, 0.0, -1.0}, torch::kDouble);
  std::vector<torch::Tensor> rows;
  for (int64_t n = 0; n < E; ++n) rows.push_back(base.roll(n));
  const auto x = torch::stack(rows).to(torch::kFloat);
  const auto r = models::decide(p, x);
  EXPECT_NEAR(r.layer_stats.at("balance").item<double>(), 1.0, 1e-6);
  EXPECT_NEAR(r.layer_aux.item<double>(), 0.01, 1e-8);
  // Top-1: Megatron's division by k is a division by 1.
  const auto probs = torch::softmax(x, -1);
  EXPECT_NEAR(switch_balance(probs, probs.argmax(-1), 1, "megatron").item<double>(), 1.0, 1e-6);
}

TEST(SwitchAux, BalanceHandCase) {
  // probs [[.7, .3], [.6, .4]], both tokens pick expert 0: f = [1, 0], P = [.65, .35].
  const auto probs = torch::tensor({0.7, 0.3, 0.6, 0.4}, torch::kDouble).view({2, 2});
  const auto e = torch::tensor({0, 0}, torch::kLong);
  EXPECT_NEAR(switch_balance(probs, e, 1, "switch").item<double>(), 1.3, 1e-12);
  EXPECT_NEAR(switch_balance(probs, e, 2, "megatron").item<double>(), 0.65, 1e-12);
}

TEST(SwitchAux, ZLossByHand) {
  // logits [[0, 0], [ln 3, 0]]: logsumexp = ln 2 and ln 4 = 2 ln 2, mean of squares 2.5 ln²2.
  const auto logits = torch::tensor({0.0, 0.0, std::log(3.0), 0.0}, torch::kDouble).view({2, 2});
  const double l2 = std::log(2.0);
  EXPECT_NEAR(router_z_loss(logits).item<double>(), 2.5 * l2 * l2, 1e-12);
  // In the layer aux it enters as z_loss_coef · z.
  auto o = switch_options(2, 2);
  o.params.set("aux_coef", 0.0);
  o.params.set("z_loss_coef", 1e-3);
  SwitchPolicyImpl p(2, o, 0.1);
  {
    torch::NoGradGuard g;
    p.router_EH.copy_(torch::eye(2));
  }
  const auto r = models::decide(p, logits.to(torch::kFloat));
  EXPECT_NEAR(r.layer_aux.item<double>(), 1e-3 * 2.5 * l2 * l2, 1e-9);
  EXPECT_NEAR(r.layer_stats.at("z_loss").item<double>(), 2.5 * l2 * l2, 1e-6);
}

TEST(SwitchRouting, JitterOnlyInTraining) {
  const int64_t E = 3, H = 5;
  auto o = switch_options(E, 2);
  o.params.set("jitter", 0.3);
  torch::manual_seed(2);
  SwitchPolicyImpl p(H, o, 0.5);
  const auto x = torch::randn({6, H});
  p.eval();
  const auto a = models::decide(p, x).scores_NE, b = models::decide(p, x).scores_NE;
  EXPECT_TRUE(torch::equal(a, b));
  p.train();
  const auto c = models::decide(p, x).scores_NE;
  EXPECT_GT((c - a).abs().max().item<double>(), 1e-4);
}

TEST(SwitchController, SumsLayersAndReportsDroppedRealTokens) {
  auto o = switch_options(2, 2);
  LayerAuxSum ctl;
  PolicyOutput a, b;
  a.layer_aux = torch::tensor(0.5);
  b.layer_aux = torch::tensor(0.25);
  for (auto* l : {&a, &b}) {
    l->layer_stats = {{"balance", torch::tensor(1.0)}, {"z_loss", torch::tensor(2.0)}};
    l->active_NE = torch::tensor({1, 0, 0, 0, 0, 1, 0, 0}, torch::kBool).view({4, 2});
    l->dropped_N = torch::tensor({0, 1, 0, 1}, torch::kBool);
  }
  EXPECT_NEAR(ctl.loss({a, b}, {}, true).item<double>(), 0.75, 1e-7);
  EXPECT_DOUBLE_EQ(ctl.metrics().at("dropped_frac"), 0.5);
  EXPECT_DOUBLE_EQ(ctl.metrics().at("density"), 0.25);
  EXPECT_DOUBLE_EQ(ctl.metrics().at("z_loss"), 2.0);
  // Token 3 is padding: 1 of 3 real tokens dropped.
  ctl.loss({a, b}, torch::tensor({1, 1, 1, 0}), true);
  EXPECT_NEAR(ctl.metrics().at("dropped_frac"), 1.0 / 3.0, 1e-12);
}

// Padding rows interleaved with real ones (router = identity, so each row of x is its logits).
// Real rows R0..R5 choose experts 0 0 1 0 2 0; with CF = 1 and 6 real tokens C = ceil(6/3) = 2,
// so expert 0 keeps R0, R1 and drops R3, R5. Padding rows P choose expert 0 or 1 and sit before
// real rows of the same expert: if they counted, they would take capacity (and C would be
// ceil(10/3) = 4).
TEST(SwitchPadding, PaddingTakesNoCapacityAndNoAuxShare) {
  const int64_t E = 3, I = 2;
  const double real_rows[6][3] = {{2.0, 0.5, -0.3}, {1.6, 1.1, 0.2},  {0.1, 1.9, -0.4},
                                  {1.2, -0.8, 0.9}, {-0.2, 0.4, 1.7}, {2.3, 0.0, 1.0}};
  const double pad_rows[4][3] = {
      {3.0, 0.0, 0.0}, {2.5, 1.0, 0.0}, {0.0, 2.8, 0.1}, {4.0, 1.0, 1.0}};
  // Layout of the padded batch: P R P R R P R R P R.
  const std::vector<int> layout = {-1, 0, -2, 1, 2, -3, 3, 4, -4, 5};  // -k: pad row k-1
  const int64_t N = static_cast<int64_t>(layout.size());
  auto x_pad = torch::zeros({N, E}), valid = torch::zeros({N}, torch::kBool);
  auto x_real = torch::zeros({6, E});
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t e = 0; e < E; ++e) {
      const double v = layout[n] >= 0 ? real_rows[layout[n]][e] : pad_rows[-layout[n] - 1][e];
      x_pad[n][e] = v;
      if (layout[n] >= 0) x_real[layout[n]][e] = v;
    }
    valid[n] = layout[n] >= 0;
  }
  auto o = switch_options(E, I);
  o.params.set("capacity_factor_train", 1.0);
  o.params.set("aux_coef", 0.01);
  o.params.set("z_loss_coef", 1e-3);
  torch::manual_seed(3);
  MoeLayer layer(E, o, std::make_shared<SwitchPolicyImpl>(E, o, 0.1), 0.5);
  {
    torch::NoGradGuard g;
    policy_of(layer).router_EH.copy_(torch::eye(E));
  }
  std::vector<PolicyOutput> padded, plain;
  const auto y_pad = layer->forward(x_pad, &padded, valid);
  const auto y_real = layer->forward(x_real, &plain);

  // Kept set: by hand, and equal to the run without padding.
  const std::vector<int64_t> kept_by_hand = {1, 1, 1, 0, 1, 0};  // R3, R5 overflow expert 0
  for (int64_t n = 0; n < N; ++n) {
    const auto row = padded[0].active_NE[n];
    if (layout[n] < 0) {
      EXPECT_FALSE(row.any().item<bool>()) << "padding row " << n << " was kept";
      EXPECT_FALSE(padded[0].dropped_N[n].item<bool>()) << "padding row " << n;
      EXPECT_EQ(y_pad[n].abs().max().item<double>(), 0.0) << n;
      continue;
    }
    const int64_t r = layout[n];
    EXPECT_TRUE(torch::equal(row, plain[0].active_NE[r])) << "real row " << r;
    EXPECT_EQ(row.any().item<bool>(), kept_by_hand[r] == 1) << "real row " << r;
    EXPECT_EQ(padded[0].dropped_N[n].item<bool>(), kept_by_hand[r] == 0) << "real row " << r;
    EXPECT_TRUE(torch::allclose(y_pad[n], y_real[r], 1e-6, 1e-7)) << "real row " << r;
  }
  EXPECT_EQ(padded[0].routing.num_pairs(), 4);

  // Aux by hand on the 6 real rows: α·E·Σ f_e P_e + c_z·mean(logsumexp²), in double.
  double f[3] = {0, 0, 0}, P[3] = {0, 0, 0}, z = 0;
  for (const auto& row : real_rows) {
    double m = row[0], sum = 0;
    int arg = 0;
    for (int e = 1; e < 3; ++e) {
      if (row[e] > m) m = row[e], arg = e;
    }
    for (int e = 0; e < 3; ++e) sum += std::exp(row[e]);
    for (int e = 0; e < 3; ++e) P[e] += std::exp(row[e]) / sum / 6.0;
    f[arg] += 1.0 / 6.0;
    z += std::log(sum) * std::log(sum) / 6.0;
  }
  const double bal = 3.0 * (f[0] * P[0] + f[1] * P[1] + f[2] * P[2]);
  EXPECT_NEAR(f[0], 4.0 / 6.0, 1e-15);  // the hand layout above: 4 of 6 real rows pick 0
  EXPECT_NEAR(padded[0].layer_stats.at("balance").item<double>(), bal, 1e-6);
  EXPECT_NEAR(padded[0].layer_stats.at("z_loss").item<double>(), z, 1e-5);
  EXPECT_NEAR(padded[0].layer_aux.item<double>(), 0.01 * bal + 1e-3 * z, 1e-7);
  EXPECT_NEAR(padded[0].layer_aux.item<double>(), plain[0].layer_aux.item<double>(), 1e-7);

  // Without the mask every row counts (C = 4): the padding rows take expert 0's places.
  std::vector<PolicyOutput> unmasked;
  layer->forward(x_pad, &unmasked);
  EXPECT_TRUE(unmasked[0].active_NE[0].any().item<bool>());
  EXPECT_FALSE(unmasked[0].active_NE[6].any().item<bool>());  // R3: 5th row to choose expert 0
  // moe.mask_padding = false restores that reference behaviour even with a mask.
  auto o_ref = o;
  o_ref.mask_padding = false;
  SwitchPolicyImpl ref_policy(E, o_ref, 0.1);
  {
    torch::NoGradGuard g;
    ref_policy.router_EH.copy_(torch::eye(E));
  }
  EXPECT_TRUE(
      torch::equal(models::decide(ref_policy, x_pad, valid).active_NE, unmasked[0].active_NE));
  // A mask of the wrong length is refused by the layer, naming the problem.
  try {
    layer->forward(x_pad, nullptr, valid.narrow(0, 0, 9));
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("9 entries for 10 tokens"), std::string::npos) << e.what();
  }
}

TEST(SwitchPadding, TransformerHandsTheBatchMaskToThePolicy) {
  // Tiny model; the second sequence is half padding. With CF large every real row is kept, so a
  // row without a pair is exactly a padding row that the policy saw as padding.
  ModelOptions mo;
  mo.vocab_size = 50, mo.hidden = 16, mo.layers = 2, mo.q_heads = 2, mo.kv_heads = 1;
  mo.head_dim = 8, mo.max_seq_len = 8;
  mo.moe = switch_options(4, 8);
  mo.moe.params.set("capacity_factor_train", 100.0);
  mo.make_policy = switch_method().make_policy;
  torch::manual_seed(4);
  Transformer model(mo);
  const auto ids = torch::randint(0, 50, {2, 6}, torch::kLong);
  auto mask = torch::ones({2, 6});
  mask[1].narrow(0, 3, 3).zero_();
  const auto out = model->forward(ids, mask);
  ASSERT_EQ(out.routing.size(), 2u);
  for (const auto& l : out.routing) {
    const auto kept_N = l.active_NE.any(1).to(torch::kFloat);
    EXPECT_TRUE(torch::equal(kept_N, mask.reshape({-1}))) << kept_N;
  }
}

struct SwCase {
  int64_t N, H, E, I;
};

class SwitchVsLoop : public ::testing::TestWithParam<SwCase> {};

TEST_P(SwitchVsLoop, OutputAndEveryGradientMatch) {
  const auto c = GetParam();
  torch::manual_seed(c.N * 17 + c.H);
  auto o = switch_options(c.E, c.I);
  o.params.set("capacity_factor_train", 0.5);  // E·C < N: some expert must overflow (pigeonhole)
  MoeLayer layer(c.H, o, baselines::make_policy(c.H, o, 1.0 / std::sqrt(double(c.H))), 0.3);
  auto& sw = policy_of(layer);
  const auto x = torch::randn({c.N, c.H}).requires_grad_(true);
  const auto grad_y = torch::randn({c.N, c.H});
  std::vector<PolicyOutput> out;
  const auto y = layer->forward(x, &out);
  (y * grad_y).sum().backward();

  auto d = [](const torch::Tensor& t) {
    return t.detach().to(torch::kDouble).requires_grad_(true);
  };
  auto xr = d(x), Wr = d(sw.router_EH), Gr = d(layer->weights.gate_EIK),
       Ur = d(layer->weights.up_EIH), Dr = d(layer->weights.down_EHI);
  int64_t dropped = 0;
  const auto yr = slow_switch(xr, Wr, Gr, Ur, Dr, sw.capacity(c.N), &dropped);
  (yr * grad_y.to(torch::kDouble)).sum().backward();
  if (c.N > c.E * sw.capacity(c.N)) {
    EXPECT_GT(dropped, 0) << "pigeonhole says some drop";
  }
  EXPECT_EQ(out[0].dropped_N.sum().item<int64_t>(), dropped);
  EXPECT_EQ(out[0].routing.num_pairs(), c.N - dropped);
  const auto& close = moebench::testing::expect_close_to_reference;
  close(y.detach(), yr.detach(), "y");
  close(x.grad(), xr.grad(), "grad_x");
  close(sw.router_EH.grad(), Wr.grad(), "grad_router");
  close(layer->weights.gate_EIK.grad(), Gr.grad(), "grad_G");
  close(layer->weights.up_EIH.grad(), Ur.grad(), "grad_U");
  close(layer->weights.down_EHI.grad(), Dr.grad(), "grad_D");
}

INSTANTIATE_TEST_SUITE_P(Shapes, SwitchVsLoop,
                         ::testing::Values(SwCase{1, 16, 3, 8}, SwCase{9, 24, 4, 12},
                                           SwCase{33, 100, 5, 20}));

TEST(Switch, DoublePrecisionFiniteDifferences) {
  torch::manual_seed(5);
  const int64_t N = 7, H = 6, E = 3, I = 4;
  auto o = switch_options(E, I);
  o.params.set("capacity_factor_train",
               1.0);  // C = 3 of 7 tokens: drops stay in the checked function
  MoeLayer layer(H, o, baselines::make_policy(H, o, 0.6), 0.5);
  layer->to(torch::kDouble);
  auto& sw = policy_of(layer);
  const auto x = torch::randn({N, H}, torch::kDouble);
  // The layer output plus its aux, so the balance and z-loss gradients are checked too.
  auto f = [&] {
    std::vector<PolicyOutput> out;
    const auto y = layer->forward(x, &out);  // before out[0] is read: + does not sequence
    return y.pow(2).sum() + 10.0 * out[0].layer_aux;
  };
  // Keep clear of argmax ties: the top two logits differ by more than the step can move them.
  const auto top2 = std::get<0>(torch::linear(x, sw.router_EH).topk(2, -1));
  ASSERT_GT((top2.select(1, 0) - top2.select(1, 1)).min().item<double>(), 1e-3) << "reseed";
  layer->zero_grad();
  f().backward();
  moebench::testing::expect_gradients_match_finite_differences(layer->parameters(), f);
}

TEST(Switch, FactoryBuildsPolicyAndController) {
  auto o = switch_options(4, 8);
  EXPECT_NE(dynamic_cast<SwitchPolicyImpl*>(baselines::make_policy(16, o, 0.02).get()), nullptr);
  auto ctl = baselines::make_controller(o, 2);
  EXPECT_NE(dynamic_cast<LayerAuxSum*>(ctl.get()), nullptr);
}

}  // namespace
}  // namespace moebench::baselines

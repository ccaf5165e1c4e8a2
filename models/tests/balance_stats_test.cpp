// Balance statistics on a hand-made routing mask, against values worked out by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "models/balance_stats.h"

namespace moebench::models {
namespace {

TEST(BalanceStats, HandComputedLayer) {
  // 4 tokens x 2 experts; token 3 is padding and must be ignored.
  // Real tokens: [1,0], [1,1], [0,0]  -> loads f = [2/3, 1/3]; k per token = 1, 2, 0.
  PolicyOutput p;
  p.active_NE = torch::tensor({1, 0, 1, 1, 0, 0, 1, 1}).view({4, 2}).to(torch::kBool);
  BalanceStats s;
  s.add({p}, torch::tensor({1, 1, 1, 0}));
  const auto m = s.layer_summary(0);
  EXPECT_NEAR(m.at("density"), 0.5, 1e-12);  // 3 pairs / (3 tokens * 2)
  EXPECT_NEAR(m.at("active_mean"), 1.0, 1e-12);
  EXPECT_NEAR(m.at("frac_zero"), 1.0 / 3, 1e-12);
  EXPECT_NEAR(m.at("cv"), (1.0 / 6) / 0.5, 1e-12);  // std of [2/3,1/3] = 1/6
  EXPECT_NEAR(m.at("maxvio"), (2.0 / 3 - 0.5) / 0.5, 1e-12);
  const double h = -(2.0 / 3 * std::log(2.0 / 3) + 1.0 / 3 * std::log(1.0 / 3)) / std::log(2.0);
  EXPECT_NEAR(m.at("entropy"), h, 1e-12);
  EXPECT_EQ(m.at("dead"), 0);
  EXPECT_EQ(m.at("active_p50"), 1);
  EXPECT_EQ(m.at("active_max"), 2);
}

// Dead = share of the load f_e / Σ f below 1/(8E), an eighth of a uniform share.
PolicyOutput one_expert_rare(int64_t tokens, int64_t experts, int64_t always_on) {
  // Experts 0 .. always_on-1 fire for every token; the last expert for token 0 only.
  auto a = torch::zeros({tokens, experts}, torch::kBool);
  for (int64_t e = 0; e < always_on; ++e) a.select(1, e).fill_(true);
  a[0][experts - 1] = true;
  PolicyOutput p;
  p.active_NE = a;
  return p;
}

TEST(BalanceStats, DeadExpertBelowOneEighthOfAUniformShare) {
  auto dead = [](const PolicyOutput& p) {
    BalanceStats s;
    s.add({p}, {});
    return s.layer_summary(0).at("dead");
  };
  // k = 1, E = 2: loads [1, 1/14] give the rare expert a share of (1/14)/(15/14) = 1/15, above
  // 1/16; with 16 tokens its share is 1/17, below.
  EXPECT_EQ(dead(one_expert_rare(14, 2, 1)), 0);
  EXPECT_EQ(dead(one_expert_rare(16, 2, 1)), 1);
  // k ≈ 3 of E = 4, 20 tokens: loads [1, 1, 1, 0.05]. The rare expert's share is
  // 0.05 / 3.05 = 0.016 < 1/32: dead. Comparing the load itself with 1/(8E) (0.05 > 0.031) would
  // have missed it: at k = E/4 that rule undercounts by a factor of about k.
  EXPECT_EQ(dead(one_expert_rare(20, 4, 3)), 1);
  // Loads [1, 1, 1, 0.1] (10 tokens): share 0.1 / 3.1 = 0.032 > 1/32: alive.
  EXPECT_EQ(dead(one_expert_rare(10, 4, 3)), 0);
}

TEST(BalanceStats, LoadFromTheChoiceBeforeCapacityDrops) {
  // 4 real tokens, E = 2: all four chose expert 0, capacity kept two of them (tokens 2 and 3
  // were dropped: no pair computed). The load is the choice's [1, 0], not the kept [0.5, 0].
  PolicyOutput p;
  p.chosen_NE = torch::tensor({1, 0, 1, 0, 1, 0, 1, 0, 1, 0}).view({5, 2}).to(torch::kBool);
  p.active_NE = torch::tensor({1, 0, 1, 0, 0, 0, 0, 0, 0, 0}).view({5, 2}).to(torch::kBool);
  p.dropped_N = torch::tensor({0, 0, 1, 1, 1}).to(torch::kBool);  // row 4 is padding
  BalanceStats s;
  s.add({p}, torch::tensor({1, 1, 1, 1, 0}));
  const auto m = s.layer_summary(0);
  EXPECT_EQ(s.load(0), (std::vector<double>{1.0, 0.0}));
  EXPECT_NEAR(m.at("maxvio"), 1.0, 1e-12);  // (1 - 0.5) / 0.5
  EXPECT_EQ(m.at("dead"), 1);
  EXPECT_NEAR(m.at("dropped_frac"), 0.5, 1e-12);  // 2 of the 4 real tokens
  // A method without drops reports no dropped_frac.
  BalanceStats plain;
  plain.add({one_expert_rare(4, 2, 1)}, {});
  EXPECT_EQ(plain.layer_summary(0).count("dropped_frac"), 0u);
}

}  // namespace
}  // namespace moebench::models

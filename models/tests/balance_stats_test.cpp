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

TEST(BalanceStats, DeadExpertBelowOneEighthOfUniform) {
  // 16 tokens x 2 experts; expert 1 fires once: f = 1/16 < 1/(8*2) is false (equal) -> not dead;
  // with 17 tokens f = 1/17 < 1/16 -> dead.
  PolicyOutput p;
  auto a = torch::zeros({17, 2}, torch::kBool);
  a.select(1, 0).fill_(true);
  a[0][1] = true;
  p.active_NE = a;
  BalanceStats s;
  s.add({p}, {});
  EXPECT_EQ(s.layer_summary(0).at("dead"), 1);
}

}  // namespace
}  // namespace moebench::models

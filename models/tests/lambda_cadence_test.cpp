// The λ cadence (METHODS.md §1): a fixed number of λ updates per optimizer step whatever the
// micro-batching, ρ averaged over the micro-batches between updates; checked against schedules
// worked out by hand, and through the RF and ReMoE (RF-paper) controllers under accumulation.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "baselines/registry.h"
#include "baselines/remoe.h"
#include "models/lambda_rule.h"
#include "models/routing_free.h"

namespace moebench::models {
namespace {

struct Due {
  int updates;
  double rho;  // the mean ρ handed out (0 when no update is due)
};

std::vector<Due> run(int updates_per_step, int micro_batches, const std::vector<double>& rhos) {
  LambdaCadence c(updates_per_step);
  c.set_micro_batches(micro_batches);
  std::vector<Due> out;
  for (double r : rhos) {
    double mean = 0;
    const int n = c.observe(r, &mean);
    out.push_back({n, n > 0 ? mean : 0.0});
  }
  return out;
}

TEST(LambdaCadence, UpdatePointsAndMeansByHand) {
  // 8 micro-batches, 2 updates (the S configs: 256 = 8 x 32): after micro-batches 3 and 7, each
  // on the mean of its four.
  const auto a = run(2, 8, {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8});
  for (int m : {0, 1, 2, 4, 5, 6}) EXPECT_EQ(a[m].updates, 0) << m;
  EXPECT_EQ(a[3].updates, 1);
  EXPECT_NEAR(a[3].rho, 0.25, 1e-15);  // (0.1 + 0.2 + 0.3 + 0.4) / 4
  EXPECT_EQ(a[7].updates, 1);
  EXPECT_NEAR(a[7].rho, 0.65, 1e-15);  // (0.5 + 0.6 + 0.7 + 0.8) / 4
  // One micro-batch, 2 updates: both after it, on its own ρ.
  const auto b = run(2, 1, {0.3});
  EXPECT_EQ(b[0].updates, 2);
  EXPECT_NEAR(b[0].rho, 0.3, 1e-15);
  // 3 micro-batches, 2 updates: floor((m+1)·2/3) − floor(m·2/3) = 0, 1, 1.
  const auto c = run(2, 3, {0.2, 0.4, 0.9});
  EXPECT_EQ(c[0].updates, 0);
  EXPECT_EQ(c[1].updates, 1);
  EXPECT_NEAR(c[1].rho, 0.3, 1e-15);
  EXPECT_EQ(c[2].updates, 1);
  EXPECT_NEAR(c[2].rho, 0.9, 1e-15);
  // 0: one update after every micro-batch (the cadence before the published one was kept).
  for (const auto& d : run(0, 4, {0.1, 0.2, 0.3, 0.4})) EXPECT_EQ(d.updates, 1);
}

TEST(LambdaCadence, EveryStepStartsAfresh) {
  LambdaCadence c(1);
  c.set_micro_batches(2);
  double mean = 0;
  EXPECT_EQ(c.observe(0.1, &mean), 0);
  EXPECT_EQ(c.observe(0.3, &mean), 1);
  c.end_step();
  EXPECT_EQ(c.observe(0.5, &mean), 0);  // the second step's first micro-batch
  EXPECT_EQ(c.observe(0.7, &mean), 1);
  EXPECT_NEAR(mean, 0.6, 1e-15);
}

// One RF layer output with the given active pattern over 2 tokens x 2 experts (scores 2 where
// active, 0.5 elsewhere; θ = 1).
PolicyOutput layer_with(std::vector<int> active) {
  PolicyOutput p;
  p.active_NE = torch::tensor(active).view({2, 2}).to(torch::kBool);
  p.scores_NE = torch::where(p.active_NE, torch::full({2, 2}, 2.0f), torch::full({2, 2}, 0.5f));
  return p;
}

MoeOptions rf(int64_t lambda_updates) {
  MoeOptions o;
  o.method = "routing_free";
  o.experts = 2;
  o.intermediate = 4;
  o.params.set("lambda0", 0.1);
  o.params.set("eta", 0.02);
  o.params.set("lambda_updates", lambda_updates);
  return o;
}

TEST(LambdaCadence, RoutingFreeUnderGradientAccumulation) {
  // 4 micro-batches per step with densities 0.5, 0, 0.5, 0.5 (ρ* = 0.25) and 2 updates per step:
  // the first update sees mean 0.25 (sign 0: λ stays), the second 0.5 (λ·1.02). Per micro-batch
  // updates would give 0.1·1.02·/1.02·1.02·1.02 = 0.1·1.02² instead.
  const std::vector<PolicyOutput> micro = {layer_with({1, 0, 1, 0}), layer_with({0, 0, 0, 0}),
                                           layer_with({1, 0, 1, 0}), layer_with({0, 1, 1, 0})};
  UnifiedBalance bal(rf(2), 1);
  bal.set_micro_batches(4);
  const std::vector<float> expect_after = {0.1f, 0.1f, 0.1f, 0.1f * 1.02f};
  for (size_t m = 0; m < micro.size(); ++m) {
    const float before = bal.lambda();
    bal.loss({micro[m]}, {}, /*training=*/true);
    EXPECT_FLOAT_EQ(static_cast<float>(bal.metrics().at("lambda")), before)
        << m;  // λ the loss used
    EXPECT_FLOAT_EQ(bal.lambda(), expect_after[m]) << m;
  }
  bal.after_optimizer_step();

  UnifiedBalance per_micro(rf(0), 1);
  per_micro.set_micro_batches(4);
  for (const auto& p : micro) per_micro.loss({p}, {}, true);
  EXPECT_FLOAT_EQ(per_micro.lambda(), 0.1f * 1.02f / 1.02f * 1.02f * 1.02f);

  // A checkpoint in the middle of an interval resumes on the same schedule.
  UnifiedBalance first(rf(2), 1), second(rf(2), 1), whole(rf(2), 1);
  for (auto* b : {&first, &second, &whole}) b->set_micro_batches(4);
  first.loss({micro[0]}, {}, true);
  second.load_state(first.state());
  for (size_t m = 1; m < micro.size(); ++m) second.loss({micro[m]}, {}, true);
  for (const auto& p : micro) whole.loss({p}, {}, true);
  EXPECT_FLOAT_EQ(second.lambda(), whole.lambda());
  EXPECT_FLOAT_EQ(whole.lambda(), 0.1f * 1.02f);
}

TEST(LambdaCadence, ReMoERfPaperVariantFollowsTheSameCadence) {
  MoeOptions o;
  o.method = "remoe";
  o.experts = 2;
  o.intermediate = 4;
  o.params.set("remoe_variant", std::string("rf_paper"));
  o.params.set("remoe_rf_lambda0", 0.01);
  o.params.set("remoe_rf_eta", 0.1);
  o.params.set("lambda_updates", int64_t{1});
  baselines::ReMoEBalance bal(o);
  bal.set_micro_batches(2);
  // Densities 1.0 then 0.0: one update per step on their mean 0.5 > 0.25, so λ·1.1 once, at the
  // end of the step (per micro-batch: ·1.1 then /1.1).
  const auto dense = layer_with({1, 1, 1, 1}), empty = layer_with({0, 0, 0, 0});
  bal.loss({dense}, {}, true);
  EXPECT_FLOAT_EQ(bal.lambda(), 0.01f);
  bal.loss({empty}, {}, true);
  EXPECT_FLOAT_EQ(bal.lambda(), 0.01f * 1.1f);
}

TEST(LambdaCadence, PublishedDefaultsAndTheSizesThatChangeThem) {
  EXPECT_EQ(kPublishedLambdaUpdates, 2);
  EXPECT_EQ(RoutingFreeOptions{}.lambda_updates, 2);
  EXPECT_EQ(baselines::ReMoEOptions{}.lambda_updates, 2);
}

// Data parallel: each update's ρ is the mean over every rank's interval. Rank 0 of 2 with A = 4
// micro-batches per step (2 per rank) and U = 2: an update after each of its micro-batches, on
// the sum of its ρ and the other rank's (0.6, then 0.1), handed in by the fake collective.
TEST(LambdaCadence, RankSumAveragesTheIntervalOverRanks) {
  LambdaCadence c(2);
  c.set_micro_batches(2);
  const std::vector<double> other{0.6, 0.1};
  int calls = 0;
  c.set_rank_sum([&](std::vector<double>& v) {
    ASSERT_EQ(v.size(), 2u);
    EXPECT_EQ(v[1], 1.0);  // this rank's interval holds one micro-batch
    v[0] += other.at(static_cast<size_t>(calls));
    v[1] += 1;
    ++calls;
  });
  double mean = 0;
  EXPECT_EQ(c.observe(0.2, &mean), 1);
  EXPECT_DOUBLE_EQ(mean, 0.4);  // (0.2 + 0.6) / 2
  EXPECT_EQ(c.observe(0.5, &mean), 1);
  EXPECT_DOUBLE_EQ(mean, 0.3);  // (0.5 + 0.1) / 2
  EXPECT_EQ(calls, 2);
  // U = 1 over 2 micro-batches: no collective until the update point.
  LambdaCadence one(1);
  one.set_micro_batches(2);
  int one_calls = 0;
  one.set_rank_sum([&](std::vector<double>& v) {
    ++one_calls;
    v[0] += 1.0;  // the other rank's two ρ: 0.4 + 0.6
    v[1] += 2;
  });
  EXPECT_EQ(one.observe(0.1, &mean), 0);
  EXPECT_EQ(one_calls, 0);
  EXPECT_EQ(one.observe(0.3, &mean), 1);
  EXPECT_EQ(one_calls, 1);
  EXPECT_DOUBLE_EQ(mean, 0.35);  // (0.1 + 0.3 + 0.4 + 0.6) / 4
}

}  // namespace
}  // namespace moebench::models

// Tests of `moebench verdict` on hand-made stores: each claim's per-seed values, interval and
// verdict against numbers worked out by hand in the comments (t quantiles from a t table).
#include "suite/verdict.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "suite/tests/store_fixture.h"

namespace moebench::verdict {
namespace {

namespace fs = std::filesystem;
using test_support::parse_csv;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

bool any_note(const Verdict& v, const std::vector<std::string>& parts) {
  for (const auto& note : v.notes) {
    bool all = true;
    for (const auto& p : parts) all = all && contains(note, p);
    if (all) return true;
  }
  return false;
}

const ClaimRow* find_claim(const Verdict& v, const std::string& id,
                           const std::string& size = "micro") {
  for (const ClaimRow& row : v.claims) {
    if (row.id == id && row.size == size) return &row;
  }
  return nullptr;
}

class VerdictTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test_support::make_temp_dir("moebench_verdict_");
    store_ = std::make_unique<Store>((dir_ / "results.sqlite").string());
  }
  void TearDown() override {
    store_.reset();
    test_support::remove_temp_dir(dir_);
  }

  // One run as the trainer leaves it: an early val eval (must not count) and the final one at
  // step 100. Returns its key.
  std::string add_run(const std::string& method, int64_t seed, std::optional<double> val_loss,
                      const std::string& size = "micro", const std::string& config_json = "{}",
                      RunStatus status = RunStatus::kDone, const std::string& key_suffix = "") {
    RunRow r = test_support::test_run_row(method, size, seed, config_json);
    r.run_key += key_suffix;
    store_->begin_run(r);
    std::vector<EvalRow> evals = {{"val", "loss", 9.5, 100, kNaN, kNaN, kNaN, std::nullopt, 50}};
    if (val_loss)
      evals.push_back({"val", "loss", *val_loss, 100, kNaN, kNaN, kNaN, std::nullopt, 100});
    store_->append_evals(r.run_key, evals);
    if (status != RunStatus::kRunning) store_->finish_run(r.run_key, status, 100, 60);
    return r.run_key;
  }

  // Runs of a method, seeds 1, 2, 3, ... with these final val losses.
  void add_runs(const std::string& method, const std::vector<double>& losses,
                const std::string& size = "micro", const std::string& config_json = "{}") {
    for (size_t i = 0; i < losses.size(); ++i) {
      add_run(method, static_cast<int64_t>(i + 1), losses[i], size, config_json);
    }
  }

  static constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  fs::path dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(VerdictTest, ClaimHoldsWithTheIntervalComputedByHand) {
  // routing_free - topk per seed: 2.97 - 3.00, 3.08 - 3.10, 3.16 - 3.20 = -0.03, -0.02, -0.04.
  //   mean -0.03; sd: deviations 0, 0.01, -0.01 -> sqrt(0.0002 / 2) = 0.01
  //   half width t_{0.975, 2} · 0.01 / sqrt(3) = 4.302653 · 0.0057735 = 0.0248414
  //   interval [-0.0548414, -0.0051586]: entirely below 0 -> holds.
  add_runs("topk", {3.00, 3.10, 3.20});
  add_runs("routing_free", {2.97, 3.08, 3.16});
  const Verdict v = judge(*store_);
  const ClaimRow* row = find_claim(v, "rf_below_topk");
  ASSERT_NE(row, nullptr);
  EXPECT_EQ(row->seeds, (std::vector<int64_t>{1, 2, 3}));
  ASSERT_EQ(row->values.size(), 3u);
  EXPECT_NEAR(row->values[0], -0.03, 1e-12);
  EXPECT_NEAR(row->values[1], -0.02, 1e-12);
  EXPECT_NEAR(row->values[2], -0.04, 1e-12);
  EXPECT_EQ(row->interval.n, 3);
  EXPECT_NEAR(row->interval.mean, -0.03, 1e-12);
  EXPECT_NEAR(row->interval.sd, 0.01, 1e-12);
  EXPECT_NEAR(row->interval.low, -0.0548414, 1e-7);
  EXPECT_NEAR(row->interval.high, -0.0051586, 1e-7);
  EXPECT_EQ(row->outcome, Outcome::kHolds);
  EXPECT_EQ(row->verdict, "holds");
  EXPECT_EQ(row->claim, "1. routing_free < topk (val loss)");
  // Published S perplexities 27.42 and 31.22: ln(27.42 / 31.22) = -0.129786.
  EXPECT_NEAR(row->paper, -0.129786, 1e-6);
  EXPECT_EQ(row->paper_text, "S: -0.130");
  // Only top-k and Routing-Free were trained: the other pairs are not judged, and a note says so.
  EXPECT_EQ(find_claim(v, "rf_below_aoe"), nullptr);
  EXPECT_EQ(find_claim(v, "sr_entropy_above_topk"), nullptr);
  EXPECT_TRUE(any_note(v, {"micro: no 'done' runs of", "aoe (claims 2, 5)"}));
}

TEST_F(VerdictTest, ReversedAndEquivalentClaims) {
  add_runs("topk", {3.00, 3.10, 3.20});
  // aoe - topk = 0.05, 0.06, 0.04: mean 0.05, sd 0.01, interval [0.0251586, 0.0748414] above 0:
  // the claim "aoe < topk" is reversed.
  add_runs("aoe", {3.05, 3.16, 3.24});
  // remoe - topk = 0.002, 0.004, 0.006: mean 0.004, sd 0.002, half width 4.302653 · 0.0011547
  // = 0.0049683 -> [-0.0009683, 0.0089683]: straddles 0, inside ±0.01 -> equivalent. The TOST
  // (at 2.5% per side) agrees: p = P(T_2 <= (0.004 - 0.01) / 0.0011547) = 0.0175494 < 0.025.
  add_runs("remoe", {3.002, 3.104, 3.206});
  const Verdict v = judge(*store_);

  const ClaimRow* aoe = find_claim(v, "aoe_below_topk");
  ASSERT_NE(aoe, nullptr);
  EXPECT_EQ(aoe->outcome, Outcome::kReversed);
  EXPECT_EQ(aoe->verdict, "reversed");
  EXPECT_NEAR(aoe->interval.low, 0.0251586, 1e-7);
  EXPECT_NEAR(aoe->interval.high, 0.0748414, 1e-7);
  // ln(30.00 / 31.21): the S baseline line's top-k figure.
  EXPECT_NEAR(aoe->paper, std::log(30.00 / 31.21), 1e-12);

  const ClaimRow* remoe = find_claim(v, "remoe_below_topk");
  ASSERT_NE(remoe, nullptr);
  EXPECT_EQ(remoe->outcome, Outcome::kEquivalent);
  EXPECT_EQ(remoe->verdict, "equivalent (±0.01)");
  EXPECT_NEAR(remoe->interval.low, -0.0009683, 1e-7);
  EXPECT_NEAR(remoe->interval.high, 0.0089683, 1e-7);
  EXPECT_NEAR(remoe->tost.p_value, 0.0175494, 1e-6);

  // A narrower margin (--margin 0.005) cannot show equivalence: the interval reaches 0.00897.
  Options narrow;
  narrow.margin = 0.005;
  const Verdict narrowed = judge(*store_, narrow);
  const ClaimRow* strict = find_claim(narrowed, "remoe_below_topk");
  ASSERT_NE(strict, nullptr);
  EXPECT_EQ(strict->outcome, Outcome::kUndecided);
  // Seeds to settle it: to clear 0, t_{0.975, n-1} · 0.002 / sqrt(n) < 0.004: n = 3 gives
  // 0.00497, n = 4 gives 3.1824 · 0.002 / 2 = 0.00318 -> 4 (fitting inside ±0.005 would take 18).
  EXPECT_EQ(strict->seeds_needed, 4);
}

TEST_F(VerdictTest, UndecidedClaimNamesTheSeedsItNeeds) {
  // routing_free - topk = -0.03, +0.01, -0.01: mean -0.01; deviations -0.02, 0.02, 0 ->
  // sd = sqrt(0.0008 / 2) = 0.02. Interval -0.01 ± 4.302653 · 0.02 / sqrt(3) = ±0.049683:
  // straddles 0; the mean sits on the -0.01 margin, so no equivalence either.
  // Seeds for t_{0.975, n-1} · 0.02 / sqrt(n) < 0.01 (t table):
  //   n = 17: 2.1199 / 4.1231 = 0.5142 >= 0.5;  n = 18: 2.1098 / 4.2426 = 0.4973 < 0.5 -> 18.
  add_runs("topk", {3.00, 3.10, 3.20});
  add_runs("routing_free", {2.97, 3.11, 3.19});
  const Verdict v = judge(*store_);
  const ClaimRow* row = find_claim(v, "rf_below_topk");
  ASSERT_NE(row, nullptr);
  EXPECT_NEAR(row->interval.mean, -0.01, 1e-12);
  EXPECT_NEAR(row->interval.sd, 0.02, 1e-12);
  EXPECT_EQ(row->outcome, Outcome::kUndecided);
  EXPECT_EQ(row->seeds_needed, 18);
  EXPECT_EQ(row->verdict, "undecided: ~18 seeds");
}

TEST_F(VerdictTest, UndecidedNearZeroCountsTheSeedsForEquivalence) {
  // routing_free - topk = 0, +0.01, -0.01, 0: mean 0, sd = sqrt(0.0002 / 3) = 0.0081650;
  // interval ±3.182446 · 0.0081650 / 2 = ±0.012992: neither side of 0, not inside ±0.01.
  // No seed count excludes 0 around a zero mean, but equivalence needs
  // t_{0.975, n-1} · 0.0081650 / sqrt(n) < 0.01: n = 5: 2.7764 · 0.0081650 / 2.2361 = 0.010138
  // no; n = 6: 2.5706 · 0.0081650 / 2.4495 = 0.008569 yes -> 6.
  add_runs("topk", {3.00, 3.00, 3.00, 3.00});
  add_runs("routing_free", {3.00, 3.01, 2.99, 3.00});
  const Verdict v = judge(*store_);
  const ClaimRow* row = find_claim(v, "rf_below_topk");
  ASSERT_NE(row, nullptr);
  EXPECT_NEAR(row->interval.high, 0.012992, 1e-6);
  EXPECT_EQ(row->outcome, Outcome::kUndecided);
  EXPECT_EQ(row->seeds_needed, 6);
}

TEST_F(VerdictTest, OneSeedIsUndecidedButShown) {
  add_run("topk", 7, 3.0);
  add_run("routing_free", 7, 2.9);
  const Verdict v = judge(*store_);
  const ClaimRow* row = find_claim(v, "rf_below_topk");
  ASSERT_NE(row, nullptr);
  EXPECT_EQ(row->interval.n, 1);
  EXPECT_NEAR(row->interval.mean, -0.1, 1e-12);
  EXPECT_FALSE(row->interval.defined());
  EXPECT_EQ(row->outcome, Outcome::kUndecided);
  EXPECT_EQ(row->verdict, "undecided: need ≥ 2 seeds");
  EXPECT_EQ(row->seeds_needed, std::nullopt);

  const auto csv = parse_csv(render(claims_table(v), Format::kCsv));
  ASSERT_GE(csv.size(), 2u);
  std::map<std::string, std::string> rec;
  for (size_t c = 0; c < csv[0].size(); ++c) rec[csv[0][c]] = csv[1][c];
  EXPECT_EQ(rec["claim_id"], "rf_below_topk");
  EXPECT_EQ(rec["n"], "1");
  EXPECT_EQ(rec["seeds"], "7");
  EXPECT_NEAR(std::stod(rec["values"]), -0.1, 1e-12);
  EXPECT_NEAR(std::stod(rec["mean"]), -0.1, 1e-12);
  EXPECT_EQ(rec["ci_low"], "");  // one value has no interval
  EXPECT_EQ(rec["ci_high"], "");
  EXPECT_EQ(rec["outcome"], "undecided");
}

TEST_F(VerdictTest, PairsOnlySharedSeedsOfOneSetupAndReportsTheRest) {
  add_runs("topk", {3.00, 3.10, 3.20});  // seeds 1, 2, 3
  add_run("routing_free", 1, 2.95);
  add_run("routing_free", 2, 3.02);
  add_run("routing_free", 4, 2.00);  // no top-k partner: must not enter the mean
  add_run("routing_free", 5, 1.00, "micro", "{}", RunStatus::kRunning);
  const Verdict v = judge(*store_);
  const ClaimRow* row = find_claim(v, "rf_below_topk");
  ASSERT_NE(row, nullptr);
  EXPECT_EQ(row->seeds, (std::vector<int64_t>{1, 2}));
  EXPECT_NEAR(row->interval.mean, (-0.05 - 0.08) / 2, 1e-12);
  EXPECT_TRUE(any_note(v, {"claim 1 at micro", "without a partner", "routing_free 4", "topk 3"}));
  EXPECT_TRUE(any_note(v, {"left out 1 run that is not 'done'", "1 running"}));
}

TEST_F(VerdictTest, DifferentSetupsAndDuplicateRunsAreNotPaired) {
  const std::string steps300 = R"({"train":{"steps":300},"model":{"layers":4}})";
  const std::string steps600 = R"({"train":{"steps":600},"model":{"layers":4}})";
  add_runs("topk", {3.00, 3.10}, "micro", steps300);
  add_runs("routing_free", {2.90, 3.00}, "micro", steps600);
  // Two 'done' top-k runs of seed 3 in the 300-step setup with different method options.
  add_run("topk", 3, 3.3, "micro",
          R"({"train":{"steps":300},"model":{"layers":4},"moe":{"top_k":2}})", RunStatus::kDone,
          "-a");
  add_run("topk", 3, 3.4, "micro",
          R"({"train":{"steps":300},"model":{"layers":4},"moe":{"top_k":3}})", RunStatus::kDone,
          "-b");
  add_run("routing_free", 3, 3.2, "micro", steps300);
  const Verdict v = judge(*store_);
  // The 300-step setup pairs only seed 3, whose top-k runs are ambiguous: no pair at all.
  const ClaimRow* first = find_claim(v, "rf_below_topk", "micro#1");
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->interval.n, 0);
  EXPECT_EQ(first->outcome, Outcome::kNoData);
  EXPECT_EQ(find_claim(v, "rf_below_topk", "micro"), nullptr);
  EXPECT_TRUE(any_note(v, {"size micro has 2 setups", "micro#2", "train.steps=600", "300"}));
  EXPECT_TRUE(any_note(v, {"topk at micro#1, seed 3: 2 'done' runs with different configs",
                           "topk-micro-3-a", "topk-micro-3-b"}));
  // The spread table leaves the ambiguous seed out too.
  bool found = false;
  for (const SpreadRow& s : v.spread) {
    if (s.method == "topk" && s.size == "micro#1") {
      found = true;
      EXPECT_EQ(s.seeds, (std::vector<int64_t>{1, 2}));
      EXPECT_NEAR(s.mean, 3.05, 1e-12);
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(VerdictTest, DensityHeldAtTargetAfterWarmup) {
  // Per seed: 10 warm-up steps at density 1 (ignored), then 20 steps alternating
  // 0.25 + o ± 0.01, whose mean is 0.25 + o. Offsets o = 0.001, -0.002, 0.002:
  //   mean 0.00033333; deviations 0.00066667, -0.00233333, 0.00166667
  //   squares 4.4444e-7 + 5.4444e-6 + 2.7778e-6 = 8.6667e-6; / 2 -> sd = 0.00208167
  //   half width 4.302653 · 0.00208167 / sqrt(3) = 0.00517115
  //   interval [-0.00483781, 0.00550448], inside ±0.01 -> holds.
  // At tiny, the offsets 0.05, 0.048, 0.052 (interval [0.045032, 0.054968]) are outside: fails.
  const std::string config = R"({"moe":{"rho_target":0.25},"optim":{"warmup_steps":10}})";
  const auto add = [&](const std::string& size, int64_t seed, double offset) {
    const std::string key = add_run("routing_free", seed, 3.0, size, config);
    std::vector<StepRow> steps;
    for (int64_t s = 1; s <= 30; ++s) {
      StepRow row;
      row.step = s;
      row.density = s <= 10 ? 1.0 : 0.25 + offset + (s % 2 == 0 ? 0.01 : -0.01);
      steps.push_back(row);
    }
    store_->append_steps(key, steps);
  };
  add("micro", 1, 0.001);
  add("micro", 2, -0.002);
  add("micro", 3, 0.002);
  add("tiny", 1, 0.05);
  add("tiny", 2, 0.048);
  add("tiny", 3, 0.052);
  const Verdict v = judge(*store_);

  const ClaimRow* held = find_claim(v, "rf_density_at_target");
  ASSERT_NE(held, nullptr);
  ASSERT_EQ(held->values.size(), 3u);
  EXPECT_NEAR(held->values[0], 0.001, 1e-12);
  EXPECT_NEAR(held->values[1], -0.002, 1e-12);
  EXPECT_NEAR(held->interval.low, -0.00483781, 1e-8);
  EXPECT_NEAR(held->interval.high, 0.00550448, 1e-8);
  EXPECT_EQ(held->outcome, Outcome::kHolds);
  EXPECT_EQ(held->verdict, "holds (within ±0.01)");
  EXPECT_EQ(held->detail, "ρ* = 0.25, steps > 10");

  const ClaimRow* off = find_claim(v, "rf_density_at_target", "tiny");
  ASSERT_NE(off, nullptr);
  EXPECT_NEAR(off->interval.mean, 0.05, 1e-12);
  EXPECT_EQ(off->outcome, Outcome::kFails);
  // tiny comes before micro (size order).
  EXPECT_EQ(v.claims.front().size, "tiny");
}

TEST_F(VerdictTest, ThetaSlopeFromTheLastSweep) {
  // Sweep points (θ, density) = (0, 0.5), (0.1, 0.3), (0.2, 0.1) with val loss 3 - b · density:
  // slopes -0.5, -0.6 and -0.4 (seed 3's densities 0.5, 0.1, 0.3 do not fall monotonically).
  //   mean -0.5, sd 0.1, half width 4.302653 · 0.1 / sqrt(3) = 0.248414
  //   interval [-0.748414, -0.251586]: below 0 -> holds; 2 of 3 seeds monotone.
  const std::vector<std::vector<double>> densities = {
      {0.5, 0.3, 0.1}, {0.5, 0.3, 0.1}, {0.5, 0.1, 0.3}};
  const std::vector<double> slopes = {-0.5, -0.6, -0.4};
  for (int64_t seed = 1; seed <= 3; ++seed) {
    const std::string key = add_run("routing_free", seed, 2.8);
    std::vector<EvalRow> rows;
    // An earlier sweep with the opposite trend must be ignored.
    rows.push_back({"val", "loss", 1.0, 10, kNaN, kNaN, kNaN, 0.0, 50});
    rows.push_back({"val", "density", 0.1, 10, kNaN, kNaN, kNaN, 0.0, 50});
    rows.push_back({"val", "loss", 2.0, 10, kNaN, kNaN, kNaN, 0.1, 50});
    rows.push_back({"val", "density", 0.9, 10, kNaN, kNaN, kNaN, 0.1, 50});
    for (int i = 0; i < 3; ++i) {
      const double theta = 0.1 * i;
      const double d = densities[seed - 1][i];
      rows.push_back({"val", "loss", 3 + slopes[seed - 1] * d, 10, kNaN, kNaN, kNaN, theta, 100});
      rows.push_back(
          {"val", "ppl", std::exp(3 + slopes[seed - 1] * d), 10, kNaN, kNaN, kNaN, theta, 100});
      rows.push_back({"val", "density", d, 10, kNaN, kNaN, kNaN, theta, 100});
    }
    store_->append_evals(key, rows);
  }
  const Verdict v = judge(*store_);
  const ClaimRow* row = find_claim(v, "rf_theta_tradeoff");
  ASSERT_NE(row, nullptr);
  ASSERT_EQ(row->values.size(), 3u);
  EXPECT_NEAR(row->values[0], -0.5, 1e-12);
  EXPECT_NEAR(row->values[1], -0.6, 1e-12);
  EXPECT_NEAR(row->values[2], -0.4, 1e-12);
  EXPECT_NEAR(row->interval.low, -0.748414, 1e-6);
  EXPECT_NEAR(row->interval.high, -0.251586, 1e-6);
  EXPECT_EQ(row->outcome, Outcome::kHolds);
  EXPECT_EQ(row->detail, "2/3 seeds: density falls monotonically as θ rises; 3 θ points");
}

TEST_F(VerdictTest, ThetaClaimWithoutASweepHasNoData) {
  add_runs("routing_free", {2.9, 3.0});
  const Verdict v = judge(*store_);
  const ClaimRow* row = find_claim(v, "rf_theta_tradeoff");
  ASSERT_NE(row, nullptr);
  EXPECT_EQ(row->outcome, Outcome::kNoData);
  EXPECT_TRUE(contains(row->verdict, "eval.theta_sweep"));
}

TEST_F(VerdictTest, SelfRoutingEntropyAndSimilarLoss) {
  // Load entropy (no routing_entropy stored): top-k 0.80 (layer -1 row) and 0.90 (mean of the
  // per-layer rows 0.85, 0.95); Self-Routing 0.92 and 1.053. Relative differences
  // 0.92 / 0.80 - 1 = 0.15 and 1.053 / 0.90 - 1 = 0.17: mean 0.16, sd 0.0141421,
  // half width t_{0.975, 1} · 0.0141421 / sqrt(2) = 12.706205 · 0.01 = 0.127062
  // -> [0.032938, 0.287062]: above 0 -> holds.
  // Val loss self_routing - topk = +0.001, -0.001: mean 0, sd 0.00141421, 95% interval ±0.0127062
  // is not inside ±0.01 -> undecided; seeds for t_{0.975, n-1} · 0.00141421 / sqrt(n) < 0.01:
  // n = 2: 0.0127 no; n = 3: 4.302653 · 0.00141421 / 1.7321 = 0.00351 yes -> 3.
  const std::string t1 = add_run("topk", 1, 3.000);
  const std::string t2 = add_run("topk", 2, 3.100);
  const std::string s1 = add_run("self_routing", 1, 3.001);
  const std::string s2 = add_run("self_routing", 2, 3.099);
  store_->append_layer_stats(t1, {{100, -1, -1, "entropy", 0.80}, {100, 0, -1, "entropy", 0.7}});
  store_->append_layer_stats(t2, {{100, 0, -1, "entropy", 0.85}, {100, 1, -1, "entropy", 0.95}});
  store_->append_layer_stats(s1, {{100, -1, -1, "entropy", 0.92}});
  store_->append_layer_stats(s2, {{50, -1, -1, "entropy", 0.5}, {100, -1, -1, "entropy", 1.053}});
  Options options;
  options.label = [](const std::string& m) { return m == "self_routing" ? m + "‡" : m; };
  const Verdict v = judge(*store_, options);

  const ClaimRow* entropy = find_claim(v, "sr_entropy_above_topk");
  ASSERT_NE(entropy, nullptr);
  ASSERT_EQ(entropy->values.size(), 2u);
  EXPECT_NEAR(entropy->values[0], 0.15, 1e-12);
  EXPECT_NEAR(entropy->values[1], 0.17, 1e-12);
  EXPECT_NEAR(entropy->interval.low, 0.032938, 1e-6);
  EXPECT_NEAR(entropy->interval.high, 0.287062, 1e-6);
  EXPECT_EQ(entropy->outcome, Outcome::kHolds);
  EXPECT_TRUE(entropy->percent);
  EXPECT_EQ(entropy->paper, 0.17);
  EXPECT_EQ(entropy->claim, "8. self_routing‡ routing entropy > topk (relative)");
  EXPECT_TRUE(contains(entropy->detail, "load"));
  EXPECT_TRUE(any_note(v, {"claim 8 at micro", "'routing_entropy'"}));

  const ClaimRow* loss = find_claim(v, "sr_loss_similar_topk");
  ASSERT_NE(loss, nullptr);
  EXPECT_NEAR(loss->interval.mean, 0, 1e-12);
  EXPECT_NEAR(loss->interval.high, 0.0127062, 1e-6);
  EXPECT_EQ(loss->outcome, Outcome::kUndecided);
  EXPECT_EQ(loss->seeds_needed, 3);

  // Once every run stores routing_entropy, that metric is used instead.
  store_->append_layer_stats(t1, {{100, -1, -1, "routing_entropy", 0.5}});
  store_->append_layer_stats(t2, {{100, -1, -1, "routing_entropy", 0.5}});
  store_->append_layer_stats(s1, {{100, -1, -1, "routing_entropy", 0.6}});
  store_->append_layer_stats(s2, {{100, -1, -1, "routing_entropy", 0.55}});
  const Verdict with_routing = judge(*store_);
  const ClaimRow* routing = find_claim(with_routing, "sr_entropy_above_topk");
  ASSERT_NE(routing, nullptr);
  EXPECT_NEAR(routing->values[0], 0.2, 1e-12);
  EXPECT_NEAR(routing->values[1], 0.1, 1e-12);
  EXPECT_EQ(routing->detail, "routing entropy");
}

TEST_F(VerdictTest, TablesInEveryFormat) {
  add_runs("topk", {3.00, 3.10, 3.20});
  add_runs("routing_free", {2.97, 3.08, 3.16});
  add_runs("dense", {3.5});
  const Verdict v = judge(*store_);
  const Table claims = claims_table(v);
  const Table spread = spread_table(v);

  const auto csv = parse_csv(render(claims, Format::kCsv));
  ASSERT_EQ(csv.size(), 1 + v.claims.size());
  EXPECT_EQ(csv[0], (std::vector<std::string>{"claim_id", "claim", "size", "n", "seeds", "values",
                                              "mean", "ci_low", "ci_high", "verdict", "outcome",
                                              "seeds_needed", "tost_p", "paper", "detail"}));
  EXPECT_EQ(csv[1][0], "rf_below_topk");
  EXPECT_EQ(csv[1][4], "1;2;3");
  EXPECT_EQ(csv[1][10], "holds");

  const std::string md = render(claims, Format::kMarkdown);
  EXPECT_TRUE(contains(md, "| claim | size | n | per seed | mean | 95% CI | verdict |"));
  EXPECT_TRUE(contains(md, "-0.030 -0.020 -0.040"));
  EXPECT_TRUE(contains(md, "[-0.0548, -0.0052]"));
  EXPECT_TRUE(contains(md, "- paper: ln(ppl ratio)"));

  const std::string term = render(claims, Format::kTerm);
  EXPECT_TRUE(contains(term, "1. routing_free < topk (val loss)"));
  EXPECT_TRUE(contains(term, "S: -0.130"));

  // Spread: top-k 3.0, 3.1, 3.2 -> mean 3.1, sample std 0.1; dense has one seed (std '-').
  const auto rows = parse_csv(render(spread, Format::kCsv));
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"method", "size", "n", "seeds", "val_loss_mean",
                                               "val_loss_std", "val_loss_min", "val_loss_max"}));
  EXPECT_EQ(rows[1][0], "routing_free");
  EXPECT_EQ(rows[2][0], "topk");
  EXPECT_NEAR(std::stod(rows[2][4]), 3.1, 1e-12);
  EXPECT_NEAR(std::stod(rows[2][5]), 0.1, 1e-12);
  EXPECT_EQ(rows[2][6], "3");
  EXPECT_EQ(rows[2][7], "3.2");
  EXPECT_EQ(rows[3][0], "dense");
  EXPECT_EQ(rows[3][5], "");
  EXPECT_TRUE(contains(render(spread, Format::kTerm), "3.1000"));
}

TEST_F(VerdictTest, NothingToJudgeIsAnError) {
  EXPECT_THROW(judge(*store_), VerdictError);
  add_run("topk", 1, 3.0, "micro", "{}", RunStatus::kFailed);
  EXPECT_THROW(judge(*store_), VerdictError);
  add_run("topk", 2, 3.0);
  Options options;
  options.size = "L";
  try {
    judge(*store_, options);
    ADD_FAILURE() << "expected a VerdictError";
  } catch (const VerdictError& e) {
    EXPECT_TRUE(contains(e.what(), "no 'done' runs of size 'L'")) << e.what();
    EXPECT_TRUE(contains(e.what(), "micro")) << e.what();
  }
  options.size = "micro";
  EXPECT_NO_THROW(judge(*store_, options));
}

}  // namespace
}  // namespace moebench::verdict

// Data-parallel training through the real binary (MOEBENCH_EXE): `moebench train --nproc 2`
// (two processes over Gloo on localhost) against one process with the same global batch, on the
// tiny config and the real bpe8k shards (skipped without them). The reference is the
// one-process trainer; the two-process run shares no code path with it for the parts under test
// (the split of the micro-batches, the gradient and statistic sums, λ's rank-averaged input).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "datasets/tests/test_util.h"
#include "suite/store.h"

namespace moebench {
namespace {

namespace fs = std::filesystem;

// Differences within these are float noise (summation order across ranks); measured ≤ 5e-7 on
// the LM loss and ≤ 2e-6 on the gradient norm over 30 steps. A wrong split, a missing or double
// gradient sum, or λ on one rank's ρ moves them by > 1e-3.
constexpr double kLossTol = 2e-5;
constexpr double kAuxTol = 1e-6;
constexpr double kLambdaRelTol = 1e-6;
constexpr double kDensityTol = 1e-6;
constexpr double kGradNormTol = 1e-4;

using data::testing::data_dir;

class DataParallel : public ::testing::Test {
 protected:
  void SetUp() override {
    MOEBENCH_SKIP_WITHOUT_DATA(data_dir() / "tokens" / "bpe8k" / "train.bin",
                               "moebench data prepare --vocab bpe8k");
    dir_ = fs::path(MOEBENCH_BINARY_DIR) / "test_tmp" /
           ("dp_" + std::to_string(std::random_device{}()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty() && !HasFailure()) fs::remove_all(dir_);
  }

  // `moebench train` on tiny with 4 micro-batches of 2 per step (so 2 ranks take 2 each and λ's 2
  // updates per step fall where one process's do) and no attention dropout (each rank draws its
  // own dropout masks, which one process cannot reproduce). Returns the exit status.
  int train(const std::string& method, const std::string& tag, const std::string& extra,
            const std::string& env = "", const std::vector<std::string>& sets = {},
            bool quiet = true) {
    std::string cmd = env + " '" + std::string(MOEBENCH_EXE) + "' --data '" + data_dir().string() +
                      "' train --config tiny --set moe.method=" + method +
                      " --set data.micro_batch=2 --set model.attn_dropout=0"
                      " --set train.log_every=1" +
                      (quiet ? " --quiet" : "") + " --db '" + db(tag).string() +
                      "' --checkpoints '" + (dir_ / ("ckpt_" + tag)).string() + "' " + extra;
    for (const auto& s : sets) cmd += " --set " + s;
    cmd += " >>'" + (dir_ / "log.txt").string() + "' 2>&1";
    const int status = std::system(cmd.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  fs::path db(const std::string& tag) const { return dir_ / (tag + ".sqlite"); }

  std::string log() const {
    std::ifstream f(dir_ / "log.txt");
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

  static RunRecord only_run(const fs::path& path) {
    Store store(path.string(), Store::Mode::kReadOnly);
    const auto runs = store.runs();
    EXPECT_EQ(runs.size(), 1u) << path;
    return *store.run_record(runs.at(0).run_key);
  }

  // Every logged step of `two` against `one`: LM loss, aux, λ, density, gradient norm.
  static void expect_same_steps(const RunRecord& one, const RunRecord& two) {
    ASSERT_EQ(one.steps.size(), two.steps.size());
    ASSERT_FALSE(one.steps.empty());
    double worst_loss = 0;
    for (size_t i = 0; i < one.steps.size(); ++i) {
      const auto& a = one.steps[i];
      const auto& b = two.steps[i];
      SCOPED_TRACE("step " + std::to_string(a.step));
      ASSERT_EQ(a.step, b.step);
      EXPECT_EQ(a.tokens, b.tokens);
      EXPECT_NEAR(a.lm_loss, b.lm_loss, kLossTol);
      EXPECT_NEAR(a.aux_loss, b.aux_loss, kAuxTol);
      EXPECT_NEAR(a.density, b.density, kDensityTol);
      EXPECT_NEAR(a.grad_norm, b.grad_norm, kGradNormTol);
      EXPECT_EQ(std::isnan(a.lambda), std::isnan(b.lambda));
      if (!std::isnan(a.lambda)) {
        EXPECT_NEAR(a.lambda, b.lambda, kLambdaRelTol * std::abs(a.lambda));
      }
      worst_loss = std::max(worst_loss, std::abs(a.lm_loss - b.lm_loss));
    }
    std::printf("  %zu steps, max |Δ lm loss| = %.3g\n", one.steps.size(), worst_loss);
  }

  fs::path dir_;
};

TEST_F(DataParallel, TwoProcessesMatchOneForRoutingFree) {
  // N(0, 0.02) init (‖Ax‖ ≈ 1.28 at tiny) and θ = 1.6 make density start near 0.02, below
  // ρ* = 0.25, and climb to ~0.35 by step 30: λ falls, then rises, so the rank-averaged ρ
  // decides updates both ways.
  const std::vector<std::string> sets{"model.init=normal", "moe.theta=1.6"};
  ASSERT_EQ(train("routing_free", "one", "", "", sets), 0) << log();
  ASSERT_EQ(train("routing_free", "two", "--nproc 2", "", sets), 0) << log();
  const RunRecord one = only_run(db("one"));
  const RunRecord two = only_run(db("two"));
  EXPECT_EQ(one.run.run_key, two.run.run_key);
  EXPECT_EQ(two.run.status, RunStatus::kDone);
  EXPECT_NE(two.run.device.find("2 ranks"), std::string::npos) << two.run.device;
  expect_same_steps(one, two);
  // The trace is not degenerate: λ moved both ways.
  int falls = 0, rises = 0;
  for (size_t i = 1; i < one.steps.size(); ++i) {
    falls += one.steps[i].lambda < one.steps[i - 1].lambda;
    rises += one.steps[i].lambda > one.steps[i - 1].lambda;
  }
  EXPECT_GT(falls, 0);
  EXPECT_GT(rises, 0);
}

TEST_F(DataParallel, TwoProcessesMatchOneForTopK) {
  ASSERT_EQ(train("topk", "one", ""), 0) << log();
  ASSERT_EQ(train("topk", "two", "--nproc 2"), 0) << log();
  expect_same_steps(only_run(db("one")), only_run(db("two")));
}

TEST_F(DataParallel, TwoProcessesMatchOneForReMoEOriginal) {
  // The original ReMoE schedule moves λ once per step on the step's sparsity, summed over ranks.
  ASSERT_EQ(train("remoe", "one", "", "", {"moe.remoe_variant=original"}), 0) << log();
  ASSERT_EQ(train("remoe", "two", "--nproc 2", "", {"moe.remoe_variant=original"}), 0) << log();
  expect_same_steps(only_run(db("one")), only_run(db("two")));
}

TEST_F(DataParallel, DeadRankFailsTheRunAndTheRerunResumesOnBothRanks) {
  // Rank 1 is killed (SIGKILL) after step 20 (checkpoint at 15): rank 0's next collective fails,
  // it marks the run failed, and the launcher returns non-zero well within the timeout.
  const auto t0 = std::chrono::steady_clock::now();
  const int rc = train("routing_free", "two", "--nproc 2 --dist-timeout 60",
                       "MOEBENCH_FAULT=step.done@20 MOEBENCH_FAULT_RANK=1");
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(rc, 0) << log();
  EXPECT_LT(waited, 120) << log();
  {
    const RunRecord failed = only_run(db("two"));
    EXPECT_EQ(failed.run.status, RunStatus::kFailed) << log();
    EXPECT_GE(failed.run.status_step, 20);
  }
  // The same command resumes at step 15 on both ranks and ends where one process ends.
  ASSERT_EQ(train("routing_free", "two", "--nproc 2", "", {}, /*quiet=*/false), 0) << log();
  EXPECT_NE(log().find("resuming at step 15"), std::string::npos) << log();
  ASSERT_EQ(train("routing_free", "one", ""), 0) << log();
  const RunRecord two = only_run(db("two"));
  EXPECT_EQ(two.run.status, RunStatus::kDone);
  expect_same_steps(only_run(db("one")), two);
}

TEST_F(DataParallel, BatchThatDoesNotSplitIsRefused) {
  // tiny with micro-batch 4 has 2 micro-batches per step: 3 ranks cannot share them.
  const std::string cmd = "'" + std::string(MOEBENCH_EXE) + "' --data '" + data_dir().string() +
                          "' train --config tiny --nproc 3 --quiet --db '" + db("bad").string() +
                          "' --checkpoints '" + (dir_ / "ckpt_bad").string() + "' >'" +
                          (dir_ / "log.txt").string() + "' 2>&1";
  const int status = std::system(cmd.c_str());
  EXPECT_NE(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
  EXPECT_NE(log().find("multiple of 3"), std::string::npos) << log();
  if (fs::exists(db("bad"))) {
    Store store(db("bad").string(), Store::Mode::kReadOnly);
    EXPECT_TRUE(store.runs().empty());
  }
}

}  // namespace
}  // namespace moebench

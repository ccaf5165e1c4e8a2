// Trainer behaviour on the real tiny config: an interrupted and resumed run reproduces the
// uninterrupted one step for step; divergence ends the run with status 'diverged' in the store.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <random>
#include <set>

#include "baselines/registry.h"
#include "datasets/tests/test_util.h"
#include "suite/evaluator.h"
#include "suite/matrix.h"
#include "suite/run_context.h"
#include "suite/store.h"
#include "suite/trainer.h"

namespace moebench {
namespace {

std::filesystem::path scratch(const std::string& tag) {
  auto dir = std::filesystem::path(MOEBENCH_BINARY_DIR) / "test_tmp" /
             (tag + "_" + std::to_string(std::random_device{}()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// The Trainer tests run the tiny config on the real bpe8k shards; without them they skip.
#define SKIP_WITHOUT_BPE8K()                                                               \
  MOEBENCH_SKIP_WITHOUT_DATA(data::testing::data_dir() / "tokens" / "bpe8k" / "train.bin", \
                             "moebench data prepare --vocab bpe8k")

TrainOptions tiny(const std::filesystem::path& dir, std::vector<std::string> sets) {
  sets.push_back("train.log_every=1");
  TrainOptions o;
  o.cfg = load_config("tiny", sets);
  o.size_name = "tiny";
  o.db_path = dir / "db.sqlite";
  o.checkpoint_root = dir / "ckpt";
  o.data_dir = std::filesystem::path(MOEBENCH_SOURCE_DIR) / "data";
  if (const char* env = std::getenv("MOEBENCH_DATA"); env && *env) o.data_dir = env;
  o.quiet = true;
  return o;
}

TEST(Trainer, ResumeReproducesTheUninterruptedRun) {
  SKIP_WITHOUT_BPE8K();
  const std::vector<std::string> sets = {"train.steps=8", "train.checkpoint_every=4",
                                         "train.eval_every=0"};
  const auto a_dir = scratch("straight"), b_dir = scratch("resumed");
  const auto a = train(tiny(a_dir, sets));
  ASSERT_EQ(a.status, RunStatus::kDone);

  auto first = tiny(b_dir, sets);
  first.stop_after_steps = 5;  // as Ctrl-C after step 5: checkpoint, status 'interrupted'
  ASSERT_EQ(train(first).status, RunStatus::kInterrupted);
  const auto b = train(tiny(b_dir, sets));
  ASSERT_EQ(b.status, RunStatus::kDone);
  EXPECT_EQ(a.run_key, b.run_key);

  Store sa(a_dir / "db.sqlite"), sb(b_dir / "db.sqlite");
  const auto steps_a = sa.steps(a.run_key), steps_b = sb.steps(b.run_key);
  ASSERT_EQ(steps_a.size(), 8u);
  ASSERT_EQ(steps_b.size(), 8u);
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(steps_a[i].step, steps_b[i].step);
    EXPECT_DOUBLE_EQ(steps_a[i].lm_loss, steps_b[i].lm_loss) << "step " << steps_a[i].step;
    EXPECT_DOUBLE_EQ(steps_a[i].aux_loss, steps_b[i].aux_loss) << "step " << steps_a[i].step;
    EXPECT_DOUBLE_EQ(steps_a[i].lambda, steps_b[i].lambda) << "step " << steps_a[i].step;
    EXPECT_EQ(steps_a[i].tokens, steps_b[i].tokens);
  }
  EXPECT_DOUBLE_EQ(a.final_val_loss, b.final_val_loss);
  // λ rose (density above ρ* at the start) and survived the checkpoint in fp32.
  EXPECT_GT(steps_a.back().lambda, steps_a.front().lambda);
  // A finished run is skipped, not retrained.
  EXPECT_TRUE(train(tiny(a_dir, sets)).skipped);
}

TEST(Trainer, FirstStepRunsAtLearningRateZeroAndItsLmLossIsTokenWeighted) {
  SKIP_WITHOUT_BPE8K();
  // No dropout, so the step's forwards can be repeated outside the trainer exactly.
  const std::vector<std::string> sets = {"train.steps=2", "train.eval_every=0",
                                         "model.attn_dropout=0", "moe.method=topk"};
  const auto dir = scratch("step_loss");
  const auto opts = tiny(dir, sets);
  const auto r = train(opts);
  ASSERT_EQ(r.status, RunStatus::kDone);
  Store store(dir / "db.sqlite");
  const auto steps = store.steps(r.run_key);
  ASSERT_EQ(steps.size(), 2u);
  // Warm-up as the reference trainer: lr = peak·step/warm-up, so step 0 runs at 0.
  EXPECT_EQ(steps[0].lr, 0.0);
  EXPECT_DOUBLE_EQ(steps[1].lr, opts.cfg.optim.lr / opts.cfg.optim.warmup_steps);

  // The logged LM loss of step 0 is the total NLL of its two micro-batches over their total
  // real tokens, recomputed here in double from the initial weights (same seed, same batches).
  auto ctx = build_run_context(opts.cfg, opts.data_dir, Splits::kTrainAndValidation);
  ctx.model->train();
  torch::NoGradGuard no_grad;
  double nll = 0;
  std::vector<double> means;
  std::vector<int64_t> tokens;
  for (int m = 0; m < grad_accum(opts.cfg.data); ++m) {
    const auto b = eval::to_tensors(ctx.train_sampler->batch(m), ctx.device);
    const auto logp = torch::log_softmax(
        ctx.model->forward(b.inputs_BT, b.mask_BT).logits.to(torch::kDouble), -1);
    const auto picked = logp.gather(-1, b.targets_BT.unsqueeze(-1)).squeeze(-1);
    const double sum = -(picked * b.mask_BT.to(torch::kDouble)).sum().item<double>();
    nll += sum;
    tokens.push_back(b.real_tokens);
    means.push_back(sum / static_cast<double>(b.real_tokens));
  }
  ASSERT_EQ(tokens.size(), 2u);
  ASSERT_NE(tokens[0], tokens[1]) << "the check needs micro-batches of different lengths";
  const double expect = nll / static_cast<double>(tokens[0] + tokens[1]);
  EXPECT_NEAR(steps[0].lm_loss, expect, 1e-5);
  // The mean of the two means (the old definition) is measurably another number.
  EXPECT_GT(std::abs((means[0] + means[1]) / 2 - expect), 1e-4);
}

TEST(Trainer, WeightDecaySkipsOnlyBiasesAndNormWeights) {
  auto cfg = load_config("tiny", {"moe.method=routing_free"});
  torch::manual_seed(1);
  models::Transformer model(model_options(cfg, 64));
  std::set<std::string> skipped;
  for (const auto& p : model->named_parameters()) {
    if (!takes_weight_decay(p.key())) skipped.insert(p.key());
  }
  std::set<std::string> expect = {"final_norm.weight"};
  for (int l = 0; l < cfg.model.layers; ++l) {
    const std::string b = "block" + std::to_string(l) + ".";
    expect.insert({b + "attn_norm.weight", b + "ffn_norm.weight", b + "moe.policy.bias"});
  }
  EXPECT_EQ(skipped, expect);  // RF's γ (block*.moe.policy.gamma) decays: it is no bias
}

TEST(Trainer, DivergenceIsRecorded) {
  SKIP_WITHOUT_BPE8K();
  const auto dir = scratch("diverge");
  // Any real loss exceeds 0.5 nats at step 1: the guard must end the run there.
  const auto r = train(tiny(dir, {"train.diverge_loss=0.5", "train.steps=5"}));
  EXPECT_EQ(r.status, RunStatus::kDiverged);
  EXPECT_EQ(r.steps, 1);
  Store s(dir / "db.sqlite");
  const auto row = s.find_run(r.run_key);
  ASSERT_TRUE(row.has_value());
  EXPECT_EQ(row->status, RunStatus::kDiverged);
  EXPECT_EQ(row->status_step, 1);
  EXPECT_TRUE(s.evals(r.run_key).empty()) << "a diverged run has no final evaluation";
}

// The matrix and the trainer share one "finished" rule: for every stored status, the matrix skips
// the run exactly when the trainer would (done and diverged; the rest resume). Needs no data:
// a finished run is recognised before anything is loaded, and an unfinished one then fails on
// the missing data folder instead of training.
TEST(Trainer, MatrixAndTrainerAgreeOnFinishedRuns) {
  const auto dir = scratch("agree");
  std::ofstream(dir / "p.toml") << "sizes = [\"tiny\"]\nmethods = [\"topk\"]\nseeds = [1]\n";
  const auto runs = load_plan(dir / "p.toml");
  ASSERT_EQ(runs.size(), 1u);
  for (RunStatus status : {RunStatus::kDone, RunStatus::kDiverged, RunStatus::kFailed,
                           RunStatus::kInterrupted, RunStatus::kRunning}) {
    const auto db = dir / (to_string(status) + ".sqlite");
    bool matrix_skips = false;
    {
      Store store(db);
      RunRow row;
      row.run_key = runs[0].run_key;
      row.config_json = to_canonical_json(runs[0].cfg);
      row.method = "topk";
      row.size = "tiny";
      row.seed = 1;
      store.begin_run(row);
      if (status != RunStatus::kRunning) store.finish_run(row.run_key, status, 3, 1.0);
      matrix_skips = finished_in_store(runs, store).at(0);
    }
    auto o = tiny(dir, {"moe.method=topk", "train.seed=1"});
    o.db_path = db;
    o.data_dir = dir / "no-data-here";
    // --threads and other execution settings never change which run this is.
    o.cfg.train.threads = 3;
    o.cfg.train.log_every = 7;
    o.cfg.kernels.backend = "reference";
    bool trainer_skips = false;
    try {
      trainer_skips = train(o).skipped;
    } catch (const std::exception&) {
      trainer_skips = false;  // it went on to load the (missing) data: it would have trained
    }
    EXPECT_EQ(matrix_skips, trainer_skips) << to_string(status);
    EXPECT_EQ(matrix_skips, status == RunStatus::kDone || status == RunStatus::kDiverged)
        << to_string(status);
  }
}

TEST(Trainer, BadConfigWritesNoRow) {
  const auto dir = scratch("bad");
  EXPECT_THROW(train(tiny(dir, {"model.vocab=bpe123456"})), std::exception);
  if (std::filesystem::exists(dir / "db.sqlite")) {
    Store s(dir / "db.sqlite");
    EXPECT_TRUE(s.runs({}).empty());
  }
}

}  // namespace
}  // namespace moebench

namespace moebench {
namespace {

TEST(MatrixPlan, ExpandsMethodsSizesSeedsWithOverrides) {
  const auto dir = scratch("plan");
  std::ofstream(dir / "p.toml") << "sizes = [\"tiny\"]\nmethods = [\"routing_free\", \"topk\", "
                                   "\"dense\"]\nseeds = [1, 2]\nset = [\"train.steps=4\"]\n"
                                   "[method_set]\ndense = [\"moe.dense_width=iso_param\"]\n";
  const auto runs = load_plan(dir / "p.toml");
  ASSERT_EQ(runs.size(), 6u);
  std::set<std::string> keys;
  for (const auto& r : runs) {
    keys.insert(r.run_key);
    EXPECT_EQ(r.cfg.moe.method, r.method);
    EXPECT_EQ(r.cfg.train.seed, r.seed);
    EXPECT_EQ(r.cfg.train.steps, 4);
    EXPECT_EQ(r.cfg.moe.params.get<std::string>("dense_width"),
              r.method == "dense" ? "iso_param" : "iso_active");
    EXPECT_EQ(r.run_key, run_key(r.cfg));
  }
  EXPECT_EQ(keys.size(), 6u) << "run keys must differ across methods and seeds";
  // Seed-major order: the three methods of seed 1, then those of seed 2.
  const std::vector<std::string> order = {"routing_free", "topk", "dense"};
  for (size_t i = 0; i < runs.size(); ++i) {
    EXPECT_EQ(runs[i].seed, i < 3 ? 1 : 2) << i;
    EXPECT_EQ(runs[i].method, order[i % 3]) << i;
  }
}

TEST(MatrixPlan, BadPlansNameTheProblem) {
  const auto dir = scratch("plan");
  std::ofstream(dir / "a.toml") << "sizes = [\"tiny\"]\nmethods = [\"topk\"]\nseeds = [1]\n"
                                   "sedes = [2]\n";
  try {
    load_plan(dir / "a.toml");
    FAIL() << "unknown key accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'sedes'"), std::string::npos) << e.what();
  }
  std::ofstream(dir / "b.toml") << "sizes = [\"tiny\"]\nmethods = [\"nope\"]\nseeds = [1]\n";
  EXPECT_THROW(load_plan(dir / "b.toml"), ConfigError);
  EXPECT_THROW(load_plan(dir / "missing.toml"), ConfigError);
  // The shipped plans load.
  EXPECT_EQ(load_plan(std::filesystem::path(MOEBENCH_SOURCE_DIR) / "suite/plans/micro.toml").size(),
            7u);
}

}  // namespace
}  // namespace moebench

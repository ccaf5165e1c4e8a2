// Checkpoints as one unit: the newest complete one is found, a damaged or inconsistent newest one
// is skipped for the previous, only two are kept, and what is loaded equals what was saved.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <fstream>
#include <random>

#include "baselines/registry.h"
#include "models/method.h"
#include "suite/checkpoint.h"

namespace moebench {
namespace {
namespace fs = std::filesystem;

fs::path scratch() {
  auto dir = fs::temp_directory_path() / ("moebench_ckpt_" + std::to_string(::getpid()) + "_" +
                                          std::to_string(std::random_device{}()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

models::Transformer tiny_model() {
  models::ModelOptions o;
  o.vocab_size = 32, o.hidden = 16, o.layers = 1, o.q_heads = 2, o.kv_heads = 1, o.head_dim = 8;
  o.max_seq_len = 8;
  o.moe.method = "topk", o.moe.experts = 2, o.moe.intermediate = 8, o.moe.top_k = 1;
  o.make_policy = baselines::find_method("topk").make_policy;
  return models::Transformer(o);
}

struct Fixture {
  fs::path dir = scratch();
  models::Transformer model = tiny_model();
  torch::optim::AdamW optim{model->parameters(), torch::optim::AdamWOptions(1e-3)};
  RunConfig cfg = named_config("tiny");

  // One optimizer step (so the weights move and the optimizer has state), then a checkpoint.
  void step_and_save(int64_t step) {
    optim.zero_grad();
    const auto ids = torch::randint(0, 32, {2, 8}, torch::dtype(torch::kLong));
    model->forward(ids.to(model->head_VH.device())).logits.sum().backward();
    optim.step();
    CheckpointState s;
    s.step = step;
    s.tokens = 16 * step;
    s.controller = {{"lambda", 0.5 * static_cast<double>(step)}};
    s.run_key = "k";
    save_checkpoint(dir, cfg, *model, optim, s);
  }
  ~Fixture() { fs::remove_all(dir); }
};

TEST(Checkpoint, NewestCompleteOneIsLoadedAsSaved) {
  torch::manual_seed(1);
  Fixture f;
  f.step_and_save(4);
  f.step_and_save(8);
  const auto found = find_checkpoint(f.dir);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->filename(), "step-000000008");
  auto fresh = tiny_model();
  const CheckpointState s = load_checkpoint(*found, *fresh, torch::kCPU);
  EXPECT_EQ(s.step, 8);
  EXPECT_EQ(s.tokens, 128);
  EXPECT_EQ(s.controller.at("lambda"), 4.0);
  const auto saved = f.model->named_parameters(), loaded = fresh->named_parameters();
  for (const auto& p : saved) EXPECT_TRUE(torch::equal(p.value(), loaded[p.key()])) << p.key();
  EXPECT_EQ(read_checkpoint_config(*found).model.hidden, f.cfg.model.hidden);
}

TEST(Checkpoint, GeneratorStatesComeBackWithTheCheckpoint) {
  // Exact resume: dropout and Switch's jitter draw from the CPU generator, and on a GPU from the
  // device's own; a draw after loading equals the draw after saving.
  torch::manual_seed(3);
  Fixture f;
  const bool cuda = torch::cuda::is_available();
  if (cuda) f.model->to(torch::kCUDA);
  f.step_and_save(2);
  const auto cpu_after_save = torch::rand({8});
  const auto dev_after_save = cuda ? torch::rand({8}, torch::kCUDA) : torch::Tensor();
  torch::rand({100});  // move both generators on
  if (cuda) torch::rand({100}, torch::kCUDA);
  const auto found = find_checkpoint(f.dir);
  ASSERT_TRUE(found);
  load_checkpoint(*found, *f.model, cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU),
                  &f.optim);
  EXPECT_TRUE(torch::rand({8}).equal(cpu_after_save));
  if (!cuda) GTEST_SKIP() << "CPU generator checked; the CUDA generator needs a GPU";
  EXPECT_TRUE(torch::rand({8}, torch::kCUDA).equal(dev_after_save));
}

TEST(Checkpoint, DamagedNewestFallsBackToThePrevious) {
  torch::manual_seed(2);
  Fixture f;
  f.step_and_save(4);
  f.step_and_save(8);
  const fs::path newest = f.dir / "step-000000008";
  fs::resize_file(newest / "model.pt", fs::file_size(newest / "model.pt") / 2);
  auto found = find_checkpoint(f.dir);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->filename(), "step-000000004");
  // A state.json that disagrees with the weights' step is as bad as a torn file.
  // The next save keeps the complete step 4 as its fallback and drops the damaged step 8.
  f.step_and_save(12);
  EXPECT_FALSE(fs::exists(newest));
  std::ofstream(f.dir / "step-000000012" / "state.json") << R"({"step": 11})";
  found = find_checkpoint(f.dir);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->filename(), "step-000000004");
}

TEST(Checkpoint, KeepsTheTwoNewestAndPointsLatestAtTheNewest) {
  torch::manual_seed(3);
  Fixture f;
  for (int64_t step : {2, 4, 6}) f.step_and_save(step);
  EXPECT_FALSE(fs::exists(f.dir / "step-000000002"));
  EXPECT_TRUE(fs::exists(f.dir / "step-000000004"));
  EXPECT_TRUE(fs::exists(f.dir / "step-000000006"));
  std::ifstream latest(f.dir / "LATEST");
  std::string name;
  std::getline(latest, name);
  EXPECT_EQ(name, "step-000000006");
  for (const auto& e : fs::directory_iterator(f.dir)) {
    EXPECT_NE(e.path().filename().string().rfind(".tmp-", 0), 0u) << "temporary folder left";
  }
}

TEST(Checkpoint, NothingCompleteMeansNone) {
  torch::manual_seed(4);
  Fixture f;
  EXPECT_FALSE(find_checkpoint(f.dir).has_value());
  f.step_and_save(4);
  fs::remove(f.dir / "step-000000004" / "manifest.json");
  EXPECT_FALSE(find_checkpoint(f.dir).has_value());
}

// A failed write (here: a folder nobody may write) names the path and leaves the previous
// checkpoint the newest complete one. Root ignores permissions, so the check needs a user.
TEST(Checkpoint, FailedWriteNamesThePathAndKeepsThePrevious) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores folder permissions";
  torch::manual_seed(5);
  Fixture f;
  f.step_and_save(4);
  fs::permissions(f.dir, fs::perms::owner_read | fs::perms::owner_exec);
  try {
    f.step_and_save(8);
    ADD_FAILURE() << "writing into a read-only folder succeeded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(f.dir.string()), std::string::npos) << e.what();
  }
  fs::permissions(f.dir, fs::perms::owner_all);
  const auto found = find_checkpoint(f.dir);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->filename(), "step-000000004");
}

}  // namespace
}  // namespace moebench

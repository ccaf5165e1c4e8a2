// Tests of RunConfig: paper defaults, TOML and override parsing, errors that name the key,
// canonical JSON and run keys. Spec: shared/DESIGN.md "Configs and the store", METHODS.md.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "suite/config.h"

namespace moebench {
namespace {

namespace fs = std::filesystem;

// A fresh folder, removed with the object.
class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("moebench_config_" + random_tag())) {
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name) << text;
    return path_ / name;
  }

 private:
  static std::string random_tag() { return std::to_string(std::random_device{}()); }
  fs::path path_;
};

// The ConfigError message of fn(), or "" when it does not throw one.
template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(ConfigTest, SMatchesMethodsTableAndRecipe) {
  const RunConfig c = named_config("S");
  EXPECT_EQ(c.model.layers, 12);
  EXPECT_EQ(c.model.hidden, 512);
  EXPECT_EQ(c.model.q_heads, 16);
  EXPECT_EQ(c.model.kv_heads, 16);
  EXPECT_EQ(effective_head_dim(c.model), 32);
  EXPECT_EQ(c.moe.experts, 12);
  EXPECT_EQ(c.moe.intermediate, 128);
  EXPECT_EQ(c.moe.effective_rank(), 32);
  EXPECT_EQ(c.moe.effective_top_k(), 3);
  EXPECT_EQ(c.model.vocab, "gpt2");
  EXPECT_EQ(c.model.seq_len, 512);
  EXPECT_EQ(c.model.rope_theta, 1e4);
  EXPECT_EQ(c.model.norm_eps, 1e-5);
  EXPECT_EQ(c.model.attn_dropout, 0.05);
  EXPECT_EQ(c.model.init_std, 0.02);
  EXPECT_EQ(c.data.mode, "paper");
  EXPECT_EQ(c.data.batch_size, 256);
  EXPECT_EQ(c.optim.lr, 1e-3);
  EXPECT_EQ(c.optim.warmup_steps, 100);
  EXPECT_EQ(c.optim.betas[0], 0.9);
  EXPECT_EQ(c.optim.betas[1], 0.999);
  EXPECT_EQ(c.optim.eps, 1e-8);
  EXPECT_EQ(c.optim.weight_decay, 0.01);
  EXPECT_EQ(c.optim.min_lr_ratio, 0.0);
  EXPECT_EQ(c.optim.grad_clip, 1.0);
  EXPECT_EQ(c.train.dtype, "bf16");
  EXPECT_EQ(c.train.seed, 42);
  EXPECT_EQ(c.train.steps, 0);  // one epoch
  // Routing-Free defaults (METHODS.md §1)
  EXPECT_EQ(c.moe.method, "routing_free");
  EXPECT_EQ(c.moe.params.get<double>("theta"), 1.0);
  EXPECT_EQ(c.moe.params.get<std::string>("norm"), "l2");
  EXPECT_EQ(c.moe.params.get<double>("gamma_init"), 1.0);
  EXPECT_EQ(c.moe.params.get<double>("bias_init"), -1e-6);
  EXPECT_EQ(c.moe.params.get<double>("rho_target"), 0.25);
  EXPECT_EQ(c.moe.params.get<double>("eta"), 0.02);
  EXPECT_EQ(c.moe.params.get<double>("lambda0"), 1e-10);
  EXPECT_EQ(c.moe.params.get<double>("eb_weight"), 0.5);
  EXPECT_EQ(c.moe.params.get<double>("tb_weight"), 0.5);
  EXPECT_TRUE(c.moe.mask_padding);
  EXPECT_FALSE(c.moe.params.get<bool>("lambda_bf16"));
  // Baselines (§2-§4)
  EXPECT_EQ(c.moe.params.get<double>("aux_coef"), 0.01);
  EXPECT_EQ(c.moe.params.get<double>("capacity_factor_train"), 1.25);
  EXPECT_EQ(c.moe.params.get<double>("capacity_factor_eval"), 2.0);
  EXPECT_EQ(c.moe.params.get<double>("z_loss_coef"), 1e-3);
  EXPECT_EQ(c.moe.params.get<double>("remoe_alpha"), 1.2);
  EXPECT_EQ(c.moe.params.get<double>("remoe_lambda0"), 1e-8);
  // ReMoE's RF-paper variant (§4): λ₀ = 0.01, η = 0.1.
  EXPECT_EQ(c.moe.params.get<double>("remoe_rf_lambda0"), 0.01);
  EXPECT_EQ(c.moe.params.get<double>("remoe_rf_eta"), 0.1);
}

TEST(ConfigTest, MAndLMatchMethodsTable) {
  const RunConfig m = named_config("M");
  EXPECT_EQ(m.model.layers, 24);
  EXPECT_EQ(m.model.hidden, 768);
  EXPECT_EQ(m.model.q_heads, 24);
  EXPECT_EQ(m.model.kv_heads, 12);
  EXPECT_EQ(effective_head_dim(m.model), 32);
  EXPECT_EQ(m.moe.experts, 16);
  EXPECT_EQ(m.moe.intermediate, 192);
  EXPECT_EQ(m.moe.effective_rank(), 48);
  EXPECT_EQ(m.moe.effective_top_k(), 4);
  EXPECT_EQ(m.optim.lr, 1e-3);

  const RunConfig l = named_config("L");
  EXPECT_EQ(l.model.layers, 32);
  EXPECT_EQ(l.model.hidden, 1024);
  EXPECT_EQ(l.model.q_heads, 32);
  EXPECT_EQ(l.model.kv_heads, 16);
  EXPECT_EQ(effective_head_dim(l.model), 32);
  EXPECT_EQ(l.moe.experts, 24);
  EXPECT_EQ(l.moe.intermediate, 256);
  EXPECT_EQ(l.moe.effective_rank(), 64);
  EXPECT_EQ(l.moe.effective_top_k(), 6);
  EXPECT_EQ(l.optim.lr, 8e-4);
}

TEST(ConfigTest, CpuConfigsAreSmallAndValid) {
  const RunConfig tiny = named_config("tiny");
  EXPECT_EQ(tiny.model.layers, 2);
  EXPECT_EQ(tiny.model.hidden, 128);
  EXPECT_EQ(tiny.train.steps, 30);
  EXPECT_EQ(grad_accum(tiny.data), 2);
  const RunConfig micro = named_config("micro");
  EXPECT_EQ(micro.model.vocab, "bpe8k");
  EXPECT_EQ(micro.moe.effective_top_k(), 2);
  EXPECT_EQ(micro.moe.effective_rank(), 32);
  EXPECT_EQ(grad_accum(micro.data), 1);
  for (const auto& name : named_config_names()) EXPECT_TRUE(is_named_config(name));
}

TEST(ConfigTest, DerivedValuesFollowExplicitSettings) {
  RunConfig c = named_config("S");
  c.moe.top_k = 5;
  c.moe.rank = 7;
  c.model.head_dim = 0;
  c.data.batch_size = 64;
  c.data.micro_batch = 0;
  EXPECT_EQ(c.moe.effective_top_k(), 5);
  EXPECT_EQ(c.moe.effective_rank(), 7);
  EXPECT_EQ(effective_head_dim(c.model), 32);
  EXPECT_EQ(effective_micro_batch(c.data), 64);
  EXPECT_EQ(grad_accum(c.data), 1);
  c.moe.experts = 2;  // E/4 rounds to 0: at least one expert per token
  c.moe.top_k = 0;
  EXPECT_EQ(c.moe.effective_top_k(), 1);
}

TEST(ConfigTest, TomlFileThenOverrides) {
  TempDir dir;
  const fs::path file = dir.write("run.toml", R"(
base = "micro"
[moe]
method = "topk"
theta = 0.8
[optim]
betas = [0.9, 0.95]
lr = 1          # an integer is fine for a number
[eval]
tasks = ["imdb"]
)");
  const RunConfig c = load_config(
      file.string(), {"train.steps=100", "model.layers=2", "moe.method=switch",
                      "eval.theta_sweep=0.8,1.0", "eval.tasks=imdb, cloze", "moe.jitter = 0.01"});
  EXPECT_EQ(c.model.hidden, 256);                     // from micro
  EXPECT_EQ(c.moe.params.get<double>("theta"), 0.8);  // from the file
  EXPECT_EQ(c.optim.betas[1], 0.95);
  EXPECT_EQ(c.optim.lr, 1.0);
  EXPECT_EQ(c.train.steps, 100);  // overrides win over the file
  EXPECT_EQ(c.model.layers, 2);
  EXPECT_EQ(c.moe.method, "switch");
  EXPECT_EQ(c.moe.params.get<double>("jitter"), 0.01);
  EXPECT_EQ(c.eval.theta_sweep, (std::vector<double>{0.8, 1.0}));
  EXPECT_EQ(c.eval.tasks, (std::vector<std::string>{"imdb", "cloze"}));
}

TEST(ConfigTest, OverridesAcceptTomlSyntax) {
  const RunConfig c = load_config(
      "tiny", {"model.vocab=\"gpt2\"", "eval.tasks=[\"wordnet\"]", "eval.theta_sweep=[0.5]",
               "moe.mask_padding=false", "model.vocab_size=50257", "eval.tasks=[]"});
  EXPECT_EQ(c.model.vocab, "gpt2");
  EXPECT_TRUE(c.eval.tasks.empty());
  EXPECT_EQ(c.eval.theta_sweep, std::vector<double>{0.5});
  EXPECT_FALSE(c.moe.mask_padding);
  EXPECT_EQ(c.model.vocab_size, 50257);
}

TEST(ConfigTest, FileWithoutBaseStartsFromSAndBaseMayBeAFile) {
  TempDir dir;
  dir.write("parent.toml", "base = \"tiny\"\n[train]\nsteps = 7\n");
  const fs::path child = dir.write("child.toml", "base = \"parent.toml\"\n[train]\nseed = 3\n");
  const RunConfig c = load_config(child.string());
  EXPECT_EQ(c.model.hidden, 128);
  EXPECT_EQ(c.train.steps, 7);
  EXPECT_EQ(c.train.seed, 3);

  const fs::path plain = dir.write("plain.toml", "[train]\nseed = 5\n");
  RunConfig expected = named_config("S");
  expected.train.seed = 5;
  EXPECT_EQ(to_canonical_json(load_config(plain.string())), to_canonical_json(expected));

  const fs::path loop = dir.write("loop.toml", "base = \"loop.toml\"\n");
  EXPECT_NE(error_of([&] { load_config(loop.string()); }).find("a cycle?"), std::string::npos);
}

TEST(ConfigTest, UnknownKeyIsNamedWithSuggestion) {
  EXPECT_EQ(error_of([] { load_config("S", {"moe.thetaa=1"}); }),
            "config: unknown key 'moe.thetaa' (did you mean 'moe.theta'?)");
  EXPECT_EQ(error_of([] { load_config("S", {"theta=1"}); }),
            "config: unknown key 'theta' (did you mean 'moe.theta'?)");
  EXPECT_EQ(error_of([] { load_config("S", {"train.zzzzzzzz=1"}); }),
            "config: unknown key 'train.zzzzzzzz'");

  TempDir dir;
  const fs::path file = dir.write("bad.toml", "[optim]\nweight_decy = 0.1\n");
  const std::string message = error_of([&] { load_config(file.string()); });
  EXPECT_NE(message.find("unknown key 'optim.weight_decy'"), std::string::npos) << message;
  EXPECT_NE(message.find("did you mean 'optim.weight_decay'"), std::string::npos) << message;
  EXPECT_NE(message.find(file.string()), std::string::npos) << message;

  const fs::path section = dir.write("section.toml", "[optimizer]\nlr = 0.1\n");
  EXPECT_NE(error_of([&] {
              load_config(section.string());
            }).find("unknown section 'optimizer' (did you mean 'optim'?)"),
            std::string::npos);
}

TEST(ConfigTest, TypeErrorNamesKey) {
  EXPECT_EQ(error_of([] { load_config("S", {"train.steps=abc"}); }),
            "config: train.steps = 'abc' has the wrong type (expected an integer)");
  EXPECT_EQ(error_of([] { load_config("S", {"model.layers=2.5"}); }),
            "config: model.layers = 2.5 has the wrong type (expected an integer)");
  EXPECT_EQ(error_of([] { load_config("S", {"moe.mask_padding=1"}); }),
            "config: moe.mask_padding = 1 has the wrong type (expected true or false)");
  EXPECT_NE(error_of([] { load_config("S", {"optim.betas=0.9"}); }).find("optim.betas"),
            std::string::npos);

  TempDir dir;
  const fs::path file = dir.write("typed.toml", "[moe]\ntheta = \"high\"\n");
  EXPECT_EQ(error_of([&] { load_config(file.string()); }),
            "config: moe.theta = 'high' has the wrong type (expected a number)");
}

TEST(ConfigTest, RangeErrorNamesKey) {
  EXPECT_EQ(error_of([] { load_config("S", {"moe.rho_target=1.5"}); }),
            "config: moe.rho_target = 1.5 is out of range (0, 1]");
  EXPECT_EQ(error_of([] { load_config("S", {"moe.rho_target=0"}); }),
            "config: moe.rho_target = 0 is out of range (0, 1]");
  EXPECT_EQ(error_of([] { load_config("S", {"optim.lr=-0.001"}); }),
            "config: optim.lr = -0.001 is out of range (0, inf)");
  EXPECT_EQ(error_of([] { load_config("S", {"model.layers=0"}); }),
            "config: model.layers = 0 is out of range [1, 1024]");
  // Sizes a typo makes (a stray digit, an exponent) fail in validation, naming the key, before
  // anything is allocated.
  EXPECT_EQ(error_of([] { load_config("S", {"model.hidden=2000000000"}); }),
            "config: model.hidden = 2000000000 is out of range [1, 65536]");
  EXPECT_EQ(error_of([] { load_config("S", {"moe.experts=100000000"}); }),
            "config: moe.experts = 100000000 is out of range [1, 4096]");
  EXPECT_NE(error_of([] {
              load_config("S", {"model.hidden=65536", "model.head_dim=0"});
            }).find("parameters, more than this suite allows"),
            std::string::npos);
  EXPECT_EQ(error_of([] { load_config("S", {"optim.betas=[0.9, 1.5]"}); }),
            "config: optim.betas[1] = 1.5 is out of range [0, 1)");
  EXPECT_EQ(error_of([] { load_config("S", {"moe.theta=nan"}); }),
            "config: moe.theta = nan is out of range [0, inf)");
  EXPECT_EQ(error_of([] { load_config("S", {"moe.method=routingfree"}); }),
            "config: moe.method = \"routingfree\" is not one of routing_free, topk, switch, "
            "remoe, aoe, self_routing, dense (did you mean 'routing_free'?)");
  EXPECT_EQ(error_of([] { load_config("S", {"model.hidden=500"}); }),
            "config: model.hidden = 500 is not divisible by model.q_heads = 16");
  EXPECT_EQ(error_of([] { load_config("S", {"model.hidden=1024"}); }),
            "config: model.head_dim = 32 does not match model.hidden / model.q_heads = 1024 / 16 "
            "= 64 (0 derives it)");
  EXPECT_EQ(error_of([] { load_config("S", {"model.kv_heads=6"}); }),
            "config: model.q_heads = 16 is not a multiple of model.kv_heads = 6");
  EXPECT_EQ(error_of([] { load_config("S", {"moe.top_k=13"}); }),
            "config: moe.top_k = 13 is out of range [0, moe.experts = 12]");
  EXPECT_EQ(error_of([] { load_config("S", {"data.micro_batch=48"}); }),
            "config: data.batch_size = 256 is not a multiple of data.micro_batch = 48");
  // An override may repair a value before validation sees it.
  EXPECT_EQ(load_config("S", {"model.hidden=1024", "model.head_dim=0"}).model.hidden, 1024);
}

TEST(ConfigTest, ReMoERfPaperLambdaAndEtaAreKeys) {
  // Set from a file and from overrides; every other field keeps its S default.
  TempDir dir;
  const fs::path file = dir.write(
      "remoe.toml",
      "[moe]\nmethod = \"remoe\"\nremoe_variant = \"rf_paper\"\nremoe_rf_lambda0 = 0.002\n");
  const RunConfig c = load_config(file.string(), {"moe.remoe_rf_eta=0.3"});
  EXPECT_EQ(c.moe.params.get<double>("remoe_rf_lambda0"), 0.002);
  EXPECT_EQ(c.moe.params.get<double>("remoe_rf_eta"), 0.3);
  EXPECT_EQ(c.moe.params.get<double>("remoe_lambda0"),
            1e-8);  // the original variant's λ₀ is a separate key
  EXPECT_EQ(config_from_json(to_canonical_json(c)).moe.params.get<double>("remoe_rf_eta"), 0.3);
  // λ is capped at 1 by the controller, so λ₀ must lie in [0, 1]; η must not be negative.
  EXPECT_EQ(error_of([] { load_config("S", {"moe.remoe_rf_lambda0=1.5"}); }),
            "config: moe.remoe_rf_lambda0 = 1.5 is out of range [0, 1]");
  EXPECT_EQ(error_of([] { load_config("S", {"moe.remoe_rf_eta=-0.1"}); }),
            "config: moe.remoe_rf_eta = -0.1 is out of range [0, inf)");
  EXPECT_EQ(load_config("S", {"moe.remoe_rf_lambda0=1"}).moe.params.get<double>("remoe_rf_lambda0"),
            1.0);
}

TEST(ConfigTest, BadNamesFilesAndSyntaxAreReported) {
  EXPECT_NE(error_of([] { load_config("XL"); }).find("'XL' is neither a named config"),
            std::string::npos);
  EXPECT_NE(error_of([] { load_config("S", {"moe.theta"}); }).find("section.key=value"),
            std::string::npos);
  TempDir dir;
  const fs::path file = dir.write("syntax.toml", "[moe]\ntheta = = 1\n");
  const std::string message = error_of([&] { load_config(file.string()); });
  EXPECT_NE(message.find(file.string() + ":2:"), std::string::npos) << message;
}

TEST(ConfigTest, CanonicalJsonRoundTrips) {
  std::vector<RunConfig> configs;
  for (const auto& name : named_config_names()) configs.push_back(named_config(name));
  configs.push_back(load_config("micro", {"moe.theta=0.1", "optim.lr=3e-4",
                                          "eval.theta_sweep=0.3,1e-7", "data.shard_dir=a \"b\""}));
  for (const RunConfig& c : configs) {
    const std::string json = to_canonical_json(c);
    const RunConfig back = config_from_json(json);
    EXPECT_EQ(to_canonical_json(back), json);
    EXPECT_EQ(back.optim.lr, c.optim.lr);  // doubles survive bit for bit
    EXPECT_EQ(back.eval.theta_sweep, c.eval.theta_sweep);
    EXPECT_EQ(run_key(back), run_key(c));
  }
  // Sorted keys, every section present.
  const auto j = nlohmann::json::parse(to_canonical_json(configs[0]));
  std::vector<std::string> sections;
  for (const auto& [k, v] : j.items()) sections.push_back(k);
  EXPECT_EQ(sections, (std::vector<std::string>{"data", "eval", "kernels", "model", "moe", "optim",
                                                "train"}));
  EXPECT_NE(error_of([] { config_from_json(R"({"moe": {"thetaa": 1}})"); }).find("moe.thetaa"),
            std::string::npos);
}

TEST(ConfigTest, HashesAreSixteenHexChars) {
  const RunConfig c = named_config("tiny");
  for (const std::string& h : {config_hash(c), config_id(c), run_key(c)}) {
    ASSERT_EQ(h.size(), 16u);
    EXPECT_EQ(h.find_first_not_of("0123456789abcdef"), std::string::npos) << h;
  }
  EXPECT_EQ(run_key(c), run_key(named_config("tiny")));  // deterministic
}

// One valid change per key. Every key must appear, so a new field cannot be left out of the run
// key unnoticed. The base has head_dim = 0 so that hidden and heads can change alone.
TEST(ConfigTest, RunKeyChangesWithEveryFieldAndSeed) {
  const std::map<std::string, std::string> changes = {
      {"model.layers", "3"},
      {"model.hidden", "1024"},
      {"model.q_heads", "32"},
      {"model.kv_heads", "8"},
      {"model.head_dim", "32"},
      {"model.vocab", "bpe8k"},
      {"model.vocab_size", "50304"},
      {"model.seq_len", "256"},
      {"model.rope_theta", "5e5"},
      {"model.norm_eps", "1e-6"},
      {"model.attn_dropout", "0"},
      {"model.init_std", "0.01"},
      {"model.init", "normal"},
      {"moe.method", "topk"},
      {"moe.experts", "16"},
      {"moe.intermediate", "256"},
      {"moe.rank", "16"},
      {"moe.theta", "0.9"},
      {"moe.norm", "l1"},
      {"moe.gamma_init", "0.5"},
      {"moe.bias_init", "0"},
      {"moe.rho_target", "0.5"},
      {"moe.eta", "0.1"},
      {"moe.lambda0", "1e-9"},
      {"moe.eb_weight", "0.4"},
      {"moe.tb_weight", "0.6"},
      {"moe.mask_padding", "false"},
      {"moe.lambda_bf16", "true"},
      {"moe.lambda_updates", "4"},
      {"moe.top_k", "2"},
      {"moe.aux_coef", "0.02"},
      {"moe.capacity_factor_train", "1.5"},
      {"moe.capacity_factor_eval", "1.0"},
      {"moe.z_loss_coef", "0"},
      {"moe.jitter", "0.01"},
      {"moe.switch_norm", "megatron"},
      {"moe.remoe_variant", "rf_paper"},
      {"moe.remoe_alpha", "1.1"},
      {"moe.remoe_lambda0", "0.01"},
      {"moe.remoe_rf_lambda0", "0.5"},
      {"moe.remoe_rf_eta", "0.05"},
      {"moe.aoe_variant", "aoe_paper"},
      {"moe.self_routing_subspace", "first"},
      {"moe.dense_width", "iso_param"},
      {"optim.lr", "5e-4"},
      {"optim.betas", "[0.9, 0.95]"},
      {"optim.eps", "1e-6"},
      {"optim.weight_decay", "0.1"},
      {"optim.warmup_steps", "50"},
      {"optim.min_lr_ratio", "0.1"},
      {"optim.grad_clip", "0.5"},
      {"data.mode", "packed"},
      {"data.batch_size", "128"},
      {"data.micro_batch", "16"},
      {"data.shard_dir", "/tmp/shards"},
      {"train.steps", "100"},
      {"train.seed", "1"},
      {"train.dtype", "fp32"},
      {"train.eval_every", "500"},
      {"train.checkpoint_every", "500"},
      {"train.log_every", "1"},
      {"train.threads", "4"},
      {"train.device", "cpu"},
      {"train.diverge_loss", "10"},
      {"eval.val_batches", "10"},
      {"eval.max_examples", "100"},
      {"eval.tasks", "imdb"},
      {"eval.theta_sweep", "0.8,1.2"},
      {"kernels.backend", "reference"},
  };
  // How a run is executed, not what it is: stored on the row, never in the key.
  const std::set<std::string> execution = {
      "data.shard_dir", "train.eval_every", "train.checkpoint_every", "train.log_every",
      "train.threads",  "train.device",     "kernels.backend"};
  // The options of methods other than the base's (routing_free): not part of an RF run.
  const std::set<std::string> not_rf = {"moe.aux_coef",
                                        "moe.capacity_factor_train",
                                        "moe.capacity_factor_eval",
                                        "moe.z_loss_coef",
                                        "moe.jitter",
                                        "moe.switch_norm",
                                        "moe.remoe_variant",
                                        "moe.remoe_alpha",
                                        "moe.remoe_lambda0",
                                        "moe.remoe_rf_lambda0",
                                        "moe.remoe_rf_eta",
                                        "moe.aoe_variant",
                                        "moe.self_routing_subspace",
                                        "moe.dense_width"};
  const std::vector<std::string> base_overrides = {"model.head_dim=0"};
  const RunConfig base = load_config("S", base_overrides);
  std::set<std::string> keys = {run_key(base)};
  for (const std::string& key : config_keys()) {
    auto it = changes.find(key);
    ASSERT_NE(it, changes.end()) << "add a change for the new key " << key;
    std::vector<std::string> overrides = base_overrides;
    overrides.push_back(key + "=" + it->second);
    const RunConfig changed = load_config("S", overrides);
    EXPECT_NE(to_canonical_json(changed), to_canonical_json(base)) << key;
    if (execution.count(key) || not_rf.count(key)) {
      EXPECT_EQ(run_key(changed), run_key(base)) << key << " must not change an RF run's key";
      EXPECT_EQ(config_id(changed), config_id(base)) << key;
      continue;
    }
    EXPECT_TRUE(keys.insert(run_key(changed)).second) << key << " did not change the run key";
    if (key == "train.seed") {
      EXPECT_EQ(config_id(changed), config_id(base));  // the seeds of one configuration
    } else {
      EXPECT_NE(config_id(changed), config_id(base)) << key;
    }
  }
  EXPECT_EQ(changes.size(), config_keys().size());
}

// A method's key covers its own options and not the others': the same top-k run whatever RF's
// θ says, a new top-k run when its aux_coef moves.
TEST(ConfigTest, RunKeyCoversOnlyTheSelectedMethodsOptions) {
  const RunConfig topk = load_config("tiny", {"moe.method=topk"});
  EXPECT_EQ(run_key(load_config("tiny", {"moe.method=topk", "moe.theta=0.5"})), run_key(topk));
  EXPECT_EQ(run_key(load_config("tiny", {"moe.method=topk", "moe.switch_norm=megatron"})),
            run_key(topk));
  EXPECT_NE(run_key(load_config("tiny", {"moe.method=topk", "moe.aux_coef=0.02"})), run_key(topk));
  EXPECT_EQ(identity_json(topk).find("\"theta\""), std::string::npos) << identity_json(topk);
  EXPECT_NE(identity_json(topk).find("\"aux_coef\""), std::string::npos);
  for (const char* exec : {"\"threads\"", "\"log_every\"", "\"backend\"", "\"device\"",
                           "\"checkpoint_every\"", "\"eval_every\"", "\"shard_dir\""}) {
    EXPECT_EQ(identity_json(topk).find(exec), std::string::npos) << exec;
  }
}

// Frozen keys: a change that moves any of these (a renamed field, a new field that enters the
// key at its default, a changed default) orphans every stored run and checkpoint, so it must be
// deliberate: update the values here and say why in the commit.
TEST(ConfigTest, RecipeSettingsOfTheNamedConfigs) {
  // λ moves 2 times per optimizer step at S (and in the CPU configs), 4 at M and L, as the
  // official runs did; the published initialisation is the default everywhere.
  for (const char* size : {"S", "micro", "tiny"}) {
    EXPECT_EQ(named_config(size).moe.params.get<int64_t>("lambda_updates"), 2) << size;
  }
  for (const char* size : {"M", "L"}) {
    EXPECT_EQ(named_config(size).moe.params.get<int64_t>("lambda_updates"), 4) << size;
  }
  for (const auto& size : named_config_names())
    EXPECT_EQ(named_config(size).model.init, "published");
  EXPECT_THROW(load_config("tiny", {"model.init=same"}), ConfigError);
  EXPECT_THROW(load_config("tiny", {"moe.lambda_updates=-1"}), ConfigError);
  // The init and the cadence are part of the experiment; the recipe generation is in the key.
  const auto base = load_config("tiny");
  EXPECT_NE(run_key(base), run_key(load_config("tiny", {"model.init=normal"})));
  EXPECT_NE(run_key(base), run_key(load_config("tiny", {"moe.lambda_updates=1"})));
  EXPECT_NE(identity_json(base).find("\"recipe\":" + std::to_string(kRecipeVersion)),
            std::string::npos);
}

TEST(ConfigTest, RunKeysOfTheNamedConfigsAreFrozen) {
  // Recipe 2 (issue 12: the published recipe; kRecipeVersion) moved every key on purpose.
  const std::map<std::string, std::string> frozen = {
      {"routing_free", "8e8967fe086edb60"}, {"topk", "44beedb863dbdf0e"},
      {"switch", "27f2e522f242ee38"},       {"remoe", "dc1b2c54c77d7bff"},
      {"aoe", "690958476035123e"},          {"self_routing", "62b061141056068e"},
      {"dense", "0686775f956d4190"},
  };
  for (const auto& [method, key] : frozen) {
    EXPECT_EQ(run_key(load_config("tiny", {"moe.method=" + method})), key) << method;
  }
}

TEST(ConfigTest, RunKeyIsTheSameWhicheverWayTheConfigIsBuilt) {
  TempDir dir;
  const fs::path file = dir.write("x.toml", R"(
base = "micro"
[moe]
theta = 0.8
method = "remoe"
[train]
seed = 7
[eval]
theta_sweep = [0.9, 1.1]
)");
  const RunConfig from_file = load_config(file.string());
  const RunConfig from_overrides = load_config(
      "micro", {"train.seed=7", "moe.method=remoe", "moe.theta=0.8", "eval.theta_sweep=0.9,1.1"});
  RunConfig by_hand = named_config("micro");
  by_hand.moe.params.set("theta", 0.8);
  by_hand.moe.method = "remoe";
  by_hand.train.seed = 7;
  by_hand.eval.theta_sweep = {0.9, 1.1};
  const RunConfig from_json = config_from_json(to_canonical_json(from_file));

  EXPECT_EQ(run_key(from_file), run_key(from_overrides));
  EXPECT_EQ(run_key(from_file), run_key(by_hand));
  EXPECT_EQ(run_key(from_file), run_key(from_json));
  EXPECT_EQ(config_hash(from_file), config_hash(by_hand));
  EXPECT_NE(run_key(from_file), run_key(named_config("micro")));
}

}  // namespace
}  // namespace moebench

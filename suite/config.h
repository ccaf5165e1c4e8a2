// RunConfig: every knob of one training run, read from TOML / named configs / key=value overrides.
// Spec: shared/DESIGN.md "Configs and the store"; defaults from shared/spec/METHODS.md.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/options.h"

namespace moebench {

// Thrown for every bad config input; the message always names the offending key or file.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The struct defaults are the paper's S configuration (METHODS.md "Paper configurations"), so a
// field nobody mentions has the value the paper used.

struct ModelConfig {
  int layers = 12;
  int hidden = 512;
  int q_heads = 16;
  int kv_heads = 16;
  int head_dim = 32;           // 0 = hidden / q_heads; otherwise must equal it
  std::string vocab = "gpt2";  // "gpt2" or the name of a trained vocabulary ("bpe8k")
  int vocab_size = 0;          // 0 = take it from the tokenizer
  int seq_len = 512;
  double rope_theta = 1e4;
  double norm_eps = 1e-5;
  double attn_dropout = 0.05;
  double init_std = 0.02;
  // published: each method as its authors' code starts it (top-k, Switch, Self-Routing, dense:
  // N(0, init_std) everywhere; RF, AoE, ReMoE: PyTorch's default U(±1/√fan_in) in the decoder
  // layers, models::LayerInit). normal: N(0, init_std) for every method (a fair comparison).
  std::string init = "published";
};

// The moe section: the keys every method shares and the method's own (models/options.h); each
// method declares its keys in its own file and the registry lists them (baselines/registry.h).
using MoeConfig = models::MoeOptions;

struct OptimConfig {
  double lr = 1e-3;
  std::array<double, 2> betas = {0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 0.01;
  int warmup_steps = 100;
  double min_lr_ratio = 0.0;  // linear decay ends at lr * min_lr_ratio
  double grad_clip = 1.0;     // 0 = no clipping
};

struct DataConfig {
  std::string mode = "paper";  // paper (truncate + right-pad, padding masked) | packed
  int batch_size = 256;        // sequences per optimizer step
  int micro_batch = 32;        // sequences per forward; 0 = batch_size
  std::string shard_dir;       // "" = the default data cache
};

struct TrainConfig {
  int64_t steps = 0;  // 0 = one epoch
  int64_t seed = 42;
  std::string dtype = "bf16";       // fp32 | bf16
  int64_t eval_every = 1000;        // 0 = only at the end
  int64_t checkpoint_every = 1000;  // 0 = never
  int64_t log_every = 10;
  int threads = 2;              // CPU threads for LibTorch
  std::string device = "auto";  // cpu | cuda | auto
  double diverge_loss = 20.0;   // a loss above this (or NaN) marks the run diverged
};

struct EvalConfig {
  int val_batches = 50;  // 0 = the whole validation split
  int max_examples = 0;  // per zero-shot task; 0 = all
  std::vector<std::string> tasks = {"imdb", "cloze", "next_sentence", "wordnet"};
  std::vector<double> theta_sweep;  // extra eval-time thresholds (Routing-Free); empty = none
};

struct KernelsConfig {
  std::string backend = "auto";  // auto | reference | cpu | cuda
};

// The moe section at its defaults: the shared keys and every registered method's options.
MoeConfig default_moe_options();

struct RunConfig {
  ModelConfig model;
  MoeConfig moe = default_moe_options();
  OptimConfig optim;
  DataConfig data;
  TrainConfig train;
  EvalConfig eval;
  KernelsConfig kernels;
};

// --- building configs ---------------------------------------------------------------------------

// Names of the built-in configs: tiny, micro, S, M, L.
const std::vector<std::string>& named_config_names();
bool is_named_config(const std::string& name);
// A built-in config (validated). Throws ConfigError for an unknown name.
RunConfig named_config(const std::string& name);

// A built-in name or a TOML file, then `overrides` ("moe.theta=0.8") in order, then validation.
// A TOML file may say `base = "micro"` (a built-in name or another TOML file, relative to it);
// without `base` it starts from the struct defaults (S). Throws ConfigError.
RunConfig load_config(const std::string& name_or_path,
                      const std::vector<std::string>& overrides = {});
// Applies one "section.key=value" override. The value is TOML ("0.8", "true", "[0.8, 1.0]",
// "\"gpt2\"") or, for string and list fields, bare text ("topk", "imdb,cloze").
void apply_override(RunConfig& cfg, const std::string& key_equals_value);
// Checks every field's range and the cross-field rules; throws ConfigError naming the key.
void validate(const RunConfig& cfg);

// Every key, "section.name", in declaration order.
std::vector<std::string> config_keys();

// --- identity ---------------------------------------------------------------------------------

// The training recipe's generation, part of every run's identity. Bump it when a change to the
// trainer or a method moves the curves of an unchanged config, so that runs stored under the old
// recipe are never taken as done for the new one (the golden curves of suite/tests/golden/
// show such a change). 1: up to issue 12. 2: issue 12's published recipe (λ cadence, published
// init, per-layer AoE aux, step-0 warm-up, token-weighted LM loss over a step, γ decayed, paired
// backbone init).
inline constexpr int kRecipeVersion = 2;

// Canonical JSON: every field, sorted keys, compact, shortest round-trip doubles (what a run
// row stores; config_from_json reads it back).
std::string to_canonical_json(const RunConfig& cfg);
// What identifies the experiment, as canonical JSON: the fields marked as defining it, without
// the execution settings (threads, log/eval/checkpoint cadence, backend, device, shard folder)
// and without the options of methods other than moe.method. A field added after keys were first
// issued (models::OptionRole::kExperimentAdded) appears only when it differs from its default.
std::string identity_json(const RunConfig& cfg);
// Inverse of to_canonical_json; validates the result. Unknown keys throw; missing keys keep the
// struct defaults (a config stored before a field existed still loads).
RunConfig config_from_json(const std::string& json_text);
// 16 lowercase hex chars of FNV-1a 64 over the canonical JSON.
std::string config_hash(const RunConfig& cfg);
// Hash of identity_json with train.seed left out: equal for the seeds of one configuration.
std::string config_id(const RunConfig& cfg);
// Store key of a run: hash over (config_id, seed). Changes when an experiment field or the seed
// changes; execution settings never change it.
std::string run_key(const RunConfig& cfg);

// --- derived values -----------------------------------------------------------------------------

// The configured inference-time threshold θ of the run's method; nullopt when it has none.
std::optional<double> threshold_of(const RunConfig& cfg);
int effective_head_dim(const ModelConfig& m);  // head_dim, or hidden / q_heads
int effective_micro_batch(const DataConfig& d);
int grad_accum(const DataConfig& d);  // batch_size / micro batch

}  // namespace moebench

// RunConfig: every knob of one training run, read from TOML / named configs / key=value overrides.
// Spec: shared/DESIGN.md "Configs and the store"; defaults from shared/spec/METHODS.md.
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

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
};

struct MoeConfig {
  // routing_free | topk | switch | remoe | aoe | self_routing | dense
  std::string method = "routing_free";
  int experts = 12;
  int intermediate = 128;
  int rank = 0;  // low-rank gate size r (RF, AoE); 0 = intermediate / 4

  // Routing-Free (METHODS.md §1)
  double theta = 1.0;
  std::string norm = "l2";  // l2 | l1 | linf
  double gamma_init = 1.0;
  double bias_init = -1e-6;
  double rho_target = 0.25;
  double eta = 0.02;
  double lambda0 = 1e-10;
  // L_reg = eb_weight*L_EB + tb_weight*L_TB: the official code's two independent weights; the
  // paper's mu*L_EB + (1-mu)*L_TB is eb_weight = mu, tb_weight = 1 - mu. A weight of 0 skips it.
  double eb_weight = 0.5;
  double tb_weight = 0.5;
  // false = the official code (padding counted in the balance stats); for Switch also padding
  // taking capacity, as in the reference Switch code.
  bool mask_padding = true;
  bool lambda_bf16 = false;  // true = the official code's bf16 lambda quirk

  // Top-k, Switch, AoE, Self-Routing, dense (METHODS.md §2-§7)
  int top_k = 0;  // 0 = experts / 4
  double aux_coef = 0.01;
  double capacity_factor_train = 1.25;
  double capacity_factor_eval = 2.0;
  double z_loss_coef = 1e-3;
  double jitter = 0.0;
  std::string switch_norm = "switch";      // switch | megatron
  std::string remoe_variant = "original";  // original | rf_paper
  double remoe_alpha = 1.2;
  double remoe_lambda0 = 1e-8;
  // ReMoE rf_paper variant (plain L1, per-micro-batch controller): its own λ₀ and η (ρ* is
  // rho_target); the original variant ignores them.
  double remoe_rf_lambda0 = 0.01;
  double remoe_rf_eta = 0.1;
  std::string aoe_variant = "rf_paper";        // rf_paper | aoe_paper
  std::string self_routing_subspace = "last";  // last | first | strided
  std::string dense_width = "iso_active";      // iso_active | iso_param
};

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

struct RunConfig {
  ModelConfig model;
  MoeConfig moe;
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

// Canonical JSON: every field, sorted keys, compact, shortest round-trip doubles.
std::string to_canonical_json(const RunConfig& cfg);
// Inverse of to_canonical_json; validates the result. Unknown keys throw; missing keys keep the
// struct defaults (a config stored before a field existed still loads).
RunConfig config_from_json(const std::string& json_text);
// 16 lowercase hex chars of FNV-1a 64 over the canonical JSON.
std::string config_hash(const RunConfig& cfg);
// Hash of the config with train.seed left out: equal for the seeds of one configuration.
std::string config_id(const RunConfig& cfg);
// Store key of a run: hash over (config_id, seed). Changes when any field or the seed changes.
std::string run_key(const RunConfig& cfg);

// --- derived values -----------------------------------------------------------------------------

int effective_top_k(const MoeConfig& moe);     // top_k, or experts / 4 (at least 1)
int effective_rank(const MoeConfig& moe);      // rank, or intermediate / 4 (at least 1)
int effective_head_dim(const ModelConfig& m);  // head_dim, or hidden / q_heads
int effective_micro_batch(const DataConfig& d);
int grad_accum(const DataConfig& d);  // batch_size / micro batch

}  // namespace moebench

// Building a run: config -> device, vocabulary, shards, samplers, model (shared by train and eval).
#include "suite/run_context.h"

#include <fmt/format.h>

#include "baselines/registry.h"
#include "datasets/prepare.h"
#include "datasets/vocab.h"
#include "models/method.h"
#include "suite/distributed.h"

namespace moebench {

torch::Device run_device(const RunConfig& cfg) {
  if (cfg.train.device == "cuda" && !torch::cuda::is_available()) {
    throw std::runtime_error("train.device=cuda but LibTorch sees no CUDA device");
  }
  const bool cuda =
      cfg.train.device == "cuda" || (cfg.train.device == "auto" && torch::cuda::is_available());
  if (!cuda) return torch::Device(torch::kCPU);
  // Data parallel on one machine (torchrun, --nproc, srun with several GPUs per task): local
  // rank i takes GPU i (srun's one GPU per task makes that GPU 0 of each task).
  const auto gpus = static_cast<int>(torch::cuda::device_count());
  const int local = dist::launch_env().local_rank;
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(gpus > 0 ? local % gpus : 0));
}

models::ModelOptions model_options(const RunConfig& c, int64_t vocab_size) {
  models::ModelOptions o;
  o.vocab_size = vocab_size;
  o.hidden = c.model.hidden;
  o.layers = c.model.layers;
  o.q_heads = c.model.q_heads;
  o.kv_heads = c.model.kv_heads;
  o.head_dim = effective_head_dim(c.model);
  o.max_seq_len = c.model.seq_len;
  o.rope_theta = c.model.rope_theta;
  o.norm_eps = c.model.norm_eps;
  o.attn_dropout = c.model.attn_dropout;
  o.init_std = c.model.init_std;
  // The shared keys and the method's own options as configured; the method may then adjust the
  // sizes (AoE's widened experts) and says how to build its policy (none: the dense FFN).
  const auto& method = baselines::find_method(c.moe.method);
  o.moe = c.moe;
  o.moe.rank = c.moe.effective_rank();
  o.moe.top_k = c.moe.effective_top_k();
  o.moe.backend = c.kernels.backend;
  if (method.adjust) method.adjust(o.moe, o.hidden);
  o.make_policy = method.make_policy;
  if (method.ffn_width) o.dense_intermediate = method.ffn_width(o.moe);
  o.layer_init = c.model.init == "published" ? method.published_init : models::LayerInit::kNormal;
  return o;
}

RunContext build_run_context(const RunConfig& cfg, const std::filesystem::path& data_dir,
                             Splits splits) {
  validate(cfg);
  RunContext ctx;
  ctx.cfg = cfg;
  ctx.device = run_device(cfg);
  if (cfg.train.dtype == "bf16" && ctx.device.is_cpu()) {
    throw std::runtime_error(
        "train.dtype=bf16 needs a CUDA device; on the CPU use --set train.dtype=fp32 (the tiny "
        "and micro configs already do)");
  }
  // Data: the vocabulary the model is built for must be the one the shards were made with.
  ctx.tokenizer = std::make_unique<data::BpeTokenizer>(data::load_vocab(data_dir, cfg.model.vocab));
  const auto& tok = *ctx.tokenizer;
  const auto dir = cfg.data.shard_dir.empty() ? data::shard_dir(data_dir, cfg.model.vocab)
                                              : std::filesystem::path(cfg.data.shard_dir);
  const data::VocabInfo vinfo{tok.name(), tok.identity(), static_cast<uint32_t>(tok.vocab_size()),
                              static_cast<uint32_t>(tok.eot_id())};
  if (splits == Splits::kTrainAndValidation) {
    ctx.train_shard = std::make_unique<data::ShardReader>(dir / "train.bin");
    ctx.train_shard->require_vocab(vinfo);
  }
  ctx.val_shard = std::make_unique<data::ShardReader>(dir / "val.bin");
  ctx.val_shard->require_vocab(vinfo);
  if (cfg.model.vocab_size != 0 && cfg.model.vocab_size != tok.vocab_size()) {
    throw std::runtime_error(fmt::format("model.vocab_size = {} but vocabulary '{}' has {} ids",
                                         cfg.model.vocab_size, tok.name(), tok.vocab_size()));
  }
  const auto mode =
      cfg.data.mode == "packed" ? data::SampleMode::kPacked : data::SampleMode::kPadded;
  ctx.micro_batch = effective_micro_batch(cfg.data);
  if (ctx.train_shard) {
    ctx.train_sampler = std::make_unique<data::BatchSampler>(
        *ctx.train_shard, mode, cfg.model.seq_len, ctx.micro_batch, cfg.train.seed);
  }
  ctx.val_sampler = std::make_unique<data::BatchSampler>(*ctx.val_shard, mode, cfg.model.seq_len,
                                                         ctx.micro_batch, cfg.train.seed);
  // The model last, right after seeding: its initial weights depend on nothing before.
  torch::manual_seed(cfg.train.seed);
  ctx.model = models::Transformer(model_options(cfg, tok.vocab_size()));
  ctx.model->to(ctx.device);
  if (cfg.train.dtype == "bf16") ctx.model->to(torch::kBFloat16);
  return ctx;
}

}  // namespace moebench

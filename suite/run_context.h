// The pieces one run is made of (device, tokenizer, token shards, samplers, model), built the same
// way for training and for evaluating a checkpoint, so a checkpoint is always rebuilt exactly as
// it was trained.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <memory>

#include "datasets/bpe.h"
#include "datasets/sampler.h"
#include "datasets/shard.h"
#include "models/transformer.h"
#include "suite/config.h"

namespace moebench {

// The device a run uses (train.device: cpu, cuda, or auto = cuda when LibTorch sees one);
// throws when cuda is asked for and LibTorch sees no device.
torch::Device run_device(const RunConfig& cfg);

// The one place a RunConfig becomes model options: the shared MoE keys, the method's own
// options, the method's size adjustments and its policy (from the method registry).
models::ModelOptions model_options(const RunConfig& c, int64_t vocab_size);

struct RunContext {
  RunConfig cfg;
  torch::Device device{torch::kCPU};
  std::unique_ptr<data::BpeTokenizer> tokenizer;
  // The training split is opened only for training (evaluation reads validation only).
  std::unique_ptr<data::ShardReader> train_shard, val_shard;
  std::unique_ptr<data::BatchSampler> train_sampler, val_sampler;
  models::Transformer model{nullptr};
  int micro_batch = 0;
};

enum class Splits { kValidation, kTrainAndValidation };

// Validates cfg, picks the device, loads the vocabulary and the shards it was made for (checking
// they agree), builds the samplers and then the model (seeded with train.seed, on the device, in
// the run's dtype). Throws with a message naming what is missing or inconsistent.
RunContext build_run_context(const RunConfig& cfg, const std::filesystem::path& data_dir,
                             Splits splits);

}  // namespace moebench

// The trainer: RunConfig -> model + data -> AdamW steps, validation, checkpoints, store rows.
// Recipe: shared/spec/METHODS.md (end); store layout: shared/DESIGN.md "Configs and the store".
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>

#include "suite/config.h"
#include "suite/distributed.h"
#include "suite/store.h"

namespace moebench {

struct TrainOptions {
  RunConfig cfg;
  std::string size_name;           // the named config or file the run came from
  std::filesystem::path db_path;   // SQLite store
  std::filesystem::path data_dir;  // data cache (vocabularies, token shards)
  std::filesystem::path checkpoint_root = "checkpoints";
  bool quiet = false;  // no progress line
  // Test hook: stop (as if killed, checkpoint kept, status 'interrupted') after this many steps.
  int64_t stop_after_steps = 0;
  // Data parallel: this process's place in the launch (one process by default). With W ranks,
  // rank r trains micro-batches r, r+W, ... of every global batch (the batch's micro-batches
  // must split evenly); gradients and λ's inputs are summed over the ranks; rank 0 alone writes
  // the store and checkpoints, and every rank resumes from the same checkpoint (a folder they
  // all see). A collective that waits longer than dist_timeout fails the run.
  dist::LaunchEnv launch;
  std::chrono::milliseconds dist_timeout{std::chrono::minutes(10)};
};

struct TrainResult {
  std::string run_key;
  RunStatus status = RunStatus::kRunning;
  int64_t steps = 0;
  double final_val_loss = 0;
  double wall_s = 0;
  double tokens_per_s = 0;
  double final_eval_s = 0;  // the end-of-run evaluation (validation, flip rate, zero-shot, θ)
  bool skipped = false;     // the run was already finished in the store (is_finished)
  int rank = 0;             // data parallel: only rank 0's result has the store's figures
};

// Another live process holds the run's lease: it is being trained elsewhere.
class RunBusy : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Trains (or resumes, or skips when already finished) one run. Errors in the inputs throw before
// any row is written; failures during training mark the run 'failed' and rethrow.
TrainResult train(const TrainOptions& opts);

// Whether AdamW's weight decay applies to the parameter of this name (a model's
// named_parameters() key): everything except biases ("...bias") and norm weights
// ("...norm.weight"), as the official code excludes them (RF's γ decays; its offset b does not).
bool takes_weight_decay(const std::string& parameter_name);

// Set by SIGINT/SIGTERM handlers: the trainer checkpoints and stops at the next step boundary.
void request_stop();

}  // namespace moebench

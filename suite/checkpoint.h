// A run's checkpoints: the one place that writes and reads them (tensors, optimizer, RNG, the
// trainer's counters and the config), for resuming a run and for evaluating it.
//
// Layout of a run's folder: step-<N>/ holds one complete checkpoint (model.pt, state.json,
// config.json and manifest.json with every file's size and checksum); LATEST names the newest.
// A checkpoint is written into a temporary folder, every file and the folder fsynced, renamed
// into place, then LATEST is replaced the same way; the two newest are kept. Reading verifies
// the manifest and falls back to the previous complete checkpoint, with a warning.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "models/transformer.h"
#include "suite/config.h"

namespace moebench {

// Everything a resumed run needs besides the tensors.
struct CheckpointState {
  int64_t step = 0;                          // optimizer steps done
  int64_t tokens = 0;                        // real (non-padding) training tokens seen
  double wall_s = 0;                         // training wall time so far, across resumes
  std::map<std::string, double> controller;  // the balancing controller's state
  std::string run_key;
};

// Writes step-<state.step>/ and points LATEST at it. Every failure (a full disk, a read-only
// folder) throws std::runtime_error naming the path and the OS error, leaving the previous
// checkpoint as it was.
void save_checkpoint(const std::filesystem::path& run_dir, const RunConfig& cfg,
                     models::TransformerImpl& model, torch::optim::Optimizer& optimizer,
                     const CheckpointState& state);

// Writes a LibTorch archive to `path`, every write checked and the file fsynced; a failure (a
// full disk) throws std::runtime_error naming the path and the OS error.
void save_archive(torch::serialize::OutputArchive& archive, const std::filesystem::path& path);

// The newest complete checkpoint under `dir` (a run's folder, or one step-<N>/ folder itself),
// checked against its manifest. A damaged or incomplete one is skipped with a warning on stderr
// naming it and why. nullopt when there is none.
std::optional<std::filesystem::path> find_checkpoint(const std::filesystem::path& dir);

// Reading one checkpoint (a folder find_checkpoint returned). Errors name the file.
CheckpointState read_checkpoint_state(const std::filesystem::path& checkpoint);
RunConfig read_checkpoint_config(const std::filesystem::path& checkpoint);
// Loads the tensors into `model` (on `device`) and returns the counters. With an optimizer
// (resuming training) its state and the CPU RNG are restored too; without (evaluating) only the
// weights are read.
CheckpointState load_checkpoint(const std::filesystem::path& checkpoint,
                                models::TransformerImpl& model, torch::Device device,
                                torch::optim::Optimizer* optimizer = nullptr);

}  // namespace moebench
